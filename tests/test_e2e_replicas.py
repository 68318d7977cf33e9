"""Three `authbridge serve` replicas (2 workers each) on one PostgreSQL store, keys in the store.

Skipped without ``AUTHBRIDGE_TEST_POSTGRES_DSN``; the replicas share their own
schema, a KEK file (0600), the TLS files and the config, each on its own free
port, and look at the store's keys every second (``keyRefreshSeconds: 1``).
Every claim is shown with bounded polling, never a fixed sleep:

* a rotation made with the CLI is in every replica's JWKS within the bound,
  and once it signs, its tokens verify at every replica (/verify and the
  TokenReview webhook);
* a revoked key's tokens are refused everywhere within the bound;
* a disabled user is refused at every replica's /verify at once (the review
  asks the store) and at /authenticate within the webhook cache TTL;
* a replica SIGKILLed in the middle of an automatic rotation — it holds the
  rotation lock and its insert is waiting, which the test arranges by holding
  ``LOCK TABLE signing_keys IN EXCLUSIVE MODE`` (reads go on, writes wait) —
  leaves no half-made key: the other replicas keep one and the same JWKS, the
  store the same rows, and a later rotation completes and reaches them;
* PostgreSQL restarting under load (when the test may restart it: root and
  ``pg_ctlcluster``; PostgreSQL is waited for in a ``finally``): every webhook
  answer is a right verdict or a 503 with ``Retry-After``, never a valid token
  refused or an invalid one accepted, and every replica answers right again
  on its own within a bound;
* no private key, KEK or pepper in the store dump, the logs or /metrics.

Access entries are not covered here yet (they do not exist yet).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from authbridge.iam.credentials import Pepper
from authbridge.keys import SigningKey, StoreKeys, load_kek
from authbridge.store import open_store
from authbridge.store.postgres import SIGNING_KEYS_LOCK_ID
from tests.conftest import _dsn_for, postgres_dsn
from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, _wait_ready, clean_env, free_port
from tests.test_cli_keys_store import _kek_file
from tests.test_keys_store import private_forms

# serial: its PostgreSQL restart would break every other test using the server, and its
# three replicas (six workers) want the machine to themselves (scripts/test runs it alone).
pytestmark = [pytest.mark.postgres, pytest.mark.serial]

REPLICAS = 3
REFRESH_SECONDS = 1
# A change reaches every replica within keyRefreshSeconds (or the webhook cache TTL);
# the slack is for a loaded 2-core machine, not for the design.
BOUND = REFRESH_SECONDS + 9
CACHE_TTL = 5
MAPPING = """\
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
  - userarn: arn:aws:iam::111122223333:user/dave
    username: dave
"""


@dataclass
class Replica:
    server: LiveServer
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class Fleet:
    root: Path
    env: dict[str, str]  # the CLI's and the replicas' environment
    issuer: str
    replicas: list[Replica]
    keys: dict[str, tuple[str, str]]  # user -> access key id, secret
    schema: str
    base_dsn: str
    dead: list[Replica] = field(default_factory=list)

    def cli(self, *args: str, **env: str) -> str:
        proc = subprocess.run(
            [AUTHBRIDGE, *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    def start(self, port: int | None = None, **env: str) -> Replica:
        port = port or free_port()
        full_env = {**self.env, **env}
        log = self.root / f"serve-{port}-{len(self.replicas) + len(self.dead)}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [AUTHBRIDGE, "serve", "--bind", f"127.0.0.1:{port}", "--issuer", self.issuer]
                + ["--workers", "2"],
                cwd=self.root,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: SIGKILL takes the workers too
            )
        alice = self.keys["alice"]
        server = LiveServer(
            root=self.root,
            url=f"https://127.0.0.1:{port}",
            ca_file=self.root / "keys" / "tls" / "ca.crt",
            access_key_id=alice[0],
            secret=alice[1],
            role_arn="",
            user_arn="",
            proc=proc,
            log=log,
        )
        return Replica(server, port, full_env)


def _stop(replica: Replica) -> None:
    proc = replica.server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = postgres_dsn()
    root = tmp_path_factory.mktemp("replicas")
    dsn = _dsn_for("postgres", root)
    assert dsn._schema is not None
    ports = [free_port() for _ in range(REPLICAS)]
    issuer = f"https://127.0.0.1:{ports[0]}"
    env = clean_env(AUTHBRIDGE_STORE=dsn.value)
    fleet = Fleet(root, env, issuer, [], {}, dsn._schema, base)
    try:
        fleet.cli(
            "init",
            "--no-admin",
            "--cluster-id",
            "prod",
            "--algorithm",
            "ES256",
            "--port",
            str(ports[0]),
            "--apiserver-client",
            "prod-cp=prod",
        )
        (root / "rbac").mkdir(exist_ok=True)
        (root / "rbac" / "mapping.yaml").write_text(MAPPING)
        env["AUTHBRIDGE_KEK_FILE"] = str(_kek_file(root))
        env["AUTHBRIDGE_KEY_REFRESH_SECONDS"] = str(REFRESH_SECONDS)
        env["AUTHBRIDGE_WEBHOOK_CACHE_TTL"] = str(CACHE_TTL)
        env["AUTHBRIDGE_ROTATION_PERIOD"] = "0"  # only the CLI rotates, unless a test says
        fleet.cli("keys", "import")
        fleet.cli("iam", "create-account", "--account-id", ACCOUNT)
        for name in ("alice", "dave"):
            fleet.cli("iam", "create-user", "--user-name", name)
            key = json.loads(
                fleet.cli("-o", "json", "iam", "create-access-key", "--user-name", name)
            )["AccessKey"]
            fleet.keys[name] = (key["AccessKeyId"], key["SecretAccessKey"])
        fleet.replicas = [fleet.start(port) for port in ports]
        for replica in fleet.replicas:
            _wait_ready(replica.server)
        yield fleet
    finally:
        for replica in fleet.replicas:
            _stop(replica)
        dsn.cleanup()


# --------------------------------------------------------------------------- talking to a replica


def _ctx(fleet: Fleet, client: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(fleet.root / "keys" / "tls" / "ca.crt"))
    if client:
        tls = fleet.root / "keys" / "tls"
        ctx.load_cert_chain(str(tls / "apiserver-prod-cp.crt"), str(tls / "apiserver-prod-cp.key"))
    return ctx


def _call(
    fleet: Fleet,
    replica: Replica,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    client: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(replica.url + path, data=body, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, context=_ctx(fleet, client), timeout=15) as r:  # noqa: S310
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def token(fleet: Fleet, replica: Replica, user: str = "alice") -> str:
    key_id, secret = fleet.keys[user]
    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "audience": "prod"})
    status, _, body = _call(
        fleet, replica, "/oauth2/token", form.encode(), {"Authorization": f"Basic {basic}"}
    )
    assert status == 200, body
    return str(json.loads(body)["access_token"])


def kid_of(tok: str) -> str:
    import jwt

    return str(jwt.get_unverified_header(tok)["kid"])


def jwks(fleet: Fleet, replica: Replica) -> list[str]:
    status, _, body = _call(fleet, replica, "/openid/v1/jwks")
    assert status == 200, body
    return sorted(k["kid"] for k in json.loads(body)["keys"])


def verified(fleet: Fleet, replica: Replica, tok: str) -> bool:
    status, _, body = _call(
        fleet,
        replica,
        "/verify",
        json.dumps({"token": tok, "clusterID": "prod"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert status == 200, body
    return bool(json.loads(body)["authenticated"])


def review(fleet: Fleet, replica: Replica, tok: str) -> tuple[int, dict[str, str], Any]:
    """A TokenReview, as the kube-apiserver sends it (with its client certificate)."""
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": tok, "audiences": ["prod"]},
    }
    status, headers, raw = _call(
        fleet,
        replica,
        "/authenticate",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
        client=True,
    )
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode(errors="replace")


def authenticated(fleet: Fleet, replica: Replica, tok: str) -> bool:
    status, _, answer = review(fleet, replica, tok)
    assert status == 200, answer
    return bool(answer["status"]["authenticated"])


def everywhere(
    what: str,
    fleet: Fleet,
    check: Callable[[Replica], bool],
    limit: float,
    replicas: list[Replica] | None = None,
) -> float:
    """Seconds until ``check`` held at every replica, 6 calls in a row each (both workers)."""
    started = time.monotonic()
    pending = list(replicas if replicas is not None else fleet.replicas)
    while pending:
        pending = [r for r in pending if not all(check(r) for _ in range(6))]
        if pending:
            assert time.monotonic() - started < limit, (
                f"{what}: not at {[r.url for r in pending]} after {limit} s:"
                f" {pending[0].server.log.read_text()[-2000:]}"
            )
            time.sleep(0.05)
    return time.monotonic() - started


def _store_keys(fleet: Fleet) -> list[SigningKey]:
    store = open_store(fleet.env["AUTHBRIDGE_STORE"], pepper=Pepper(b"p" * 32), migrate=False)
    try:
        kek = load_kek(Path(fleet.env["AUTHBRIDGE_KEK_FILE"]), None)
        return list(StoreKeys(store, kek).load().keys)
    finally:
        store.close()


# --------------------------------------------------------------------------- the tests


def test_a_rotation_reaches_every_replica_and_its_tokens_verify_everywhere(fleet: Fleet) -> None:
    first = fleet.replicas[0]
    before = jwks(fleet, first)
    new = json.loads(
        fleet.cli("-o", "json", "keys", "rotate", AUTHBRIDGE_PREPUBLICATION_DELAY="2")
    )["Key"]["kid"]
    assert new not in before
    took = everywhere("new key published", fleet, lambda r: new in jwks(fleet, r), BOUND)
    print(f"rotation published at every replica after {took:.2f} s")
    # every worker of every replica comes to show one and the same key set: the old key
    # and the new one (6 calls in a row can all land on one worker of a replica, so the
    # other worker is waited for, within the same bound, rather than sampled once)
    expected = {*before, new}
    everywhere("one key set", fleet, lambda r: set(jwks(fleet, r)) == expected, BOUND)
    # once it is active, each replica signs with it and every replica accepts that
    for signer in fleet.replicas:
        deadline = time.monotonic() + BOUND + 2
        while kid_of(tok := token(fleet, signer)) != new:
            assert time.monotonic() < deadline, "the rotated key never signed"
            time.sleep(0.1)
        for r in fleet.replicas:
            assert verified(fleet, r, tok), r.url
            assert authenticated(fleet, r, tok), r.url


def test_a_revocation_reaches_every_replica(fleet: Fleet) -> None:
    tok = token(fleet, fleet.replicas[1])
    kid = kid_of(tok)
    for r in fleet.replicas:
        assert authenticated(fleet, r, tok)  # also puts it in each webhook cache
    revoked = json.loads(
        fleet.cli(
            "-o", "json", "keys", "revoke", "--kid", kid, "--reason", "compromised", "--rotate"
        )
    )
    successor = revoked["NewKey"]["kid"]
    took = everywhere(
        "revoked key's token refused",
        fleet,
        lambda r: not verified(fleet, r, tok) and not authenticated(fleet, r, tok),
        BOUND,
    )
    print(f"revocation refused at every replica after {took:.2f} s")

    def signs_with_the_successor(r: Replica) -> bool:
        kids = jwks(fleet, r)
        return kid not in kids and successor in kids and kid_of(token(fleet, r)) == successor

    # Every worker, not only the ones the calls above reached, within the same bound.
    everywhere("successor published and signing", fleet, signs_with_the_successor, BOUND)
    for r in fleet.replicas:
        fresh = token(fleet, r)
        assert kid_of(fresh) == successor
        assert all(authenticated(fleet, other, fresh) for other in fleet.replicas)


def test_a_disabled_user_is_refused_at_every_replica(fleet: Fleet) -> None:
    tok = token(fleet, fleet.replicas[2], "dave")
    for r in fleet.replicas:
        assert verified(fleet, r, tok) and authenticated(fleet, r, tok)  # cached now
    fleet.cli("--account-id", ACCOUNT, "iam", "update-user", "--user-name", "dave", "--disable")
    try:
        # /verify asks the store on every call: refused at once, on every worker
        for r in fleet.replicas:
            assert not any(verified(fleet, r, tok) for _ in range(6)), r.url
        took = everywhere(
            "disabled user refused by the webhook",
            fleet,
            lambda r: not authenticated(fleet, r, tok),
            CACHE_TTL + BOUND,
        )
        print(f"disabled user refused by every webhook after {took:.2f} s")
    finally:
        fleet.cli("--account-id", ACCOUNT, "iam", "update-user", "--user-name", "dave", "--enable")


def _username(fleet: Fleet, replica: Replica, tok: str) -> str | None:
    status, _, answer = review(fleet, replica, tok)
    assert status == 200, answer
    user = answer["status"].get("user") if answer["status"]["authenticated"] else None
    return None if user is None else str(user["username"])


def test_an_access_entry_change_reaches_every_replica(fleet: Fleet) -> None:
    tok = token(fleet, fleet.replicas[0])
    for r in fleet.replicas:
        assert _username(fleet, r, tok) == "alice"  # the file's rule; cached now
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    base = ("access", "create-entry", "--cluster-id", "prod", "--principal-arn", alice)
    fleet.cli(*base, "--username", "entry-alice", "--group", "entry-devs")
    try:
        took = everywhere(
            "new access entry used by the webhook",
            fleet,
            lambda r: _username(fleet, r, tok) == "entry-alice",
            BOUND,
        )
        print(f"access entry used by every webhook after {took:.2f} s")
        fleet.cli(
            "access", "associate-policy", "--cluster-id", "prod", "--principal-arn", alice,
            "--policy", "view", "--scope", "cluster",
        )  # fmt: skip
        group = f"authbridge-internal:access-entry:{alice}"

        def grouped(r: Replica) -> bool:
            _, _, answer = review(fleet, r, tok)
            return group in answer["status"]["user"]["groups"]

        everywhere("associated policy's group handed out", fleet, grouped, BOUND)
    finally:
        fleet.cli("access", "delete-entry", "--cluster-id", "prod", "--principal-arn", alice)
    everywhere(
        "deleted access entry no longer used",
        fleet,
        lambda r: _username(fleet, r, tok) == "alice",
        BOUND,
    )


def _pg(fleet: Fleet) -> Any:
    import psycopg

    return psycopg.connect(fleet.env["AUTHBRIDGE_STORE"], autocommit=True)


def _rotation_in_flight(conn: Any) -> bool:
    """A backend holds the signing-keys lock and waits to write a row: mid-rotation."""
    held = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        (SIGNING_KEYS_LOCK_ID,),
    ).fetchone()[0]
    waiting = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'signing_keys'::regclass"
    ).fetchone()[0]
    return bool(held and waiting)


def test_a_replica_killed_mid_rotation_leaves_no_half_state(fleet: Fleet) -> None:
    keep = fleet.replicas[1:]
    rows_before = sorted(k.kid for k in _store_keys(fleet))
    victim = fleet.replicas[0]
    _stop(victim)
    fleet.replicas.remove(victim)
    fleet.dead.append(victim)
    with _pg(fleet) as lock_conn, _pg(fleet) as watch:
        with lock_conn.transaction():
            # Reads go on (every replica keeps refreshing), writes to the table wait.
            lock_conn.execute("LOCK TABLE signing_keys IN EXCLUSIVE MODE")
            rotating = fleet.start(
                victim.port,
                AUTHBRIDGE_ROTATION_PERIOD="2",
                AUTHBRIDGE_PREPUBLICATION_DELAY="1",
            )
            fleet.dead.append(rotating)
            deadline = time.monotonic() + 30
            while not _rotation_in_flight(watch):
                assert rotating.server.proc.poll() is None, rotating.server.log.read_text()
                assert time.monotonic() < deadline, rotating.server.log.read_text()[-2000:]
                time.sleep(0.05)
            os.killpg(rotating.server.proc.pid, signal.SIGKILL)
            rotating.server.proc.wait(timeout=20)
        # the lock is released: the dead replica's transaction can only roll back
        deadline = time.monotonic() + 20
        while _held(watch):
            assert time.monotonic() < deadline, "the dead replica's rotation lock stayed held"
            time.sleep(0.05)
    assert sorted(k.kid for k in _store_keys(fleet)) == rows_before  # no half-made key
    sets = {tuple(jwks(fleet, r)) for r in keep for _ in range(4)}
    assert len(sets) == 1, sets
    # another process completes the rotation; the remaining replicas follow it
    new = json.loads(fleet.cli("-o", "json", "keys", "rotate"))["Key"]["kid"]
    everywhere("rotation after the kill", fleet, lambda r: new in jwks(fleet, r), BOUND, keep)
    assert sorted(k.kid for k in _store_keys(fleet)) == sorted([*rows_before, new])
    # a replacement replica starts on the same store and shows the same keys
    replacement = fleet.start(victim.port)
    fleet.replicas.insert(0, replacement)
    _wait_ready(replacement.server)
    assert len({tuple(jwks(fleet, r)) for r in fleet.replicas}) == 1


def _held(conn: Any) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (SIGNING_KEYS_LOCK_ID,),
        ).fetchone()[0]
    )


def _cluster() -> tuple[str, str] | None:
    """(version, name) of the machine's PostgreSQL cluster, when this test may restart it."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        return None
    if os.geteuid() != 0:
        return None
    clusters = sorted(Path("/etc/postgresql").glob("*/*/postgresql.conf"))
    if len(clusters) != 1:
        return None
    return clusters[0].parent.parent.name, clusters[0].parent.name


def _wait_for_postgres(limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while subprocess.run(
        ["pg_isready", "-h", "127.0.0.1", "-q"], check=False, timeout=10
    ).returncode:
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


def test_postgres_restart_under_load_gives_503s_never_a_wrong_verdict(fleet: Fleet) -> None:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("restarting PostgreSQL needs root, pg_ctlcluster and one local cluster")
    good = {r.url: token(fleet, r) for r in fleet.replicas}
    dave = token(fleet, fleet.replicas[0], "dave")
    fleet.cli("--account-id", ACCOUNT, "iam", "update-user", "--user-name", "dave", "--disable")
    for r in fleet.replicas:  # dave's refusal needs the store: a wrong verdict would show
        everywhere("dave refused", fleet, lambda r: not authenticated(fleet, r, dave), BOUND, [r])
    # a token whose signature does not verify: refused without the store
    forged = good[fleet.replicas[0].url][:-8] + "AAAAAAAA"
    stop = threading.Event()
    answers: list[tuple[str, str, int, str | None, bool | None]] = []
    failures: list[str] = []

    def load(replica: Replica) -> None:
        cases = [("valid", good[replica.url], True), ("disabled", dave, False)]
        cases.append(("forged", forged, False))
        while not stop.is_set():
            for name, tok, expected in cases:
                try:
                    status, headers, answer = review(fleet, replica, tok)
                except OSError as e:
                    failures.append(f"{replica.url} {name}: {type(e).__name__}")
                    continue
                verdict = None
                if status == 200:
                    verdict = bool(answer["status"]["authenticated"])
                    if verdict != expected:
                        failures.append(f"{replica.url} {name}: wrong verdict {verdict}")
                elif status != 503 or not headers.get("Retry-After"):
                    failures.append(f"{replica.url} {name}: {status} {answer}")
                answers.append((replica.url, name, status, headers.get("Retry-After"), verdict))

    threads = [threading.Thread(target=load, args=(r,), daemon=True) for r in fleet.replicas]
    for t in threads:
        t.start()
    try:
        version, name = cluster
        subprocess.run(["pg_ctlcluster", version, name, "restart"], check=True, timeout=120)
    finally:
        _wait_for_postgres()
    try:
        took = everywhere(
            "service resumed",
            fleet,
            lambda r: authenticated(fleet, r, good[r.url]) and not authenticated(fleet, r, dave),
            30,
        )
        print(f"every replica answered right again {took:.2f} s after PostgreSQL was back")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        fleet.cli("--account-id", ACCOUNT, "iam", "update-user", "--user-name", "dave", "--enable")
    assert not failures, failures[:10]
    unavailable = [a for a in answers if a[2] == 503]
    print(f"{len(answers)} reviews under the restart, {len(unavailable)} answered 503")
    assert answers


def test_no_private_key_kek_or_pepper_in_dump_logs_or_metrics(fleet: Fleet) -> None:
    keys = _store_keys(fleet)
    secrets_ = [f for k in keys for f in private_forms(k)]
    kek_text = Path(fleet.env["AUTHBRIDGE_KEK_FILE"]).read_bytes().strip()
    pepper = (fleet.root / "keys" / "access-key-pepper").read_bytes()
    secrets_ += [kek_text, base64.b64decode(kek_text), pepper, base64.b64encode(pepper)]
    secrets_ += [base64.b64decode(kek_text).hex().encode(), pepper.hex().encode()]
    seen = b""
    for r in fleet.replicas + fleet.dead:
        seen += r.server.log.read_bytes()
    for r in fleet.replicas:
        status, _, body = _call(fleet, r, "/metrics")
        assert status == 200
        seen += body
    pg_dump = shutil.which("pg_dump") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
    )
    if pg_dump is not None:
        dump = subprocess.run(
            [pg_dump, "--schema", fleet.schema, "--data-only", "--inserts", fleet.base_dsn],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
        assert all(k.kid.encode() in dump for k in keys)
        seen += dump
    assert b"PRIVATE KEY" not in seen
    leaked = [s for s in secrets_ if s in seen]
    assert not leaked, f"{len(leaked)} secret forms in the dump, logs or /metrics"
