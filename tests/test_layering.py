"""The architecture's rules, checked: the engine stays generic, and public surfaces are pinned."""

from __future__ import annotations

import ast
import pathlib

import hostsmith.runtime
import hostsmith.stores

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imported_modules(package_dir: pathlib.Path) -> set[str]:
    """Every module imported anywhere under `package_dir`."""
    package = str(package_dir.relative_to(ROOT)).replace("/", ".")
    return set().union(*imports_by_module(package).values())


def test_runtime_imports_nothing_of_ours_but_itself() -> None:
    imports = imported_modules(ROOT / "runtime")
    assert not {
        name
        for name in imports
        if name.startswith("hostsmith.") and not name.startswith("hostsmith.runtime")
    }
    assert not {name for name in imports if name.split(".")[0] in {"stores", "actors"}}


def test_stores_do_not_import_actors() -> None:
    imports = imported_modules(ROOT / "stores")
    assert not {name for name in imports if name.startswith("hostsmith.actors")}


def test_code_imports_the_namespaced_packages_only() -> None:
    for package in ("runtime", "stores", "actors"):
        for name in imported_modules(ROOT / package):
            assert name.split(".")[0] not in {"runtime", "stores", "actors"}, (package, name)


def test_the_runtime_public_surface_is_pinned() -> None:
    assert sorted(hostsmith.runtime.__all__) == sorted(
        [
            "DEFAULT_ASK_TIMEOUT",
            "Actor",
            "ActorCrashed",
            "Parking",
            "current_parking",
            "ActorRef",
            "ActorStopped",
            "AggregateActor",
            "AggregateKind",
            "AggregateRef",
            "AppendOutcome",
            "AppendRequest",
            "Appended",
            "AskTimeout",
            "ChildSpec",
            "CircuitBreaker",
            "CircuitOpen",
            "CircuitState",
            "Committed",
            "ConflictError",
            "DuplicateEventError",
            "Envelope",
            "EventRegistry",
            "EventStore",
            "Inspect",
            "Journal",
            "JournalError",
            "JournalStats",
            "Mailbox",
            "MemoryStore",
            "NewEvent",
            "PersistFailed",
            "Registry",
            "Rejected",
            "Restart",
            "RestartPolicy",
            "Runtime",
            "RuntimeFault",
            "Snapshot",
            "StoreOpenError",
            "StoredEvent",
            "Strategy",
            "Subscription",
            "Supervisor",
            "SupervisorEscalated",
            "UnknownEventType",
            "append",
            "correlation",
            "current_correlation_id",
            "new_id",
            "open_runtime",
            "open_supervisor",
            "plan_appends",
            "run_actor",
        ]
    )
    for name in hostsmith.runtime.__all__:
        assert hasattr(hostsmith.runtime, name), name


def test_the_stores_public_surface_is_pinned() -> None:
    assert sorted(hostsmith.stores.__all__) == [
        "BackupError",
        "BackupManifest",
        "MigrationError",
        "MigrationReport",
        "SQLiteStore",
        "Verification",
        "aws_session",
        "back_up",
        "init_store",
        "migrate",
        "open_store",
        "read_manifest",
        "restore",
        "verify",
    ]


def test_every_module_opens_with_a_paragraph_on_its_design() -> None:
    for package in ("runtime", "stores", "actors"):
        for path in (ROOT / package).rglob("*.py"):
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            assert docstring, f"{path} needs a module docstring"
            assert len(docstring) > 80, f"{path}: the docstring should say why it is built this way"


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["hostsmith", *parts])


def imports_by_module(package: str) -> dict[str, set[str]]:
    """Every module under hostsmith.<package>, with the hostsmith modules it imports."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        names = found.setdefault(module_name(path), set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return found


def test_stores_import_only_the_runtime_public_surface() -> None:
    for module, names in imports_by_module("stores").items():
        ours = {name for name in names if name.startswith("hostsmith.")}
        assert ours <= {"hostsmith.runtime", "hostsmith.stores"} | {
            name for name in ours if name.startswith("hostsmith.stores.")
        }, (module, ours)


def test_the_host_factory_domain_does_no_io() -> None:
    io = {"trio", "anyio", "httpx", "socket", "sqlite3", "os", "pathlib", "subprocess", "io"}
    for module, names in imports_by_module("actors.hostfactory").items():
        assert not {name.split(".")[0] for name in names} & io, module
        ours = {name for name in names if name.startswith("hostsmith.actors.")}
        assert all(
            name.startswith("hostsmith.actors.hostfactory") or name == "hostsmith.actors.errors"
            for name in ours
        ), (module, ours)


def test_no_module_imports_another_packages_private_module() -> None:
    for module, names in imports_by_module("actors").items():
        package = module if module.count(".") == 2 else module.rsplit(".", 1)[0]
        if (
            module.endswith(".__init__")
            or (ROOT / "actors").joinpath(*module.split(".")[2:], "__init__.py").exists()
        ):
            package = module
        for name in names:
            owner, _, last = name.rpartition(".")
            if last.startswith("_") and name.startswith("hostsmith."):
                assert owner == package, f"{module} imports {name}, private to {owner}"


def test_proof_is_imported_only_by_the_commands() -> None:
    for module, names in imports_by_module("actors").items():
        if module.startswith(("hostsmith.actors.proof", "hostsmith.actors.commands")):
            continue
        assert not {n for n in names if n.startswith("hostsmith.actors.proof")}, module


def test_the_rooms_depend_in_one_direction() -> None:
    allowed = {
        "hostfactory": set(),
        "providers": {"hostfactory"},
        "service": {"hostfactory", "providers"},
        "server": {"hostfactory", "providers", "service"},
        "proof": {"hostfactory", "providers", "service", "server"},
        "commands": {"hostfactory", "providers", "service", "server", "proof"},
    }
    for module, names in imports_by_module("actors").items():
        room = module.split(".")[2] if module.count(".") >= 2 else ""
        if room not in allowed:
            continue
        used = {n.split(".")[2] for n in names if n.startswith("hostsmith.actors.")}
        assert used - {room, "errors", "lazy"} <= allowed[room], (module, used)


def test_the_actors_public_surface_is_pinned() -> None:
    import hostsmith.actors

    pinned = (
        "Application Config HostFactory HostsmithError Provider ProviderPlugin ProviderRegistry"
    )
    assert sorted(hostsmith.actors.__all__) == sorted(
        [*pinned.split(), "load_config", "open_application"]
    )
    for name in hostsmith.actors.__all__:
        assert hasattr(hostsmith.actors, name), name
