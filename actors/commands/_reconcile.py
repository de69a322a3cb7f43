"""`hostsmith reconcile`: one reconcile pass now, by hand.

When a daemon serves the data dir, the pass is its own (`POST
/admin/reconcile`): the data dir has one writer, and the daemon's counters
and log carry the pass like any other. Otherwise the pass runs in this
process, on the configured store and provider. `--dry-run` finds the
drift and says what it would do, and records and does nothing.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import trio
import typer
from rich.table import Table

from hostsmith.actors.commands._hf_script import post
from hostsmith.actors.commands._output import ConfigOption, JsonOption, configuration, console, fail
from hostsmith.actors.errors import HostsmithError, as_hostsmith_error
from hostsmith.actors.server import one_shot_claim
from hostsmith.actors.service import Config, ReconcilePass, open_application
from hostsmith.runtime import RuntimeFault


def reconcile(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be done; record and do nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare the cloud with the log now: report the drift, and act on it.

    Ghosts (hosts the log holds that the cloud no longer has) are recorded as
    terminated. Orphans (machines of this installation no live request holds)
    are reported, and terminated after `reconcile.orphan_grace` when
    `reconcile.terminate_orphans` is set. Launches still pending after
    `reconcile.pending_timeout` are terminated and replaced. Leaked fleets,
    groups and launch templates are deleted, and a fleet or group keeping a
    count other than the log's is set to the log's. The daemon does the same
    every `reconcile.interval` seconds.
    """
    settings = configuration(config)
    try:
        with one_shot_claim(settings.data_path) as daemon:
            if daemon is not None:
                done = _ask_daemon(daemon.url, settings, dry_run)
            else:
                done = trio.run(_in_process, settings, dry_run)
    except (HostsmithError, RuntimeFault, OSError) as error:
        fail(str(error))
    except BaseExceptionGroup as group:
        fail(as_hostsmith_error(group, "reconcile").message)
    if as_json:
        console.print_json(msgspec.json.encode(done).decode())
        return
    _show(done)


async def _in_process(settings: Config, dry_run: bool) -> ReconcilePass:
    async with open_application(settings, drive=False) as application:
        return await application.reconciler.reconcile(dry_run=dry_run)


def _ask_daemon(url: str, settings: Config, dry_run: bool) -> ReconcilePass:
    body = msgspec.json.encode({"dry_run": dry_run})
    status, answer = post(url, "/admin/reconcile", body, settings.server)
    if status != 200:
        try:
            message = msgspec.json.decode(answer)["message"]
        except (msgspec.DecodeError, KeyError, TypeError):
            message = answer.decode(errors="replace")[:200]
        fail(f"the daemon at {url} could not reconcile: {message}")
    return msgspec.json.decode(answer, type=ReconcilePass)


def _show(done: ReconcilePass) -> None:
    would = "would be done" if done.dry_run else "done"
    console.print(
        f"{done.provider}: {done.cloud_machines} machines and {done.cloud_groups} fleets, groups "
        f"or launch templates in the cloud under this installation, {done.live_machines} "
        f"machines live in the log; {len(done.findings)} findings, "
        f"{len(done.actions)} actions {would}."
    )
    if not done.findings:
        return
    actions = {action.resource_id: action.action for action in done.actions}
    listing = Table("kind", "resource", "request", "action", "why", box=None)
    for finding in done.findings:
        action = actions.get(finding.resource_id, "reported")
        if done.dry_run and finding.resource_id in actions:
            action = f"would be {action}"
        listing.add_row(
            finding.kind, finding.resource_id, finding.request_id or "-", action, finding.detail
        )
    console.print(listing)
