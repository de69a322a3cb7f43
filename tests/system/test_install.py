"""`hostsmith install` into a fake Host Factory tree, then the whole cycle through what it installed."""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

import pytest
import trio

from hostsmith.actors.providers.aws import AwsSettings, open_aws_provider
from tests.support.daemon import hostsmith, without_hostsmith_settings
from tests.support.host_factory import script_caller, settled, succeeding

OTHER_PROVIDER = {
    "name": "awsinst",
    "enabled": 1,
    "plugin": "aws",
    "confPath": "x",
    "workPath": "y",
    "logPath": "z",
}


def host_factory_top(tmp_path: pathlib.Path) -> pathlib.Path:
    top = tmp_path / "hf"
    for folder in ("conf/providers", "conf/providerplugins", "work", "log"):
        (top / folder).mkdir(parents=True)
    (top / "conf" / "providers" / "hostProviders.json").write_text(
        json.dumps({"version": 2, "providers": [OTHER_PROVIDER]})
    )
    return top


def install(top: pathlib.Path, *extra: str) -> dict[str, Any]:
    done = hostsmith(
        "install",
        "--hf-conf",
        str(top / "conf"),
        "--name",
        "hsinst",
        "--provider",
        "sim",
        "--json",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_install_registers_hostsmith_beside_other_providers_and_twice_changes_nothing(
    tmp_path: pathlib.Path,
) -> None:
    top = host_factory_top(tmp_path)
    planned = install(top, "--dry-run")
    assert planned["dry_run"] is True
    assert not (top / "hostsmith").exists()  # a dry run writes nothing
    done = install(top)
    assert done["changes"] == planned["changes"]
    assert {c["action"] for c in done["changes"]} == {"create", "update"}
    providers = json.loads((top / "conf" / "providers" / "hostProviders.json").read_text())
    assert providers["providers"][0] == OTHER_PROVIDER  # someone else's entry, untouched
    assert providers["providers"][1]["name"] == "hsinst"
    assert providers["providers"][1]["plugin"] == "hostsmith"
    plugins = json.loads(
        (top / "conf" / "providerplugins" / "hostProviderPlugins.json").read_text()
    )
    assert plugins["providerplugins"] == [
        {"name": "hostsmith", "enabled": 1, "scriptPath": f"{top / 'hostsmith' / 'scripts'}/"}
    ]
    assert install(top)["changes"] == []  # a second run finds nothing to change


@pytest.mark.slow
def test_host_factory_drives_the_whole_cycle_through_the_installed_scripts(
    tmp_path: pathlib.Path,
) -> None:
    top = host_factory_top(tmp_path)
    install(top)
    conf = top / "conf" / "providers" / "hsinst"
    (conf / "hostsmith.toml").write_text(
        "[sim]\nboot_time = 0.1\nshutdown_time = 0.1\nlatency = 0.0\n"
    )
    scripts = top / "hostsmith" / "scripts"
    elsewhere = tmp_path / "hf-cwd"
    elsewhere.mkdir()
    environment = without_hostsmith_settings() | {
        "PATH": "/usr/bin:/bin",  # hostsmith is found through the path install wrote
        "HF_CONFDIR": str(top / "conf"),
        "HF_WORKDIR": str(top / "work"),
        "HF_LOGDIR": str(top / "log"),
        "HF_PROVIDER_NAME": "hsinst",
        "HF_PROVIDER_CONFDIR": str(conf),
        "HF_PROVIDER_WORKDIR": str(top / "work" / "providers" / "hsinst"),
        "HF_PROVIDER_LOGDIR": str(top / "log"),
    }

    script = script_caller(scripts, environment=environment, cwd=elsewhere, inputs=tmp_path)
    call = succeeding(script)

    installed = json.loads((conf / "simprov_templates.json").read_text())["templates"]
    offered = call("getAvailableTemplates", {})["templates"]
    assert [t["templateId"] for t in offered] == [t["templateId"] for t in installed]
    asked = call(
        "requestMachines", {"template": {"templateId": offered[0]["templateId"], "machineCount": 2}}
    )
    acquired = settled(script, asked["requestId"])
    assert acquired["status"] == "complete"
    held = [{"name": m["name"], "machineId": m["machineId"]} for m in acquired["machines"]]
    assert call("getReturnRequests", {"machines": held})["requests"] == []
    returned = call("requestReturnMachines", {"machines": held})
    assert settled(script, returned["requestId"])["status"] == "complete"
    assert (top / "work" / "providers" / "hsinst" / "events.db").exists()
    assert not (elsewhere / ".hostsmith").exists()


@pytest.mark.slow
def test_installed_for_aws_the_cycle_runs_on_ibm_files_alone(
    tmp_path: pathlib.Path, moto: str
) -> None:
    """Templates only from awsprov_templates.json, settings only from IBM's awsprov_config.json."""
    top = host_factory_top(tmp_path)
    done = hostsmith(
        "install", "--hf-conf", str(top / "conf"), "--name", "awshs", "--provider", "aws", "--json"
    )
    assert done.returncode == 0, done.stderr
    conf = top / "conf" / "providers" / "awshs"
    (conf / "bootstrap.sh").write_text("#!/bin/bash\necho joined > /tmp/joined\n")
    template = {
        "templateId": "ibm-ondemand",
        "maxNumber": 4,
        "attributes": {
            "type": ["String", "X86_64"],
            "ncpus": ["Numeric", "1"],
            "nram": ["Numeric", "1024"],
        },
        "priceType": "ondemand",
        "imageId": "ami-1e749f67",
        "vmType": "t3.micro",
        "userDataScript": "bootstrap.sh",
    }
    (conf / "awsprov_templates.json").write_text(json.dumps({"templates": [template]}))
    (conf / "awsprov_config.json").write_text(
        json.dumps(
            {
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": moto,
                "AWS_SPOT_TERMINATE_ON_RECLAIM": True,
            }
        )
    )
    environment = without_hostsmith_settings() | {
        "PATH": "/usr/bin:/bin",
        "HF_PROVIDER_NAME": "awshs",
        "HF_PROVIDER_CONFDIR": str(conf),
        "HF_PROVIDER_WORKDIR": str(top / "work" / "providers" / "awshs"),
        "HF_PROVIDER_LOGDIR": str(top / "log"),
    }

    scripts = top / "hostsmith" / "scripts"
    script = script_caller(scripts, environment=environment, cwd=tmp_path, inputs=tmp_path)
    call = succeeding(script)

    assert [t["templateId"] for t in call("getAvailableTemplates", {})["templates"]] == [
        "ibm-ondemand"
    ]
    asked = call("requestMachines", {"template": {"templateId": "ibm-ondemand", "machineCount": 1}})
    entry = settled(script, asked["requestId"])
    assert entry["status"] == "complete", entry
    (machine,) = entry["machines"]
    user_data = trio.run(user_data_of, moto, machine["machineId"])
    assert user_data == "#!/bin/bash\necho joined > /tmp/joined\n"
    returned = call(
        "requestReturnMachines",
        {"machines": [{"name": machine["name"], "machineId": machine["machineId"]}]},
    )
    assert returned["requestId"].startswith("ret-")


async def user_data_of(moto: str, machine_id: str) -> str:
    async with open_aws_provider(AwsSettings(region="us-east-1", endpoint=moto)) as aws:
        answer = await aws.aws.ec2.describe_instance_attribute(
            InstanceId=machine_id, Attribute="userData"
        )
    return base64.b64decode(answer["UserData"]["Value"]).decode()
