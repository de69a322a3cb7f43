"""A real small filesystem to fill up: a tmpfs of its own, mounted for one test.

Mounting needs root (CI runs as root); where it cannot, the test fails and
says why, rather than passing without having filled anything.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 400 KB filesystem (tmpfs); its own mount, removed afterwards."""
    yield from mounted_tmpfs(tmp_path / "small", "400k")


def fill(directory: Path) -> Path:
    """Fill the filesystem to the last byte; return the file that holds the space."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(descriptor, b"x" * 1024)
    except OSError:  # ENOSPC: the disk is full
        pass
    finally:
        os.close(descriptor)
    return filler
