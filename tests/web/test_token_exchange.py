"""RFC 8693 token exchange at POST /oauth2/token (AssumeRole), on every backend.

Covers:
- a role assumed through each kind of trust: the user, one of its groups, its
  account root; the response (issued_token_type, token_type, expires_in,
  no-store) and the resulting token's claims exactly as specified;
- the role's maximum session duration is the cap (7200 s allowed on Dev);
- client authentication: none, the token's own user, another user's key
  (invalid_grant), a wrong secret (invalid_client);
- every refusal with its exact error: an untrusted user; role_arn malformed,
  not a role, of another partition, unknown, with the wrong path, in an unknown
  account (one invalid_grant answer for every role the caller may not assume);
  bad session names (1 char, 65 chars, bad characters, empty); duration above the
  role's max; missing / unknown audience; missing subject_token, wrong
  subject_token_type, actor_token; a subject token that expired (clock), was
  revoked, belongs to a disabled user, was signed by an unknown key, or is
  garbage; role chaining (a role session is a cluster token);
- the audience rule: a cluster token as subject_token is invalid_grant "a
  cluster token is not an STS credential", into another cluster and into its
  own; a subject token naming a cluster and the sts audience likewise; an sts
  token from client_credentials (no k8s claims), and no request can ask for a
  cluster and the sts audience at once; AssumeRole with the client's access
  key and no subject_token records the key as the session's source;
  no subject_token and no client authentication is invalid_request.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from authbridge.keys import KeyDirectory, KeySet, generate_signing_key
from authbridge.store import SqlStore
from authbridge.tokens import Principal, mint
from tests.conftest import ACCOUNT
from tests.web.helpers import (
    ISSUER,
    JWT_TYPE,
    NO_STORE,
    STS,
    TOKEN_EXCHANGE,
    Clock,
    World,
    assert_error,
    assert_invalid_client,
    basic,
    claims_of,
    exchange,
    key_auth,
    sts_token,
    user_token,
)

ADMIN_ARN = f"arn:aws:iam::{ACCOUNT}:role/platform/Admin"
DEV_ARN = f"arn:aws:iam::{ACCOUNT}:role/Dev"
READER_ARN = f"arn:aws:iam::{ACCOUNT}:role/Reader"
BOB_ONLY_ARN = f"arn:aws:iam::{ACCOUNT}:role/BobOnly"


@pytest.fixture
def app_store(store: SqlStore) -> SqlStore:
    """Run this module on SQLite and PostgreSQL."""
    return store


@pytest.fixture
def alice_token(client: FlaskClient, world: World) -> str:
    return sts_token(client, world.alice_key)


def _issued(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()
    assert response.status_code == 200, body
    assert set(body) == {"access_token", "token_type", "expires_in", "issued_token_type"}
    assert body["token_type"] == "Bearer"
    assert body["issued_token_type"] == JWT_TYPE
    for name, value in NO_STORE.items():
        assert response.headers[name] == value
    return claims_of(body["access_token"])


def test_assume_role_trusted_via_user(
    client: FlaskClient, world: World, alice_token: str, clock: Clock
) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, "alice@example.com")
    claims = _issued(response)
    assert response.get_json()["expires_in"] == 900
    assert claims == {
        "iss": ISSUER,
        "sub": ADMIN_ARN,
        "aud": "prod",
        "exp": int(clock.now) + 900,
        "iat": int(clock.now),
        "nbf": int(clock.now),
        "jti": claims["jti"],
        "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice@example.com",
        "account": ACCOUNT,
        "principal_id": f"{world.admin.role_id}:alice@example.com",
        "session_name": "alice@example.com",
        # Where the session started: alice, her sts token and the key behind it.
        "source_identity": world.alice.user_id,
        "source_jti": claims_of(alice_token)["jti"],
        "source_access_key_id": world.alice_key.key.access_key_id,
    }


def test_assume_role_trusted_via_group(client: FlaskClient, world: World, alice_token: str) -> None:
    claims = _issued(exchange(client, alice_token, DEV_ARN, "ci", audience="staging"))
    assert claims["sub"] == DEV_ARN
    assert claims["aud"] == "staging"
    assert claims["principal_id"] == f"{world.dev.role_id}:ci"


def test_assume_role_trusted_via_account_root(client: FlaskClient, world: World) -> None:
    bob_token = sts_token(client, world.bob_key)
    claims = _issued(exchange(client, bob_token, READER_ARN, "bob"))
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Reader/bob"


def test_role_name_is_case_insensitive_and_canonical_in_the_token(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    claims = _issued(exchange(client, alice_token, f"arn:aws:iam::{ACCOUNT}:role/dev", "s1"))
    assert claims["sub"] == DEV_ARN
    assert claims["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Dev/s1"


def test_duration_up_to_the_role_max(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(client, alice_token, DEV_ARN, duration_seconds="7200")
    claims = _issued(response)
    assert response.get_json()["expires_in"] == 7200
    assert claims["exp"] - claims["iat"] == 7200


def test_the_result_verifies_with_the_served_jwks(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    token = exchange(client, alice_token, ADMIN_ARN).get_json()["access_token"]
    jwks = client.get("/openid/v1/jwks").get_json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="prod", issuer=ISSUER)
    assert claims["sub"] == ADMIN_ARN


# -- client authentication -------------------------------------------------------------


def test_client_auth_by_the_tokens_own_user(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, headers=key_auth(world.alice_key))
    _issued(response)


def test_client_auth_by_post_of_the_tokens_own_user(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    response = exchange(
        client,
        alice_token,
        ADMIN_ARN,
        client_id=world.alice_key.key.access_key_id,
        client_secret=world.alice_key.secret_access_key,
    )
    _issued(response)


def test_client_auth_by_another_user_is_refused(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, headers=key_auth(world.bob_key))
    assert_error(response, 400, "invalid_grant", "another user than subject_token")


def test_client_auth_with_a_wrong_secret(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    headers = basic(world.alice_key.key.access_key_id, "wrong")
    assert_invalid_client(exchange(client, alice_token, ADMIN_ARN, headers=headers))


def test_a_client_id_alone_is_not_authentication(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    # "none": a client_id without a secret proves nothing and changes nothing.
    response = exchange(client, alice_token, ADMIN_ARN, client_id=world.bob_key.key.access_key_id)
    _issued(response)


# -- trust -----------------------------------------------------------------------------


def test_untrusted_user(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(client, alice_token, BOB_ONLY_ARN)
    assert_error(response, 400, "invalid_grant", "user alice is not trusted by role BobOnly")


def test_untrusted_user_not_in_the_group(client: FlaskClient, world: World) -> None:
    bob_token = sts_token(client, world.bob_key)
    response = exchange(client, bob_token, DEV_ARN, "bob")
    assert_error(response, 400, "invalid_grant", "user bob is not trusted by role Dev")


@pytest.mark.parametrize(
    ("role_arn", "role_name"),
    [
        (f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole", "NoSuchRole"),
        (f"arn:aws:iam::{ACCOUNT}:role/Admin", "Admin"),  # Admin lives under /platform/
        (f"arn:aws:iam::{ACCOUNT}:role/other/Admin", "Admin"),
        ("arn:aws:iam::999999999999:role/Admin", "Admin"),  # no such account
    ],
)
def test_roles_that_cannot_be_assumed_all_look_alike(
    client: FlaskClient, world: World, alice_token: str, role_arn: str, role_name: str
) -> None:
    response = exchange(client, alice_token, role_arn)
    body = assert_error(response, 400, "invalid_grant")
    assert body["error_description"].startswith(f"user alice is not trusted by role {role_name};")


@pytest.mark.parametrize(
    ("role_arn", "fragment"),
    [
        ("not-an-arn", "role_arn: is not a role ARN"),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", "role_arn: names a user, not a role"),
        (f"arn:aws:iam::{ACCOUNT}:group/devs", "role_arn: names a group, not a role"),
        (f"arn:aws-cn:iam::{ACCOUNT}:role/Admin", "role_arn: is not a role ARN"),
        ("arn:aws:iam::1234:role/Admin", "role_arn: is not a role ARN"),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/x1",
            "role_arn: names an assumed-role session, not a role",
        ),
    ],
)
def test_malformed_role_arn(
    client: FlaskClient, world: World, alice_token: str, role_arn: str, fragment: str
) -> None:
    assert_error(exchange(client, alice_token, role_arn), 400, "invalid_request", fragment)


@pytest.mark.parametrize(
    ("session", "got"),
    [
        ("a", "got 1 characters"),
        ("x" * 65, "got 65 characters"),
        ("", "got 0 characters"),
        ("bad/name", "a character IAM does not allow"),
        ("bad name", "a character IAM does not allow"),
        ("caf\u00e9", "a character IAM does not allow"),
    ],
)
def test_bad_session_name(
    client: FlaskClient, world: World, alice_token: str, session: str, got: str
) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, session)
    assert_error(
        response, 400, "invalid_request", "role_session_name", "must be 2 to 64 characters", got
    )


def test_session_name_limits_are_inclusive(
    client: FlaskClient, world: World, alice_token: str
) -> None:
    _issued(exchange(client, alice_token, ADMIN_ARN, "ab"))
    _issued(exchange(client, alice_token, ADMIN_ARN, "+=,.@_-" + "x" * 57))


@pytest.mark.parametrize("duration", ["3601", "43200"])
def test_duration_above_the_role_max(
    client: FlaskClient, world: World, alice_token: str, duration: str
) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, duration_seconds=duration)
    assert_error(
        response,
        400,
        "invalid_request",
        "duration_seconds",
        "between 900 and 3600 seconds for role Admin",
    )


def test_duration_below_the_minimum(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(client, alice_token, DEV_ARN, duration_seconds="899")
    assert_error(response, 400, "invalid_request", "between 900 and 7200")


def test_missing_audience(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, audience="")
    assert_error(response, 400, "invalid_request", "audience: is required")


def test_unknown_audience(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(client, alice_token, ADMIN_ARN, audience="elsewhere")
    assert_error(response, 400, "invalid_target", "not a cluster this issuer serves")


# -- the subject token -----------------------------------------------------------------


def test_missing_subject_token(client: FlaskClient, world: World) -> None:
    assert_error(
        exchange(client, "", ADMIN_ARN), 400, "invalid_request", "subject_token is required"
    )


def test_wrong_subject_token_type(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(
        client,
        alice_token,
        ADMIN_ARN,
        subject_token_type="urn:ietf:params:oauth:token-type:saml2",
    )
    assert_error(response, 400, "invalid_request", "subject_token_type must be")


def test_access_token_type_is_accepted(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(
        client,
        alice_token,
        ADMIN_ARN,
        subject_token_type="urn:ietf:params:oauth:token-type:access_token",
    )
    _issued(response)


def test_actor_token_is_refused(client: FlaskClient, world: World, alice_token: str) -> None:
    response = exchange(
        client, alice_token, ADMIN_ARN, actor_token=alice_token, actor_token_type=JWT_TYPE
    )
    assert_error(response, 400, "invalid_request", "actor_token is not supported")


def test_subject_token_expired(
    client: FlaskClient, world: World, alice_token: str, clock: Clock
) -> None:
    clock.advance(900 + 60)  # lifetime + the verification leeway
    response = exchange(client, alice_token, ADMIN_ARN)
    body = assert_error(response, 400, "invalid_grant", "subject_token expired")
    assert alice_token not in body["error_description"]


def test_subject_token_revoked(client: FlaskClient, world: World, alice_token: str) -> None:
    assert client.post("/oauth2/revoke", data={"token": alice_token}).status_code == 200
    response = exchange(client, alice_token, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "subject_token revoked")


def test_subject_token_of_a_disabled_user(
    client: FlaskClient, world: World, alice_token: str, app_store: SqlStore
) -> None:
    app_store.set_user_enabled(ACCOUNT, "alice", False)
    response = exchange(client, alice_token, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "subject_token refused", "user_disabled")


def test_subject_token_of_an_inactive_access_key(
    client: FlaskClient, world: World, alice_token: str, app_store: SqlStore
) -> None:
    app_store.update_access_key(world.alice_key.key.access_key_id, "Inactive")
    response = exchange(client, alice_token, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "access_key_inactive")


def test_subject_token_signed_by_an_unknown_key(
    client: FlaskClient, world: World, clock: Clock
) -> None:
    stranger = generate_signing_key("ES256", now=int(clock.now) - 10)
    forged = mint(
        Principal(
            arn=world.alice.arn,
            canonical_arn=world.alice.arn,
            account_id=ACCOUNT,
            principal_id=world.alice.user_id,
        ),
        keys=KeySet((stranger,)),
        issuer=ISSUER,
        audience="prod",
        now=clock.now,
    ).token
    response = exchange(client, forged, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "subject_token is signed by an unknown key")


@pytest.mark.parametrize("garbage", ["not-a-token", "a.b.c", "x" * 9000])
def test_subject_token_garbage(client: FlaskClient, world: World, garbage: str) -> None:
    response = exchange(client, garbage, ADMIN_ARN)
    body = assert_error(response, 400, "invalid_grant", "subject_token refused")
    assert garbage not in body["error_description"]


def test_role_chaining_is_refused(client: FlaskClient, world: World, alice_token: str) -> None:
    role_session = exchange(client, alice_token, DEV_ARN, "first").get_json()["access_token"]
    # A role session is only ever for a cluster: refused as a cluster token.
    response = exchange(client, role_session, READER_ARN, "second")
    assert_error(response, 400, "invalid_grant", "a cluster token is not an STS credential")


def test_grant_type_is_the_rfc_8693_urn(client: FlaskClient, world: World) -> None:
    assert TOKEN_EXCHANGE == "urn:ietf:params:oauth:grant-type:token-exchange"
    discovery = client.get("/.well-known/openid-configuration").get_json()
    assert TOKEN_EXCHANGE in discovery["grant_types_supported"]


# -- the audience rule: a cluster token is never a subject token ---------------------------


@pytest.mark.parametrize("into", ["prod", "staging"])
def test_cluster_token_pivot_is_refused(client: FlaskClient, world: World, into: str) -> None:
    """A staging bearer token, no client auth: into prod (another cluster) or staging."""
    staging = user_token(client, world.alice_key, audience="staging")
    response = exchange(client, staging, ADMIN_ARN, audience=into)
    assert_error(response, 400, "invalid_grant", "a cluster token is not an STS credential")


def test_subject_token_for_a_cluster_and_sts_is_refused(
    client: FlaskClient, world: World, key_directory: KeyDirectory, clock: Clock
) -> None:
    alice = world.alice
    mixed = mint(
        Principal(
            arn=alice.arn,
            canonical_arn=alice.arn,
            account_id=ACCOUNT,
            principal_id=alice.user_id,
            access_key_id=world.alice_key.key.access_key_id,
        ),
        keys=key_directory.load(),  # the server's own key: only the audience is wrong
        issuer=ISSUER,
        audience=["staging", STS],
        now=clock.now,
    ).token
    response = exchange(client, mixed, ADMIN_ARN)
    assert_error(response, 400, "invalid_grant", "a cluster token is not an STS credential")


def test_sts_token_from_client_credentials(client: FlaskClient, world: World) -> None:
    claims = claims_of(sts_token(client, world.alice_key))
    assert claims["aud"] == STS
    assert claims["source_identity"] == world.alice.user_id
    assert not {"k8s_username", "k8s_groups", "k8s_uid"} & set(claims)
    # One audience per request: a cluster and the sts audience together is no request.
    both = client.post(
        "/oauth2/token",
        data=MultiDict(
            [("grant_type", "client_credentials"), ("audience", "prod"), ("audience", STS)]
        ),
        headers=key_auth(world.alice_key),
    )
    assert_error(both, 400, "invalid_request", "parameter audience is repeated")
    # A role session is never for the sts audience.
    response = exchange(client, sts_token(client, world.alice_key), ADMIN_ARN, audience=STS)
    assert_error(response, 400, "invalid_target")


def test_assume_role_with_the_client_key_alone(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "audience": "prod",
            "role_arn": ADMIN_ARN,
            "role_session_name": "signed",
        },
        headers=key_auth(world.alice_key),
    )
    claims = _issued(response)
    assert claims["source_identity"] == world.alice.user_id
    assert claims["source_access_key_id"] == world.alice_key.key.access_key_id
    assert "source_jti" not in claims


def test_no_subject_token_and_no_client_authentication(client: FlaskClient, world: World) -> None:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": TOKEN_EXCHANGE, "audience": "prod", "role_arn": ADMIN_ARN},
    )
    assert_error(response, 400, "invalid_request", "subject_token is required", STS)
