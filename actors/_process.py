"""Process-wide settings for hostsmith's own commands (never for embedders).

The garbage collector: a runtime holds many long-lived objects (actors,
tasks, mailboxes) and makes many short-lived ones per command. With the
default thresholds the cyclic collector runs every 700 allocations and walks
the young generation again and again, which costs about a third of the
throughput. Our commands freeze what start-up built (it is never garbage)
and collect the young generation less often. Reference counting still frees
almost everything at once; only cycles wait a little longer.
"""

from __future__ import annotations

import gc


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
