"""AssumeRole decided by the role's trust policy document (authbridge.sts), on both backends.

Covers: a trust requiring ``aws:MultiFactorAuthPresent`` lets in only a
subject token whose ``mfa`` claim is exactly true (not an access key alone,
not ``"true"`` as a string, not a token without the claim); an explicit Deny
for one user wins over an Allow of the account; a role trusting only an OIDC
provider is never assumed by an IAM user; a refusal reads exactly as for an
unknown role (no condition named, so roles cannot be probed); a role whose
trust policy was updated is decided by the new one at once.
"""

from __future__ import annotations

import json

import pytest

from authbridge.iam.model import NewAccessKey
from authbridge.keys import KeySet, generate_signing_key
from authbridge.store import SqlStore
from authbridge.sts import IssuerPolicy, RoleNotTrusted, assume_role
from authbridge.tokens import Principal, mint
from tests.conftest import ACCOUNT

NOW = 1_800_000_000.0
ISSUER = "https://authbridge.test/"
STS = "https://authbridge.test/sts"
POLICY = IssuerPolicy(
    issuer=ISSUER,
    cluster_ids=frozenset({"prod"}),
    default_lifetime=900,
    max_user_lifetime=3600,
    partition="aws",
)
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet((generate_signing_key("ES256", now=int(NOW) - 3600),), max_token_lifetime=43200)


def _trust(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


MFA_ONLY = _trust(
    {
        "Effect": "Allow",
        "Principal": {"AWS": ROOT},
        "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    }
)


@pytest.fixture
def alice_key(store: SqlStore) -> NewAccessKey:
    store.create_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "bob")
    return store.create_access_key(ACCOUNT, "alice")


def _subject(store: SqlStore, keys: KeySet, key: NewAccessKey, **claims: object) -> str:
    """An sts token of the key's user, with ``claims`` (as the sign-in mints ``mfa``)."""
    user = store.get_user(ACCOUNT, "alice")
    principal = Principal(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=ACCOUNT,
        principal_id=user.user_id,
        session_name=None,
        access_key_id=key.key.access_key_id,
        source_identity=user.user_id,
    )
    return mint(
        principal, keys=keys, issuer=ISSUER, audience=STS, now=NOW, extra_claims=claims
    ).token


def _assume(
    store: SqlStore,
    keys: KeySet,
    role: str,
    *,
    subject: str | None = None,
    client: NewAccessKey | None = None,
) -> str:
    pair = None
    if client is not None:
        pair = (client.key, store.get_user(ACCOUNT, client.key.user_name))
    return assume_role(
        store,
        keys,
        POLICY,
        subject_token=subject,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/{role}",
        session_name="s1",
        audience="prod",
        duration=None,
        now=NOW,
        client=pair,
    ).token


def _refusal(store: SqlStore, keys: KeySet, role: str, **kw: object) -> str:
    with pytest.raises(RoleNotTrusted) as caught:
        _assume(store, keys, role, **kw)  # type: ignore[arg-type]
    return str(caught.value)


def test_mfa_condition_needs_a_subject_token_signed_in_with_mfa(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    store.create_role(ACCOUNT, "Admin", trust_policy=MFA_ONLY)
    assert _assume(store, keys, "Admin", subject=_subject(store, keys, alice_key, mfa=True))
    unknown = _refusal(store, keys, "Nope", client=alice_key)
    for kw in (
        {"client": alice_key},
        {"subject": _subject(store, keys, alice_key)},
        {"subject": _subject(store, keys, alice_key, mfa="true")},
        {"subject": _subject(store, keys, alice_key, mfa=False)},
    ):
        refused = _refusal(store, keys, "Admin", **kw)
        # The same words as for a role that does not exist (bar its name): nothing to probe.
        assert refused.replace("Admin", "Nope") == unknown
        assert "MultiFactorAuthPresent" not in refused


def test_explicit_deny_wins(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    alice = store.get_user(ACCOUNT, "alice")
    store.create_role(
        ACCOUNT,
        "Ops",
        trust_policy=_trust(
            {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": {"AWS": alice.arn}, "Action": "sts:*"},
        ),
    )
    _refusal(store, keys, "Ops", client=alice_key)
    bob_key = store.create_access_key(ACCOUNT, "bob")
    assert _assume(store, keys, "Ops", client=bob_key)


def test_a_web_identity_role_is_not_assumed_by_a_user(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    provider = store.create_open_id_connect_provider(ACCOUNT, "https://kube.example", ["x"])
    store.create_role(
        ACCOUNT,
        "Pods",
        trust_policy=_trust(
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider.arn},
                "Action": "sts:*",
            }
        ),
    )
    _refusal(store, keys, "Pods", client=alice_key)
    _refusal(store, keys, "Pods", subject=_subject(store, keys, alice_key, mfa=True))


def test_an_updated_trust_policy_decides_at_once(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    store.create_role(ACCOUNT, "Admin", trust=[ROOT])
    assert _assume(store, keys, "Admin", client=alice_key)
    store.update_assume_role_policy(ACCOUNT, "Admin", MFA_ONLY)
    _refusal(store, keys, "Admin", client=alice_key)
    store.update_role_trust(ACCOUNT, "Admin", [ROOT])
    assert _assume(store, keys, "Admin", client=alice_key)
