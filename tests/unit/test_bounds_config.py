"""The flags that bound the internal channels, and their limits."""

import pytest

from replog.common import wire
from replog.master.config import MAX_BODY_BYTES_LIMIT
from replog.master.config import parse_config as parse_master
from replog.secondary.config import parse_config as parse_secondary

BASE = ["--master", "http://127.0.0.2:5000", "--id", "s1"]


def test_a_secondary_takes_frames_as_large_as_the_masters_by_default():
    secondary = parse_secondary(BASE)
    assert secondary.max_entry_bytes == parse_master([]).max_body_bytes == 1 << 20
    assert secondary.max_frame_bytes == parse_master([]).max_frame_bytes == (1 << 20) + 1024


def test_max_entry_bytes_follows_the_masters_max_body_bytes(monkeypatch):
    assert parse_secondary([*BASE, "--max-entry-bytes", str(8 << 20)]).max_frame_bytes == (
        parse_master(["--max-body-bytes", str(8 << 20)]).max_frame_bytes
    )
    monkeypatch.setenv("REPLOG_MAX_ENTRY_BYTES", str(4 << 20))
    assert parse_secondary(BASE).max_entry_bytes == 4 << 20
    # Smaller entries never make a frame smaller than a batch.
    assert parse_secondary([*BASE, "--max-entry-bytes", "10"]).max_frame_bytes == (1 << 20) + 1024


@pytest.mark.parametrize("value", [str(MAX_BODY_BYTES_LIMIT + 1), "-1", "x"])
def test_max_entry_bytes_is_bounded(value):
    with pytest.raises(SystemExit):
        parse_secondary([*BASE, "--max-entry-bytes", value])
    assert wire.MAX_ENTRY_BYTES_LIMIT == MAX_BODY_BYTES_LIMIT == 64 << 20


@pytest.mark.parametrize("secondary_id", ["x" * 65, "a\tb", ""])
def test_a_secondary_id_the_master_would_refuse_is_refused_at_start(secondary_id):
    with pytest.raises(SystemExit):
        parse_secondary(["--master", "http://127.0.0.2:5000", "--id", secondary_id])
    assert parse_secondary(["--master", "http://m:1", "--id", "x" * 64]).secondary_id == "x" * 64


def test_max_entry_bytes_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        parse_secondary(["--help"])
    out = capsys.readouterr().out
    assert "--max-entry-bytes" in out and "REPLOG_MAX_ENTRY_BYTES" in out
