"""The admin API (``POST /api/iam|access|keys``) through Flask's test client.

Covers: every action of :data:`authbridge.admin.ALL_ACTIONS` answering
what the CLI prints (the CLI run as a subprocess on the same store for a
few); every error code; strict parsing of the body and the parameters
(malformed, hostile and oversized bodies, and a Hypothesis property that
nothing but a 4xx JSON error ever comes out); authentication attacks
(cluster token, sts token, expired, wrong issuer, revoked, disabled source
user, a service audience beside another, bad Basic credentials, then 429);
authorization by IAM policies (default deny, IAMReadOnlyAccess lists but
cannot create, IAMSelfManageCredentials manages only its own keys, an
explicit Deny beats AdministratorAccess, conditions on MFA, source address
and principal tags, role sessions); a key of another account is not found;
the audit line of every call; admin-audience tokens from the token endpoint.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from authbridge import keys as key_module
from authbridge import pki
from authbridge.admin import ALL_ACTIONS, policies, signin
from authbridge.admin import keys as admin_keys
from authbridge.audit import AuditLog
from authbridge.errors import InputError
from authbridge.iam.policy import KNOWN_ACTIONS, aws_managed_arn
from authbridge.settings import Settings
from authbridge.store import SqlStore
from authbridge.tokens import mint
from authbridge.web.api.body import BodyTooLarge, parse_body
from tests.conftest import ACCOUNT
from tests.serving import AUTHBRIDGE, clean_env
from tests.web.helpers import (
    ISSUER,
    STS,
    Clock,
    FlakyStore,
    World,
    basic,
    claims_of,
    exchange,
    key_auth,
    session_token,
    sts_token,
    user_token,
)

ADMIN = ISSUER + "/admin"
ADMINISTRATOR = aws_managed_arn("aws", "AdministratorAccess")
READ_ONLY = aws_managed_arn("aws", "IAMReadOnlyAccess")
SELF_MANAGE = aws_managed_arn("aws", "IAMSelfManageCredentials")
ENTRIES_ADMIN = aws_managed_arn("aws", "AccessEntriesAdmin")
OTHER_ACCOUNT = "444455556666"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(
    client: FlaskClient, surface: str, action: str, headers: dict[str, str], **params: Any
) -> TestResponse:
    return client.post(f"/api/{surface}", json={"Action": action, **params}, headers=headers)


def ok(
    client: FlaskClient, surface: str, action: str, headers: dict[str, str], **params: Any
) -> Any:
    response = call(client, surface, action, headers, **params)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def api_error(response: TestResponse, status: int, code: str, *fragments: str) -> str:
    """The response is exactly an admin API error with this status and code; its message."""
    body = response.get_json()
    assert response.status_code == status, body
    assert response.mimetype == "application/json"
    assert set(body) == {"Error"} and set(body["Error"]) == {"Code", "Message"}, body
    assert body["Error"]["Code"] == code, body
    message: str = body["Error"]["Message"]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["x-amzn-RequestId"]
    assert "Traceback" not in message
    return message


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


@pytest.fixture
def admin(client: FlaskClient, world: World, app_store: SqlStore) -> dict[str, str]:
    """bob, with AdministratorAccess, calling with an admin-audience token."""
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    return bearer(user_token(client, world.bob_key, ADMIN))


# --------------------------------------------------------------------------- the registry


def test_every_action_is_a_known_iam_action_with_a_schema() -> None:
    names = [a.name for a in ALL_ACTIONS]
    assert len(names) == len(set(names))
    unknown = [a.iam_action for a in ALL_ACTIONS if a.iam_action not in KNOWN_ACTIONS]
    assert unknown == []
    for action in ALL_ACTIONS:
        assert action.iam_action == f"{action.service}:{action.name}"
        assert len({p.name for p in action.params}) == len(action.params), action.name
        assert action.cli.split()[0] == action.surface or action.surface == "iam"
    assert admin_keys.ALGORITHMS == key_module.ALGORITHMS
    assert admin_keys.REVOCATION_REASONS == key_module.REVOCATION_REASONS


# --------------------------------------------------------------------------- every action


def test_every_action_answers(
    client: FlaskClient, admin: dict[str, str], world: World, app_store: SqlStore, clock: Clock
) -> None:
    seen: set[str] = set()

    def do(surface: str, action: str, **params: Any) -> Any:
        seen.add(action)
        return ok(client, surface, action, admin, **params)

    # users
    carol = do(
        "iam", "CreateUser", UserName="carol", Path="/ops/", Tags=[{"Key": "team", "Value": "ops"}]
    )
    assert carol["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/ops/carol"
    assert carol["User"]["Tags"] == [{"Key": "team", "Value": "ops"}]
    assert do("iam", "GetUser", UserName="carol") == carol
    assert [u["UserName"] for u in do("iam", "ListUsers")["Users"]] == ["alice", "bob", "carol"]
    assert [u["UserName"] for u in do("iam", "ListUsers", PathPrefix="/ops/")["Users"]] == ["carol"]
    assert do("iam", "UpdateUser", UserName="carol", Enabled=False)["User"]["Enabled"] is False
    # groups
    group = do("iam", "CreateGroup", GroupName="ops", Path="/")["Group"]
    assert do("iam", "AddUserToGroup", GroupName="ops", UserName="carol") == {}
    got = do("iam", "GetGroup", GroupName="ops")
    assert got["Group"] == group and [u["UserName"] for u in got["Users"]] == ["carol"]
    assert [g["GroupName"] for g in do("iam", "ListGroups")["Groups"]] == ["devs", "ops"]
    assert [g["GroupName"] for g in do("iam", "ListGroupsForUser", UserName="carol")["Groups"]] == [
        "ops"
    ]
    assert do("iam", "RemoveUserFromGroup", GroupName="ops", UserName="carol") == {}
    assert do("iam", "DeleteGroup", GroupName="ops") == {}
    # roles
    role = do(
        "iam",
        "CreateRole",
        RoleName="Ops",
        Path="/ops/",
        Trust=[world.alice.arn],
        MaxSessionDuration=7200,
        Description="on call",
    )["Role"]
    assert role["Trust"] == [world.alice.arn] and role["MaxSessionDuration"] == 7200
    assert do("iam", "GetRole", RoleName="Ops")["Role"] == role
    assert "Ops" in [r["RoleName"] for r in do("iam", "ListRoles")["Roles"]]
    trust = do("iam", "UpdateAssumeRolePolicy", RoleName="Ops", Trust=[world.bob.arn])
    assert trust["Role"]["Trust"] == [world.bob.arn]
    # OIDC providers, and a role trusting one with a policy document
    kube = f"arn:aws:iam::{ACCOUNT}:oidc-provider/kube.prod.example"
    made = do(
        "iam",
        "CreateOpenIDConnectProvider",
        Url="https://kube.prod.example",
        ClientIDList=["authbridge"],
        CaBundle=pki.new_ca("kube").cert_pem.decode(),
    )
    assert made == {"OpenIDConnectProviderArn": kube, "Tags": []}
    assert do("iam", "ListOpenIDConnectProviders") == {"OpenIDConnectProviderList": [{"Arn": kube}]}
    assert (
        do(
            "iam",
            "AddClientIDToOpenIDConnectProvider",
            OpenIDConnectProviderArn=kube,
            ClientID="sts",
        )
        == {}
    )
    assert (
        do(
            "iam",
            "RemoveClientIDFromOpenIDConnectProvider",
            OpenIDConnectProviderArn=kube,
            ClientID="authbridge",
        )
        == {}
    )
    shown = do("iam", "GetOpenIDConnectProvider", OpenIDConnectProviderArn=kube)
    assert shown["Url"] == "kube.prod.example" and shown["ClientIDList"] == ["sts"]
    assert len(shown["CaCertificateFingerprints"]) == 1 and "SignIn" not in shown
    sign_in = do(
        "iam",
        "UpdateOpenIDConnectProviderSignIn",
        OpenIDConnectProviderArn=kube,
        DisplayName="Kube SSO",
        ClientID="sts",
        Scopes=["groups"],
    )["SignIn"]
    assert sign_in["ClientSecretSet"] is False and sign_in["Scopes"] == ["openid", "groups"]
    assert sign_in["RedirectUri"].endswith("/login/upstream/callback")
    shown = do("iam", "GetOpenIDConnectProvider", OpenIDConnectProviderArn=kube)
    assert shown["SignIn"] == sign_in
    assert do("iam", "DeleteOpenIDConnectProviderSignIn", OpenIDConnectProviderArn=kube) == {}
    irsa = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": kube},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {"kube.prod.example:aud": "sts"}},
            }
        ],
    }
    pods = do("iam", "CreateRole", RoleName="Pods", AssumeRolePolicyDocument=json.dumps(irsa))
    assert pods["Role"]["AssumeRolePolicyDocument"] == irsa
    irsa["Statement"][0]["Condition"]["StringEquals"]["kube.prod.example:sub"] = "x"
    updated = do("iam", "UpdateAssumeRolePolicy", RoleName="Pods", PolicyDocument=irsa)
    assert updated["Role"]["AssumeRolePolicyDocument"] == irsa
    assert do("iam", "DeleteRole", RoleName="Pods") == {}
    assert do("iam", "DeleteOpenIDConnectProvider", OpenIDConnectProviderArn=kube) == {}
    assert do("iam", "DeleteRole", RoleName="Ops") == {}
    # access keys
    new = do("iam", "CreateAccessKey", UserName="carol")["AccessKey"]
    assert len(new["SecretAccessKey"]) == 40 and new["Status"] == "Active"
    listed = do("iam", "ListAccessKeys", UserName="carol")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [new["AccessKeyId"]]
    assert "SecretAccessKey" not in listed[0]
    key_id = new["AccessKeyId"]
    updated = do("iam", "UpdateAccessKey", AccessKeyId=key_id, Status="Inactive", UserName="carol")
    assert updated["AccessKey"]["Status"] == "Inactive"
    assert do("iam", "DeleteAccessKey", AccessKeyId=key_id) == {}
    assert do("iam", "DeleteUser", UserName="carol", Force=True) == {}

    # access entries
    entry = do(
        "access",
        "CreateAccessEntry",
        clusterName="prod",
        principalArn=world.alice.arn,
        username="alice",
        kubernetesGroups=["devs"],
    )["accessEntry"]
    assert entry["principalArn"] == world.alice.arn and entry["kubernetesGroups"] == ["devs"]
    assert do(
        "access", "DescribeAccessEntry", clusterName="prod", principalArn=world.alice.arn
    ) == {"accessEntry": entry}
    assert do("access", "ListAccessEntries", clusterName="prod") == {
        "accessEntries": [world.alice.arn]
    }
    associated = do(
        "access",
        "AssociateAccessPolicy",
        clusterName="prod",
        principalArn=world.alice.arn,
        policyArn="view",
        accessScope={"type": "namespace", "namespaces": ["team-*"]},
    )
    assert associated["associatedAccessPolicy"]["accessScope"] == {
        "type": "namespace",
        "namespaces": ["team-*"],
    }
    listed_policies = do(
        "access", "ListAssociatedAccessPolicies", clusterName="prod", principalArn=world.alice.arn
    )
    assert [p["policyArn"] for p in listed_policies["associatedAccessPolicies"]] == [
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    ]
    assert (
        do(
            "access",
            "DisassociateAccessPolicy",
            clusterName="prod",
            principalArn=world.alice.arn,
            policyArn="view",
        )
        == {}
    )
    assert "AmazonEKSEditPolicy" in {
        p["name"] for p in do("access", "ListAccessPolicies")["accessPolicies"]
    }
    assert do("access", "DeleteAccessEntry", clusterName="prod", principalArn=world.alice.arn) == {}
    mode = do(
        "access",
        "UpdateClusterConfig",
        clusterName="prod",
        accessConfig={"authenticationMode": "API"},
    )
    assert mode == {"cluster": {"name": "prod", "accessConfig": {"authenticationMode": "API"}}}
    assert do("access", "DescribeCluster", clusterName="prod") == mode

    # signing keys (files)
    before = do("keys", "ListSigningKeys")
    assert before["Source"].startswith("files: ") and len(before["Keys"]) == 1
    active = before["Keys"][0]["kid"]
    jwks = do("keys", "ExportSigningKeys")
    assert [k["kid"] for k in jwks["keys"]] == [active]
    assert not any("d" in k for k in jwks["keys"])  # public keys only
    rotated = do("keys", "RotateSigningKey", Algorithm="ES256")["Key"]
    assert rotated["state"] == "pending"
    retired = do("keys", "RetireSigningKey", KeyId=rotated["kid"])["Key"]
    assert retired["state"] == "retired"
    # RevokeSigningKey acts on keys in the store: here a KeyStoreError (and in the store
    # test below, a revocation).
    seen.add("RevokeSigningKey")
    api_error(
        call(client, "keys", "RevokeSigningKey", admin, KeyId=active, Reason="compromised"),
        409,
        "KeyStoreError",
        "keySource is files",
    )

    # The policy and sign-in actions have their own (test_every_policy_action_answers,
    # tests/web/test_admin_api_signin.py).
    assert seen == {a.name for a in ALL_ACTIONS} - {
        a.name for a in (*policies.ACTIONS, *signin.ACTIONS)
    }


def test_every_policy_action_answers(
    client: FlaskClient,
    admin: dict[str, str],
    world: World,
    app_store: SqlStore,
    settings: Settings,
    tmp_path: Path,
) -> None:
    seen: set[str] = set()

    def do(action: str, **params: Any) -> Any:
        seen.add(action)
        return ok(client, "iam", action, admin, **params)

    read = policy({"Sid": "Read", "Effect": "Allow", "Action": "iam:Get*", "Resource": "*"})
    created = do(
        "CreatePolicy",
        PolicyName="ReadIam",
        PolicyDocument=json.dumps(read),
        Path="/ops/",
        Description="read",
    )
    arn = created["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/ops/ReadIam"
    assert created["Policy"]["DefaultVersionId"] == "v1"
    assert do("GetPolicy", PolicyArn=arn)["Policy"]["PolicyName"] == "ReadIam"
    local = do("ListPolicies", Scope="Local")["Policies"]
    assert [p["PolicyName"] for p in local] == ["ReadIam"]
    assert "AdministratorAccess" in {
        p["PolicyName"] for p in do("ListPolicies", Scope="AWS")["Policies"]
    }
    v2 = do("CreatePolicyVersion", PolicyArn=arn, PolicyDocument=read, SetAsDefault=False)
    assert (
        v2["PolicyVersion"]["VersionId"] == "v2"
        and v2["PolicyVersion"]["IsDefaultVersion"] is False
    )
    assert (
        do("GetPolicyVersion", PolicyArn=arn, VersionId="v2")["PolicyVersion"]["Document"] == read
    )
    assert [v["VersionId"] for v in do("ListPolicyVersions", PolicyArn=arn)["Versions"]] == [
        "v2",
        "v1",
    ]
    assert do("SetDefaultPolicyVersion", PolicyArn=arn, VersionId="v2") == {}
    assert do("DeletePolicyVersion", PolicyArn=arn, VersionId="v1") == {}
    for kind, name_field, name in (
        ("User", "UserName", "alice"),
        ("Group", "GroupName", "devs"),
        ("Role", "RoleName", "Dev"),
    ):
        who = {name_field: name}
        assert do(f"Put{kind}Policy", **who, PolicyName="Inline", PolicyDocument=read) == {}
        assert do(f"Get{kind}Policy", **who, PolicyName="Inline") == {
            **who,
            "PolicyName": "Inline",
            "PolicyDocument": read,
        }
        assert do(f"List{kind}Policies", **who) == {"PolicyNames": ["Inline"]}
        assert do(f"Delete{kind}Policy", **who, PolicyName="Inline") == {}
        assert do(f"Attach{kind}Policy", **who, PolicyArn=arn) == {}
        attached = do(f"ListAttached{kind}Policies", **who)["AttachedPolicies"]
        assert attached == [{"PolicyName": "ReadIam", "PolicyArn": arn}]
        assert do(f"Detach{kind}Policy", **who, PolicyArn=arn) == {}
    for kind, who in (("User", {"UserName": "alice"}), ("Role", {"RoleName": "Dev"})):
        assert do(f"Tag{kind}", **who, Tags=[{"Key": "team", "Value": "platform"}]) == {}
        assert do(f"List{kind}Tags", **who) == {"Tags": [{"Key": "team", "Value": "platform"}]}
        assert do(f"Untag{kind}", **who, TagKeys=["team"]) == {}
    simulated = do(
        "SimulatePrincipalPolicy",
        PolicySourceArn=world.bob.arn,
        ActionNames=["iam:CreateUser"],
        ResourceArns=["*"],
        ContextEntries=[
            {
                "ContextKeyName": "aws:SourceIp",
                "ContextKeyValues": ["10.0.0.1"],
                "ContextKeyType": "ip",
            }
        ],
    )
    [result] = simulated["EvaluationResults"]
    assert result["EvalDecision"] == "allowed"
    assert result["MatchedStatements"][0]["SourcePolicyId"] == ADMINISTRATOR
    assert do("DeletePolicy", PolicyArn=arn) == {}
    assert seen == {a.name for a in policies.ACTIONS}


def test_policy_actions_answer_what_the_cli_prints(
    tmp_path: Path, client: FlaskClient, admin: dict[str, str], world: World, settings: Settings
) -> None:
    dsn = f"sqlite:///{tmp_path}/web/authbridge.db"
    read = policy({"Effect": "Allow", "Action": "iam:List*", "Resource": "*"})
    arn = ok(client, "iam", "CreatePolicy", admin, PolicyName="Lister", PolicyDocument=read)[
        "Policy"
    ]["Arn"]
    ok(
        client,
        "iam",
        "PutUserPolicy",
        admin,
        UserName="alice",
        PolicyName="Mine",
        PolicyDocument=read,
    )
    ok(client, "iam", "AttachRolePolicy", admin, RoleName="Dev", PolicyArn=arn)
    ok(client, "iam", "TagUser", admin, UserName="alice", Tags=[{"Key": "k", "Value": "v"}])
    pairs = [
        (("GetPolicy", {"PolicyArn": arn}), ("get-policy", "--policy-arn", arn)),
        (("ListPolicies", {"Scope": "Local"}), ("list-policies", "--scope", "Local")),
        (("ListPolicyVersions", {"PolicyArn": arn}), ("list-policy-versions", "--policy-arn", arn)),
        (
            ("GetPolicyVersion", {"PolicyArn": arn, "VersionId": "v1"}),
            ("get-policy-version", "--policy-arn", arn, "--version-id", "v1"),
        ),
        (
            ("GetUserPolicy", {"UserName": "alice", "PolicyName": "Mine"}),
            ("get-user-policy", "--user-name", "alice", "--policy-name", "Mine"),
        ),
        (
            ("ListUserPolicies", {"UserName": "alice"}),
            ("list-user-policies", "--user-name", "alice"),
        ),
        (
            ("ListAttachedRolePolicies", {"RoleName": "Dev"}),
            ("list-attached-role-policies", "--role-name", "Dev"),
        ),
        (("ListUserTags", {"UserName": "alice"}), ("list-user-tags", "--user-name", "alice")),
    ]
    for (action, params), argv in pairs:
        assert ok(client, "iam", action, admin, **params) == run_cli(settings, dsn, "iam", *argv), (
            action
        )
    simulated = ok(
        client,
        "iam",
        "SimulatePrincipalPolicy",
        admin,
        PolicySourceArn=world.alice.arn,
        ActionNames=["iam:ListUsers"],
    )
    printed = run_cli(
        settings,
        dsn,
        "iam",
        "simulate-principal-policy",
        "--policy-source-arn",
        world.alice.arn,
        "--action-names",
        "iam:ListUsers",
    )
    assert simulated == printed


def test_a_malformed_policy_document_names_the_statement(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    bad = policy({"Sid": "Oops", "Effect": "Permit", "Action": "iam:*", "Resource": "*"})
    message = api_error(
        call(client, "iam", "CreatePolicy", admin, PolicyName="Bad", PolicyDocument=bad),
        400,
        "MalformedPolicyDocument",
        "Statement[0]",
        "Effect",
    )
    assert "Oops" in message
    api_error(
        call(
            client,
            "iam",
            "PutUserPolicy",
            admin,
            UserName="alice",
            PolicyName="X",
            PolicyDocument="{not json",
        ),
        400,
        "MalformedPolicyDocument",
    )
    api_error(
        call(client, "iam", "CreatePolicy", admin, PolicyName="Bad", PolicyDocument=["x"]),
        400,
        "ValidationError",
        "PolicyDocument",
    )


def test_store_keys_are_revoked_through_the_api(
    tmp_path: Path, make_app: Callable[..., Flask], app_store: SqlStore, clock: Clock, world: World
) -> None:
    kek = tmp_path / "kek"
    kek.write_bytes(b"k" * 32)
    kek.chmod(0o600)
    settings = make_settings_with(tmp_path, key_source="store", kek_file=str(kek))
    place = admin_keys.key_place(settings, lambda: app_store)
    first = place.source.init("ES256", now=clock.now - 3600)
    app = make_app(settings=settings, keys=key_module.KeyRing(place.source, clock=clock))
    client = app.test_client()
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    headers = key_auth(world.bob_key)
    listed = ok(client, "keys", "ListSigningKeys", headers)
    assert listed["Source"].startswith("store: ")
    api_error(
        call(client, "keys", "RevokeSigningKey", headers, KeyId=first.kid, Reason="compromised"),
        409,
        "KeyStoreError",
    )  # the key that signs now, without Rotate
    revoked = ok(
        client,
        "keys",
        "RevokeSigningKey",
        headers,
        KeyId=first.kid,
        Reason="compromised",
        Rotate=True,
    )
    assert revoked["Key"]["state"] == "revoked" and revoked["Reason"] == "compromised"
    assert revoked["NewKey"]["state"] == "active"


def make_settings_with(tmp_path: Path, **flags: Any) -> Settings:
    from tests.web.conftest import make_settings

    return make_settings(tmp_path, **flags)


def run_cli(settings: Settings, store_dsn: str, *argv: str) -> Any:
    proc = subprocess.run(
        [AUTHBRIDGE, "-o", "json", *argv],
        env=clean_env(AUTHBRIDGE_STORE=store_dsn, AUTHBRIDGE_KEYS_DIR=str(settings.keys_dir)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_api_answers_what_the_cli_prints(
    tmp_path: Path,
    client: FlaskClient,
    admin: dict[str, str],
    world: World,
    app_store: SqlStore,
    settings: Settings,
) -> None:
    dsn = f"sqlite:///{tmp_path}/web/authbridge.db"
    ok(client, "access", "CreateAccessEntry", admin, clusterName="prod", principalArn=world.bob.arn)
    pairs = [
        (("iam", "ListUsers", {}), ("iam", "list-users")),
        (("iam", "GetGroup", {"GroupName": "devs"}), ("iam", "get-group", "--group-name", "devs")),
        (("iam", "GetRole", {"RoleName": "Admin"}), ("iam", "get-role", "--role-name", "Admin")),
        (
            ("iam", "ListAccessKeys", {"UserName": "alice"}),
            ("iam", "list-access-keys", "--user-name", "alice"),
        ),
        (
            ("access", "ListAccessEntries", {"clusterName": "prod"}),
            ("access", "list-entries", "--cluster-id", "prod"),
        ),
        (
            (
                "access",
                "DescribeAccessEntry",
                {"clusterName": "prod", "principalArn": world.bob.arn},
            ),
            ("access", "describe-entry", "--cluster-id", "prod", "--principal-arn", world.bob.arn),
        ),
        (("access", "ListAccessPolicies", {}), ("access", "list-policies")),
        (("keys", "ListSigningKeys", {}), ("keys", "list")),
    ]
    for (surface, action, params), argv in pairs:
        assert ok(client, surface, action, admin, **params) == run_cli(settings, dsn, *argv), action


# --------------------------------------------------------------------------- error codes


def test_store_errors_map_to_aws_codes(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    api_error(
        call(client, "iam", "GetUser", admin, UserName="nobody"), 404, "NoSuchEntity", "nobody"
    )
    api_error(
        call(client, "iam", "CreateUser", admin, UserName="ALICE"), 409, "EntityAlreadyExists"
    )
    api_error(call(client, "iam", "DeleteUser", admin, UserName="alice"), 409, "DeleteConflict")
    ok(client, "iam", "CreateAccessKey", admin, UserName="alice")
    api_error(call(client, "iam", "CreateAccessKey", admin, UserName="alice"), 409, "LimitExceeded")
    api_error(
        call(
            client,
            "iam",
            "CreateRole",
            admin,
            RoleName="Nobody",
            Trust=[f"arn:aws:iam::{ACCOUNT}:user/ghost"],
        ),
        400,
        "MalformedPolicyDocument",
    )
    api_error(
        call(client, "iam", "CreateUser", admin, UserName="bad name"),
        400,
        "ValidationError",
        "UserName",
    )
    api_error(
        call(
            client,
            "access",
            "CreateAccessEntry",
            admin,
            clusterName="prod",
            principalArn="arn:nope",
        ),
        400,
        "ValidationError",
    )
    api_error(
        call(
            client,
            "access",
            "CreateAccessEntry",
            admin,
            clusterName="prod",
            principalArn=world.alice.arn,
            username="system:admin",
        ),
        400,
        "ValidationError",
    )
    active = ok(client, "keys", "ListSigningKeys", admin)["Keys"][0]["kid"]
    api_error(
        call(client, "keys", "RetireSigningKey", admin, KeyId=active),
        409,
        "KeyStoreError",
        "active",
    )


def test_unknown_action_is_invalid_action(client: FlaskClient, admin: dict[str, str]) -> None:
    message = api_error(call(client, "iam", "CreateAccessEntry", admin), 400, "InvalidAction")
    assert "/api/iam" in message
    api_error(call(client, "keys", "ListUsers", admin), 400, "InvalidAction")
    api_error(call(client, "iam", "CreateAccount", admin), 400, "InvalidAction")  # CLI only
    api_error(call(client, "iam", "listusers", admin), 400, "InvalidAction")  # names are exact


def test_not_post_and_unknown_paths(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.get("/api/iam", headers=admin)
    api_error(response, 405, "MethodNotAllowed")
    assert response.headers["Allow"] == "POST"
    api_error(client.delete("/api/keys", headers=admin), 405, "MethodNotAllowed")
    assert client.post("/api/other", json={"Action": "ListUsers"}, headers=admin).status_code == 404


def test_store_unavailable_is_503_without_the_dsn(
    make_app: Callable[..., Flask], app_store: SqlStore, world: World
) -> None:
    flaky = FlakyStore(app_store)
    client = make_app(store=flaky).test_client()
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    flaky.down = True
    message = api_error(
        call(client, "iam", "ListUsers", key_auth(world.bob_key)), 503, "ServiceUnavailable"
    )
    assert "hunter2" not in message


class _Exploding:
    """An authorizer whose evaluation fails unexpectedly (a bug, say)."""

    def principal_tags(self, caller: Any) -> dict[str, str]:
        return {}

    def decide(self, *args: Any) -> Any:
        raise RuntimeError("boom at /secret/path")


def test_an_unexpected_error_is_a_generic_500_and_logged(
    make_app: Callable[..., Flask], world: World, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    app.extensions["authbridge.api"] = _Exploding()
    with caplog.at_level(logging.ERROR, logger="authbridge.web.api"):
        response = call(app.test_client(), "iam", "ListUsers", key_auth(world.bob_key))
    message = api_error(response, 500, "InternalFailure")
    assert "boom" not in message and "secret" not in message
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


# --------------------------------------------------------------------------- strict parsing


HOSTILE_BODIES: list[tuple[str, bytes, str]] = [
    ("not JSON", b"{nope", "body"),
    ("an array", b'[{"Action": "ListUsers"}]', "body"),
    ("a string", b'"ListUsers"', "body"),
    ("empty", b"", "body"),
    ("a name twice", b'{"Action": "ListUsers", "Action": "DeleteUser"}', "Action"),
    ("NaN", b'{"Action": "ListUsers", "PathPrefix": NaN}', "body"),
    (
        "deep nesting",
        b'{"Action": "ListUsers", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "body",
    ),
    ("a huge number", b'{"Action": "ListUsers", "x": ' + b"9" * 5000 + b"}", "body"),
    ("not UTF-8", b'{"Action": "List\xffUsers"}', "body"),
    ("no Action", b'{"UserName": "alice"}', "Action"),
    ("Action not a string", b'{"Action": 7}', "Action"),
    ("Action null", b'{"Action": null}', "Action"),
]


@pytest.mark.parametrize(
    ("what", "body", "field"), HOSTILE_BODIES, ids=[h[0] for h in HOSTILE_BODIES]
)
def test_hostile_bodies_are_validation_errors(
    client: FlaskClient, admin: dict[str, str], what: str, body: bytes, field: str
) -> None:
    response = client.post("/api/iam", data=body, content_type="application/json", headers=admin)
    assert api_error(response, 400, "ValidationError").startswith(field), what


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", ""],
)
def test_only_json_bodies_are_read(
    client: FlaskClient, admin: dict[str, str], content_type: str
) -> None:
    response = client.post(
        "/api/iam", data=b'{"Action": "ListUsers"}', headers={**admin, "Content-Type": content_type}
    )
    api_error(response, 400, "ValidationError", "Content-Type")
    response = client.post(
        "/api/iam",
        data=b'{"Action": "ListUsers"}',
        headers={**admin, "Content-Type": "Application/JSON; charset=UTF-8"},
    )
    assert response.status_code == 200


WRONG_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("ListUsers", {"Bogus": 1}, "Bogus: is not a parameter"),
    ("CreateUser", {}, "UserName: is required"),
    ("CreateUser", {"UserName": 1}, "UserName: must be a string"),
    ("CreateUser", {"UserName": ["alice"]}, "UserName: must be a string"),
    ("CreateUser", {"UserName": "x" * 3000}, "UserName: must be at most 2048"),
    ("CreateUser", {"UserName": "a", "Tags": {"team": "x"}}, "Tags: must be a list"),
    (
        "CreateUser",
        {"UserName": "a", "Tags": [{"Key": "k", "Value": 1}]},
        "Tags[0].Value: must be a string",
    ),
    ("CreateUser", {"UserName": "a", "Tags": [{"Key": "k", "Extra": "x"}]}, "Tags[0].Extra"),
    (
        "CreateUser",
        {"UserName": "a", "Tags": [{"Key": "k"}, {"Key": "k"}]},
        "Tags[1].Key: is given twice",
    ),
    ("DeleteUser", {"UserName": "alice", "Force": "yes"}, "Force: must be true or false"),
    ("DeleteUser", {"UserName": "alice", "Force": 1}, "Force: must be true or false"),
    ("UpdateUser", {"UserName": "alice"}, "Enabled: is required"),
    (
        "CreateRole",
        {"RoleName": "R", "Trust": "arn:aws:iam::111122223333:root"},
        "Trust: must be a list",
    ),
    ("CreateRole", {"RoleName": "R", "Trust": [1]}, "Trust[0]: must be a string"),
    (
        "CreateRole",
        {"RoleName": "R", "Trust": [], "MaxSessionDuration": True},
        "MaxSessionDuration: must be an integer",
    ),
    (
        "CreateRole",
        {"RoleName": "R", "Trust": [], "MaxSessionDuration": 1.5},
        "MaxSessionDuration: must be an integer",
    ),
    (
        "UpdateAccessKey",
        {"AccessKeyId": "AKIAX", "Status": "Deleted"},
        "Status: must be one of Active, Inactive",
    ),
]


@pytest.mark.parametrize(("action", "params", "says"), WRONG_PARAMS)
def test_parameters_are_checked_strictly(
    client: FlaskClient, admin: dict[str, str], action: str, params: dict[str, Any], says: str
) -> None:
    api_error(call(client, "iam", action, admin, **params), 400, "ValidationError", says)


def test_access_objects_are_checked_strictly(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    base = {"clusterName": "prod", "principalArn": world.alice.arn, "policyArn": "view"}
    for scope, says in [
        ("cluster", "accessScope: must be an object"),
        ({"type": "everything"}, "accessScope.type"),
        ({"type": "namespace", "namespaces": "team-a"}, "accessScope.namespaces"),
        ({"type": "cluster", "extra": 1}, "accessScope: has fields other"),
    ]:
        response = call(client, "access", "AssociateAccessPolicy", admin, **base, accessScope=scope)
        api_error(response, 400, "ValidationError", says)
    for config in [{"authenticationMode": 1}, {"mode": "API"}, "API"]:
        response = call(
            client, "access", "UpdateClusterConfig", admin, clusterName="prod", accessConfig=config
        )
        api_error(response, 400, "ValidationError", "accessConfig")
    api_error(
        call(client, "access", "DescribeCluster", admin, clusterName="a/b"),
        400,
        "ValidationError",
        "clusterName",
    )
    api_error(
        call(client, "keys", "RetireSigningKey", admin, KeyId="../x"),
        400,
        "ValidationError",
        "KeyId",
    )


def test_oversized_bodies_are_refused(client: FlaskClient, admin: dict[str, str]) -> None:
    big = json.dumps({"Action": "ListUsers", "PathPrefix": "/" + "a" * 70_000 + "/"}).encode()
    response = client.post("/api/iam", data=big, content_type="application/json", headers=admin)
    api_error(response, 413, "ValidationError", "body", "65536")
    chunked = client.post(
        "/api/iam",
        input_stream=io.BytesIO(big),
        headers={**admin, "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # chunked: no Content-Length
    )
    api_error(chunked, 413, "ValidationError", "body")
    long_auth = {"Authorization": "Bearer " + "a" * 20_000}
    api_error(call(client, "iam", "ListUsers", long_auth), 431, "ValidationError", "Authorization")


def test_a_secret_pasted_as_a_field_name_is_not_echoed(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    secret = world.alice_key.secret_access_key
    message = api_error(
        call(client, "iam", "ListUsers", admin, **{secret: 1}), 400, "ValidationError"
    )
    assert secret not in message
    # Secret-shaped, and a valid user name: not found, and not quoted back.
    message = api_error(call(client, "iam", "GetUser", admin, UserName=secret), 404, "NoSuchEntity")
    assert secret not in message and "[redacted]" in message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
BODIES = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["Action", "UserName", "Path", "Force", "Tags", "Trust", "x"])
        | st.text(max_size=8),
        JSON_VALUES,
        max_size=5,
    ).map(lambda d: json.dumps(d).encode()),
    st.builds(
        lambda action, params: json.dumps({"Action": action, **params}).encode(),
        st.sampled_from([a.name for a in ALL_ACTIONS] + ["Nope"]),
        st.dictionaries(
            st.sampled_from(sorted({p.name for a in ALL_ACTIONS for p in a.params})),
            JSON_VALUES,
            max_size=4,
        ),
    ),
)


@given(
    raw=BODIES,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/json; charset=utf-8"]
    ),
)
def test_parse_body_raises_only_documented_errors(raw: bytes, content_type: str) -> None:
    try:
        doc = parse_body(raw, content_type)
    except (InputError, BodyTooLarge):
        return
    assert isinstance(doc, dict) and isinstance(doc["Action"], str)


@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=BODIES)
def test_no_body_ever_gets_a_500(raw: bytes, client: FlaskClient, admin: dict[str, str]) -> None:
    for surface in ("iam", "access"):
        response = client.post(
            f"/api/{surface}", data=raw, content_type="application/json", headers=admin
        )
        assert response.status_code < 500, response.get_json()
        assert response.mimetype == "application/json"
        if response.status_code >= 400:
            assert set(response.get_json()["Error"]) == {"Code", "Message"}


# --------------------------------------------------------------------------- authentication


def test_no_credentials(client: FlaskClient) -> None:
    response = client.post("/api/iam", json={"Action": "ListUsers"})
    api_error(response, 401, "MissingAuthenticationToken", "no credentials", ADMIN)
    api_error(
        call(client, "iam", "ListUsers", {"Authorization": "Digest x"}), 401, "InvalidClientTokenId"
    )
    api_error(
        call(client, "iam", "ListUsers", {"Authorization": "Bearer "}), 401, "InvalidClientTokenId"
    )


def test_a_cluster_token_is_refused(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    cluster_token = user_token(client, world.bob_key, "prod")
    response = call(client, "iam", "ListUsers", bearer(cluster_token))
    api_error(
        response, 401, "InvalidClientTokenId", "a cluster token is not an admin credential", ADMIN
    )


def test_an_sts_token_is_refused(client: FlaskClient, admin: dict[str, str], world: World) -> None:
    response = call(client, "iam", "ListUsers", bearer(sts_token(client, world.bob_key)))
    api_error(response, 401, "InvalidClientTokenId", "not for the admin API", "sts token")


def test_an_admin_token_beside_another_audience_is_refused(
    client: FlaskClient,
    admin: dict[str, str],
    world: World,
    keyring: key_module.KeyRing,
    clock: Clock,
) -> None:
    good = claims_of(admin["Authorization"].removeprefix("Bearer "))
    mixed = _forge(good, keyring, clock, audience=[ADMIN, "prod"])
    api_error(
        call(client, "iam", "ListUsers", bearer(mixed)),
        401,
        "InvalidClientTokenId",
        "together with others",
    )


def _forge(
    claims: dict[str, Any],
    keyring: key_module.KeyRing,
    clock: Clock,
    *,
    audience: str | list[str] = ADMIN,
    issuer: str = ISSUER,
) -> str:
    from authbridge.tokens import Principal

    principal = Principal(
        arn=claims["arn"],
        canonical_arn=claims["sub"],
        account_id=claims["account"],
        principal_id=claims["principal_id"],
        access_key_id=claims.get("access_key_id"),
    )
    return mint(
        principal, keys=keyring.current(), issuer=issuer, audience=audience, now=clock.now
    ).token


def test_an_expired_token_is_refused(
    client: FlaskClient, admin: dict[str, str], clock: Clock
) -> None:
    assert call(client, "iam", "ListUsers", admin).status_code == 200
    clock.advance(3600)
    api_error(call(client, "iam", "ListUsers", admin), 401, "ExpiredToken", "expired")


def test_a_token_of_another_issuer_is_refused(
    client: FlaskClient, admin: dict[str, str], keyring: key_module.KeyRing, clock: Clock
) -> None:
    claims = claims_of(admin["Authorization"].removeprefix("Bearer "))
    other = _forge(claims, keyring, clock, issuer="https://evil.example")
    api_error(call(client, "iam", "ListUsers", bearer(other)), 401, "InvalidClientTokenId", "iss")


def test_a_tampered_token_is_refused(client: FlaskClient, admin: dict[str, str]) -> None:
    token = admin["Authorization"].removeprefix("Bearer ")
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"
    api_error(call(client, "iam", "ListUsers", bearer(tampered)), 401, "InvalidClientTokenId")


def test_a_revoked_token_is_refused(client: FlaskClient, admin: dict[str, str]) -> None:
    token = admin["Authorization"].removeprefix("Bearer ")
    assert call(client, "iam", "ListUsers", admin).status_code == 200
    assert client.post("/oauth2/revoke", data={"token": token}).status_code == 200
    api_error(call(client, "iam", "ListUsers", admin), 401, "InvalidClientTokenId", "revoked")


def test_a_role_session_works_until_its_source_user_is_disabled(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    app_store.attach_policy(ACCOUNT, "role", "Admin", ADMINISTRATOR)
    exchanged = exchange(
        client, sts_token(client, world.alice_key), world.admin.arn, audience=ADMIN
    )
    assert exchanged.status_code == 200, exchanged.get_json()
    token = exchanged.get_json()["access_token"]
    assert claims_of(token)["aud"] == ADMIN and "k8s_username" not in claims_of(token)
    assert [u["UserName"] for u in ok(client, "iam", "ListUsers", bearer(token))["Users"]] == [
        "alice",
        "bob",
    ]
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    api_error(call(client, "iam", "ListUsers", bearer(token)), 401, "InvalidClientTokenId", "alice")


def test_a_role_session_for_the_admin_api_from_an_access_key(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    app_store.attach_policy(ACCOUNT, "role", "Admin", READ_ONLY)
    response = exchange(
        client, "", world.admin.arn, audience=ADMIN, headers=key_auth(world.alice_key)
    )
    assert response.status_code == 200, response.get_json()
    session = bearer(response.get_json()["access_token"])
    ok(client, "iam", "GetRole", session, RoleName="Admin")
    message = api_error(
        call(client, "iam", "CreateUser", session, UserName="eve"), 403, "AccessDenied"
    )
    assert message.startswith(
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice-session is not authorized"
    )


def test_bad_basic_credentials_then_throttling(client: FlaskClient, world: World) -> None:
    key_id = world.alice_key.key.access_key_id
    api_error(
        call(client, "iam", "ListUsers", basic(key_id, "x" * 40)), 401, "InvalidClientTokenId"
    )
    api_error(
        call(client, "iam", "ListUsers", {"Authorization": "Basic !!!"}),
        401,
        "InvalidClientTokenId",
    )
    for _ in range(40):
        response = call(client, "iam", "ListUsers", basic(key_id, "y" * 40))
        if response.status_code == 429:
            break
    else:
        pytest.fail("never throttled")
    api_error(response, 429, "Throttling", "retry after")
    assert int(response.headers["Retry-After"]) >= 1
    # Even the right secret waits now (from this address): nothing to gain by guessing fast.
    api_error(call(client, "iam", "ListUsers", key_auth(world.alice_key)), 429, "Throttling")


def test_bad_tokens_are_throttled_too(client: FlaskClient) -> None:
    for _ in range(40):
        response = call(client, "iam", "ListUsers", bearer("not.a.token"))
        if response.status_code == 429:
            break
    else:
        pytest.fail("never throttled")
    api_error(response, 429, "Throttling")


def test_the_token_endpoint_mints_admin_tokens(client: FlaskClient, world: World) -> None:
    response = session_token(client, world.alice_key, ADMIN)
    assert response.status_code == 200, response.get_json()
    claims = claims_of(response.get_json()["access_token"])
    assert claims["aud"] == ADMIN and "k8s_username" not in claims
    token = response.get_json()["access_token"]
    # An admin token is for the admin API only: not a cluster credential, not a subject token.
    verdict = client.get("/verify", headers=bearer(token)).get_json()
    assert verdict["authenticated"] is False
    refused = exchange(client, token, world.admin.arn)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert claims_of(user_token(client, world.alice_key, STS))["aud"] == STS


# --------------------------------------------------------------------------- authorization


def test_no_policy_no_call(client: FlaskClient, world: World) -> None:
    response = call(client, "iam", "ListUsers", key_auth(world.alice_key))
    message = api_error(response, 403, "AccessDenied")
    assert message == (
        f"User: {world.alice.arn} is not authorized to perform: iam:ListUsers on resource: *"
        " because no identity-based policy allows the iam:ListUsers action"
    )


def test_read_only_lists_but_cannot_create(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    app_store.attach_policy(ACCOUNT, "user", "alice", READ_ONLY)
    headers = bearer(user_token(client, world.alice_key, ADMIN))
    assert len(ok(client, "iam", "ListUsers", headers)["Users"]) == 2
    ok(client, "access", "ListAccessEntries", headers, clusterName="prod")
    ok(client, "keys", "ListSigningKeys", headers)
    message = api_error(
        call(client, "iam", "CreateUser", headers, UserName="eve"), 403, "AccessDenied"
    )
    assert f"iam:CreateUser on resource: arn:aws:iam::{ACCOUNT}:user/eve" in message
    api_error(call(client, "keys", "RotateSigningKey", headers), 403, "AccessDenied")
    api_error(
        call(client, "iam", "CreateAccessKey", headers, UserName="alice"), 403, "AccessDenied"
    )
    assert [u.name for u in app_store.list_users(ACCOUNT)] == ["alice", "bob"]


def test_self_manage_credentials_only_touches_own_keys(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    app_store.create_user(ACCOUNT, "carol")
    carol_key = app_store.create_access_key(ACCOUNT, "carol")
    app_store.attach_policy(ACCOUNT, "user", "bob", SELF_MANAGE)
    headers = key_auth(world.bob_key)
    new = ok(client, "iam", "CreateAccessKey", headers, UserName="bob")["AccessKey"]
    ok(client, "iam", "UpdateAccessKey", headers, AccessKeyId=new["AccessKeyId"], Status="Inactive")
    ok(client, "iam", "DeleteAccessKey", headers, AccessKeyId=new["AccessKeyId"])
    assert (
        len(ok(client, "iam", "ListAccessKeys", headers, UserName="bob")["AccessKeyMetadata"]) == 1
    )
    carol = f"arn:aws:iam::{ACCOUNT}:user/carol"
    for action, params in [
        ("CreateAccessKey", {"UserName": "carol"}),
        ("ListAccessKeys", {"UserName": "carol"}),
        ("UpdateAccessKey", {"AccessKeyId": carol_key.key.access_key_id, "Status": "Inactive"}),
        ("DeleteAccessKey", {"AccessKeyId": carol_key.key.access_key_id}),
    ]:
        message = api_error(call(client, "iam", action, headers, **params), 403, "AccessDenied")
        assert f"on resource: {carol} " in message
    api_error(call(client, "iam", "ListUsers", headers), 403, "AccessDenied")
    assert app_store.get_access_key(carol_key.key.access_key_id).status == "Active"
    # A key id that does not exist tells a caller who may not act on it nothing.
    api_error(
        call(client, "iam", "DeleteAccessKey", headers, AccessKeyId="AKIA" + "A" * 16),
        403,
        "AccessDenied",
    )


def test_an_explicit_deny_beats_administrator_access(
    client: FlaskClient, admin: dict[str, str], app_store: SqlStore
) -> None:
    ok(client, "iam", "CreateAccessKey", admin, UserName="alice")
    app_store.put_inline_policy(
        ACCOUNT,
        "user",
        "bob",
        "NoNewKeys",
        policy({"Effect": "Deny", "Action": "iam:CreateAccessKey", "Resource": "*"}),
    )
    message = api_error(
        call(client, "iam", "CreateAccessKey", admin, UserName="bob"), 403, "AccessDenied"
    )
    assert message.endswith("with an explicit deny in an identity-based policy")
    ok(client, "iam", "ListUsers", admin)  # the rest of AdministratorAccess still holds


def test_conditions_see_mfa_source_address_and_tags(
    client: FlaskClient, world: World, app_store: SqlStore
) -> None:
    app_store.put_inline_policy(
        ACCOUNT,
        "user",
        "bob",
        "Conditional",
        policy(
            {
                "Sid": "FromTheOffice",
                "Effect": "Allow",
                "Action": "iam:ListUsers",
                "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
            {
                "Sid": "Platform",
                "Effect": "Allow",
                "Action": "iam:ListRoles",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:PrincipalTag/team": "platform"}},
            },
            {
                "Sid": "KeysNeedMfa",
                "Effect": "Deny",
                "Action": "iam:ListGroups",
                "Resource": "*",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}},
            },
            {"Sid": "Groups", "Effect": "Allow", "Action": "iam:ListGroups", "Resource": "*"},
            {
                "Sid": "OwnName",
                "Effect": "Allow",
                "Action": "iam:GetUser",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:username": "bob", "aws:userid": world.bob.user_id}
                },
            },
        ),
    )
    headers = key_auth(world.bob_key)
    api_error(call(client, "iam", "ListUsers", headers), 403, "AccessDenied")
    office = client.post(
        "/api/iam",
        json={"Action": "ListUsers"},
        headers=headers,
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert office.status_code == 200, office.get_json()
    api_error(call(client, "iam", "ListRoles", headers), 403, "AccessDenied")
    app_store.tag_principal(ACCOUNT, "user", "bob", {"team": "platform"})
    ok(client, "iam", "ListRoles", headers)
    message = api_error(call(client, "iam", "ListGroups", headers), 403, "AccessDenied")
    assert "explicit deny" in message  # no MFA with an access key
    ok(client, "iam", "GetUser", headers, UserName="alice")


def test_a_key_of_another_account_is_not_found(
    client: FlaskClient, admin: dict[str, str], app_store: SqlStore
) -> None:
    app_store.create_account(OTHER_ACCOUNT)
    app_store.create_user(OTHER_ACCOUNT, "mallory")
    theirs = app_store.create_access_key(OTHER_ACCOUNT, "mallory").key.access_key_id
    for action, params in [
        ("DeleteAccessKey", {"AccessKeyId": theirs}),
        ("UpdateAccessKey", {"AccessKeyId": theirs, "Status": "Inactive"}),
    ]:
        api_error(call(client, "iam", action, admin, **params), 404, "NoSuchEntity", theirs)
    assert app_store.get_access_key(theirs).status == "Active"
    # Their users are not ours to see either: every call acts in the caller's account.
    api_error(call(client, "iam", "GetUser", admin, UserName="mallory"), 404, "NoSuchEntity")
    assert "mallory" not in json.dumps(ok(client, "iam", "ListUsers", admin))


def test_a_key_named_with_the_wrong_user_is_not_found(
    client: FlaskClient, admin: dict[str, str], world: World
) -> None:
    alices = world.alice_key.key.access_key_id
    response = call(client, "iam", "DeleteAccessKey", admin, AccessKeyId=alices, UserName="bob")
    api_error(response, 404, "NoSuchEntity")
    ok(client, "iam", "DeleteAccessKey", admin, AccessKeyId=alices, UserName="alice")


# --------------------------------------------------------------------------- audit


def test_every_call_writes_an_audit_line(
    tmp_path: Path,
    make_app: Callable[..., Flask],
    world: World,
    app_store: SqlStore,
    settings: Settings,
) -> None:
    audit_file = tmp_path / "audit.log"
    app = make_app()
    app.extensions["authbridge.audit"] = AuditLog(audit_file)
    client = app.test_client()
    app_store.attach_policy(ACCOUNT, "user", "bob", ADMINISTRATOR)
    created = call(client, "iam", "CreateAccessKey", key_auth(world.bob_key), UserName="alice")
    denied = call(client, "iam", "ListUsers", key_auth(world.alice_key))
    refused = call(client, "iam", "ListUsers", basic(world.bob_key.key.access_key_id, "z" * 40))
    lines = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["admin_call"] * 3
    first, second, third = lines
    assert first["request_id"] == created.headers["x-amzn-RequestId"]
    assert first["outcome"] == "allowed" and first["reason"] == "ok"
    assert first["caller"] == world.bob.arn and first["principal_id"] == world.bob.user_id
    assert first["source_identity"] == world.bob.user_id
    assert first["access_key_id"] == world.bob_key.key.access_key_id
    assert first["action"] == "iam:CreateAccessKey" and first["targets"] == [world.alice.arn]
    assert first["client"] == "127.0.0.1"
    secret = created.get_json()["AccessKey"]["SecretAccessKey"]
    assert secret not in audit_file.read_text()
    assert second["request_id"] == denied.headers["x-amzn-RequestId"]
    assert second["outcome"] == "denied" and second["reason"] == "AccessDenied"
    assert second["caller"] == world.alice.arn and second["targets"] == ["*"]
    assert third["outcome"] == "denied" and third["reason"] == "InvalidClientTokenId"
    assert third["caller"] is None and refused.status_code == 401


def test_simulation_acts_in_the_callers_account(
    client: FlaskClient, admin: dict[str, str], app_store: SqlStore
) -> None:
    app_store.create_account(OTHER_ACCOUNT)
    mallory = app_store.create_user(OTHER_ACCOUNT, "mallory")
    response = call(
        client,
        "iam",
        "SimulatePrincipalPolicy",
        admin,
        PolicySourceArn=mallory.arn,
        ActionNames=["iam:ListUsers"],
    )
    api_error(response, 404, "NoSuchEntity", OTHER_ACCOUNT)
    bad = call(
        client, "iam", "SimulatePrincipalPolicy", admin, PolicySourceArn="nope", ActionNames=["x:Y"]
    )
    api_error(bad, 400, "ValidationError", "PolicySourceArn")
