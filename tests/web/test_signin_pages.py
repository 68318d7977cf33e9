"""The sign-in pages through Flask's test client: every page's security headers, CSRF on
every form, generic refusals, the MFA step, forced password change, session fixation,
sign-out, the device consent (approval, denial, cross-user approval), the authorize
front channel (its open-redirect and PKCE-downgrade defences), idle sessions, revoked
sessions and half-done sign-ins expiring, under the issuer path too. The same flows in
a real browser: tests/test_browser_signin.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from authbridge import signin
from authbridge.iam import passwords, totp
from authbridge.store import SqlStore
from authbridge.web.signin import flows, security
from authbridge.web.signin.flows import FLOW_COOKIE, PENDING_SECONDS
from authbridge.web.signin.pages import SESSION_COOKIE
from tests.conftest import ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import Clock, FlakyStore, World

PASSWORD = "correct horse battery staple 1"
BASE = "https://authbridge.test"
CSP_PARTS = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
)


class Browser:
    """A test client that speaks https (so ``Secure`` cookies flow) and reads forms."""

    def __init__(self, client: FlaskClient, prefix: str = "") -> None:
        self.client, self.prefix = client, prefix

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(self.prefix + path, base_url=BASE, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> TestResponse:
        return self.client.post(self.prefix + path, data=data, base_url=BASE, **kw)

    def cookie(self, name: str) -> str | None:
        found = self.client.get_cookie(name, domain="authbridge.test")
        return None if found is None else found.value

    def csrf(self, path: str) -> str:
        page = self.get(path)
        assert page.status_code == 200, page.text
        return csrf_of(page)

    def submit(self, path: str, **fields: str) -> TestResponse:
        """GET the page, then POST its form with its CSRF token and ``fields``."""
        return self.post(path, {"csrf_token": self.csrf(path), **fields})

    def sign_in(self, user: str = "alice", password: str = PASSWORD) -> TestResponse:
        return self.submit("/login", account=ACCOUNT, user_name=user, password=password)


def csrf_of(page: TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def location(response: TestResponse) -> str:
    return response.headers.get("Location", "")


def assert_secure_page(response: TestResponse) -> None:
    csp = response.headers["Content-Security-Policy"]
    for part in CSP_PARTS:
        assert part in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for cookie in response.headers.getlist("Set-Cookie"):
        assert cookie.startswith("__Host-"), cookie
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Path=/" in cookie and "Domain" not in cookie


@pytest.fixture
def alice(app_store: SqlStore, world: World) -> World:
    app_store.create_login_profile(ACCOUNT, "alice", PASSWORD)
    return world


@pytest.fixture
def browser(client: FlaskClient, alice: World) -> Browser:
    return Browser(client)


def enrol_mfa(store: SqlStore, user: str, now: float) -> bytes:
    new = store.create_virtual_mfa_device(ACCOUNT, f"{user}-phone")
    step = totp.step_at(now)
    store.enable_mfa_device(
        ACCOUNT,
        user,
        new.device.serial_number,
        totp.hotp(new.secret, step - 1),
        totp.hotp(new.secret, step),
        now=now,
    )
    return new.secret


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "path",
    ["/login", "/signed-out", "/logout", "/device", "/oauth2/authorize", "/login/mfa", "/account"],
)
def test_every_page_carries_the_security_headers(browser: Browser, path: str) -> None:
    response = browser.get(path)
    assert_secure_page(response)


def test_clickjacking_headers_are_on_every_page(browser: Browser) -> None:
    page = browser.get("/login")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


def test_static_files_are_served_with_the_same_headers(browser: Browser) -> None:
    for name in ("signin.css", "signin.js"):
        response = browser.get(f"/signin/static/{name}")
        response.close()
        assert response.status_code == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_or_style(browser: Browser) -> None:
    page = browser.get("/login").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert re.search(r"<label for=\"user_name\">", page)
    assert re.search(r"<label for=\"password\">", page)


# --------------------------------------------------------------------------- CSRF


def test_a_form_without_a_csrf_token_is_refused(browser: Browser) -> None:
    browser.get("/login")
    response = browser.post(
        "/login", {"account": ACCOUNT, "user_name": "alice", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert browser.cookie(SESSION_COOKIE) is None


def test_a_wrong_csrf_token_or_a_foreign_flow_is_refused(
    make_app: Callable[..., Flask], alice: World
) -> None:
    app = make_app()
    mine, theirs = Browser(app.test_client()), Browser(app.test_client())
    token = mine.csrf("/login")
    theirs.get("/login")
    for who, value in ((mine, token[:-2] + "xx"), (theirs, token)):
        response = who.post(
            "/login",
            {"csrf_token": value, "account": ACCOUNT, "user_name": "alice", "password": PASSWORD},
        )
        assert response.status_code == 403, response.text
    no_cookie = Browser(app.test_client())
    response = no_cookie.post("/login", {"csrf_token": token, "user_name": "alice"})
    assert response.status_code == 403


@hypothesis_settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["csrf_token", "account", "user_name", "code", "decision", "user_code", "x"]
        ),
        st.text(max_size=40),
        max_size=5,
    )
)
def test_hostile_forms_get_a_page_never_a_500(browser: Browser, fields: dict[str, str]) -> None:
    for path in (
        "/login",
        "/login/mfa",
        "/login/password",
        "/device",
        "/logout",
        "/oauth2/authorize",
        "/device/decision",
        "/account/password",
        "/account/mfa",
        "/account/mfa/enable",
    ):
        response = browser.post(path, fields)
        assert response.status_code in (303, 400, 401, 403), (path, response.status_code)


# --------------------------------------------------------------------------- signing in


def test_password_sign_in_starts_a_browser_session(browser: Browser) -> None:
    response = browser.sign_in()
    assert response.status_code == 303
    assert browser.cookie(SESSION_COOKIE)
    home = browser.get("/login")
    assert home.status_code == 200 and "signed in as <strong>alice</strong>" in home.text


def test_refusals_do_not_tell_whether_the_user_exists(browser: Browser) -> None:
    wrong = browser.sign_in(password="not the password at all")
    nobody = browser.sign_in(user="nobody-here")
    assert wrong.status_code == nobody.status_code == 401
    message = "the user name, password or MFA code is not valid"
    assert message in wrong.text and message in nobody.text
    assert browser.cookie(SESSION_COOKIE) is None


def test_the_password_never_appears_in_a_url_or_page(browser: Browser) -> None:
    response = browser.sign_in(password="wrong-" + PASSWORD)
    assert PASSWORD not in response.text
    assert PASSWORD not in location(response)


def test_session_fixation_is_refused(browser: Browser) -> None:
    planted = secrets.token_urlsafe(32)
    browser.client.set_cookie(SESSION_COOKIE, planted, domain="authbridge.test")
    browser.get("/login")
    flow_before = browser.cookie(FLOW_COOKIE)
    browser.sign_in()
    assert browser.cookie(SESSION_COOKIE) not in (None, planted)
    assert browser.cookie(FLOW_COOKIE) != flow_before  # a fresh flow after sign-in


def test_mfa_sign_in_asks_for_the_code_and_refuses_a_wrong_one(
    browser: Browser, app_store: SqlStore, clock: Clock
) -> None:
    secret = enrol_mfa(app_store, "alice", clock.now)
    clock.advance(60)
    response = browser.sign_in()
    assert response.status_code == 303 and location(response).endswith("/login/mfa")
    assert browser.cookie(SESSION_COOKIE) is None
    right = totp.code_at(secret, clock.now)
    wrong = "000000" if right != "000000" else "111111"
    refused = browser.submit("/login/mfa", code=wrong)
    assert refused.status_code == 401 and "MFA code is not valid" in refused.text
    assert browser.cookie(SESSION_COOKIE) is None
    accepted = browser.submit("/login/mfa", code=right)
    assert accepted.status_code == 303, accepted.text
    assert "with MFA" in browser.get("/login").text
    again = Browser(browser.client.application.test_client())
    again.sign_in()
    replay = again.submit("/login/mfa", code=right)  # each code works once
    assert replay.status_code == 401


def test_five_wrong_codes_start_the_sign_in_over(
    browser: Browser, app_store: SqlStore, clock: Clock
) -> None:
    enrol_mfa(app_store, "alice", clock.now)
    clock.advance(60)
    browser.sign_in()
    for _ in range(5):
        response = browser.submit("/login/mfa", code="123456x")
    assert "the user name, password or MFA code is not valid" in response.text
    assert location(browser.get("/login/mfa")).endswith("/login")


def test_forced_password_change_follows_the_policy(browser: Browser, app_store: SqlStore) -> None:
    app_store.update_login_profile(ACCOUNT, "alice", password_reset_required=True)
    response = browser.sign_in()
    assert location(response).endswith("/login/password")
    assert browser.cookie(SESSION_COOKIE) is None
    short = browser.submit("/login/password", new_password="short", confirm_password="short")
    assert short.status_code == 400 and "password policy" in short.text
    differ = browser.submit(
        "/login/password", new_password="a new one 12345", confirm_password="another 12345"
    )
    assert differ.status_code == 400 and "differ" in differ.text
    done = browser.submit(
        "/login/password", new_password="a new one 12345", confirm_password="a new one 12345"
    )
    assert done.status_code == 303 and browser.cookie(SESSION_COOKIE)
    assert not app_store.get_login_profile(ACCOUNT, "alice").password_reset_required


def test_the_password_page_needs_a_password_first(browser: Browser) -> None:
    assert location(browser.get("/login/password")).endswith("/login")
    assert location(browser.get("/login/mfa")).endswith("/login")


# --------------------------------------------------------------------------- signing out


def test_logout_ends_the_session_and_shows_the_signed_out_page(browser: Browser) -> None:
    browser.sign_in()
    secret = browser.cookie(SESSION_COOKIE)
    response = browser.submit("/logout")
    assert response.status_code == 303 and location(response).endswith("/signed-out")
    assert browser.cookie(SESSION_COOKIE) is None
    assert "You are signed out" in browser.get("/signed-out").text
    browser.client.set_cookie(SESSION_COOKIE, secret or "", domain="authbridge.test")
    assert "Sign in" in browser.get("/login").text  # the old cookie is worth nothing


# --------------------------------------------------------------------------- authorize


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_query(redirect_uri: str = "http://127.0.0.1:49152/callback", **extra: str) -> str:
    _, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": "authbridge-cli",
        "redirect_uri": redirect_uri,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/oauth2/authorize?" + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        "http://localhost:49152/callback",
        "http://127.0.0.1:49152/other",
        "http://evil.example@127.0.0.1:49152/callback",
    ],
)
def test_open_redirect_is_refused(browser: Browser, redirect_uri: str) -> None:
    response = browser.get(authorize_query(redirect_uri))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "not valid" in response.text
    assert_secure_page(response)


def test_an_unknown_client_gets_an_error_page(browser: Browser) -> None:
    response = browser.get(authorize_query(client_id="someone-else"))
    assert response.status_code == 400 and "Location" not in response.headers


def test_authorize_signs_in_then_asks_then_redirects_with_code_and_state(
    browser: Browser,
) -> None:
    start = browser.get(authorize_query())
    assert start.status_code == 303 and "?" not in location(start)
    to_login = browser.get("/oauth2/authorize")
    assert location(to_login).endswith("/login")
    signed_in = browser.sign_in()
    assert location(signed_in).endswith("/oauth2/authorize")
    consent = browser.get("/oauth2/authorize")
    assert consent.status_code == 200 and "authbridge-cli" in consent.text
    assert "/platform/Admin" in consent.text and "prod" in consent.text
    csp = consent.headers["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:49152/callback" in csp
    done = browser.post(
        "/oauth2/authorize", {"csrf_token": csrf_of(consent), "decision": "approve"}
    )
    assert done.status_code == 302
    target = urlsplit(location(done))
    assert target.netloc == "127.0.0.1:49152" and target.path == "/callback"
    query = parse_qs(target.query)
    assert query["state"] == ["st-123"] and len(query["code"][0]) >= 20
    assert browser.get("/oauth2/authorize").status_code == 400  # nothing pending any more


def test_authorize_denied_redirects_with_access_denied(browser: Browser) -> None:
    browser.sign_in()
    browser.get(authorize_query())
    consent = browser.get("/oauth2/authorize")
    done = browser.post("/oauth2/authorize", {"csrf_token": csrf_of(consent), "decision": "deny"})
    query = parse_qs(urlsplit(location(done)).query)
    assert query == {"error": ["access_denied"], "state": ["st-123"]}


@pytest.mark.parametrize(
    "extra", [{"code_challenge_method": "plain"}, {"code_challenge_method": ""}]
)
def test_pkce_downgrade_is_refused_at_authorize(browser: Browser, extra: dict[str, str]) -> None:
    response = browser.get(authorize_query(**extra))
    assert response.status_code == 302  # the redirect URI is valid: the error goes back to it
    query = parse_qs(urlsplit(location(response)).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st-123"]
    assert "code" not in query
    assert browser.get("/oauth2/authorize").status_code == 400  # nothing was kept


def test_a_repeated_authorize_parameter_is_an_error_page(browser: Browser) -> None:
    response = browser.get(authorize_query() + "&redirect_uri=http://127.0.0.1:1/callback")
    assert response.status_code == 400 and "Location" not in response.headers


# --------------------------------------------------------------------------- under a path


def test_pages_are_served_under_the_issuer_path(
    tmp_path: Path, make_app: Callable[..., Flask], alice: World
) -> None:
    app = make_app(settings=make_settings(tmp_path, issuer="https://authbridge.test/auth"))
    browser = Browser(app.test_client(), prefix="/auth")
    page = browser.get("/login")
    assert page.status_code == 200 and 'action="/auth/login"' in page.text
    assert "/auth/signin/static/signin.css" in page.text
    response = browser.sign_in()
    assert response.status_code == 303 and location(response).endswith("/auth/login")


# --------------------------------------------------------------------------- device


def start_device(app: Flask) -> Any:
    svc = app.extensions["authbridge"]
    return signin.start_device_authorization(
        svc.store, svc.policy, client_id="authbridge-cli", now=svc.clock()
    )


def test_device_code_from_the_url_is_dropped_at_once_then_approved(
    client: FlaskClient, alice: World, app_store: SqlStore, clock: Clock
) -> None:
    browser = Browser(client)
    grant = start_device(client.application)
    first = browser.get(
        urlsplit(grant.verification_uri_complete).path + "?user_code=" + grant.user_code
    )
    assert first.status_code == 303 and location(first).endswith("/device")  # no code in it
    assert location(browser.get("/device")).endswith("/login")
    signed_in = browser.sign_in()
    assert location(signed_in).endswith("/device")
    consent = browser.get("/device")
    assert consent.status_code == 200 and grant.user_code in consent.text
    assert "/platform/Admin" in consent.text and "staging" in consent.text
    done = browser.post("/device/decision", {"csrf_token": csrf_of(consent), "decision": "approve"})
    assert done.status_code == 200 and "The device is signed in" in done.text
    found = signin.find_device_request(app_store, grant.user_code, clock.now)
    assert found is not None and found.status == "approved"


def test_device_denial(
    client: FlaskClient, alice: World, app_store: SqlStore, clock: Clock
) -> None:
    browser = Browser(client)
    grant = start_device(client.application)
    browser.sign_in()
    browser.submit("/device", user_code=grant.user_code.lower().replace("-", ""))
    consent = browser.get("/device")
    done = browser.post("/device/decision", {"csrf_token": csrf_of(consent), "decision": "deny"})
    assert "denied" in done.text
    found = signin.find_device_request(app_store, grant.user_code, clock.now)
    assert found is not None and found.status == "denied"


def test_cross_user_device_approval_is_refused(
    make_app: Callable[..., Flask], alice: World, app_store: SqlStore, clock: Clock
) -> None:
    app = make_app()
    app_store.create_login_profile(ACCOUNT, "bob", PASSWORD)
    grant = start_device(app)
    alice_tab, bob_tab = Browser(app.test_client()), Browser(app.test_client())
    alice_tab.sign_in()
    bob_tab.sign_in("bob")
    for tab in (alice_tab, bob_tab):
        tab.submit("/device", user_code=grant.user_code)
    alice_consent, bob_consent = alice_tab.get("/device"), bob_tab.get("/device")
    ok = alice_tab.post(
        "/device/decision", {"csrf_token": csrf_of(alice_consent), "decision": "approve"}
    )
    assert ok.status_code == 200
    late = bob_tab.post(
        "/device/decision", {"csrf_token": csrf_of(bob_consent), "decision": "approve"}
    )
    assert late.status_code == 400 and "already used" in late.text
    assert bob_tab.get("/device").status_code == 200  # back at the code entry
    found = signin.find_device_request(app_store, grant.user_code, clock.now)
    assert found is not None and found.status == "approved"


def test_an_unknown_device_code_is_refused(browser: Browser) -> None:
    browser.sign_in()
    browser.submit("/device", user_code="BCDF-GHJK")
    page = browser.get("/device")
    assert page.status_code == 400 and "not valid" in page.text


# --------------------------------------------------------------------------- expiry


def test_an_idle_session_expires_and_asks_for_a_sign_in(
    browser: Browser, clock: Clock, settings: Any
) -> None:
    browser.sign_in()
    assert "signed in as" in browser.get("/login").text
    clock.advance(settings.session_idle_seconds + 1)
    page = browser.get("/login")
    assert "signed in as" not in page.text and 'name="password"' in page.text


def test_revoke_sessions_ends_the_browser_session(
    browser: Browser, app_store: SqlStore, clock: Clock
) -> None:
    browser.sign_in()
    assert signin.end_user_sessions(app_store, ACCOUNT, "alice", clock.now) == 1
    assert 'name="password"' in browser.get("/login").text


def test_disabling_the_user_ends_the_browser_session(browser: Browser, app_store: SqlStore) -> None:
    browser.sign_in()
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    assert 'name="password"' in browser.get("/login").text
    refused = browser.sign_in()  # and a disabled user reads like any refusal
    assert refused.status_code == 401 and "not valid" in refused.text


def test_a_half_done_sign_in_expires(browser: Browser, app_store: SqlStore, clock: Clock) -> None:
    enrol_mfa(app_store, "alice", clock.now)
    clock.advance(60)
    browser.sign_in()
    token = browser.csrf("/login/mfa")
    clock.advance(PENDING_SECONDS + 1)
    response = browser.post("/login/mfa", {"csrf_token": token, "code": "123456"})
    assert response.status_code == 401 and "took too long" in response.text


def test_form_action_names_the_loopback_redirect_only() -> None:
    assert security.form_target("http://127.0.0.1:5000/callback") == (
        "http://127.0.0.1:5000/callback"
    )
    # CSP host sources cannot hold an IPv6 literal: the scheme, on that one page.
    assert security.form_target("http://[::1]:5000/callback") == "http:"
    assert security.content_security_policy().endswith("form-action 'self'")


# --------------------------------------------------------------------------- /account


def test_the_account_page_needs_a_sign_in_and_comes_back(browser: Browser) -> None:
    assert location(browser.get("/account")).endswith("/login")
    assert location(browser.sign_in()).endswith("/account")
    page = browser.get("/account")
    assert page.status_code == 200 and "MFA devices" in page.text


def test_changing_ones_password_follows_the_policy_flag(
    browser: Browser, app_store: SqlStore
) -> None:
    browser.sign_in()
    assert "only administrators" in browser.get("/account/password").text
    refused = browser.post(
        "/account/password",
        {
            "csrf_token": browser.csrf("/account"),
            "current_password": PASSWORD,
            "new_password": "a new one 12345",
            "confirm_password": "a new one 12345",
        },
    )
    assert refused.status_code == 403 and "only administrators" in refused.text
    app_store.update_account_password_policy(
        ACCOUNT, passwords.PasswordPolicy(allow_users_to_change=True)
    )
    wrong = browser.submit(
        "/account/password",
        current_password="not it at all",
        new_password="a new one 12345",
        confirm_password="a new one 12345",
    )
    assert wrong.status_code == 401 and "not valid" in wrong.text
    done = browser.submit(
        "/account/password",
        current_password=PASSWORD,
        new_password="a new one 12345",
        confirm_password="a new one 12345",
    )
    assert done.status_code == 200 and "password was changed" in done.text
    fresh = Browser(browser.client.application.test_client())
    assert location(fresh.sign_in(password="a new one 12345")).endswith("/login")


def enrol_on_the_page(browser: Browser, now: float) -> tuple[TestResponse, bytes]:
    page = browser.post("/account/mfa", {"csrf_token": browser.csrf("/account")})
    assert page.status_code == 200, page.text
    assert 'src="data:image/svg+xml' in page.text
    seed = re.search(r'id="seed">([A-Z2-7]+)<', page.text)
    assert seed
    secret = base64.b32decode(seed.group(1) + "=" * (-len(seed.group(1)) % 8))
    step = totp.step_at(now)
    done = browser.post(
        "/account/mfa/enable",
        {
            "csrf_token": csrf_of(page),
            "code1": totp.hotp(secret, step - 1),
            "code2": totp.hotp(secret, step),
        },
    )
    return done, secret


def test_enrolling_an_mfa_device_with_its_qr_code(
    browser: Browser, app_store: SqlStore, clock: Clock
) -> None:
    browser.sign_in()
    done, secret = enrol_on_the_page(browser, clock.now)
    assert done.status_code == 200 and "MFA device was added" in done.text
    assert len(app_store.list_mfa_devices(ACCOUNT, "alice")) == 1
    clock.advance(60)
    fresh = Browser(browser.client.application.test_client())
    assert location(fresh.sign_in()).endswith("/login/mfa")
    assert fresh.submit("/login/mfa", code=totp.code_at(secret, clock.now)).status_code == 303
    # A password-only session cannot add a second device; an MFA one can.
    again = browser.post("/account/mfa", {"csrf_token": browser.csrf("/account")})
    assert again.status_code == 403 and "MFA device first" in again.text
    second, _ = enrol_on_the_page(fresh, clock.now)
    assert second.status_code == 200
    assert len(app_store.list_mfa_devices(ACCOUNT, "alice")) == 2


def test_wrong_enrolment_codes_leave_no_device(
    browser: Browser, app_store: SqlStore, clock: Clock
) -> None:
    browser.sign_in()
    page = browser.post("/account/mfa", {"csrf_token": browser.csrf("/account")})
    refused = browser.post(
        "/account/mfa/enable", {"csrf_token": csrf_of(page), "code1": "123456", "code2": "654321"}
    )
    assert refused.status_code == 400 and "not accepted" in refused.text
    assert app_store.list_mfa_devices(ACCOUNT, "alice") == []
    assert app_store.list_virtual_mfa_devices(ACCOUNT, "Unassigned") == []


# --------------------------------------------------------------------------- the flow's state


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@hypothesis_settings(max_examples=150)
@given(
    state=st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(["authorize", "pending", "next", "user_code", "enrol", "x"]),
            json_values,
            max_size=7,
        ).map(json.dumps),
    )
)
def test_a_stored_flow_state_parses_to_a_flow_or_none_never_raises(state: str) -> None:
    flow = flows.parse("some-id", state)
    if flow is not None:
        assert flow.next in (None, *flows.NEXT_PAGES)
        assert flow.authorize is None or all(isinstance(v, str) for v in flow.authorize.values())
        assert flows.parse("some-id", flow.state()) == flow


def test_a_flow_round_trips_without_its_id() -> None:
    flow = flows.Flow(
        authorize={"client_id": "authbridge-cli"}, next="authorize", from_cookie=True, stored=True
    )
    assert flow.flow_id not in flow.state() and flow.csrf not in flow.state()
    assert flows.parse(flow.flow_id, flow.state()) == flow


def test_an_anonymous_visit_writes_no_flow(browser: Browser, app_store: SqlStore) -> None:
    for _ in range(3):
        Browser(browser.client.application.test_client()).get("/login")
    with app_store._tx() as cur:
        assert cur.execute("SELECT COUNT(*) FROM signin_flows")[0][0] == 0


def test_a_malformed_flow_cookie_is_replaced(browser: Browser) -> None:
    browser.client.set_cookie(FLOW_COOKIE, "x" * 500, domain="authbridge.test")
    page = browser.get("/login")
    assert page.status_code == 200 and browser.cookie(FLOW_COOKIE) != "x" * 500


# --------------------------------------------------------------------------- audit


def test_sign_ins_and_decisions_are_audited_without_names_as_typed(
    tmp_path: Path, make_app: Callable[..., Flask], alice: World, app_store: SqlStore
) -> None:
    log = tmp_path / "audit.log"
    app = make_app(settings=make_settings(tmp_path, audit_log=str(log)))
    browser = Browser(app.test_client())
    browser.sign_in(user="alice-typo", password="hunter2-typed-here")
    browser.sign_in()
    grant = start_device(app)
    browser.submit("/device", user_code=grant.user_code)
    browser.post("/device/decision", {"csrf_token": browser.csrf("/device"), "decision": "deny"})
    browser.submit("/logout")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    signins = [(x["action"], x["outcome"], x["reason"]) for x in lines if x["event"] == "signin"]
    assert signins == [
        ("signin:Login", "denied", "invalid_credentials"),
        ("signin:Login", "allowed", "ok"),
        ("signin:DenyDevice", "allowed", "ok"),
        ("signin:Logout", "allowed", "ok"),
    ]
    allowed = [x for x in lines if x["event"] == "signin" and x["outcome"] == "allowed"]
    assert {x["arn"] for x in allowed} == {alice.alice.arn}
    assert all(x["sid"] for x in allowed)
    text = log.read_text()
    assert "alice-typo" not in text and "hunter2" not in text and PASSWORD not in text


def test_a_store_outage_is_a_page_not_a_leak(
    make_app: Callable[..., Flask], app_store: SqlStore, alice: World
) -> None:
    flaky = FlakyStore(app_store)
    browser = Browser(make_app(store=flaky).test_client())
    token = browser.csrf("/login")
    flaky.down = True
    for response in (
        browser.get("/login"),
        browser.post(
            "/login",
            {"csrf_token": token, "account": ACCOUNT, "user_name": "alice", "password": PASSWORD},
        ),
    ):
        assert response.status_code == 503 and "cannot reach its database" in response.text
        assert "hunter2" not in response.text
        assert_secure_page(response)


def test_after_the_device_page_login_is_the_home_again(client: FlaskClient, alice: World) -> None:
    browser = Browser(client)
    grant = start_device(client.application)
    browser.get("/device?user_code=" + grant.user_code)
    browser.sign_in()
    assert browser.get("/device").status_code == 200
    assert browser.get("/login").status_code == 200  # not sent back to /device
