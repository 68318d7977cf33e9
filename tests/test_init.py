"""`authbridge init` through the real executable, and the PKI it relies on.

Covers: every file made with its mode; a second run keeps everything; --force
remakes TLS material, config and kubeconfig but never the signing keys or the
pepper; the serving certificate chains to the CA and names the hosts/IPs; the
client certificate is for client auth; the webhook kubeconfig points at
/authenticate with the CA and client cert inline; the printed kube-apiserver
flags (naming the file where the README has the control plane keep it, and
saying where it is here); bad names refused before anything is written; the
config is what `serve` and every other command read by default.

Run again with other flags (after quickstart, the newcomer's path): flags that
contradict what exists (issuer, port, account, a client certificate's
cluster) are refused with each difference named and nothing written; what the
flags add is applied and said: new names re-issue the serving certificate from
the same CA, new cluster ids join the config's clusters, a new
--apiserver-client gets its certificate and kubeconfig, which a real
`authbridge serve` then accepts (no 403), while the old kubeconfig still works;
the printed issuer is the one in the config; any existing config text is
used or refused with one named error, and what is printed is what is written
(Hypothesis).
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
from hypothesis import example, given, settings
from hypothesis import strategies as st

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
    # The path on the control plane (the README's hostPath mount), not this machine's.
    flag = (
        "--authentication-token-webhook-config-file=/etc/kubernetes/authbridge/webhook.kubeconfig"
    )
    assert flag in flags  # type: ignore[operator]
    client = out["ApiserverClients"][0]  # type: ignore[index]
    assert client["Kubeconfig"] == str(keys / "webhook.kubeconfig")
    assert client["ControlPlanePath"] == "/etc/kubernetes/authbridge/webhook.kubeconfig"

    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    for args in ("--hostname authbridge.example.com --ip 10.0.0.5 --cluster-id prod", ""):
        again = _init(tmp_path, args)
        assert (again["Made"], again["Updated"]) == ([], [])
        assert again["Issuer"] == "https://authbridge.example.com:8443"
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


# --------------------------------------------------------------------------- run again


NEWCOMER = "--hostname authbridge.example.com --ip 10.0.0.5 --cluster-id prod"
NEWCOMER += " --apiserver-client prod-cp=prod"


def _files(keys: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(keys.rglob("*")) if p.is_file()}


def _run(cwd: Path, args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTHBRIDGE, *shlex.split(args)],
        cwd=cwd,
        env=clean_env(HOME=str(cwd), **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def after_quickstart(tmp_path: Path) -> Path:
    proc = _run(tmp_path, "quickstart --no-serve")
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def test_contradicting_flags_are_refused_naming_each_difference(after_quickstart: Path) -> None:
    keys = after_quickstart / "keys"
    before = _files(keys)
    proc = _run(after_quickstart, f"init {NEWCOMER}")
    assert proc.returncode == 1, proc
    assert proc.stdout == ""  # nothing printed as if written
    assert proc.stderr.count("\n") == 1
    assert "the issuer is https://127.0.0.1:8443, not https://authbridge.example.com:8443" in (
        proc.stderr
    )
    assert "--issuer https://127.0.0.1:8443" in proc.stderr and "--force" in proc.stderr
    assert _files(keys) == before

    # Every difference at once: the port, the account, a client certificate's cluster.
    # (--account-id after the subcommand: a global option, written to the config.)
    added = _init(
        after_quickstart, "--cluster-id prod --apiserver-client cp=prod --account-id 111122223333"
    )
    assert added["Updated"] == ["authbridge.yaml (accountID 111122223333; clusters + prod)"]
    before = _files(keys)
    proc = _run(
        after_quickstart,
        "init --port 9443 --issuer https://127.0.0.1:8443 --cluster-id staging"
        " --apiserver-client cp=staging",
        AUTHBRIDGE_ACCOUNT_ID="210987654321",
    )
    assert proc.returncode == 1, proc
    for says in (
        "serves on port 8443, not 9443",
        "account is 111122223333, not 210987654321",
        "tls/apiserver-cp.crt is for cp in cluster prod, not cp in staging",
    ):
        assert says in proc.stderr, (says, proc.stderr)
    assert _files(keys) == before


def test_added_names_clusters_and_clients_are_applied_and_said(after_quickstart: Path) -> None:
    keys = after_quickstart / "keys"
    ca = (keys / "tls" / "ca.crt").read_bytes()
    old_kubeconfig = (keys / "webhook.kubeconfig").read_bytes()
    out = _init(after_quickstart, f"{NEWCOMER} --issuer https://127.0.0.1:8443")
    assert out["Made"] == ["tls/apiserver-prod-cp.crt", "webhook-prod-cp.kubeconfig"]
    assert out["Updated"] == [
        "tls/server.crt (re-issued by the same CA, now also for authbridge.example.com, 10.0.0.5)",
        "authbridge.yaml (clusters + prod; bind 0.0.0.0:8443)",
    ]
    config = yaml.safe_load((keys / "authbridge.yaml").read_text())
    assert out["Issuer"] == config["issuer"] == "https://127.0.0.1:8443"
    assert config["clusters"] == ["default", "prod"]
    assert (keys / "tls" / "ca.crt").read_bytes() == ca  # existing kubeconfigs stay valid
    assert (keys / "webhook.kubeconfig").read_bytes() == old_kubeconfig
    server = x509.load_pem_x509_certificate((keys / "tls" / "server.crt").read_bytes())
    server.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "authbridge.example.com"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "10.0.0.5",
    ]
    new = yaml.safe_load((keys / "webhook-prod-cp.kubeconfig").read_text())
    assert (
        new["clusters"][0]["cluster"]["server"]
        == "https://authbridge.example.com:8443/authenticate"
    )

    text = run_cli(after_quickstart, "init --cluster-id staging")
    assert "updated: authbridge.yaml (clusters + staging)" in text
    assert "Issuer:  https://127.0.0.1:8443" in text
    assert (
        f"copy {keys / 'webhook.kubeconfig'} (here) to"
        " /etc/kubernetes/authbridge/webhook.kubeconfig on its control plane"
    ) in text


def test_force_takes_the_new_issuer(after_quickstart: Path) -> None:
    out = _init(after_quickstart, f"{NEWCOMER} --force")
    config = yaml.safe_load((after_quickstart / "keys" / "authbridge.yaml").read_text())
    assert out["Issuer"] == config["issuer"] == "https://authbridge.example.com:8443"
    assert config["clusters"] == ["prod"]


def _tls_request(
    port: int, ca: Path, cert: Path, key: Path, server_name: str, body: bytes
) -> tuple[int, bytes]:
    """POST /authenticate over mutual TLS, checking the server certificate for server_name."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        tls.sendall(
            b"POST /authenticate HTTP/1.1\r\nHost: " + server_name.encode() + b"\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def _client_files(kubeconfig: Path, into: Path) -> tuple[Path, Path]:
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    cert, key = into / f"{kubeconfig.stem}.crt", into / f"{kubeconfig.stem}.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    key.chmod(0o600)
    return cert, key


def test_newcomer_scenario_the_new_kubeconfig_is_accepted(after_quickstart: Path) -> None:
    import signal
    import time

    from tests.serving import free_port

    root = after_quickstart
    keys = root / "keys"
    refused = _run(root, f"init {NEWCOMER}")
    assert refused.returncode == 1 and "--issuer https://127.0.0.1:8443" in refused.stderr
    _init(root, f"{NEWCOMER} --issuer https://127.0.0.1:8443")

    port = free_port()
    with (root / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [AUTHBRIDGE, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=root,
            env=clean_env(HOME=str(root)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        token = _run(
            root,
            "token --profile quickstart --cluster-id prod --token-only --no-cache"
            f" --endpoint https://127.0.0.1:{port}",
        )
        for _ in range(300):  # until the server answers
            if token.returncode == 0 or proc.poll() is not None:
                break
            time.sleep(0.1)
            token = _run(
                root,
                "token --profile quickstart --cluster-id prod --token-only --no-cache"
                f" --endpoint https://127.0.0.1:{port}",
            )
        assert token.returncode == 0, (token.stderr, (root / "serve.log").read_text())
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token.stdout.strip()},
        }
        body = json.dumps(review).encode()
        cert, key = _client_files(keys / "webhook-prod-cp.kubeconfig", root)
        # The re-issued serving certificate names the new hostname, from the same CA.
        status, payload = _tls_request(
            port, keys / "tls" / "ca.crt", cert, key, "authbridge.example.com", body
        )
        assert status == 200, payload  # not 403 "not for a cluster this server serves"
        answer = json.loads(payload)
        assert answer["status"]["authenticated"] is True, answer
        assert answer["status"]["user"]["username"] == "alice"
        # The quickstart kube-apiserver's kubeconfig (cluster default) still works.
        cert, key = _client_files(keys / "webhook.kubeconfig", root)
        status, payload = _tls_request(port, keys / "tls" / "ca.crt", cert, key, "localhost", body)
        assert status == 200, payload
        assert json.loads(payload)["status"]["authenticated"] is False  # minted for prod
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- the config, as input

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_CONFIGS = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda doc: yaml.safe_dump(doc),
        st.dictionaries(
            st.sampled_from(["issuer", "clusters", "bind", "accountID", "store"]),
            _VALUES,
            max_size=5,
        ),
    ),
)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from authbridge.bootstrap import InitRequest, init_directory

    root = tmp_path_factory.mktemp("init-property")
    init_directory(InitRequest(directory=root / "keys", key_algorithm="ES256"), cwd=root)
    return root


@settings(max_examples=60)
@given(text=_CONFIGS, account=st.sampled_from([None, "111122223333"]))
@example(text="clusters: [default]\n", account=None)  # no issuer: the one printed is written
@example(text="clusters: [default]\nbind: 7\n", account="111122223333")
def test_any_existing_config_is_used_or_refused_by_name(
    made: Path, text: str, account: str | None
) -> None:
    from authbridge.bootstrap import InitRequest, init_directory
    from authbridge.errors import AuthbridgeError

    keys = made / "keys"
    (keys / "authbridge.yaml").write_text(text)
    request = InitRequest(
        directory=keys, cluster_ids=("prod",), ips=("10.0.0.5",), account_id=account
    )
    try:
        report = init_directory(request, cwd=made)
    except AuthbridgeError as e:
        assert e.message and "\n" not in e.message
    else:
        config = yaml.safe_load((keys / "authbridge.yaml").read_text())
        assert report.issuer == config["issuer"]  # what it prints is what is written
        assert "prod" in config["clusters"]
