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
from hostsmith.actors.proof.loadtest import CallFailed, CycleShape, Recorder, one_cycle
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
    for part in (
        "<svg", "throughput over time", "cycles offered /s", "p50 latency over time",
        "p99 latency over time", "latency distribution", "requestMachines", "no errors",
    ):  # fmt: skip
        assert part in page, part
    # 6 cycles reach no further than the 90th percentile: the axis stops where they do
    assert "90%" in page
    assert "99.9%" not in page
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.slow
def test_refused_requests_are_foreseen_grouped_by_reason_and_shown_in_the_report(
    tmp_path: pathlib.Path,
) -> None:
    """Found by hand: the README's example failed 124 of 140 requestMachines on maxNumber 10,
    the errors said only `http-400`, and the report looked healthy."""
    daemon = Daemon(write_config(tmp_path)).start()
    report = tmp_path / "report.html"
    try:
        result = hostsmith(
            "loadtest", "--workload", "hostfactory", "--target", daemon.url,
            "--concurrency", "2", "--cycles", "1", "--machines", "11",
            "--poll-interval", "0.05", "--report", str(report), "--json",
        )  # fmt: skip
    finally:
        assert daemon.stop() == 0
    assert result.returncode == 0, result.stderr
    warning = " ".join(result.stderr.split())
    assert (
        "warning: template OnDemand-Minimal-Template-VM has 10 machines available, but "
        "2 clients x 11 machines may hold 22 at once" in warning
    )
    outcome = json.loads(result.stdout)
    assert outcome["errors"] == {"http-400": 2}
    (grouped,) = outcome["error_reasons"]
    assert grouped["kind"] == "http-400"
    assert grouped["count"] == 2
    assert grouped["commands"] == ["requestMachines"]
    assert grouped["reason"] == (
        "template OnDemand-Minimal-Template-VM has N of N machines available; cannot provision N"
    )
    assert grouped["example"] == (
        "template OnDemand-Minimal-Template-VM has 10 of 10 machines available; cannot provision 11"
    )
    page = report.read_text()
    assert "2 of 2 calls failed (100%)" in page
    assert "cannot provision 11" in page


def test_an_unknown_template_is_refused_before_the_run(tmp_path: pathlib.Path) -> None:
    result = hostsmith(
        "loadtest", "--workload", "hostfactory", "--in-process",
        "--config", str(write_config(tmp_path)), "--template", "Nope",
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        "--template 'Nope' is not offered by in-process (it offers: "
        "OnDemand-Minimal-Template-VM, Spot-Template-VM)" in " ".join(result.stderr.split())
    )


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
    assert "2.0 s: 0 cycles offered (0.0/s), 0 completed (0.0/s), 0 errors" in " ".join(
        shown.split()
    )


async def test_the_live_display_shows_offered_beside_achieved_and_why_calls_fail(
    autojump_clock: trio.abc.Clock,
) -> None:
    recorder = Recorder()

    asked = iter(range(1, 4))

    async def refusing(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise CallFailed(
            "http-400", f"template T has 0 of 10 machines available; asked {next(asked)}"
        )

    async def answering(command: str, payload: dict[str, Any]) -> dict[str, Any]:
        await trio.sleep(1)
        return {"requestId": "req-1", "requests": [{"status": "complete", "machines": []}]}

    shape = CycleShape(template_id="T", machines=1, poll_interval=1)
    for _ in range(3):
        await one_cycle(recorder, refusing, shape)
    await one_cycle(recorder, answering, shape)
    screen = Console(record=True, width=120)
    screen.print(progress_table(recorder, elapsed=8.0))
    shown = " ".join(screen.export_text().split())
    assert "8.0 s: 4 cycles offered (0.5/s), 1 completed (0.1/s), 3 errors" in shown
    assert "3 x http-400: template T has N of N machines available; asked N" in shown
