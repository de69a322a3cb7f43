"""The operator's commands: templates, requests, machines, events and config, as a person runs them."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.support.daemon import hf, hostsmith, write_config


@pytest.mark.slow
def test_lists_show_what_was_provisioned(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    status, asked = hf(
        "requestMachines",
        {"template": {"templateId": "OnDemand-Minimal-Template-VM", "machineCount": 2}},
        config=config,
    )
    assert status == 0, asked

    templates = json.loads(hostsmith("templates", "list", "--json", "--config", str(config)).stdout)
    assert {t["templateId"]: t["availableNumber"] for t in templates} == {
        "OnDemand-Minimal-Template-VM": 8,
        "Spot-Template-VM": 50,
    }

    requests = json.loads(hostsmith("requests", "list", "--json", "--config", str(config)).stdout)
    assert [(r["requestId"], r["kind"]) for r in requests] == [(asked["requestId"], "acquire")]

    shown = hostsmith("requests", "show", asked["requestId"], "--config", str(config))
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["requestId"] == asked["requestId"]

    machines = json.loads(hostsmith("machines", "list", "--json", "--config", str(config)).stdout)
    assert len(machines) == 2
    assert {m["request"] for m in machines} == {asked["requestId"]}

    trail = hostsmith("events", f"request-{asked['requestId']}", "--json", "--config", str(config))
    assert trail.returncode == 0
    events = [json.loads(line) for line in trail.stdout.splitlines()]
    assert [e["type"] for e in events][:2] == ["AcquireOpened", "MachinesLaunched"]
    assert [e["version"] for e in events] == list(range(1, len(events) + 1))
    assert (
        hostsmith("events", f"request-{asked['requestId']}", "--config", str(config)).returncode
        == 0
    )


def test_config_check_names_the_bad_key(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 70000\n")
    result = hostsmith("config", "check", "--config", str(bad))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: config file {bad}: Expected `int` <= 65535 - at `$.server.port`"
    )


def test_config_check_prints_the_effective_configuration(tmp_path: pathlib.Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(f'data_dir = "{tmp_path}/data"\n[server]\ntoken = "s3cret"\n')
    result = hostsmith("config", "check", "--config", str(good))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["effective_store"] == f"sqlite://{tmp_path}/data/events.db"
    assert shown["server"]["token"] == "***"
    assert "s3cret" not in result.stdout


def test_events_of_an_empty_stream_say_so(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    result = hostsmith("events", "request-nothing", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.startswith("error: no events for 'request-nothing' in sqlite://")


def test_serving_beyond_loopback_needs_a_token(tmp_path: pathlib.Path) -> None:
    config = write_config(tmp_path)
    result = hostsmith("serve", "--config", str(config), "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "is not a loopback address: set server.token" in result.stderr


@pytest.mark.slow
def test_the_aws_provider_without_its_extra_is_one_line_naming_the_extra(
    tmp_path: pathlib.Path,
) -> None:
    without_aiobotocore = tmp_path / "site"
    (without_aiobotocore / "aiobotocore").mkdir(parents=True)
    (without_aiobotocore / "aiobotocore" / "__init__.py").write_text(
        'raise ImportError("No module named aiobotocore")\n'
    )
    templates = tmp_path / "templates.json"
    template = {
        "templateId": "OnDemand",
        "maxNumber": 2,
        "attributes": {
            "type": ["String", "X86_64"],
            "ncpus": ["Numeric", "1"],
            "nram": ["Numeric", "1024"],
        },
        "imageId": "ami-1",
        "vmType": "t3.micro",
    }
    templates.write_text(json.dumps({"templates": [template]}))
    config = write_config(tmp_path, f'provider = "aws"\ntemplates = "{templates}"\n')
    result = hostsmith(
        "templates",
        "list",
        "--config",
        str(config),
        environment={"PYTHONPATH": str(without_aiobotocore)},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: the aws provider needs the aws extra: pip install 'hostsmith[aws]'"
    )


GOOD = {
    "templateId": "good",
    "maxNumber": 2,
    "attributes": {
        "type": ["String", "X86_64"],
        "ncpus": ["Numeric", "1"],
        "nram": ["Numeric", "1024"],
    },
}


@pytest.mark.slow
def test_templates_check_names_what_is_left_out_and_the_keys_it_ignores(
    tmp_path: pathlib.Path,
) -> None:
    templates = tmp_path / "templates.json"
    bad = GOOD | {"templateId": "bad", "maxNumber": -7}
    templates.write_text(json.dumps({"templates": [GOOD | {"vmFlavour": "large"}, bad]}))
    config = write_config(tmp_path, f'templates = "{templates}"')
    checked = hostsmith("templates", "check", "--config", str(config), "--json")
    assert checked.returncode == 1
    assert json.loads(checked.stdout) == {
        "file": str(templates),
        "provider": "sim",
        "served": ["good"],
        "left_out": [f"{templates}: Expected `int` >= -1 - at `$.templates[1].maxNumber`"],
        "ignored_keys": [f"{templates}: $.templates[0] (good): vmFlavour not used by hostsmith"],
    }
    status, answer = hf("getAvailableTemplates", {}, config=config)
    assert status == 0
    assert [t["templateId"] for t in answer["templates"]] == ["good"]


@pytest.mark.slow
def test_a_broken_templates_file_stops_new_requests_but_never_polls_or_returns(
    tmp_path: pathlib.Path,
) -> None:
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({"templates": [GOOD]}))
    config = write_config(tmp_path, f'templates = "{templates}"')
    status, asked = hf(
        "requestMachines", {"template": {"templateId": "good", "machineCount": 1}}, config=config
    )
    assert status == 0, asked
    templates.write_text('{"templates": [')  # an admin's edit, half saved
    status, refused = hf(
        "requestMachines", {"template": {"templateId": "good", "machineCount": 1}}, config=config
    )
    assert status == 1
    assert refused == {"message": f"{templates}: Input data was truncated"}
    for _ in range(50):
        status, polled = hf(
            "getRequestStatus", {"requests": [{"requestId": asked["requestId"]}]}, config=config
        )
        assert status == 0, polled
        if polled["requests"][0]["status"] != "running":
            break
    assert polled["requests"][0]["status"] == "complete"
    machines = [
        {"name": m["name"], "machineId": m["machineId"]} for m in polled["requests"][0]["machines"]
    ]
    status, returned = hf("requestReturnMachines", {"machines": machines}, config=config)
    assert status == 0, returned


@pytest.mark.slow
def test_a_stray_variable_does_not_stop_a_call_but_config_check_fails_on_it(
    tmp_path: pathlib.Path,
) -> None:
    config = write_config(tmp_path)
    stray = {"HOSTSMITH_SERVR_PORT": "9000"}
    status, answer = hf("getAvailableTemplates", {}, config=config, environment=stray)
    assert status == 0, answer
    checked = hostsmith("config", "check", "--config", str(config), environment=stray)
    assert checked.returncode == 2
    assert checked.stderr.strip().endswith(
        "error: unknown setting HOSTSMITH_SERVR_PORT in the environment, ignored; "
        "did you mean HOSTSMITH_SERVER_PORT?"
    )


@pytest.mark.slow
def test_the_operators_commands_take_host_factorys_words_and_whole_ids(
    tmp_path: pathlib.Path,
) -> None:
    """Issue 13's rough edges: cut ids, HF's status words, show --json, events by id."""
    config = write_config(tmp_path)
    template = {"template": {"templateId": "OnDemand-Minimal-Template-VM", "machineCount": 1}}
    status, asked = hf("requestMachines", template, config=config)
    assert status == 0, asked
    request_id = asked["requestId"]
    for _ in range(50):
        _, polled = hf("getRequestStatus", {"requests": [{"requestId": request_id}]}, config=config)
        if polled["requests"][0]["status"] == "complete":
            break
    (machine,) = polled["requests"][0]["machines"]
    status, returned = hf(
        "requestReturnMachines",
        {"machines": [{"name": machine["name"], "machineId": machine["machineId"]}]},
        config=config,
    )
    assert status == 0, returned
    for _ in range(50):
        _, polled = hf(
            "getRequestStatus", {"requests": [{"requestId": returned["requestId"]}]}, config=config
        )
        if polled["requests"][0]["status"] == "complete":
            break

    piped = hostsmith("requests", "list", "--status", "complete", "--config", str(config))
    assert piped.returncode == 0
    header, *rows = piped.stdout.splitlines()
    assert header.split("\t")[0] == "requestId"
    assert {row.split("\t")[0] for row in rows} == {request_id, returned["requestId"]}  # whole ids
    assert (
        hostsmith("requests", "list", "--status", "bogus", "--config", str(config)).returncode == 2
    )

    shown = hostsmith("requests", "show", request_id, "--json", "--config", str(config))
    assert shown.returncode == 0
    assert len(shown.stdout.splitlines()) == 1
    assert [m["status"] for m in json.loads(shown.stdout)["machines"]] == ["terminated"]

    trail = hostsmith("events", request_id, "--json", "--config", str(config))
    assert trail.returncode == 0, trail.stderr
    assert json.loads(trail.stdout.splitlines()[0])["type"] == "AcquireOpened"
    nothing = hostsmith("events", "req-nope", "--config", str(config))
    assert nothing.returncode == 2
    assert "give a request id (req-…, ret-…), a machine id (i-…)" in nothing.stderr
