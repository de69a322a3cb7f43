"""Finding drift, pure: which machines are orphans and which are ghosts, and which are neither."""

from __future__ import annotations

from hostsmith.actors.hostfactory import (
    RECONCILER,
    CloudMachine,
    DriftActedOn,
    DriftCleared,
    DriftFound,
    Finding,
    LiveMachine,
    RecordAction,
    RecordFindings,
    find_drift,
)

NOW = 1_767_225_600.0


def cloud(machine_id: str, request_id: str, state: str = "running") -> CloudMachine:
    return CloudMachine(
        machine_id=machine_id,
        name=f"{machine_id}.internal",
        request_id=request_id,
        state=state,  # type: ignore[arg-type]
        launched_at=NOW - 3600,
    )


def live(machine_id: str, request_id: str, launched_at: float = NOW - 3600) -> LiveMachine:
    return LiveMachine(
        machine_id=machine_id,
        name=f"{machine_id}.internal",
        request_id=request_id,
        launched_at=launched_at,
    )


def test_a_running_machine_no_live_request_holds_is_an_orphan() -> None:
    found = find_drift([cloud("i-1", "req-gone")], {}, set(), NOW)
    assert [(f.kind, f.machine_id, f.request_id) for f in found] == [("orphan", "i-1", "req-gone")]
    assert "no live request holds it" in found[0].detail


def test_a_machine_of_a_request_still_open_is_not_an_orphan_yet() -> None:
    assert find_drift([cloud("i-1", "req-open")], {}, {"req-open"}, NOW) == []


def test_machines_on_their_way_out_are_not_orphans() -> None:
    leaving = [cloud("i-1", "req-a", "shutting-down"), cloud("i-2", "req-a", "terminated")]
    assert find_drift(leaving, {}, set(), NOW) == []


def test_a_live_machine_the_cloud_reports_terminated_or_no_longer_lists_is_a_ghost() -> None:
    held = {"i-1": live("i-1", "req-a"), "i-2": live("i-2", "req-a")}
    found = find_drift([cloud("i-1", "req-a", "terminated")], held, set(), NOW)
    assert sorted((f.kind, f.machine_id) for f in found) == [("ghost", "i-1"), ("ghost", "i-2")]
    details = {f.machine_id: f.detail for f in found}
    assert details["i-1"].startswith("the cloud reports it terminated")
    assert details["i-2"].startswith("the cloud no longer lists it")


def test_a_machine_launched_as_the_listing_began_is_not_a_ghost() -> None:
    held = {"i-1": live("i-1", "req-a", launched_at=NOW - 5)}
    assert find_drift([], held, set(), NOW) == []


def test_machines_where_cloud_and_log_agree_are_no_finding() -> None:
    assert find_drift([cloud("i-1", "req-a")], {"i-1": live("i-1", "req-a")}, set(), NOW) == []


def orphan(machine_id: str) -> Finding:
    return Finding(kind="orphan", machine_id=machine_id, name="", request_id="req-x", detail="")


def test_the_stream_records_a_finding_once_clears_it_when_it_is_gone_and_counts_actions() -> None:
    state = RECONCILER.initial("sim")
    first = RECONCILER.decide(state, RecordFindings((orphan("i-1"),), NOW))
    assert first == [DriftFound(orphan("i-1"), NOW)]
    for event in first:
        state = RECONCILER.evolve(state, event)
    # the same finding again: nothing new, and it keeps its first sighting
    assert RECONCILER.decide(state, RecordFindings((orphan("i-1"),), NOW + 60)) == []
    assert state.open["i-1"].first_seen == NOW
    # gone by itself: cleared
    assert RECONCILER.decide(state, RecordFindings((), NOW + 120)) == [
        DriftCleared("i-1", NOW + 120)
    ]
    acted = RECONCILER.decide(state, RecordAction(machine_id="i-1", action="terminated", at=NOW))
    assert acted == [DriftActedOn(machine_id="i-1", action="terminated", at=NOW)]
    state = RECONCILER.evolve(state, acted[0])
    assert state.open == {}
    assert state.acted == 1
