"""The console in a real browser: Debian's headless Chromium driven by Playwright, against
the real `authbridge serve` (gunicorn, TLS), as tests/test_browser_signin.py does (its
fixtures and helpers are reused).

Covers, as a person would do them: an administrator signs in and, keyboard only,
reaches the users page and creates a user; then creates a group with that user in it,
a role trusting the group, an access entry for the user with an access policy, and the
explorer shows the new user's Kubernetes identity, the role it may assume and what RBAC
allows it; the JSON export; the audit view. A read-only user (IAMReadOnlyAccess) sees
the pages without any edit control, and a POST crafted with their own CSRF token is
refused by the action layer. Every page is watched for console errors and CSP
violations (the ``tab`` fixture): there must be none.

AUTHBRIDGE_SCREENSHOTS=1 rewrites docs/screenshots/console-*.png.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from authbridge.iam.policy import aws_managed_arn
from tests import test_browser_signin as signin_browser
from tests.serving import ACCOUNT, CLUSTERS, LiveServer
from tests.test_browser_signin import PASSWORD, SCREENSHOTS, Tab, new_user

# The sign-in module's fixtures, used here by name (this module gets its own server).
server = signin_browser.server
chromium = signin_browser.chromium
tab = signin_browser.tab

ADMIN = aws_managed_arn("aws", "AdministratorAccess")
READ_ONLY = aws_managed_arn("aws", "IAMReadOnlyAccess")
CLUSTER = CLUSTERS[0]


def shot(t: Tab, name: str, at: str | None = None) -> None:
    """A screenshot of the viewport (kept under 100 kB), scrolled to ``at`` (a selector)."""
    if os.environ.get("AUTHBRIDGE_SCREENSHOTS") != "1":
        return
    if at is not None:
        t.page.locator(at).first.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    t.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def press_tab_to(t: Tab, text: str, limit: int = 60) -> None:
    """Press Tab until the focused element's text or label is ``text`` (keyboard only)."""
    for _ in range(limit):
        t.page.keyboard.press("Tab")
        focused = t.page.evaluate(
            "() => { const e = document.activeElement;"
            " const l = e && e.labels && e.labels[0] ? e.labels[0].textContent : '';"
            " return ((e && e.textContent) || '').trim() + '|' + l.trim(); }"
        )
        if text in focused.split("|"):
            return
    raise AssertionError(f"Tab never reached {text!r}")


def enter(t: Tab) -> None:
    with t.page.expect_navigation():
        t.page.keyboard.press("Enter")


def sign_in_by_keyboard(t: Tab, user: str) -> None:
    t.go("/console")  # no session: to /login, and back here afterwards
    assert t.page.url.endswith("/login")
    t.page.get_by_label("User name").focus()
    t.page.keyboard.type(user)
    t.page.keyboard.press("Tab")
    t.page.keyboard.type(PASSWORD)
    enter(t)
    assert t.page.url.endswith("/console"), t.page.url


def submit_in(t: Tab, section: str, button: str) -> None:
    with t.page.expect_navigation():
        t.page.locator("section", has_text=section).get_by_role("button", name=button).click()


def notice(t: Tab) -> str:
    return str(t.page.locator("#notice").inner_text())


def test_an_admin_builds_access_and_the_explorer_shows_it(tab: Tab, server: LiveServer) -> None:
    store = server.extra["store"]
    new_user(server, "chief")  # in group admins
    store.attach_policy(ACCOUNT, "group", "admins", ADMIN)
    t = tab
    sign_in_by_keyboard(t, "chief")
    shot(t, "console-home")

    # Keyboard only: to Users, then the create form.
    press_tab_to(t, "Users")
    enter(t)
    assert t.heading() == "Users"
    press_tab_to(t, "User name")
    t.page.keyboard.type("newbie")
    enter(t)
    assert notice(t) == "Done: CreateUser."
    shot(t, "console-users")

    t.go("/console/users/newbie")
    t.page.get_by_label(re.compile("^New password")).fill("a new long password 42")
    t.click("Set password")
    assert notice(t) == "Done: CreateLoginProfile."
    shot(t, "console-user")

    t.go("/console/groups")
    t.page.get_by_label("Group name").fill("platform")
    t.click("Create group")
    assert notice(t) == "Done: CreateGroup."
    t.page.locator("section", has_text="platform").get_by_label("User").select_option("newbie")
    submit_in(t, "platform", "Add member")
    assert "Members: newbie" in t.page.locator("section", has_text="platform").inner_text()

    group_arn = f"arn:aws:iam::{ACCOUNT}:group/platform"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": group_arn}, "Action": "sts:AssumeRole"}
        ],
    }
    t.go("/console/roles")
    t.page.get_by_label("Role name").fill("PlatformOps")
    t.page.get_by_label("Trust policy (JSON)").fill(json.dumps(trust, indent=2))
    t.click("Create role")
    assert notice(t) == "Done: CreateRole."
    card = t.page.locator("section", has_text="PlatformOps").inner_text()
    assert f"Allows AWS {group_arn} to sts:AssumeRole" in card
    shot(t, "console-roles", at="section:has-text('PlatformOps')")

    user_arn = f"arn:aws:iam::{ACCOUNT}:user/newbie"
    t.go("/console/access")
    entry = t.page.locator("section", has_text=f"Cluster {CLUSTER}")
    entry.get_by_label("Principal ARN (user or role)").fill(user_arn)
    entry.get_by_label("Kubernetes groups (one a line)").fill("platform-team")
    submit_in(t, f"Cluster {CLUSTER}", "Add access entry")
    assert notice(t) == "Done: CreateAccessEntry.", notice(t)
    entry = t.page.locator("section", has_text=f"Cluster {CLUSTER}")
    entry.get_by_label("Access policy").select_option(
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    )
    submit_in(t, f"Cluster {CLUSTER}", "Associate")
    assert notice(t) == "Done: AssociateAccessPolicy.", notice(t)
    shot(t, "console-access")

    # Keyboard only again: the explorer from the console's home page.
    t.go("/console")
    press_tab_to(t, "Explorer")
    enter(t)
    press_tab_to(t, "IAM user or role ARN")
    t.page.keyboard.type(user_arn)
    enter(t)
    cluster = t.page.locator("section", has_text=f"Cluster {CLUSTER}").first
    text = cluster.inner_text()
    assert "Kubernetes username" in text and "platform-team" in text
    assert "AmazonEKSViewPolicy" in text  # the access entry's binding
    assert "get" in text  # what RBAC allows (the view policy's rules)
    assert "PlatformOps" in t.page.locator("main").inner_text()  # the role it may assume
    shot(t, "console-explain", at="section.explain-cluster")
    href = t.page.get_by_role("link", name="Download the JSON").get_attribute("href")
    answer = t.page.request.get(server.url + href)
    assert answer.ok and json.loads(answer.text())["principal"]["arn"] == user_arn

    t.go("/console/explain")
    t.page.get_by_label("Verb").fill("list")
    t.page.get_by_label("Resource").fill("pods")
    t.page.get_by_label("Namespace").fill("default")
    t.click("Who can?")
    assert user_arn in t.page.locator("main").inner_text()

    t.go("/console/audit?event=admin_call")
    shot(t, "console-audit")
    for path in ("/console/policies", "/console/keys", "/console/oidc"):
        t.go(path)
        assert t.page.locator("h1").count() == 1


def test_a_read_only_user_sees_no_edit_controls_and_a_crafted_post_is_refused(
    tab: Tab, server: LiveServer
) -> None:
    store = server.extra["store"]
    store.create_user(ACCOUNT, "auditor")
    store.create_login_profile(ACCOUNT, "auditor", PASSWORD)
    store.attach_policy(ACCOUNT, "user", "auditor", READ_ONLY)
    t = tab
    t.sign_in("auditor")
    for path in (
        "/console",
        "/console/users",
        "/console/users/auditor",
        "/console/groups",
        "/console/roles",
        "/console/access",
        "/console/keys",
    ):
        t.go(path)
        assert t.page.locator("input[name=Action]").count() == 0, path
    t.go("/console/users")
    shot(t, "console-read-only")

    t.go("/logout")
    csrf = t.page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer: Any = t.page.request.post(
        server.url + "/console/do",
        form={
            "csrf_token": csrf,
            "Action": "CreateUser",
            "UserName": "mallory",
            "back": "/console/users",
        },
    )
    assert answer.ok
    assert "not authorized to perform: iam:CreateUser" in answer.text()
    assert "mallory" not in [u.name for u in store.list_users(ACCOUNT)]
