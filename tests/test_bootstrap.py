"""The first administrator of a new store, without a shell on it (authbridge.first_admin).

Covers, on SQLite and PostgreSQL:

* ``Store.bootstrap_admin``: the account, the user ``admin`` with
  AdministratorAccess and one access key, together; nothing on a store that
  has an account; a delivery that fails leaves nothing and the next run makes
  it; two callers at once (two connections, the second blocked on the lock
  while the first delivers) make one administrator;
* ``authbridge init``: on an empty store the account (``--account-id`` or a
  random 12-digit id) and the administrator, the secret shown once (text and
  ``-o json``), the next command named; run again, no second key and the
  secret not shown again; ``--bootstrap-credentials FILE``: 0600, the secret
  not on stdout, an existing file refused with nothing made; ``--no-admin``;
* the printed credential against a real ``authbridge serve``: ``configure``
  accepts it and ``POST /api/iam`` ``ListUsers`` answers with it; the secret is
  in neither the server's log nor its audit log;
* ``serve`` on an empty store: ``--bootstrap-credentials FILE``, and
  ``bootstrapSecret`` filling the empty Secret through the (fake) API server
  with exactly the Role of deploy/bootstrap-admin.yaml; a second server on the
  same store does not touch it; a missing Secret, a forbidden name and a
  Secret changed meanwhile (409) each leave no administrator behind.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from authbridge import first_admin
from authbridge.errors import ConfigError, InputError, InvalidCredentials, StoreUnavailable
from authbridge.iam.credentials import Pepper
from authbridge.iam.model import BootstrapAdmin
from authbridge.kube import SECRET_VERBS, SecretSlot
from authbridge.settings import load_settings
from authbridge.store import SqlStore, open_store
from tests.conftest import BACKENDS, _dsn_for
from tests.fakekube import FakeKube
from tests.serving import AUTHBRIDGE, LiveServer, _wait_ready, clean_env, free_port

ROOT = Path(__file__).resolve().parent.parent
ADMINISTRATOR = "arn:aws:iam::aws:policy/AdministratorAccess"
ACCOUNT = "210987654321"
NAMESPACE = "authbridge"
SECRET = "authbridge-bootstrap-admin"


def _role_rules() -> list[dict[str, Any]]:
    """The rules the server's Role grants, read from the manifest itself."""
    docs = yaml.safe_load_all((ROOT / "deploy" / "bootstrap-admin.yaml").read_text())
    (role,) = [d for d in docs if d and d["kind"] == "Role"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


# -- the store --------------------------------------------------------------------------------


@pytest.fixture
def empty_store(empty_dsn: str, pepper: Pepper) -> Iterator[SqlStore]:
    s = open_store(empty_dsn, pepper=pepper)
    try:
        yield s
    finally:
        s.close()


def test_bootstrap_admin_makes_the_account_the_user_its_policy_and_one_key(
    empty_store: SqlStore,
) -> None:
    made = empty_store.bootstrap_admin(ACCOUNT, "admin", ADMINISTRATOR)
    assert made is not None
    assert [a.account_id for a in empty_store.list_accounts()] == [ACCOUNT]
    assert made.user == empty_store.get_user(ACCOUNT, "admin")
    assert made.user.arn == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert made.policy_arn == ADMINISTRATOR
    attached = empty_store.list_attached_policies(ACCOUNT, "user", "admin")
    assert [(a.name, a.arn) for a in attached] == [("AdministratorAccess", ADMINISTRATOR)]
    keys = empty_store.list_access_keys(ACCOUNT, "admin")
    assert [k.access_key_id for k in keys] == [made.key.key.access_key_id]
    key, user = empty_store.authenticate_access_key(
        made.key.key.access_key_id, made.key.secret_access_key
    )
    assert user.user_id == made.user.user_id and key.status == "Active"
    assert made.key.secret_access_key not in repr(made)


def test_a_store_with_an_account_gets_no_administrator(empty_store: SqlStore) -> None:
    empty_store.create_account("444455556666")
    assert empty_store.bootstrap_admin(ACCOUNT, "admin", ADMINISTRATOR) is None
    assert [a.account_id for a in empty_store.list_accounts()] == ["444455556666"]
    assert empty_store.list_users("444455556666") == []


def test_a_failed_delivery_leaves_nothing_and_the_next_run_makes_it(
    empty_store: SqlStore,
) -> None:
    seen: list[BootstrapAdmin] = []

    def refuse(made: BootstrapAdmin) -> None:
        seen.append(made)
        raise ConfigError("the Secret cannot be written")

    with pytest.raises(ConfigError, match="cannot be written"):
        empty_store.bootstrap_admin(ACCOUNT, "admin", ADMINISTRATOR, deliver=refuse)
    assert len(seen) == 1
    assert empty_store.list_accounts() == []
    with pytest.raises(InvalidCredentials):
        empty_store.authenticate_access_key(
            seen[0].key.key.access_key_id, seen[0].key.secret_access_key
        )
    made = empty_store.bootstrap_admin(ACCOUNT, "admin", ADMINISTRATOR)
    assert made is not None and made.key.key.access_key_id != seen[0].key.key.access_key_id


def test_only_a_shipped_policy_can_be_the_first_administrators(empty_store: SqlStore) -> None:
    own = f"arn:aws:iam::{ACCOUNT}:policy/Mine"
    with pytest.raises(InputError, match="not an AWS managed policy"):
        empty_store.bootstrap_admin(ACCOUNT, "admin", own)
    assert empty_store.list_accounts() == []


def test_a_rejected_user_name_or_account_id_writes_nothing(empty_store: SqlStore) -> None:
    with pytest.raises(InputError):
        empty_store.bootstrap_admin("12345", "admin", ADMINISTRATOR)
    with pytest.raises(InputError):
        empty_store.bootstrap_admin(ACCOUNT, "no spaces allowed", ADMINISTRATOR)
    assert empty_store.list_accounts() == []


def _waiting_on_accounts_lock(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted"
            " AND relation = to_regclass('iam_accounts')"
        ).fetchone()
    return bool(row and row[0])


def test_two_bootstraps_at_once_make_one_administrator(empty_dsn: str, pepper: Pepper) -> None:
    """Two replicas starting together, each with its own random account id."""
    first, second = (open_store(empty_dsn, pepper=pepper) for _ in range(2))
    inside, release = threading.Event(), threading.Event()
    results: dict[str, BootstrapAdmin | None] = {}
    errors: list[BaseException] = []

    def hold(made: BootstrapAdmin) -> None:
        inside.set()
        assert release.wait(30), "the test never released the first bootstrap"

    def run(name: str, store: SqlStore, account: str, deliver: Any) -> None:
        try:
            results[name] = store.bootstrap_admin(account, "admin", ADMINISTRATOR, deliver=deliver)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    try:
        a = threading.Thread(target=run, args=("a", first, "111111111111", hold))
        a.start()
        assert inside.wait(30)
        b = threading.Thread(target=run, args=("b", second, "222222222222", None))
        b.start()
        if empty_dsn.startswith("postgresql"):
            # Deterministic: b is blocked on the accounts lock while a delivers.
            for _ in range(3000):
                if _waiting_on_accounts_lock(empty_dsn):
                    break
                b.join(0.01)
            assert _waiting_on_accounts_lock(empty_dsn)
        release.set()
        a.join(30)
        b.join(30)
        assert not errors, errors
        assert results["a"] is not None and results["b"] is None
        assert [x.account_id for x in first.list_accounts()] == ["111111111111"]
        assert len(first.list_access_keys("111111111111", "admin")) == 1
    finally:
        release.set()
        first.close()
        second.close()


# -- authbridge init --------------------------------------------------------------------------


def _run(
    cwd: Path, argv: str | list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    args = shlex.split(argv) if isinstance(argv, str) else argv
    return subprocess.run(
        [AUTHBRIDGE, *args],
        cwd=cwd,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ok(cwd: Path, argv: str | list[str], env: dict[str, str]) -> str:
    proc = _run(cwd, argv, env)
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(params=BACKENDS)
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A clean environment whose AUTHBRIDGE_STORE is an empty store of each backend."""
    dsn = _dsn_for(str(request.param), tmp_path)
    try:
        yield clean_env(AUTHBRIDGE_STORE=dsn.value, HOME=str(tmp_path))
    finally:
        dsn.cleanup()


def test_init_on_an_empty_store_shows_the_secret_once_and_never_mints_another(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    doc = json.loads(_ok(tmp_path, f"--account-id {ACCOUNT} -o json init", store_env))
    admin = doc["Admin"]
    assert admin["Made"] is True
    assert admin["AccountId"] == ACCOUNT
    assert admin["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/admin"
    assert admin["PolicyArn"] == ADMINISTRATOR
    secret = admin["SecretAccessKey"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{40}", secret)
    assert admin["ConfigureCommand"].startswith(
        "authbridge configure --profile admin --endpoint https://127.0.0.1:8443 --ca-file "
    )
    assert admin["ConfigureCommand"].endswith(f"--access-key-id {admin['AccessKeyId']}")
    attached = json.loads(
        _ok(tmp_path, "-o json iam list-attached-user-policies --user-name admin", store_env)
    )
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [ADMINISTRATOR]

    again = _ok(tmp_path, "init", store_env)
    assert "none made, the store" in again and ACCOUNT in again
    assert secret not in again
    again_json = json.loads(_ok(tmp_path, "-o json init", store_env))
    assert again_json["Admin"]["Made"] is False and "SecretAccessKey" not in again_json["Admin"]
    keys = json.loads(_ok(tmp_path, "-o json iam list-access-keys --user-name admin", store_env))
    assert [k["AccessKeyId"] for k in keys["AccessKeyMetadata"]] == [admin["AccessKeyId"]]

    # The administrator's making is audited once, where store-mode changes are, never its secret.
    trail = (tmp_path / "keys" / "break-glass.log").read_text()
    assert secret not in trail
    lines = [json.loads(line) for line in trail.splitlines()]
    made = [line for line in lines if line["event"] == "admin_bootstrap"]
    assert len(made) == 1, lines
    assert made[0]["action"] == "authbridge:BootstrapAdmin"
    assert made[0]["targets"] == [admin["Arn"], ADMINISTRATOR]
    assert made[0]["outcome"] == "allowed" and admin["AccessKeyId"] in made[0]["detail"]
    assert made[0]["caller"] == "break-glass (store access)"


def test_init_text_names_a_random_account_the_secret_and_the_next_command(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    out = _ok(tmp_path, "init --admin-user root-admin", store_env)
    account = re.search(r"user/root-admin \(AdministratorAccess\), account (\d{12})\.", out)
    assert account is not None, out
    key_id = re.search(r"AccessKeyId: +(AKIA[A-Z0-9]{16})", out)
    secret = re.search(r"SecretAccessKey: +(\S{40})", out)
    assert key_id and secret, out
    assert "shown this once" in out
    assert f"--access-key-id {key_id[1]}" in out
    assert "authbridge --profile admin iam list-users" in out
    accounts = json.loads(_ok(tmp_path, "-o json iam list-accounts", store_env))["Accounts"]
    assert [a["AccountId"] for a in accounts] == [account[1]]


def test_bootstrap_credentials_file_is_0600_and_the_secret_is_not_on_stdout(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    creds = tmp_path / "secret" / "admin.json"
    out = _ok(tmp_path, f"-o json init --bootstrap-credentials {creds}", store_env)
    doc = json.loads(creds.read_text())
    assert creds.stat().st_mode & 0o777 == 0o600
    assert set(doc) == {
        "AccountId",
        "UserName",
        "Arn",
        "AccessKeyId",
        "SecretAccessKey",
        "Endpoint",
    }
    assert doc["SecretAccessKey"] not in out
    assert json.loads(out)["Admin"]["CredentialsFile"] == str(creds)
    text = _ok(tmp_path, "init", store_env)  # the account exists: the file is left alone
    assert doc["SecretAccessKey"] not in text
    assert json.loads(creds.read_text()) == doc


def test_an_existing_credentials_file_is_refused_and_nothing_is_made(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    creds = tmp_path / "admin.json"
    creds.write_text("keep me\n")
    proc = _run(tmp_path, f"init --bootstrap-credentials {creds}", store_env)
    assert proc.returncode == 1, proc
    assert "already exists; it is never overwritten" in proc.stderr
    assert creds.read_text() == "keep me\n"
    accounts = json.loads(_ok(tmp_path, "-o json iam list-accounts", store_env))["Accounts"]
    assert accounts == []
    creds.unlink()
    _ok(tmp_path, f"init --bootstrap-credentials {creds}", store_env)  # re-run: made now
    assert json.loads(creds.read_text())["UserName"] == "admin"


def test_init_no_admin_makes_no_account(tmp_path: Path, store_env: dict[str, str]) -> None:
    out = _ok(tmp_path, "init --no-admin", store_env)
    assert "Administrator" not in out
    assert json.loads(_ok(tmp_path, "-o json iam list-accounts", store_env))["Accounts"] == []
    proc = _run(tmp_path, "init --no-admin --bootstrap-credentials x.json", store_env)
    assert proc.returncode == 2 and "--no-admin" in proc.stderr


# -- against a real server ----------------------------------------------------------------------


def _serve(root: Path, port: int, env: dict[str, str], *extra: str) -> LiveServer:
    log = root / f"serve-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [AUTHBRIDGE, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", *extra],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(
        root=root,
        url=f"https://127.0.0.1:{port}",
        ca_file=root / "keys" / "tls" / "ca.crt",
        access_key_id="",
        secret="",
        role_arn="",
        user_arn="",
        proc=proc,
        log=log,
    )
    try:
        _wait_ready(server)
    except BaseException:
        _stop(server)
        raise
    return server


def _stop(server: LiveServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


def _list_users(server: LiveServer, key_id: str, secret: str) -> tuple[int, Any]:
    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    status, _, raw = server.request(
        "/api/iam",
        data=json.dumps({"Action": "ListUsers"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {basic}"},
    )
    return status, json.loads(raw)


def test_the_printed_credential_works_on_the_admin_api_and_is_never_logged(
    tmp_path: Path,
) -> None:
    port = free_port()
    audit = tmp_path / "audit.log"
    env = clean_env(HOME=str(tmp_path), AUTHBRIDGE_AUDIT_LOG=str(audit))
    out = _ok(tmp_path, f"-o json init --port {port}", env)
    admin = json.loads(out)["Admin"]
    key_id, secret = admin["AccessKeyId"], admin["SecretAccessKey"]
    server = _serve(tmp_path, port, env)
    try:
        status, body = _list_users(server, key_id, secret)
        assert status == 200, body
        assert [u["UserName"] for u in body["Users"]] == ["admin"]
        status, body = _list_users(
            server, key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B")
        )
        assert status in (401, 403), body

        command = shlex.split(admin["ConfigureCommand"])
        assert command[:2] == ["authbridge", "configure"]
        configured = _run(tmp_path, command[1:], env, stdin=secret + "\n")
        assert configured.returncode == 0, configured
        assert secret not in configured.stdout + configured.stderr
        profile = (tmp_path / ".authbridge" / "credentials").read_text()
        assert "[admin]" in profile and key_id in profile
    finally:
        _stop(server)
    logged = server.log.read_text() + audit.read_text()
    assert "ListUsers" in audit.read_text()  # the audit log did see the calls
    assert secret not in logged and secret[:16] not in logged


def test_first_serve_on_an_empty_store_writes_the_credentials_file_once(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(HOME=str(tmp_path))
    _ok(tmp_path, f"init --no-admin --port {port}", env)
    creds = tmp_path / "run" / "admin.json"
    server = _serve(tmp_path, port, env, "--bootstrap-credentials", str(creds))
    try:
        doc = json.loads(creds.read_text())
        assert creds.stat().st_mode & 0o777 == 0o600
        assert doc["Endpoint"] == f"https://127.0.0.1:{port}"  # the issuer init configured
        status, body = _list_users(server, doc["AccessKeyId"], doc["SecretAccessKey"])
        assert status == 200 and [u["UserName"] for u in body["Users"]] == ["admin"], body
    finally:
        _stop(server)
    log = server.log.read_text()
    assert doc["AccessKeyId"] in log and "first administrator" in log
    assert doc["SecretAccessKey"] not in log
    # A restart finds the account: the file (still there) is neither refused nor rewritten.
    before = creds.read_bytes()
    again = _serve(tmp_path, port, env, "--bootstrap-credentials", str(creds))
    _stop(again)
    assert creds.read_bytes() == before
    assert "no first administrator to make" in again.log.read_text()


# -- the Kubernetes Secret ------------------------------------------------------------------------


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, Path]]:
    """A fake API server that authorizes exactly the server's Role, with the empty Secret."""
    with FakeKube(
        namespaces=(NAMESPACE,),
        rules=_role_rules(),
        user="system:serviceaccount:authbridge:authbridge-server",
    ) as fake:
        manifest = next(
            d
            for d in yaml.safe_load_all((ROOT / "deploy" / "bootstrap-admin.yaml").read_text())
            if d and d["kind"] == "Secret"
        )
        fake.put(manifest)
        yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig")


def _slot(kubeconfig: Path, name: str = SECRET) -> SecretSlot:
    return SecretSlot.auto(f"{NAMESPACE}/{name}", env={"KUBECONFIG": str(kubeconfig)})


def _secret_data(fake: FakeKube) -> dict[str, str]:
    secret = fake.get("Secret", SECRET, NAMESPACE)
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def test_the_secret_is_filled_with_only_get_and_update_on_its_name(
    kube: tuple[FakeKube, Path], empty_store: SqlStore
) -> None:
    fake, kubeconfig = kube
    slot = _slot(kubeconfig)
    try:
        made = first_admin.bootstrap(
            empty_store,
            account_id=ACCOUNT,
            deliver=lambda m: slot.fill(first_admin.credential_document(m, endpoint="https://x")),
        )
    finally:
        slot.close()
    assert made is not None
    data = _secret_data(fake)
    assert data["AccessKeyId"] == made.key.key.access_key_id
    assert data["SecretAccessKey"] == made.key.secret_access_key
    assert data["Endpoint"] == "https://x" and data["AccountId"] == ACCOUNT
    assert fake.used() == SECRET_VERBS
    secret = fake.get("Secret", SECRET, NAMESPACE)
    assert secret is not None and secret["metadata"]["labels"]["app.kubernetes.io/name"]


def test_another_secret_name_is_forbidden_and_nothing_is_made(
    kube: tuple[FakeKube, Path], empty_store: SqlStore
) -> None:
    _, kubeconfig = kube
    slot = _slot(kubeconfig, "some-other-secret")
    try:
        with pytest.raises(ConfigError, match="403 Forbidden"):
            first_admin.bootstrap(
                empty_store, account_id=ACCOUNT, deliver=lambda m: slot.fill({"a": "b"})
            )
    finally:
        slot.close()
    assert empty_store.list_accounts() == []


def test_a_missing_secret_says_how_to_make_it_and_nothing_is_made(
    kube: tuple[FakeKube, Path], empty_store: SqlStore
) -> None:
    fake, kubeconfig = kube
    fake.remove("Secret", SECRET, NAMESPACE)
    slot = _slot(kubeconfig)
    try:
        with pytest.raises(ConfigError, match="404 NotFound.*kubectl apply -k deploy/"):
            first_admin.bootstrap(
                empty_store, account_id=ACCOUNT, deliver=lambda m: slot.fill({"a": "b"})
            )
    finally:
        slot.close()
    assert empty_store.list_accounts() == []


def test_a_secret_changed_meanwhile_is_not_overwritten_and_nothing_is_made(
    kube: tuple[FakeKube, Path], empty_store: SqlStore
) -> None:
    fake, kubeconfig = kube

    def someone_else() -> None:
        current = fake.get("Secret", SECRET, NAMESPACE)
        assert current is not None
        fake.put({**current, "data": {"note": base64.b64encode(b"theirs").decode()}})

    fake.on_next("PUT", f"/secrets/{SECRET}$", someone_else)
    slot = _slot(kubeconfig)
    try:
        with pytest.raises(ConfigError, match="409 Conflict"):
            first_admin.bootstrap(
                empty_store, account_id=ACCOUNT, deliver=lambda m: slot.fill({"a": "b"})
            )
    finally:
        slot.close()
    assert empty_store.list_accounts() == []
    assert _secret_data(fake) == {"note": "theirs"}


def test_first_serve_fills_the_secret_and_a_second_server_leaves_it(
    kube: tuple[FakeKube, Path], tmp_path: Path
) -> None:
    fake, kubeconfig = kube
    port = free_port()
    audit = tmp_path / "audit.log"
    env = clean_env(
        HOME=str(tmp_path),
        KUBECONFIG=str(kubeconfig),
        AUTHBRIDGE_BOOTSTRAP_SECRET=f"{NAMESPACE}/{SECRET}",
        AUTHBRIDGE_AUDIT_LOG=str(audit),
    )
    _ok(tmp_path, f"init --no-admin --port {port}", clean_env(HOME=str(tmp_path)))
    server = _serve(tmp_path, port, env)
    try:
        data = _secret_data(fake)
        status, body = _list_users(server, data["AccessKeyId"], data["SecretAccessKey"])
        assert status == 200 and [u["UserName"] for u in body["Users"]] == ["admin"], body
    finally:
        _stop(server)
    version = (fake.get("Secret", SECRET, NAMESPACE) or {})["metadata"]["resourceVersion"]
    fake.clear_requests()
    # Restarted with no way to reach the API at all: it need not, the store has its account.
    second = _serve(tmp_path, free_port(), {**env, "KUBECONFIG": str(tmp_path / "gone")})
    _stop(second)
    assert fake.requests == []
    assert "no first administrator to make" in second.log.read_text()
    assert (fake.get("Secret", SECRET, NAMESPACE) or {})["metadata"]["resourceVersion"] == version
    logged = server.log.read_text() + second.log.read_text() + audit.read_text()
    assert data["SecretAccessKey"] not in logged and data["SecretAccessKey"][:16] not in logged
    assert f"Secret {NAMESPACE}/{SECRET}" in server.log.read_text()
    (line,) = [json.loads(x) for x in audit.read_text().splitlines() if '"admin_bootstrap"' in x]
    assert line["action"] == "BootstrapAdmin" and line["outcome"] == "allowed"
    assert line["targets"][0].endswith(":user/admin")
    assert data["AccessKeyId"] in line["detail"]


def test_secret_slot_needs_a_namespace_outside_a_pod(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="give it as NAMESPACE/NAME"):
        SecretSlot.auto(SECRET, env={}, namespace_file=tmp_path / "no-such-file")


def test_secret_slot_reads_the_pods_namespace(kube: tuple[FakeKube, Path], tmp_path: Path) -> None:
    _, kubeconfig = kube
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text(NAMESPACE + "\n")
    slot = SecretSlot.auto(
        SECRET, env={"KUBECONFIG": str(kubeconfig)}, namespace_file=namespace_file
    )
    try:
        assert str(slot) == f"Secret {NAMESPACE}/{SECRET}"
        slot.fill({"k": "v"})
    finally:
        slot.close()


def test_kube_adapter_is_unchanged_by_the_secret_verbs() -> None:
    """The reconciler's verbs do not grow: the Secret is SecretSlot's alone."""
    from authbridge.kube import VERBS

    assert not {v for v in VERBS if v[1] == "secrets"}


# -- hostile input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Authbridge-Bootstrap",  # upper case
        "ns/name/extra",  # the namespace would hold a slash
        "-leading-dash",
        "trailing-dash-",
        "under_score",
        "name/",  # no name
        "x" * 254,  # longer than a DNS subdomain
        "n" * 64 + "/name",  # longer than a DNS label
        "name\n",
        "ns/../name",
    ],
)
def test_a_malformed_bootstrap_secret_setting_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ConfigError, match="AUTHBRIDGE_BOOTSTRAP_SECRET must be NAME|namespace"):
        load_settings({}, {"AUTHBRIDGE_BOOTSTRAP_SECRET": value}, None)


@given(st.text(max_size=300))
def test_bootstrap_secret_setting_accepts_only_what_the_api_server_would(value: str) -> None:
    try:
        got = load_settings({}, {"AUTHBRIDGE_BOOTSTRAP_SECRET": value}, None).bootstrap_secret
    except ConfigError as e:
        assert "AUTHBRIDGE_BOOTSTRAP_SECRET" in str(e)
        return
    assert got == value
    namespace, _, name = value.rpartition("/")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) and len(name) <= 253
    assert not namespace or (
        re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", namespace) and len(namespace) <= 63
    )


def test_a_symlink_planted_at_the_credentials_path_is_not_followed(
    tmp_path: Path, empty_store: SqlStore
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    planted = tmp_path / "admin.json"
    planted.symlink_to(victim)
    target = first_admin.CredentialsFile(planted, endpoint="https://x")
    with pytest.raises(InputError, match="already exists"):
        first_admin.bootstrap(
            empty_store, account_id=ACCOUNT, deliver=target.write, undo=target.undo
        )
    assert victim.read_text() == "untouched\n"
    assert planted.is_symlink() and empty_store.list_accounts() == []
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    target = first_admin.CredentialsFile(dangling, endpoint="https://x")
    with pytest.raises(InputError, match="already exists"):
        first_admin.bootstrap(empty_store, account_id=ACCOUNT, deliver=target.write)
    assert not (tmp_path / "nowhere").exists() and empty_store.list_accounts() == []


class _CommitFails:
    """A store whose commit fails after the delivery ran (a connection lost at COMMIT)."""

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.partition = inner.partition

    def bootstrap_admin(self, *args: Any, deliver: Any, **kwargs: Any) -> Any:
        def deliver_then_fail(made: BootstrapAdmin) -> None:
            deliver(made)
            raise StoreUnavailable("PostgreSQL connection failed: OperationalError")

        return self.inner.bootstrap_admin(*args, deliver=deliver_then_fail, **kwargs)


def test_a_commit_that_fails_after_the_file_was_written_removes_the_file(
    tmp_path: Path, empty_store: SqlStore
) -> None:
    path = tmp_path / "admin.json"
    target = first_admin.CredentialsFile(path, endpoint="https://x")
    store: Any = _CommitFails(empty_store)
    with pytest.raises(StoreUnavailable):
        first_admin.bootstrap(store, account_id=ACCOUNT, deliver=target.write, undo=target.undo)
    assert not path.exists()  # no file naming a key the store never kept
    assert empty_store.list_accounts() == []
    made = first_admin.bootstrap(
        empty_store, account_id=ACCOUNT, deliver=target.write, undo=target.undo
    )
    assert made is not None
    assert json.loads(path.read_text())["AccessKeyId"] == made.key.key.access_key_id
