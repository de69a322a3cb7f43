"""`hostsmith loadtest --workload hostfactory`, in process and against the real daemon.

Both runs are small and bounded (clients x cycles), target only 127.0.0.1,
and check that every cycle ran every call, not how fast: speed is measured
by benchmarks, never by tests.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.daemon import Daemon, hostsmith, write_config

CLIENTS, CYCLES = 3, 2


def run(*where: str) -> dict[str, object]:
    result = hostsmith(
        "loadtest", "--workload", "hostfactory", *where, "--concurrency", str(CLIENTS),
        "--cycles", str(CYCLES), "--poll-interval", "0.05", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def check(report: dict[str, object], target: str) -> None:
    cycles = CLIENTS * CYCLES
    assert (report["target"], report["clients"], report["cycles"]) == (target, CLIENTS, cycles)
    assert report["errors"] == {}
    calls = report["calls"]
    assert isinstance(calls, dict)
    for command in ("requestMachines", "requestReturnMachines", "getReturnRequests"):
        assert calls[command]["calls"] == cycles, command
        assert calls[command]["errors"] == 0
    # at least one status poll for each request and each return
    assert calls["getRequestStatus"]["calls"] >= 2 * cycles
    for figures in calls.values():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]


@pytest.mark.slow
def test_host_factory_cycles_in_process(tmp_path: pathlib.Path) -> None:
    check(run("--in-process", "--config", str(write_config(tmp_path))), "in-process")


@pytest.mark.slow
def test_host_factory_cycles_against_the_daemon(tmp_path: pathlib.Path) -> None:
    daemon = Daemon(write_config(tmp_path)).start()
    try:
        check(run("--target", daemon.url), daemon.url)
    finally:
        assert daemon.stop() == 0


def test_the_workload_needs_one_target() -> None:
    for where in ((), ("--in-process", "--target", "http://127.0.0.1:1")):
        result = hostsmith("loadtest", "--workload", "hostfactory", *where)
        assert result.returncode == 2
        assert "needs exactly one of --target URL or --in-process" in result.stderr
