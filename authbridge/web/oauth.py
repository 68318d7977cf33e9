"""The OAuth 2.0 endpoints, on Authlib's authorization server.

``POST /oauth2/token`` (RFC 6749 §3.2)
    * ``grant_type=client_credentials`` (RFC 6749 §4.4) is GetSessionToken: the
      client is an access key (``client_id`` = access key id, ``client_secret``
      = its secret; ``client_secret_basic`` or ``client_secret_post``),
      ``audience`` = a served cluster id (required), ``duration_seconds``
      optional (default 900, at most ``maxUserTokenLifetimeSeconds``). No
      refresh token.
    * ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693)
      is AssumeRole: ``subject_token`` (an authbridge token of a user),
      ``subject_token_type`` (``…:token-type:jwt`` or ``…:access_token``),
      ``audience``, and the extension parameters ``role_arn``,
      ``role_session_name`` and ``duration_seconds``. Client authentication is
      optional here (RFC 8693 §2.1): the subject token is the credential. When
      a client does authenticate, its key must belong to the token's user.
      ``actor_token`` (delegation) is not supported; ``scope`` and ``resource``
      are ignored.
``POST /oauth2/introspect`` (RFC 7662)
    Needs client authentication with an active access key. A token that passes
    every check (signature, issuer, a served audience, lifetime, revocation, the
    principal's and access key's status) is described; anything else is exactly
    ``{"active": false}``.
``POST /oauth2/revoke`` (RFC 7009)
    Client authentication optional: holding a token is enough to revoke it,
    since revoking only takes access away, and whoever holds a bearer token
    could use it anyway. Credentials that are sent must be valid. Exactly the
    presented token is revoked, whoever authenticated; a token that is not ours,
    malformed or already expired needs no revocation. Always 200 with an empty
    body; ``token_type_hint`` is accepted and ignored.
``GET|POST /oauth2/authorize``
    Exists because OIDC Discovery §3 requires an authorization endpoint;
    authbridge has no interactive (browser) flows, so every request gets a
    400 ``unsupported_response_type`` JSON error, never a redirect.

With ``embedKubernetesClaims`` on, tokens from both grants also carry
``k8s_username``, ``k8s_groups`` and ``k8s_uid``: the user the webhook would
answer for that token and cluster (:func:`authbridge.review.map_identity`, the
current mapping, IAM groups read from the store now), for a kube-apiserver in
JWT mode (:mod:`authbridge.apiserver_config`). A role session the mapping does
not map for the requested audience is refused with ``invalid_grant``; an
unmapped user gets a token without those claims (it may still be the
``subject_token`` of an AssumeRole; a kube-apiserver refuses it). The precise
reason goes to the log.

Every parameter is read from the ``application/x-www-form-urlencoded`` body,
never the URL (credentials do not belong in URLs or access logs); repeating a
parameter or using two client authentication methods at once is refused
(RFC 6749 §3.2, §2.3). Responses carry ``Cache-Control: no-store`` and
``Pragma: no-cache``.

Revocation bound: introspection, the token exchange and ``sts.verify_token``
read the store on every call, so a revocation is effective at once in every
worker and every replica that shares the store.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Final, Literal, NotRequired, TypedDict
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import BaseGrant, ClientCredentialsGrant, TokenEndpointMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, Request, Response, current_app
from flask import request as flask_request
from werkzeug.exceptions import RequestEntityTooLarge

from authbridge import sts
from authbridge.apiserver_config import kube_claims
from authbridge.errors import InvalidCredentials, TokenError
from authbridge.iam.model import AccessKey, User
from authbridge.review import identity_of, map_identity
from authbridge.tokens import MintedToken, Principal
from authbridge.web.context import Services
from authbridge.web.errors import CLIENT_AUTH_FAILED, NO_STORE_HEADERS, wire_text
from authbridge.web.oidc import (
    AUTHORIZE_PATH,
    CLIENT_AUTH_METHODS,
    GRANT_TYPES,
    INTROSPECT_PATH,
    REVOKE_PATH,
    TOKEN_EXCHANGE,
    TOKEN_PATH,
)
from authbridge.web.webhook import current_mapping

log = logging.getLogger(__name__)

EXTENSION = "authbridge.oauth"
# RFC 8693 §3 token type identifiers (S105: names, not passwords).
TOKEN_TYPE_JWT: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
TOKEN_TYPE_ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
# An authbridge token is both a JWT and an access token (RFC 8693 §3).
SUBJECT_TOKEN_TYPES = (TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN)
JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE_HEADERS]

bp = Blueprint("oauth", __name__)


# --------------------------------------------------------------------------- wire types


class TokenResponse(TypedDict):
    """RFC 6749 §5.1 successful token response (no refresh token, ever)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class TokenExchangeResponse(TokenResponse):
    """RFC 8693 §2.2.1: the token response plus the type of the issued token."""

    issued_token_type: Literal["urn:ietf:params:oauth:token-type:jwt"]


class Introspection(TypedDict):
    """RFC 7662 §2.2 response for an active token; an inactive one is just ``active: false``."""

    active: Literal[True]
    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    nbf: int
    jti: str
    token_type: Literal["Bearer"]
    arn: str
    account: str
    principal_id: str
    session_name: NotRequired[str]
    access_key_id: NotRequired[str]
    username: NotRequired[str]


class InactiveIntrospection(TypedDict):
    active: Literal[False]


# --------------------------------------------------------------------------- requests


class _FormPayload(OAuth2Payload):  # type: ignore[misc]  # authlib ships no type hints
    """Parameters from the form body only: never the query string (RFC 6749 §3.2)."""

    def __init__(self, request: Request) -> None:
        self._request = request

    @property
    def data(self) -> Any:
        return self._request.form

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        values: defaultdict[str, list[str]] = defaultdict(list)
        for name in self._request.form:
            values[name].extend(self._request.form.getlist(name))
        return values


class _FormRequest(OAuth2Request):  # type: ignore[misc]  # authlib ships no type hints
    def __init__(self, request: Request, *, allow_http: bool) -> None:
        uri = request.url
        if allow_http and uri.startswith("http://"):
            # Authlib refuses plain http for any host but loopback. With
            # settings.allow_insecure_http (development only) the operator chose
            # plain http; the URI is used for nothing but that check.
            uri = "https://" + uri.removeprefix("http://")
        super().__init__(request.method, uri, headers=request.headers)
        self._request = request
        self.payload = _FormPayload(request)

    @property
    def args(self) -> Any:
        return self._request.args

    @property
    def form(self) -> Any:
        return self._request.form


# --------------------------------------------------------------------------- clients


class AccessKeyClient(ClientMixin):  # type: ignore[misc]  # authlib ships no type hints
    """An OAuth client that is an access key: ``client_id`` is the access key id.

    Made for any id (so an unknown id and a wrong secret look the same); the
    store decides in :meth:`check_client_secret`, in constant time, and records
    the key's last use.
    """

    def __init__(self, svc: Services, client_id: str) -> None:
        self._svc = svc
        self.client_id = client_id
        self.key: AccessKey | None = None
        self.user: User | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        try:
            self.key, self.user = self._svc.store.authenticate_access_key(
                self.client_id, client_secret
            )
        except InvalidCredentials:
            return False
        return True

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES

    def check_response_type(self, response_type: str) -> bool:
        return False

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def get_allowed_scope(self, scope: str) -> str:
        return ""

    def authenticated(self) -> tuple[AccessKey, User]:
        if self.key is None or self.user is None:
            raise InvalidCredentials(CLIENT_AUTH_FAILED)
        return self.key, self.user


def _basic_client(query_client: Any, request: OAuth2Request) -> AccessKeyClient | None:
    """``client_secret_basic`` (RFC 6749 §2.3.1), strict: any malformed header fails auth."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        return None
    # §2.3.1: both are form-urlencoded before being joined and base64-encoded.
    client = query_client(unquote_plus(client_id))
    if isinstance(client, AccessKeyClient) and client.check_client_secret(unquote_plus(secret)):
        return client
    return None


def _presents_client_credentials(request: Request) -> bool:
    return "Authorization" in request.headers or "client_secret" in request.form


# --------------------------------------------------------------------------- server


class OAuthServer(AuthorizationServer):  # type: ignore[misc]  # authlib ships no type hints
    """Authlib's authorization server over the injected store, keys and clock."""

    def __init__(self, svc: Services) -> None:
        super().__init__()
        self.svc = svc
        self.register_client_auth_method("client_secret_basic", _basic_client)
        self.register_grant(SessionTokenGrant)
        self.register_grant(AssumeRoleGrant)
        self.register_endpoint(TokenIntrospection)
        self.register_endpoint(TokenRevocation)

    def query_client(self, client_id: str) -> AccessKeyClient:
        return AccessKeyClient(self.svc, client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are self-contained JWTs: nothing is stored when one is issued."""

    def create_oauth2_request(self, request: object) -> _FormRequest:
        return _FormRequest(flask_request, allow_http=self.svc.settings.allow_insecure_http)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> AccessKeyClient:
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as e:
            # One answer for an unknown key, a wrong secret, an inactive key, a
            # disabled user and a malformed header: no oracle.
            raise InvalidCredentials(CLIENT_AUTH_FAILED) from e
        if not isinstance(client, AccessKeyClient):
            raise InvalidCredentials(CLIENT_AUTH_FAILED)
        return client

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Response:
        # Every error goes through the app's one error handler (authbridge.web.errors).
        raise error

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No Flask signals: nothing subscribes, and a signal must not see tokens."""


def _server() -> OAuthServer:
    server = current_app.extensions.get(EXTENSION)
    if not isinstance(server, OAuthServer):
        raise RuntimeError("the app was not built by authbridge.web.create_app")
    return server


def _param(request: OAuth2Request, name: str) -> str:
    value = request.form.get(name, "")
    return value if isinstance(value, str) else ""


def kube_claims_hook(svc: Services) -> sts.KubeClaims | None:
    """With ``embedKubernetesClaims``, what gives a token the k8s_* claims; else None.

    The mapping is taken once per request, so both the claims and a refusal
    come from one version of it.
    """
    if not svc.settings.embed_kubernetes_claims:
        return None
    mapping, _version, note = current_mapping(svc)

    def claims(principal: Principal, audience: str) -> Mapping[str, object] | None:
        review = map_identity(
            identity_of(principal),
            (audience,),
            store=svc.store,
            policy=svc.policy,
            mapping=mapping,
            mapping_note=note,
        )
        if not review.authenticated or review.user is None:
            log.info(
                "no Kubernetes user for %s on cluster %s: %s",
                principal.canonical_arn,
                audience,
                review.detail or review.reason,
            )
            return None
        return kube_claims(review.user)

    return claims


def _token_response(minted: MintedToken) -> TokenResponse:
    return {
        "access_token": minted.token,
        "token_type": "Bearer",
        "expires_in": minted.expires_at - minted.issued_at,
    }


# --------------------------------------------------------------------------- grants


class SessionTokenGrant(ClientCredentialsGrant):  # type: ignore[misc]  # untyped authlib
    """``client_credentials`` = GetSessionToken (RFC 6749 §4.4)."""

    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def create_token_response(self) -> tuple[int, TokenResponse, list[tuple[str, str]]]:
        svc: Services = self.server.svc
        key, user = self.request.client.authenticated()
        minted = sts.session_token(
            svc.keys(),
            svc.policy,
            key=key,
            user=user,
            audience=_param(self.request, "audience"),
            duration=sts.parse_duration_seconds(_param(self.request, "duration_seconds")),
            now=svc.clock(),
            kube_claims=kube_claims_hook(svc),
        )
        log.info("issued %s token %s to %s", self.GRANT_TYPE, minted.jti, user.arn)
        return 200, _token_response(minted), JSON_NO_STORE


class AssumeRoleGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]  # untyped authlib
    """RFC 8693 token exchange = AssumeRole."""

    GRANT_TYPE = TOKEN_EXCHANGE
    TOKEN_ENDPOINT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def authenticate_token_endpoint_client(self) -> AccessKeyClient | None:
        # RFC 8693 §2.1: client authentication is optional; the subject token is
        # the credential. A client_id without a secret ("none") proves nothing
        # and is ignored.
        if not _presents_client_credentials(flask_request):
            return None
        client: AccessKeyClient = self.server.authenticate_client(
            self.request, self.TOKEN_ENDPOINT_AUTH_METHODS
        )
        return client

    def validate_token_request(self) -> None:
        self.request.client = self.authenticate_token_endpoint_client()
        form = self.request.form
        if not form.get("subject_token"):
            raise InvalidRequestError("subject_token is required: an authbridge token of a user")
        if form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError(
                "subject_token_type must be " + " or ".join(SUBJECT_TOKEN_TYPES)
            )
        requested = form.get("requested_token_type")
        if requested and requested not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError(
                "requested_token_type must be " + " or ".join(SUBJECT_TOKEN_TYPES)
            )
        if "actor_token" in form or "actor_token_type" in form:
            raise InvalidRequestError("actor_token is not supported: authbridge has no delegation")

    def create_token_response(self) -> tuple[int, TokenExchangeResponse, list[tuple[str, str]]]:
        svc: Services = self.server.svc
        client: AccessKeyClient | None = self.request.client
        client_user_id = client.authenticated()[1].user_id if client is not None else None
        minted = sts.assume_role(
            svc.store,
            svc.keys(),
            svc.policy,
            subject_token=_param(self.request, "subject_token"),
            role_arn=_param(self.request, "role_arn"),
            session_name=_param(self.request, "role_session_name"),
            audience=_param(self.request, "audience"),
            duration=sts.parse_duration_seconds(_param(self.request, "duration_seconds")),
            now=svc.clock(),
            client_user_id=client_user_id,
            kube_claims=kube_claims_hook(svc),
        )
        log.info("issued %s token %s for %s", "token-exchange", minted.jti, minted.claims["arn"])
        body: TokenExchangeResponse = {
            **_token_response(minted),
            "issued_token_type": TOKEN_TYPE_JWT,
        }
        return 200, body, JSON_NO_STORE


# --------------------------------------------------------------------------- endpoints


class TokenIntrospection(IntrospectionEndpoint):  # type: ignore[misc]  # untyped authlib
    """RFC 7662 for authenticated callers."""

    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def create_endpoint_response(
        self, request: OAuth2Request
    ) -> tuple[int, Introspection | InactiveIntrospection, list[tuple[str, str]]]:
        self.authenticate_endpoint_client(request)
        token = request.form.get("token")
        if not token:
            raise InvalidRequestError("token is required")
        return 200, introspect(self.server.svc, token), JSON_NO_STORE


def introspect(svc: Services, token: str) -> Introspection | InactiveIntrospection:
    """RFC 7662 §2.2: what an active token says, or exactly ``{"active": false}``."""
    try:
        verified = sts.verify_token(svc.store, svc.keys(), svc.policy, token, now=svc.clock())
    except TokenError as e:
        log.info("introspection: inactive token (%s)", e.code)
        return {"active": False}
    claims = verified.claims
    body: Introspection = {
        "active": True,
        "iss": claims["iss"],
        "sub": claims["sub"],
        "aud": claims["aud"],
        "exp": int(claims["exp"]),
        "iat": int(claims["iat"]),
        "nbf": int(claims["nbf"]),
        "jti": verified.jti,
        "token_type": "Bearer",
        "arn": claims["arn"],
        "account": claims["account"],
        "principal_id": claims["principal_id"],
    }
    principal = verified.principal
    if principal.session_name is not None:
        body["session_name"] = principal.session_name
    if principal.access_key_id is not None:
        body["access_key_id"] = principal.access_key_id
    if principal.session_name is None and ":user/" in principal.arn:
        body["username"] = principal.arn.rsplit("/", 1)[-1]
    return body


class TokenRevocation(RevocationEndpoint):  # type: ignore[misc]  # untyped authlib
    """RFC 7009; see the module docstring for who may revoke what."""

    CLIENT_AUTH_METHODS = list(CLIENT_AUTH_METHODS)

    def create_endpoint_response(
        self, request: OAuth2Request
    ) -> tuple[int, str, list[tuple[str, str]]]:
        if _presents_client_credentials(flask_request):
            self.authenticate_endpoint_client(request)
        token = request.form.get("token")
        if not token:
            raise InvalidRequestError("token is required")
        svc: Services = self.server.svc
        jti = sts.revoke_token(svc.store, svc.keys(), svc.policy, token, now=svc.clock())
        if jti is not None:
            log.info("revoked token %s", jti)
        return 200, "", [("Content-Type", "text/plain; charset=utf-8"), *NO_STORE_HEADERS]


# --------------------------------------------------------------------------- views


def _check_form_request() -> None:
    """RFC 6749 section 3.2 / 2.3: a form body, each parameter once, one client auth method."""
    req = flask_request
    limit = req.max_content_length
    if limit is not None and req.content_length is not None and req.content_length > limit:
        raise RequestEntityTooLarge()
    if req.args:
        raise InvalidRequestError(
            "send the parameters in the request body, not the URL (RFC 6749 section 3.2)"
        )
    if req.content_length and req.mimetype != "application/x-www-form-urlencoded":
        raise InvalidRequestError(
            "the body must be application/x-www-form-urlencoded (RFC 6749 section 3.2)"
        )
    form = req.form  # reading it enforces MAX_CONTENT_LENGTH on a streamed body too (413)
    for name in form:
        if len(form.getlist(name)) > 1:
            raise InvalidRequestError(
                wire_text(f"parameter {name} is repeated (RFC 6749 section 3.2)", 120)
            )
    if "Authorization" in req.headers and "client_secret" in form:
        raise InvalidRequestError(
            "use one client authentication method, HTTP Basic or client_secret in the form,"
            " not both (RFC 6749 section 2.3)"
        )


@bp.post(TOKEN_PATH)
def token() -> Response:
    _check_form_request()
    if not flask_request.form.get("grant_type"):
        raise InvalidRequestError("grant_type is required: client_credentials or " + TOKEN_EXCHANGE)
    response: Response = _server().create_token_response()
    return response


@bp.post(INTROSPECT_PATH)
def introspection() -> Response:
    _check_form_request()
    response: Response = _server().create_endpoint_response(TokenIntrospection.ENDPOINT_NAME)
    return response


@bp.post(REVOKE_PATH)
def revocation() -> Response:
    _check_form_request()
    response: Response = _server().create_endpoint_response(TokenRevocation.ENDPOINT_NAME)
    return response


@bp.route(AUTHORIZE_PATH, methods=["GET", "POST"])
def authorize() -> Response:
    """OIDC Discovery §3 requires this endpoint; authbridge has no interactive flows."""
    raise OAuth2Error(
        error="unsupported_response_type",
        description="authbridge has no interactive (browser) flows; get tokens from the token"
        " endpoint with client_credentials or token exchange",
        status_code=400,
    )


def install(app: Flask, svc: Services) -> OAuthServer:
    server = OAuthServer(svc)
    app.extensions[EXTENSION] = server
    return server
