"""The `hostsmith` command, run as a user runs it: a real process, real output."""

from __future__ import annotations

import json

import pytest
import trio

from hostsmith.stores import open_store
from tests.support.daemon import hostsmith


def test_loadtest_prints_one_json_object_with_the_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = hostsmith(
        "loadtest",
        "--workload",
        "counter",
        "--store",
        f"sqlite://{tmp_path}/b.db",
        "--aggregates",
        "20",
        "--commands",
        "400",
        "--concurrency",
        "10",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["commands"] == 400
    assert report["aggregates"] == 20
    expected = {
        "commands_per_s",
        "p50_ms",
        "p99_ms",
        "mean_batch_size",
        "baseline_ask_per_s",
        "ratio_to_baseline",
    }
    assert expected <= set(report)
    assert report["commands_per_s"] > 0
    assert 1 <= report["mean_batch_size"] <= 10
    assert report["ratio_to_baseline"] == round(
        report["commands_per_s"] / report["baseline_ask_per_s"], 3
    )


def test_the_counter_on_both_loops_runs_each_on_a_store_of_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = hostsmith(
        *("loadtest", "--workload", "counter", "--loop", "both"),
        *("--store", f"sqlite://{tmp_path}/b.db", "--aggregates", "20", "--commands", "400"),
        *("--concurrency", "10", "--json"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["trio"]["loop"], report["asyncio"]["loop"]) == ("trio", "asyncio")
    assert report["trio"]["store"] == f"sqlite://{tmp_path}/b.trio.db"
    assert report["asyncio"]["store"] == f"sqlite://{tmp_path}/b.asyncio.db"
    assert report["trio"]["commands"] == report["asyncio"]["commands"] == 400
    assert report["asyncio_over_trio"] == round(
        report["asyncio"]["commands_per_s"] / report["trio"]["commands_per_s"], 3
    )

    async def events_in(name: str) -> int:
        async with open_store(f"sqlite://{tmp_path}/{name}") as store:
            return len(await store.read_all(0, 10_000))

    assert [trio.run(events_in, name) for name in ("b.trio.db", "b.asyncio.db")] == [400, 400]


def test_resident_memory_reports_bytes_per_aggregate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = hostsmith(
        "loadtest",
        "--workload",
        "resident-memory",
        "--store",
        f"sqlite://{tmp_path}/m.db",
        "--aggregates",
        "500",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["aggregates"] == 500
    assert report["python_bytes_per_aggregate"] > 0


def test_a_bad_store_url_is_one_line_without_a_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    result = hostsmith("loadtest", "--store", f"sqlite://{notes}", "--commands", "10")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {notes} is not a SQLite database (it starts with b'not a database'); it was left untouched: point the store URL at a new or hostsmith file"
    ]
    assert notes.read_text() == "not a database"


def test_bad_numbers_are_named() -> None:
    result = hostsmith("loadtest", "--commands", "-5")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --commands must be at least 1, not -5"


def test_help_describes_the_commands() -> None:
    result = hostsmith("--help")
    assert result.returncode == 0
    assert "loadtest" in result.stdout


def test_version_prints_the_installed_version() -> None:
    result = hostsmith("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("hostsmith ")


def test_replay_and_activation_workloads_report_their_rates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    replay = hostsmith(
        "loadtest",
        "--workload",
        "replay",
        "--store",
        f"json://{tmp_path}/j",
        "--events",
        "2000",
        "--aggregates",
        "10",
        "--json",
    )
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert report["events"] == 2000
    assert report["replay_events_per_s"] > 0
    assert report["append_events_per_s"] > 0

    activation = hostsmith(
        "loadtest",
        "--workload",
        "activation",
        "--store",
        f"sqlite://{tmp_path}/a.db",
        "--events",
        "500",
        "--json",
    )
    assert activation.returncode == 0, activation.stderr
    timing = json.loads(activation.stdout)
    assert timing["without_snapshot_ms"] > 0
    assert timing["with_snapshot_ms"] > 0

    again = hostsmith(
        "loadtest", "--workload", "replay", "--store", f"json://{tmp_path}/j", "--events", "10"
    )
    assert again.returncode == 2
    assert "is not empty: the replay workload needs a new store" in again.stderr


def test_the_appends_workload_writes_every_event_both_ways(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite://{tmp_path}/appends.db"
    result = hostsmith(
        "loadtest", "--workload", "appends", "--store", url, "--events", "300", "--batch", "25",
        "--aggregates", "7", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["events"], report["batch"]) == (300, 25)
    assert report["unbatched_appends_per_s"] > 0
    assert report["batched_appends_per_s"] > 0

    async def count() -> int:
        async with open_store(url) as store:
            return len(await store.read_all(0, 10_000))

    assert trio.run(count) == 600  # 300 one at a time, then the same 300 in batches


@pytest.mark.slow
def test_the_peer_workload_runs_eventsourcing_on_the_same_counter_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = hostsmith(
        "loadtest",
        "--workload",
        "peer-eventsourcing",
        "--store",
        f"sqlite://{tmp_path}",
        "--aggregates",
        "10",
        "--commands",
        "50",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["peer"], report["aggregates"], report["commands"]) == ("eventsourcing", 10, 50)
    assert report["commands_per_s"] > 0
    assert (tmp_path / "peer-eventsourcing.db").exists()
