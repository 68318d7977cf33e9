"""The sign-in pages in a real browser: Debian's headless Chromium driven by Playwright,
against the real `authbridge serve` (gunicorn, 2 workers, TLS from `init`).

Covers, as a person would do them: a password sign-in typed with the keyboard only
(labels found by their accessible names), a forced password change, MFA enrolled with
the CLI and then a sign-in with its code, a wrong code, MFA enrolled on the /account
page from its QR code, device approval and denial
(the token endpoint then sees them), the authorization code flow to a loopback
redirect (the 302 after the consent form's POST is not blocked by form-action), a
form whose CSRF token is gone, a session ended server-side, sign-out, clickjacking
(the page refuses to be framed), session fixation and an open redirect. Every page
is watched for console errors and Content-Security-Policy violations: there must be
none.

Without /usr/bin/chromium the module is skipped, unless AUTHBRIDGE_REQUIRE_BROWSER=1
(CI), when that is a failure. AUTHBRIDGE_SCREENSHOTS=1 rewrites docs/screenshots/*.png.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authbridge.iam import totp
from authbridge.iam.credentials import load_or_create_pepper
from authbridge.store import open_store
from tests.browsing import CHROMIUM, browser_or_skip
from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, clean_env, start_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSWORD = "browser test password 1"
SESSION_COOKIE = "__Host-authbridge-session"
REFUSED = "the user name, password or MFA code is not valid"
# Reports every CSP violation to the console, where the collector below sees it.
# (An init script runs through the DevTools protocol, so the page's CSP does not apply.)
CSP_REPORTER = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});
"""


# --------------------------------------------------------------------------- fixtures


def cli(server: LiveServer, argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(
        [AUTHBRIDGE, *argv],
        cwd=server.root,
        env=clean_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


def new_user(server: LiveServer, name: str, *, reset: bool = False) -> str:
    """A user in group admins with a login profile, straight in the server's store (fast;
    the CLI verbs have their own tests, and MFA is enrolled with the CLI below)."""
    store = server.extra["store"]
    store.create_user(ACCOUNT, name)
    store.add_user_to_group(ACCOUNT, "admins", name)
    store.create_login_profile(ACCOUNT, name, PASSWORD, password_reset_required=reset)
    return name


def enrol_mfa(server: LiveServer, user: str) -> bytes:
    """A virtual MFA device for ``user``, created and enabled with the CLI; its secret."""
    doc = json.loads(
        cli(
            server,
            ["-o", "json", "iam", "create-virtual-mfa-device", "--virtual-mfa-device-name", user],
        )
    )["VirtualMFADevice"]
    secret = base64.b32decode(doc["Base32StringSeed"] + "=" * (-len(doc["Base32StringSeed"]) % 8))
    # The codes of the last two steps (the current code stays unused for the sign-in). They
    # are accepted until the current step ends: start at least 10 s before it does, so a
    # slow CLI start on a loaded machine cannot carry the check into the next step.
    left = totp.STEP_SECONDS - time.time() % totp.STEP_SECONDS
    if left < 10:
        time.sleep(left + 0.5)
    step = totp.step_at(time.time()) - 1
    cli(
        server,
        [
            "iam",
            "enable-mfa-device",
            "--user-name",
            user,
            "--serial-number",
            doc["SerialNumber"],
            "--authentication-code1",
            totp.hotp(secret, step - 1),
            "--authentication-code2",
            totp.hotp(secret, step),
        ],
    )
    return secret


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    browser_or_skip()
    for live in start_server(tmp_path_factory.mktemp("browser")):
        pepper = load_or_create_pepper(live.root / "keys" / "access-key-pepper", create=False)
        store = open_store(f"sqlite:///{live.root}/data/authbridge.db", pepper=pepper)
        live.extra["store"] = store
        try:
            yield live
        finally:
            store.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """One fresh browser context and page, with every console error and CSP violation."""

    page: Any
    context: Any
    server: LiveServer
    problems: list[str] = field(default_factory=list)

    def go(self, path: str) -> Any:
        return self.page.goto(self.server.url + path)

    def shot(self, name: str) -> None:
        if os.environ.get("AUTHBRIDGE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def cookie(self, name: str) -> str | None:
        for c in self.context.cookies(self.server.url):
            if c["name"] == name:
                return str(c["value"])
        return None

    def sign_in(self, user: str, password: str = PASSWORD, shot: str | None = None) -> None:
        self.go("/login")
        self.page.get_by_label("User name").fill(user)
        self.page.get_by_label("Password").fill(password)
        if shot:
            self.shot(shot)
        self.click("Sign in")

    def click(self, button: str | re.Pattern[str]) -> None:
        """Press a button and wait for the page it leads to."""
        with self.page.expect_navigation():
            self.page.get_by_role("button", name=button).click()

    def heading(self) -> str:
        return str(self.page.get_by_role("heading", level=1).inner_text())

    def approve_device(self, code: str) -> None:
        """On /device: type the code the CLI printed, check the consent names it, approve."""
        self.go("/device")
        assert self.heading() == "Connect a device"
        self.page.get_by_label("Code").fill(code)
        self.click("Continue")
        assert self.heading() == "Approve this sign-in?"
        assert code in self.page.inner_text("main")
        self.click("Approve")
        assert "The device is signed in" in self.page.inner_text("main")


@pytest.fixture
def tab(chromium: Any, server: LiveServer) -> Iterator[Tab]:
    context = chromium.new_context(
        ignore_https_errors=True, viewport={"width": 720, "height": 560}, locale="en-US"
    )
    context.add_init_script(CSP_REPORTER)
    page = context.new_page()
    t = Tab(page=page, context=context, server=server)

    documents: set[str] = set()

    def on_response(response: Any) -> None:
        if response.request.resource_type == "document":
            documents.add(response.url)

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        # A page answered with 4xx on purpose (a refused form, an error page) is logged
        # as a failed load of the document itself: expected, and the tests check the
        # status. A script, style or image that failed would be a problem.
        if msg.text.startswith("Failed to load resource") and msg.location.get("url") in documents:
            return
        t.problems.append(f"console: {msg.text} at {page.url}")

    page.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda e: t.problems.append(f"page error: {e}"))
    try:
        yield t
        assert t.problems == [], t.problems
    finally:
        context.close()


# --------------------------------------------------------------------------- a loopback client


class Callback:
    """What `authbridge login` listens with: http://127.0.0.1:PORT/callback."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.queries: list[dict[str, list[str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                parts = urllib.parse.urlsplit(self.path)
                if parts.path == "/callback":
                    outer.queries.append(urllib.parse.parse_qs(parts.query))
                body = b"<!doctype html><title>done</title><link rel=icon href=data:,><p>done"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.httpd = Server((host, 0), Handler)
        shown = f"[{host}]" if ":" in host else host
        self.uri = f"http://{shown}:{self.httpd.server_address[1]}/callback"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["127.0.0.1", "::1"])
def callback(request: pytest.FixtureRequest) -> Iterator[Callback]:
    """Both loopbacks of RFC 8252 §7.3 (for [::1] the consent page's form-action is http:)."""
    try:
        c = Callback(request.param)
    except OSError as e:  # a machine without IPv6 on its loopback
        pytest.skip(f"cannot listen on {request.param}: {e}")
    try:
        yield c
    finally:
        c.close()


def post_form(server: LiveServer, path: str, fields: dict[str, str]) -> tuple[int, dict[str, Any]]:
    status, _, body = server.request(
        path,
        data=urllib.parse.urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    return status, json.loads(body)


# --------------------------------------------------------------------------- sign-in


def test_password_sign_in_with_the_keyboard_only(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "kim")
    tab.go("/login")
    assert tab.heading() == "Sign in"
    assert tab.page.get_by_label("Account ID or alias").input_value() == ACCOUNT
    focused = tab.page.evaluate("document.activeElement.id")
    assert focused == "user_name"  # the first empty field has the focus
    tab.shot("login")
    tab.page.keyboard.type(user)
    tab.page.keyboard.press("Tab")
    tab.page.keyboard.type(PASSWORD)
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    assert "You are signed in as" in tab.page.inner_text("main")
    tab.shot("signed-in")
    assert tab.cookie(SESSION_COOKIE)


def test_a_wrong_password_and_an_unknown_user_read_the_same(tab: Tab, server: LiveServer) -> None:
    new_user(server, "lee")
    tab.sign_in("lee", "not the password")
    first = tab.page.get_by_role("alert").inner_text()
    tab.shot("login-refused")
    tab.sign_in("nobody-at-all")
    assert tab.page.get_by_role("alert").inner_text() == first
    assert REFUSED in first.lower() or REFUSED in first
    assert tab.cookie(SESSION_COOKIE) is None


def test_forced_password_change(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "max", reset=True)
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/login/password$"))
    assert tab.heading() == "Choose a new password"
    tab.shot("change-password")
    tab.page.get_by_label("New password", exact=True).fill("short")
    tab.page.get_by_label("The new password again").fill("short")
    tab.click(re.compile("Change the password"))
    assert "password policy" in tab.page.get_by_role("alert").inner_text()
    tab.page.get_by_label("New password", exact=True).fill("a brand new password 2")
    tab.page.get_by_label("The new password again").fill("a brand new password 2")
    tab.click(re.compile("Change the password"))
    tab.page.wait_for_url(re.compile(r".*/login$"))
    assert "You are signed in as" in tab.page.inner_text("main")
    profile = json.loads(
        cli(server, ["-o", "json", "iam", "get-login-profile", "--user-name", user])
    )
    assert profile["LoginProfile"]["PasswordResetRequired"] is False


def test_mfa_enrolled_with_the_cli_then_sign_in_with_a_wrong_then_a_right_code(
    tab: Tab, server: LiveServer
) -> None:
    user = new_user(server, "noa")
    secret = enrol_mfa(server, user)
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/login/mfa$"))
    assert tab.heading() == "Enter your MFA code"
    tab.shot("mfa")
    now_code = totp.code_at(secret, time.time())
    wrong = "000000" if now_code != "000000" else "111111"
    tab.page.get_by_label("MFA code").fill(wrong)
    tab.click("Verify")
    assert "MFA code is not valid" in tab.page.get_by_role("alert").inner_text()
    assert tab.cookie(SESSION_COOKIE) is None
    tab.shot("mfa-wrong")
    tab.page.get_by_label("MFA code").fill(totp.code_at(secret, time.time()))
    tab.click("Verify")
    tab.page.wait_for_url(re.compile(r".*/login$"))
    assert "with MFA" in tab.page.inner_text("header")


def test_mfa_enrolment_on_the_account_page_with_its_qr_code(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "una")
    tab.sign_in(user)
    tab.go("/account")
    assert tab.heading() == "Your account"
    tab.click("Add an MFA device")
    assert tab.heading() == "Add an MFA device"
    qr = tab.page.get_by_role("img", name=re.compile("QR code"))
    assert qr.evaluate("i => i.complete && i.naturalWidth > 0")  # drawn, CSP allowed it
    seed = tab.page.locator("#seed").inner_text()
    tab.shot("mfa-enrol")
    secret = base64.b32decode(seed + "=" * (-len(seed) % 8))
    step = totp.step_at(time.time())
    tab.page.get_by_label("First code").fill(totp.hotp(secret, step - 1))
    tab.page.get_by_label("The next code").fill(totp.hotp(secret, step))
    tab.click("Add the device")
    assert "MFA device was added" in tab.page.get_by_role("status").inner_text()
    devices = json.loads(
        cli(server, ["-o", "json", "iam", "list-mfa-devices", "--user-name", user])
    )
    assert len(devices["MFADevices"]) == 1


def test_a_form_without_its_csrf_token_is_refused(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "oli")
    tab.go("/login")
    tab.page.locator("input[name=csrf_token]").evaluate("e => e.remove()")
    tab.page.get_by_label("User name").fill(user)
    tab.page.get_by_label("Password").fill(PASSWORD)
    tab.click("Sign in")
    assert tab.heading() == "The form was refused"
    assert "did not come from this site" in tab.page.get_by_role("alert").inner_text()
    tab.shot("csrf-refused")
    assert tab.cookie(SESSION_COOKIE) is None


def test_session_fixation_is_refused(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "pat")
    planted = secrets.token_urlsafe(32)
    tab.context.add_cookies(
        [{"name": SESSION_COOKIE, "value": planted, "url": server.url, "secure": True}]
    )
    tab.go("/login")
    assert tab.heading() == "Sign in"  # the planted value is no session
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/login$"))
    assert tab.cookie(SESSION_COOKIE) not in (None, planted)


def test_a_session_ended_server_side_asks_for_a_sign_in(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "quinn")
    tab.sign_in(user)
    assert "You are signed in as" in tab.page.inner_text("main")
    revoked = json.loads(cli(server, ["-o", "json", "iam", "revoke-sessions", "--user-name", user]))
    assert revoked["SessionsRevoked"] == 1
    for _ in range(4):  # more requests than workers: every worker sees it at once
        tab.go("/login")
        assert tab.page.get_by_label("Password").is_visible()


def test_sign_out(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "ray")
    tab.sign_in(user)
    with tab.page.expect_navigation():
        tab.page.get_by_role("link", name="Sign out").first.click()
    assert tab.heading() == "Sign out"
    tab.shot("logout")
    tab.click("Sign out")
    assert tab.page.url.endswith("/signed-out")
    assert "You are signed out" in tab.page.inner_text("main")
    tab.shot("signed-out")
    assert tab.cookie(SESSION_COOKIE) is None
    tab.go("/account")
    assert tab.page.url.endswith("/login")


def test_clickjacking_the_pages_refuse_to_be_framed(chromium: Any, server: LiveServer) -> None:
    context = chromium.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if m.type == "error" else None)
        response = page.goto(server.url + "/login")
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.goto("about:blank")  # another origin than the pages'
        page.set_content(f'<iframe src="{server.url}/login" title="victim"></iframe>')
        page.wait_for_timeout(500)
        frame = page.frames[1]
        assert "Sign in" not in frame.content()  # nothing of the page was rendered
        assert frame.url.startswith("chrome-error:"), (frame.url, blocked)
    finally:
        context.close()


def test_open_redirect_is_refused_with_an_error_page(tab: Tab, server: LiveServer) -> None:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "authbridge-cli",
            "redirect_uri": "https://evil.example/callback",
            "state": "s",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        }
    )
    response = tab.go("/oauth2/authorize?" + query)
    assert response.status == 400
    assert tab.page.url.startswith(server.url)
    assert tab.heading() == "This sign-in request is not valid"
    tab.shot("authorize-refused")


# --------------------------------------------------------------------------- the flows


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_authorization_code_flow_reaches_the_loopback_and_the_token_endpoint(
    tab: Tab, server: LiveServer, callback: Callback
) -> None:
    user = new_user(server, f"rae-{len(callback.uri)}-{secrets.token_hex(2)}")
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": "authbridge-cli",
            "redirect_uri": callback.uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    tab.go("/oauth2/authorize?" + query)
    tab.page.wait_for_url(re.compile(r".*/login$"))
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/oauth2/authorize$"))
    assert tab.heading() == "Approve this sign-in?"
    assert "/platform/Admin" in tab.page.inner_text("main")
    if "127.0.0.1" in callback.uri:
        tab.shot("authorize-consent")
    tab.click("Approve")
    tab.page.wait_for_url(re.compile(r"http://(127\.0\.0\.1|\[::1\]):\d+/callback\?.*"))
    (answer,) = callback.queries
    assert answer["state"] == [state]
    status, token = post_form(
        server,
        "/oauth2/token",
        {
            "grant_type": "authorization_code",
            "client_id": "authbridge-cli",
            "code": answer["code"][0],
            "redirect_uri": callback.uri,
            "code_verifier": verifier,
        },
    )
    assert status == 200, token
    assert token["token_type"] == "Bearer" and token["refresh_token"]


def device_start(server: LiveServer) -> dict[str, Any]:
    status, doc = post_form(server, "/oauth2/device_authorization", {"client_id": "authbridge-cli"})
    assert status == 200, doc
    return doc


def device_poll(server: LiveServer, device_code: str) -> tuple[int, dict[str, Any]]:
    return post_form(
        server,
        "/oauth2/token",
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
            "client_id": "authbridge-cli",
            "device_code": device_code,
        },
    )


@pytest.mark.parametrize("decision", ["Approve", "Deny"])
def test_device_approval_and_denial(tab: Tab, server: LiveServer, decision: str) -> None:
    user = new_user(server, f"sam-{decision.lower()}")
    grant = device_start(server)
    tab.page.goto(grant["verification_uri_complete"])
    tab.page.wait_for_url(re.compile(r".*/login$"))  # the code left the URL at once
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/device$"))
    assert tab.heading() == "Approve this sign-in?"
    assert grant["user_code"] in tab.page.inner_text("main")
    if decision == "Approve":
        tab.shot("device-consent")
    tab.click(decision)
    main = tab.page.inner_text("main")
    status, answer = device_poll(server, grant["device_code"])
    if decision == "Approve":
        assert "The device is signed in" in main
        tab.shot("device-approved")
        assert status == 200, answer
        assert answer["access_token"] and answer["refresh_token"]
    else:
        assert "denied" in main
        assert status == 400 and answer["error"] == "access_denied"


def test_device_code_typed_by_hand(tab: Tab, server: LiveServer) -> None:
    user = new_user(server, "tao")
    grant = device_start(server)
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/login$"))
    tab.go("/device")
    assert tab.heading() == "Connect a device"
    tab.shot("device")
    box = tab.page.get_by_label("Code")
    box.focus()
    tab.page.keyboard.type(grant["user_code"].replace("-", "").lower())
    assert box.input_value() == grant["user_code"]  # signin.js formats it as typed
    with tab.page.expect_navigation():
        tab.page.keyboard.press("Enter")
    assert tab.heading() == "Approve this sign-in?"
    tab.click("Approve")
    assert device_poll(server, grant["device_code"])[0] == 200


def test_the_screenshots_are_small_pngs() -> None:
    shots = sorted(SCREENSHOTS.glob("*.png"))
    assert shots, "no docs/screenshots: run with AUTHBRIDGE_SCREENSHOTS=1"
    for shot in shots:
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 100_000, shot.name


def test_cli_device_login_is_approved_in_the_browser_then_token_works(
    tab: Tab, server: LiveServer, tmp_path: Path
) -> None:
    """The whole person: `authbridge login --device-code` in a terminal, the code typed
    into /device in Chromium, then kubectl's `authbridge token` from the session."""
    from tests.test_e2e_signin_cli import USER_CODE, Person, claims_of

    user = new_user(server, "ines")
    person = Person(server, tmp_path / "home")
    running = person.start(person.login_args("--device-code"))
    code = running.wait_for(USER_CODE).group(1)
    tab.sign_in(user)
    tab.page.wait_for_url(re.compile(r".*/login$"))
    tab.approve_device(code)

    done = running.finish()
    assert done.returncode == 0, done.stderr
    assert f"Signed in as arn:aws:iam::{ACCOUNT}:user/{user}" in done.stderr
    minted = person.token()
    assert minted.returncode == 0, minted.stderr
    token = json.loads(minted.stdout)["status"]["token"]
    claims = claims_of(token)
    assert claims["aud"] == "prod" and claims["arn"] == f"arn:aws:iam::{ACCOUNT}:user/{user}"
    assert claims["sid"] == claims_of(person.session()["accessToken"])["sid"]
    assert claims["source_identity"] == server.extra["store"].get_user(ACCOUNT, user).user_id
