"""Every flag of each node is in the README's table for it, with the same variables, and back;
the tables are exactly what the declarations of the settings generate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.cluster import BIN

README = Path(__file__).parents[2] / "README.md"
# Each console script and the module that declares its settings.
DECLARED_IN = {
    "replog-master": "replog.master.config",
    "replog-secondary": "replog.secondary.config",
}


def readme_rows(script: str) -> list[str]:
    """The lines of the table under "`<script>`" in README.md, header included."""
    text = README.read_text()
    start = text.index(f"`{script}`\n\n| flag |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def readme_table(script: str) -> dict[str, set[str]]:
    """flag -> environment variables, from the table under "`<script>`" in README.md."""
    rows = readme_rows(script)
    table = {}
    for row in rows[2:]:  # after the header and the |---| line
        flag_cell, env_cell = (cell.strip() for cell in row.strip("|").split("|")[:2])
        flag = re.match(r"`(--[a-z0-9-]+)", flag_cell)
        assert flag, row
        table[flag.group(1)] = set(re.findall(r"[A-Z][A-Z0-9_]+", env_cell))
    return table


def help_flags(script: str) -> dict[str, set[str]]:
    """flag -> environment variables, from `<script> --help` ("[env: $NAME or $OTHER]")."""
    out = subprocess.run(
        [str(BIN / script), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "300"},
    ).stdout
    flags = {}
    for entry in re.finditer(r"^  (--[a-z0-9-]+).*?(?=^  -|\Z)", out, re.M | re.S):
        flags[entry.group(1)] = set(re.findall(r"\$([A-Z][A-Z0-9_]*)", entry.group(0)))
    flags.pop("--help", None)
    return flags


@pytest.mark.parametrize("script", ["replog-master", "replog-secondary"])
def test_help_and_readme_list_the_same_flags_and_variables(script):
    assert readme_table(script) == help_flags(script)


@pytest.mark.parametrize("script", ["replog-master", "replog-secondary"])
def test_readme_table_is_what_the_declaration_generates(script):
    """A default, variable or help text changed on one side only fails here; regenerate
    the table with `python -m <module> --markdown`."""
    generated = subprocess.run(
        [sys.executable, "-m", DECLARED_IN[script], "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert readme_rows(script) == generated.splitlines()
