"""The console (/console) through Flask's test client: sign-in with the return kept
server-side, the security headers on every page, CSRF on every POST, each action
allowed or refused by the signed-in person's IAM policies (a read-only user sees no
edit controls and a crafted POST is refused), re-authentication for sensitive
actions, the access key secret shown once, the explorer and its JSON, the audit view
and its filters, hostile form input, and a Hypothesis property of the form parser.
The same flows in a real browser: tests/test_browser_console.py.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from authbridge.admin import ALL_ACTIONS
from authbridge.errors import InputError
from authbridge.iam import totp
from authbridge.iam.policy import aws_managed_arn
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.web.signin import console, console_audit, flows
from tests.conftest import ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import World
from tests.web.test_signin_pages import (
    PASSWORD,
    Browser,
    assert_secure_page,
    csrf_of,
    enrol_mfa,
    location,
)

ADMIN = aws_managed_arn("aws", "AdministratorAccess")
READ_ONLY = aws_managed_arn("aws", "IAMReadOnlyAccess")
PAGES = (
    "/console",
    "/console/users",
    "/console/users/bob",
    "/console/groups",
    "/console/roles",
    "/console/policies",
    "/console/access",
    "/console/keys",
    "/console/oidc",
    "/console/explain",
    "/console/audit",
)


@pytest.fixture
def app_store(store: SqlStore) -> SqlStore:
    """Every backend (SQLite, and PostgreSQL with AUTHBRIDGE_TEST_POSTGRES_DSN)."""
    return store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, audit_log=str(tmp_path / "audit.log"))


@pytest.fixture
def users(app_store: SqlStore, world: World) -> World:
    """alice is an administrator, bob has IAMReadOnlyAccess; both have a password."""
    app_store.create_login_profile(ACCOUNT, "alice", PASSWORD)
    app_store.create_login_profile(ACCOUNT, "bob", PASSWORD)
    app_store.attach_policy(ACCOUNT, "user", "alice", ADMIN)
    app_store.attach_policy(ACCOUNT, "user", "bob", READ_ONLY)
    return world


@pytest.fixture
def admin(client: Any, users: World) -> Browser:
    b = Browser(client)
    assert b.sign_in("alice").status_code == 303
    return b


@pytest.fixture
def reader(app: Flask, users: World) -> Browser:
    b = Browser(app.test_client())
    assert b.sign_in("bob").status_code == 303
    return b


def do(b: Browser, page: str, action: str, **fields: str) -> Any:
    """POST a console form as the page at ``page`` would (with its CSRF token)."""
    data = {"csrf_token": b.csrf("/logout"), "Action": action, "back": page, **fields}
    return b.post("/console/do", data)


def notice(b: Browser, page: str) -> str:
    found = re.search(r'id="notice">([^<]*)<', b.get(page).text)
    return found.group(1) if found else ""


# --------------------------------------------------------------------------- shell


def test_console_without_a_session_goes_to_login_and_comes_back(client: Any, users: World) -> None:
    b = Browser(client)
    first = b.get("/console/roles")
    assert first.status_code == 303 and location(first).endswith("/login")
    assert "roles" not in location(first)  # the return is kept server-side, not in the URL
    signed = b.sign_in("alice")
    assert location(signed).endswith("/console/resume")
    back = b.get("/console/resume")
    assert location(back) == "/console/roles"


@pytest.mark.parametrize("path", PAGES)
def test_every_console_page_carries_the_security_headers(admin: Browser, path: str) -> None:
    page = admin.get(path)
    assert page.status_code == 200, page.text
    assert_secure_page(page)
    assert "<script>" not in page.text and "style=" not in page.text
    assert "<style" not in page.text


@pytest.mark.parametrize("path", PAGES)
def test_the_read_only_user_sees_every_page_without_edit_controls(
    reader: Browser, path: str
) -> None:
    page = reader.get(path)
    assert page.status_code == 200, page.text
    offered = set(re.findall(r'name="Action" value="([^"]+)"', page.text))
    assert offered <= {"SimulatePrincipalPolicy"}  # IAMReadOnlyAccess allows iam:Simulate*


def test_the_admin_sees_edit_controls(admin: Browser) -> None:
    assert 'value="CreateUser"' in admin.get("/console/users").text
    assert 'value="DeleteUser"' in admin.get("/console/users/bob").text
    assert 'value="RotateSigningKey"' in admin.get("/console/keys").text


def test_a_user_without_policies_sees_no_links_and_a_refusal(
    app: Flask, app_store: SqlStore, users: World
) -> None:
    app_store.create_user(ACCOUNT, "carol")
    app_store.create_login_profile(ACCOUNT, "carol", PASSWORD)
    b = Browser(app.test_client())
    b.sign_in("carol")
    home = b.get("/console")
    assert home.status_code == 200 and "/console/users" not in home.text
    refused = b.get("/console/users")
    assert refused.status_code == 403
    assert "do not allow" in refused.text and "Traceback" not in refused.text


def test_a_crafted_post_by_a_read_only_user_is_refused(
    reader: Browser, app_store: SqlStore
) -> None:
    answer = do(reader, "/console/users", "CreateUser", UserName="mallory")
    assert answer.status_code == 303
    text = notice(reader, "/console/users")
    assert text.startswith("Not done") and "not authorized to perform: iam:CreateUser" in text
    assert "mallory" not in [u.name for u in app_store.list_users(ACCOUNT)]


def test_csrf_on_a_console_post_is_refused(admin: Browser, app_store: SqlStore) -> None:
    answer = admin.post("/console/do", {"Action": "CreateUser", "UserName": "eve"})
    assert answer.status_code == 403
    wrong = admin.post(
        "/console/do", {"csrf_token": "x" * 43, "Action": "CreateUser", "UserName": "eve"}
    )
    assert wrong.status_code == 403
    assert "eve" not in [u.name for u in app_store.list_users(ACCOUNT)]


def test_an_action_smuggled_into_a_console_form_is_refused(admin: Browser) -> None:
    answer = do(admin, "/console", "DeleteAccountPasswordPolicy")
    assert answer.status_code == 400 and "no console action" in answer.text


def test_an_open_redirect_through_back_is_refused(admin: Browser) -> None:
    answer = do(admin, "/console", "CreateGroup", GroupName="ops", back="https://evil.test/")
    assert location(answer) == "/console"
    answer = do(admin, "/console", "CreateGroup", GroupName="ops2", back="//evil.test")
    assert location(answer) == "/console"


# --------------------------------------------------------------------------- actions


def test_admin_creates_a_user_sets_a_password_and_disables_them(
    admin: Browser, app_store: SqlStore, settings: Settings
) -> None:
    assert do(admin, "/console/users", "CreateUser", UserName="dave").status_code == 303
    assert notice(admin, "/console/users") == "Done: CreateUser."
    assert "dave" in [u.name for u in app_store.list_users(ACCOUNT)]
    do(
        admin,
        "/console/users/dave",
        "CreateLoginProfile",
        UserName="dave",
        Password="another long passphrase 9",
        PasswordResetRequired="true",
    )
    assert notice(admin, "/console/users/dave") == "Done: CreateLoginProfile."
    do(admin, "/console/users/dave", "UpdateUser", UserName="dave", Enabled="false")
    assert "disabled" in admin.get("/console/users/dave").text
    lines = [json.loads(x) for x in Path(str(settings.audit_log)).read_text().splitlines()]
    calls = [x for x in lines if x["event"] == "admin_call"]
    assert {"iam:CreateUser", "iam:CreateLoginProfile", "iam:UpdateUser"} <= {
        x["action"] for x in calls
    }
    assert all("another long passphrase" not in json.dumps(x) for x in lines)


def test_the_access_key_secret_is_shown_once_and_not_cached(
    admin: Browser, app_store: SqlStore
) -> None:
    answer = do(admin, "/console/users/bob", "CreateAccessKey", UserName="bob")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="secret-access-key">([^<]+)<', answer.text)
    assert secret is not None and len(secret.group(1)) == 40
    again = admin.get("/console/users/bob")
    assert secret.group(1) not in again.text


def test_groups_roles_and_access_entries_are_made_through_the_console(
    admin: Browser, app_store: SqlStore
) -> None:
    do(admin, "/console/groups", "CreateGroup", GroupName="ops")
    do(admin, "/console/groups", "AddUserToGroup", GroupName="ops", UserName="bob")
    group = app_store.get_group(ACCOUNT, "ops")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": group.arn}, "Action": "sts:AssumeRole"}
        ],
    }
    do(
        admin,
        "/console/roles",
        "CreateRole",
        RoleName="Ops",
        AssumeRolePolicyDocument=json.dumps(trust),
    )
    assert notice(admin, "/console/roles") == "Done: CreateRole."
    assert notice(admin, "/console/roles") == "", "the notice is shown once"
    roles = admin.get("/console/roles").text
    assert f"Allows AWS {group.arn} to sts:AssumeRole" in roles
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/Ops"
    do(
        admin,
        "/console/access",
        "CreateAccessEntry",
        clusterName="prod",
        principalArn=role_arn,
        kubernetesGroups="ops-team",
    )
    assert role_arn in admin.get("/console/access").text


def test_a_malformed_trust_policy_names_the_field(admin: Browser) -> None:
    do(admin, "/console/roles", "CreateRole", RoleName="Bad", AssumeRolePolicyDocument="{nope")
    text = notice(admin, "/console/roles")
    assert text.startswith("Not done") and "AssumeRolePolicyDocument" in text


def test_deleting_a_user_needs_the_password_again(admin: Browser, app_store: SqlStore) -> None:
    do(admin, "/console/users/bob", "DeleteUser", UserName="bob", Force="true")
    assert notice(admin, "/console/users/bob") == console.REAUTH_REFUSED
    do(
        admin,
        "/console/users/bob",
        "DeleteUser",
        UserName="bob",
        Force="true",
        reauth_password="wrong password entirely",
    )
    assert "bob" in [u.name for u in app_store.list_users(ACCOUNT)]
    do(
        admin,
        "/console/users/bob",
        "DeleteUser",
        UserName="bob",
        Force="true",
        reauth_password=PASSWORD,
    )
    assert "bob" not in [u.name for u in app_store.list_users(ACCOUNT)]


def test_revoking_a_signing_key_needs_the_password_again(admin: Browser) -> None:
    keys = admin.get("/console/keys").text
    kid = re.search(r'name="KeyId" value="([^"]+)"', keys)
    assert kid is not None
    do(admin, "/console/keys", "RevokeSigningKey", KeyId=kid.group(1), Reason="superseded")
    assert notice(admin, "/console/keys") == console.REAUTH_REFUSED


def test_simulate_shows_the_decisions(admin: Browser, users: World) -> None:
    answer = do(
        admin,
        "/console/policies",
        "SimulatePrincipalPolicy",
        PolicySourceArn=users.bob.arn,
        ActionNames="iam:ListUsers\niam:CreateUser",
    )
    assert answer.status_code == 200
    assert "allowed" in answer.text and "implicitDeny" in answer.text


# --------------------------------------------------------------------------- explorer


def test_the_explorer_answers_by_principal_and_offers_the_json(
    admin: Browser, app_store: SqlStore, users: World
) -> None:
    app_store.create_access_entry("prod", users.bob.arn, groups=("viewers",))
    page = admin.get(f"/console/explain?principal={users.bob.arn}")
    assert page.status_code == 200 and "Cluster prod" in page.text
    assert 'class="k8s-group">viewers<' in page.text
    assert "format=json" in page.text
    doc = admin.get(f"/console/explain?principal={users.bob.arn}&format=json")
    assert doc.mimetype == "application/json"
    assert json.loads(doc.text)["principal"]["arn"] == users.bob.arn


def test_the_explorer_answers_by_permission(admin: Browser) -> None:
    page = admin.get("/console/explain?verb=get&resource=pods&namespace=default")
    assert page.status_code == 200 and "answer-json" in page.text
    bad = admin.get("/console/explain?verb=get&resource=")
    assert bad.status_code == 200 and 'id="form-error"' in bad.text


# --------------------------------------------------------------------------- audit


def test_the_audit_view_shows_changes_and_filters_them(admin: Browser) -> None:
    do(admin, "/console/groups", "CreateGroup", GroupName="audited")
    page = admin.get("/console/audit?event=admin_call")
    assert "iam:CreateGroup" in page.text
    none = admin.get("/console/audit?principal=nobody-like-this")
    assert "iam:CreateGroup" not in none.text and "Nothing matches" in none.text
    bad = admin.get("/console/audit?outcome=sideways")
    assert bad.status_code == 200 and "outcome" in bad.text


def test_audit_tail_reads_a_bounded_end_of_the_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    line = json.dumps({"event": "admin_call", "outcome": "allowed", "arn": "x"})
    log.write_text((line + "\n") * 10 + "not json\n")
    lines = console_audit.tail_lines(log, limit=len(line) * 3 + 10)
    assert len(lines) <= 4 and all(x == line or x == "not json" for x in lines)
    found, _ = console_audit.recent(log, console_audit.Filters())
    assert len(found) == 10


@pytest.mark.parametrize(
    "query",
    [
        {"minutes": "-1"},
        {"minutes": "9" * 20},
        {"principal": "x" * 1000},
        {"cluster": "a\x00b"},
        {"event": "everything"},
    ],
)
def test_hostile_audit_filters_are_refused_by_name(query: dict[str, str]) -> None:
    with pytest.raises(InputError) as e:
        console_audit.Filters.from_query(query, now=0)
    assert e.value.field in query


# --------------------------------------------------------------------------- forms


@pytest.mark.parametrize(
    "fields",
    [
        {"UserName": "x" * 5000},
        {"UserName": "../../etc"},
        {"UserName": "<script>alert(1)</script>"},
        {"NotAParam": "1"},
        {"UserName": "a\x00b"},
    ],
)
def test_hostile_console_forms_get_a_message_never_a_500(
    admin: Browser, fields: dict[str, str]
) -> None:
    answer = do(admin, "/console/users", "CreateUser", **fields)
    assert answer.status_code in (303, 400)
    page = admin.get("/console/users")
    assert page.status_code == 200 and "<script>alert" not in page.text


_ACTIONS = [a for a in ALL_ACTIONS if a.name in console.FORM_ACTIONS]


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    action=st.sampled_from(_ACTIONS),
    fields=st.dictionaries(
        st.sampled_from(["UserName", "Enabled", "ActionNames", "MaxSessionDuration", "x", "Tags"]),
        st.text(max_size=200),
        max_size=6,
    ),
)
def test_form_args_gives_a_body_or_names_the_field(action: Any, fields: dict[str, str]) -> None:
    try:
        body = console.form_args(action, fields)
    except InputError as e:
        assert e.field in {*fields, "form"}
        return
    names = {p.name for p in action.params}
    assert set(body) <= names


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=300))
def test_any_user_name_typed_gets_a_page_never_a_500(admin: Browser, value: str) -> None:
    answer = admin.post(
        "/console/do",
        {
            "csrf_token": csrf_of(admin.get("/console/users")),
            "Action": "CreateUser",
            "UserName": value,
            "back": "/console/users",
        },
    )
    assert answer.status_code in (303, 400)


def test_reauthentication_with_mfa_needs_the_code(
    admin: Browser, app_store: SqlStore, clock: Any
) -> None:
    secret = enrol_mfa(app_store, "alice", clock.now)
    key = app_store.create_access_key(ACCOUNT, "bob").key.access_key_id
    fields = {"UserName": "bob", "AccessKeyId": key, "reauth_password": PASSWORD}
    do(admin, "/console/users/bob", "DeleteAccessKey", **fields)
    assert notice(admin, "/console/users/bob") == console.REAUTH_REFUSED
    code = totp.hotp(secret, totp.step_at(clock.now) + 1)
    clock.advance(30)
    do(admin, "/console/users/bob", "DeleteAccessKey", reauth_code=code, **fields)
    assert notice(admin, "/console/users/bob") == "Done: DeleteAccessKey."
    assert key not in [k.access_key_id for k in app_store.list_access_keys(ACCOUNT, "bob")]


def test_a_policy_needing_mfa_refuses_a_session_signed_in_without_it(
    app: Flask, app_store: SqlStore, users: World
) -> None:
    needs_mfa = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iam:*",
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            }
        ],
    }
    app_store.create_user(ACCOUNT, "carol")
    app_store.create_login_profile(ACCOUNT, "carol", PASSWORD)
    app_store.put_inline_policy(ACCOUNT, "user", "carol", "mfa", json.dumps(needs_mfa))
    b = Browser(app.test_client())
    b.sign_in("carol")
    assert b.get("/console/users").status_code == 403
    do(b, "/console/users", "CreateUser", UserName="dora")
    assert "dora" not in [u.name for u in app_store.list_users(ACCOUNT)]


def test_an_ended_session_sends_the_console_to_login(admin: Browser, app_store: SqlStore) -> None:
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    answer = admin.get("/console/users")
    assert answer.status_code == 303 and location(answer).endswith("/login")


@pytest.mark.parametrize(
    "query",
    [
        "principal=not-an-arn",
        "principal=" + "a" * 5000,
        "verb=get&resource=%00",
        "verb=&resource=pods",
        "principal=arn:aws:iam::111122223333:user/nobody",
    ],
)
def test_hostile_explorer_input_gets_a_message_never_a_500(admin: Browser, query: str) -> None:
    page = admin.get(f"/console/explain?{query}")
    assert page.status_code == 200, page.text
    assert 'id="form-error"' in page.text or "Answer" in page.text


def test_the_audit_view_filters_by_outcome_and_time(admin: Browser, reader: Browser) -> None:
    do(reader, "/console/users", "CreateUser", UserName="mallory")
    denied = admin.get("/console/audit?outcome=denied&event=admin_call&minutes=5").text
    assert "iam:CreateUser" in denied and "user/bob" in denied
    allowed = admin.get("/console/audit?outcome=allowed&event=admin_call").text
    assert "AccessDenied" not in allowed


def test_membership_policies_and_trust_are_changed_and_undone(
    admin: Browser, app_store: SqlStore, users: World
) -> None:
    do(admin, "/console/users/alice", "RemoveUserFromGroup", GroupName="devs", UserName="alice")
    assert "Remove from devs" not in admin.get("/console/users/alice").text
    do(admin, "/console/groups", "AttachGroupPolicy", GroupName="devs", PolicyArn=READ_ONLY)
    assert 'value="DetachGroupPolicy"' in admin.get("/console/groups").text
    do(admin, "/console/groups", "DetachGroupPolicy", GroupName="devs", PolicyArn=READ_ONLY)
    assert 'value="DetachGroupPolicy"' not in admin.get("/console/groups").text
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": users.bob.arn}, "Action": "sts:AssumeRole"}
        ],
    }
    do(
        admin,
        "/console/roles",
        "UpdateAssumeRolePolicy",
        RoleName="Dev",
        PolicyDocument=json.dumps(trust),
    )
    assert notice(admin, "/console/roles") == "Done: UpdateAssumeRolePolicy."
    assert f"Allows AWS {users.bob.arn} to sts:AssumeRole" in admin.get("/console/roles").text


def test_an_mfa_device_is_listed_and_deactivated_with_reauthentication(
    admin: Browser, app_store: SqlStore, clock: Any
) -> None:
    enrol_mfa(app_store, "bob", clock.now)
    page = admin.get("/console/users/bob").text
    serial = re.search(r'name="SerialNumber" value="([^"]+)"', page)
    assert serial is not None
    fields = {"UserName": "bob", "SerialNumber": serial.group(1)}
    do(admin, "/console/users/bob", "DeactivateMFADevice", **fields)
    assert notice(admin, "/console/users/bob") == console.REAUTH_REFUSED
    do(admin, "/console/users/bob", "DeactivateMFADevice", reauth_password=PASSWORD, **fields)
    assert notice(admin, "/console/users/bob") == "Done: DeactivateMFADevice."
    assert app_store.list_mfa_devices(ACCOUNT, "bob") == []


def test_an_unexpected_failure_is_a_message_never_a_stack_trace(
    admin: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_target: Any, _args: Any) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    action = dataclasses.replace(console.ACTIONS["CreateGroup"], run=broken)
    monkeypatch.setitem(console.ACTIONS, "CreateGroup", action)
    answer = do(admin, "/console/groups", "CreateGroup", GroupName="boom")
    assert answer.status_code == 303
    text = notice(admin, "/console/groups")
    assert text == "Not done: CreateGroup failed; the server log has the details."
    assert "Traceback" not in text and "internals" not in text


def test_signing_keys_are_rotated_and_retired_with_reauthentication(
    admin: Browser, clock: Any
) -> None:
    before = set(re.findall(r'name="KeyId" value="([^"]+)"', admin.get("/console/keys").text))
    do(admin, "/console/keys", "RotateSigningKey")
    assert notice(admin, "/console/keys") == "Done: RotateSigningKey."
    page = admin.get("/console/keys").text
    after = set(re.findall(r"<td><code>([^<]+)</code></td><td>ES256", page))
    assert len(after) == len(before) + 1
    (kid,) = before
    clock.advance(601)  # the new key is active after the prepublication delay
    # keySource: files here, so a key is retired (revoking is for keys in the store).
    assert 'value="RevokeSigningKey"' not in page
    do(
        admin,
        "/console/keys",
        "RetireSigningKey",
        KeyId=kid,
        reauth_password=PASSWORD,
    )
    text = notice(admin, "/console/keys")
    assert text == "Done: RetireSigningKey.", text


def test_a_stored_flow_never_yields_a_back_path_off_the_console() -> None:
    for back in ("https://evil.test/", "//evil.test", "/console/../login", "/consolex"):
        state = json.dumps({"next": "console", "back": back})
        flow = flows.parse("x" * 43, state)
        assert flow is not None and flow.back is None, back
    good = flows.parse("x" * 43, json.dumps({"back": "/console/users/bob"}))
    assert good is not None and good.back == "/console/users/bob"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(doc=_JSON | st.fixed_dictionaries({"Statement": _JSON}) | st.text(max_size=200))
def test_trust_sentences_never_raise_on_any_document(doc: Any) -> None:
    sentences = console.trust_sentences(doc)
    assert isinstance(sentences, list) and all(isinstance(x, str) for x in sentences)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    query=st.dictionaries(
        st.sampled_from(["principal", "cluster", "outcome", "event", "minutes", "other"]),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_audit_filters_parse_or_name_the_field(query: dict[str, str]) -> None:
    try:
        filters = console_audit.Filters.from_query(query, now=0)
    except InputError as e:
        assert e.field in query
        return
    assert filters.outcome in ("", *console_audit.OUTCOMES)
    assert filters.keep({"event": "admin_call", "outcome": "allowed"}) in (True, False)


@pytest.mark.parametrize("text", ["¹", "٣", "1e3", "-5", "9" * 12])
def test_a_number_field_takes_ascii_digits_only(text: str) -> None:
    role = console.ACTIONS["CreateRole"]
    with pytest.raises(InputError) as e:
        console.form_args(role, {"RoleName": "r", "MaxSessionDuration": text})
    assert e.value.field == "MaxSessionDuration"
