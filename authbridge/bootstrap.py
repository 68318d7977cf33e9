"""``authbridge init``: everything a server and a kube-apiserver need, made once.

Under the chosen directory (default ``keys/``) it makes what is missing and
keeps what exists (``force`` remakes TLS material, the config and the
kubeconfig; never the signing keys or the access-key pepper, whose loss would
invalidate every token and access key):

    tls/ca.crt, tls/ca.key                   the CA (key 0600)
    tls/server.crt, tls/server.key           serving certificate for the names/IPs given
    tls/apiserver-client.crt|key             the kube-apiserver's client certificate (mTLS):
                                             CN = its name, O = the cluster id it calls for
    tls/apiserver-<name>.crt|key             the same, one per --apiserver-client NAME=CLUSTER
    <kid>.pem, signing-keys.json             the first signing key
    access-key-pepper                        HMAC key for access-key secrets
    authbridge.yaml                          the config `serve` reads by default
    webhook.kubeconfig                       for --authentication-token-webhook-config-file (0600)
    webhook-<name>.kubeconfig                the same, one per --apiserver-client
"""

from __future__ import annotations

import base64
import os
import re
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
    # (name, cluster id) per kube-apiserver; none: one "kube-apiserver" for the first cluster
    apiserver_clients: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class ApiserverClient:
    """One kube-apiserver allowed to call the webhook, and the files made for it."""

    name: str
    cluster_id: str
    stem: str  # tls/<stem>.crt|key
    kubeconfig_name: str


@dataclass
class InitReport:
    directory: Path
    issuer: str
    server_url: str
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    clients: list[ApiserverClient] = field(default_factory=list)

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_FILE_NAME

    @property
    def webhook_kubeconfig(self) -> Path:
        """The first (usually only) kube-apiserver's webhook kubeconfig."""
        return self.directory / self.clients[0].kubeconfig_name

    def apiserver_flags(self, client: ApiserverClient | None = None) -> list[str]:
        path = self.directory / (client or self.clients[0]).kubeconfig_name
        return [
            f"--authentication-token-webhook-config-file={path}",
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
    report.clients = _clients(req)
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
    for c in report.clients:
        if wanted(tls / f"{c.stem}.crt"):
            cert = pki.issue_client_cert(ca, common_name=c.name, organization=c.cluster_id)
            write_atomic(tls / f"{c.stem}.key", cert.key_pem, mode=PRIVATE)
            write_atomic(tls / f"{c.stem}.crt", cert.cert_pem, mode=PUBLIC)

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
    for c in report.clients:
        path = directory / c.kubeconfig_name
        if wanted(path):
            kubeconfig = webhook_kubeconfig(
                f"{report.server_url}/authenticate",
                ca.cert_pem,
                (tls / f"{c.stem}.crt").read_bytes(),
                (tls / f"{c.stem}.key").read_bytes(),
                user=c.name,
            )
            write_atomic(path, kubeconfig.encode(), mode=PRIVATE)
    return report


_CLIENT_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)


def _clients(req: InitRequest) -> list[ApiserverClient]:
    if not req.apiserver_clients:
        return [
            ApiserverClient(
                APISERVER_CLIENT_NAME, req.cluster_ids[0], "apiserver-client", WEBHOOK_KUBECONFIG
            )
        ]
    out: list[ApiserverClient] = []
    for name, cluster in req.apiserver_clients:
        if not _CLIENT_NAME.fullmatch(name):
            raise InputError(
                "apiserver-client",
                f"name {name[:64]!r} must be a DNS label (lowercase letters, digits, '-')",
                hint="e.g. --apiserver-client prod-cp=prod",
            )
        if cluster not in req.cluster_ids:
            raise InputError(
                "apiserver-client",
                f"cluster {cluster[:64]!r} of {name} is not one of --cluster-id"
                f" ({', '.join(req.cluster_ids)})",
                hint="add --cluster-id " + cluster[:64],
            )
        if any(c.name == name for c in out):
            raise InputError("apiserver-client", f"{name} is given twice")
        out.append(
            ApiserverClient(name, cluster, f"apiserver-{name}", f"webhook-{name}.kubeconfig")
        )
    return out


def _bind_host(hostnames: Sequence[str], ips: Sequence[str]) -> str:
    """Loopback when the certificate names only this machine; else every interface,
    since the kube-apiserver must reach the names the certificate was made for."""
    if set(hostnames) <= {"localhost"} and set(ips) <= {"127.0.0.1", "::1"}:
        return "127.0.0.1"
    return "0.0.0.0"  # noqa: S104 - deliberate: serving names beyond loopback


def webhook_kubeconfig(
    server: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    user: str = APISERVER_CLIENT_NAME,
) -> str:
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
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": "webhook", "context": {"cluster": "authbridge", "user": user}}],
        "current-context": "webhook",
    }
    return yaml.safe_dump(doc, sort_keys=False)
