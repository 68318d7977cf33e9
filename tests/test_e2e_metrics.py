"""End to end: /metrics and the audit log of a real `authbridge serve` with two workers.

The server runs under gunicorn with TLS and a client CA (`authbridge init
--apiserver-client prod-cp=prod`), its PROMETHEUS_MULTIPROC_DIR in the test's
directory so the test can see what each worker recorded. A scripted session
plays the people and the kube-apiserver: tokens from access keys and from a
token exchange, wrong secrets, an unserved audience, a bad subject token,
introspection, revocation, and TokenReviews for every refusal kind
(wrong_audience, bad_signature, unknown_kid, revoked, disabled, not_mapped,
expired, malformed, no client certificate), plus /verify.

Then:
- both workers answered requests (more /verify calls are made until they
  have), and every scrape, whichever worker answers it, shows exactly the
  session's counts: the sum over the workers;
- the mapping (its digest, one successful load per worker), the signing
  keys (an active and a retiring key, with ages) and the store families
  are there, with no store errors;
- the server's output holds one audit JSON line per audited request, each
  whole (no two workers' lines interleaved), and no secret or token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from authbridge.keys import KeyDirectory, KeySet, generate_signing_key
from authbridge.tokens import Principal, mint
from tests.serving import ACCOUNT, LiveServer, start_server

MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: alice
  - userarn: arn:aws:iam::{ACCOUNT}:user/dave
    username: dave
"""
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
REQUEST_COUNTERS = (
    "authbridge_tokenreview_total",
    "authbridge_verify_total",
    "authbridge_tokens_issued_total",
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Run:
    live: LiveServer
    metrics_dir: Path
    secrets: list[str]
    tokens: list[str]
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    audited: dict[str, int] = field(default_factory=dict)


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def form(
    live: LiveServer, path: str, fields: dict[str, str], auth: tuple[str, str] | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth is not None:
        raw = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {raw}"
    status, _, body = live.request(
        path, data=urllib.parse.urlencode(fields).encode(), headers=headers
    )
    return status, json.loads(body) if body else None


def issue(live: LiveServer, access_key: tuple[str, str], audience: str = "prod") -> str:
    status, body = form(
        live,
        "/oauth2/token",
        {"grant_type": "client_credentials", "audience": audience},
        access_key,
    )
    assert status == 200, body
    token: str = body["access_token"]
    return token


def review(live: LiveServer, token: str, *, cert: bool = True) -> tuple[int, Any]:
    """POST a TokenReview as the kube-apiserver of cluster prod does."""
    ctx = ssl.create_default_context(cafile=str(live.ca_file))
    if cert:
        tls = live.root / "keys" / "tls"
        ctx.load_cert_chain(str(tls / "apiserver-prod-cp.crt"), str(tls / "apiserver-prod-cp.key"))
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    req = urllib.request.Request(  # noqa: S310 - the test server's https URL
        live.url + "/authenticate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def denied_for(run: Run, token: str, reason: str) -> None:
    status, answer = review(run.live, token)
    assert status == 200 and answer["status"]["authenticated"] is False, (reason, answer)


def tampered(token: str) -> str:
    head, payload, sig = token.split(".")
    return f"{head}.{payload}.{'AAAA' if not sig.startswith('AAAA') else 'BBBB'}{sig[4:]}"


def scrape(live: LiveServer) -> Samples:
    status, headers, body = live.request("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        key(s.name, **s.labels): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def requests_by_worker(metrics_dir: Path) -> dict[str, float]:
    """Requests each worker counted, from its own file in the multiprocess directory."""
    counts: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.removeprefix("counter_")
        families = MultiProcessCollector.merge([str(path)], accumulate=False)
        counts[pid] = sum(
            s.value for f in families for s in f.samples if s.name in REQUEST_COUNTERS
        )
    return counts


def session(run: Run) -> None:
    live = run.live
    alice = (live.access_key_id, live.secret)
    users = {"alice": alice}
    for name in ("dave", "mallory"):
        live.cli(f"iam create-user --user-name {name}")
        made = json.loads(live.cli(f"-o json iam create-access-key --user-name {name}"))
        users[name] = (made["AccessKey"]["AccessKeyId"], made["AccessKey"]["SecretAccessKey"])
    run.secrets += [secret for _, secret in users.values()]
    e = run.expected

    # -- the token endpoint
    t_alice = issue(live, alice)
    t_revoked = issue(live, alice)
    t_staging = issue(live, alice, "staging")
    t_dave = issue(live, users["dave"])
    t_mallory = issue(live, users["mallory"])
    s_alice = issue(live, alice, live.url + "/sts")  # the subject token of AssumeRole
    run.tokens.append(s_alice)
    e[key("authbridge_tokens_issued_total", grant="client_credentials")] = 6
    status, body = form(
        live,
        "/oauth2/token",
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": s_alice,
            "subject_token_type": JWT_TYPE,
            "audience": "prod",
            "role_arn": live.role_arn,
            "role_session_name": "e2e",
        },
    )
    assert status == 200, body
    t_role = body["access_token"]
    e[key("authbridge_tokens_issued_total", grant="token_exchange")] = 1
    wrong = "wrong-secret-" + "x" * 20
    run.secrets.append(wrong)
    cc = {"grant_type": "client_credentials", "audience": "prod"}
    for _ in range(2):
        assert form(live, "/oauth2/token", cc, (alice[0], wrong))[0] == 401
    assert form(live, "/oauth2/token", {**cc, "audience": "nowhere"}, alice)[0] == 400
    garbage = {"grant_type": TOKEN_EXCHANGE, "subject_token": "not-a-token"}
    assert form(live, "/oauth2/token", {**garbage, "subject_token_type": JWT_TYPE})[0] == 400
    failures = "authbridge_token_endpoint_failures_total"
    e[key(failures, grant="client_credentials", error="invalid_client")] = 2
    e[key(failures, grant="client_credentials", error="invalid_target")] = 1
    e[key(failures, grant="token_exchange", error="invalid_grant")] = 1
    run.audited["token_issued"] = 11

    # -- introspection, revocation
    assert form(live, "/oauth2/introspect", {"token": t_alice}, alice)[1]["active"] is True
    assert form(live, "/oauth2/introspect", {"token": "garbage"}, alice)[1] == {"active": False}
    assert form(live, "/oauth2/revoke", {"token": t_revoked})[0] == 200
    assert form(live, "/oauth2/revoke", {"token": "garbage"})[0] == 200
    for name, result in (("introspection", "active"), ("introspection", "inactive")):
        e[key(f"authbridge_{name}_total", result=result)] = 1
    for result in ("revoked", "not_revocable"):
        e[key("authbridge_revocation_total", result=result)] = 1
    run.audited.update(introspect=2, revoke=2)
    # authenticate_access_key: 6 tokens, 2 wrong secrets, the unserved audience, 2 introspections
    e[
        key(
            "authbridge_store_operation_duration_seconds_count", operation="authenticate_access_key"
        )
    ] = 11

    # -- tokens the server refuses, made here
    live.cli("iam update-user --user-name dave --disable")
    keys_dir = KeyDirectory(live.root / "keys", prepublication_delay=600, max_token_lifetime=43200)
    now = time.time()
    keys_dir.rotate(now=now - 7200)  # active 6600 s ago, superseded: retiring, still published
    principal = Principal(
        arn=live.user_arn,
        canonical_arn=live.user_arn,
        account_id=ACCOUNT,
        principal_id="AIDA" + "A" * 17,
    )
    keys = keys_dir.load()
    expired = mint(principal, keys=keys, issuer=live.url, audience="prod", now=now - 6000).token
    stranger = KeySet((generate_signing_key("ES256", now=int(now) - 60),))
    unknown_kid = mint(principal, keys=stranger, issuer=live.url, audience="prod", now=now).token
    run.tokens += [t_alice, t_revoked, t_staging, t_dave, t_mallory, t_role, expired, unknown_kid]
    time.sleep(1.2)  # every worker looks at keys/ again at most a second later

    # -- TokenReviews
    for token in (t_alice, t_alice, t_role):
        status, answer = review(live, token)
        assert status == 200 and answer["status"]["authenticated"] is True, answer
    refusals = {
        "wrong_audience": t_staging,
        "bad_signature": tampered(t_alice),
        "unknown_kid": unknown_kid,
        "revoked": t_revoked,
        "disabled": t_dave,
        "not_mapped": t_mallory,
        "expired": expired,
        "malformed": "garbage",
    }
    for reason, token in refusals.items():
        denied_for(run, token, reason)
        e[key("authbridge_tokenreview_total", outcome="denied", reason=reason)] = 1
    assert review(live, t_alice, cert=False)[0] == 401
    e[key("authbridge_tokenreview_total", outcome="allowed", reason="ok")] = 3
    e[key("authbridge_tokenreview_total", outcome="error", reason="client_cert_required")] = 1
    for outcome, count in (("allowed", 3), ("denied", 8), ("error", 1)):
        e[key("authbridge_tokenreview_duration_seconds_count", outcome=outcome)] = count
    run.audited["tokenreview"] = 12

    # -- /verify
    bearer = {"Authorization": f"Bearer {t_alice}"}
    assert live.request("/verify", headers=bearer)[0] == 200
    assert live.request("/verify", headers={"Authorization": f"Bearer {expired}"})[0] == 200
    assert live.request("/verify")[0] == 400
    e[key("authbridge_verify_total", outcome="allowed", reason="ok")] = 1
    e[key("authbridge_verify_total", outcome="denied", reason="expired")] = 1
    no_token = key("authbridge_verify_total", outcome="error", reason="no_token")
    e[no_token] = 1
    run.audited["verify"] = 3

    # -- until both workers have answered requests (each connection is a new accept)
    for _ in range(200):
        if len([n for n in requests_by_worker(run.metrics_dir).values() if n > 0]) >= 2:
            break
        assert live.request("/verify")[0] == 400
        e[no_token] += 1
        run.audited["verify"] += 1
    e[key("authbridge_verify_duration_seconds_count", outcome="error")] = e[no_token]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp("metrics")
    metrics_dir = root / "prometheus-multiproc"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))  # the server's own choice
        served = start_server(
            root / "server", mapping=MAPPING, init_args="--apiserver-client prod-cp=prod"
        )
        live = next(served)
    try:
        result = Run(live=live, metrics_dir=metrics_dir, secrets=[], tokens=[])
        session(result)
        yield result
    finally:
        served.close()


def test_both_workers_answered(run: Run) -> None:
    busy = [n for n in requests_by_worker(run.metrics_dir).values() if n > 0]
    assert len(busy) == 2, requests_by_worker(run.metrics_dir)


def test_every_scrape_shows_the_sum_over_the_workers(run: Run) -> None:
    for _ in range(6):  # any worker may answer
        samples = scrape(run.live)
        got = {k: samples.get(k, 0.0) for k in run.expected}
        assert got == run.expected
        cache = sum(v for k, v in samples.items() if k[0] == "authbridge_tokenreview_cache_total")
        assert cache == 11  # every TokenReview but the one without a certificate
        # Each worker counted its load of the mapping at start.
        assert samples[key("authbridge_mapping_reloads_total", result="success")] == 2
        assert samples[key("authbridge_mapping_reloads_total", result="failure")] == 0


def test_state_families(run: Run) -> None:
    samples = scrape(run.live)
    digest = hashlib.sha256(MAPPING.encode()).hexdigest()
    assert samples[key("authbridge_mapping_info", digest=digest)] == 1
    assert 0 <= samples[key("authbridge_mapping_age_seconds")] < 300
    assert samples[key("authbridge_mapping_last_reload_failed")] == 0
    states = {k[1][0][1]: v for k, v in samples.items() if k[0] == "authbridge_signing_keys"}
    assert states == {"pending": 0, "active": 1, "retiring": 1, "retired": 0, "revoked": 0}
    ages = {dict(k[1])["state"]: v for k, v in samples.items() if k[0].endswith("key_age_seconds")}
    assert set(ages) == {"active", "retiring"} and 7199 < ages["retiring"] < 7500
    assert any(k[0] == "authbridge_store_operation_duration_seconds_bucket" for k in samples)
    errors = {k: v for k, v in samples.items() if k[0] == "authbridge_store_errors_total"}
    assert errors and not any(errors.values())


def test_one_whole_audit_line_per_request(run: Run) -> None:
    text = run.live.log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith('{"time"')]
    counted: dict[str, int] = {}
    for line in lines:
        counted[line["event"]] = counted.get(line["event"], 0) + 1
    assert counted == run.audited
    reasons = {line["reason"] for line in lines if line["event"] == "tokenreview"}
    assert reasons >= {"ok", "expired", "unknown_kid", "bad_signature", "disabled", "not_mapped"}
    for needle in run.secrets + run.tokens:
        assert needle not in text
        assert needle[-16:] not in text
