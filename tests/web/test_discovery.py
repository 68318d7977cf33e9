"""OIDC discovery and the JWKS.

Covers:
- every field OIDC Discovery 1.0 §3 requires, plus the OAuth endpoints (the
  device authorization endpoint too), grant types (the sign-in grants too),
  PKCE S256, auth methods and claims we document; application/json; a Cache-Control
  max-age no longer than the pre-publication delay (and 0 when the delay is 0);
- issuer byte-identical to the configured URL for each shape (no path, trailing
  slash, a path, a path with trailing slash); every endpoint is the issuer
  without its trailing slash plus its path and is actually served there; the
  root form and the RFC 8414 form of discovery under an issuer path; tokens minted
  through the path-prefixed endpoint carry that exact iss;
- JWKS: application/jwk-set+json, public parameters only, pending and retiring
  keys published, a retired key absent, id_token_signing_alg_values_supported
  follows the published keys; a rotation on disk shows up without restarting
  the app (after the KeyRing's one-second look);
- /oauth2/authorize answers every request with unsupported_response_type, no redirect;
- an issuer path that cannot be a URL rule is a ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from authbridge.errors import ConfigError
from authbridge.keys import KeyDirectory, KeyRing
from authbridge.store import SqlStore
from authbridge.web import create_app
from tests.web.conftest import make_settings
from tests.web.helpers import (
    ISSUER,
    Clock,
    World,
    assert_error,
    claims_of,
    key_auth,
    user_token,
)

REQUIRED = {  # OIDC Discovery 1.0 §3, REQUIRED fields
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
}
PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def test_every_required_field(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    assert REQUIRED <= set(doc)
    assert doc == {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/oauth2/authorize",
        "token_endpoint": f"{ISSUER}/oauth2/token",
        "jwks_uri": f"{ISSUER}/openid/v1/jwks",
        "device_authorization_endpoint": f"{ISSUER}/oauth2/device_authorization",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "grant_types_supported": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:device_code",
            "authorization_code",
            "refresh_token",
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint": f"{ISSUER}/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint": f"{ISSUER}/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "arn",
            "account",
            "principal_id",
            "session_name",
            "access_key_id",
            "sid",
            "amr",
            "mfa",
        ],
    }


def _max_age(cache_control: str) -> int:
    parts = dict(p.strip().partition("=")[::2] for p in cache_control.split(",") if "=" in p)
    return int(parts["max-age"])


@pytest.mark.parametrize("delay", [0, 120, 600, 86400])
def test_max_age_is_within_the_prepublication_delay(
    make_app: Callable[..., Flask], tmp_path: Path, delay: int
) -> None:
    settings = make_settings(tmp_path, prepublication_delay=delay)
    client = make_app(settings=settings).test_client()
    for path in ("/.well-known/openid-configuration", "/openid/v1/jwks"):
        max_age = _max_age(client.get(path).headers["Cache-Control"])
        assert max_age <= delay
        assert max_age == settings.jwks_max_age


@pytest.mark.parametrize(
    ("issuer", "prefix"),
    [
        ("https://authbridge.test", ""),
        ("https://authbridge.test/", ""),
        ("https://authbridge.test/auth", "/auth"),
        ("https://authbridge.test/auth/", "/auth"),
        ("https://authbridge.test:8443/a/b", "/a/b"),
    ],
)
def test_issuer_is_byte_identical_and_endpoints_are_served(
    make_app: Callable[..., Flask], tmp_path: Path, world: World, issuer: str, prefix: str
) -> None:
    client = make_app(settings=make_settings(tmp_path, issuer=issuer)).test_client()
    response = client.get(f"{prefix}/.well-known/openid-configuration")
    assert response.status_code == 200
    # Byte for byte, not just after JSON decoding (no escaped slashes, nothing appended).
    assert response.get_data().startswith(b'{"issuer": "' + issuer.encode() + b'", ')
    doc = response.get_json()
    assert doc["issuer"] == issuer
    base = issuer.rstrip("/")
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "revocation_endpoint"):
        assert doc[name].startswith(base + "/")
        assert "//" not in doc[name].removeprefix("https://")
    path_of = {
        name: doc[name].removeprefix(base) for name in doc if name.endswith(("_uri", "_endpoint"))
    }
    assert client.get(prefix + path_of["jwks_uri"]).status_code == 200
    # A token from the endpoint the document names carries exactly this iss.
    token = client.post(
        prefix + path_of["token_endpoint"],
        data={"grant_type": "client_credentials", "audience": "prod"},
        headers=key_auth(world.alice_key),
    ).get_json()["access_token"]
    assert claims_of(token)["iss"] == issuer
    if prefix:
        for other in (
            "/.well-known/openid-configuration",  # root form
            f"/.well-known/openid-configuration{prefix}",  # RFC 8414 §3.1 form
        ):
            assert client.get(other).get_json() == doc


def test_iss_equals_discovery_issuer(make_app: Callable[..., Flask], world: World) -> None:
    client = make_app().test_client()
    issuer = client.get("/.well-known/openid-configuration").get_json()["issuer"]
    assert claims_of(user_token(client, world.alice_key))["iss"] == issuer


def test_jwks_is_public_keys_only(make_app: Callable[..., Flask]) -> None:
    response = make_app().test_client().get("/openid/v1/jwks")
    assert response.status_code == 200
    assert response.mimetype == "application/jwk-set+json"
    assert response.headers["Cache-Control"].startswith("public")
    keys = response.get_json()["keys"]
    assert len(keys) == 1
    for jwk in keys:
        assert not PRIVATE_JWK_MEMBERS & set(jwk)
        assert set(jwk) == {"kty", "kid", "use", "alg", "crv", "x", "y"}


def _kids(client: FlaskClient) -> list[str]:
    return [k["kid"] for k in client.get("/openid/v1/jwks").get_json()["keys"]]


def test_rotation_on_disk_shows_up_without_restart(
    make_app: Callable[..., Flask],
    key_directory: KeyDirectory,
    keyring: KeyRing,
    clock: Clock,
    world: World,
) -> None:
    client = make_app().test_client()
    first = _kids(client)
    assert len(first) == 1

    pending = key_directory.rotate("RS256", now=clock.now)  # activates after 600 s
    clock.advance(1.5)  # the KeyRing looks at keys/ at most once a second
    kids = _kids(client)
    assert kids == [first[0], pending.kid]  # active first, then pending
    algs = client.get("/.well-known/openid-configuration").get_json()[
        "id_token_signing_alg_values_supported"
    ]
    assert algs == ["ES256", "RS256"]

    clock.advance(600)  # the new key is active, the old one retiring
    assert _kids(client) == [pending.kid, first[0]]
    token = user_token(client, world.alice_key)
    assert claims_of(token)["iss"] == ISSUER
    assert jwt.get_unverified_header(token)["kid"] == pending.kid

    key_directory.retire(first[0], now=clock.now)
    clock.advance(1.5)
    assert _kids(client) == [pending.kid]  # retired: gone
    assert keyring.reloads == 2


def test_authorize_endpoint_refuses_every_request(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    for response in (
        client.get("/oauth2/authorize?response_type=code&client_id=x&redirect_uri=https://evil"),
        client.post("/oauth2/authorize", data={"response_type": "id_token"}),
    ):
        assert_error(response, 400, "unsupported_response_type", "no interactive")
        assert "Location" not in response.headers


@pytest.mark.parametrize("issuer", ["https://h/a%20b", "https://h/<x>", "https://h/a//b"])
def test_an_issuer_path_that_is_no_url_rule_is_refused(
    tmp_path: Path, app_store: SqlStore, keyring: KeyRing, issuer: str
) -> None:
    with pytest.raises(ConfigError, match="issuer"):
        create_app(make_settings(tmp_path, issuer=issuer), store=app_store, keys=keyring)
