"""Every setting is declared once; the parser, --help and the config defaults come from it."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest

from replog.common.config import EnvArgumentParser, Setting, StorageConfig, plain
from replog.master import config as master_config
from replog.secondary import config as secondary_config

ROLES = {"master": master_config, "secondary": secondary_config}
SECONDARY_ARGS = ["--master", "http://127.0.0.2:5000", "--id", "s1"]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for setting in {*master_config.SETTINGS, *secondary_config.SETTINGS}:
        for name in setting.env:
            monkeypatch.delenv(name, raising=False)


def help_entries(parser: EnvArgumentParser, monkeypatch) -> dict[str, str]:
    """flag -> its --help entry, whitespace collapsed."""
    monkeypatch.setenv("COLUMNS", "300")
    out = parser.format_help()
    return {
        match.group(1): " ".join(match.group(0).split())
        for match in re.finditer(r"^  (--[a-z0-9-]+).*?(?=^  -|\Z)", out, re.M | re.S)
    }


@pytest.mark.parametrize("role", ROLES)
def test_each_setting_is_in_help_with_its_variables_and_default(role, monkeypatch):
    module = ROLES[role]
    entries = help_entries(module.build_parser(), monkeypatch)
    assert set(entries) - {"--help"} == {s.flag for s in module.SETTINGS}
    for setting in module.SETTINGS:
        entry = entries[setting.flag]
        for name in setting.env:
            assert f"${name}" in entry, (setting.flag, name)
        assert f"(default: {plain(setting.default_markdown())})" in entry, setting.flag
        assert " ".join(plain(setting.help).split()) in entry, setting.flag


@pytest.mark.parametrize("role", ROLES)
def test_flags_are_declared_once_per_role(role):
    settings = ROLES[role].SETTINGS
    flags = [s.flag for s in settings]
    assert len(flags) == len(set(flags))
    assert all(isinstance(s, Setting) and s.env and s.help for s in settings)


def test_master_defaults_come_from_the_declaration():
    parsed = master_config.parse_config([])
    defaults = master_config.MasterConfig()
    for f in fields(defaults):
        if f.name != "storage":
            assert getattr(parsed, f.name) == getattr(defaults, f.name), f.name
    # Only the data directory is the node's own; the rest is StorageConfig's defaults.
    data_dir = next(s for s in master_config.SETTINGS if s.flag == "--data-dir")
    assert parsed.storage == StorageConfig(data_dir=data_dir.default)
    assert defaults.port == master_config.PORT.default == 5000


def test_secondary_defaults_come_from_the_declaration():
    parsed = secondary_config.parse_config(SECONDARY_ARGS)
    defaults = secondary_config.SecondaryConfig(
        host=parsed.host, port=parsed.port, master_url=parsed.master_url, secondary_id="s1"
    )
    for f in fields(defaults):
        if f.name != "storage":
            assert getattr(parsed, f.name) == getattr(defaults, f.name), f.name
    assert parsed.port == secondary_config.PORT.default == 5001
    assert str(parsed.storage.data_dir) == "replog-data/s1"


def test_a_variable_sets_a_value_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("REPLOG_SUSPECT_AFTER", "0.7")
    monkeypatch.setenv("REPLOG_IN_MEMORY", "yes")
    monkeypatch.setenv("SECONDARY_DELAYS", "2.5")
    assert master_config.parse_config([]).suspect_after == 0.7
    assert master_config.parse_config(["--suspect-after", "0.9"]).suspect_after == 0.9
    assert master_config.parse_config([]).storage.data_dir is None
    assert secondary_config.parse_config(SECONDARY_ARGS).delay == 2.5


def test_a_bad_variable_exits_2_naming_it(monkeypatch, capsys):
    monkeypatch.setenv("REPLOG_PORT", "70000")
    with pytest.raises(SystemExit) as exited:
        master_config.parse_config([])
    assert exited.value.code == 2
    assert "REPLOG_PORT='70000' is invalid" in capsys.readouterr().err


def test_the_secret_has_no_default_in_the_parser(monkeypatch):
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN", "hidden-token")
    args = master_config.build_parser().parse_args([])
    assert not hasattr(args, "cluster_token")
    assert master_config.parse_config([]).cluster_token == "hidden-token"
