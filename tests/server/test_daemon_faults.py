"""The daemon under bad input, a SIGKILL mid-provisioning, and a metrics scrape."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.support.daemon import Daemon, hf, hostsmith, write_config

ON_DEMAND = "OnDemand-Minimal-Template-VM"


@pytest.fixture
def daemon(tmp_path: pathlib.Path) -> Iterator[Daemon]:
    running = Daemon(write_config(tmp_path)).start()
    yield running
    assert running.stop() == 0


def event_count(daemon: Daemon) -> float:
    metrics = httpx.get(f"{daemon.url}/metrics").text
    line = next(
        line for line in metrics.splitlines() if line.startswith("hostsmith_journal_events_total")
    )
    return float(line.split()[-1])


BAD_INPUTS = [
    (
        "requestMachines",
        '{"template": {"templateId": "x"',
        r"^malformed JSON for requestMachines: Input data was truncated$",
    ),
    (
        "requestMachines",
        '{"template": {"machineCount": 3}}',
        r"^invalid input for requestMachines: Object missing required field `templateId` - at `\$.template`$",
    ),
    (
        "requestMachines",
        '{"template": {"templateId": "Nope", "machineCount": 1}}',
        r"^unknown templateId 'Nope' \(known: OnDemand-Minimal-Template-VM, Spot-Template-VM\)$",
    ),
    (
        "requestMachines",
        f'{{"template": {{"templateId": "{ON_DEMAND}", "machineCount": 0}}}}',
        r"^machineCount must be at least 1, not 0$",
    ),
    (
        "requestMachines",
        f'{{"template": {{"templateId": "{ON_DEMAND}", "machineCount": -4}}}}',
        r"^machineCount must be at least 1, not -4$",
    ),
    (
        "requestMachines",
        f'{{"template": {{"templateId": "{ON_DEMAND}", "machineCount": 11}}}}',
        r"^template OnDemand-Minimal-Template-VM has 10 of 10 machines available; cannot provision 11$",
    ),
    (
        "requestReturnMachines",
        '{"machines": [{"name": "ip-1", "machineId": "i-nope"}]}',
        r"^none of these hosts was provisioned by hostsmith: i-nope$",
    ),
    (
        "getRequestStatus",
        "[1, 2]",
        r"^invalid input for getRequestStatus: Expected `object`, got `array`$",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "body", "message"), BAD_INPUTS)
def test_bad_input_gets_a_clear_message_and_writes_nothing(
    daemon: Daemon, tmp_path: pathlib.Path, command: str, body: str, message: str
) -> None:
    before = event_count(daemon)
    given = tmp_path / "input.json"
    given.write_text(body)

    status, answer = hf(command, url=daemon.url, file=given)

    assert status == 1
    assert set(answer) == {"message"}
    assert re.match(message, answer["message"]), answer["message"]
    assert event_count(daemon) == before
    assert hf("getAvailableTemplates", {}, url=daemon.url)[0] == 0  # still serving


@pytest.mark.slow
@pytest.mark.parametrize(("command", "body", "message"), BAD_INPUTS)
def test_bad_input_in_process_is_host_factory_json_on_stdout_and_writes_nothing(
    tmp_path: pathlib.Path, command: str, body: str, message: str
) -> None:
    """Issue 12: in process, a refusal printed nothing on stdout and a traceback on stderr."""
    config = write_config(tmp_path)
    given = tmp_path / "input.json"
    given.write_text(body)
    store = tmp_path / "data" / "events.db"

    status, answer = hf(command, config=config, file=given)

    assert status == 1
    assert set(answer) == {"message"}
    assert re.match(message, answer["message"]), answer["message"]
    if store.exists():
        # nothing of the call's: the store's first open names the installation, and that is all
        with sqlite3.connect(store) as db:
            streams = db.execute("SELECT DISTINCT stream FROM events").fetchall()
            assert streams in ([], [("installation",)])


@pytest.mark.slow
def test_a_missing_input_file_is_named(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    status, answer = hf("requestMachines", url=daemon.url, file=tmp_path / "absent.json")
    assert status == 1
    assert answer == {
        "message": f"cannot read input file {tmp_path / 'absent.json'}: No such file or directory"
    }


@pytest.mark.slow
def test_a_10_mb_body_is_refused_before_it_is_read(daemon: Daemon, tmp_path: pathlib.Path) -> None:
    before = event_count(daemon)
    huge = tmp_path / "huge.json"
    huge.write_text('{"template": {"templateId": "' + "x" * 10_000_000 + '", "machineCount": 1}}')
    status, answer = hf("requestMachines", url=daemon.url, file=huge)
    assert status == 1
    assert answer == {"message": "request body is larger than the limit of 1048576 bytes"}
    assert event_count(daemon) == before
    response = httpx.post(f"{daemon.url}/api/v1/requestMachines", content=b"x" * 10_000_000)
    assert response.status_code == 413


@pytest.mark.slow
def test_metrics_show_latency_mailboxes_restarts_and_the_circuit(daemon: Daemon) -> None:
    hf("getAvailableTemplates", {}, url=daemon.url)
    metrics = httpx.get(f"{daemon.url}/metrics").text
    for name in (
        'hostsmith_command_seconds_count{command="getAvailableTemplates",outcome="ok"} 1.0',
        "hostsmith_mailbox_depth ",
        "hostsmith_actor_restarts_total ",
        'hostsmith_circuit_state{circuit="provider:sim",state="closed"} 1.0',
    ):
        assert name in metrics, name


@pytest.mark.slow
def test_a_correlation_id_reaches_the_events(daemon: Daemon) -> None:
    response = httpx.post(
        f"{daemon.url}/api/v1/requestMachines",
        json={"template": {"templateId": ON_DEMAND, "machineCount": 1}},
        headers={"X-Correlation-Id": "hf-call-42"},
    )
    assert response.status_code == 200
    assert response.headers["x-correlation-id"] == "hf-call-42"
    request_id = response.json()["requestId"]
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "hostsmith.actors.cli",
            "events",
            f"request-{request_id}",
            "--json",
            "--config",
            str(daemon.config),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    trail = [json.loads(line) for line in listing.stdout.splitlines()]
    assert trail[0]["type"] == "AcquireOpened"
    # the driver's later events (the cloud's answers) belong to the same conversation
    assert {event["correlation_id"] for event in trail} == {"hf-call-42"}


@pytest.mark.slow
def test_a_daemon_killed_mid_provisioning_resumes_every_request_without_duplicates(
    tmp_path: pathlib.Path,
) -> None:
    config = write_config(tmp_path, "")
    config.write_text(config.read_text().replace("boot_time = 0.2", "boot_time = 4.0"))
    first = Daemon(config).start()
    asked = []
    for _ in range(4):
        status, answer = hf(
            "requestMachines",
            {"template": {"templateId": ON_DEMAND, "machineCount": 2}},
            url=first.url,
        )
        assert status == 0, answer
        asked.append(answer["requestId"])
    statuses = httpx.post(
        f"{first.url}/api/v1/getRequestStatus",
        json={"requests": [{"requestId": request_id} for request_id in asked]},
    ).json()["requests"]
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    # the kill landed while provisioning was under way: machines were still booting
    assert "running" in {entry["status"] for entry in statuses}, statuses

    second = Daemon(config).start()
    try:
        for request_id in asked:
            for _ in range(150):
                status, answer = hf(
                    "getRequestStatus", {"requests": [{"requestId": request_id}]}, url=second.url
                )
                if answer["requests"][0]["status"] != "running":
                    break
            assert answer["requests"][0]["status"] == "complete", answer
            assert len(answer["requests"][0]["machines"]) == 2
    finally:
        assert second.stop() == 0
    cloud = sqlite3.connect(tmp_path / "data" / "sim-cloud.db")
    per_request = dict(
        cloud.execute("SELECT token, count(*) FROM instances GROUP BY token").fetchall()
    )
    cloud.close()
    assert per_request == {request_id: 2 for request_id in asked}


@pytest.mark.slow
def test_slow_calls_are_logged_above_the_threshold(tmp_path: pathlib.Path) -> None:
    running = Daemon(write_config(tmp_path, '[log]\nslow_ms = 0\nformat = "json"')).start()
    assert hf("getAvailableTemplates", {}, url=running.url)[0] == 0
    assert running.stop() == 0
    slow = [
        json.loads(line)
        for line in running.logs().splitlines()
        if '"slow getAvailableTemplates' in line
    ]
    assert len(slow) == 1
    assert slow[0]["level"] == "warning"
    assert slow[0]["correlation_id"] != "-"


@pytest.mark.slow
def test_a_port_in_use_is_one_line_naming_it(tmp_path: pathlib.Path) -> None:
    """Issue 13: it was a 114-line traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hostsmith("serve", "--config", str(write_config(tmp_path)), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use (another hostsmith "
        "daemon, or another program); choose another with --port or server.port"
    )


@pytest.mark.slow
def test_every_call_is_one_log_line_and_refusals_are_warnings_with_the_reason(
    tmp_path: pathlib.Path,
) -> None:
    """Issue 13: after 2,000 calls the log held only its start-up lines."""
    running = Daemon(write_config(tmp_path, '[log]\nformat = "json"')).start()
    status, asked = hf(
        "requestMachines",
        {"template": {"templateId": ON_DEMAND, "machineCount": 1}},
        url=running.url,
    )
    assert status == 0, asked
    refused, _ = hf(
        "requestMachines", {"template": {"templateId": "nope", "machineCount": 1}}, url=running.url
    )
    assert refused == 1
    assert running.stop() == 0
    calls = [
        json.loads(line)
        for line in running.logs().splitlines()
        if line.startswith("{") and '"requestMachines ' in line
    ]
    assert len(calls) == 2
    answered, refusal = calls
    assert answered["level"] == "info"
    assert answered["message"].startswith(f"requestMachines {asked['requestId']} ok in ")
    assert refusal["level"] == "warning"
    assert refusal["message"].startswith("requestMachines refused (400) in ")
    assert refusal["message"].endswith(
        "unknown templateId 'nope' (known: OnDemand-Minimal-Template-VM, Spot-Template-VM)"
    )
    assert answered["correlation_id"] != refusal["correlation_id"]
