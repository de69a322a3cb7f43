"""`sim`: a simulated cloud, realistic enough to test against and deterministic under a seed.

It has what a real cloud has that matters to hostsmith: calls take time,
machines take time to boot and to shut down, capacity runs out (so requests
can be partly fulfilled), calls fail now and then with throttling errors,
spot machines are reclaimed with a notice, a few launches never finish
booting (`stuck_rate`), and a template with `fleetType` `maintain`
launches into a fleet that keeps a target count, as EC2's maintain fleets
do: terminating a machine through the provider lowers the target (the
fleet is deleted when it has none left), and a fleet can be made to add
machines back from outside (`readd_outside`), the drift ORB's users hit.

Why it is built this way:
- Its cloud state lives in a SQLite file in the data dir, not in memory, so
  separate processes (a daemon restarted after a crash, the CLI running in
  process) see one cloud, as they would a real one.
- Every random choice is drawn from a hash of the seed and the thing being
  decided (the request id, the machine id, the call and its attempt), never
  from a shared random stream, so the outcome does not depend on how
  concurrent calls happen to interleave.
- Time comes from the clock it is given (epoch seconds): virtual in tests,
  the wall clock in the daemon. Machine states are computed from stored
  timestamps, so nothing needs to tick. Its queries run in trio's thread
  (they take microseconds), so virtual time cannot run ahead of them.
- Provisioning is idempotent per request id, like a client token: a repeat
  returns the first call's machines and creates nothing.
- A machine that has been gone for `forget_after` seconds is forgotten, as
  EC2 forgets a terminated instance after about an hour: what a launch, a
  listing or a look at the spot notices costs follows the machines in
  play, not every machine the cloud ever ran.
"""

from __future__ import annotations

import hashlib
import math
import pathlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from hostsmith.actors.errors import PermanentProviderError, TransientProviderError
from hostsmith.actors.hostfactory import (
    CloudGroup,
    CloudMachine,
    Machine,
    MachineState,
    StateChange,
    Template,
)
from hostsmith.actors.providers import ProviderContext, Provisioned, ReclaimNotice
from hostsmith.actors.providers.sim._settings import SimSettings

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    machine_id   TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    name         TEXT NOT NULL,
    private_ip   TEXT NOT NULL,
    spot         INTEGER NOT NULL,
    launched_at  REAL NOT NULL,
    ready_at     REAL NOT NULL,
    terminate_at REAL,
    reclaim_at   REAL,
    installation TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instances_by_token ON instances (token);
CREATE INDEX IF NOT EXISTS instances_by_address ON instances (private_ip);
CREATE TABLE IF NOT EXISTS fleets (
    fleet_id     TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    spot         INTEGER NOT NULL,
    target       INTEGER NOT NULL,
    created_at   REAL NOT NULL,
    installation TEXT NOT NULL
);
"""


class SimProvider:
    name = "sim"

    def __init__(
        self,
        path: pathlib.Path,
        settings: SimSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        installation_id: str = "",
    ) -> None:
        self.path = path
        self.settings = settings or SimSettings()
        self.clock = clock
        self.installation_id = installation_id
        """The tag on every machine this provider launches (`inventory` lists only those)."""
        self.calls = 0
        self._forgotten_at = -math.inf
        """When gone machines were last forgotten (at most every tenth of `forget_after`)."""
        self._attempts: dict[tuple[str, str], int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(instances)")}
        if "installation" not in columns:  # a cloud file from before installations were tagged
            self._db.execute(
                "ALTER TABLE instances ADD COLUMN installation TEXT NOT NULL DEFAULT ''"
            )

    def close(self) -> None:
        self._db.close()

    # -- the provider protocol -----------------------------------------------

    async def provision(
        self, request_id: str, template: Template, count: int, *, launch: int = 0
    ) -> Provisioned:
        token = request_id if launch == 0 else f"{request_id}/{launch}"
        await self._call("provision", token)
        image = template.image_id or ""
        if image.startswith("ami-bad"):
            raise PermanentProviderError(
                f"InvalidAMIID.NotFound: The image id '[{image}]' does not exist"
            )
        machines = await self._thread(self._provision, token, template, count, self.clock())
        if not machines:
            raise TransientProviderError(
                "InsufficientInstanceCapacity: the simulated cloud has no capacity left"
            )
        return Provisioned(tuple(machines))

    async def describe(self, machine_ids: Sequence[str]) -> list[StateChange]:
        await self._call("describe", ",".join(machine_ids))
        return await self._thread(self._describe, list(machine_ids), self.clock())

    async def terminate(self, machine_ids: Sequence[str]) -> None:
        await self._call("terminate", ",".join(machine_ids))
        await self._thread(self._terminate, list(machine_ids), self.clock(), True)

    async def check_access(self) -> None:
        """The simulated cloud needs no credentials."""

    async def reclaim_notices(self) -> list[ReclaimNotice]:
        await self._call("reclaim_notices", "")
        return await self._thread(self._reclaim_notices, self.clock())

    async def inventory(self) -> list[CloudMachine]:
        await self._call("inventory", "")
        return await self._thread(self._inventory, self.clock())

    async def groups(self) -> list[CloudGroup]:
        await self._call("groups", "")
        return await self._thread(self._groups)

    async def delete_group(self, group: CloudGroup) -> None:
        """Delete the fleet; its machines keep running (they are the orphans' rule's)."""
        await self._call("delete_group", group.group_id)
        await self._thread(
            self._db.execute, "DELETE FROM fleets WHERE fleet_id = ?", (group.group_id,)
        )

    async def resize_group(self, group: CloudGroup, target: float) -> None:
        """Set the fleet's target; it terminates nothing (EC2's `no-termination`)."""
        await self._call("resize_group", group.group_id)
        await self._thread(
            self._db.execute,
            "UPDATE fleets SET target = ? WHERE fleet_id = ?",
            (round(target), group.group_id),
        )

    # -- drift: what happens to a real cloud behind hostsmith's back ------------

    def terminate_outside(self, machine_ids: Sequence[str]) -> None:
        """Terminate machines as an admin in the cloud's console would: no call of ours,
        and no fleet's target lowered."""
        self._terminate(list(machine_ids), self.clock(), release=False)

    def launch_outside(self, request_id: str, template: Template, count: int) -> list[str]:
        """Launch machines tagged as ours for `request_id` that the log never hears of
        (a data dir lost after the launch), in a fleet if the template keeps one; their ids."""
        return [m.machine_id for m in self._provision(request_id, template, count, self.clock())]

    def stick_outside(self, machine_ids: Sequence[str]) -> None:
        """These machines never finish booting, as a launch stuck in the cloud does."""
        marks = ",".join("?" * len(machine_ids))
        self._db.execute(
            f"UPDATE instances SET ready_at = ? WHERE machine_id IN ({marks})",
            [math.inf, *machine_ids],
        )

    def readd_outside(self, request_id: str, count: int) -> list[str]:
        """The request's fleet adds `count` machines back and raises its target to keep
        them, as a maintain fleet whose lowering was lost does; their ids."""
        db, now = self._db, self.clock()
        fleet = db.execute(
            "SELECT fleet_id, template_id, spot FROM fleets WHERE request_id = ?", (request_id,)
        ).fetchone()
        if fleet is None:
            return []
        fleet_id, template_id, spot = fleet
        token = f"{request_id}/readded"
        (made,) = db.execute("SELECT count(*) FROM instances WHERE token = ?", (token,)).fetchone()
        added = []
        for n in range(made, made + count):
            row = self._new_instance(token, template_id, n, bool(spot), now)
            db.execute("INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)", row)
            added.append(str(row[0]))
        db.execute("UPDATE fleets SET target = target + ? WHERE fleet_id = ?", (count, fleet_id))
        return added

    def fleets(self) -> list[CloudGroup]:
        """What `groups` lists, now, without a call's latency and faults (for checks)."""
        return self._groups()

    def listing(self) -> list[CloudMachine]:
        """What `inventory` lists, now, without a call's latency and faults (for checks)."""
        return self._inventory(self.clock())

    def launches(self, machine_ids: Sequence[str]) -> dict[str, str]:
        """Machine id -> the launch that made it, whichever installation's: its request's
        id, `<request>/<launch>` for a replacement, `<request>/readded` for a fleet's."""
        marks = ",".join("?" * len(machine_ids))
        rows = self._db.execute(
            f"SELECT machine_id, token FROM instances WHERE machine_id IN ({marks})",
            list(machine_ids),
        ).fetchall()
        return dict(rows)

    def stuck(self) -> set[str]:
        """The machines that never finish booting (for checks)."""
        return {
            m
            for (m,) in self._db.execute("SELECT machine_id FROM instances WHERE ready_at > 1e300")
        }

    # -- simulation ------------------------------------------------------------

    async def _call(self, operation: str, key: str) -> None:
        """Pay the call's latency, and fail it now and then, deterministically."""
        self.calls += 1
        await trio.sleep(self.settings.latency)
        attempt = self._attempts.pop((operation, key), 0)  # only failing calls are kept
        if self._draw("fail", operation, key, attempt) < self.settings.failure_rate:
            self._attempts[(operation, key)] = attempt + 1
            raise TransientProviderError(
                f"RequestLimitExceeded: simulated throttling of {operation} (attempt {attempt + 1})"
            )

    def _draw(self, *parts: object) -> float:
        """A number in [0, 1) fixed by the seed and `parts`."""
        text = "|".join(map(str, (self.settings.seed, *parts))).encode()
        digest = hashlib.blake2b(text, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    async def _thread(self, function: Callable[..., T], *args: Any) -> T:
        # Run in trio's own thread, on purpose: these are sub-millisecond
        # queries on a small local file, and a worker thread would let a
        # virtual clock (autojump) run ahead while it works, which breaks the
        # determinism the simulator exists for.
        await trio.lowlevel.checkpoint()
        try:
            return function(*args)
        except sqlite3.OperationalError as error:  # its file: a full disk, a lock held too long
            raise TransientProviderError(
                f"the simulated cloud cannot use {self.path}: {error}"
            ) from error

    def _provision(self, token: str, template: Template, count: int, now: float) -> list[Machine]:
        """Launch for `token` (a request's id, or its id and a launch number), once."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            existing = db.execute(
                "SELECT machine_id FROM instances WHERE token = ? ORDER BY machine_id", (token,)
            ).fetchall()
            if existing:
                db.execute("COMMIT")
                return [self._machine(row, now) for row in self._rows([m for (m,) in existing])]
            (busy,) = db.execute(
                "SELECT count(*) FROM instances WHERE terminate_at IS NULL "
                "AND (reclaim_at IS NULL OR reclaim_at > ?)",
                (now,),
            ).fetchone()
            self._forget_gone(now)
            granted = max(0, min(count, self.settings.capacity - busy))
            spot = template.price_type != "ondemand"
            for n in range(granted):
                db.execute(
                    "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                    self._new_instance(token, template.template_id, n, spot, now),
                )
            if template.fleet_type == "maintain" and granted:
                self._keep_in_fleet(token, template.template_id, spot, granted, now)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        rows = db.execute(
            "SELECT machine_id FROM instances WHERE token = ? ORDER BY machine_id", (token,)
        ).fetchall()
        return [self._machine(row, now) for row in self._rows([m for (m,) in rows])]

    def _forget_gone(self, now: float) -> None:
        """Forget machines gone for `forget_after` seconds (inside a write transaction)."""
        horizon = self.settings.forget_after
        if not math.isfinite(horizon) or now - self._forgotten_at < horizon / 10:
            return
        self._forgotten_at = now
        self._db.execute(
            "DELETE FROM instances WHERE terminate_at + ? < ? "
            "OR (terminate_at IS NULL AND reclaim_at + ? < ?)",
            (self.settings.shutdown_time + horizon, now, horizon, now),
        )

    def _keep_in_fleet(
        self, token: str, template_id: str, spot: bool, count: int, now: float
    ) -> None:
        """The request's fleet keeps `count` more (made with its first launch)."""
        request_id = _request_of(token)
        fleet_id = "fleet-" + hashlib.blake2b(request_id.encode(), digest_size=8).hexdigest()
        self._db.execute(
            "INSERT INTO fleets VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (fleet_id) DO UPDATE SET target = target + excluded.target",
            (fleet_id, request_id, template_id, int(spot), count, now, self.installation_id),
        )

    def _new_instance(
        self, token: str, template_id: str, n: int, spot: bool, now: float
    ) -> tuple[object, ...]:
        digest = hashlib.blake2b(f"{self.settings.seed}|{token}|{n}".encode(), digest_size=9)
        machine_id = "i-" + digest.hexdigest()[:17]
        ip = self._free_address(digest.digest()[:3], now)
        name = f"ip-{ip.replace('.', '-')}.sim.internal"
        ready_at = now + self.settings.boot_time
        if self._draw("stuck", machine_id) < self.settings.stuck_rate:
            ready_at = math.inf  # it never boots
        reclaim_at = None
        if spot and self._draw("reclaim", machine_id) < self.settings.spot_reclaim_rate:
            reclaim_at = ready_at + self._draw("when", machine_id) * self.settings.spot_lifetime
        return (
            *(machine_id, token, template_id, name, ip, int(spot), now, ready_at),
            *(reclaim_at, self.installation_id),
        )

    def _free_address(self, drawn: bytes, now: float) -> str:
        """A private address no live machine has (as a VPC gives): the drawn one, or the
        next free one after it. A gone machine's address may be given again, as EC2 does."""
        number = int.from_bytes(drawn, "big")
        for step in range(1 << 24):
            octets = ((number + step) % (1 << 24)).to_bytes(3, "big")
            ip = f"10.{octets[0]}.{octets[1]}.{octets[2]}"
            taken = self._db.execute(
                "SELECT 1 FROM instances WHERE private_ip = ? AND terminate_at IS NULL "
                "AND (reclaim_at IS NULL OR reclaim_at > ?) LIMIT 1",
                (ip, now),
            ).fetchone()
            if taken is None:
                return ip
        raise TransientProviderError("InsufficientFreeAddressesInSubnet: the subnet is full")

    def _rows(self, machine_ids: list[str]) -> list[tuple[Any, ...]]:
        marks = ",".join("?" * len(machine_ids))
        return self._db.execute(
            "SELECT machine_id, name, private_ip, launched_at, ready_at, terminate_at, reclaim_at "
            f"FROM instances WHERE machine_id IN ({marks}) ORDER BY machine_id",
            machine_ids,
        ).fetchall()

    def _state(self, row: tuple[Any, ...], now: float) -> MachineState:
        _, _, _, _, ready_at, terminate_at, reclaim_at = row
        if terminate_at is not None:
            return (
                "shutting-down"
                if now < terminate_at + self.settings.shutdown_time
                else "terminated"
            )
        if reclaim_at is not None and now >= reclaim_at:
            return "terminated"
        return "pending" if now < ready_at else "running"

    def _machine(self, row: tuple[Any, ...], now: float) -> Machine:
        machine_id, name, ip, launched_at, *_ = row
        return Machine(
            machine_id=machine_id,
            name=name,
            private_ip=ip,
            launchtime=int(launched_at),
            state=self._state(row, now),
        )

    def _describe(self, machine_ids: list[str], now: float) -> list[StateChange]:
        changes = []
        for row in self._rows(machine_ids):
            state = self._state(row, now)
            reclaimed = state == "terminated" and row[5] is None
            message = "reclaimed by the cloud (spot interruption)" if reclaimed else ""
            changes.append(StateChange(row[0], state, message))
        return changes

    def _terminate(self, machine_ids: list[str], now: float, release: bool) -> None:
        """Terminate; with `release`, as the provider does: first lower the target of the
        machines' fleets to what stays, and delete a fleet left with nothing."""
        marks = ",".join("?" * len(machine_ids))
        if release:
            for (request_id,) in self._db.execute(
                "SELECT DISTINCT fleets.request_id FROM fleets JOIN instances "
                "ON instances.token = fleets.request_id OR instances.token LIKE "
                f"fleets.request_id || '/%' WHERE instances.machine_id IN ({marks})",
                machine_ids,
            ).fetchall():
                self._release(request_id, set(machine_ids), now)
        self._db.execute(
            f"UPDATE instances SET terminate_at = ? WHERE terminate_at IS NULL "
            f"AND machine_id IN ({marks})",
            [now, *machine_ids],
        )

    def _release(self, request_id: str, leaving: set[str], now: float) -> None:
        alive = self._db.execute(
            "SELECT machine_id FROM instances WHERE (token = ? OR token LIKE ?) "
            "AND terminate_at IS NULL AND (reclaim_at IS NULL OR reclaim_at > ?)",
            (request_id, f"{request_id}/%", now),
        ).fetchall()
        staying = sum(1 for (machine_id,) in alive if machine_id not in leaving)
        if staying:
            self._db.execute(
                "UPDATE fleets SET target = ? WHERE request_id = ?", (staying, request_id)
            )
        else:
            self._db.execute("DELETE FROM fleets WHERE request_id = ?", (request_id,))

    def _inventory(self, now: float) -> list[CloudMachine]:
        rows = self._db.execute(
            "SELECT machine_id, name, private_ip, launched_at, ready_at, terminate_at, reclaim_at, "
            "token FROM instances WHERE installation = ? ORDER BY machine_id",
            (self.installation_id,),
        ).fetchall()
        return [
            CloudMachine(
                machine_id=row[0],
                name=row[1],
                request_id=_request_of(row[7]),
                state=self._state(row[:7], now),
                launched_at=row[3],
            )
            for row in rows
        ]

    def _groups(self) -> list[CloudGroup]:
        rows = self._db.execute(
            "SELECT fleet_id, request_id, target, created_at FROM fleets "
            "WHERE installation = ? ORDER BY fleet_id",
            (self.installation_id,),
        ).fetchall()
        return [
            CloudGroup(
                group_id=fleet_id,
                kind="ec2-fleet",
                request_id=request_id,
                created_at=created_at,
                maintains=True,
                target=float(target),
            )
            for fleet_id, request_id, target, created_at in rows
        ]

    def _reclaim_notices(self, now: float) -> list[ReclaimNotice]:
        rows = self._db.execute(
            "SELECT machine_id, name, reclaim_at FROM instances WHERE reclaim_at IS NOT NULL "
            "AND terminate_at IS NULL AND reclaim_at - ? <= ? ORDER BY machine_id",
            (now, self.settings.reclaim_notice),
        ).fetchall()
        return [
            ReclaimNotice(machine_id, name, max(0, int(reclaim_at - now)))
            for machine_id, name, reclaim_at in rows
        ]


def _request_of(token: str) -> str:
    """The request a launch's token belongs to: `req-…`, or `req-…/<launch>`."""
    return token.partition("/")[0]


@asynccontextmanager
async def open_sim_provider(
    settings: SimSettings, context: ProviderContext
) -> AsyncIterator[SimProvider]:
    """The simulated cloud whose machines live in `sim-cloud.db` in the data dir."""
    context.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    provider = SimProvider(
        context.data_dir / "sim-cloud.db",
        settings,
        clock=context.clock,
        installation_id=context.installation_id,
    )
    try:
        yield provider
    finally:
        provider.close()
