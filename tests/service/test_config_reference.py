"""The configuration reference is generated from the config structs, and kept current.

docs/config.md and docs/hostsmith.example.toml are `hostsmith config
reference` output; these tests regenerate both and compare, so a setting
added without its docs (or docs left behind by a removed setting) fails.
"""

from __future__ import annotations

import pathlib
import re

import msgspec

from hostsmith.actors.service import load_config, settings_reference, undocumented
from tests.support.daemon import hostsmith

DOCS = pathlib.Path(__file__).parents[2] / "docs"


def test_docs_config_md_is_the_reference_as_generated() -> None:
    generated = hostsmith("config", "reference")
    assert generated.returncode == 0, generated.stderr
    assert (DOCS / "config.md").read_text() == generated.stdout, (
        "docs/config.md is stale: run `hostsmith config reference > docs/config.md`"
    )


def test_the_example_toml_is_the_reference_as_generated() -> None:
    generated = hostsmith("config", "reference", "--format", "toml")
    assert generated.returncode == 0, generated.stderr
    assert (DOCS / "hostsmith.example.toml").read_text() == generated.stdout, (
        "docs/hostsmith.example.toml is stale: run "
        "`hostsmith config reference --format toml > docs/hostsmith.example.toml`"
    )


def test_every_setting_says_what_it_means() -> None:
    assert undocumented(settings_reference()) == []


def test_the_example_with_every_key_uncommented_is_exactly_the_defaults(
    tmp_path: pathlib.Path,
) -> None:
    example = (DOCS / "hostsmith.example.toml").read_text()
    uncommented = re.sub(r"(?m)^# (\w+ = )", r"\1", example)
    assert uncommented.count("\n# ") < example.count("\n# ")  # keys were uncommented
    written = tmp_path / "hostsmith.toml"
    written.write_text(uncommented)
    environ = {"HOME": str(tmp_path)}
    example_config, default_config = load_config(written, environ), load_config(None, environ)
    assert example_config.data_path == default_config.data_path  # "" means the default
    from_example = msgspec.to_builtins(example_config)
    defaults = msgspec.to_builtins(default_config)
    for shown in (from_example, defaults):
        del shown["data_dir"]
    sections = from_example.pop("providers")
    assert set(sections) == {"sim", "aws"}  # every provider section, at its defaults
    for name, section in sections.items():
        plugin_defaults = msgspec.to_builtins(type(example_config.providers[name])())
        assert section == plugin_defaults
    del defaults["providers"]
    assert from_example == defaults
    keys = {s.key for s in settings_reference()}
    assert all(re.search(rf"(?m)^{key} = ", uncommented) for key in keys)


def test_every_environment_variable_in_the_reference_is_one_hostsmith_reads(
    tmp_path: pathlib.Path,
) -> None:
    for setting in settings_reference():
        value = str(setting.default) if setting.default not in ("", None) else "x"
        config = load_config(None, {"HOME": str(tmp_path), setting.environment: value})
        assert not config.unknown_settings, setting.environment
