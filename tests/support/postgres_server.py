"""A throwaway PostgreSQL server: a cluster of its own in a temp dir, on a free loopback port.

`postgres_server()` runs Debian's `initdb` and `pg_ctl` (found on PATH or
under /usr/lib/postgresql/*/bin; `.ci/run` installs the `postgresql`
package) for a cluster that trusts local connections, listens on
127.0.0.1 only, and is stopped and deleted when the block ends.
`new_database(server)` makes an empty database on it, one per test, so
tests never see each other's events.

PostgreSQL refuses to run as root, and CI runs as root: then the cluster
belongs to the `postgres` user the package creates, and its commands run
as that user (`runuser`). A machine without PostgreSQL fails the tests that
need it, with the reason; they are never skipped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

from hostsmith.actors.proof import free_port


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found on PATH or in /usr/lib/postgresql/*/bin: "
            "install Debian's postgresql package (.ci/run does)"
        )
    return found


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server until the block ends; yields its URL without a database."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="hostsmith-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*as_owner, *command], capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")

    try:
        run(binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        settings = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        run(
            binary("pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            settings,
            "start",
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            run(binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_database(server: str) -> str:
    """An empty database on `server`; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
