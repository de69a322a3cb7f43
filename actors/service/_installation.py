"""The installation's id: named once, in the log, and carried on every cloud resource.

Two hostsmith installations may share a cloud account. Each tags what it
launches with its own id (`hostsmith:installation`), and reconciles only
what carries that tag, so neither ever takes the other's machines for
orphans. The id lives in the log itself (the `installation` stream, one
event), not in a file beside it: daemons sharing one store are one
installation, and a backup, a restore or a migration carries it along.
The first process to open a store names it; a race between two is settled
by the stream's expected version, and the loser reads the winner's name.
"""

from __future__ import annotations

import secrets

import msgspec

from hostsmith.runtime import Appended, AppendRequest, EventStore, JournalError, NewEvent

STREAM = "installation"


class InstallationNamed(msgspec.Struct, frozen=True):
    installation_id: str


async def installation_id(store: EventStore, at: float) -> str:
    """This store's installation id, naming it now if it has none."""
    for _ in range(2):
        named = await store.read(STREAM)
        if named:
            return msgspec.json.decode(named[0].data, type=InstallationNamed).installation_id
        candidate = f"hs-{secrets.token_hex(6)}"
        event = NewEvent(
            event_id=f"installation-{candidate}",
            type="InstallationNamed",
            data=msgspec.json.encode(InstallationNamed(candidate)),
            recorded_at=at,
        )
        (outcome,) = await store.append_batch([AppendRequest(STREAM, 0, (event,))])
        if isinstance(outcome, Appended):
            return candidate
    raise JournalError(
        f"the store holds no {STREAM!r} event, yet refused to take one: check the store"
    )
