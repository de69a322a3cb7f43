"""Soak on virtual time: hours of Host Factory churn, and memory that does not grow with them.

The run is small (4 simulated hours, 100 hosts, 10 clients: seconds of real
time) and repeatable (seeded workload, MockClock, SQLite on the trio thread).
`hostsmith soak` runs the full day over 1,000 hosts for the closing note.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from hostsmith.actors.proof import soak
from tests.support.daemon import hostsmith

HOURS, HOSTS, CLIENTS = 4, 100, 10


@pytest.mark.slow
def test_memory_stays_flat_while_hosts_churn(tmp_path: pathlib.Path) -> None:
    report = soak(tmp_path, hours=HOURS, hosts=HOSTS, clients=CLIENTS)
    first, *_, last = report.samples
    assert [s.hour for s in report.samples] == list(range(1, HOURS + 1))
    assert report.failed_calls == 0
    # churn happened: every client went round several times
    assert report.cycles >= CLIENTS * 2
    # idle aggregates left memory: far fewer resident than were ever touched
    assert report.passivated > report.cycles
    assert last.resident_aggregates <= HOSTS
    # the projections hold about an hour of requests, not the whole history
    assert last.requests_in_projection <= 2 * max(first.requests_in_projection, CLIENTS)
    assert last.requests_in_projection < report.cycles
    # and Python's heap is no bigger at the end than after the first hour
    assert last.allocated_blocks <= first.allocated_blocks * 1.1


def test_the_soak_command_reports_every_hour() -> None:
    result = hostsmith("soak", "--hours", "2", "--hosts", "20", "--clients", "4", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [sample["hour"] for sample in report["samples"]] == [1, 2]
    assert report["hosts"] == 20
    assert all(sample["rss_mb"] > 0 for sample in report["samples"])
