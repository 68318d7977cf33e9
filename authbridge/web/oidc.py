"""OIDC discovery (OpenID Connect Discovery 1.0 §3/§4) and the JWKS (RFC 7517 §5).

``issuer`` is the configured issuer URL byte for byte (a trailing slash stays
if configured, and is the ``iss`` of every token); every endpoint URL is the
issuer without its trailing slash plus the endpoint's path. Both documents may
be cached for ``settings.jwks_max_age`` seconds, never longer than a new key is
published before it signs, so a verifier with a cached JWKS never meets an
unknown ``kid``. Both are built per request from the current key set, so a
rotation on disk shows up without a restart.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from flask import Blueprint, Response, json

from authbridge.keys import JWKS, Algorithm
from authbridge.tokens import REQUIRED_CLAIMS
from authbridge.web.context import Services, services

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
AUTHORIZE_PATH = "/oauth2/authorize"
TOKEN_PATH = "/oauth2/token"  # noqa: S105  # a URL path, not a password
INTROSPECT_PATH = "/oauth2/introspect"
REVOKE_PATH = "/oauth2/revoke"
DEVICE_AUTHORIZATION_PATH = "/oauth2/device_authorization"

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105  # RFC 8693 §2.1
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4
# The grants of access-key clients; the public client authbridge-cli has its own.
GRANT_TYPES = ("client_credentials", TOKEN_EXCHANGE)
SIGNIN_GRANT_TYPES = (DEVICE_CODE, "authorization_code", "refresh_token")
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# sid, amr, mfa: in tokens derived from a sign-in session (authbridge.signin).
CLAIMS = (*REQUIRED_CLAIMS, "session_name", "access_key_id", "sid", "amr", "mfa")

bp = Blueprint("oidc", __name__)


class DiscoveryDocument(TypedDict):
    """OpenID Provider Metadata (OIDC Discovery 1.0 §3, RFC 8414 §2)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    device_authorization_endpoint: str
    response_types_supported: list[Literal["code"]]
    subject_types_supported: list[Literal["public"]]
    id_token_signing_alg_values_supported: list[Algorithm]
    grant_types_supported: list[str]
    code_challenge_methods_supported: list[Literal["S256"]]
    token_endpoint_auth_methods_supported: list[str]
    introspection_endpoint: str
    introspection_endpoint_auth_methods_supported: list[str]
    revocation_endpoint: str
    revocation_endpoint_auth_methods_supported: list[str]
    claims_supported: list[str]


def discovery_document(svc: Services, now: float) -> DiscoveryDocument:
    algs = sorted({key.alg for key in svc.keys().published(now)})
    return {
        "issuer": svc.policy.issuer,
        # The authorization code flow (PKCE S256) of the public client authbridge-cli.
        "authorization_endpoint": svc.url(AUTHORIZE_PATH),
        "token_endpoint": svc.url(TOKEN_PATH),
        "jwks_uri": svc.url(JWKS_PATH),
        "device_authorization_endpoint": svc.url(DEVICE_AUTHORIZATION_PATH),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "grant_types_supported": [*GRANT_TYPES, *SIGNIN_GRANT_TYPES],
        "code_challenge_methods_supported": ["S256"],
        # "none": the public client authbridge-cli (client_id in the form, no secret).
        "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "introspection_endpoint": svc.url(INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "revocation_endpoint": svc.url(REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "claims_supported": list(CLAIMS),
    }


def _cacheable(body: DiscoveryDocument | JWKS, mimetype: str, max_age: int) -> Response:
    response = Response(json.dumps(body), mimetype=mimetype)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@bp.get(DISCOVERY_PATH)
def discovery() -> Response:
    svc = services()
    doc = discovery_document(svc, svc.clock())
    return _cacheable(doc, "application/json", svc.settings.jwks_max_age)


@bp.get(JWKS_PATH)
def jwks() -> Response:
    """Active, pending and retiring public keys; never a retired key or a private parameter."""
    svc = services()
    body = svc.keys().jwks(svc.clock())
    # RFC 7517 §8.5.1 media type.
    return _cacheable(body, "application/jwk-set+json", svc.settings.jwks_max_age)
