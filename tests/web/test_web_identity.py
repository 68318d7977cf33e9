"""AssumeRoleWithWebIdentity on ``POST /oauth2/token`` against the test OIDC issuer over https.

Kube service-account, GitHub Actions and GitLab CI tokens from
:mod:`tests.oidc_issuer` are exchanged for role sessions of roles whose trust
policy documents name the registered provider with conditions on the claims;
hostile upstream tokens are each refused with their own named test; an
unreachable issuer fails its own logins only, never with a 500.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from authbridge.iam import trust
from authbridge.iam.model import Role
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.keys import KeyRing
from authbridge.oidc_upstream import UpstreamKeys
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.tokens import MAX_TOKEN_SIZE
from authbridge.web import create_app
from tests.conftest import ACCOUNT, OTHER_ACCOUNT
from tests.oidc_issuer import (
    TestIssuer,
    github_actions_claims,
    gitlab_ci_claims,
    kube_service_account_claims,
    running_issuer,
)
from tests.web.conftest import make_settings
from tests.web.helpers import (
    STS,
    TOKEN_EXCHANGE,
    Clock,
    assert_error,
    claims_of,
    key_auth,
    user_token,
)
from tests.web.test_metrics import Delta

ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
KUBE_SUB = "system:serviceaccount:ci:deployer"


class Monotonic:
    """The fetcher's clock, moved by the test (cache times, the refetch interval)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trust_document(provider: OidcProvider, conditions: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider.arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": dict(conditions),
            }
        ],
    }


def kube_trust(provider: OidcProvider, sub: str = KUBE_SUB) -> dict[str, Any]:
    return trust_document(
        provider,
        {"StringEquals": {f"{provider.key}:aud": "authbridge", f"{provider.key}:sub": sub}},
    )


def issuer_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, audit_log=str(tmp_path / "audit.log"))


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(issuer_dir(tmp_path, "issuer")) as running:
        yield running


@pytest.fixture
def provider(app_store: SqlStore, issuer: TestIssuer) -> OidcProvider:
    return app_store.create_open_id_connect_provider(
        ACCOUNT, issuer.url, ["authbridge", "sts.amazonaws.com"], ca_bundle=issuer.ca_pem
    )


@pytest.fixture
def role(app_store: SqlStore, provider: OidcProvider) -> Role:
    return app_store.create_role(ACCOUNT, "Deployer", trust_policy=kube_trust(provider))


@pytest.fixture
def fetch_clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def upstream(fetch_clock: Monotonic) -> UpstreamKeys:
    return UpstreamKeys(timeout=3.0, clock=fetch_clock)


@pytest.fixture
def app(
    settings: Settings, app_store: SqlStore, keyring: KeyRing, clock: Clock, upstream: UpstreamKeys
) -> Flask:
    return create_app(settings, store=app_store, keys=keyring, clock=clock, upstream=upstream)


def web_exchange(
    client: FlaskClient,
    token: str,
    role_arn: str,
    *,
    session: str = "ci-job",
    audience: str = "prod",
    token_type: str = ID_TOKEN,
    **extra: str,
) -> TestResponse:
    return client.post(
        "/oauth2/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": token,
            "subject_token_type": token_type,
            "role_arn": role_arn,
            "role_session_name": session,
            "audience": audience,
            **extra,
        },
    )


def refused(response: TestResponse, *fragments: str) -> str:
    body = assert_error(response, 400, "invalid_grant", *fragments)
    description: str = body["error_description"]
    return description


def assert_no_token_echo(response: TestResponse, token: str) -> None:
    text = response.get_data(as_text=True)
    for part in token.split("."):
        if len(part) > 16:
            assert part not in text


def verify(client: FlaskClient, token: str) -> dict[str, Any]:
    response = client.post("/verify", json={"token": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


# --------------------------------------------------------------------------- condition matching


def test_kube_service_account_token_assumes_the_role(
    client: FlaskClient, issuer: TestIssuer, provider: OidcProvider, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(now=int(clock.now))
    response = web_exchange(client, token, role.arn, duration_seconds="1800")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["issued_token_type"] == JWT
    assert body["expires_in"] == 1800
    claims = claims_of(body["access_token"])
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/ci-job"
    assert claims["sub"] == role.arn
    assert claims["source_identity"] == f"{provider.arn}:{KUBE_SUB}"
    assert "access_key_id" not in claims and "source_jti" not in claims
    answer = verify(client, body["access_token"])
    assert answer["identity"]["sourceIdentity"] == f"{provider.arn}:{KUBE_SUB}"


def test_kube_token_of_another_service_account_is_refused_naming_the_condition(
    client: FlaskClient, issuer: TestIssuer, provider: OidcProvider, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(name="intruder", now=int(clock.now))
    description = refused(web_exchange(client, token, role.arn), "StringEquals", ":sub")
    assert "system:serviceaccount:ci:intruder" in description
    assert "not met" in description


def test_github_actions_sub_condition(
    app_store: SqlStore, client: FlaskClient, issuer: TestIssuer, provider: OidcProvider
) -> None:
    key = provider.key
    ci = app_store.create_role(
        ACCOUNT,
        "GitHubDeploy",
        trust_policy=trust_document(
            provider,
            {
                "StringEquals": {
                    f"{key}:aud": "sts.amazonaws.com",
                    f"{key}:sub": "repo:octo-org/octo-repo:ref:refs/heads/main",
                }
            },
        ),
    )
    good = issuer.github_token()
    assert web_exchange(client, good, ci.arn).status_code == 200
    branch = issuer.github_token(ref="refs/heads/feature")
    refused(web_exchange(client, branch, ci.arn), "repo:octo-org/octo-repo:ref:refs/heads/feature")
    fork = issuer.github_token(repository="evil-org/octo-repo")
    refused(web_exchange(client, fork, ci.arn), ":sub")


def test_gitlab_project_path_condition_with_string_like(
    app_store: SqlStore, client: FlaskClient, issuer: TestIssuer, provider: OidcProvider
) -> None:
    key = provider.key
    ci = app_store.create_role(
        ACCOUNT,
        "GitLabDeploy",
        trust_policy=trust_document(
            provider,
            {
                "StringEquals": {f"{key}:aud": "authbridge"},
                "StringLike": {
                    f"{key}:sub": "project_path:my-group/my-project:ref_type:branch:ref:main"
                },
            },
        ),
    )
    assert web_exchange(client, issuer.gitlab_token(), ci.arn).status_code == 200
    tag = issuer.gitlab_token(ref="v1.0", ref_type="tag")
    refused(web_exchange(client, tag, ci.arn), "StringLike", "ref_type:tag")


def test_a_jwt_subject_token_type_from_a_provider_is_web_identity(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(now=int(clock.now))
    assert web_exchange(client, token, role.arn, token_type=JWT).status_code == 200


# --------------------------------------------------------------------------- rotation, outages


def test_upstream_jwks_rotation_is_followed(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock, fetch_clock: Monotonic
) -> None:
    assert web_exchange(client, issuer.kube_token(now=int(clock.now)), role.arn).status_code == 200
    issuer.rotate(keep_old=False)
    fetch_clock.now += 61  # past the refetch interval: the unknown kid refetches once
    response = web_exchange(client, issuer.kube_token(now=int(clock.now)), role.arn)
    assert response.status_code == 200, response.get_json()
    hits = issuer.hits[f"{issuer.path}/openid/v1/jwks"]
    # A made-up kid right after does not refetch (at most once a minute per provider).
    stray = issuer.mint(kube_service_account_claims(issuer.url, now=int(clock.now)), kid="nope")
    refused(web_exchange(client, stray, role.arn), "no signing key with kid 'nope'")
    assert issuer.hits[f"{issuer.path}/openid/v1/jwks"] == hits


def test_unreachable_issuer_fails_only_its_own_logins(
    tmp_path: Path,
    app_store: SqlStore,
    client: FlaskClient,
    issuer: TestIssuer,
    role: Role,
    clock: Clock,
    world: Any,
) -> None:
    with running_issuer(issuer_dir(tmp_path, "other")) as other:
        other_provider = app_store.create_open_id_connect_provider(
            ACCOUNT, other.url, ["authbridge"], ca_bundle=other.ca_pem
        )
        other_role = app_store.create_role(
            ACCOUNT, "OtherDeployer", trust_policy=kube_trust(other_provider)
        )
        token = issuer.kube_token(now=int(clock.now))
        issuer.go_down()
        response = web_exchange(client, token, role.arn)
        description = refused(response, "cannot be checked", "cannot be reached", "unreachable")
        assert_no_token_echo(response, token)
        assert "500" not in description
        # The other provider, and every other grant, still work.
        other_token = other.kube_token(now=int(clock.now))
        assert web_exchange(client, other_token, other_role.arn).status_code == 200
        user_token(client, world.alice_key)
        issuer.come_back()


def test_deleted_provider_ends_its_sessions(
    app_store: SqlStore,
    client: FlaskClient,
    issuer: TestIssuer,
    provider: OidcProvider,
    role: Role,
    clock: Clock,
) -> None:
    body = web_exchange(client, issuer.kube_token(now=int(clock.now)), role.arn).get_json()
    session = body["access_token"]
    assert verify(client, session).get("reasonCode") != "source_deleted"
    app_store.delete_open_id_connect_provider(ACCOUNT, provider.arn)
    answer = verify(client, session)
    assert answer["authenticated"] is False
    assert "no longer exists" in answer["reason"]
    # A new login through it is refused too.
    refused(
        web_exchange(client, issuer.kube_token(now=int(clock.now)), role.arn),
        "not an OIDC provider registered",
    )


# --------------------------------------------------------------------------- hostile tokens


def test_alg_none_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.mint_alg_none(kube_service_account_claims(issuer.url, now=int(clock.now)))
    refused(web_exchange(client, token, role.arn), "alg is not one of")


def test_hs256_with_the_jwks_as_secret_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    claims = kube_service_account_claims(issuer.url, now=int(clock.now))
    refused(
        web_exchange(client, issuer.mint_hs256_with_jwks(claims), role.arn), "alg is not one of"
    )


def test_wrong_audience_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(audiences=("https://kubernetes.default.svc",), now=int(clock.now))
    refused(web_exchange(client, token, role.arn), "aud is none of the client ids")


def test_expired_token_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(now=int(clock.now) - 7200, lifetime=3600)
    refused(web_exchange(client, token, role.arn), "expired")


def test_token_from_the_future_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(now=int(clock.now) + 600)
    refused(web_exchange(client, token, role.arn), "not valid yet")


def test_kid_of_another_provider_is_refused(
    tmp_path: Path,
    app_store: SqlStore,
    client: FlaskClient,
    issuer: TestIssuer,
    role: Role,
    clock: Clock,
) -> None:
    with running_issuer(issuer_dir(tmp_path, "other")) as other:
        app_store.create_open_id_connect_provider(
            ACCOUNT, other.url, ["authbridge"], ca_bundle=other.ca_pem
        )
        # Signed by the other provider's key, naming its kid, claiming this issuer.
        claims = kube_service_account_claims(issuer.url, now=int(clock.now))
        token = other.mint(claims)
        refused(web_exchange(client, token, role.arn), "no signing key with kid")
        # The same kid as this issuer's key but the other's signature: the signature fails.
        forged = other.mint(claims, kid=issuer.key.kid)
        refused(web_exchange(client, forged, role.arn), "signature does not verify")


def test_oversized_token_is_refused(client: FlaskClient, issuer: TestIssuer, role: Role) -> None:
    claims = {**kube_service_account_claims(issuer.url), "pad": "x" * MAX_TOKEN_SIZE}
    token = issuer.mint(claims)
    response = web_exchange(client, token, role.arn)
    refused(response, f"larger than {MAX_TOKEN_SIZE} bytes")
    assert_no_token_echo(response, token)


def test_iss_mismatch_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    # The same provider key (a trailing / is dropped from it), not the registered URL.
    token = issuer.mint(kube_service_account_claims(issuer.url + "/", now=int(clock.now)))
    refused(web_exchange(client, token, role.arn), "its iss is not exactly")
    unknown = issuer.mint(kube_service_account_claims("https://elsewhere.example"))
    refused(web_exchange(client, unknown, role.arn), "not an OIDC provider registered")


def test_provider_of_another_account_is_refused(
    tmp_path: Path, app_store: SqlStore, client: FlaskClient, role: Role, clock: Clock
) -> None:
    # An issuer registered in another account only: its tokens never count for a role
    # of this one (the role ARN names the account the provider must be registered in).
    app_store.create_account(OTHER_ACCOUNT)
    with running_issuer(issuer_dir(tmp_path, "theirs")) as theirs:
        app_store.create_open_id_connect_provider(
            OTHER_ACCOUNT, theirs.url, ["authbridge"], ca_bundle=theirs.ca_pem
        )
        token = theirs.kube_token(now=int(clock.now))
        refused(
            web_exchange(client, token, role.arn),
            f"not an OIDC provider registered in account {ACCOUNT}",
        )


def test_duplicate_claim_names_are_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role
) -> None:
    token = issuer.kube_token()
    head, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    doubled = raw[:-1] + ', "sub": "system:serviceaccount:kube-system:admin"}'
    forged_payload = base64.urlsafe_b64encode(doubled.encode()).decode().rstrip("=")
    refused(web_exchange(client, f"{head}.{forged_payload}.{signature}", role.arn), "repeated")


def test_missing_role_answers_like_an_untrusting_role(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock
) -> None:
    token = issuer.kube_token(now=int(clock.now))
    missing = role.arn.replace("Deployer", "NoSuchRole")
    refused(web_exchange(client, token, missing), "no statement of the role's trust policy allows")


def test_user_trust_does_not_admit_web_identity(
    client: FlaskClient, issuer: TestIssuer, provider: OidcProvider, world: Any, clock: Clock
) -> None:
    # Admin trusts alice (sts:AssumeRole): no web identity token may assume it.
    token = issuer.kube_token(now=int(clock.now))
    refused(web_exchange(client, token, world.admin.arn), "no statement")


def test_authbridge_token_as_id_token_is_refused_clearly(client: FlaskClient, world: Any) -> None:
    own = user_token(client, world.alice_key, STS)
    response = web_exchange(client, own, world.admin.arn)
    assert_error(response, 400, "invalid_request", "not an id_token", JWT)


def test_client_authentication_with_a_web_identity_token_is_refused(
    client: FlaskClient, issuer: TestIssuer, role: Role, world: Any, clock: Clock
) -> None:
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": issuer.kube_token(now=int(clock.now)),
            "subject_token_type": ID_TOKEN,
            "role_arn": role.arn,
            "role_session_name": "x",
            "audience": "prod",
        },
        headers=key_auth(world.alice_key),
    )
    assert_error(response, 400, "invalid_request", "no client authentication")


def test_refusals_are_audited_with_their_reason(
    client: FlaskClient, issuer: TestIssuer, role: Role, clock: Clock, settings: Settings
) -> None:
    delta = Delta(
        ("authbridge_tokens_issued_total", {"grant": "web_identity"}),
        (
            "authbridge_token_endpoint_failures_total",
            {"grant": "web_identity", "error": "invalid_grant"},
        ),
    )
    token = issuer.kube_token(now=int(clock.now) - 7200, lifetime=3600)
    web_exchange(client, token, role.arn)
    good = web_exchange(client, issuer.kube_token(now=int(clock.now)), role.arn)
    assert good.status_code == 200
    assert delta() == [1, 1]
    lines = [
        json.loads(line)
        for line in Path(settings.audit_log).read_text().splitlines()
        if '"token_issued"' in line
    ]
    assert lines[-2]["grant"] == "web_identity" and lines[-2]["detail"] == "expired"
    assert lines[-1]["grant"] == "web_identity"
    assert lines[-1]["source_identity"].endswith(f":{KUBE_SUB}")
    assert token.split(".")[1] not in Path(settings.audit_log).read_text()


def test_gitlab_and_github_claim_shapes_are_what_the_issuer_mints(issuer: TestIssuer) -> None:
    # Guards the fixtures the tests above and the README recipes rely on.
    assert github_actions_claims(issuer.url)["sub"] == "repo:octo-org/octo-repo:ref:refs/heads/main"
    assert (
        gitlab_ci_claims(issuer.url)["sub"]
        == "project_path:my-group/my-project:ref_type:branch:ref:main"
    )


# --------------------------------------------------------------------------- README recipes

README = Path(__file__).resolve().parents[2] / "README.md"
README_SECTION = "## CI jobs and pods: roles with no stored secret"


def readme_trust_documents() -> dict[str, dict[str, Any]]:
    """The README's trust policy documents, by the provider host they name."""
    text = README.read_text()
    section = text[text.index(README_SECTION) :]
    section = section[: section.index("\n## ", 1)]
    out: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"^```json\n(.*?)^```", section, re.M | re.S):
        doc = json.loads(block)
        federated = doc["Statement"][0]["Principal"]["Federated"]
        out[federated.split(":oidc-provider/", 1)[1]] = doc
    return out


def test_readme_has_the_github_and_gitlab_trust_policies() -> None:
    assert set(readme_trust_documents()) == {
        "token.actions.githubusercontent.com",
        "gitlab.example.com",
    }


@pytest.mark.parametrize(
    ("host", "claims", "allowed"),
    [
        ("token.actions.githubusercontent.com", github_actions_claims(), True),
        (
            "token.actions.githubusercontent.com",
            github_actions_claims(ref="refs/heads/feature"),
            False,
        ),
        (
            "token.actions.githubusercontent.com",
            github_actions_claims(repository="octo-org/other-repo"),
            False,
        ),
        ("token.actions.githubusercontent.com", github_actions_claims(audience="other"), False),
        (
            "token.actions.githubusercontent.com",
            github_actions_claims(event_name="pull_request", ref="refs/pull/1/merge"),
            False,
        ),
        ("gitlab.example.com", gitlab_ci_claims(), True),
        ("gitlab.example.com", gitlab_ci_claims(ref="feature"), False),
        ("gitlab.example.com", gitlab_ci_claims(ref="v1", ref_type="tag"), False),
        ("gitlab.example.com", gitlab_ci_claims(project_path="my-group/other"), False),
    ],
)
def test_readme_trust_policies_as_written(host: str, claims: dict[str, Any], allowed: bool) -> None:
    """The README's exact documents, against the claims GitHub and GitLab put in tokens."""
    doc = readme_trust_documents()[host]
    policy = trust.parse_trust_policy(doc)
    provider_arn = doc["Statement"][0]["Principal"]["Federated"]
    assert claims["iss"] == f"https://{host}"
    decision = trust.evaluate_web_identity(policy, provider_arn, claims, now=claims["iat"])
    assert decision.allowed is allowed, decision.reason


@pytest.mark.parametrize("host", ["token.actions.githubusercontent.com", "gitlab.example.com"])
def test_readme_trust_policies_through_the_exchange(
    app_store: SqlStore, client: FlaskClient, issuer: TestIssuer, clock: Clock, host: str
) -> None:
    """The same documents with the test issuer in the provider's place, end to end."""
    audience = "sts.amazonaws.com" if host.startswith("token.") else "authbridge"
    provider = app_store.create_open_id_connect_provider(
        ACCOUNT, issuer.url, [audience], ca_bundle=issuer.ca_pem
    )
    text = json.dumps(readme_trust_documents()[host]).replace(host, provider.key)
    role = app_store.create_role(ACCOUNT, "CiDeploy", trust_policy=text)
    if host.startswith("token."):
        good, bad = issuer.github_token(), issuer.github_token(ref="refs/heads/x")
    else:
        good, bad = issuer.gitlab_token(), issuer.gitlab_token(ref="x")
    assert web_exchange(client, good, role.arn).status_code == 200
    refused(web_exchange(client, bad, role.arn), "is not met")


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda h, p: f"{h}.{p}.sig",
            st.text(alphabet="abcdefABCDEF0123456789-_", min_size=1, max_size=40),
            st.text(alphabet="abcdefABCDEF0123456789-_", min_size=1, max_size=80),
        ),
    ),
    token_type=st.sampled_from([ID_TOKEN, JWT]),
)
def test_property_any_subject_token_is_refused_without_a_500(
    client: FlaskClient, role: Role, token: str, token_type: str
) -> None:
    response = web_exchange(client, token, role.arn, token_type=token_type)
    assert response.status_code in (400, 429), response.get_json()
    assert response.get_json()["error"] in {"invalid_grant", "invalid_request", "too_many_requests"}
