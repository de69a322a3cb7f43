"""Unique ids, cheaply.

A command id or correlation id is needed for every message, so minting one
must cost far less than the message itself. A `uuid4()` per message reads the
OS random source each time; instead each process draws one random prefix and
counts from it. Ids stay unique across processes (the prefix carries 64 random
bits) and sort by creation within one process, which helps when reading logs.
"""

from __future__ import annotations

import itertools
import secrets

_PREFIX = secrets.token_hex(8)
_counter = itertools.count(1)


def new_id() -> str:
    """A process-unique, globally collision-resistant id such as ``'9f3c…-42'``."""
    return f"{_PREFIX}-{next(_counter)}"
