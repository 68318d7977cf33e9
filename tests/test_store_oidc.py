"""OIDC providers and trust policy documents in the store, on SQLite and PostgreSQL.

Covers: a provider's lifecycle (create with client ids, a CA bundle and
tags; get, list, delete; one per URL per account whatever the case of the
host or a trailing slash; at most 100 per account); client ids added and
removed (idempotent, at most 100); a provider of another account or
partition is not found; a role created with a trust policy document (a
Federated principal must be a provider registered in the role's account,
AWS principals must exist and are stored by unique id, shown as their
current ARNs or a deleted one's bare id, which trusts no namesake);
update-assume-role-policy replacing the document whole or not at all;
``--trust`` shorthand writing the same document; a role made before trust
documents (no document stored) reads as its trust list and is evaluated the
same, also in a real version-5 store upgraded in place; the schema is at
least version 8.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from authbridge import pki
from authbridge.errors import (
    EntityAlreadyExists,
    InputError,
    InvalidTrust,
    LimitExceeded,
    MalformedArn,
    MalformedPolicyDocument,
    NoSuchEntity,
)
from authbridge.iam import trust
from authbridge.iam.credentials import Pepper
from authbridge.store import SqlStore, open_store
from authbridge.store.migrations import LATEST_VERSION, MIGRATIONS
from tests.conftest import ACCOUNT, OTHER_ACCOUNT

KUBE_URL = "https://kube.prod.example"
KUBE_ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/kube.prod.example"


def irsa(provider_arn: str = KUBE_ARN, sub: str = "system:serviceaccount:ci:deployer") -> str:
    key = provider_arn.split("oidc-provider/", 1)[1]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{key}:aud": "authbridge", f"{key}:sub": sub}},
                }
            ],
        }
    )


def people(*principals: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                # One principal is a string, as the store gives documents back.
                "Principal": {"AWS": principals[0] if len(principals) == 1 else list(principals)},
                "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            }
        ],
    }


def test_schema_is_at_least_version_8(store: SqlStore) -> None:
    assert LATEST_VERSION >= 8 and store.schema_version() == LATEST_VERSION


def test_provider_lifecycle(store: SqlStore) -> None:
    ca = pki.new_ca("kube").cert_pem.decode()
    made = store.create_open_id_connect_provider(
        ACCOUNT, KUBE_URL, ["authbridge", "sts", "authbridge"], ca_bundle=ca, tags={"team": "a"}
    )
    assert made.arn == KUBE_ARN
    assert made.url == KUBE_URL and made.key == "kube.prod.example"
    assert made.client_ids == ("authbridge", "sts")
    shown = made.to_aws()
    assert shown["Url"] == "kube.prod.example"
    assert shown["ClientIDList"] == ["authbridge", "sts"]
    assert len(shown["CaCertificateFingerprints"]) == 1
    assert shown["Tags"] == [{"Key": "team", "Value": "a"}]
    assert store.get_open_id_connect_provider(ACCOUNT, KUBE_ARN) == made
    github = store.create_open_id_connect_provider(
        ACCOUNT, "https://token.actions.githubusercontent.com", ["sts.amazonaws.com"]
    )
    assert github.ca_bundle is None
    assert [p.arn for p in store.list_open_id_connect_providers(ACCOUNT)] == [KUBE_ARN, github.arn]
    store.delete_open_id_connect_provider(ACCOUNT, KUBE_ARN)
    with pytest.raises(NoSuchEntity, match="does not exist"):
        store.get_open_id_connect_provider(ACCOUNT, KUBE_ARN)
    with pytest.raises(NoSuchEntity):
        store.delete_open_id_connect_provider(ACCOUNT, KUBE_ARN)
    assert [p.arn for p in store.list_open_id_connect_providers(ACCOUNT)] == [github.arn]


def test_one_provider_per_url(store: SqlStore) -> None:
    store.create_open_id_connect_provider(ACCOUNT, KUBE_URL, ["a"])
    for same in (KUBE_URL, "https://KUBE.prod.example", KUBE_URL + "/"):
        with pytest.raises(EntityAlreadyExists, match="already exists"):
            store.create_open_id_connect_provider(ACCOUNT, same, ["b"])
    # The same URL in another account is another provider.
    store.create_account(OTHER_ACCOUNT)
    other = store.create_open_id_connect_provider(OTHER_ACCOUNT, KUBE_URL, ["a"])
    assert other.arn == f"arn:aws:iam::{OTHER_ACCOUNT}:oidc-provider/kube.prod.example"


def test_provider_limit_per_account(store: SqlStore) -> None:
    for i in range(100):
        store.create_open_id_connect_provider(ACCOUNT, f"https://i{i}.example", [])
    with pytest.raises(LimitExceeded, match="100"):
        store.create_open_id_connect_provider(ACCOUNT, "https://one-more.example", [])


def test_client_ids_added_and_removed(store: SqlStore) -> None:
    store.create_open_id_connect_provider(ACCOUNT, KUBE_URL, ["a"])
    assert store.add_client_id_to_open_id_connect_provider(ACCOUNT, KUBE_ARN, "b").client_ids == (
        "a",
        "b",
    )
    assert store.add_client_id_to_open_id_connect_provider(ACCOUNT, KUBE_ARN, "b").client_ids == (
        "a",
        "b",
    )
    gone = store.remove_client_id_from_open_id_connect_provider(ACCOUNT, KUBE_ARN, "a")
    assert gone.client_ids == ("b",)
    assert store.remove_client_id_from_open_id_connect_provider(
        ACCOUNT, KUBE_ARN, "never"
    ).client_ids == ("b",)
    assert store.get_open_id_connect_provider(ACCOUNT, KUBE_ARN).client_ids == ("b",)
    with pytest.raises(InputError, match="printable"):
        store.add_client_id_to_open_id_connect_provider(ACCOUNT, KUBE_ARN, "has space")
    for i in range(99):
        store.add_client_id_to_open_id_connect_provider(ACCOUNT, KUBE_ARN, f"c{i}")
    with pytest.raises(LimitExceeded, match="100 client ids"):
        store.add_client_id_to_open_id_connect_provider(ACCOUNT, KUBE_ARN, "one-more")


def test_provider_of_another_account_or_partition_is_not_found(store: SqlStore) -> None:
    store.create_account(OTHER_ACCOUNT)
    store.create_open_id_connect_provider(OTHER_ACCOUNT, KUBE_URL, ["a"])
    theirs = f"arn:aws:iam::{OTHER_ACCOUNT}:oidc-provider/kube.prod.example"
    with pytest.raises(NoSuchEntity):
        store.get_open_id_connect_provider(ACCOUNT, theirs)
    with pytest.raises(NoSuchEntity):
        store.delete_open_id_connect_provider(ACCOUNT, theirs)
    with pytest.raises(NoSuchEntity):
        store.add_client_id_to_open_id_connect_provider(ACCOUNT, theirs, "b")
    store.create_open_id_connect_provider(ACCOUNT, KUBE_URL, ["a"])
    with pytest.raises(NoSuchEntity):
        store.get_open_id_connect_provider(
            ACCOUNT, f"arn:aws-cn:iam::{ACCOUNT}:oidc-provider/kube.prod.example"
        )
    with pytest.raises(MalformedArn):
        store.get_open_id_connect_provider(ACCOUNT, "arn:aws:iam::x:oidc-provider/")


def test_hostile_provider_inputs_write_nothing(store: SqlStore) -> None:
    key = pki.new_ca("k").key_pem.decode()
    for url, ids, bundle in [
        ("http://kube.prod.example", ["a"], None),
        (KUBE_URL, ["bad id"], None),
        (KUBE_URL, ["a"], key),
        (KUBE_URL, ["a"], "garbage"),
    ]:
        with pytest.raises(InputError):
            store.create_open_id_connect_provider(ACCOUNT, url, ids, ca_bundle=bundle)
    assert store.list_open_id_connect_providers(ACCOUNT) == []


# -- trust policy documents ----------------------------------------------------------------


def test_role_with_a_web_identity_trust_policy(store: SqlStore) -> None:
    with pytest.raises(InvalidTrust, match="not registered"):
        store.create_role(ACCOUNT, "Deployer", trust_policy=irsa())
    assert store.list_roles(ACCOUNT) == []
    store.create_open_id_connect_provider(ACCOUNT, KUBE_URL, ["authbridge"])
    role = store.create_role(ACCOUNT, "Deployer", trust_policy=irsa())
    assert role.trust == ()
    assert role.to_aws()["AssumeRolePolicyDocument"] == json.loads(irsa())
    assert store.get_role(ACCOUNT, "Deployer").to_aws()["AssumeRolePolicyDocument"] == json.loads(
        irsa()
    )
    decision = trust.evaluate_web_identity(
        store.get_role(ACCOUNT, "Deployer").trust_policy,
        KUBE_ARN,
        {"aud": "authbridge", "sub": "system:serviceaccount:ci:deployer"},
        now=0,
    )
    assert decision.allowed
    # A provider of another account cannot be trusted, registered or not.
    store.create_account(OTHER_ACCOUNT)
    store.create_open_id_connect_provider(OTHER_ACCOUNT, KUBE_URL, ["authbridge"])
    theirs = f"arn:aws:iam::{OTHER_ACCOUNT}:oidc-provider/kube.prod.example"
    with pytest.raises(InvalidTrust, match="not registered in account"):
        store.create_role(ACCOUNT, "Theirs", trust_policy=irsa(theirs))


def test_aws_principals_are_stored_by_unique_id(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice")
    group = store.create_group(ACCOUNT, "oncall", "/ops/")
    root = f"arn:aws:iam::{ACCOUNT}:root"
    role = store.create_role(
        ACCOUNT, "Admin", trust_policy=people(alice.arn, group.arn, ACCOUNT, root)
    )
    assert [(t.kind, t.principal_id) for t in role.trust] == [
        ("user", alice.user_id),
        ("group", group.group_id),
        ("root", ACCOUNT),
    ]
    assert role.trust_policy.aws_principals() == (alice.user_id, group.group_id, ACCOUNT)
    shown = role.to_aws()["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]
    assert shown == [alice.arn, group.arn, root]
    # The user deleted and re-created: the trust shows the old id and trusts no namesake.
    store.delete_user(ACCOUNT, "alice")
    again = store.create_user(ACCOUNT, "alice")
    after = store.get_role(ACCOUNT, "Admin")
    shown = after.to_aws()["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]
    assert shown == [alice.user_id, group.arn, root]
    assert again.user_id not in after.trust_policy.aws_principals()


@pytest.mark.parametrize(
    ("principal", "message"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/ghost", "no user ghost"),
        ("999999999999", "account 999999999999 does not exist"),
        (f"arn:aws:iam::{ACCOUNT}:role/Other", "may trust users, groups"),
        ("AIDAAAAAAAAAAAAAAAAAA", "not a principal ARN"),
        ("not-an-arn", "not a principal ARN"),
    ],
)
def test_trust_policy_principals_must_exist(store: SqlStore, principal: str, message: str) -> None:
    with pytest.raises(InvalidTrust, match=message):
        store.create_role(ACCOUNT, "Admin", trust_policy=people(principal))
    assert store.list_roles(ACCOUNT) == []


def test_update_assume_role_policy_is_whole_or_nothing(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Admin", trust=[alice.arn])
    before = store.get_role(ACCOUNT, "Admin")
    for bad, error in [
        (people(alice.arn, f"arn:aws:iam::{ACCOUNT}:user/ghost"), InvalidTrust),
        (irsa(), InvalidTrust),
        ('{"Version": "2012-10-17"', MalformedPolicyDocument),
        (json.dumps(people("*")), MalformedPolicyDocument),
    ]:
        with pytest.raises(error):
            store.update_assume_role_policy(ACCOUNT, "Admin", bad)
        assert store.get_role(ACCOUNT, "Admin") == before
        assert store.get_role(ACCOUNT, "Admin").to_aws() == before.to_aws()
    updated = store.update_assume_role_policy(ACCOUNT, "Admin", people(alice.arn))
    assert updated.to_aws()["AssumeRolePolicyDocument"] == people(alice.arn)
    assert store.get_role(ACCOUNT, "Admin").to_aws() == updated.to_aws()
    with pytest.raises(NoSuchEntity):
        store.update_assume_role_policy(ACCOUNT, "Nobody", people(alice.arn))


def test_trust_shorthand_writes_the_same_document(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice")
    by_flag = store.create_role(ACCOUNT, "A", trust=[alice.arn])
    by_doc = store.create_role(ACCOUNT, "B", trust_policy=trust.shorthand_document([alice.arn]))
    assert by_flag.trust_policy == by_doc.trust_policy
    assert by_flag.to_aws()["AssumeRolePolicyDocument"] == trust.shorthand_document([alice.arn])
    with pytest.raises(InputError, match="not both"):
        store.create_role(ACCOUNT, "C", trust=[alice.arn], trust_policy=people(alice.arn))
    with pytest.raises(InputError, match="at least one"):
        store.create_role(ACCOUNT, "C")


def test_a_role_from_before_trust_documents_keeps_its_meaning(store: SqlStore) -> None:
    alice = store.create_user(ACCOUNT, "alice")
    group = store.create_group(ACCOUNT, "devs")
    made = store.create_role(ACCOUNT, "Old", trust=[alice.arn, group.arn])
    # What migration 8 finds for a role made before it: the trust rows, no document.
    with store._db.transaction(write=True) as cur:
        cur.execute("UPDATE iam_roles SET trust_document = NULL WHERE role_id = ?", (made.role_id,))
    old = store.get_role(ACCOUNT, "Old")
    assert old.trust_document is None
    assert old.trust_policy == trust.legacy_policy((alice.user_id, group.group_id))
    assert old.trust_policy == made.trust_policy
    assert old.to_aws()["AssumeRolePolicyDocument"] == made.to_aws()["AssumeRolePolicyDocument"]


def test_roles_of_a_version_5_store_mean_the_same_after_migration_8(
    empty_dsn: str, pepper: Pepper, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store made by the code before trust documents, then upgraded in place."""
    from authbridge.store import sql

    monkeypatch.setattr(sql, "MIGRATIONS", MIGRATIONS[:5])
    monkeypatch.setattr(sql, "LATEST_VERSION", 5)
    old = open_store(empty_dsn, pepper=pepper)
    assert old.schema_version() == 5
    old.create_account(ACCOUNT)
    alice = old.create_user(ACCOUNT, "alice")
    devs = old.create_group(ACCOUNT, "devs")
    with old._db.transaction(write=True) as cur:  # the role as version 5 wrote it
        cur.execute(
            "INSERT INTO iam_roles (role_id, account_id, name, name_key, path,"
            " max_session_duration, description, created_at)"
            " VALUES ('AROAOLDOLDOLDOLDOLDOL', ?, 'Old', 'old', '/', 3600, '', 0)",
            (ACCOUNT,),
        )
        for position, (kind, pid) in enumerate(
            [("user", alice.user_id), ("group", devs.group_id), ("root", ACCOUNT)]
        ):
            cur.execute(
                "INSERT INTO iam_role_trust (role_id, kind, principal_id, position)"
                " VALUES ('AROAOLDOLDOLDOLDOLDOL', ?, ?, ?)",
                (kind, pid, position),
            )
    old.close()
    monkeypatch.undo()
    store = open_store(empty_dsn, pepper=pepper)
    try:
        assert store.schema_version() == LATEST_VERSION
        role = store.get_role(ACCOUNT, "Old")
        assert role.trust_document is None
        assert role.trust_policy == trust.legacy_policy((alice.user_id, devs.group_id, ACCOUNT))
        assert role.to_aws()["AssumeRolePolicyDocument"] == trust.shorthand_document(
            [alice.arn, devs.arn, f"arn:aws:iam::{ACCOUNT}:root"]
        )
    finally:
        store.close()
