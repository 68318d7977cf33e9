"""A real kube-apiserver + etcd wired to a real `authbridge serve`, for end-to-end tests.

Runs only when ``AUTHBRIDGE_E2E_APISERVER`` and ``AUTHBRIDGE_E2E_ETCD`` name
the ``kube-apiserver`` and ``etcd`` binaries (any recent release: the tests use
only GA APIs: SelfSubjectReview, SubjectAccessReview); skipped otherwise, with
that reason.

The wiring is exactly what a person does with authbridge: `authbridge init`
writes the webhook kubeconfig, which goes to the kube-apiserver as
``--authentication-token-webhook-config-file`` unchanged. The cluster's own
admin is a client certificate (O=system:masters) from a separate CA, used
only to set the cluster up and to ask SubjectAccessReviews.

A bare kube-apiserver leaves the built-in ClusterRoles admin, edit and view
empty: kube-controller-manager's clusterrole-aggregation controller fills them
from the ``system:aggregate-to-*`` roles, and in a real cluster it always runs.
So when ``AUTHBRIDGE_E2E_CONTROLLER_MANAGER`` names the ``kube-controller-manager``
binary (v1.28 or later: the controllers go by their canonical ``*-controller``
names), it is started after the kube-apiserver is ready, as the same admin (a
kubeconfig written for it), with the controllers clusterrole-aggregation,
serviceaccount, serviceaccount-token (signing with the apiserver's
service-account key), namespace and garbage-collector; the fixture waits for its
/healthz (https, its certificate from the cluster CA) and then until admin, edit
and view have rules (60 s each at most, failing with its log). Without it, the
tests that need those roles take the ``aggregated_roles`` fixture and are skipped
with the reason :data:`AGGREGATION_SKIP`; the rest run.

Every kube-apiserver starts through :func:`start_apiserver` (its own
certificates and service-account keys, a free port, /readyz awaited): the
session ``cluster`` on etcd's default prefix, and, for the web identity test,
``second_cluster`` on the same etcd under :data:`SECOND_ETCD_PREFIX` with its
own webhook client (`authbridge init --apiserver-client` for both, one cluster
id). ``tests/e2e/test_harness.py`` checks the command lines and kubeconfigs
built here without any of the binaries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authbridge import pki
from tests.serving import LiveServer, free_port, start_server

APISERVER_ENV = "AUTHBRIDGE_E2E_APISERVER"
ETCD_ENV = "AUTHBRIDGE_E2E_ETCD"
CONTROLLER_MANAGER_ENV = "AUTHBRIDGE_E2E_CONTROLLER_MANAGER"
AGGREGATION_SKIP = (
    f"needs {CONTROLLER_MANAGER_ENV}: built-in admin/edit/view are aggregated by"
    " kube-controller-manager"
)
# Canonical names (cmd/kube-controller-manager/names, v1.28 and later; the old short
# names such as clusterrole-aggregation are aliases).
CONTROLLERS = (
    "clusterrole-aggregation-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "namespace-controller",
    "garbage-collector-controller",
)
AGGREGATED_ROLES = ("admin", "edit", "view")
# kube-apiserver's own default; the second apiserver keeps its objects apart in the same etcd.
DEFAULT_ETCD_PREFIX = "/registry"
SECOND_ETCD_PREFIX = "/registry-second"
# One webhook client (certificate and kubeconfig of `authbridge init`) per apiserver, both
# for the cluster id prod: the session cluster's and the second apiserver's.
WEBHOOK_CLIENTS = {"first": "prod-cp", "second": "prod-second-cp"}
INIT_ARGS = " ".join(f"--apiserver-client {name}=prod" for name in WEBHOOK_CLIENTS.values())

E2E_MAPPING = """\
clusterID: prod
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{SessionName}}"
    groups: ["authbridge:admins"]
  - rolearn: arn:aws:iam::111122223333:role/Deployer
    username: "deployer:{{SessionName}}"
    groups: ["authbridge:deployers"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
bindings:
  - group: "authbridge:admins"
    clusterRole: cluster-admin
  - group: "authbridge:devs"
    clusterRole: view
    namespaces: ["dev"]
"""


def _executable(name: str, path: str) -> str:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
        pytest.fail(f"{name}={path} is not an executable file")
    return path


def binaries() -> tuple[str, str]:
    api, etcd = os.environ.get(APISERVER_ENV), os.environ.get(ETCD_ENV)
    if not api or not etcd:
        pytest.skip(
            f"end-to-end tests need {APISERVER_ENV} and {ETCD_ENV}: paths to the"
            " kube-apiserver and etcd binaries"
        )
    return _executable(APISERVER_ENV, api), _executable(ETCD_ENV, etcd)


def controller_manager_binary(env: Mapping[str, str] = os.environ) -> str | None:
    """The kube-controller-manager binary ``AUTHBRIDGE_E2E_CONTROLLER_MANAGER`` names, if any."""
    path = env.get(CONTROLLER_MANAGER_ENV)
    return _executable(CONTROLLER_MANAGER_ENV, path) if path else None


_FILES = {
    "ca": "ca.crt",
    "apiserver_cert": "apiserver.crt",
    "apiserver_key": "apiserver.key",
    "admin_cert": "admin.crt",
    "admin_key": "admin.key",
    "sa_key": "sa.key",  # signs service-account tokens (apiserver and controller-manager)
    "sa_pub": "sa.pub",  # verifies them (apiserver)
    "kcm_cert": "controller-manager.crt",  # kube-controller-manager's own serving certificate
    "kcm_key": "controller-manager.key",
    "kcm_kubeconfig": "controller-manager.kubeconfig",
}


@dataclass(frozen=True)
class ClusterFiles:
    """The cluster's key material, in one directory: what kube-apiserver and
    kube-controller-manager must agree on (the CA, the service-account key pair)."""

    ca: Path
    apiserver_cert: Path
    apiserver_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path
    kcm_cert: Path
    kcm_key: Path
    kcm_kubeconfig: Path

    @classmethod
    def at(cls, root: Path) -> ClusterFiles:
        return cls(**{name: root / file for name, file in _FILES.items()})


def write_cluster_files(root: Path) -> ClusterFiles:
    """A CA, serving certificates for kube-apiserver and kube-controller-manager, the admin
    client certificate (O=system:masters) and the service-account key pair, mode 0600."""
    ca = pki.new_ca("e2e cluster CA")
    serving = pki.issue_server_cert(ca, hostnames=["localhost"], ips=["127.0.0.1"])
    kcm = pki.issue_server_cert(ca, hostnames=["localhost"], ips=["127.0.0.1"])
    admin = pki.issue_client_cert(ca, common_name="e2e-admin", organization="system:masters")
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = {
        "ca": ca.cert_pem,
        "apiserver_cert": serving.cert_pem,
        "apiserver_key": serving.key_pem,
        "admin_cert": admin.cert_pem,
        "admin_key": admin.key_pem,
        "sa_key": sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "sa_pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "kcm_cert": kcm.cert_pem,
        "kcm_key": kcm.key_pem,
    }
    files = ClusterFiles.at(root)
    for name, content in data.items():
        path = root / _FILES[name]
        path.write_bytes(content)
        path.chmod(0o600)
    return files


def service_account_issuer(port: int) -> str:
    """The kube-apiserver's service-account issuer: its own URL, whose discovery it serves."""
    return f"https://127.0.0.1:{port}"


def apiserver_args(
    binary: str,
    files: ClusterFiles,
    *,
    etcd_url: str,
    port: int,
    webhook: Path,
    etcd_prefix: str = DEFAULT_ETCD_PREFIX,
) -> list[str]:
    """kube-apiserver on 127.0.0.1:``port`` with ``files``' certificates, its objects under
    ``etcd_prefix`` of ``etcd_url`` (two apiservers share one etcd, each under its own
    prefix) and authbridge's webhook kubeconfig ``webhook``."""
    return [
        binary,
        f"--etcd-servers={etcd_url}",
        f"--etcd-prefix={etcd_prefix}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={files.apiserver_cert}",
        f"--tls-private-key-file={files.apiserver_key}",
        f"--client-ca-file={files.ca}",
        # An issuer authbridge can reach: web identity with the discovery this apiserver
        # serves (tests/e2e/test_web_identity_apiserver.py); the API's own audience
        # stays the in-cluster name.
        f"--service-account-issuer={service_account_issuer(port)}",
        f"--service-account-jwks-uri={service_account_issuer(port)}/openid/v1/jwks",
        "--api-audiences=https://kubernetes.default.svc",
        f"--service-account-key-file={files.sa_pub}",
        f"--service-account-signing-key-file={files.sa_key}",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--authorization-mode=RBAC",
        # What `authbridge init` prints, with a short cache so tests see changes.
        f"--authentication-token-webhook-config-file={webhook}",
        "--authentication-token-webhook-version=v1",
        "--authentication-token-webhook-cache-ttl=1s",
    ]


def admin_kubeconfig(url: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    """A kubeconfig for the cluster admin's client certificate (kube-controller-manager's,
    kubectl's and the kube adapter's in the tests)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": url, "certificate-authority": str(ca)}}],
        "users": [
            {
                "name": "e2e-admin",
                "user": {"client-certificate": str(cert), "client-key": str(key)},
            }
        ],
        "contexts": [{"name": "e2e-admin", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
        "current-context": "e2e-admin",
    }


def _write_kubeconfig(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
    return path


def write_admin_kubeconfig(url: str, files: ClusterFiles) -> Path:
    """kube-controller-manager's kubeconfig (mode 0600), beside the cluster's key material."""
    doc = admin_kubeconfig(url, files.ca, files.admin_cert, files.admin_key)
    return _write_kubeconfig(files.kcm_kubeconfig, doc)


def controller_manager_args(binary: str, files: ClusterFiles, *, port: int) -> list[str]:
    """kube-controller-manager with just the controllers a real cluster needs here.

    As the admin (no per-controller ServiceAccounts: --use-service-account-credentials=false),
    one instance (no leader election), serving /healthz on 127.0.0.1:``port`` with a
    certificate of the cluster CA. serviceaccount-token-controller signs with the key whose
    public half is the apiserver's --service-account-key-file.
    """
    kubeconfig = files.kcm_kubeconfig
    return [
        binary,
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--controllers={','.join(CONTROLLERS)}",
        f"--service-account-private-key-file={files.sa_key}",
        f"--root-ca-file={files.ca}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={files.kcm_cert}",
        f"--tls-private-key-file={files.kcm_key}",
    ]


def roles_aggregated(get: Callable[[str], tuple[int, Any]]) -> bool:
    """Whether every one of admin, edit and view has rules (``get``: one API GET)."""
    for name in AGGREGATED_ROLES:
        status, body = get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")
        if status != 200 or not isinstance(body, dict) or not body.get("rules"):
            return False
    return True


@dataclass
class Cluster:
    url: str
    ca_file: Path
    admin_cert: Path
    admin_key: Path
    authbridge: LiveServer
    aggregation: bool = False  # kube-controller-manager runs: admin/edit/view have rules
    etcd_url: str = ""  # the etcd it stores in (a second apiserver may share it)

    def write_admin_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig (mode 0600) for this cluster's admin, for kubectl or the kube adapter."""
        doc = admin_kubeconfig(self.url, self.ca_file, self.admin_cert, self.admin_key)
        return _write_kubeconfig(path, doc)

    def _context(self, *, admin: bool) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if admin:
            ctx.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        return ctx

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
    ) -> tuple[int, Any]:
        """One API call, as the admin (client cert) or with a bearer token."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - the test cluster's https URL
            self.url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                req, context=self._context(admin=token is None), timeout=30
            ) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read())

    def whoami(self, token: str) -> tuple[int, Any]:
        return self.call(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            token=token,
        )


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def require_aggregation(cluster: Cluster) -> None:
    if not cluster.aggregation:
        pytest.skip(AGGREGATION_SKIP)


@pytest.fixture
def aggregated_roles(cluster: Cluster) -> None:
    """For tests that need the built-in admin/edit/view to grant what a real cluster's do."""
    require_aggregation(cluster)


def _wait(
    check: Any, what: str, proc: subprocess.Popen[bytes] | None, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited:\n{log.read_text()[-4000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} not ready after {timeout}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_etcd(binary: str, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """etcd on free loopback ports, its data and log in ``root``; returns it and its URL."""
    client, peer = free_port(), free_port()
    with (root / "etcd.log").open("wb") as sink:
        proc = subprocess.Popen(
            [
                binary,
                "--name=e2e",
                f"--data-dir={root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{peer}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return proc, f"http://127.0.0.1:{client}"


def webhook_config(authbridge_root: Path, apiserver: str) -> Path:
    """The webhook kubeconfig `authbridge init` (in ``authbridge_root``) wrote for
    ``apiserver`` (first, second)."""
    return authbridge_root / "keys" / f"webhook-{WEBHOOK_CLIENTS[apiserver]}.kubeconfig"


def start_apiserver(
    binary: str,
    root: Path,
    authbridge: LiveServer,
    *,
    etcd_url: str,
    webhook: Path,
    etcd_prefix: str = DEFAULT_ETCD_PREFIX,
) -> tuple[subprocess.Popen[bytes], Cluster]:
    """A kube-apiserver with its own certificates (written to ``root``), on a free port, wired
    to authbridge through ``webhook``; returns once /readyz answers (120 s at most, failing
    with its log), with the :class:`Cluster` to talk to it."""
    files = write_cluster_files(root)
    port = free_port()
    log = root / "apiserver.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            apiserver_args(
                binary,
                files,
                etcd_url=etcd_url,
                port=port,
                webhook=webhook,
                etcd_prefix=etcd_prefix,
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    cluster = Cluster(
        url=f"https://127.0.0.1:{port}",
        ca_file=files.ca,
        admin_cert=files.admin_cert,
        admin_key=files.admin_key,
        authbridge=authbridge,
        etcd_url=etcd_url,
    )
    try:
        _wait(lambda: cluster.call("GET", "/readyz")[0] == 200, "kube-apiserver", proc, log, 120)
    except BaseException:
        _stop(proc)
        raise
    return proc, cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    api_bin, etcd_bin = binaries()
    kcm_bin = controller_manager_binary()  # checked before anything starts
    root = tmp_path_factory.mktemp("e2e")
    # authbridge first: the kube-apiserver reads the webhook kubeconfig init wrote.
    served = start_server(root / "authbridge", mapping=E2E_MAPPING, init_args=INIT_ARGS)
    authbridge = next(served)
    k8s = root / "k8s"
    k8s.mkdir()
    started: list[subprocess.Popen[bytes]] = []
    try:
        etcd, etcd_url = start_etcd(etcd_bin, k8s)
        started.append(etcd)
        apiserver, result = start_apiserver(
            api_bin,
            k8s,
            authbridge,
            etcd_url=etcd_url,
            webhook=webhook_config(authbridge.root, "first"),
        )
        started.append(apiserver)
        if kcm_bin is not None:
            files = ClusterFiles.at(k8s)
            started.append(start_controller_manager(kcm_bin, result, files, k8s))
            result.aggregation = True
        yield result
    finally:
        for proc in reversed(started):
            _stop(proc)
        served.close()


@pytest.fixture(scope="module")
def second_cluster(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A second kube-apiserver, started as the first is: its own certificates and
    service-account keys, the same etcd under :data:`SECOND_ETCD_PREFIX`, and its own webhook
    client of authbridge for the same cluster id. A token the first cluster issued is
    nothing to it; an authbridge token for the cluster id is."""
    api_bin, _ = binaries()
    root = tmp_path_factory.mktemp("e2e-second")
    proc, second = start_apiserver(
        api_bin,
        root,
        cluster.authbridge,
        etcd_url=cluster.etcd_url,
        webhook=webhook_config(cluster.authbridge.root, "second"),
        etcd_prefix=SECOND_ETCD_PREFIX,
    )
    try:
        yield second
    finally:
        _stop(proc)


def start_controller_manager(
    binary: str, cluster: Cluster, files: ClusterFiles, root: Path
) -> subprocess.Popen[bytes]:
    """kube-controller-manager as the admin; returns once /healthz answers and it has
    aggregated admin, edit and view (bounded waits; the failure names its log)."""
    write_admin_kubeconfig(cluster.url, files)
    port = free_port()
    log = root / "controller-manager.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            controller_manager_args(binary, files, port=port),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    healthz = f"https://127.0.0.1:{port}/healthz"
    trust = ssl.create_default_context(cafile=str(files.ca))

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(healthz, context=trust, timeout=5) as resp:  # noqa: S310
                return bool(resp.status == 200)
        except urllib.error.HTTPError:
            return False

    try:
        _wait(healthy, f"kube-controller-manager ({healthz})", proc, log, timeout=60)
        _wait(
            lambda: roles_aggregated(lambda path: cluster.call("GET", path)),
            "kube-controller-manager's clusterrole-aggregation-controller (the rules of"
            f" ClusterRoles {', '.join(AGGREGATED_ROLES)} are still empty)",
            proc,
            log,
            timeout=60,
        )
    except BaseException:
        _stop(proc)
        raise
    return proc
