"""Configuration: the file, the HOSTSMITH_* overrides, and provider sections owned by their plugins."""

from __future__ import annotations

import json
import pathlib

import httpx
import msgspec
import pytest

from hostsmith.actors.errors import ConfigError
from hostsmith.actors.providers import GatewayPolicy, ProviderRegistry
from hostsmith.actors.providers.aws import AwsSettings
from hostsmith.actors.providers.sim import SimSettings
from hostsmith.actors.service import Config, RequestSettings, load_config, read_templates_file
from tests.support.daemon import Daemon, write_config


def test_no_file_and_no_variables_give_the_embedded_defaults() -> None:
    config = load_config(None, {})
    assert config.provider == "sim"
    assert config.requests == RequestSettings()
    assert config.gateway == GatewayPolicy()
    assert config.providers == {"sim": SimSettings()}
    assert config.store_url.startswith("sqlite://")
    assert config.store_url.endswith("/events.db")


def test_variables_override_top_level_keys_sections_and_provider_sections(
    tmp_path: pathlib.Path,
) -> None:
    file = tmp_path / "hostsmith.toml"
    file.write_text('store = "memory://"\n[server]\nport = 9000\n[sim]\nseed = 1\nlatency = 0.5\n')
    config = load_config(
        file,
        {
            "HOSTSMITH_STORE": "sqlite:///tmp/x.db",
            "HOSTSMITH_SERVER_PORT": "9100",
            "HOSTSMITH_SIM_SEED": "7",
            "HOSTSMITH_REQUESTS_POLL_INTERVAL": "0.5",
            "HOSTSMITH_CONFIG": "ignored: the scripts read it themselves",
            "PATH": "/usr/bin",
        },
    )
    assert config.store == "sqlite:///tmp/x.db"
    assert config.server.port == 9100
    assert config.requests.poll_interval == 0.5
    assert config.providers["sim"] == SimSettings(seed=7, latency=0.5)


def test_a_stray_variable_is_named_with_the_nearest_setting_and_ignored() -> None:
    """Issue 13: any unknown HOSTSMITH_* variable used to fail every call."""
    config = load_config(None, {"HOSTSMITH_DEBUG": "1", "HOSTSMITH_SERVER_PROT": "9"})
    assert config.unknown_settings == (
        "unknown setting HOSTSMITH_DEBUG in the environment, ignored",
        "unknown setting HOSTSMITH_SERVER_PROT in the environment, ignored; "
        "did you mean HOSTSMITH_SERVER_PORT?",
    )
    assert config.server.port == 8642
    assert set(config.unknown_settings) <= set(config.warnings)


def test_a_bad_value_in_a_provider_section_names_the_section_and_the_key(
    tmp_path: pathlib.Path,
) -> None:
    file = tmp_path / "hostsmith.toml"
    file.write_text("[sim]\nfailure_rate = 2\n")
    with pytest.raises(
        ConfigError,
        match=r"^config file .*: \[sim\] Expected `float` <= 1.0 - at `\$.failure_rate`$",
    ):
        load_config(file, {})


def test_a_section_no_installed_provider_owns_is_refused(tmp_path: pathlib.Path) -> None:
    file = tmp_path / "hostsmith.toml"
    file.write_text("[mycloud]\nregion = 'x'\n")
    with pytest.raises(ConfigError, match=r"unknown field `mycloud`"):
        load_config(file, {})


def test_an_unknown_provider_is_named_with_the_installed_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"^unknown provider 'mycloud': the installed providers are aws, sim$"
    ):
        load_config(None, {"HOSTSMITH_PROVIDER": "mycloud"}, providers=ProviderRegistry.discover())


def test_the_sections_are_the_components_own_settings_structs() -> None:
    """One default per setting: the config holds the components' structs, not copies of them."""
    fields = {field.name: field.type for field in msgspec.structs.fields(Config)}
    assert fields["requests"] is RequestSettings
    assert fields["gateway"] is GatewayPolicy


@pytest.mark.slow
def test_the_daemon_takes_its_settings_from_hostsmith_variables(tmp_path: pathlib.Path) -> None:
    daemon = Daemon(write_config(tmp_path), environment={"HOSTSMITH_SERVER_MAX_BODY": "2048"})
    daemon.start()
    try:
        response = httpx.post(f"{daemon.url}/api/v1/getAvailableTemplates", content=b" " * 4096)
    finally:
        daemon.stop()
    assert response.status_code == 413
    assert response.json() == {"message": "request body is larger than the limit of 2048 bytes"}


SIM_TEMPLATES = {
    "templates": [
        {
            "templateId": "hf-sim-1",
            "maxNumber": 4,
            "attributes": {
                "type": ["String", "X86_64"],
                "ncpus": ["Numeric", "1"],
                "nram": ["Numeric", "1024"],
            },
        }
    ]
}


def host_factory_tree(root: pathlib.Path) -> dict[str, str]:
    """Host Factory's variables for a provider instance `hsinst`, its directories made."""
    conf, work, logs = root / "conf", root / "work", root / "log"
    for directory in (conf, work, logs):
        directory.mkdir(parents=True)
    return {
        "HF_PROVIDER_NAME": "hsinst",
        "HF_PROVIDER_CONFDIR": str(conf),
        "HF_PROVIDER_WORKDIR": str(work),
        "HF_PROVIDER_LOGDIR": str(logs),
    }


def test_under_host_factory_every_path_comes_from_its_directories(tmp_path: pathlib.Path) -> None:
    hf = host_factory_tree(tmp_path)
    (tmp_path / "conf" / "simprov_templates.json").write_text(json.dumps(SIM_TEMPLATES))
    config = load_config(None, hf)
    assert config.provider == "sim"  # the provider whose templates file is there
    assert config.templates_path == tmp_path / "conf" / "simprov_templates.json"
    assert config.data_dir == str(tmp_path / "work")
    assert config.log.file == str(tmp_path / "log" / "hostsmith.log")
    assert config.store_url == f"sqlite://{tmp_path / 'work'}/events.db"


def test_ibm_defaults_derive_the_provider_dirs_from_hf_confdir_and_workdir(
    tmp_path: pathlib.Path,
) -> None:
    conf = tmp_path / "hfconf" / "providers" / "hsinst"
    conf.mkdir(parents=True)
    (conf / "simprov_templates.json").write_text(json.dumps(SIM_TEMPLATES))
    config = load_config(
        None,
        {
            "HF_PROVIDER_NAME": "hsinst",
            "HF_CONFDIR": str(tmp_path / "hfconf"),
            "HF_WORKDIR": str(tmp_path / "hfwork"),
        },
    )
    assert config.templates_path == conf / "simprov_templates.json"
    assert config.data_dir == str(tmp_path / "hfwork" / "providers" / "hsinst")


def test_ibm_provider_config_keys_are_mapped_and_the_rest_named(tmp_path: pathlib.Path) -> None:
    hf = host_factory_tree(tmp_path)
    conf = tmp_path / "conf"
    (conf / "awsprov_templates.json").write_text(json.dumps(SIM_TEMPLATES))
    (conf / "awsprov_config.json").write_text(
        json.dumps(
            {
                "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
                "AWS_CREDENTIAL_FILE": "/etc/hf/credentials",
                "AWS_SPOT_TERMINATE_ON_RECLAIM": True,
            }
        )
    )
    config = load_config(None, hf | {"HOSTSMITH_AWS_REGION": "us-east-2"})
    assert config.provider == "aws"
    assert config.providers["aws"] == AwsSettings(
        region="us-east-2",  # hostsmith's own setting wins over Host Factory's file
        endpoint="http://127.0.0.1:5000",
        credential_file="/etc/hf/credentials",
    )
    assert config.warnings == (
        f"{conf / 'awsprov_config.json'}: AWS_SPOT_TERMINATE_ON_RECLAIM is not used by "
        "hostsmith's aws provider",
    )


def test_a_conf_dir_without_templates_is_an_error_not_the_examples(tmp_path: pathlib.Path) -> None:
    hf = host_factory_tree(tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"^Host Factory's conf dir .*/conf holds no templates file; expected one of "
        r"awsprov_templates.json, simprov_templates.json$",
    ):
        load_config(None, hf)


def test_hostsmith_toml_beside_host_factorys_files_is_read_and_its_paths_are_its_own(
    tmp_path: pathlib.Path,
) -> None:
    hf = host_factory_tree(tmp_path)
    conf = tmp_path / "conf"
    (conf / "simprov_templates.json").write_text(json.dumps(SIM_TEMPLATES))
    (conf / "hostsmith.toml").write_text('data_dir = "state"\n[sim]\nseed = 9\n')
    config = load_config(None, hf)
    assert config.data_dir == str(conf / "state")  # relative to the file, not the cwd
    assert config.providers["sim"].seed == 9


def test_a_user_data_script_is_read_beside_the_templates_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / "boot.sh").write_text("#!/bin/sh\necho hi\n")
    base = SIM_TEMPLATES["templates"][0]
    templates = tmp_path / "templates.json"
    templates.write_text(
        json.dumps(
            {
                "templates": [
                    base | {"templateId": "scripted", "userDataScript": "boot.sh"},
                    base | {"templateId": "both", "userDataScript": "boot.sh", "userData": "x"},
                    base | {"templateId": "missing", "userDataScript": "absent.sh"},
                ]
            }
        )
    )
    read = read_templates_file(templates)
    assert read.templates["scripted"].user_data == "#!/bin/sh\necho hi\n"
    assert read.left_out == [
        f"{templates}: template 'both': give userData or userDataScript, not both",
        f"{templates}: template 'missing': cannot read userDataScript absent.sh: "
        "No such file or directory",
    ]


def test_the_default_data_dir_is_the_users_never_the_current_directory(
    tmp_path: pathlib.Path,
) -> None:
    assert load_config(None, {"XDG_DATA_HOME": str(tmp_path / "xdg")}).data_path == (
        tmp_path / "xdg" / "hostsmith"
    )
    assert load_config(None, {"HOME": str(tmp_path)}).data_path == (
        tmp_path / ".local" / "share" / "hostsmith"
    )
