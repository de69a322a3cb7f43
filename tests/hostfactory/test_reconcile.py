"""Finding drift, pure: which machines and groups are adrift, how, and which are not."""

from __future__ import annotations

from collections.abc import Sequence

from hostsmith.actors.hostfactory import (
    RECONCILER,
    CloudGroup,
    CloudMachine,
    DriftActedOn,
    DriftCleared,
    DriftFound,
    Finding,
    LiveMachine,
    LogView,
    RecordAction,
    RecordFindings,
    find_drift,
)

NOW = 1_767_225_600.0
PENDING_TIMEOUT = 180.0


def cloud(
    machine_id: str,
    request_id: str,
    state: str = "running",
    launched_at: float = NOW - 3600,
    instance_type: str = "",
) -> CloudMachine:
    return CloudMachine(
        machine_id=machine_id,
        name=f"{machine_id}.internal",
        request_id=request_id,
        state=state,  # type: ignore[arg-type]
        launched_at=launched_at,
        instance_type=instance_type,
    )


def live(machine_id: str, request_id: str, launched_at: float = NOW - 3600) -> LiveMachine:
    return LiveMachine(
        machine_id=machine_id,
        name=f"{machine_id}.internal",
        request_id=request_id,
        launched_at=launched_at,
    )


def fleet(
    request_id: str,
    target: float,
    *,
    maintains: bool = True,
    weights: dict[str, float] | None = None,
    created_at: float = NOW - 3600,
) -> CloudGroup:
    return CloudGroup(
        group_id=f"fleet-{request_id}",
        kind="ec2-fleet",
        request_id=request_id,
        created_at=created_at,
        maintains=maintains,
        target=target,
        weights=weights or {},
    )


def drift(
    machines: Sequence[CloudMachine],
    held: Sequence[LiveMachine] = (),
    open_requests: dict[str, frozenset[str]] | None = None,
    groups: Sequence[CloudGroup] = (),
) -> list[Finding]:
    log = LogView(live={m.machine_id: m for m in held}, open_requests=open_requests or {})
    return find_drift(machines, groups, log, listed_at=NOW, pending_timeout=PENDING_TIMEOUT)


def kinds(found: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.kind, f.resource_id) for f in found)


def test_a_running_machine_no_live_request_holds_is_an_orphan() -> None:
    found = drift([cloud("i-1", "req-gone")])
    assert [(f.kind, f.resource_id, f.request_id) for f in found] == [("orphan", "i-1", "req-gone")]
    assert "no live request holds it" in found[0].detail


def test_a_machine_of_a_request_still_open_is_not_an_orphan_yet() -> None:
    assert drift([cloud("i-1", "req-open")], open_requests={"req-open": frozenset()}) == []


def test_machines_on_their_way_out_are_not_orphans() -> None:
    assert (
        drift([cloud("i-1", "req-a", "shutting-down"), cloud("i-2", "req-a", "terminated")]) == []
    )


def test_a_live_machine_the_cloud_reports_terminated_or_no_longer_lists_is_a_ghost() -> None:
    found = drift(
        [cloud("i-1", "req-a", "terminated")], [live("i-1", "req-a"), live("i-2", "req-a")]
    )
    assert kinds(found) == [("ghost", "i-1"), ("ghost", "i-2")]
    details = {f.resource_id: f.detail for f in found}
    assert details["i-1"].startswith("the cloud reports it terminated")
    assert details["i-2"].startswith("the cloud no longer lists it")


def test_a_machine_launched_as_the_listing_began_is_not_a_ghost() -> None:
    assert drift([], [live("i-1", "req-a", launched_at=NOW - 5)]) == []


def test_machines_where_cloud_and_log_agree_are_no_finding() -> None:
    assert drift([cloud("i-1", "req-a")], [live("i-1", "req-a")]) == []


def test_a_machine_of_an_open_request_pending_past_the_timeout_is_stuck() -> None:
    booting = cloud("i-1", "req-a", "pending", launched_at=NOW - PENDING_TIMEOUT + 1)
    stuck = cloud("i-2", "req-a", "pending", launched_at=NOW - PENDING_TIMEOUT - 1)
    held = [live("i-1", "req-a", booting.launched_at), live("i-2", "req-a", stuck.launched_at)]
    found = drift([booting, stuck], held, {"req-a": frozenset({"i-1", "i-2"})})
    assert kinds(found) == [("stuck", "i-2")]
    assert "pending 181 s" in found[0].detail
    assert "pending_timeout is 180 s" in found[0].detail


def test_a_pending_machine_its_request_has_not_recorded_is_left_to_the_driver() -> None:
    unrecorded = cloud("i-1", "req-a", "pending", launched_at=NOW - 3600)
    assert drift([unrecorded], open_requests={"req-a": frozenset()}) == []


def test_a_group_of_a_settled_request_with_nothing_live_is_a_leak() -> None:
    left = fleet("req-done", target=2)
    forgotten = CloudGroup(
        group_id="lt-1", kind="launch-template", request_id="req-lost", created_at=NOW - 3600
    )
    found = drift([], groups=[left, forgotten])
    assert kinds(found) == [("leak", "fleet-req-done"), ("leak", "lt-1")]
    assert "left behind" in found[0].detail


def test_groups_of_open_requests_and_groups_just_made_are_no_leak() -> None:
    still_open = fleet("req-open", target=2)
    just_made = fleet("req-new", target=1, created_at=NOW - 5)
    assert drift([], open_requests={"req-open": frozenset()}, groups=[still_open, just_made]) == []


def test_a_maintain_fleet_keeping_more_than_the_log_holds_is_fleet_drift() -> None:
    machines = [cloud("i-1", "req-a"), cloud("i-2", "req-a"), cloud("i-3", "req-a")]
    found = drift(machines, [live("i-1", "req-a")], groups=[fleet("req-a", target=3)])
    fleet_drift = [f for f in found if f.kind == "fleet"]
    assert [(f.resource_id, f.count) for f in fleet_drift] == [("fleet-req-a", 1.0)]
    # the machines it added back are orphans, left to the orphans' rule
    assert kinds([f for f in found if f.kind != "fleet"]) == [("orphan", "i-2"), ("orphan", "i-3")]


def test_fleet_drift_counts_instances_by_their_weight_not_by_capacity_units() -> None:
    weights = {"m5.large": 1.0, "m5.2xlarge": 4.0}
    machines = [
        cloud("i-1", "req-a", instance_type="m5.2xlarge"),
        cloud("i-2", "req-a", instance_type="m5.large"),
    ]
    held = [live("i-1", "req-a"), live("i-2", "req-a")]
    # two instances are five units: a target of 5 is right, though it is not 2
    assert drift(machines, held, groups=[fleet("req-a", target=5, weights=weights)]) == []
    found = drift(machines, held[:1], groups=[fleet("req-a", target=5, weights=weights)])
    assert [(f.kind, f.count) for f in found if f.kind == "fleet"] == [("fleet", 4.0)]


def test_a_fleet_that_keeps_no_count_is_never_fleet_drift() -> None:
    once = fleet("req-a", target=3, maintains=False)
    assert drift([cloud("i-1", "req-a")], [live("i-1", "req-a")], groups=[once]) == []


def orphan(machine_id: str) -> Finding:
    return Finding(kind="orphan", resource_id=machine_id, name="", request_id="req-x", detail="")


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
    acted = RECONCILER.decide(state, RecordAction(resource_id="i-1", action="terminated", at=NOW))
    assert acted == [DriftActedOn(resource_id="i-1", action="terminated", at=NOW)]
    state = RECONCILER.evolve(state, acted[0])
    assert state.open == {}
    assert state.acted == 1
