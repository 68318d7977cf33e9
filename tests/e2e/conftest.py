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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from authbridge import pki
from tests.serving import LiveServer, free_port, start_server

APISERVER_ENV = "AUTHBRIDGE_E2E_APISERVER"
ETCD_ENV = "AUTHBRIDGE_E2E_ETCD"

E2E_MAPPING = """\
clusterID: prod
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{SessionName}}"
    groups: ["authbridge:admins"]
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


def binaries() -> tuple[str, str]:
    api, etcd = os.environ.get(APISERVER_ENV), os.environ.get(ETCD_ENV)
    if not api or not etcd:
        pytest.skip(
            f"end-to-end tests need {APISERVER_ENV} and {ETCD_ENV}: paths to the"
            " kube-apiserver and etcd binaries"
        )
    for name, path in ((APISERVER_ENV, api), (ETCD_ENV, etcd)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            found = shutil.which(path)
            if not found:
                pytest.fail(f"{name}={path} is not an executable file")
    return api, etcd


@dataclass
class Cluster:
    url: str
    ca_file: Path
    admin_cert: Path
    admin_key: Path
    authbridge: LiveServer

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


def _wait(check: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    api_bin, etcd_bin = binaries()
    root = tmp_path_factory.mktemp("e2e")
    # authbridge first: the kube-apiserver reads the webhook kubeconfig init wrote.
    served = start_server(
        root / "authbridge",
        mapping=E2E_MAPPING,
        init_args="--apiserver-client prod-cp=prod",
    )
    authbridge = next(served)

    k8s = root / "k8s"
    k8s.mkdir()
    ca = pki.new_ca("e2e cluster CA")
    serving = pki.issue_server_cert(ca, hostnames=["localhost"], ips=["127.0.0.1"])
    admin = pki.issue_client_cert(ca, common_name="e2e-admin", organization="system:masters")
    files = {
        "ca.crt": ca.cert_pem,
        "apiserver.crt": serving.cert_pem,
        "apiserver.key": serving.key_pem,
        "admin.crt": admin.cert_pem,
        "admin.key": admin.key_pem,
    }
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files["sa.key"] = sa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files["sa.pub"] = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for name, data in files.items():
        (k8s / name).write_bytes(data)
        (k8s / name).chmod(0o600)

    etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
    etcd_log = k8s / "etcd.log"
    with etcd_log.open("wb") as sink:
        etcd = subprocess.Popen(
            [
                etcd_bin,
                "--name=e2e",
                f"--data-dir={k8s / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{etcd_peer}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    webhook = authbridge.root / "keys" / "webhook-prod-cp.kubeconfig"
    api_log = k8s / "apiserver.log"
    with api_log.open("wb") as sink:
        apiserver = subprocess.Popen(
            [
                api_bin,
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={k8s / 'apiserver.crt'}",
                f"--tls-private-key-file={k8s / 'apiserver.key'}",
                f"--client-ca-file={k8s / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={k8s / 'sa.pub'}",
                f"--service-account-signing-key-file={k8s / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--authorization-mode=RBAC",
                # What `authbridge init` prints, with a short cache so tests see changes.
                f"--authentication-token-webhook-config-file={webhook}",
                "--authentication-token-webhook-version=v1",
                "--authentication-token-webhook-cache-ttl=1s",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    result = Cluster(
        url=f"https://127.0.0.1:{api_port}",
        ca_file=k8s / "ca.crt",
        admin_cert=k8s / "admin.crt",
        admin_key=k8s / "admin.key",
        authbridge=authbridge,
    )
    try:
        _wait(
            lambda: result.call("GET", "/readyz")[0] == 200,
            "kube-apiserver",
            apiserver,
            api_log,
            timeout=120,
        )
        yield result
    finally:
        _stop(apiserver)
        _stop(etcd)
        served.close()
