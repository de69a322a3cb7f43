"""`hostsmith loadtest --workload hostfactory`, in process and against the real daemon.

Both runs are small and bounded (clients x cycles), target only 127.0.0.1,
and check that every cycle ran every call, not how fast: speed is measured
by benchmarks, never by tests.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
import trio
from rich.console import Console

from hostsmith.actors.commands._proof import progress_table
from hostsmith.actors.proof.loadtest import Recorder
from tests.support.daemon import Daemon, hostsmith, write_config

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


@pytest.mark.slow
def test_open_loop_offers_every_cycle_and_writes_reports(tmp_path: pathlib.Path) -> None:
    config = str(write_config(tmp_path))
    for report in (tmp_path / "report.html", tmp_path / "report.png"):
        result = hostsmith(
            "loadtest", "--workload", "hostfactory", "--in-process", "--config", config,
            "--concurrency", "3", "--cycles", "2", "--rate", "20", "--poll-interval", "0.05",
            "--report", str(report), "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert (outcome["mode"], outcome["rate"], outcome["cycles"]) == ("open", 20.0, 6)
        assert outcome["cycle"]["calls"] == 6
        assert outcome["errors"] == {}
        assert f"wrote {report}" in result.stderr
    page = (tmp_path / "report.html").read_text()
    for part in ("<svg", "latency over time", "latency distribution", "requestMachines"):
        assert part in page
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_report_must_be_html_or_png(tmp_path: pathlib.Path) -> None:
    result = hostsmith(
        "loadtest", "--workload", "hostfactory", "--in-process",
        "--report", str(tmp_path / "report.txt"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "the file must end in .html or .png" in result.stderr
    assert not (tmp_path / "report.txt").exists()


def test_rate_and_duration_must_be_positive() -> None:
    for option in ("--rate", "--duration"):
        result = hostsmith("loadtest", "--workload", "hostfactory", "--in-process", option, "0")
        assert result.returncode == 2
        assert f"{option} must be above 0, not 0" in result.stderr


async def test_the_live_display_shows_each_call(autojump_clock: trio.abc.Clock) -> None:
    recorder = Recorder()

    async def answering(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(0.25)
        return {"requestId": "req-1"}

    await recorder.timed(answering, "requestMachines", {})
    screen = Console(record=True, width=100)
    screen.print(progress_table(recorder, elapsed=2.0))
    shown = screen.export_text()
    assert "requestMachines" in shown
    p99 = recorder.figures()["requestMachines"].p99_ms
    assert 250 <= p99 < 251  # the one call took 0.25 s of virtual time (HDR: 3 digits)
    assert f"{p99:.2f}" in shown
    assert "2.0 s: 0 cycles" in shown
