"""One daemon per data dir: the claim a daemon holds, and how a one-shot call finds it.

Two daemons on one data dir would each keep their own projections of one
log, and answer Host Factory differently (admission stays right, because
appends are conditional, but `availableNumber` and the status of requests
would not). So the data dir has one writer that keeps state in memory.

The claim is an `flock` on `DATA_DIR/daemon.lock`, not a pid file alone:
the kernel drops it when the holder dies, even by SIGKILL, so a crash never
leaves a stale claim that an admin must delete by hand. A daemon holds it
exclusively, and writes `DATA_DIR/daemon.json` (its pid and URL) once it
listens. A one-shot `hostsmith hf` holds it shared while it works in
process; when the daemon holds it instead, the call is sent to the URL in
`daemon.json`, so the daemon stays the one writer. A daemon that finds
one-shot calls at work waits for them (they are short) before it refuses.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import IO

import msgspec

from hostsmith.actors.errors import ConfigError, DataDirInUse

LOCK_FILE = "daemon.lock"
ADDRESS_FILE = "daemon.json"
WAIT_FOR_ONE_SHOT_CALLS = 10.0
"""Seconds a starting daemon waits for one-shot calls in process to finish."""


class DaemonAddress(msgspec.Struct, frozen=True):
    """What `daemon.json` holds: who serves the data dir, and where."""

    pid: int
    url: str
    started_at: float


@dataclass
class DaemonClaim:
    """The exclusive claim of a running daemon; `publish` says where it listens."""

    data_dir: pathlib.Path
    lock: IO[bytes]

    def publish(self, url: str) -> None:
        address = DaemonAddress(os.getpid(), url, time.time())
        written = self.data_dir / f".{ADDRESS_FILE}.{os.getpid()}"
        written.write_bytes(msgspec.json.encode(address))
        written.replace(self.data_dir / ADDRESS_FILE)  # whole or absent, never half written

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / ADDRESS_FILE).unlink()
        self.lock.close()  # closing the file drops the lock


@contextlib.asynccontextmanager
async def claim_data_dir(data_dir: pathlib.Path) -> AsyncIterator[DaemonClaim]:
    """Hold `data_dir` for this daemon, or raise `DataDirInUse` naming who holds it."""
    import trio  # here: a one-shot call reads this module, and needs no trio for it

    lock = _open_lock(data_dir)
    deadline = trio.current_time() + WAIT_FOR_ONE_SHOT_CALLS
    try:
        while not _try_lock(lock, fcntl.LOCK_EX):
            running = read_address(data_dir)
            if running is not None:
                raise DataDirInUse(
                    f"data dir {data_dir} is already served by hostsmith pid {running.pid} "
                    f"at {running.url}: stop that daemon first, or give this one another "
                    "data_dir (HOSTSMITH_DATA_DIR)"
                )
            if trio.current_time() >= deadline:
                raise DataDirInUse(
                    f"data dir {data_dir} is held by another hostsmith process (one-shot "
                    f"calls, or a daemon still starting) for {WAIT_FOR_ONE_SHOT_CALLS:.0f} s: "
                    f"find it with `fuser {data_dir / LOCK_FILE}`"
                )
            await trio.sleep(0.1)
    except BaseException:
        lock.close()
        raise
    claim = DaemonClaim(data_dir, lock)
    try:
        yield claim
    finally:
        claim.release()


@contextlib.contextmanager
def one_shot_claim(data_dir: pathlib.Path) -> Iterator[DaemonAddress | None]:
    """Share `data_dir` with other one-shot calls, or yield the daemon that holds it.

    Yields None while this process may work on the data dir in process (the
    shared claim is held until the block ends), or the running daemon's
    address, to which the call must be sent instead.
    """
    lock = _open_lock(data_dir)
    try:
        deadline = time.monotonic() + WAIT_FOR_ONE_SHOT_CALLS
        while not _try_lock(lock, fcntl.LOCK_SH):
            running = read_address(data_dir)
            if running is not None:
                yield running
                return
            if time.monotonic() >= deadline:  # a daemon that claimed but never listened
                raise DataDirInUse(
                    f"data dir {data_dir} is held by a hostsmith daemon that is not "
                    f"listening yet: try again, or find it with `fuser {data_dir / LOCK_FILE}`"
                )
            time.sleep(0.05)  # a daemon between its claim and its first listen: brief
        yield None
    finally:
        lock.close()


def read_address(data_dir: pathlib.Path) -> DaemonAddress | None:
    """The running daemon's address, if one has published it and is still alive.

    A daemon killed outright leaves its `daemon.json` behind; its pid is gone
    (or, rarely, reused, which the lock, not this file, settles).
    """
    try:
        address = msgspec.json.decode((data_dir / ADDRESS_FILE).read_bytes(), type=DaemonAddress)
    except (FileNotFoundError, msgspec.DecodeError):
        return None
    try:
        os.kill(address.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, under another user
        pass
    return address


def client_url(scheme: str, host: str, port: int) -> str:
    """The URL a local client uses to reach a daemon bound to `host`."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("::", "[::]"):
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _open_lock(data_dir: pathlib.Path) -> IO[bytes]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return (data_dir / LOCK_FILE).open("ab")
    except OSError as error:
        raise ConfigError(
            f"cannot use data dir {data_dir}: {error.strerror}; set data_dir "
            "(HOSTSMITH_DATA_DIR) to a directory this user may write"
        ) from None


def _try_lock(lock: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(lock.fileno(), mode | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True
