"""The token service (authbridge.sts), without HTTP, on SQLite and PostgreSQL.

Covers:
- IssuerPolicy.from_settings;
- get_session_token: the user principal and claims; every refusal (wrong secret,
  unknown key, inactive key, disabled user: InvalidCredentials; missing and
  unserved audience; duration below 900, above the user cap, above the key set's
  maximum lifetime); the default lifetime; the key's last use recorded;
- parse_duration_seconds;
- assume_role: trust through the user, a group and the account root; the role
  session principal exactly as specified (arn without the role path, sub with it,
  principal_id = role id:session); the default lifetime capped by the role's max;
  RoleNotTrusted with one message for an untrusted user, an unknown role, a wrong
  path and an unknown account, each after the same store calls (role
  existence timing); a trusted user deleted and re-created under the
  same name is no longer trusted (trust by unique id); role chaining; the client's
  key of another user; the subject token's refusals with their reason codes;
  session names and role ARNs; the error classes' OAuth codes;
- the audience rule: a cluster token is never a subject token (the pivot into
  another cluster and into the same one), nor a token naming a cluster and the
  sts audience (refused everywhere), nor one for another audience; the sts
  token is refused where cluster tokens are asked for, is never a role
  session's audience, and can be revoked; AssumeRole with the client's key alone;
- source identity: every session records it; a role session (exchanged from an
  sts token, or signed with the key) is refused once its source user is
  disabled or deleted, its source key inactive or deleted, or (exchanged) its
  sts token revoked; a role session without source_identity and a user token
  naming another source are refused; mint refuses a role session without one;
- verify_token: revocation, principal status, audiences;
- revoke_token: stores the jti until exp + leeway; nothing for garbage, a
  foreign or expired token; a disabled user's token is revoked all the same.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest

from authbridge.errors import (
    InvalidCredentials,
    TokenClaimsInvalid,
    TokenExpired,
    TokenPrincipalRefused,
    TokenRevoked,
    TokenSourceRevoked,
    TokenWrongAudience,
)
from authbridge.iam.model import NewAccessKey
from authbridge.keys import KeySet, generate_signing_key
from authbridge.settings import load_settings
from authbridge.store import SqlStore
from authbridge.sts import (
    AudienceNotServed,
    DurationNotAllowed,
    GrantRefused,
    InvalidRequest,
    IssuerPolicy,
    NotAnStsCredential,
    RoleChainingRefused,
    RoleNotTrusted,
    SubjectTokenRefused,
    assume_role,
    get_session_token,
    parse_duration_seconds,
    revoke_token,
    verify_token,
)
from authbridge.tokens import MAX_LEEWAY, MintedToken, Principal, mint
from tests.conftest import ACCOUNT, CallRecorder

NOW = 1_800_000_000.0
ISSUER = "https://authbridge.test/"
POLICY = IssuerPolicy(
    issuer=ISSUER,
    cluster_ids=frozenset({"prod", "staging"}),
    default_lifetime=900,
    max_user_lifetime=3600,
    partition="aws",
)
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
STS = "https://authbridge.test/sts"  # the issuer URL without its trailing slash, + /sts


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet((generate_signing_key("ES256", now=int(NOW) - 3600),), max_token_lifetime=43200)


@pytest.fixture
def alice_key(store: SqlStore) -> NewAccessKey:
    alice = store.create_user(ACCOUNT, "alice", path="/team/")
    store.create_group(ACCOUNT, "devs")
    store.add_user_to_group(ACCOUNT, "devs", "alice")
    store.create_user(ACCOUNT, "bob")
    store.create_role(ACCOUNT, "Admin", trust=[alice.arn], path="/platform/")
    store.create_role(
        ACCOUNT, "Dev", trust=[f"arn:aws:iam::{ACCOUNT}:group/devs"], max_session_duration=7200
    )
    store.create_role(ACCOUNT, "Reader", trust=[ROOT])
    store.create_role(ACCOUNT, "BobOnly", trust=[f"arn:aws:iam::{ACCOUNT}:user/bob"])
    return store.create_access_key(ACCOUNT, "alice")


def _user_token(store: SqlStore, keys: KeySet, key: NewAccessKey, **kw: object) -> MintedToken:
    args: dict[str, object] = {"audience": "prod", "duration": None, "now": NOW} | kw
    return get_session_token(
        store,
        keys,
        POLICY,
        access_key_id=key.key.access_key_id,
        secret=key.secret_access_key,
        **args,  # type: ignore[arg-type]
    )


def _sts(store: SqlStore, keys: KeySet, key: NewAccessKey, **kw: object) -> MintedToken:
    """A token for the sts audience: the only kind AssumeRole takes as subject_token."""
    return _user_token(store, keys, key, audience=STS, **kw)


def _assume(
    store: SqlStore, keys: KeySet, subject: str | None, role_arn: str, **kw: object
) -> MintedToken:
    args: dict[str, object] = {
        "session_name": "s1",
        "audience": "prod",
        "duration": None,
        "now": NOW,
    } | kw
    return assume_role(
        store,
        keys,
        POLICY,
        subject_token=subject,
        role_arn=role_arn,
        **args,  # type: ignore[arg-type]
    )


def test_policy_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {"issuer": ISSUER, "cluster_ids": "prod,staging", "partition": "aws-cn"},
        {},
        None,
        cwd=tmp_path,
    )
    assert IssuerPolicy.from_settings(settings) == IssuerPolicy(
        issuer=ISSUER,
        cluster_ids=frozenset({"prod", "staging"}),
        default_lifetime=900,
        max_user_lifetime=3600,
        partition="aws-cn",
    )


# -- GetSessionToken ---------------------------------------------------------------------


def test_session_token_for_the_user(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    minted = _user_token(store, keys, alice_key)
    alice = store.get_user(ACCOUNT, "alice")
    assert minted.expires_at - minted.issued_at == 900
    assert minted.claims == {
        "iss": ISSUER,
        "sub": alice.arn,
        "aud": "prod",
        "exp": int(NOW) + 900,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": minted.jti,
        "arn": alice.arn,
        "account": ACCOUNT,
        "principal_id": alice.user_id,
        "access_key_id": alice_key.key.access_key_id,
        "source_identity": alice.user_id,
    }
    assert store.get_access_key(alice_key.key.access_key_id).last_used_at is not None


def test_session_token_refusals(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    key_id = alice_key.key.access_key_id
    with pytest.raises(InvalidCredentials):
        get_session_token(
            store, keys, POLICY, access_key_id=key_id, secret="nope",
            audience="prod", duration=None, now=NOW,
        )  # fmt: skip
    with pytest.raises(InvalidCredentials):
        get_session_token(
            store, keys, POLICY, access_key_id="AKIAAAAAAAAAAAAAAAAA",
            secret=alice_key.secret_access_key, audience="prod", duration=None, now=NOW,
        )  # fmt: skip
    with pytest.raises(InvalidRequest, match="audience: is required") as missing:
        _user_token(store, keys, alice_key, audience="")
    assert missing.value.field == "audience"
    assert missing.value.oauth_error == "invalid_request"
    with pytest.raises(AudienceNotServed) as unserved:
        _user_token(store, keys, alice_key, audience="dev")
    assert unserved.value.oauth_error == "invalid_target"
    for duration in (899, 3601):
        with pytest.raises(DurationNotAllowed, match="between 900 and 3600 seconds for a user"):
            _user_token(store, keys, alice_key, duration=duration)
    assert _user_token(store, keys, alice_key, duration=3600).claims["exp"] == int(NOW) + 3600


def test_inactive_key_and_disabled_user(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    store.set_user_enabled(ACCOUNT, "alice", False)
    with pytest.raises(InvalidCredentials):
        _user_token(store, keys, alice_key)
    store.set_user_enabled(ACCOUNT, "alice", True)
    store.update_access_key(alice_key.key.access_key_id, "Inactive")
    with pytest.raises(InvalidCredentials):
        _user_token(store, keys, alice_key)


def test_the_key_sets_maximum_lifetime_caps_durations(
    store: SqlStore, alice_key: NewAccessKey
) -> None:
    short = KeySet((generate_signing_key("ES256", now=int(NOW) - 10),), max_token_lifetime=1000)
    with pytest.raises(DurationNotAllowed, match="between 900 and 1000"):
        _user_token(store, short, alice_key, duration=1001)


def test_parse_duration_seconds() -> None:
    assert parse_duration_seconds(None) is None
    assert parse_duration_seconds("") is None
    assert parse_duration_seconds("3600") == 3600
    for bad in ("-1", "1.5", "1e3", "abc", "\u0661\u0662", "1234567", " 900"):
        with pytest.raises(DurationNotAllowed, match="whole number"):
            parse_duration_seconds(bad)


# -- AssumeRole ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role_arn",
    [
        f"arn:aws:iam::{ACCOUNT}:role/platform/Admin",  # trusts the user
        f"arn:aws:iam::{ACCOUNT}:role/Dev",  # trusts group devs
        f"arn:aws:iam::{ACCOUNT}:role/Reader",  # trusts the account root
    ],
)
def test_assume_role_through_each_kind_of_trust(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, role_arn: str
) -> None:
    sts_token = _sts(store, keys, alice_key)
    subject = sts_token.token
    name = role_arn.rsplit("/", 1)[-1]
    role = store.get_role(ACCOUNT, name)
    alice = store.get_user(ACCOUNT, "alice")
    minted = _assume(store, keys, subject, role_arn, session_name="alice@example.com")
    assert minted.claims == {
        "iss": ISSUER,
        "sub": role.arn,
        "aud": "prod",
        "exp": int(NOW) + 900,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": minted.jti,
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/alice@example.com",
        "account": ACCOUNT,
        "principal_id": f"{role.role_id}:alice@example.com",
        "session_name": "alice@example.com",
        "source_identity": alice.user_id,
        "source_jti": sts_token.jti,
        "source_access_key_id": alice_key.key.access_key_id,
    }
    verified = verify_token(store, keys, POLICY, minted.token, now=NOW)
    assert verified.principal == Principal(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/alice@example.com",
        canonical_arn=role.arn,
        account_id=ACCOUNT,
        principal_id=f"{role.role_id}:alice@example.com",
        session_name="alice@example.com",
        access_key_id=None,
        source_identity=alice.user_id,
        source_jti=sts_token.jti,
        source_access_key_id=alice_key.key.access_key_id,
    )


def test_default_lifetime_is_capped_by_the_role(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    subject = _sts(store, keys, alice_key).token
    long_default = dataclasses.replace(POLICY, default_lifetime=7200)
    minted = assume_role(
        store, keys, long_default, subject_token=subject,
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/Reader", session_name="s1",
        audience="prod", duration=None, now=NOW,
    )  # fmt: skip
    assert minted.expires_at - minted.issued_at == 3600  # Reader's max session duration
    with pytest.raises(DurationNotAllowed, match="between 900 and 3600 seconds for role Reader"):
        _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Reader", duration=3601)
    dev = _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", duration=7200)
    assert dev.expires_at - dev.issued_at == 7200


@pytest.mark.parametrize(
    ("role_arn", "name"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/BobOnly", "BobOnly"),
        (f"arn:aws:iam::{ACCOUNT}:role/Ghost", "Ghost"),
        (f"arn:aws:iam::{ACCOUNT}:role/Admin", "Admin"),  # real path is /platform/
        ("arn:aws:iam::999999999999:role/Admin", "Admin"),
    ],
)
def test_role_not_trusted_looks_the_same_for_every_cause(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, role_arn: str, name: str
) -> None:
    subject = _sts(store, keys, alice_key).token
    with pytest.raises(RoleNotTrusted) as refused:
        _assume(store, keys, subject, role_arn)
    assert refused.value.message == f"user alice is not trusted by role {name}"
    assert refused.value.oauth_error == "invalid_grant"


def test_role_existence_timing_a_missing_role_costs_what_an_untrusting_one_does(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    # Role enumeration by timing: the answers are the same, and so must be the work
    # behind them, i.e. the same store calls in the same order (the wall-clock
    # comparison is `python -m bench.experiments role-timing`, never a unit test).
    subject = _sts(store, keys, alice_key).token
    calls = {}
    for name in ("BobOnly", "Ghost", "Admin"):  # untrusting, missing, on another path
        recorder = CallRecorder(store)
        with pytest.raises(RoleNotTrusted):
            _assume(recorder, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/{name}")  # type: ignore[arg-type]
        calls[name] = recorder.calls
    assert calls["BobOnly"] == calls["Ghost"] == calls["Admin"]
    assert calls["Ghost"][-2:] == ["list_groups_for_user", "get_role"]
    # And a role that trusts the caller reads no more before it mints.
    recorder = CallRecorder(store)
    _assume(recorder, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Reader")  # type: ignore[arg-type]
    assert recorder.calls == calls["Ghost"]


def test_trust_is_by_unique_id(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    bob = store.get_user(ACCOUNT, "bob")
    store.delete_user(ACCOUNT, "bob", force=True)
    store.create_user(ACCOUNT, "bob")
    new_key = store.create_access_key(ACCOUNT, "bob")
    subject = _sts(store, keys, new_key).token
    with pytest.raises(RoleNotTrusted, match="user bob is not trusted by role BobOnly"):
        _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/BobOnly")
    assert bob.user_id != store.get_user(ACCOUNT, "bob").user_id


def test_role_chaining_is_refused(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    subject = _sts(store, keys, alice_key).token
    session = _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev")
    # A role session is only ever for a cluster, so it is refused as a cluster token ...
    with pytest.raises(NotAnStsCredential, match="a cluster token is not an STS credential"):
        _assume(store, keys, session.token, f"arn:aws:iam::{ACCOUNT}:role/Reader")
    # ... and one for the sts audience (which the issuer never mints) as role chaining.
    as_sts = mint(
        dataclasses.replace(
            _principal_of(session), source_identity=session.claims["source_identity"]
        ),
        keys=keys, issuer=ISSUER, audience=STS, now=NOW,
    ).token  # fmt: skip
    with pytest.raises(RoleChainingRefused, match="role chaining is not supported"):
        _assume(store, keys, as_sts, f"arn:aws:iam::{ACCOUNT}:role/Reader")


def _principal_of(minted: MintedToken) -> Principal:
    c = minted.claims
    return Principal(
        arn=c["arn"],
        canonical_arn=c["sub"],
        account_id=c["account"],
        principal_id=c["principal_id"],
        session_name=c.get("session_name"),
        access_key_id=c.get("access_key_id"),
    )


def test_client_key_of_another_user(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    subject = _sts(store, keys, alice_key).token
    bob = store.get_user(ACCOUNT, "bob")
    bob_key = store.create_access_key(ACCOUNT, "bob").key
    with pytest.raises(GrantRefused, match="another user than subject_token"):
        _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", client=(bob_key, bob))
    alice = store.get_user(ACCOUNT, "alice")
    _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", client=(alice_key.key, alice))


def test_subject_token_refusals(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    dev = f"arn:aws:iam::{ACCOUNT}:role/Dev"
    subject = _sts(store, keys, alice_key)

    with pytest.raises(SubjectTokenRefused, match="subject_token expired") as expired:
        _assume(store, keys, subject.token, dev, now=NOW + 900 + MAX_LEEWAY)
    assert expired.value.reason == "expired"

    stranger = KeySet((generate_signing_key("ES256", now=int(NOW) - 10),))
    forged = mint(
        Principal(
            arn=str(subject.claims["arn"]),
            canonical_arn=str(subject.claims["sub"]),
            account_id=ACCOUNT,
            principal_id=str(subject.claims["principal_id"]),
        ),
        keys=stranger, issuer=ISSUER, audience=STS, now=NOW,
    ).token  # fmt: skip
    with pytest.raises(SubjectTokenRefused, match="unknown key") as unknown:
        _assume(store, keys, forged, dev)
    assert unknown.value.reason == "unknown_kid"

    with pytest.raises(SubjectTokenRefused) as garbage:
        _assume(store, keys, "garbage", dev)
    assert garbage.value.reason == "malformed"

    store.set_user_enabled(ACCOUNT, "alice", False)
    with pytest.raises(SubjectTokenRefused, match="user_disabled") as disabled:
        _assume(store, keys, subject.token, dev)
    assert disabled.value.reason == "disabled"
    store.set_user_enabled(ACCOUNT, "alice", True)

    revoke_token(store, keys, POLICY, subject.token, now=NOW)
    with pytest.raises(SubjectTokenRefused, match="subject_token revoked"):
        _assume(store, keys, subject.token, dev)


@pytest.mark.parametrize("session", ["a", "x" * 65, "a b", "a/b", "", "caf\u00e9"])
def test_bad_session_names(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, session: str
) -> None:
    subject = _sts(store, keys, alice_key).token
    with pytest.raises(InvalidRequest, match="must be 2 to 64 characters") as bad:
        _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", session_name=session)
    assert bad.value.field == "role_session_name"


@pytest.mark.parametrize(
    "role_arn",
    ["", "nope", f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws-cn:iam::{ACCOUNT}:role/Dev"],
)
def test_bad_role_arns(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, role_arn: str
) -> None:
    subject = _sts(store, keys, alice_key).token
    with pytest.raises(InvalidRequest) as bad:
        _assume(store, keys, subject, role_arn)
    assert bad.value.field == "role_arn"


def test_audience_is_checked_for_the_role_session(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    subject = _sts(store, keys, alice_key).token
    with pytest.raises(AudienceNotServed):
        _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", audience="other")
    staging = _assume(store, keys, subject, f"arn:aws:iam::{ACCOUNT}:role/Dev", audience="staging")
    assert staging.claims["aud"] == "staging"


# -- verify / revoke -------------------------------------------------------------------------


def test_verify_token_checks_store_status_and_audiences(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    token = _user_token(store, keys, alice_key, audience="staging").token
    assert verify_token(store, keys, POLICY, token, now=NOW).audiences == ["staging"]
    with pytest.raises(TokenWrongAudience):
        verify_token(store, keys, POLICY, token, audiences=["prod"], now=NOW)
    with pytest.raises(TokenExpired):
        verify_token(store, keys, POLICY, token, now=NOW + 900 + MAX_LEEWAY)
    store.update_access_key(alice_key.key.access_key_id, "Inactive")
    with pytest.raises(TokenPrincipalRefused, match="access_key_inactive"):
        verify_token(store, keys, POLICY, token, now=NOW)


def test_revoke_token(store: SqlStore, keys: KeySet, alice_key: NewAccessKey) -> None:
    minted = _user_token(store, keys, alice_key)
    assert revoke_token(store, keys, POLICY, minted.token, now=NOW) == minted.jti
    with pytest.raises(TokenRevoked):
        verify_token(store, keys, POLICY, minted.token, now=NOW)
    # Kept while the token could still pass verification (exp + leeway).
    store.purge_revoked_tokens(datetime.fromtimestamp(minted.expires_at + MAX_LEEWAY - 1, UTC))
    assert store.is_token_revoked(minted.jti)
    store.purge_revoked_tokens(datetime.fromtimestamp(minted.expires_at + MAX_LEEWAY + 1, UTC))
    assert not store.is_token_revoked(minted.jti)


def test_revoke_token_ignores_what_cannot_be_used(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    minted = _user_token(store, keys, alice_key)
    assert revoke_token(store, keys, POLICY, "garbage", now=NOW) is None
    assert revoke_token(store, keys, POLICY, minted.token, now=NOW + 900 + MAX_LEEWAY) is None
    other = dataclasses.replace(POLICY, issuer="https://other")
    assert revoke_token(store, keys, other, minted.token, now=NOW) is None
    assert not store.is_token_revoked(minted.jti)


def test_a_disabled_users_token_is_revoked_all_the_same(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    minted = _user_token(store, keys, alice_key)
    store.set_user_enabled(ACCOUNT, "alice", False)
    assert revoke_token(store, keys, POLICY, minted.token, now=NOW) == minted.jti
    store.set_user_enabled(ACCOUNT, "alice", True)
    with pytest.raises(TokenRevoked):
        verify_token(store, keys, POLICY, minted.token, now=NOW)


# -- audiences: a cluster token is never a subject token (the cross-cluster pivot) -----------


@pytest.mark.parametrize("cluster", ["staging", "prod"])
def test_cluster_token_pivot_is_refused(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, cluster: str
) -> None:
    """A staging token exchanged for prod (another cluster) or for staging (the same one)."""
    staging = _user_token(store, keys, alice_key, audience="staging").token
    with pytest.raises(NotAnStsCredential, match="a cluster token is not an STS credential") as e:
        _assume(store, keys, staging, f"arn:aws:iam::{ACCOUNT}:role/Dev", audience=cluster)
    assert e.value.reason == "cluster_token"
    assert e.value.oauth_error == "invalid_grant"


def test_subject_token_naming_a_cluster_and_sts_is_refused_everywhere(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    alice = store.get_user(ACCOUNT, "alice")
    mixed = mint(
        Principal(
            arn=alice.arn,
            canonical_arn=alice.arn,
            account_id=ACCOUNT,
            principal_id=alice.user_id,
            access_key_id=alice_key.key.access_key_id,
        ),
        keys=keys, issuer=ISSUER, audience=["prod", STS], now=NOW,
    ).token  # fmt: skip
    with pytest.raises(NotAnStsCredential, match="a cluster token is not an STS credential"):
        _assume(store, keys, mixed, f"arn:aws:iam::{ACCOUNT}:role/Dev")
    with pytest.raises(TokenWrongAudience, match="service audience together with others"):
        verify_token(store, keys, POLICY, mixed, now=NOW)


def test_a_token_for_neither_a_cluster_nor_sts_is_not_a_subject_token(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    other = mint(
        _principal_of(_user_token(store, keys, alice_key)),
        keys=keys, issuer=ISSUER, audience="https://authbridge.test/admin", now=NOW,
    ).token  # fmt: skip
    with pytest.raises(NotAnStsCredential, match="not an STS credential") as e:
        _assume(store, keys, other, f"arn:aws:iam::{ACCOUNT}:role/Dev")
    assert e.value.reason == "wrong_audience"


def test_sts_token_is_for_the_token_endpoint_only(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    sts_token = _sts(store, keys, alice_key)
    assert sts_token.claims["aud"] == STS == POLICY.sts_audience
    assert "k8s_username" not in sts_token.claims
    with pytest.raises(TokenWrongAudience):  # what the webhook and /verify ask
        verify_token(store, keys, POLICY, sts_token.token, now=NOW)
    with pytest.raises(AudienceNotServed):  # a role session is never for the sts audience
        _assume(store, keys, sts_token.token, f"arn:aws:iam::{ACCOUNT}:role/Dev", audience=STS)
    # Revocable like any token of ours.
    assert revoke_token(store, keys, POLICY, sts_token.token, now=NOW) == sts_token.jti


def test_assume_role_with_the_client_key_alone(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    alice = store.get_user(ACCOUNT, "alice")
    minted = _assume(
        store, keys, None, f"arn:aws:iam::{ACCOUNT}:role/Dev", client=(alice_key.key, alice)
    )
    assert minted.claims["source_identity"] == alice.user_id
    assert minted.claims["source_access_key_id"] == alice_key.key.access_key_id
    assert "source_jti" not in minted.claims and "access_key_id" not in minted.claims
    with pytest.raises(InvalidRequest, match="subject_token: is required") as missing:
        _assume(store, keys, None, f"arn:aws:iam::{ACCOUNT}:role/Dev")
    assert missing.value.field == "subject_token"


# -- source identity: a role session ends with what it came from ----------------------------


def _sessions(
    store: SqlStore, keys: KeySet, key: NewAccessKey
) -> tuple[MintedToken, MintedToken, MintedToken]:
    """The sts token, a role session exchanged from it, one from the client key alone."""
    dev = f"arn:aws:iam::{ACCOUNT}:role/Dev"
    user = store.get_user_by_id(key.key.user_id)
    sts_token = _sts(store, keys, key)
    return (
        sts_token,
        _assume(store, keys, sts_token.token, dev),
        _assume(store, keys, None, dev, client=(key.key, user)),
    )


def test_source_user_disabled_ends_its_role_sessions(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    _, exchanged, signed = _sessions(store, keys, alice_key)
    store.set_user_enabled(ACCOUNT, "alice", False)
    for session in (exchanged, signed):
        with pytest.raises(TokenPrincipalRefused, match="source_user_disabled"):
            verify_token(store, keys, POLICY, session.token, now=NOW)
    store.set_user_enabled(ACCOUNT, "alice", True)
    for session in (exchanged, signed):
        verify_token(store, keys, POLICY, session.token, now=NOW)


def test_source_user_deleted_ends_its_role_sessions(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    _, exchanged, signed = _sessions(store, keys, alice_key)
    store.delete_user(ACCOUNT, "alice", force=True)
    store.create_user(ACCOUNT, "alice", path="/team/")  # a namesake is another user
    for session in (exchanged, signed):
        with pytest.raises(TokenPrincipalRefused, match="source_deleted"):
            verify_token(store, keys, POLICY, session.token, now=NOW)


@pytest.mark.parametrize("change", ["inactive", "deleted"])
def test_source_access_key_ends_its_role_sessions(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey, change: str
) -> None:
    _, exchanged, signed = _sessions(store, keys, alice_key)
    other_key = store.create_access_key(ACCOUNT, "alice")
    _, other_exchanged, _ = _sessions(store, keys, other_key)
    key_id = alice_key.key.access_key_id
    if change == "inactive":
        store.update_access_key(key_id, "Inactive")
    else:
        store.delete_access_key(key_id)
    for session in (exchanged, signed):
        with pytest.raises(TokenPrincipalRefused, match=f"access_key_{change}"):
            verify_token(store, keys, POLICY, session.token, now=NOW)
    verify_token(store, keys, POLICY, other_exchanged.token, now=NOW)  # another key's: fine


def test_revoking_the_sts_token_ends_the_sessions_exchanged_from_it(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    sts_token, exchanged, signed = _sessions(store, keys, alice_key)
    assert revoke_token(store, keys, POLICY, sts_token.token, now=NOW) == sts_token.jti
    with pytest.raises(TokenSourceRevoked, match=f"minted from token {sts_token.jti}") as e:
        verify_token(store, keys, POLICY, exchanged.token, now=NOW)
    assert e.value.code == "revoked"
    verify_token(store, keys, POLICY, signed.token, now=NOW)  # not minted from it


def test_role_session_without_source_identity_is_refused(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    """One minted before sessions recorded their source (or by the pivot): nothing to check."""
    session = _sessions(store, keys, alice_key)[1]
    claims = {k: v for k, v in session.claims.items() if not k.startswith("source_")}
    key = keys.signing_key(NOW)
    legacy = jwt.encode(claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid})
    with pytest.raises(TokenClaimsInvalid, match="no 'source_identity' claim"):
        verify_token(store, keys, POLICY, legacy, now=NOW)


def test_a_user_token_naming_another_source_is_refused(
    store: SqlStore, keys: KeySet, alice_key: NewAccessKey
) -> None:
    bob = store.get_user(ACCOUNT, "bob")
    token = mint(
        dataclasses.replace(
            _principal_of(_user_token(store, keys, alice_key)), source_identity=bob.user_id
        ),
        keys=keys, issuer=ISSUER, audience="prod", now=NOW,
    ).token  # fmt: skip
    with pytest.raises(TokenClaimsInvalid, match="must be its own principal_id"):
        verify_token(store, keys, POLICY, token, now=NOW)


def test_mint_refuses_a_role_session_without_source(keys: KeySet) -> None:
    principal = Principal(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/s1",
        canonical_arn=f"arn:aws:iam::{ACCOUNT}:role/Dev",
        account_id=ACCOUNT,
        principal_id="AROAEXAMPLEEXAMPLE01:s1",
        session_name="s1",
    )
    with pytest.raises(ValueError, match="must name its source_identity"):
        mint(principal, keys=keys, issuer=ISSUER, audience="prod", now=NOW)
