"""Providers come from the registry: a third one, installed from the tests, runs the whole cycle."""

from __future__ import annotations

import pathlib

import pytest

from hostsmith.actors.errors import ConfigError
from hostsmith.actors.providers import ProviderRegistry
from hostsmith.actors.service import load_config
from tests.support.daemon import Daemon, hf, write_config
from tests.support.hostfactory_shapes import conforms
from tests.support.tiny_cloud import PLUGIN, TinySettings

ON_DEMAND = "OnDemand-Minimal-Template-VM"


def install_tiny_cloud(site: pathlib.Path) -> pathlib.Path:
    """Register tests.support.tiny_cloud under the `hostsmith.providers` entry points, as pip would."""
    info = site / "tiny_cloud-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-cloud\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[hostsmith.providers]\ntiny = tests.support.tiny_cloud:PLUGIN\n"
    )
    return site


def test_a_provider_given_to_the_registry_owns_its_config_section(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "hostsmith.toml"
    file.write_text('provider = "tiny"\n[tiny]\nprefix = "t"\n')
    config = load_config(file, {}, providers=ProviderRegistry.discover([PLUGIN]))
    assert config.provider == "tiny"
    assert config.providers["tiny"] == TinySettings(prefix="t")
    file.write_text('provider = "tiny"\n[tiny]\nregion = "t"\n')
    with pytest.raises(ConfigError, match=r"\[tiny\] Object contains unknown field `region`"):
        load_config(file, {}, providers=ProviderRegistry.discover([PLUGIN]))


@pytest.mark.slow
def test_a_provider_installed_through_entry_points_runs_the_host_factory_cycle(
    tmp_path: pathlib.Path,
) -> None:
    site = install_tiny_cloud(tmp_path / "site")
    config = write_config(tmp_path, 'provider = "tiny"\n[tiny]\nprefix = "t"\n')
    daemon = Daemon(config, environment={"PYTHONPATH": str(site)}).start()

    def call(command: str, payload: object) -> dict[str, object]:
        status, answer = hf(command, payload, url=daemon.url)
        assert status == 0, answer
        conforms(command, answer)
        return answer

    def settled(request_id: str) -> dict:  # type: ignore[type-arg]
        for _ in range(200):
            (entry,) = call("getRequestStatus", {"requests": [{"requestId": request_id}]})[
                "requests"
            ]  # type: ignore[misc]
            if entry["status"] != "running":
                return entry  # type: ignore[no-any-return]
        raise AssertionError(f"{request_id} never settled")

    try:
        asked = call("requestMachines", {"template": {"templateId": ON_DEMAND, "machineCount": 2}})
        done = settled(asked["requestId"])  # type: ignore[arg-type]
        assert done["status"] == "complete"
        assert sorted(m["machineId"] for m in done["machines"]) == ["t-1", "t-2"]
        assert {m["name"] for m in done["machines"]} == {"t-1.tiny.internal", "t-2.tiny.internal"}

        machines = [{"name": m["name"], "machineId": m["machineId"]} for m in done["machines"]]
        returned = call("requestReturnMachines", {"machines": machines})
        gone = settled(returned["requestId"])  # type: ignore[arg-type]
        assert gone["status"] == "complete"
        assert {m["result"] for m in gone["machines"]} == {"succeed"}
        (template,) = [
            t
            for t in call("getAvailableTemplates", {})["templates"]  # type: ignore[attr-defined]
            if t["templateId"] == ON_DEMAND
        ]
        assert template["availableNumber"] == template["maxNumber"]  # capacity given back
    finally:
        assert daemon.stop() == 0
