"""The cluster token and TLS flags, shared by both nodes' parsers."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from replog.master.config import parse_config as parse_master
from replog.secondary.config import parse_config as parse_secondary

SECONDARY = ["--master", "https://127.0.0.2:5000", "--id", "s1", "--host", "127.0.0.3"]
ENV = (
    "REPLOG_CLUSTER_TOKEN",
    "REPLOG_CLUSTER_TOKEN_FILE",
    "REPLOG_TLS_CERT",
    "REPLOG_TLS_KEY",
    "REPLOG_TLS_CA",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def parse(role: str, *argv: str):
    return parse_master(list(argv)) if role == "master" else parse_secondary([*SECONDARY, *argv])


def refused(role: str, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Parsing fails as argparse does: exit 2, a message, no traceback."""
    with pytest.raises(SystemExit) as exc:
        parse(role, *argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
    return err


@pytest.fixture(params=["master", "secondary"])
def role(request: pytest.FixtureRequest) -> str:
    return request.param


def test_no_token_by_default(role: str) -> None:
    config = parse(role)
    assert config.cluster_token is None and not config.tls.enabled


def test_token_from_flag_env_or_file(role, tmp_path: Path, monkeypatch) -> None:
    assert parse(role, "--cluster-token", "abc").cluster_token == "abc"
    token_file = tmp_path / "token"
    token_file.write_text("  from-file-token\n\n")
    assert parse(role, "--cluster-token-file", str(token_file)).cluster_token == "from-file-token"
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN_FILE", str(token_file))
    assert parse(role).cluster_token == "from-file-token"
    monkeypatch.delenv("REPLOG_CLUSTER_TOKEN_FILE")
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN", "from-env")
    config = parse(role)
    assert config.cluster_token == "from-env"
    assert "from-env" not in repr(config)  # never in a logged config
    # A flag on the command line wins over the environment, as for every flag.
    assert parse(role, "--cluster-token", "flag").cluster_token == "flag"
    assert parse(role, "--cluster-token-file", str(token_file)).cluster_token == "from-file-token"


def test_bad_token_settings_are_argparse_errors(role, tmp_path: Path, capsys, monkeypatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("t")
    err = refused(role, capsys, "--cluster-token", "a", "--cluster-token-file", str(token_file))
    assert "not both" in err
    err = refused(role, capsys, "--cluster-token-file", str(tmp_path / "missing"))
    assert "cannot read" in err and "missing" in err
    blank = tmp_path / "blank"
    blank.write_text(" \n\t\n")
    assert "is empty" in refused(role, capsys, "--cluster-token-file", str(blank))
    assert "cannot read" in refused(role, capsys, "--cluster-token-file", str(tmp_path))
    assert "must not be empty" in refused(role, capsys, "--cluster-token", "")
    assert "printable ASCII" in refused(role, capsys, "--cluster-token", "two words")
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN", "a")
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN_FILE", str(token_file))
    assert "both set" in refused(role, capsys)


def test_help_never_shows_the_token(role, monkeypatch, capsys) -> None:
    monkeypatch.setenv("REPLOG_CLUSTER_TOKEN", "do-not-print-me")
    with pytest.raises(SystemExit):
        parse(role, "--help")
    out = capsys.readouterr().out
    assert "do-not-print-me" not in out
    for name in ENV:
        assert f"${name}" in out


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a certificate for 127.0.0.3 and the key of another certificate."""
    root = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.3")
    other = ca.issue_cert("127.0.0.4")
    paths = {name: root / f"{name}.pem" for name in ("ca", "cert", "key", "other_key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    return paths


def test_tls_flags(role, pki, monkeypatch) -> None:
    config = parse(role, "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]))
    assert config.tls.enabled and config.tls.ca is None
    assert config.tls.server_context() is not None
    monkeypatch.setenv("REPLOG_TLS_CA", str(pki["ca"]))
    assert parse(role).tls.ca == pki["ca"] and not parse(role).tls.enabled


def test_bad_tls_settings_are_argparse_errors(role, pki, tmp_path, capsys) -> None:
    assert "go together" in refused(role, capsys, "--tls-cert", str(pki["cert"]))
    assert "go together" in refused(role, capsys, "--tls-key", str(pki["key"]))
    err = refused(role, capsys, "--tls-cert", str(pki["cert"]), "--tls-key", str(tmp_path / "no"))
    assert "--tls-key" in err and "cannot read" in err
    err = refused(role, capsys, "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["other_key"]))
    assert "not a usable PEM certificate and its matching" in err
    err = refused(role, capsys, "--tls-cert", str(pki["key"]), "--tls-key", str(pki["key"]))
    assert "not a usable PEM certificate" in err
    assert "not a PEM CA" in refused(role, capsys, "--tls-ca", str(pki["key"]))
    assert "cannot read" in refused(role, capsys, "--tls-ca", str(tmp_path / "nope.pem"))


def test_a_secondary_serving_tls_advertises_https(pki) -> None:
    tls = ["--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"])]
    assert parse("secondary", "--port", "5009", *tls).url == "https://127.0.0.3:5009"
    assert parse("secondary", "--port", "5009").url == "http://127.0.0.3:5009"
    advertised = parse("secondary", *tls, "--advertise", "https://node.example:443")
    assert advertised.url == "https://node.example:443"
