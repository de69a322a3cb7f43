"""The crash suite with a small N: the real daemon, real load over loopback, real SIGKILLs.

`just crash` runs it with 50 kills for the closing note; here a few kills
prove the suite and the daemon both hold up. The suite's checks read the
log after every kill (actors/_invariants.py); this test reads its report.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3

import pytest

from tests.support.daemon import hostsmith

KILLS = 4


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_across_kills(tmp_path: pathlib.Path) -> None:
    result = hostsmith(
        "crash", "--kills", str(KILLS), "--seed", "7", "--workdir", str(tmp_path), "--json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["kills"] == KILLS
    assert report["acknowledged"] > 0
    assert (report["lost"], report["duplicate_events"], report["duplicate_machines"]) == (0, 0, 0)
    assert report["unfinished"] == 0
    assert report["violations"] == []
    # the progress lines name every kill, and the load really ran between them
    assert result.stderr.count("checks clean") == KILLS
    with sqlite3.connect(tmp_path / "data" / "events.db") as db:
        (opened,) = db.execute(
            "SELECT count(*) FROM events WHERE type IN ('AcquireOpened', 'ReturnOpened')"
        ).fetchone()
    assert opened >= report["acknowledged"]


def test_the_suite_needs_at_least_one_kill() -> None:
    result = hostsmith("crash", "--kills", "0")
    assert result.returncode != 0
    assert "kills" in result.stderr
