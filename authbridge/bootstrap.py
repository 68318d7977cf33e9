"""``authbridge init``: everything a server and a kube-apiserver need, made once.

Under the chosen directory (default ``keys/``) it makes what is missing and
keeps what exists (``force`` remakes TLS material, the config and the
kubeconfig; never the signing keys or the access-key pepper, whose loss would
invalidate every token and access key):

    tls/ca.crt, tls/ca.key                   the CA (key 0600)
    tls/server.crt, tls/server.key           serving certificate for the names/IPs given
    tls/apiserver-client.crt|key             the kube-apiserver's client certificate (mTLS)
    <kid>.pem, signing-keys.json             the first signing key
    access-key-pepper                        HMAC key for access-key secrets
    authbridge.yaml                          the config `serve` reads by default
    webhook.kubeconfig                       for --authentication-token-webhook-config-file (0600)
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from authbridge import pki
from authbridge.errors import InputError
from authbridge.files import PRIVATE, PUBLIC, write_atomic
from authbridge.iam.credentials import load_or_create_pepper
from authbridge.keys import Algorithm, KeyDirectory
from authbridge.settings import CONFIG_FILE_NAME, DEFAULT_ISSUER

WEBHOOK_KUBECONFIG = "webhook.kubeconfig"
APISERVER_CLIENT_NAME = "kube-apiserver"
# How long the kube-apiserver may cache a webhook verdict: the revocation bound it adds.
RECOMMENDED_WEBHOOK_CACHE_TTL = "10s"


@dataclass(frozen=True)
class InitRequest:
    directory: Path
    hostnames: Sequence[str] = ()
    ips: Sequence[str] = ()
    port: int = 8443
    cluster_ids: Sequence[str] = ("default",)
    issuer: str | None = None
    account_id: str | None = None
    key_algorithm: Algorithm = "RS256"
    data_dir: Path | None = None  # default: ./data of the working directory
    force: bool = False


@dataclass
class InitReport:
    directory: Path
    issuer: str
    server_url: str
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_FILE_NAME

    @property
    def webhook_kubeconfig(self) -> Path:
        return self.directory / WEBHOOK_KUBECONFIG

    def apiserver_flags(self) -> list[str]:
        return [
            f"--authentication-token-webhook-config-file={self.webhook_kubeconfig}",
            "--authentication-token-webhook-version=v1",
            f"--authentication-token-webhook-cache-ttl={RECOMMENDED_WEBHOOK_CACHE_TTL}",
        ]


def init_directory(req: InitRequest, *, cwd: Path | None = None) -> InitReport:
    if not 0 < req.port < 65536:
        raise InputError("port", f"must be 1-65535, got {req.port}")
    cwd = cwd or Path.cwd()
    directory = (cwd / req.directory).resolve()
    hostnames = list(req.hostnames) or (["localhost"] if not req.ips else [])
    ips = list(req.ips) or (["127.0.0.1"] if not req.hostnames else [])
    pki.server_names(hostnames, ips)  # refuse bad names before writing anything
    host = req.hostnames[0] if req.hostnames else ips[0] if req.ips else "127.0.0.1"
    host_in_url = f"[{host}]" if ":" in host else host
    issuer = req.issuer or (
        DEFAULT_ISSUER
        if host_in_url == "127.0.0.1" and req.port == 8443
        else f"https://{host_in_url}:{req.port}"
    )
    report = InitReport(directory, issuer, f"https://{host_in_url}:{req.port}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    tls = directory / "tls"

    def wanted(path: Path, *, forceable: bool = True) -> bool:
        if path.exists() and not (req.force and forceable):
            report.kept.append(str(path.relative_to(directory)))
            return False
        report.made.append(str(path.relative_to(directory)))
        return True

    # The CA: remade only with force; leaves are re-issued from whichever CA is on disk.
    if wanted(tls / "ca.crt"):
        ca = pki.new_ca()
        write_atomic(tls / "ca.key", ca.key_pem, mode=PRIVATE)
        write_atomic(tls / "ca.crt", ca.cert_pem, mode=PUBLIC)
    ca = pki.load(tls / "ca.crt", tls / "ca.key")
    if wanted(tls / "server.crt"):
        server = pki.issue_server_cert(ca, hostnames=hostnames, ips=ips)
        write_atomic(tls / "server.key", server.key_pem, mode=PRIVATE)
        write_atomic(tls / "server.crt", server.cert_pem, mode=PUBLIC)
    if wanted(tls / "apiserver-client.crt"):
        client = pki.issue_client_cert(
            ca, common_name=APISERVER_CLIENT_NAME, organization=req.cluster_ids[0]
        )
        write_atomic(tls / "apiserver-client.key", client.key_pem, mode=PRIVATE)
        write_atomic(tls / "apiserver-client.crt", client.cert_pem, mode=PUBLIC)

    keys = KeyDirectory(directory)
    if keys.exists():
        report.kept.append("signing-keys.json")
    else:
        keys.init(req.key_algorithm)
        report.made.append("signing-keys.json")
    pepper = directory / "access-key-pepper"
    if pepper.exists():
        report.kept.append(pepper.name)
    else:
        load_or_create_pepper(pepper)
        report.made.append(pepper.name)

    if wanted(report.config_file):
        data_dir = (cwd / (req.data_dir or Path("data"))).resolve()
        store_path = os.path.relpath(data_dir / "authbridge.db", directory)
        mapping_path = os.path.relpath((cwd / "rbac" / "mapping.yaml").resolve(), directory)
        config: dict[str, object] = {
            "issuer": issuer,
            "clusters": list(req.cluster_ids),
            "bind": f"{_bind_host(hostnames, ips)}:{req.port}",
            "keysDir": ".",
            "store": f"sqlite:///{store_path}",
            "tlsCertFile": "tls/server.crt",
            "tlsKeyFile": "tls/server.key",
            "clientCAFile": "tls/ca.crt",
            "mappingFile": mapping_path,
            "keyAlgorithm": req.key_algorithm,
        }
        if req.account_id:
            config["accountID"] = req.account_id
        header = (
            "# authbridge config, written by `authbridge init`.\n"
            "# Relative paths resolve against this file's directory.\n"
        )
        body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        write_atomic(report.config_file, (header + body).encode(), mode=PRIVATE)
    if wanted(report.webhook_kubeconfig):
        client_cert = (tls / "apiserver-client.crt").read_bytes()
        client_key = (tls / "apiserver-client.key").read_bytes()
        kubeconfig = webhook_kubeconfig(
            f"{report.server_url}/authenticate", ca.cert_pem, client_cert, client_key
        )
        write_atomic(report.webhook_kubeconfig, kubeconfig.encode(), mode=PRIVATE)
    return report


def _bind_host(hostnames: Sequence[str], ips: Sequence[str]) -> str:
    """Loopback when the certificate names only this machine; else every interface,
    since the kube-apiserver must reach the names the certificate was made for."""
    if set(hostnames) <= {"localhost"} and set(ips) <= {"127.0.0.1", "::1"}:
        return "127.0.0.1"
    return "0.0.0.0"  # noqa: S104 - deliberate: serving names beyond loopback


def webhook_kubeconfig(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> str:
    """The kubeconfig the kube-apiserver reads to call the webhook (mutual TLS)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "authbridge",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": APISERVER_CLIENT_NAME,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [
            {"name": "webhook", "context": {"cluster": "authbridge", "user": APISERVER_CLIENT_NAME}}
        ],
        "current-context": "webhook",
    }
    return yaml.safe_dump(doc, sort_keys=False)
