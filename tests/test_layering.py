"""The architecture's rules, checked: the engine stays generic, and public surfaces are pinned."""

from __future__ import annotations

import ast
import pathlib

import hostsmith.runtime
import hostsmith.stores

ROOT = pathlib.Path(__file__).resolve().parent.parent


def imported_modules(package_dir: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for path in package_dir.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_runtime_imports_neither_stores_nor_actors() -> None:
    imports = imported_modules(ROOT / "runtime")
    assert not {
        name for name in imports if name.startswith(("hostsmith.stores", "hostsmith.actors"))
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
        "MigrationError",
        "MigrationReport",
        "SQLiteStore",
        "Verification",
        "migrate",
        "open_store",
        "verify",
    ]


def test_every_module_opens_with_a_paragraph_on_its_design() -> None:
    for package in ("runtime", "stores", "actors"):
        for path in (ROOT / package).rglob("*.py"):
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            assert docstring, f"{path} needs a module docstring"
            assert len(docstring) > 80, f"{path}: the docstring should say why it is built this way"
