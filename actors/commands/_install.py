"""`hostsmith install`: register hostsmith with a Host Factory, as an admin would by hand.

Host Factory finds a provider through two files in its conf dir,
`providerplugins/hostProviderPlugins.json` (the plugin and its scripts'
folder) and `providers/hostProviders.json` (the provider instance, with its
conf, work and log paths), and runs the five scripts it finds there. This
command writes the scripts with the absolute path of this hostsmith in
them, so they work from any directory and need no virtualenv beside them;
adds or updates hostsmith's entries in the two files without touching
anyone else's; and creates the instance's conf dir with example templates
and config, never overwriting what the admin has written there.

Everything is planned first, as a list of file changes, so `--dry-run`
shows exactly what a real run would do, and a second run finds nothing to
change.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
from typing import Annotated, Any

import msgspec
import typer

from hostsmith.actors.commands._output import JsonOption, console, fail
from hostsmith.actors.hostfactory import COMMANDS
from hostsmith.actors.service import EXAMPLE_TEMPLATES

PLUGIN_NAME = "hostsmith"
EXAMPLE_CONFIG: dict[str, dict[str, Any]] = {
    "aws": {"AWS_REGION": "us-east-1"},
    "sim": {},
}


class FileChange(msgspec.Struct, frozen=True):
    path: str
    action: str  # "create" or "update"
    content: str = msgspec.field(default="")
    mode: int = 0o644


def script(command: str, hostsmith: pathlib.Path) -> str:
    return f"""#!/usr/bin/env bash
# Host Factory's {command} for hostsmith, written by `hostsmith install`.
# Host Factory passes its input as -f FILE and reads the answer on stdout;
# its HF_PROVIDER_* variables tell hostsmith where this provider's files are.
hostsmith="${{HOSTSMITH_BIN:-{hostsmith}}}"
if [ ! -x "$hostsmith" ]; then
    printf '{{"message": "{command}: hostsmith is not at %s; %s"}}\\n' "$hostsmith" \\
        "run hostsmith install again, or set HOSTSMITH_BIN"
    exit 1
fi
exec "$hostsmith" hf {command} "$@"
"""


def this_hostsmith() -> pathlib.Path:
    """The `hostsmith` command of this installation, as an absolute path."""
    beside = pathlib.Path(sys.executable).with_name("hostsmith")
    if beside.exists():
        return beside.absolute()
    found = shutil.which("hostsmith")
    if found is None:
        fail("cannot find the hostsmith command of this installation to write into the scripts")
    return pathlib.Path(found).absolute()


def plan(
    hf_conf: pathlib.Path, name: str, provider: str, scripts: pathlib.Path, hostsmith: pathlib.Path
) -> list[FileChange]:
    """Every file change that installing hostsmith as provider instance `name` needs."""
    changes: list[FileChange] = []

    def want(path: pathlib.Path, content: str, *, mode: int = 0o644, keep: bool = False) -> None:
        if path.exists():
            if keep or path.read_text() == content:
                return
            changes.append(FileChange(str(path), "update", content, mode))
        else:
            changes.append(FileChange(str(path), "create", content, mode))

    for command in COMMANDS:
        want(scripts / f"{command}.sh", script(command, hostsmith), mode=0o755)
    plugins = hf_conf / "providerplugins" / "hostProviderPlugins.json"
    want(
        plugins,
        _with_entry(
            plugins,
            "providerplugins",
            {
                "name": PLUGIN_NAME,
                "enabled": 1,
                "scriptPath": f"{scripts}/",
            },
        ),
    )
    instances = hf_conf / "providers" / "hostProviders.json"
    want(
        instances,
        _with_entry(
            instances,
            "providers",
            {
                "name": name,
                "enabled": 1,
                "plugin": PLUGIN_NAME,
                "confPath": f"${{HF_CONFDIR}}/providers/{name}/",
                "workPath": f"${{HF_WORKDIR}}/providers/{name}/",
                "logPath": "${HF_LOGDIR}/",
            },
        ),
    )
    conf = hf_conf / "providers" / name
    want(conf / f"{provider}prov_templates.json", EXAMPLE_TEMPLATES.read_text(), keep=True)
    example = EXAMPLE_CONFIG.get(provider, {})
    want(conf / f"{provider}prov_config.json", json.dumps(example, indent=2) + "\n", keep=True)
    return changes


def _with_entry(path: pathlib.Path, key: str, entry: dict[str, Any]) -> str:
    """The registration file with `entry` added, or replacing the entry of its name."""
    document: dict[str, Any] = {"version": 2, key: []}
    if path.exists():
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            fail(f"{path} is not valid JSON ({error}); fix it by hand, then run install again")
        if not isinstance(document, dict) or not isinstance(document.get(key, []), list):
            fail(f"{path} has no {key!r} list; fix it by hand, then run install again")
    entries = [
        e
        for e in document.get(key, [])
        if not (isinstance(e, dict) and e.get("name") == entry["name"])
    ]
    existing = next(
        (
            e
            for e in document.get(key, [])
            if isinstance(e, dict) and e.get("name") == entry["name"]
        ),
        None,
    )
    document[key] = [*entries, existing | entry if existing else entry]
    return json.dumps(document, indent=2) + "\n"


def install(
    hf_conf: Annotated[
        pathlib.Path, typer.Option("--hf-conf", help="Host Factory's conf dir ($HF_TOP/conf).")
    ],
    name: Annotated[str, typer.Option(help="The provider instance's name, e.g. hostsmithinst.")],
    provider: Annotated[str, typer.Option(help="The cloud: aws or sim.")] = "aws",
    scripts: Annotated[
        pathlib.Path | None,
        typer.Option(help="Where to write the five scripts (default: $HF_TOP/hostsmith/scripts)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the changes; write nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Install hostsmith into a Host Factory: scripts, its registration, and a conf dir.

    Safe to run again: it changes only what differs, never another provider's
    entry, and never templates or config already in the conf dir.
    """
    if provider not in EXAMPLE_CONFIG:
        fail(f"--provider must be one of {', '.join(EXAMPLE_CONFIG)}, not {provider!r}")
    if not hf_conf.is_dir():
        fail(f"--hf-conf {hf_conf} is not a directory: give Host Factory's conf dir")
    hf_conf = hf_conf.absolute()
    scripts = (scripts or hf_conf.parent / "hostsmith" / "scripts").absolute()
    changes = plan(hf_conf, name, provider, scripts, this_hostsmith())
    if not dry_run:
        for change in changes:
            path = pathlib.Path(change.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(change.content)
            path.chmod(change.mode)
    if as_json:
        listed = [{"path": c.path, "action": c.action} for c in changes]
        sys.stdout.write(json.dumps({"dry_run": dry_run, "changes": listed}) + "\n")
        return
    verb = "would" if dry_run else "did"
    for change in changes:
        console.print(f"{verb} {change.action} {change.path}", highlight=False, markup=False)
    if not changes:
        console.print("nothing to change: hostsmith is installed as it should be", highlight=False)
