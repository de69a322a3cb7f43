"""Load generators: the engine's counter, a store's raw appends, replay, and Host Factory's cycle.

Clients are actors on hostsmith's own runtime. Latency is recorded in HDR
histograms per call; an open loop is timed from each cycle's due moment,
so a slow server cannot hide its queueing (no coordinated omission).
Reports are JSON for scripts, a live table for people, and an HTML or PNG
plot.
"""

from __future__ import annotations

from hostsmith.actors.proof.loadtest._appends import (
    run_appends as run_appends,
)
from hostsmith.actors.proof.loadtest._burst import (
    BurstOutcome as BurstOutcome,
    BurstPlan as BurstPlan,
    BurstReport as BurstReport,
    request_sizes as request_sizes,
    run_burst as run_burst,
    run_burst_on_daemon as run_burst_on_daemon,
)
from hostsmith.actors.proof.loadtest._counter import (
    CounterLoad as CounterLoad,
    LoopComparison as LoopComparison,
    compare_loops as compare_loops,
    resident_set_bytes as resident_set_bytes,
    run_counter as run_counter,
    run_resident_memory as run_resident_memory,
)
from hostsmith.actors.proof.loadtest._counter_aggregate import (
    COUNTER as COUNTER,
    Counter as Counter,
    Increment as Increment,
)
from hostsmith.actors.proof.loadtest._daemon import (
    free_port as free_port,
    templates_with_room as templates_with_room,
)
from hostsmith.actors.proof.loadtest._hf_call import (
    BulkReport as BulkReport,
    HfCallReport as HfCallReport,
    run_bulk as run_bulk,
    run_hf_call as run_hf_call,
)
from hostsmith.actors.proof.loadtest._history import (
    HistoryFigures as HistoryFigures,
    HistoryReport as HistoryReport,
    HistoryShape as HistoryShape,
    run_history as run_history,
)
from hostsmith.actors.proof.loadtest._hostfactory import (
    CallFailed as CallFailed,
    CycleShape as CycleShape,
    ErrorReason as ErrorReason,
    HostFactoryCall as HostFactoryCall,
    HostFactoryReport as HostFactoryReport,
    Offer as Offer,
    Recorder as Recorder,
    calls_into as calls_into,
    check_capacity as check_capacity,
    host_factory_client as host_factory_client,
    one_cycle as one_cycle,
    over_http as over_http,
    poll_status as poll_status,
    run_hostfactory as run_hostfactory,
)
from hostsmith.actors.proof.loadtest._peer import (
    PeerReport as PeerReport,
    run_peer_eventsourcing as run_peer_eventsourcing,
)
from hostsmith.actors.proof.loadtest._replay import (
    run_activation as run_activation,
    run_replay as run_replay,
)
from hostsmith.actors.proof.loadtest._report import (
    ReportError as ReportError,
    check_report_path as check_report_path,
    write_report as write_report,
)

__all__ = [
    "COUNTER",
    "BulkReport",
    "BurstOutcome",
    "BurstPlan",
    "BurstReport",
    "CallFailed",
    "Counter",
    "CounterLoad",
    "CycleShape",
    "ErrorReason",
    "HfCallReport",
    "HistoryFigures",
    "HistoryReport",
    "HistoryShape",
    "HostFactoryCall",
    "HostFactoryReport",
    "Increment",
    "LoopComparison",
    "Offer",
    "PeerReport",
    "Recorder",
    "ReportError",
    "calls_into",
    "check_capacity",
    "check_report_path",
    "compare_loops",
    "free_port",
    "host_factory_client",
    "one_cycle",
    "over_http",
    "poll_status",
    "request_sizes",
    "resident_set_bytes",
    "run_activation",
    "run_appends",
    "run_bulk",
    "run_burst",
    "run_burst_on_daemon",
    "run_counter",
    "run_hf_call",
    "run_history",
    "run_hostfactory",
    "run_peer_eventsourcing",
    "run_replay",
    "run_resident_memory",
    "templates_with_room",
    "write_report",
]
