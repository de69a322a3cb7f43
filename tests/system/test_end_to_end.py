"""Host Factory's whole cycle through `hostsmith hf`, against the real daemon and in process.

Every step is a separate `hostsmith hf` process, as Host Factory runs its
scripts: acquire three machines, poll until they are up, return them, poll
until they are gone, and find a reclaimed spot machine in getReturnRequests.
Polls are bounded in number; each is a process start, never a sleep.
"""

from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.daemon import Daemon, hf, without_hostsmith_settings, write_config
from tests.support.host_factory import script_caller, settled
from tests.support.hostfactory_shapes import conforms

ON_DEMAND = "OnDemand-Minimal-Template-VM"
SPOT = "Spot-Template-VM"

Call = Callable[..., tuple[int, dict[str, Any]]]


def conforming(call: Call) -> Call:
    """Check every successful answer against Host Factory's shapes."""

    def checked(command: str, payload: Any) -> tuple[int, dict[str, Any]]:
        status, answer = call(command, payload)
        if status == 0:
            conforms(command, answer)
        return status, answer

    return checked


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    running = Daemon(write_config(tmp_path)).start()
    yield running
    assert running.stop() == 0  # SIGTERM: a graceful stop


def poll_until(
    call: Call, command: str, payload: Any, done: Callable[[dict[str, Any]], bool], tries: int = 150
) -> dict[str, Any]:
    for _ in range(tries):
        status, answer = call(command, payload)
        assert status == 0, answer
        if done(answer):
            return answer
    raise AssertionError(f"{command} did not get there in {tries} polls: {answer}")


def host_factory_cycle(call: Call) -> None:
    call = conforming(call)
    status, templates = call("getAvailableTemplates", {})
    assert status == 0
    assert {t["templateId"] for t in templates["templates"]} == {ON_DEMAND, SPOT}
    status, asked = call(
        "requestMachines", {"template": {"templateId": ON_DEMAND, "machineCount": 3}}
    )
    assert status == 0, asked
    assert asked["message"] == "Request VM success."
    request_id = asked["requestId"]

    answer = poll_until(
        call,
        "getRequestStatus",
        {"requests": [{"requestId": request_id}]},
        lambda a: a["requests"][0]["status"] != "running",
    )
    (entry,) = answer["requests"]
    assert entry["status"] == "complete"
    assert len(entry["machines"]) == 3
    assert {m["result"] for m in entry["machines"]} == {"succeed"}

    machines = [{"name": m["name"], "machineId": m["machineId"]} for m in entry["machines"]]
    status, returned = call("requestReturnMachines", {"machines": machines})
    assert status == 0, returned
    assert returned["message"] == "Delete VM success."
    answer = poll_until(
        call,
        "getRequestStatus",
        {"requests": {"requestId": returned["requestId"]}},  # a single object
        lambda a: a["requests"][0]["status"] != "running",
    )
    assert answer["requests"][0]["status"] == "complete"
    assert {m["result"] for m in answer["requests"][0]["machines"]} == {"succeed"}

    status, spot = call("requestMachines", {"template": {"templateId": SPOT, "machineCount": 2}})
    assert status == 0, spot
    answer = poll_until(
        call,
        "getRequestStatus",
        {"requests": [{"requestId": spot["requestId"]}]},
        lambda a: len(a["requests"][0]["machines"]) == 2,
    )
    held = [
        {"name": m["name"], "machineId": m["machineId"]} for m in answer["requests"][0]["machines"]
    ]
    reclaimed = poll_until(
        call, "getReturnRequests", {"machines": held}, lambda a: bool(a["requests"])
    )
    names = {m["name"] for m in held}
    assert all(r["machine"] in names for r in reclaimed["requests"])
    assert all(
        isinstance(r["gracePeriod"], int) and 0 <= r["gracePeriod"] <= 120
        for r in reclaimed["requests"]
    )


@pytest.mark.slow
def test_the_host_factory_cycle_against_the_daemon(daemon: Daemon) -> None:
    host_factory_cycle(lambda command, payload: hf(command, payload, url=daemon.url))


@pytest.mark.slow
def test_the_host_factory_cycle_in_process(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    host_factory_cycle(lambda command, payload: hf(command, payload, config=config))


@pytest.mark.slow
def test_an_unknown_request_id_is_answered_not_failed(daemon: Daemon) -> None:
    status, answer = hf(
        "getRequestStatus", {"requests": [{"requestId": "req-unknown"}]}, url=daemon.url
    )
    assert status == 0
    assert answer["requests"] == [
        {
            "requestId": "req-unknown",
            "status": "complete_with_error",
            "message": "request req-unknown is unknown",
            "machines": [],
        }
    ]


@pytest.mark.slow
def test_a_sigterm_stops_the_daemon_gracefully(tmp_path: pathlib.Path) -> None:
    running = Daemon(write_config(tmp_path)).start()
    status, _ = hf(
        "requestMachines",
        {"template": {"templateId": ON_DEMAND, "machineCount": 1}},
        url=running.url,
    )
    assert status == 0
    assert running.stop(signal.SIGTERM) == 0
    assert "stopped" in running.logs()


@pytest.mark.slow
def test_the_host_factory_scripts_run_the_whole_cycle(
    daemon: Daemon, tmp_path: pathlib.Path
) -> None:
    """Each of the five scripts, run as Host Factory runs it: `-f FILE`, from another directory."""
    scripts = pathlib.Path(__file__).resolve().parents[2] / "scripts"
    elsewhere = tmp_path / "hf-cwd"
    elsewhere.mkdir()
    environment = without_hostsmith_settings() | {
        "HOSTSMITH_URL": daemon.url,
        "HOSTSMITH_BIN": str(pathlib.Path(sys.executable).with_name("hostsmith")),
    }

    script = script_caller(scripts, environment=environment, cwd=elsewhere, inputs=tmp_path)

    _, templates = script("getAvailableTemplates", {})
    assert ON_DEMAND in {t["templateId"] for t in templates["templates"]}
    _, asked = script("requestMachines", {"template": {"templateId": ON_DEMAND, "machineCount": 1}})
    (machine,) = settled(script, asked["requestId"])["machines"]
    held = {"machines": [{"name": machine["name"], "machineId": machine["machineId"]}]}
    _, notices = script("getReturnRequests", held)
    assert notices["requests"] == []  # an on-demand host the cloud is not taking back
    _, returned = script("requestReturnMachines", held)
    assert settled(script, returned["requestId"])["status"] == "complete"


@pytest.mark.slow
def test_a_symlinked_script_finds_hostsmith_and_a_copied_one_says_what_is_missing(
    daemon: Daemon, tmp_path: pathlib.Path
) -> None:
    scripts = pathlib.Path(__file__).resolve().parents[2] / "scripts"
    plugin = tmp_path / "hf" / "scripts"
    plugin.mkdir(parents=True)
    (plugin / "getAvailableTemplates.sh").symlink_to(scripts / "getAvailableTemplates.sh")
    copied = plugin / "getRequestStatus.sh"
    copied.write_text((scripts / "getRequestStatus.sh").read_text())
    copied.chmod(0o755)
    given = tmp_path / "hf_in"
    given.write_text("{}")
    nowhere = {"PATH": "/usr/bin:/bin", "HOSTSMITH_URL": daemon.url}
    linked = subprocess.run(
        [plugin / "getAvailableTemplates.sh", "-f", given],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=without_hostsmith_settings() | nowhere,
        check=False,
    )
    assert linked.returncode == 0, linked.stdout + linked.stderr
    conforms("getAvailableTemplates", json.loads(linked.stdout))
    lost = subprocess.run(
        [copied, "-f", given],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=without_hostsmith_settings() | nowhere,
        check=False,
    )
    assert lost.returncode == 1
    assert json.loads(lost.stdout) == {
        "message": "getRequestStatus: the hostsmith command was not found (looked for "
        f"{plugin}/../.venv/bin/hostsmith and on PATH); set HOSTSMITH_BIN to its path"
    }


@pytest.mark.slow
def test_with_only_host_factorys_variables_calls_from_any_directory_share_one_state(
    tmp_path: pathlib.Path,
) -> None:
    """As Host Factory runs a plugin: its variables, its files, a new process per call, its cwd."""
    conf, work, logs = tmp_path / "conf", tmp_path / "work", tmp_path / "log"
    for directory in (conf, work, logs):
        directory.mkdir()
    template = {
        "templateId": "hf-only",
        "maxNumber": 3,
        "attributes": {
            "type": ["String", "X86_64"],
            "ncpus": ["Numeric", "1"],
            "nram": ["Numeric", "1024"],
        },
    }
    (conf / "simprov_templates.json").write_text(json.dumps({"templates": [template]}))
    (conf / "hostsmith.toml").write_text("[sim]\nboot_time = 0.1\nlatency = 0.0\n")
    environment = without_hostsmith_settings() | {
        "HF_PROVIDER_NAME": "hsinst",
        "HF_PROVIDER_CONFDIR": str(conf),
        "HF_PROVIDER_WORKDIR": str(work),
        "HF_PROVIDER_LOGDIR": str(logs),
    }

    def call(command: str, payload: Any, cwd: pathlib.Path) -> dict[str, Any]:
        cwd.mkdir(exist_ok=True)
        given = cwd / "hf_in.json"
        given.write_text(json.dumps(payload))
        done = subprocess.run(
            [sys.executable, "-m", "hostsmith.actors.cli", "hf", command, "-f", str(given)],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=environment,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        conforms(command, answer)
        return answer

    templates = call("getAvailableTemplates", {}, tmp_path / "one")
    assert [t["templateId"] for t in templates["templates"]] == ["hf-only"]  # not the examples
    asked = call(
        "requestMachines",
        {"template": {"templateId": "hf-only", "machineCount": 1}},
        tmp_path / "two",
    )
    for attempt in range(50):
        status = call(
            "getRequestStatus",
            {"requests": [{"requestId": asked["requestId"]}]},
            tmp_path / f"poll{attempt}",
        )
        if status["requests"][0]["status"] != "running":
            break
    assert status["requests"][0]["status"] == "complete", status  # not "unknown"
    assert (work / "events.db").exists()
    assert not any((tmp_path / name / ".hostsmith").exists() for name in ("one", "two", "poll0"))
    refused = subprocess.run(
        [sys.executable, "-m", "hostsmith.actors.cli", "hf", "requestMachines", "-d", "{}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        check=False,
    )
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1  # one line on stderr, no traceback
    assert "requestMachines failed: invalid input" in (logs / "hostsmith.log").read_text()
