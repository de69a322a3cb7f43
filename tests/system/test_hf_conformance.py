"""Conformance with IBM's "provider plug-in interface specification" (Symphony 7.3.x).

Each test names the page of the specification it checks. Every call is made
as Host Factory makes it: the installed script, a new process per call, the
input in a file (`-f FILE`), Host Factory's variables set, and the current
directory somewhere else. Inputs come in the forms the pages and real Host
Factories use: a list, a single object, and `{}` where the page allows it.
Every answer is checked against Host Factory's shapes (tests/support).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.daemon import hostsmith, without_hostsmith_settings
from tests.support.host_factory import Call, script_caller, settled

TEMPLATE = {
    "templateId": "conformance-1",
    "maxNumber": 4,
    "attributes": {
        "type": ["String", "X86_64"],
        "ncpus": ["Numeric", "2"],
        "nram": ["Numeric", "4096"],
    },
}


@pytest.fixture(scope="module")
def host_factory(tmp_path_factory: pytest.TempPathFactory) -> Call:
    """hostsmith installed into a Host Factory tree; calls made as Host Factory makes them."""
    top = tmp_path_factory.mktemp("hf")
    for folder in ("conf", "work", "log", "cwd"):
        (top / folder).mkdir()
    done = hostsmith(
        "install", "--hf-conf", str(top / "conf"), "--name", "hsinst", "--provider", "sim"
    )
    assert done.returncode == 0, done.stderr
    conf = top / "conf" / "providers" / "hsinst"
    (conf / "simprov_templates.json").write_text(json.dumps({"templates": [TEMPLATE]}))
    (conf / "hostsmith.toml").write_text(
        "[sim]\nboot_time = 0.1\nshutdown_time = 0.1\nlatency = 0.0\n"
    )
    environment = without_hostsmith_settings() | {
        "PATH": "/usr/bin:/bin",
        "HF_PROVIDER_NAME": "hsinst",
        "HF_PROVIDER_CONFDIR": str(conf),
        "HF_PROVIDER_WORKDIR": str(top / "work"),
        "HF_PROVIDER_LOGDIR": str(top / "log"),
    }
    call = script_caller(
        top / "hostsmith" / "scripts", environment=environment, cwd=top / "cwd", inputs=top
    )
    return call


def acquire(call: Call, count: int = 1) -> dict[str, Any]:
    status, asked = call(
        "requestMachines", {"template": {"templateId": "conformance-1", "machineCount": count}}
    )
    assert status == 0, asked
    return settled(call, asked["requestId"])


@pytest.mark.slow
def test_getavailabletemplates_reference_input_is_empty_and_attributes_are_typed_pairs(
    host_factory: Call,
) -> None:
    status, answer = host_factory("getAvailableTemplates", {})
    assert status == 0
    (template,) = answer["templates"]
    assert template["templateId"] == "conformance-1"
    assert template["maxNumber"] == 4
    assert template["attributes"] == TEMPLATE["attributes"]  # [kind, value-as-string]
    assert 0 <= template["availableNumber"] <= 4


@pytest.mark.slow
def test_requestmachines_reference_answers_a_request_id_or_only_a_message(
    host_factory: Call,
) -> None:
    status, asked = host_factory(
        "requestMachines", {"template": {"templateId": "conformance-1", "machineCount": 1}}
    )
    assert status == 0
    assert asked["requestId"].startswith("req-")
    status, refused = host_factory(
        "requestMachines", {"template": {"templateId": "nope", "machineCount": 1}}
    )
    assert status == 1
    assert set(refused) == {"message"}  # no requestId on failure
    settled(host_factory, asked["requestId"])


@pytest.mark.slow
def test_getrequeststatus_reference_takes_a_list_or_one_object_and_answers_unknown_ids_in_place(
    host_factory: Call,
) -> None:
    done = acquire(host_factory)
    assert done["status"] == "complete"
    (machine,) = done["machines"]
    assert machine["result"] == "succeed"
    assert isinstance(machine["launchtime"], int)
    status, one = host_factory("getRequestStatus", {"requests": {"requestId": done["requestId"]}})
    assert status == 0
    assert one["requests"][0]["requestId"] == done["requestId"]
    status, mixed = host_factory(
        "getRequestStatus",
        {"requests": [{"requestId": "req-nope"}, {"requestId": done["requestId"]}]},
    )
    assert status == 0  # an unknown id does not fail the call
    assert [r["status"] for r in mixed["requests"]] == ["complete_with_error", "complete"]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["list", "object", "top-level name"])
def test_requestreturnmachines_reference_accepts_every_form_and_a_repeat(
    host_factory: Call, form: str
) -> None:
    (machine,) = acquire(host_factory)["machines"]
    ref = {"name": machine["name"], "machineId": machine["machineId"]}
    payload = {
        "list": {"machines": [ref]},
        "object": {"machines": ref},
        "top-level name": {"name": machine["name"]},  # as the reference page shows it
    }[form]
    status, returned = host_factory("requestReturnMachines", payload)
    assert status == 0, returned
    assert returned["message"].startswith("Delete VM success.")
    status, again = host_factory("requestReturnMachines", payload)  # Host Factory repeats
    assert status == 0
    assert again["requestId"] == returned["requestId"]
    gone = settled(host_factory, returned["requestId"])
    assert gone["status"] == "complete"
    assert [m["result"] for m in gone["machines"]] == ["succeed"]


@pytest.mark.slow
def test_requestreturnmachines_reference_returns_the_known_hosts_of_a_mixed_batch(
    host_factory: Call,
) -> None:
    (machine,) = acquire(host_factory)["machines"]
    ref = {"name": machine["name"], "machineId": machine["machineId"]}
    status, returned = host_factory(
        "requestReturnMachines", {"machines": [ref, {"name": "stale-host", "machineId": "i-stale"}]}
    )
    assert status == 0, returned
    assert "i-stale" in returned["message"]
    assert settled(host_factory, returned["requestId"])["status"] == "complete"


@pytest.mark.slow
def test_getreturnrequests_reference_takes_empty_input_and_lets_unknown_hosts_go(
    host_factory: Call,
) -> None:
    status, empty = host_factory("getReturnRequests", {})
    assert status == 0
    assert empty["requests"] == []
    (machine,) = acquire(host_factory)["machines"]
    held = {"name": machine["name"], "machineId": machine["machineId"]}
    lost = {"name": "ip-10-1-1-1.lost", "machineId": "i-lost"}
    status, answer = host_factory("getReturnRequests", {"machines": [held, lost]})
    assert status == 0
    assert answer["requests"] == [{"machine": "ip-10-1-1-1.lost", "gracePeriod": 0}]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "payload"),
    [
        ("requestMachines", '{"template": {"templateId": "conformance-1"'),
        ("requestMachines", {"template": {"templateId": "conformance-1", "machineCount": -1}}),
        ("getRequestStatus", "[]"),
        ("requestReturnMachines", {"machines": []}),
    ],
    ids=["malformed", "negative count", "wrong shape", "nothing to return"],
)
def test_every_failure_is_a_message_on_stdout_and_exit_1(
    host_factory: Call, command: str, payload: Any
) -> None:
    status, answer = host_factory(command, payload)
    assert status == 1
    assert set(answer) == {"message"}
    assert answer["message"]
