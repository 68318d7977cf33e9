"""The end-to-end harness itself (tests/e2e/conftest.py), without any Kubernetes binary.

The harness runs for real only where kube-apiserver, etcd and
kube-controller-manager are installed; these tests keep its logic exercised
everywhere else.

Covers: kube-controller-manager's command line (each flag once, exactly the five
controllers by their canonical names, the service-account signing key the
apiserver's ``--service-account-key-file`` verifies, the cluster CA as root CA,
a serving certificate the health check's TLS context accepts for 127.0.0.1);
its kubeconfig (mode 0600) authenticates as the cluster admin (CN=e2e-admin,
O=system:masters) through the real kubernetes client against a TLS server that
requires client certificates of the cluster CA; the aggregation wait returns
for an aggregating cluster and fails, naming the controller, for a bare one
(the fake API server both ways); the tests that need aggregated roles are the
two that failed against a bare kube-apiserver, and they skip with the reason;
``AUTHBRIDGE_E2E_CONTROLLER_MANAGER`` unset is None, a non-executable path fails.
The second kube-apiserver of the web identity test: the same flags as the first
(one function), the same etcd under its own ``--etcd-prefix``, its own port,
certificates, issuer and service-account keys, its own webhook kubeconfig, which
`authbridge init` (run for real) writes for the same cluster id with its own
client certificate.
"""

from __future__ import annotations

import base64
import json
import ssl
import stat
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from tests.e2e import test_rbac_apiserver
from tests.e2e.conftest import (
    AGGREGATION_SKIP,
    CONTROLLER_MANAGER_ENV,
    INIT_ARGS,
    SECOND_ETCD_PREFIX,
    WEBHOOK_CLIENTS,
    Cluster,
    ClusterFiles,
    _wait,
    apiserver_args,
    controller_manager_args,
    controller_manager_binary,
    require_aggregation,
    roles_aggregated,
    webhook_config,
    write_admin_kubeconfig,
    write_cluster_files,
)
from tests.e2e.test_web_identity_apiserver import KUBE_AUDIENCE
from tests.fakekube import FakeKube

KCM_FLAGS = {
    "--kubeconfig",
    "--authentication-kubeconfig",
    "--authorization-kubeconfig",
    "--controllers",
    "--service-account-private-key-file",
    "--root-ca-file",
    "--use-service-account-credentials",
    "--leader-elect",
    "--bind-address",
    "--secure-port",
    "--tls-cert-file",
    "--tls-private-key-file",
}


def flags(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in argv[1:]:
        name, eq, value = arg.partition("=")
        assert eq and name.startswith("--"), arg
        assert name not in out, f"{name} given twice"
        out[name] = value
    return out


@pytest.fixture
def files(tmp_path: Path) -> ClusterFiles:
    return write_cluster_files(tmp_path)


def test_the_controller_manager_command_line(files: ClusterFiles, tmp_path: Path) -> None:
    argv = controller_manager_args("/opt/k8s/kube-controller-manager", files, port=40123)
    assert argv[0] == "/opt/k8s/kube-controller-manager"
    kcm = flags(argv)
    assert set(kcm) == KCM_FLAGS
    assert kcm["--controllers"].split(",") == [
        "clusterrole-aggregation-controller",
        "serviceaccount-controller",
        "serviceaccount-token-controller",
        "namespace-controller",
        "garbage-collector-controller",
    ]
    kubeconfig = str(files.kcm_kubeconfig)
    assert kcm["--kubeconfig"] == kcm["--authentication-kubeconfig"] == kubeconfig
    assert kcm["--authorization-kubeconfig"] == kubeconfig
    assert kcm["--use-service-account-credentials"] == kcm["--leader-elect"] == "false"
    assert (kcm["--bind-address"], kcm["--secure-port"]) == ("127.0.0.1", "40123")

    api = flags(
        apiserver_args(
            "kube-apiserver",
            files,
            etcd_url="http://127.0.0.1:2379",
            port=40124,
            webhook=tmp_path / "webhook.kubeconfig",
        )
    )
    # Tokens the controller manager signs are ones the apiserver verifies.
    assert kcm["--service-account-private-key-file"] == api["--service-account-signing-key-file"]
    private = serialization.load_pem_private_key(
        Path(kcm["--service-account-private-key-file"]).read_bytes(), password=None
    )
    public = serialization.load_pem_public_key(Path(api["--service-account-key-file"]).read_bytes())
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    assert kcm["--root-ca-file"] == api["--client-ca-file"] == str(files.ca)

    # Its serving certificate is one the /healthz check (trusting the cluster CA) accepts.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(kcm["--tls-cert-file"], kcm["--tls-private-key-file"])
    with tls_server(server, files) as (url, _):
        trust = ssl.create_default_context(cafile=str(files.ca))
        with urllib.request.urlopen(f"{url}/healthz", context=trust, timeout=10) as resp:  # noqa: S310
            assert resp.status == 200
    for path in (files.sa_key, files.kcm_key, files.admin_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


class _Recorder(BaseHTTPRequestHandler):
    peers: list[dict[str, Any]]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.peers.append(self.connection.getpeercert() or {})  # type: ignore[attr-defined]
        data = json.dumps({"kind": "APIVersions", "versions": ["v1"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def tls_server(
    context: ssl.SSLContext, files: ClusterFiles
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS server on 127.0.0.1 answering every GET; yields its URL and the client
    certificates it saw."""
    peers: list[dict[str, Any]] = []

    class Handler(_Recorder):
        pass

    Handler.peers = peers
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", peers
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_the_controller_manager_kubeconfig_is_the_cluster_admin(files: ClusterFiles) -> None:
    # A server like the kube-apiserver: the cluster CA's serving certificate, client
    # certificates of the cluster CA required.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(str(files.apiserver_cert), str(files.apiserver_key))
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(cafile=str(files.ca))
    with tls_server(server, files) as (url, peers):
        path = write_admin_kubeconfig(url, files)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        api = kube_config.new_client_from_config(config_file=str(path), persist_config=False)
        try:
            answer = kube_client.CoreApi(api).get_api_versions(
                _preload_content=False, _request_timeout=10
            )
            assert json.loads(answer.data)["kind"] == "APIVersions"
        finally:
            api.close()
    assert len(peers) == 1
    subject = {k: v for rdn in peers[0]["subject"] for k, v in rdn}
    assert subject == {"commonName": "e2e-admin", "organizationName": "system:masters"}
    cert = x509.load_pem_x509_certificate(files.admin_cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )


def _getter(fake: FakeKube) -> Any:
    def get(path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(fake.url + path, timeout=10) as resp:  # noqa: S310
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    return get


def test_the_aggregation_wait(tmp_path: Path) -> None:
    log = tmp_path / "controller-manager.log"
    log.write_text("I1203 started\n")
    with FakeKube() as real:
        assert roles_aggregated(_getter(real))
        _wait(lambda: roles_aggregated(_getter(real)), "aggregation", None, log, timeout=5)
    with FakeKube(aggregation=False) as bare:
        assert not roles_aggregated(_getter(bare))
        with pytest.raises(AssertionError) as info:
            _wait(
                lambda: roles_aggregated(_getter(bare)),
                "kube-controller-manager's clusterrole-aggregation-controller",
                None,
                log,
                timeout=0.5,
            )
        said = str(info.value)
        assert "clusterrole-aggregation-controller not ready after 0.5s" in said
        assert "I1203 started" in said  # the log tail
        bare.remove("ClusterRole", "view")
        assert not roles_aggregated(_getter(bare))  # a missing role is not aggregated either


def test_the_tests_that_need_aggregated_roles_skip_with_the_reason(tmp_path: Path) -> None:
    def needs(test: Any) -> bool:
        return any(
            m.name == "usefixtures" and "aggregated_roles" in m.args
            for m in getattr(test, "pytestmark", [])
        )

    module = test_rbac_apiserver
    assert needs(module.test_apply_as_the_reconciler_grants_exactly_what_the_mapping_says)
    assert needs(module.test_prune_removes_exactly_the_removed_entry)
    assert not needs(module.test_removing_the_last_cluster_admin_entry_is_refused)

    bare = Cluster(
        "https://127.0.0.1:1",
        tmp_path,
        tmp_path,
        tmp_path,
        authbridge=None,  # type: ignore[arg-type]
    )
    with pytest.raises(pytest.skip.Exception) as info:
        require_aggregation(bare)
    assert (
        str(info.value)
        == AGGREGATION_SKIP
        == (
            "needs AUTHBRIDGE_E2E_CONTROLLER_MANAGER: built-in admin/edit/view are aggregated by"
            " kube-controller-manager"
        )
    )
    bare.aggregation = True
    require_aggregation(bare)  # no skip


def test_the_controller_manager_binary_setting(tmp_path: Path) -> None:
    assert controller_manager_binary({}) is None
    assert controller_manager_binary({CONTROLLER_MANAGER_ENV: sys.executable}) == sys.executable
    plain = tmp_path / "kube-controller-manager"
    plain.write_text("not a program")
    with pytest.raises(pytest.fail.Exception, match="is not an executable file"):
        controller_manager_binary({CONTROLLER_MANAGER_ENV: str(plain)})


# -- web identity (tests/e2e/test_web_identity_apiserver.py), offline ----------------------


def test_the_apiserver_serves_an_issuer_authbridge_can_reach(
    files: ClusterFiles, tmp_path: Path
) -> None:
    from authbridge.iam.oidc_provider import parse_url
    from tests.e2e.conftest import service_account_issuer

    api = flags(
        apiserver_args(
            "kube-apiserver",
            files,
            etcd_url="http://127.0.0.1:2379",
            port=40124,
            webhook=tmp_path / "webhook.kubeconfig",
        )
    )
    issuer = api["--service-account-issuer"]
    assert issuer == service_account_issuer(40124) == "https://127.0.0.1:40124"
    assert parse_url(issuer).url == issuer  # registrable as an OIDC provider, as it is
    assert api["--service-account-jwks-uri"] == f"{issuer}/openid/v1/jwks"
    assert api["--api-audiences"] == "https://kubernetes.default.svc"


def test_the_web_identity_documents() -> None:
    from authbridge.iam import trust
    from tests.e2e.test_web_identity_apiserver import (
        deployer_trust,
        discovery_binding,
        exchange_form,
        token_request,
    )
    from tests.oidc_issuer import kube_service_account_claims

    provider = "arn:aws:iam::111122223333:oidc-provider/127.0.0.1:40124"
    policy = trust.parse_trust_policy(deployer_trust(provider))
    claims = kube_service_account_claims("https://127.0.0.1:40124", pod=None)
    assert trust.evaluate_web_identity(policy, provider, claims, now=claims["iat"]).allowed
    other = kube_service_account_claims("https://127.0.0.1:40124", name="other", pod=None)
    assert not trust.evaluate_web_identity(policy, provider, other, now=other["iat"]).allowed
    binding = discovery_binding()
    assert binding["roleRef"]["name"] == "system:service-account-issuer-discovery"
    assert binding["subjects"][0]["name"] == "system:unauthenticated"
    assert token_request()["spec"]["audiences"] == ["authbridge"]
    form = exchange_form("t")
    assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:id_token"
    assert form["role_arn"].endswith(":role/Deployer")


def test_the_e2e_mapping_maps_the_deployer_role() -> None:
    from authbridge.mapping.parse import parse_mapping
    from tests.e2e.conftest import E2E_MAPPING

    mapping = parse_mapping(E2E_MAPPING, "E2E_MAPPING")
    (rule,) = [r for r in mapping.map_roles if r.rolearn.endswith(":role/Deployer")]
    assert rule.username == "deployer:{{SessionName}}"


# -- the second apiserver (tests/e2e/test_web_identity_apiserver.py), offline --------------


def test_the_second_apiserver_starts_as_the_first_with_its_own_keys_and_prefix(
    tmp_path: Path,
) -> None:
    first_files = write_cluster_files(_mkdir(tmp_path / "first"))
    second_files = write_cluster_files(_mkdir(tmp_path / "second"))
    etcd = "http://127.0.0.1:2379"
    first = flags(
        apiserver_args(
            "kube-apiserver", first_files, etcd_url=etcd, port=40124,
            webhook=tmp_path / "webhook-prod-cp.kubeconfig",
        )
    )  # fmt: skip
    second = flags(
        apiserver_args(
            "kube-apiserver", second_files, etcd_url=etcd, port=40125,
            webhook=tmp_path / "webhook-prod-second-cp.kubeconfig",
            etcd_prefix=SECOND_ETCD_PREFIX,
        )
    )  # fmt: skip
    assert set(first) == set(second)  # the same flags, one function
    for required in (
        "--etcd-servers",
        "--etcd-prefix",
        "--service-account-issuer",
        "--service-account-key-file",
        "--service-account-signing-key-file",
        "--authentication-token-webhook-config-file",
    ):
        assert first[required] and second[required], required
    # One etcd, each apiserver's objects under its own prefix.
    assert first["--etcd-servers"] == second["--etcd-servers"] == etcd
    assert (first["--etcd-prefix"], second["--etcd-prefix"]) == ("/registry", "/registry-second")
    assert (first["--secure-port"], second["--secure-port"]) == ("40124", "40125")
    # Each its own webhook client of authbridge, the TokenReview v1 wire form.
    assert first["--authentication-token-webhook-config-file"].endswith(
        "webhook-prod-cp.kubeconfig"
    )
    assert second["--authentication-token-webhook-config-file"].endswith(
        "webhook-prod-second-cp.kubeconfig"
    )
    assert first["--authentication-token-webhook-version"] == "v1"
    assert second["--authentication-token-webhook-version"] == "v1"
    # Own certificates, issuer and service-account keys: a token of one is not the other's.
    for name in ("--tls-cert-file", "--client-ca-file", "--service-account-key-file"):
        assert Path(first[name]).read_bytes() != Path(second[name]).read_bytes(), name
    assert first["--service-account-issuer"] != second["--service-account-issuer"]
    assert first["--api-audiences"] == second["--api-audiences"] == KUBE_AUDIENCE
    signer = serialization.load_pem_private_key(
        Path(first["--service-account-signing-key-file"]).read_bytes(), password=None
    )
    verifier = serialization.load_pem_public_key(
        Path(second["--service-account-key-file"]).read_bytes()
    )
    assert signer.public_key().public_numbers() != verifier.public_numbers()  # type: ignore[union-attr]


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def test_each_apiserver_gets_its_own_webhook_kubeconfig_for_the_cluster(tmp_path: Path) -> None:
    from authbridge.apiserver_config import client_from_kubeconfig
    from tests.serving import free_port, run_cli

    port = free_port()
    run_cli(
        tmp_path,
        f"init --no-admin --cluster-id prod --cluster-id staging --port {port} {INIT_ARGS}",
    )
    ca = (tmp_path / "keys" / "tls" / "ca.crt").read_bytes()
    seen = []
    for apiserver in ("first", "second"):
        path = webhook_config(tmp_path, apiserver)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        doc = yaml.safe_load(path.read_text())
        server = doc["clusters"][0]["cluster"]
        assert server["server"].startswith("https://")
        assert server["server"].endswith(f":{port}/authenticate")
        assert base64.b64decode(server["certificate-authority-data"]) == ca
        client = client_from_kubeconfig(path.name, path.read_text())
        assert (client.name, client.cluster_id) == (WEBHOOK_CLIENTS[apiserver], "prod")
        seen.append(doc["users"][0]["user"]["client-certificate-data"])
    assert seen[0] != seen[1]  # two client certificates: the log names which apiserver asked
