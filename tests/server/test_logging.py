"""Logs: JSON lines that carry the correlation id, in a file only its owner can read."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import stat
from collections.abc import Iterator

import pytest

from hostsmith.actors.server import configure_logging
from hostsmith.actors.service import Log
from hostsmith.runtime import correlation


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_logs_carry_the_correlation_id_into_a_private_file(
    tmp_path: pathlib.Path, restore_logging: None
) -> None:
    path = tmp_path / "logs" / "hostsmith.log"
    configure_logging(Log(format="json", file=str(path), level="info"))
    with correlation("hf-call-7"):
        logging.getLogger("hostsmith.test").warning("circuit %s is open", "provider:sim")
    for handler in logging.getLogger().handlers:
        handler.flush()

    (line,) = path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "circuit provider:sim is open"
    assert entry["correlation_id"] == "hf-call-7"
    assert entry["level"] == "warning"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_logs_rotate_at_the_configured_size(tmp_path: pathlib.Path, restore_logging: None) -> None:
    path = tmp_path / "hostsmith.log"
    configure_logging(Log(format="text", file=str(path), max_bytes=2048, backups=2))
    for n in range(200):
        logging.getLogger("hostsmith.test").info("line %d of a log that outgrows its file", n)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hostsmith.log",
        "hostsmith.log.1",
        "hostsmith.log.2",
    ]
    assert path.stat().st_size <= 2048


def test_rotated_files_stay_private_whatever_the_umask(
    tmp_path: pathlib.Path, restore_logging: None
) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "hostsmith.log"
        configure_logging(Log(format="text", file=str(path), max_bytes=2048, backups=2))
        for n in range(200):
            logging.getLogger("hostsmith.test").info("line %d of a log that outgrows its file", n)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"hostsmith.log": 0o600, "hostsmith.log.1": 0o600, "hostsmith.log.2": 0o600}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_aws_secrets_are_masked_in_every_line(
    tmp_path: pathlib.Path, restore_logging: None, log_format: str
) -> None:
    path = tmp_path / "hostsmith.log"
    configure_logging(Log(format=log_format, file=str(path)))  # type: ignore[arg-type]
    log = logging.getLogger("hostsmith.test")
    log.warning("signing with AKIAIOSFODNN7EXAMPLE failed")
    try:
        raise RuntimeError("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    except RuntimeError:
        log.exception("x-amz-security-token: FwoGZXIvYXdzEXAMPLETOKEN1234 was refused")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = path.read_text()
    for secret in ("IOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdzEXAMPLE"):
        assert secret not in written
    assert "AKIA************" in written
    assert "aws_secret_access_key=***" in written
