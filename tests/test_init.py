"""`authbridge init` through the real executable, and the PKI it relies on.

Covers: every file made with its mode; a second run keeps everything; --force
remakes TLS material, config and kubeconfig but never the signing keys or the
pepper; the serving certificate chains to the CA and names the hosts/IPs; the
client certificate is for client auth; the webhook kubeconfig points at
/authenticate with the CA and client cert inline; the printed kube-apiserver
flags; bad names refused before anything is written; the config is what
`serve` and every other command read by default.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import shlex
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from authbridge import pki
from authbridge.errors import InputError
from tests.serving import AUTHBRIDGE, clean_env, run_cli


def _init(cwd: Path, args: str = "") -> dict[str, object]:
    return json.loads(run_cli(cwd, f"-o json init {args}"))  # type: ignore[no-any-return]


def _init_refused(cwd: Path, args: str) -> subprocess.CompletedProcess[str]:
    """Run `authbridge init ARGS` expecting a refusal; nothing may have been written."""
    proc = subprocess.run(
        [AUTHBRIDGE, "init", *shlex.split(args)],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert not (cwd / "keys").exists()
    return proc


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_makes_everything_private_and_is_idempotent(tmp_path: Path) -> None:
    out = _init(tmp_path, "--hostname authbridge.example.com --ip 10.0.0.5 --cluster-id prod")
    keys = tmp_path / "keys"
    assert out["Issuer"] == "https://authbridge.example.com:8443"
    assert _mode(keys) == 0o700 and _mode(keys / "tls") == 0o700
    for private in [
        "tls/ca.key",
        "tls/server.key",
        "tls/apiserver-client.key",
        "access-key-pepper",
        "authbridge.yaml",
        "webhook.kubeconfig",
        "signing-keys.json",
    ]:
        assert _mode(keys / private) == 0o600, private
    assert len(list(keys.glob("*.pem"))) == 1
    flags = out["ApiserverFlags"]
    assert f"--authentication-token-webhook-config-file={keys}/webhook.kubeconfig" in flags  # type: ignore[operator]

    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    again = _init(tmp_path, "--hostname other.example.com")
    assert again["Made"] == []
    assert {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()} == before


def test_force_remakes_tls_but_never_keys_or_pepper(tmp_path: Path) -> None:
    _init(tmp_path)
    keys = tmp_path / "keys"
    pem = next(keys.glob("*.pem")).read_bytes()
    pepper = (keys / "access-key-pepper").read_bytes()
    ca = (keys / "tls" / "ca.crt").read_bytes()
    out = _init(tmp_path, "--force --hostname new.example.com")
    assert "tls/ca.crt" in out["Made"]  # type: ignore[operator]
    assert (keys / "tls" / "ca.crt").read_bytes() != ca
    assert next(keys.glob("*.pem")).read_bytes() == pem
    assert (keys / "access-key-pepper").read_bytes() == pepper


def test_certificates_chain_and_name_the_server(tmp_path: Path) -> None:
    _init(tmp_path, "--hostname authbridge.example.com --ip 10.0.0.5 --ip ::1")
    tls = tmp_path / "keys" / "tls"
    ca = x509.load_pem_x509_certificate((tls / "ca.crt").read_bytes())
    server = x509.load_pem_x509_certificate((tls / "server.crt").read_bytes())
    client = x509.load_pem_x509_certificate((tls / "apiserver-client.crt").read_bytes())
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["authbridge.example.com"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.5"),
        ipaddress.ip_address("::1"),
    ]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_webhook_kubeconfig(tmp_path: Path) -> None:
    _init(tmp_path, "--ip 10.0.0.5 --port 9443")
    keys = tmp_path / "keys"
    doc = yaml.safe_load((keys / "webhook.kubeconfig").read_text())
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.0.5:9443/authenticate"
    ca_pem = (keys / "tls" / "ca.crt").read_bytes()
    assert base64.b64decode(cluster["certificate-authority-data"]) == ca_pem
    user = doc["users"][0]["user"]
    assert (
        base64.b64decode(user["client-certificate-data"])
        == (keys / "tls" / "apiserver-client.crt").read_bytes()
    )
    assert doc["current-context"] == doc["contexts"][0]["name"]


def test_commands_read_the_config_init_wrote(tmp_path: Path) -> None:
    _init(tmp_path, "--cluster-id prod")
    config = yaml.safe_load((tmp_path / "keys" / "authbridge.yaml").read_text())
    assert config["clusters"] == ["prod"] and config["store"] == "sqlite:///../data/authbridge.db"
    # `keys list` finds the keys through keys/authbridge.yaml (keysDir: .)
    listed = json.loads(run_cli(tmp_path, "-o json keys list"))["Keys"]
    assert len(listed) == 1 and listed[0]["state"] == "active"
    run_cli(tmp_path, "iam create-account --account-id 111122223333")
    assert (tmp_path / "data" / "authbridge.db").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("--hostname bad_host!", "hostname"),
        ("--ip 300.1.2.3", "ip"),
        ("--cluster-id 'bad id'", "cluster id"),
        ("--issuer http://plain.example", "https"),
    ],
)
def test_bad_input_is_refused_before_writing(tmp_path: Path, args: str, says: str) -> None:
    proc = _init_refused(tmp_path, args)
    assert proc.returncode == 1, proc
    assert proc.stderr.startswith("authbridge: ") and says in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "keys").exists()


def test_pki_refuses_empty_and_malformed_names() -> None:
    with pytest.raises(InputError):
        pki.server_names([], [])
    with pytest.raises(InputError):
        pki.server_names(["a" * 300], [])
    assert len(pki.server_names(["*.example.com"], ["::1"])) == 2


def test_one_client_certificate_per_apiserver(tmp_path: Path) -> None:
    out = _init(
        tmp_path,
        "--cluster-id prod --cluster-id staging"
        " --apiserver-client prod-cp=prod --apiserver-client stg-cp=staging",
    )
    keys = tmp_path / "keys"
    clients = {c["Name"]: c for c in out["ApiserverClients"]}  # type: ignore[attr-defined]
    assert set(clients) == {"prod-cp", "stg-cp"}
    for name, cluster in (("prod-cp", "prod"), ("stg-cp", "staging")):
        cert = x509.load_pem_x509_certificate((keys / "tls" / f"apiserver-{name}.crt").read_bytes())
        assert cert.subject.rfc4514_string() == f"O={cluster},CN={name}"
        kubeconfig = yaml.safe_load((keys / f"webhook-{name}.kubeconfig").read_text())
        user = kubeconfig["users"][0]
        assert user["name"] == name
        assert base64.b64decode(user["user"]["client-certificate-data"]) == cert.public_bytes(
            serialization.Encoding.PEM
        )
        assert clients[name]["ApiserverFlags"][0].endswith(f"webhook-{name}.kubeconfig")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("--apiserver-client prod-cp", "NAME=CLUSTER_ID"),
        ("--cluster-id prod --apiserver-client cp=staging", "not one of --cluster-id"),
        ("--cluster-id prod --apiserver-client Bad_Name=prod", "DNS label"),
    ],
)
def test_bad_apiserver_clients_are_refused(tmp_path: Path, args: str, says: str) -> None:
    proc = _init_refused(tmp_path, args)
    assert proc.returncode in (1, 2), proc
    assert says in proc.stderr
    assert not (tmp_path / "keys").exists()
