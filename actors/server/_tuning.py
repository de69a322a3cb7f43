"""Process-wide settings for hostsmith's own commands (never for embedders).

The garbage collector: a runtime holds many long-lived objects (actors,
tasks, mailboxes) and makes many short-lived ones per command. With the
default thresholds the cyclic collector runs every 700 allocations and walks
the young generation again and again, which costs about a third of the
throughput. Our commands freeze what start-up built (it is never garbage)
and collect the young generation less often. Reference counting still frees
almost everything at once; only cycles wait a little longer. The middle
generation is collected after every 5 young collections, not 20: at 20 it
grew to a million objects during a 50,000-host burst, and collecting it
stopped the daemon for up to 379 ms (a Host Factory call's p99 went from
54 ms to 401 ms); at 5 the longest pause was 94 ms, and the counter
benchmark kept its speed.

The GIL switch interval: the SQLite store's thread needs the GIL for a
moment between statements, while the trio thread is busy answering the
previous batch's callers (the journal overlaps the two). With the default
5 ms interval each of those moments can cost the store thread up to 5 ms of
waiting. At 0.5 ms the counter benchmark committed about 20% more commands
per second; at 0.1 ms about 8% more again (interleaved runs, same session),
with the p99 at concurrency 100 unchanged. Below that it gained nothing.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL = 0.0001


def tune_process() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 5, 100)
    sys.setswitchinterval(SWITCH_INTERVAL)
