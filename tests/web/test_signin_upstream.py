"""Sign-in through an upstream IdP, through Flask's test client, on SQLite and PostgreSQL.

The test issuer (tests/oidc_issuer.py, real TLS) plays the company IdP: the
login page offers "Sign in with Example SSO", the request to the IdP carries
PKCE S256, state and nonce, the callback's code is exchanged at the IdP's
token endpoint, and the person picks among the roles whose trust policy their
claims satisfy (``ForAnyValue:StringEquals`` on ``groups``). The session is
the role's session: its tokens (device flow, refresh, exchange) are the
role's, with source identity ``<provider ARN>:<sub>``, and every grant checks
provider, role and trust again.

Named attacks: login CSRF (a callback with another state, or none waiting),
a replayed callback, an attempt past its ten minutes, an ID token for another
login (nonce) or another client (aud), an IdP error, picking a role that does
not trust you, a form without its CSRF token, a federated session asking to
change a password, role chaining from a federated session into a role whose
trust does not allow its claims, and a session whose role stopped trusting it.
The same flow in a real browser: tests/test_browser_upstream_signin.py.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from authbridge import signin
from authbridge.iam.model import Role
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.keys import KeyRing
from authbridge.oidc_upstream import UpstreamKeys
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.web import create_app
from authbridge.web.signin.pages import SESSION_COOKIE
from authbridge.web.signin.upstream import ATTEMPT_SECONDS
from tests.conftest import ACCOUNT
from tests.oidc_issuer import TestIssuer, running_issuer
from tests.web.conftest import make_settings
from tests.web.helpers import TOKEN_EXCHANGE, Clock
from tests.web.test_signin_pages import Browser, csrf_of, location
from tests.web.test_web_identity import trust_document

CLIENT_ID = "authbridge-signin"
CALLBACK = "https://authbridge.test/login/upstream/callback"
CLI = "authbridge-cli"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


@pytest.fixture
def app_store(store: SqlStore) -> SqlStore:
    """Every test here on SQLite and on PostgreSQL."""
    return store


@pytest.fixture
def kek_file(tmp_path: Path) -> Path:
    path = tmp_path / "kek"
    path.write_bytes(b"k" * 32)
    path.chmod(0o600)
    return path


MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/Platform
    username: "platform:{{{{SessionName}}}}"
    groups: ["authbridge:platform"]
  - rolearn: arn:aws:iam::{ACCOUNT}:role/Dev
    username: "dev:{{{{SessionName}}}}"
    groups: ["authbridge:dev"]
"""


@pytest.fixture
def settings(tmp_path: Path, kek_file: Path) -> Settings:
    mapping = tmp_path / "rbac" / "mapping.yaml"
    mapping.parent.mkdir(parents=True, exist_ok=True)
    mapping.write_text(MAPPING)
    return make_settings(tmp_path, audit_log=str(tmp_path / "audit.log"), kek_file=str(kek_file))


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    home = tmp_path / "idp"
    home.mkdir()
    with running_issuer(home) as running:
        running.clients[CLIENT_ID] = None  # a public client: PKCE, no secret
        running.redirect_uris.add(CALLBACK)
        yield running


def _groups_trust(provider: OidcProvider, group: str) -> dict[str, Any]:
    return trust_document(
        provider,
        {
            "StringEquals": {f"{provider.key}:aud": CLIENT_ID},
            "ForAnyValue:StringEquals": {f"{provider.key}:groups": group},
        },
    )


@pytest.fixture
def provider(app_store: SqlStore, issuer: TestIssuer, clock: Clock) -> OidcProvider:
    created = app_store.create_open_id_connect_provider(
        ACCOUNT, issuer.url, [CLIENT_ID], ca_bundle=issuer.ca_pem
    )
    app_store.put_open_id_connect_provider_sign_in(
        ACCOUNT,
        created.arn,
        display_name="Example SSO",
        client_id=CLIENT_ID,
        scopes=["openid", "profile", "email", "groups"],
        sealed_secret=None,
        kek_id=None,
        now=clock(),
    )
    return created


@pytest.fixture
def roles(app_store: SqlStore, provider: OidcProvider) -> dict[str, Role]:
    """Platform trusts group platform, Dev group dev, Finance group finance (alice: not)."""
    return {
        name: app_store.create_role(ACCOUNT, name, trust_policy=_groups_trust(provider, group))
        for name, group in (("Platform", "platform"), ("Dev", "dev"), ("Finance", "finance"))
    }


@pytest.fixture
def app(
    settings: Settings,
    app_store: SqlStore,
    keyring: KeyRing,
    clock: Clock,
    roles: dict[str, Role],
) -> Flask:
    return create_app(
        settings, store=app_store, keys=keyring, clock=clock, upstream=UpstreamKeys(timeout=5.0)
    )


@pytest.fixture
def browser(client: FlaskClient) -> Browser:
    return Browser(client)


@pytest.fixture
def audit(settings: Settings) -> Callable[[], list[dict[str, Any]]]:
    def lines() -> list[dict[str, Any]]:
        path = Path(str(settings.audit_log))
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    return lines


# --------------------------------------------------------------------------- helpers


def start(browser: Browser, provider: OidcProvider) -> dict[str, str]:
    """Press "Sign in with Example SSO": the authorization request sent to the IdP."""
    login = browser.get("/login")
    assert "Sign in with Example SSO" in login.text
    answer = browser.post(
        "/login/upstream", {"csrf_token": csrf_of(login), "provider": provider.arn}
    )
    assert answer.status_code == 303, answer.text
    url = urlsplit(location(answer))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    query["_endpoint"] = f"{url.scheme}://{url.netloc}{url.path}"
    return query


def idp_code(issuer: TestIssuer, request: dict[str, str]) -> str:
    """The IdP's Continue: a code for the request's client, redirect URI, challenge, nonce."""
    return issuer.issue_code(
        client_id=request["client_id"],
        redirect_uri=request["redirect_uri"],
        code_challenge=request["code_challenge"],
        nonce=request["nonce"],
    )


def callback(browser: Browser, **params: str) -> TestResponse:
    return browser.get("/login/upstream/callback?" + urlencode(params))


def pick(browser: Browser, role: Role) -> TestResponse:
    page = browser.get("/login/upstream/role")
    assert page.status_code == 200, page.text
    return browser.post("/login/upstream/role", {"csrf_token": csrf_of(page), "role": role.arn})


def signed_in(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider, role: Role
) -> TestResponse:
    request = start(browser, provider)
    back = callback(browser, code=idp_code(issuer, request), state=request["state"])
    assert back.status_code == 303, back.text
    assert location(back).endswith("/login/upstream/role")
    done = pick(browser, role)
    assert done.status_code == 303, done.text
    return done


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def token(client: FlaskClient, **form: str) -> TestResponse:
    return client.post("/oauth2/token", data=form)


def ok(response: TestResponse) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    assert response.status_code == 200, body
    return body


def device_session(client: FlaskClient, browser: Browser) -> dict[str, Any]:
    """A device code approved on /device by the browser's (federated) session; the poll."""
    started = ok(client.post("/oauth2/device_authorization", data={"client_id": CLI}))
    browser.get("/device?user_code=" + started["user_code"])
    consent = browser.get("/device")
    assert consent.status_code == 200, consent.text
    done = browser.post("/device/decision", {"csrf_token": csrf_of(consent), "decision": "approve"})
    assert done.status_code == 200, done.text
    return ok(token(client, grant_type=DEVICE, device_code=started["device_code"], client_id=CLI))


def exchange(client: FlaskClient, sts_token: str, **extra: str) -> TestResponse:
    """The token exchange `authbridge token` makes (audience prod unless told)."""
    form = {"audience": "prod", **extra}
    return token(
        client,
        grant_type=TOKEN_EXCHANGE,
        subject_token=sts_token,
        subject_token_type=JWT_TYPE,
        **form,
    )


def refresh(client: FlaskClient, tokens: dict[str, Any]) -> TestResponse:
    rotate = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    return token(client, client_id=CLI, **rotate)


def cluster_token(client: FlaskClient, sts_token: str) -> str:
    return str(ok(exchange(client, sts_token))["access_token"])


@pytest.fixture
def platform_tokens(
    client: FlaskClient,
    browser: Browser,
    issuer: TestIssuer,
    provider: OidcProvider,
    roles: dict[str, Role],
) -> dict[str, Any]:
    """Signed in through the IdP as role Platform; a CLI session approved by it."""
    signed_in(browser, issuer, provider, roles["Platform"])
    return device_session(client, browser)


def verify(client: FlaskClient, cluster: str) -> dict[str, Any]:
    answer = client.post("/verify", json={"token": cluster, "clusterID": "prod"})
    assert answer.status_code == 200
    doc: dict[str, Any] = answer.get_json()
    return doc


# --------------------------------------------------------------------------- the flow


def test_the_login_page_offers_the_provider_and_lets_its_form_reach_the_idp(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    page = browser.get("/login")
    assert page.status_code == 200
    assert "Sign in with Example SSO" in page.text
    origin = issuer.url.split("/", 3)
    # The browser applies form-action to the redirect after the POST: the IdP's origin is in it.
    form_action = next(
        d
        for d in page.headers["Content-Security-Policy"].split("; ")
        if d.startswith("form-action")
    )
    assert f"{origin[0]}//{origin[2]}" in form_action.split()


def test_an_unreachable_idp_shows_its_button_disabled_and_the_password_form_still_works(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    issuer.go_down()
    page = browser.get("/login")
    assert page.status_code == 200
    assert re.search(r"<button[^>]*disabled[^>]*>Sign in with Example SSO", page.text)
    assert "cannot be reached right now" in page.text
    assert 'name="password"' in page.text


def test_the_request_to_the_idp_uses_pkce_s256_state_and_nonce(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    request = start(browser, provider)
    assert request["_endpoint"] == f"{issuer.url}/authorize"
    assert request["response_type"] == "code"
    assert request["client_id"] == CLIENT_ID
    assert request["redirect_uri"] == CALLBACK
    assert request["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", request["code_challenge"])
    assert len(request["state"]) >= 43 and len(request["nonce"]) >= 43
    assert request["state"] != request["nonce"]
    assert request["scope"].split() == ["openid", "profile", "email", "groups"]
    # A second attempt: fresh values.
    again = start(browser, provider)
    assert again["state"] != request["state"] and again["nonce"] != request["nonce"]


def test_the_person_picks_among_the_roles_whose_trust_their_groups_satisfy(
    browser: Browser,
    issuer: TestIssuer,
    provider: OidcProvider,
    roles: dict[str, Role],
    audit: Callable[[], list[dict[str, Any]]],
) -> None:
    request = start(browser, provider)
    back = callback(browser, code=idp_code(issuer, request), state=request["state"])
    assert back.status_code == 303, back.text
    page = browser.get("/login/upstream/role")
    assert page.status_code == 200
    assert "Example SSO signed you in as <strong>alice</strong>" in page.text
    assert roles["Platform"].arn in page.text and roles["Dev"].arn in page.text
    assert roles["Finance"].arn not in page.text  # alice is not in group finance
    # The code went to the IdP's token endpoint with the PKCE verifier, as a public client.
    sent = issuer.token_requests[-1]
    assert sent["grant_type"] == "authorization_code" and sent["client_id"] == CLIENT_ID
    assert "client_secret" not in sent and len(sent["code_verifier"]) == 43

    done = browser.post(
        "/login/upstream/role", {"csrf_token": csrf_of(page), "role": roles["Dev"].arn}
    )
    assert done.status_code == 303
    assert browser.cookie(SESSION_COOKIE)
    home = browser.get("/login")
    assert f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice" in home.text
    account = browser.get("/account")
    assert f"{provider.arn}:00u-alice" in account.text
    line = [a for a in audit() if a.get("action") == "signin:FederatedLogin"][-1]
    assert line["outcome"] == "allowed"
    assert line["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/alice"
    assert f"{provider.arn}:00u-alice" in line["detail"]


def test_login_csrf_a_callback_with_another_state_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    request = start(browser, provider)
    code = idp_code(issuer, request)
    refused = callback(browser, code=code, state="A" * 43)
    assert refused.status_code == 400
    assert "does not belong to a sign-in started in this browser" in refused.text
    assert browser.cookie(SESSION_COOKIE) is None
    # The attempt is spent: even the right state no longer works.
    assert callback(browser, code=code, state=request["state"]).status_code == 400


def test_login_csrf_a_callback_in_a_browser_that_started_nothing_is_refused(
    client: FlaskClient, app: Flask, issuer: TestIssuer, provider: OidcProvider
) -> None:
    attacker = Browser(app.test_client())
    request = start(attacker, provider)
    victim = Browser(client)
    refused = callback(victim, code=idp_code(issuer, request), state=request["state"])
    assert refused.status_code == 400
    assert victim.cookie(SESSION_COOKIE) is None


def test_a_replayed_callback_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    request = start(browser, provider)
    params = {"code": idp_code(issuer, request), "state": request["state"]}
    assert callback(browser, **params).status_code == 303
    assert callback(browser, **params).status_code == 400


def test_an_attempt_older_than_ten_minutes_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider, clock: Clock
) -> None:
    request = start(browser, provider)
    code = idp_code(issuer, request)
    clock.advance(ATTEMPT_SECONDS + 1)
    assert callback(browser, code=code, state=request["state"]).status_code == 400


def test_an_id_token_for_another_login_wrong_nonce_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    issuer.misbehave.add("wrong_nonce")
    request = start(browser, provider)
    refused = callback(browser, code=idp_code(issuer, request), state=request["state"])
    assert refused.status_code == 403
    assert "nonce" in refused.text
    assert browser.cookie(SESSION_COOKIE) is None


def test_an_id_token_for_another_client_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    issuer.misbehave.add("other_aud")
    request = start(browser, provider)
    refused = callback(browser, code=idp_code(issuer, request), state=request["state"])
    assert refused.status_code == 403
    assert browser.cookie(SESSION_COOKIE) is None


def test_the_idps_own_error_is_shown_and_signs_nobody_in(
    browser: Browser, provider: OidcProvider, audit: Callable[[], list[dict[str, Any]]]
) -> None:
    request = start(browser, provider)
    refused = callback(browser, error="access_denied", state=request["state"])
    assert refused.status_code == 403
    assert "Example SSO answered access_denied" in refused.text
    assert [a for a in audit() if a.get("action") == "signin:FederatedLogin"][-1][
        "reason"
    ] == "idp_refused"


def test_a_hostile_callback_is_refused_without_echoing_it(browser: Browser) -> None:
    for query in (
        "code=a&code=b&state=s",
        "code=" + "x" * 5000 + "&state=s",
        "code=%00&state=s",
        "state=s",
    ):
        refused = browser.get("/login/upstream/callback?" + query)
        assert refused.status_code == 400, query
        assert "x" * 100 not in refused.text


def test_no_role_trusts_the_person(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider
) -> None:
    issuer.persona = {**issuer.persona, "groups": ["marketing"]}
    request = start(browser, provider)
    refused = callback(browser, code=idp_code(issuer, request), state=request["state"])
    assert refused.status_code == 403
    assert "no role" in refused.text.lower()


def test_picking_a_role_that_does_not_trust_you_is_refused(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider, roles: dict[str, Role]
) -> None:
    request = start(browser, provider)
    callback(browser, code=idp_code(issuer, request), state=request["state"])
    refused = pick(browser, roles["Finance"])
    assert refused.status_code == 403
    assert browser.cookie(SESSION_COOKIE) is None


def test_the_role_picker_refuses_a_form_without_its_csrf_token(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider, roles: dict[str, Role]
) -> None:
    request = start(browser, provider)
    callback(browser, code=idp_code(issuer, request), state=request["state"])
    refused = browser.post("/login/upstream/role", {"role": roles["Dev"].arn})
    assert refused.status_code == 403
    assert browser.cookie(SESSION_COOKIE) is None


def test_a_confidential_client_sends_its_sealed_secret_to_the_idp(
    app_store: SqlStore,
    browser: Browser,
    issuer: TestIssuer,
    provider: OidcProvider,
    roles: dict[str, Role],
    kek_file: Path,
    clock: Clock,
) -> None:
    from authbridge.iam import oidc_signin
    from authbridge.keys import load_kek

    issuer.clients[CLIENT_ID] = "the client secret"
    kek = load_kek(str(kek_file), None)
    app_store.put_open_id_connect_provider_sign_in(
        ACCOUNT,
        provider.arn,
        display_name="Example SSO",
        client_id=CLIENT_ID,
        scopes=["openid", "groups"],
        sealed_secret=kek.seal(b"the client secret", oidc_signin.secret_aad(provider.arn)),
        kek_id=kek.kek_id,
        now=clock(),
    )
    signed_in(browser, issuer, provider, roles["Platform"])
    assert "the client secret" not in json.dumps(issuer.token_requests)  # Basic auth, not form


def test_a_federated_session_has_no_password_to_change(
    browser: Browser, issuer: TestIssuer, provider: OidcProvider, roles: dict[str, Role]
) -> None:
    signed_in(browser, issuer, provider, roles["Platform"])
    refused = browser.get("/account/password")
    assert refused.status_code == 400
    assert "managed there" in refused.text


# --------------------------------------------------------------------------- its tokens


def test_a_federated_session_approves_a_device_and_the_cli_works_as_the_role(
    client: FlaskClient,
    browser: Browser,
    issuer: TestIssuer,
    provider: OidcProvider,
    roles: dict[str, Role],
) -> None:
    signed_in(browser, issuer, provider, roles["Platform"])
    tokens = device_session(client, browser)
    sts_claims = claims_of(tokens["access_token"])
    assert sts_claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Platform/alice"
    assert sts_claims["source_identity"] == f"{provider.arn}:00u-alice"
    assert sts_claims["amr"] == ["fed"] and sts_claims["mfa"] is False
    # The CLI's next step: the session's token for a cluster (no role_arn: the same role).
    cluster = ok(exchange(client, tokens["access_token"]))
    claims = claims_of(cluster["access_token"])
    assert claims["aud"] == "prod"
    assert claims["arn"] == sts_claims["arn"] and claims["sid"] == sts_claims["sid"]
    verified = client.post("/verify", json={"token": cluster["access_token"], "clusterID": "prod"})
    doc = verified.get_json()
    assert verified.status_code == 200 and doc["authenticated"] is True, doc
    assert doc["identity"]["sourceIdentity"] == f"{provider.arn}:00u-alice"
    assert doc["kubernetes"]["username"] == "platform:alice"
    # Another role whose trust allows the same claims: switching is allowed ...
    dev = ok(exchange(client, tokens["access_token"], role_arn=roles["Dev"].arn))
    assert claims_of(dev["access_token"])["arn"].endswith(":assumed-role/Dev/alice")
    # ... one whose trust does not is refused (no chaining past the trust).
    refused = exchange(client, tokens["access_token"], role_arn=roles["Finance"].arn)
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_grant"
    # The refresh token works as long as the trust holds.
    again = ok(refresh(client, tokens))
    assert claims_of(again["access_token"])["arn"] == sts_claims["arn"]


def test_a_session_whose_role_no_longer_trusts_its_claims_ends(
    app_store: SqlStore,
    client: FlaskClient,
    provider: OidcProvider,
    roles: dict[str, Role],
    platform_tokens: dict[str, Any],
) -> None:
    tokens = platform_tokens
    app_store.update_assume_role_policy(
        ACCOUNT, "Platform", _groups_trust(provider, "platform-admins")
    )
    refused = refresh(client, tokens)
    assert refused.status_code == 400
    assert "no longer trusts" in refused.get_json()["error_description"]
    exchanged = exchange(client, tokens["access_token"])
    assert exchanged.status_code == 400


def test_revoking_a_roles_sessions_ends_the_federated_sign_ins(
    app_store: SqlStore,
    client: FlaskClient,
    browser: Browser,
    provider: OidcProvider,
    roles: dict[str, Role],
    clock: Clock,
    platform_tokens: dict[str, Any],
) -> None:
    tokens = platform_tokens
    cluster = cluster_token(client, tokens["access_token"])
    assert verify(client, cluster)["authenticated"] is True
    assert app_store.end_role_signin_sessions(ACCOUNT, "Platform", "revoked", clock()) == 2
    assert app_store.end_role_signin_sessions(ACCOUNT, "Dev", "revoked", clock()) == 0
    assert "Sign in with Example SSO" in browser.get("/login").text  # signed out
    ended = verify(client, cluster)
    assert ended["authenticated"] is False and ended["reasonCode"] == "revoked"
    refused = refresh(client, tokens)
    assert refused.status_code == 400


def test_deleting_the_role_ends_the_sessions_working_as_it(
    app_store: SqlStore,
    client: FlaskClient,
    provider: OidcProvider,
    roles: dict[str, Role],
    platform_tokens: dict[str, Any],
) -> None:
    tokens = platform_tokens
    for role in roles.values():  # the roles name the provider; IAM refuses nothing here
        app_store.delete_role(ACCOUNT, role.name)
    refused = refresh(client, tokens)
    assert refused.status_code == 400
    assert "role no longer exists" in refused.get_json()["error_description"]


def test_the_session_token_of_a_browser_session_is_refused_after_sign_out(
    client: FlaskClient,
    browser: Browser,
    issuer: TestIssuer,
    provider: OidcProvider,
    roles: dict[str, Role],
    app_store: SqlStore,
    clock: Clock,
) -> None:
    signed_in(browser, issuer, provider, roles["Platform"])
    cookie = browser.cookie(SESSION_COOKIE)
    assert cookie is not None
    found = signin.browser_session(app_store, cookie, clock())
    assert found is not None and found.federated is not None
    assert found.federated.role_id == roles["Platform"].role_id
    logout = browser.get("/logout")
    browser.post("/logout", {"csrf_token": csrf_of(logout)})
    assert signin.browser_session(app_store, cookie, clock()) is None


def test_deleting_the_provider_ends_the_sessions_it_started(
    app_store: SqlStore,
    client: FlaskClient,
    browser: Browser,
    provider: OidcProvider,
    roles: dict[str, Role],
    platform_tokens: dict[str, Any],
) -> None:
    tokens = platform_tokens
    cluster = cluster_token(client, tokens["access_token"])
    app_store.delete_open_id_connect_provider(ACCOUNT, provider.arn)
    refused = refresh(client, tokens)
    assert refused.status_code == 400
    assert "no longer registered" in refused.get_json()["error_description"]
    gone = verify(client, cluster)
    assert gone["authenticated"] is False and "no longer exists" in gone["reason"]
    assert "Sign in with Example SSO" not in browser.get("/login").text  # no button any more
