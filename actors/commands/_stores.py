"""The store commands: `stores init`, `migrate` (with `--verify-only`), `backup` and `restore`.

Migration shows a progress bar on a terminal and a line per batch
otherwise, and ends with the verification table (or JSON); a difference
between the stores is an error naming the first streams that differ.
"""

from __future__ import annotations

import functools
import pathlib
import sys
from typing import Annotated
from urllib.parse import urlsplit

import msgspec
import trio
import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from hostsmith.actors.commands._output import (
    ConfigOption,
    JsonOption,
    configuration,
    fail,
    positive,
    stderr,
    table,
)
from hostsmith.actors.errors import HostsmithError
from hostsmith.actors.server import one_shot_claim
from hostsmith.runtime import RuntimeFault
from hostsmith.stores import (
    MigrationReport,
    Verification,
    back_up,
    init_store,
    migrate as migrate_store,
    open_store,
    restore as restore_store,
    verify,
)


def stores_init(
    url: Annotated[
        str,
        typer.Argument(
            help="e.g. dynamodb://TABLE?region=REGION or postgresql://USER@HOST:PORT/DATABASE"
        ),
    ],
) -> None:
    """Create what a store needs (a DynamoDB table, PostgreSQL's tables); safe to run again."""
    shown = _without_password(url)
    try:
        created = trio.run(init_store, url)
    except RuntimeFault as error:
        fail(str(error))
    except Exception as error:  # credentials, endpoint, permissions
        fail(f"cannot set up the store {shown}: {type(error).__name__}: {error}")
    if urlsplit(url).scheme not in ("dynamodb", "postgresql", "postgres"):
        sys.stdout.write(f"{shown} is ready (it needs no set-up beyond opening it)\n")
        return
    sys.stdout.write(f"created {shown}\n" if created else f"{shown} exists already\n")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def migrate(
    source: Annotated[
        str, typer.Option("--from", help="The store to copy, e.g. sqlite:///old/events.db")
    ],
    target: Annotated[
        str, typer.Option("--to", help="The store to fill, e.g. json:///new?layout=split")
    ],
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Only compare the two stores.")
    ] = False,
    batch: Annotated[int, typer.Option(help="Events per read and per append.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy every event, snapshot and checkpoint from one store to another, then verify.

    Run it again after an interruption and it carries on where it stopped. It
    refuses a target that already holds different data.
    """
    positive("batch", batch)
    try:
        report = trio.run(run_migration, source, target, verify_only, batch, as_json)
    except RuntimeFault as error:
        fail(str(error))
    verification = report.verification if isinstance(report, MigrationReport) else report
    summary = {
        "from": source,
        "to": target,
        "events": verification.events,
        "streams": verification.streams,
        "verified": verification.ok,
        "mismatches": verification.mismatches,
    }
    if isinstance(report, MigrationReport):
        summary |= {
            "copied": report.copied,
            "resumed_from": report.resumed_from,
            "snapshots": report.snapshots,
            "checkpoints": report.checkpoints,
        }
    if as_json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        table([{"what": key, "value": value} for key, value in summary.items()], False, "")
    if not verification.ok:
        fail("the stores differ: " + "; ".join(verification.mismatches[:5]))


async def run_migration(
    source_url: str, target_url: str, verify_only: bool, batch: int, quiet: bool
) -> MigrationReport | Verification:
    async with open_store(source_url) as source, open_store(target_url) as target:
        if verify_only:
            return await verify(source, target, batch=batch)
        with Progress(
            TextColumn("copying events"),
            BarColumn(),
            MofNCompleteColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            disable=quiet and not stderr.is_terminal,
        ) as bar:
            task = bar.add_task("copy", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)
                if not stderr.is_terminal:
                    stderr.print(f"copied {done} of {total} events", highlight=False)

            return await migrate_store(source, target, batch=batch, progress=advance)


def backup(
    destination: Annotated[
        pathlib.Path, typer.Argument(help="A new (or empty) folder for the backup.")
    ],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Back up the event store (and the provider's files in the data dir), safely while live.

    The copy is consistent: the store as it was at one commit (SQLite's online
    backup), taken without stopping the daemon or holding up its writes. It is
    checked before the command ends, and `backup.json` beside it says what it
    holds. `hostsmith restore FOLDER` puts it back.
    """
    settings = configuration(config)
    try:
        also = provider_files(settings.data_path, settings.store_url)
        manifest = trio.run(functools.partial(back_up, also=also), settings.store_url, destination)
    except (HostsmithError, RuntimeFault, OSError) as error:
        fail(str(error))
    report = {
        "backup": str(destination),
        "from": settings.store_url,
        "events": manifest.events,
        "last_position": manifest.last_position,
        "provider_files": manifest.files,
    }
    _print(report, as_json)


def restore(
    source: Annotated[pathlib.Path, typer.Argument(help="A folder made by `hostsmith backup`.")],
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into the configured store, which must be empty, and verify it.

    Stop the daemon first (restore refuses while one serves the data dir);
    point --config (or HOSTSMITH_DATA_DIR / HOSTSMITH_STORE) at a new data dir
    to restore beside the old one. The store may be of another kind than the
    backup's source.
    """
    settings = configuration(config)
    try:
        with one_shot_claim(settings.data_path) as daemon:
            if daemon is not None:
                fail(
                    f"hostsmith pid {daemon.pid} serves {settings.data_path} at {daemon.url}: "
                    "stop it before restoring, or restore into another data dir"
                )
            into = functools.partial(restore_store, files_into=settings.data_path)
            report, restored = trio.run(into, source, settings.store_url)
    except (HostsmithError, RuntimeFault, OSError) as error:
        fail(str(error))
    verification = report.verification
    _print(
        {
            "restored": str(source),
            "into": settings.store_url,
            "events": verification.events,
            "streams": verification.streams,
            "verified": verification.ok,
            "provider_files": restored,
        },
        as_json,
    )


def provider_files(data_dir: pathlib.Path, store_url: str) -> list[pathlib.Path]:
    """The SQLite files in the data dir besides the event store: the providers' state."""
    store = urlsplit(store_url)
    store_file = (store.netloc + store.path) if store.scheme == "sqlite" else ""
    return [
        path
        for path in sorted(data_dir.glob("*.db"))
        if str(path) != store_file and path.name != "events.db"
    ]


def _print(report: dict[str, object], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        table([{"what": key, "value": value} for key, value in report.items()], False, "")
