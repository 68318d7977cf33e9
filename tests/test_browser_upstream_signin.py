"""Sign-in through an upstream IdP in a real browser: Debian's headless Chromium driven
by Playwright, against the real `authbridge serve` (gunicorn, 2 workers, TLS from
`init`), with the test issuer (tests/oidc_issuer.py, its own TLS) playing the IdP.

Everything is set up as an administrator would, through the real CLI in subprocesses:
`iam create-open-id-connect-provider` (the IdP's CA in --ca-file),
`iam update-open-id-connect-provider-sign-in` (a public client, PKCE, scope groups),
and three roles whose trust documents (file://) allow the provider for the groups
platform, dev and finance; the RedirectUri `get-open-id-connect-provider` shows is the
one registered at the IdP.

Covers, as a person would do them: "Sign in with Example SSO" on /login, the IdP's
page, "Continue as alice", the role picker listing Platform and Dev (alice's groups)
and not Finance, Dev picked and the session working as
`assumed-role/Dev/alice`; `authbridge login --device-code` in a terminal approved on
/device by a browser signed in through the IdP, then `authbridge token` and /verify
(source identity `<provider ARN>:00u-alice`, the Kubernetes user name from the
role's mapping); the IdP's Cancel (an error page naming access_denied, no session).
Every page, the IdP's included, is watched for console errors and CSP violations
(tests/test_browser_signin.py's ``tab``): there must be none.

Without /usr/bin/chromium the module is skipped, unless AUTHBRIDGE_REQUIRE_BROWSER=1.
AUTHBRIDGE_SCREENSHOTS=1 rewrites docs/screenshots/upstream-*.png. The same flow
through Flask's test client, with its attacks: tests/web/test_signin_upstream.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import test_browser_signin as signin_browser
from tests.browsing import browser_or_skip
from tests.oidc_issuer import TestIssuer, running_issuer
from tests.serving import ACCOUNT, LiveServer, start_server
from tests.test_browser_signin import SESSION_COOKIE, Tab

# The sign-in module's browser fixtures, used here by name (this module has its own server).
chromium = signin_browser.chromium
tab = signin_browser.tab

CLIENT_ID = "authbridge-signin"
DISPLAY_NAME = "Example SSO"
GROUPS = {"Platform": "platform", "Dev": "dev", "Finance": "finance"}  # role -> group
MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/Platform
    username: "platform:{{{{SessionName}}}}"
    groups: ["authbridge:platform"]
  - rolearn: arn:aws:iam::{ACCOUNT}:role/Dev
    username: "dev:{{{{SessionName}}}}"
    groups: ["authbridge:dev"]
"""


def _trust(provider_arn: str, key: str, group: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{key}:aud": CLIENT_ID},
                    "ForAnyValue:StringEquals": {f"{key}:groups": group},
                },
            }
        ],
    }


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIssuer]:
    browser_or_skip()
    with running_issuer(tmp_path_factory.mktemp("idp")) as running:
        running.clients[CLIENT_ID] = None  # a public client: PKCE, no secret
        yield running


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: TestIssuer) -> Iterator[LiveServer]:
    """The live server, with the IdP registered as a sign-in provider through the CLI."""
    for live in start_server(tmp_path_factory.mktemp("upstream"), mapping=MAPPING):
        setup = live.root / "setup"
        setup.mkdir()
        ca_file = setup / "idp-ca.pem"
        ca_file.write_text(idp.ca_pem)
        created = json.loads(
            live.cli(
                [
                    "-o", "json", "iam", "create-open-id-connect-provider",
                    "--url", idp.url, "--client-id-list", CLIENT_ID, "--ca-file", str(ca_file),
                ]
            )
        )  # fmt: skip
        arn = created["OpenIDConnectProviderArn"]
        key = idp.url.removeprefix("https://")
        assert arn == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{key}"
        signed = json.loads(
            live.cli(
                [
                    "-o", "json", "iam", "update-open-id-connect-provider-sign-in",
                    "--open-id-connect-provider-arn", arn, "--display-name", DISPLAY_NAME,
                    "--client-id", CLIENT_ID, "--scope", "groups",
                ]
            )
        )  # fmt: skip
        redirect_uri = f"{live.url}/login/upstream/callback"
        assert signed["SignIn"]["RedirectUri"] == redirect_uri
        idp.redirect_uris.add(redirect_uri)  # what the IdP's administrator registers
        for role, group in GROUPS.items():
            trust = setup / f"trust-{role}.json"
            trust.write_text(json.dumps(_trust(arn, key, group)))
            live.cli(
                [
                    "iam", "create-role", "--role-name", role,
                    "--assume-role-policy-document", f"file://{trust}",
                ]
            )  # fmt: skip
        shown = json.loads(
            live.cli(["-o", "json", "iam", "get-open-id-connect-provider",
                      "--open-id-connect-provider-arn", arn])
        )  # fmt: skip
        assert shown["SignIn"]["RedirectUri"] == redirect_uri, shown
        assert shown["SignIn"]["DisplayName"] == DISPLAY_NAME
        live.extra["provider_arn"] = arn
        live.extra["idp_url"] = idp.url
        yield live


def idp_url(t: Tab) -> str:
    return str(t.server.extra["idp_url"])


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def session_arn(role: str, name: str = "alice") -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}"


def role_choice(t: Tab, role: str) -> Any:
    """The picker's radio button for ``role``, found by its label (the role's name first)."""
    return t.page.get_by_label(re.compile(rf"^{re.escape(role)}\b"))


def to_the_idp(t: Tab, shot: bool = False) -> None:
    """/login, then "Sign in with Example SSO": the IdP's own page."""
    t.go("/login")
    assert t.heading() == "Sign in"
    if shot:
        t.shot("upstream-login")
    t.click(f"Sign in with {DISPLAY_NAME}")
    assert t.page.url.startswith(f"{idp_url(t)}/authorize?")
    assert t.heading() == "Sign in to Test IdP"
    assert "Signed in at Test IdP as alice" in t.page.inner_text("body")


def to_the_picker(t: Tab, server: LiveServer, shot: bool = False) -> None:
    """From /login through the IdP's "Continue as alice" to the role picker."""
    to_the_idp(t, shot=shot)
    t.click("Continue as alice")
    t.page.wait_for_url(server.url + "/login/upstream/role")
    assert t.heading() == "Pick a role"
    assert f"{DISPLAY_NAME} signed you in as alice" in t.page.inner_text("main")


def sso_sign_in(t: Tab, server: LiveServer, role: str) -> None:
    """The whole sign-in through the IdP, working as ``role`` (picked with the mouse)."""
    to_the_picker(t, server)
    role_choice(t, role).check()
    t.click("Continue")
    assert f"working as {session_arn(role)}" in t.page.inner_text("main")


# --------------------------------------------------------------------------- the flow


def test_sign_in_through_the_idp_and_pick_a_role(
    tab: Tab, server: LiveServer, idp: TestIssuer
) -> None:
    asked = len(idp.authorize_requests)
    to_the_picker(tab, server, shot=True)
    request = idp.authorize_requests[asked]
    assert request["client_id"] == CLIENT_ID
    assert request["redirect_uri"] == f"{server.url}/login/upstream/callback"
    assert request["code_challenge_method"] == "S256"
    assert "groups" in request["scope"].split()

    radios = tab.page.get_by_role("radio")
    assert radios.count() == 2
    main = tab.page.inner_text("main")
    assert role_arn("Platform") in main and role_arn("Dev") in main
    assert role_arn("Finance") not in main  # alice is not in group finance
    assert tab.cookie(SESSION_COOKIE) is None  # no session before a role is picked
    tab.shot("upstream-role")

    # Dev by its label: the mouse on Platform, then the keyboard back to Dev.
    role_choice(tab, "Platform").click()
    assert role_choice(tab, "Platform").is_checked()
    tab.page.keyboard.press("ArrowUp")  # the group's order: Dev, Platform
    assert role_choice(tab, "Dev").is_checked()
    assert not role_choice(tab, "Platform").is_checked()
    tab.click("Continue")

    main = tab.page.inner_text("main")
    assert "You are signed in through your identity provider as" in main
    assert f"working as {session_arn('Dev')}" in main
    assert tab.cookie(SESSION_COOKIE)
    tab.go("/account")
    account = tab.page.inner_text("main")
    assert f"work as {session_arn('Dev')}" in account
    assert f"{server.extra['provider_arn']}:00u-alice" in account


def test_cli_device_login_approved_by_an_idp_session_then_token_and_verify(
    tab: Tab, server: LiveServer, tmp_path: Path
) -> None:
    """`authbridge login --device-code` in a terminal, the code approved on /device by a
    browser signed in through the IdP as Platform; then kubectl's `authbridge token`."""
    from tests.test_e2e_signin_cli import USER_CODE, Person, claims_of

    person = Person(server, tmp_path / "home")
    running = person.start(person.login_args("--device-code"))
    code = running.wait_for(USER_CODE).group(1)
    sso_sign_in(tab, server, "Platform")
    tab.approve_device(code)

    done = running.finish()
    assert done.returncode == 0, done.stderr
    assert f"Signed in as {session_arn('Platform')}" in done.stderr
    minted = person.token()
    assert minted.returncode == 0, minted.stderr
    token = json.loads(minted.stdout)["status"]["token"]
    claims = claims_of(token)
    assert claims["aud"] == "prod" and claims["arn"] == session_arn("Platform")

    status, _, body = server.request(
        "/verify",
        data=json.dumps({"token": token, "clusterID": "prod"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert status == 200, body
    answer = json.loads(body)
    assert answer["authenticated"] is True, answer
    assert answer["identity"]["sourceIdentity"] == f"{server.extra['provider_arn']}:00u-alice"
    assert answer["kubernetes"]["username"] == "platform:alice"
    assert "authbridge:platform" in answer["kubernetes"]["groups"]


def test_cancel_at_the_idp_shows_its_access_denied_and_signs_nobody_in(
    tab: Tab, server: LiveServer
) -> None:
    to_the_idp(tab)
    callback = f"{server.url}/login/upstream/callback?"
    with tab.page.expect_response(lambda r: r.url.startswith(callback)) as answered:
        tab.click("Cancel")
    assert answered.value.status == 403
    assert "error=access_denied" in tab.page.url
    assert tab.heading() == f"{DISPLAY_NAME} did not sign you in"
    alert = tab.page.get_by_role("alert")
    assert alert.is_visible()
    assert f"{DISPLAY_NAME} answered access_denied" in alert.inner_text()
    assert tab.cookie(SESSION_COOKIE) is None
    tab.go("/account")
    assert tab.page.url.endswith("/login")  # still nobody signed in
