"""The `hf-call` and `bulk` benchmark workloads run end to end and report every figure.

They measure wall-clock time, so the tests check only that each figure is
there and counts what it says it counts, never how fast anything was.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.support.daemon import hostsmith

pytestmark = pytest.mark.slow


def test_hf_call_times_each_kind_of_call_the_same_number_of_times() -> None:
    done = hostsmith("loadtest", "--workload", "hf-call", "--runs", "2", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kinds = ("bare_python", "http_round_trip", "daemon_call", "in_process_call")
    for kind in kinds:
        figures = report[kind]
        assert figures["runs"] == 2
        assert 0 < figures["min_ms"] <= figures["p50_ms"] <= figures["p99_ms"]
    ratio = report["daemon_call"]["p50_ms"] / report["bare_python"]["p50_ms"]
    assert report["daemon_call_over_bare_python"] == round(ratio, 2)


def test_bulk_requests_and_returns_every_machine_in_one_call_each() -> None:
    done = hostsmith("loadtest", "--workload", "bulk", "--machines", "25", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["machines"] == 25  # every machine came up, and was handed back
    for call in ("requestMachines", "getRequestStatus", "requestReturnMachines"):
        assert report[f"{call}_ms"] > 0
    # nothing can be complete before the cloud has booted it
    assert report["complete_after_ms"] >= report["cloud_boot_ms"] == 500.0


def test_a_small_burst_through_a_daemon_brings_up_and_returns_every_host_and_plots_it(
    tmp_path: pathlib.Path,
) -> None:
    page = tmp_path / "burst.html"
    done = hostsmith(
        "loadtest", "--workload", "burst", "--hosts", "300", "--hf-poll", "0.5",
        "--boot-time", "0.2", "--senders", "5", "--report", str(page), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    outcome = report["outcome"]
    assert outcome["hosts_requested"] == outcome["hosts_complete"] == 300
    assert outcome["hosts_returned"] == 300
    assert outcome["requests_failed"] == 0
    assert report["daemon_rss_bytes"] > 0
    assert report["store_bytes"] > 0
    assert report["events_per_host"] > 0
    # the daemon's own timing of each call it answered, beside the harness's
    for command, figures in report["calls"].items():
        daemon_side = report["daemon_side"][command]
        assert figures["calls"] - figures["errors"] <= daemon_side["calls"] <= figures["calls"]
        assert 0 < daemon_side["p50_ms_at_most"] <= daemon_side["p99_ms_at_most"]
    text = page.read_text()
    assert "a burst to 300 hosts over 1 templates" in text
    assert "getReturnRequests" in text


def test_the_history_workload_measures_an_aged_store_beside_a_fresh_one(
    tmp_path: pathlib.Path,
) -> None:
    """Issue 22: the report is well formed (its figures come from the benchmark runs)."""
    kept = tmp_path / "aged"
    done = hostsmith(
        "loadtest", "--workload", "history", "--events", "2000", "--runs", "2",
        "--commands", "2000", "--history-dir", str(kept), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["events"] >= 2000  # made through Host Factory's calls
    assert report["machines"] > 0
    assert report["requests"] > 0
    assert report["ageing_s"] > 0
    aged, fresh = report["aged"], report["fresh"]
    assert aged["events"] > fresh["events"] > 0  # the fresh store holds only its own calls
    for figures in (aged, fresh):
        for name in ("store_mb", "start_to_healthy_s", "rss_after_start_mb",
                     "get_request_status_ms", "in_process_call_ms", "counter_commands_per_s"):  # fmt: skip
            assert figures[name] > 0, name
    assert report["ratios"]["start"] == round(
        aged["start_to_healthy_s"] / fresh["start_to_healthy_s"], 3
    )
    assert set(report["ratios"]) == {
        "start", "rss", "in_process_call", "get_request_status", "counter_commit_time"
    }  # fmt: skip
    assert (kept / "history.json").exists()  # kept, for the next run to reuse
