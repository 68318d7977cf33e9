"""``authbridge init``: everything a server and a kube-apiserver need, made once.

Under the chosen directory (default ``keys/``) it makes what is missing and
keeps what exists (``force`` remakes TLS material, the config and the
kubeconfig; never the signing keys or the access-key pepper, whose loss would
invalidate every token and access key).

Run again with other flags, it never silently keeps a contradiction: what the
flags add is applied in place and listed in ``InitReport.updated`` (new
hostnames or IPs: the serving certificate re-issued by the same CA for the old
and the new names, so existing webhook kubeconfigs stay valid; new cluster ids:
appended to the config's ``clusters``; a new ``--apiserver-client``: its
certificate and kubeconfig), and what would break what exists (another issuer:
tokens already issued carry the old one; another port; another account; a
client certificate for another cluster) is refused before anything is written,
every difference named, unless ``force``. The report names only what is on
disk afterwards (the issuer printed is the config's). The kube-apiserver flags
name the kubeconfig at :data:`CONTROL_PLANE_DIR`, where the README has each
control plane mount it, not at this machine's path.

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
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from authbridge import pki
from authbridge.errors import ConfigError, InputError
from authbridge.files import PRIVATE, PUBLIC, write_atomic
from authbridge.iam.credentials import load_or_create_pepper
from authbridge.keys import Algorithm, KeyDirectory
from authbridge.settings import CONFIG_FILE_NAME, DEFAULT_ISSUER

WEBHOOK_KUBECONFIG = "webhook.kubeconfig"
APISERVER_CLIENT_NAME = "kube-apiserver"
# How long the kube-apiserver may cache a webhook verdict: the revocation bound it adds.
RECOMMENDED_WEBHOOK_CACHE_TTL = "10s"


# Where the README has each control plane keep the webhook kubeconfig (a read-only
# hostPath mount); the flags init prints name the file there, not this machine's copy.
CONTROL_PLANE_DIR = "/etc/kubernetes/authbridge"
DEFAULT_CLUSTER = "default"
DEFAULT_PORT = 8443


@dataclass(frozen=True)
class InitRequest:
    """What ``authbridge init`` was asked for; empty / None = not given on the command line."""

    directory: Path
    hostnames: Sequence[str] = ()
    ips: Sequence[str] = ()
    port: int | None = None  # None: the existing config's port, else 8443
    cluster_ids: Sequence[str] = ()  # (): the existing config's clusters, else ("default",)
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

    @property
    def control_plane_path(self) -> str:
        """Where the README has the kube-apiserver read its webhook kubeconfig."""
        return f"{CONTROL_PLANE_DIR}/{self.kubeconfig_name}"


@dataclass
class InitReport:
    directory: Path
    issuer: str
    server_url: str
    made: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    # Existing files changed in place, each with what changed: "authbridge.yaml (clusters + prod)".
    updated: list[str] = field(default_factory=list)
    clients: list[ApiserverClient] = field(default_factory=list)

    @property
    def config_file(self) -> Path:
        return self.directory / CONFIG_FILE_NAME

    @property
    def webhook_kubeconfig(self) -> Path:
        """The first (usually only) kube-apiserver's webhook kubeconfig."""
        return self.directory / self.clients[0].kubeconfig_name

    def apiserver_flags(self, client: ApiserverClient | None = None) -> list[str]:
        """The kube-apiserver's flags, naming the kubeconfig where its control plane keeps it."""
        path = (client or self.clients[0]).control_plane_path
        return [
            f"--authentication-token-webhook-config-file={path}",
            "--authentication-token-webhook-version=v1",
            f"--authentication-token-webhook-cache-ttl={RECOMMENDED_WEBHOOK_CACHE_TTL}",
        ]


@dataclass(frozen=True)
class _Existing:
    """What a directory already holds that a new ``init`` might contradict."""

    config: dict[str, object] | None
    dns: tuple[str, ...]  # the serving certificate's names (empty: no certificate)
    ips: tuple[str, ...]
    clients: dict[str, tuple[str, str]]  # tls/<stem>.crt -> (CN, O)
    server_url: str | None  # the webhook kubeconfigs' server, without /authenticate


def _read_existing(directory: Path) -> _Existing:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    config: dict[str, object] | None = None
    path = directory / CONFIG_FILE_NAME
    if path.is_file():
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise InputError(
                "config",
                f"{path} is not readable YAML ({type(e).__name__})",
                hint="fix it, or pass --force to write a new one",
            ) from e
        if not isinstance(loaded, dict):
            raise InputError(
                "config", f"{path} is not a YAML mapping", hint="fix it, or pass --force"
            )
        config = loaded

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    tls = directory / "tls"
    server = tls / "server.crt"
    if server.is_file():
        cert = x509.load_pem_x509_certificate(server.read_bytes())
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            dns = tuple(sans.get_values_for_type(x509.DNSName))
            ips = tuple(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))

    def attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
        values = name.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    clients: dict[str, tuple[str, str]] = {}
    for crt in sorted(tls.glob("apiserver-*.crt")) if tls.is_dir() else ():
        subject = x509.load_pem_x509_certificate(crt.read_bytes()).subject
        clients[crt.stem] = (
            attr(subject, NameOID.COMMON_NAME),
            attr(subject, NameOID.ORGANIZATION_NAME),
        )

    server_url = None
    for kubeconfig in sorted(directory.glob("webhook*.kubeconfig")):
        try:
            doc = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
            url = doc["clusters"][0]["cluster"]["server"]
        except (yaml.YAMLError, UnicodeDecodeError, KeyError, IndexError, TypeError):
            continue
        if isinstance(url, str) and url.endswith("/authenticate"):
            server_url = url.removesuffix("/authenticate")
            break
    return _Existing(config, dns, ips, clients, server_url)


def _bind_port(bind: object) -> int | None:
    if not isinstance(bind, str):
        return None
    port = bind.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def _server_url(host: str, port: int) -> str:
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _default_issuer(host: str, port: int) -> str:
    if host == "127.0.0.1" and port == DEFAULT_PORT:
        return DEFAULT_ISSUER
    return _server_url(host, port)


def init_directory(req: InitRequest, *, cwd: Path | None = None) -> InitReport:
    """Make what is missing under ``req.directory``; see the module docstring.

    On a directory that already holds a setup, what the request adds is
    applied and reported in :attr:`InitReport.updated` (new names or IPs: the
    serving certificate re-issued from the same CA for the old and new ones;
    new cluster ids: added to the config's clusters; new --apiserver-client:
    its certificate and kubeconfig). What would break what exists (another
    issuer, port or account, a client certificate for another cluster) is
    refused, every difference named, before anything is written, unless
    ``force``.
    """
    if req.port is not None and not 0 < req.port < 65536:
        raise InputError("port", f"must be 1-65535, got {req.port}")
    cwd = cwd or Path.cwd()
    directory = (cwd / req.directory).resolve()
    tls = directory / "tls"
    if req.hostnames or req.ips:
        pki.server_names(req.hostnames, req.ips)  # refuse bad names before reading anything
    old = _read_existing(directory) if not req.force else _Existing(None, (), (), {}, None)
    config = old.config

    # The serving certificate's names: the old ones, plus what was asked for.
    hostnames = list(dict.fromkeys([*old.dns, *(h.rstrip(".").lower() for h in req.hostnames)]))
    ips = list(dict.fromkeys([*old.ips, *(str(ipaddress.ip_address(i)) for i in req.ips)]))
    if not hostnames and not ips:
        hostnames, ips = ["localhost"], ["127.0.0.1"]
    pki.server_names(hostnames, ips)  # refuse bad names before writing anything
    added_names = [n for n in (*hostnames, *ips) if n not in (*old.dns, *old.ips)]
    reissue_server = bool(old.dns or old.ips) and bool(added_names)

    old_port = _bind_port(config.get("bind")) if config else None
    port = req.port or old_port or DEFAULT_PORT
    host = req.hostnames[0] if req.hostnames else req.ips[0] if req.ips else "127.0.0.1"
    names_given = bool(req.hostnames or req.ips or req.port)
    server_url = (
        _server_url(host, port) if names_given or old.server_url is None else old.server_url
    )
    wanted_issuer = req.issuer or _default_issuer(host, port)

    conflicts: list[str] = []
    config_changes: list[str] = []
    clusters = list(req.cluster_ids) or [DEFAULT_CLUSTER]
    bind = f"{_bind_host(hostnames, ips)}:{port}"
    if config is not None:
        old_issuer = config.get("issuer")
        issuer = old_issuer if isinstance(old_issuer, str) else wanted_issuer
        if not isinstance(old_issuer, str):
            config_changes.append(f"issuer {issuer}")  # none was set: written, as printed
        if (req.issuer or names_given) and wanted_issuer != issuer:
            conflicts.append(
                f"the issuer is {issuer}, not {wanted_issuer} (tokens already issued carry it;"
                f" keep it with --issuer {issuer})"
            )
        if req.port is not None and old_port is not None and req.port != old_port:
            conflicts.append(
                f"the config serves on port {old_port}, not {req.port} (the kubeconfigs point"
                " there)"
            )
        old_account = config.get("accountID")
        if req.account_id and old_account and str(old_account) != req.account_id:
            conflicts.append(f"the config's account is {old_account}, not {req.account_id}")
        elif req.account_id and not old_account:
            config_changes.append(f"accountID {req.account_id}")
        listed = config.get("clusters")
        old_clusters = [str(c) for c in listed] if isinstance(listed, list) else []
        new_clusters = [c for c in req.cluster_ids if c not in old_clusters]
        clusters = old_clusters + new_clusters or [DEFAULT_CLUSTER]
        if new_clusters:
            config_changes.append("clusters + " + ", ".join(new_clusters))
        old_bind = config.get("bind")
        if isinstance(old_bind, str):
            bind = old_bind
        else:
            config_changes.append(f"bind {bind}")
        if (
            reissue_server
            and _bind_host(hostnames, ips) != "127.0.0.1"
            and bind.rpartition(":")[0] in ("127.0.0.1", "localhost", "::1", "[::1]")
        ):
            # The certificate now names addresses beyond loopback: listen where they point.
            bind = f"0.0.0.0:{bind.rpartition(':')[2]}"  # noqa: S104 - see _bind_host
            config_changes.append(f"bind {bind}")
    else:
        issuer = wanted_issuer

    report = InitReport(directory, issuer, server_url)
    report.clients = _clients(req.apiserver_clients, clusters)
    for c in report.clients:
        have = old.clients.get(c.stem)
        if have is not None and have != (c.name, c.cluster_id):
            conflicts.append(
                f"tls/{c.stem}.crt is for {have[0]} in cluster {have[1] or '(none)'},"
                f" not {c.name} in {c.cluster_id}"
            )
    if conflicts:
        raise ConfigError(
            f"{directory} already holds a different setup: " + "; ".join(conflicts),
            hint="change the flags to match, or pass --force to remake the config, TLS files"
            " and kubeconfigs (a new CA: every kube-apiserver then needs its new kubeconfig)",
        )

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

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
    if reissue_server:
        server = pki.issue_server_cert(ca, hostnames=hostnames, ips=ips)
        write_atomic(tls / "server.key", server.key_pem, mode=PRIVATE)
        write_atomic(tls / "server.crt", server.cert_pem, mode=PUBLIC)
        report.updated.append(
            "tls/server.crt (re-issued by the same CA, now also for " + ", ".join(added_names) + ")"
        )
    elif wanted(tls / "server.crt"):
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

    header = (
        "# authbridge config, written by `authbridge init`.\n"
        "# Relative paths resolve against this file's directory.\n"
    )
    if config is not None and config_changes:
        # Only the keys that changed; everything else as it was (comments are not kept).
        config = {**config, "issuer": issuer, "clusters": clusters, "bind": bind}
        if req.account_id:
            config.setdefault("accountID", req.account_id)
        body = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
        write_atomic(report.config_file, (header + body).encode(), mode=PRIVATE)
        report.updated.append(f"{CONFIG_FILE_NAME} ({'; '.join(config_changes)})")
    elif wanted(report.config_file):
        data_dir = (cwd / (req.data_dir or Path("data"))).resolve()
        store_path = os.path.relpath(data_dir / "authbridge.db", directory)
        mapping_path = os.path.relpath((cwd / "rbac" / "mapping.yaml").resolve(), directory)
        fresh: dict[str, object] = {
            "issuer": issuer,
            "clusters": clusters,
            "bind": bind,
            "keysDir": ".",
            "store": f"sqlite:///{store_path}",
            "tlsCertFile": "tls/server.crt",
            "tlsKeyFile": "tls/server.key",
            "clientCAFile": "tls/ca.crt",
            "mappingFile": mapping_path,
            "keyAlgorithm": req.key_algorithm,
        }
        if req.account_id:
            fresh["accountID"] = req.account_id
        body = yaml.safe_dump(fresh, sort_keys=False, default_flow_style=False)
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


def _clients(
    requested: Sequence[tuple[str, str]], cluster_ids: Sequence[str]
) -> list[ApiserverClient]:
    if not requested:
        return [
            ApiserverClient(
                APISERVER_CLIENT_NAME, cluster_ids[0], "apiserver-client", WEBHOOK_KUBECONFIG
            )
        ]
    out: list[ApiserverClient] = []
    for name, cluster in requested:
        if not _CLIENT_NAME.fullmatch(name):
            raise InputError(
                "apiserver-client",
                f"name {name[:64]!r} must be a DNS label (lowercase letters, digits, '-')",
                hint="e.g. --apiserver-client prod-cp=prod",
            )
        if cluster not in cluster_ids:
            raise InputError(
                "apiserver-client",
                f"cluster {cluster[:64]!r} of {name} is not one of --cluster-id"
                f" ({', '.join(cluster_ids)})",
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
