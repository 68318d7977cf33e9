"""The OAuth 2.0 endpoints, on Authlib's authorization server.

``POST /oauth2/token`` (RFC 6749 §3.2)
    * ``grant_type=client_credentials`` (RFC 6749 §4.4) is GetSessionToken: the
      client is an access key (``client_id`` = access key id, ``client_secret``
      = its secret; ``client_secret_basic`` or ``client_secret_post``),
      ``audience`` = a served cluster id, or the ``sts`` audience (the issuer
      URL + ``/sts``: a token only for this endpoint) (required),
      ``duration_seconds`` optional (default 900, at most
      ``maxUserTokenLifetimeSeconds``). No refresh token.
    * ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange`` (RFC 8693)
      is AssumeRole: ``subject_token`` (an authbridge user token for the
      ``sts`` audience; a cluster token is refused, ``invalid_grant`` "a
      cluster token is not an STS credential"), ``subject_token_type``
      (``…:token-type:jwt`` or ``…:access_token``), ``audience`` (a cluster),
      and the extension parameters ``role_arn``, ``role_session_name`` and
      ``duration_seconds``. The caller authenticates with the subject token,
      or with its access key as the client (then ``subject_token`` may be
      left out: the key's user is the subject, as AWS AssumeRole is signed
      with the caller's key), or both, when the key must belong to the
      token's user. See :mod:`authbridge.sts` for the audience rule.
      ``actor_token`` (delegation) is not supported; ``scope`` and ``resource``
      are ignored. Without ``role_arn``, a ``subject_token`` is exchanged for
      its user's own token for ``audience`` (a cluster or the admin audience;
      :func:`authbridge.sts.exchange_own_token`).
    * the sign-in grants of the public client ``authbridge-cli`` (``client_id``
      in the form, no secret; :mod:`authbridge.signin`):
      ``urn:ietf:params:oauth:grant-type:device_code`` (RFC 8628 §3.4),
      ``authorization_code`` with PKCE S256 (RFC 6749 §4.1.3, RFC 7636 §4.6)
      and ``refresh_token`` (RFC 6749 §6, rotated, reuse ends the session).
      Each answers an ``sts`` access token with ``sid``/``amr``/``mfa`` and the
      next refresh token; ``audience`` is refused on them.
``POST /oauth2/device_authorization`` (RFC 8628 §3.1)
    ``client_id=authbridge-cli`` [``scope``]: a device code and a user code.
    Every request is charged to its client address (:mod:`authbridge.web.limits`).
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
    malformed or already expired needs no revocation. A refresh token (anything
    that is not a JWT) ends its sign-in session. Always 200 with an empty body;
    ``token_type_hint`` is accepted and ignored.
``GET|POST /oauth2/authorize``
    A page for people: :mod:`authbridge.web.signin`.

With ``embedKubernetesClaims`` on, tokens from both grants also carry
``k8s_username``, ``k8s_groups`` and ``k8s_uid``: the user the webhook would
answer for that token and cluster (:func:`authbridge.review.map_identity`, the
current mapping, IAM groups read from the store now), for a kube-apiserver in
JWT mode (:mod:`authbridge.apiserver_config`). A role session the mapping does
not map for the requested audience is refused with ``invalid_grant``; an
unmapped user gets a token without those claims (a kube-apiserver refuses
it); an ``sts`` token never has them. The precise reason goes to the log.

Every parameter is read from the ``application/x-www-form-urlencoded`` body,
never the URL (credentials do not belong in URLs or access logs); repeating a
parameter or using two client authentication methods at once is refused
(RFC 6749 §3.2, §2.3). Responses carry ``Cache-Control: no-store`` and
``Pragma: no-cache``. Failed client authentications are limited per (access
key id, client address), per address and per key id, and refused token
exchanges (``invalid_grant``) per address (:mod:`authbridge.web.limits`): past
a limit, 429 ``too_many_requests`` with ``Retry-After``, before any secret or
subject token is checked.

Every answer of the token, introspection and revocation endpoints, success
or failure, writes one audit line (``token_issued``, ``introspect``,
``revoke``; :mod:`authbridge.audit`) and counts in :mod:`authbridge.web.metrics`,
from an ``after_request`` hook, so refusals raised before the view are seen too.
The line names the principal when it is known (an authenticated client, a
subject token that verifies, the token issued; for a token exchange the
subject token is verified once more to name the user behind the session),
the access key id a client claimed when it is well-formed, never a secret or
a token.

Revocation bound: introspection, the token exchange and ``sts.verify_token``
read the store on every call, so a revocation (or the end of the sign-in
session a token's ``sid`` names) is effective at once in every worker and
every replica that shares the store.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict
from urllib.parse import unquote_plus

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import BaseGrant, ClientCredentialsGrant, TokenEndpointMixin
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, Request, Response, current_app, g, json
from flask import request as flask_request
from werkzeug.exceptions import RequestEntityTooLarge

from authbridge import audit, signin, sts, web_identity
from authbridge.apiserver_config import kube_claims
from authbridge.errors import InvalidCredentials, TokenError
from authbridge.iam.credentials import looks_like_access_key_id
from authbridge.iam.model import AccessKey, User
from authbridge.review import identity_of, map_identity
from authbridge.signin import federated
from authbridge.tokens import MintedToken, Principal, VerifiedToken
from authbridge.web import limits, metrics
from authbridge.web.context import Services
from authbridge.web.errors import CLIENT_AUTH_FAILED, NO_STORE_HEADERS, wire_text
from authbridge.web.oidc import (
    CLIENT_AUTH_METHODS,
    DEVICE_AUTHORIZATION_PATH,
    DEVICE_CODE,
    GRANT_TYPES,
    INTROSPECT_PATH,
    REVOKE_PATH,
    SIGNIN_GRANT_TYPES,
    TOKEN_EXCHANGE,
    TOKEN_PATH,
)
from authbridge.web.webhook import audit_writer, current_mapping

log = logging.getLogger(__name__)

EXTENSION = "authbridge.oauth"
# RFC 8693 §3 token type identifiers (S105: names, not passwords).
TOKEN_TYPE_JWT: Final = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
TOKEN_TYPE_ACCESS_TOKEN: Final = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
TOKEN_TYPE_ID_TOKEN: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
# An authbridge token is both a JWT and an access token (RFC 8693 §3).
ISSUED_TOKEN_TYPES = (TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN)
# ... and an upstream OIDC provider's token (web identity) is an id_token or a JWT.
SUBJECT_TOKEN_TYPES = (*ISSUED_TOKEN_TYPES, TOKEN_TYPE_ID_TOKEN)
JSON_NO_STORE = [("Content-Type", "application/json"), *NO_STORE_HEADERS]

bp = Blueprint("oauth", __name__)


# --------------------------------------------------------------------------- wire types


class TokenResponse(TypedDict):
    """RFC 6749 §5.1 successful token response (no refresh token for access-key clients)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class SessionTokenResponse(TokenResponse):
    """The sign-in grants' answer: the ``sts`` access token and the next refresh token."""

    refresh_token: str
    refresh_token_expires_in: int


class DeviceAuthorizationResponse(TypedDict):
    """RFC 8628 §3.2."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


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


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client id, secret) from ``Authorization: Basic …`` (RFC 6749 §2.3.1); None if malformed."""
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
    return unquote_plus(client_id), unquote_plus(secret)


# The admin API reads access-key client authentication from the same header, the same way.
basic_credentials = _basic_credentials


def _basic_client(query_client: Any, request: OAuth2Request) -> AccessKeyClient | None:
    """``client_secret_basic`` (RFC 6749 §2.3.1), strict: any malformed header fails auth."""
    credentials = _basic_credentials(request.headers.get("Authorization"))
    if credentials is None:
        return None
    client = query_client(credentials[0])
    if isinstance(client, AccessKeyClient) and client.check_client_secret(credentials[1]):
        return client
    return None


def _claimed_client_id(request: OAuth2Request) -> str | None:
    """The client id a request authenticates as, before anything about it is checked."""
    credentials = _basic_credentials(request.headers.get("Authorization"))
    if credentials is not None:
        return credentials[0]
    client_id = request.form.get("client_id")
    return client_id if isinstance(client_id, str) and client_id else None


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
        self.register_grant(DeviceCodeGrant)
        self.register_grant(AuthorizationCodeGrant)
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(TokenIntrospection)
        self.register_endpoint(TokenRevocation)

    def query_client(self, client_id: str) -> AccessKeyClient:
        client = _note().client = AccessKeyClient(self.svc, client_id)
        return client

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are self-contained JWTs: nothing is stored when one is issued."""

    def create_oauth2_request(self, request: object) -> _FormRequest:
        return _FormRequest(flask_request, allow_http=self.svc.settings.allow_insecure_http)

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> AccessKeyClient:
        # 429 before any secret is looked at while the address or key id is out of
        # failed attempts (authbridge.web.limits).
        attempt = limits.begin_client_authentication(_claimed_client_id(request), self.svc.clock())
        try:
            client = super().authenticate_client(request, methods, endpoint)
            if not isinstance(client, AccessKeyClient):
                raise InvalidClientError()
        except InvalidClientError as e:
            attempt.failed()
            # One answer for an unknown key, a wrong secret, an inactive key, a
            # disabled user and a malformed header: no oracle.
            raise InvalidCredentials(CLIENT_AUTH_FAILED) from e
        except BaseException:
            attempt.abandoned()
            raise
        attempt.succeeded()
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
        _note().minted = minted
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
        subject_token = form.get("subject_token")
        # Without one, the authenticated client is the caller (see the module docstring).
        if not subject_token and self.request.client is None:
            raise InvalidRequestError(
                "subject_token is required: an authbridge token for the sts audience"
                f" ({self.server.svc.policy.sts_audience}), unless the client authenticates"
                " with an access key"
            )
        if subject_token and form.get("subject_token_type") not in SUBJECT_TOKEN_TYPES:
            raise InvalidRequestError(
                "subject_token_type must be " + " or ".join(SUBJECT_TOKEN_TYPES)
            )
        requested = form.get("requested_token_type")
        if requested and requested not in ISSUED_TOKEN_TYPES:
            raise InvalidRequestError(
                "requested_token_type must be " + " or ".join(ISSUED_TOKEN_TYPES)
            )
        if "actor_token" in form or "actor_token_type" in form:
            raise InvalidRequestError("actor_token is not supported: authbridge has no delegation")

    def create_token_response(self) -> tuple[int, TokenExchangeResponse, list[tuple[str, str]]]:
        svc: Services = self.server.svc
        client: AccessKeyClient | None = self.request.client
        subject_token = _param(self.request, "subject_token")
        if subject_token and is_web_identity(
            svc, _param(self.request, "subject_token_type"), subject_token
        ):
            return self._web_identity(svc, client, subject_token)
        if subject_token and federated.looks_federated(subject_token):
            return self._federated(svc, client, subject_token)
        if subject_token and not _param(self.request, "role_arn"):
            # No role: the subject user's own token for the audience (sts.exchange_own_token).
            own = sts.exchange_own_token(
                svc.store,
                svc.keys(),
                svc.policy,
                subject_token=subject_token,
                audience=_param(self.request, "audience"),
                duration=sts.parse_duration_seconds(_param(self.request, "duration_seconds")),
                now=svc.clock(),
                client=client.authenticated() if client is not None else None,
                kube_claims=kube_claims_hook(svc),
            )
            return _exchanged(own)
        minted = sts.assume_role(
            svc.store,
            svc.keys(),
            svc.policy,
            subject_token=_param(self.request, "subject_token") or None,
            **self._role_request(svc),
            client=client.authenticated() if client is not None else None,
        )
        return _exchanged(minted)

    def _role_request(self, svc: Services) -> dict[str, Any]:
        """A role request's parameters, as AssumeRole, web identity and a federated
        session's exchange all take them."""
        return {
            "role_arn": _param(self.request, "role_arn"),
            "session_name": _param(self.request, "role_session_name"),
            "audience": _param(self.request, "audience"),
            "duration": sts.parse_duration_seconds(_param(self.request, "duration_seconds")),
            "now": svc.clock(),
            "kube_claims": kube_claims_hook(svc),
        }

    def _federated(
        self, svc: Services, client: AccessKeyClient | None, subject_token: str
    ) -> tuple[int, TokenExchangeResponse, list[tuple[str, str]]]:
        """A federated sign-in session's token (authbridge.signin.federated.exchange)."""
        if client is not None:
            raise sts.GrantRefused(
                "subject_token is a sign-in through an identity provider: no access key goes"
                " with it",
                hint="send no client credentials",
            )
        minted = federated.exchange(
            svc.store,
            svc.keys(),
            svc.policy,
            subject_token=subject_token,
            **self._role_request(svc),
        )
        return _exchanged(minted)

    def _web_identity(
        self, svc: Services, client: AccessKeyClient | None, subject_token: str
    ) -> tuple[int, TokenExchangeResponse, list[tuple[str, str]]]:
        """AssumeRoleWithWebIdentity (authbridge.web_identity): the token is the credential."""
        if client is not None:
            raise sts.InvalidRequest(
                "client_id",
                "AssumeRoleWithWebIdentity takes no client authentication: the web identity"
                " token is the credential",
                hint="send the request without an access key",
            )
        if not _param(self.request, "role_arn"):
            raise sts.InvalidRequest(
                "role_arn", "is required with a web identity token: the role to assume"
            )
        try:
            minted = self._assume_with_web_identity(svc, subject_token)
        except web_identity.WebIdentityRefused as e:
            _note().detail = e.reason
            raise
        log.info(
            "issued web identity token %s for %s (source %s)",
            minted.jti,
            minted.claims["arn"],
            minted.claims["source_identity"],
        )
        _note().minted = minted
        body: TokenExchangeResponse = {
            **_token_response(minted),
            "issued_token_type": TOKEN_TYPE_JWT,
        }
        return 200, body, JSON_NO_STORE

    def _assume_with_web_identity(self, svc: Services, subject_token: str) -> MintedToken:
        return web_identity.assume_role_with_web_identity(
            svc.store,
            svc.keys(),
            svc.policy,
            svc.upstream,
            web_identity_token=subject_token,
            **self._role_request(svc),
        )


def _exchanged(minted: MintedToken) -> tuple[int, TokenExchangeResponse, list[tuple[str, str]]]:
    """A token exchange's answer (RFC 8693 §2.2.1), logged and noted for the audit line."""
    log.info("issued %s token %s for %s", "token-exchange", minted.jti, minted.claims["arn"])
    _note().minted = minted
    body: TokenExchangeResponse = {**_token_response(minted), "issued_token_type": TOKEN_TYPE_JWT}
    return 200, body, JSON_NO_STORE


def is_web_identity(svc: Services, token_type: str, subject_token: str) -> bool:
    """Whether a token exchange's subject is an upstream provider's token (web identity).

    An ``id_token`` always is (an authbridge token sent as one is refused, saying so);
    a ``jwt`` is when its (unverified) ``iss`` is not this issuer; an ``access_token``
    never is. The token is then verified as its issuer's, never by its own say-so.
    """
    if token_type == TOKEN_TYPE_ACCESS_TOKEN:
        return False
    iss = web_identity.peek_issuer(subject_token)
    if token_type == TOKEN_TYPE_ID_TOKEN:
        if iss == svc.policy.issuer:
            raise sts.InvalidRequest(
                "subject_token_type",
                "an authbridge token is not an id_token of an OIDC provider",
                hint=f"send it with subject_token_type {TOKEN_TYPE_JWT}",
            )
        _note().web_identity = True
        return True
    # A jwt that names no issuer is refused as authbridge's own tokens are, as before.
    _note().web_identity = iss is not None and iss != svc.policy.issuer
    return _note().web_identity


class _SigninGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]  # untyped authlib
    """A grant of the public client ``authbridge-cli``: ``client_id`` in the form, no secret.

    No Authlib client authentication: the client id is checked
    (:func:`authbridge.signin.check_client`, ``invalid_client`` 401), and a
    secret sent along is refused the same way (a public client has none).
    """

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    REQUIRED: tuple[str, ...] = ()

    def validate_token_request(self) -> None:
        if _presents_client_credentials(flask_request):
            raise signin.UnknownClient(
                f"the client {signin.CLI_CLIENT_ID} is public: send client_id, no secret"
            )
        signin.check_client(_param(self.request, "client_id"))
        self.request.client = None
        for name in self.REQUIRED:
            if not _param(self.request, name):
                raise InvalidRequestError(f"{name} is required")
        if "audience" in self.request.form or "resource" in self.request.form:
            raise InvalidRequestError(
                "audience is not supported on this grant: the access token is for the sts"
                " audience; exchange it (token exchange) for a cluster's token"
            )

    def _answer(self, tokens: signin.SessionTokens) -> tuple[int, SessionTokenResponse, Any]:
        note = _note()
        note.minted = tokens.access
        note.sid = tokens.session.session_id
        log.info(
            "issued %s token %s for %s (sign-in session %s)",
            self.GRANT_TYPE,
            tokens.access.jti,
            tokens.access.claims["arn"],
            tokens.session.session_id,
        )
        body: SessionTokenResponse = {
            **_token_response(tokens.access),
            "refresh_token": tokens.refresh_token,
            "refresh_token_expires_in": tokens.refresh_expires_in,
        }
        return 200, body, JSON_NO_STORE


class DeviceCodeGrant(_SigninGrant):
    """RFC 8628 §3.4: polling with the device code."""

    GRANT_TYPE = DEVICE_CODE
    REQUIRED = ("device_code",)

    def create_token_response(self) -> tuple[int, SessionTokenResponse, Any]:
        svc: Services = self.server.svc
        return self._answer(
            signin.redeem_device_code(
                svc.store,
                svc.keys(),
                svc.policy,
                device_code=_param(self.request, "device_code"),
                client_id=signin.CLI_CLIENT_ID,
                lifetimes=signin.session_lifetimes(svc.settings),
                now=svc.clock(),
            )
        )


class AuthorizationCodeGrant(_SigninGrant):
    """RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.5): the code, the redirect URI, the verifier."""

    GRANT_TYPE = "authorization_code"
    REQUIRED = ("code",)  # a missing redirect_uri or code_verifier: invalid_grant

    def create_token_response(self) -> tuple[int, SessionTokenResponse, Any]:
        svc: Services = self.server.svc
        return self._answer(
            signin.redeem_authorization_code(
                svc.store,
                svc.keys(),
                svc.policy,
                code=_param(self.request, "code"),
                client_id=signin.CLI_CLIENT_ID,
                redirect_uri=_param(self.request, "redirect_uri"),
                code_verifier=_param(self.request, "code_verifier"),
                lifetimes=signin.session_lifetimes(svc.settings),
                now=svc.clock(),
            )
        )


class RefreshTokenGrant(_SigninGrant):
    """RFC 6749 §6: a refresh token of a sign-in session, rotated; ``scope`` is ignored."""

    GRANT_TYPE = "refresh_token"
    REQUIRED = ("refresh_token",)

    def create_token_response(self) -> tuple[int, SessionTokenResponse, Any]:
        svc: Services = self.server.svc
        return self._answer(
            signin.refresh_session(
                svc.store,
                svc.keys(),
                svc.policy,
                refresh_token=_param(self.request, "refresh_token"),
                client_id=signin.CLI_CLIENT_ID,
                now=svc.clock(),
            )
        )


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
        _note().inactive = e.code
        return {"active": False}
    _note().verified = verified
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
        if "." not in token:  # not a JWT: a refresh token (whatever token_type_hint says)
            sid = signin.revoke_refresh_token(svc.store, token, svc.clock())
            if sid is not None:
                log.info("ended sign-in session %s (refresh token revoked)", sid)
            _note().sid = sid
            _note().revoked = sid
        else:
            jti = sts.revoke_token(svc.store, svc.keys(), svc.policy, token, now=svc.clock())
            if jti is not None:
                log.info("revoked token %s", jti)
            _note().revoked = jti
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
    grant_type = flask_request.form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError("grant_type is required: client_credentials or " + TOKEN_EXCHANGE)
    if grant_type != TOKEN_EXCHANGE and grant_type not in SIGNIN_GRANT_TYPES:
        response: Response = _server().create_token_response()
        return response
    # A refused exchange or sign-in grant (invalid_grant, an unknown client) is charged
    # like a failed client authentication, and a limited address gets 429 before its
    # subject token, code or refresh token is looked at (limits). Polls that are told to
    # wait (authorization_pending, slow_down) are not failures.
    attempt = limits.begin_token_exchange(_server().svc.clock())
    try:
        response = _server().create_token_response()
    except (sts.GrantRefused, signin.UnknownClient):
        attempt.failed()
        raise
    except BaseException:
        attempt.abandoned()
        raise
    return response


@bp.post(DEVICE_AUTHORIZATION_PATH)
def device_authorization() -> Response:
    """RFC 8628 §3.1: a device code and a user code for ``authbridge-cli``.

    Every request is charged to its client address (a request makes a row):
    past ``failedAuthPerAddressPerMinute`` a minute, 429 with Retry-After.
    """
    _check_form_request()
    svc = _server().svc
    limits.charge_device_authorization(svc.clock())
    if _presents_client_credentials(flask_request):
        raise signin.UnknownClient(
            f"the client {signin.CLI_CLIENT_ID} is public: send client_id, no secret"
        )
    form = flask_request.form
    signin.check_client(form.get("client_id"))
    scope = form.get("scope", "")
    if len(scope) > 256 or not all(" " <= c <= "~" and c not in '"\\' for c in scope):
        raise OAuth2Error(
            error="invalid_scope", description="scope must be at most 256 scope characters"
        )
    started = signin.start_device_authorization(
        svc.store, svc.policy, client_id=signin.CLI_CLIENT_ID, scope=scope, now=svc.clock()
    )
    log.info("device authorization started for %s", signin.CLI_CLIENT_ID)
    body: DeviceAuthorizationResponse = {
        "device_code": started.device_code,
        "user_code": started.user_code,
        "verification_uri": started.verification_uri,
        "verification_uri_complete": started.verification_uri_complete,
        "expires_in": started.expires_in,
        "interval": started.interval,
    }
    return Response(json.dumps(body), status=200, headers=JSON_NO_STORE)


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


# --------------------------------------------------------------------------- audit, metrics

_EVENTS: Final[dict[str, audit.Event]] = {
    "token": "token_issued",
    "introspection": "introspect",
    "revocation": "revoke",
    "device_authorization": "device_authorization",
}
_GRANTS: Final[dict[str, metrics.Grant]] = {
    "client_credentials": "client_credentials",
    TOKEN_EXCHANGE: "token_exchange",
    DEVICE_CODE: "device_code",
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
}
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")  # RFC 6749 §5.2 codes, as errors.to_wire makes them
_NOTE: Final = "authbridge_oauth_note"


@dataclass
class _Note:
    """What this request did, for its audit line and metrics (kept in ``flask.g``)."""

    started: float = field(default_factory=time.perf_counter)
    client: AccessKeyClient | None = None  # the client it authenticated as, or tried to
    minted: MintedToken | None = None
    verified: VerifiedToken | None = None  # introspection: the token, when active
    inactive: str | None = None  # introspection: why not (a token error code)
    revoked: str | None = None  # revocation: the jti recorded (or the session ended)
    sid: str | None = None  # the sign-in session a token came from, or a revocation ended
    web_identity: bool = False  # a token exchange of an upstream provider's token
    detail: str | None = None  # web identity: the refusal's reason code


def _note() -> _Note:
    note = g.get(_NOTE)
    if not isinstance(note, _Note):
        note = _Note()
        setattr(g, _NOTE, note)
    return note


def _form(name: str) -> str | None:
    """A form value, None when absent or when the body cannot be read (413)."""
    try:
        value = flask_request.form.get(name)
    except Exception:  # noqa: BLE001 - a body too large or malformed: the value is unknown
        return None
    return value if isinstance(value, str) and value else None


def _error_code(response: Response) -> str:
    body = response.get_json(silent=True)
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "server_error"


def _client_fields(note: _Note) -> dict[str, Any]:
    """The client's access key and, once authenticated, its user; never the secret."""
    client = note.client
    key_id = client.client_id if client is not None else None
    if key_id is None:
        header = flask_request.headers.get("Authorization")
        claimed = _basic_credentials(header) if header and len(header) < 1024 else None
        key_id = claimed[0] if claimed is not None else _form("client_id")
    fields: dict[str, Any] = {
        # Only a well-formed id is shown (a secret pasted into client_id is not one).
        "access_key_id": key_id if key_id and looks_like_access_key_id(key_id) else None
    }
    if client is not None and client.user is not None:
        user = client.user
        fields.update(arn=user.arn, canonical_arn=user.arn, principal_id=user.user_id)
    return fields


def _principal_fields(principal: Principal) -> dict[str, Any]:
    return {
        "arn": principal.arn,
        "canonical_arn": principal.canonical_arn,
        "principal_id": principal.principal_id,
        "session": principal.session_name,
        "access_key_id": principal.access_key_id,
    }


def _subject(svc: Services) -> Principal | None:
    """The user behind a token exchange's subject_token, if it verifies."""
    subject_token = _form("subject_token")
    if subject_token is None:
        return None
    try:
        verified = sts.verify_token(
            svc.store,
            svc.keys(),
            svc.policy,
            subject_token,
            audiences=(svc.policy.sts_audience,),
            now=svc.clock(),
        )
    except Exception:  # noqa: BLE001 - refused or unverifiable: no principal to name
        return None
    return verified.principal


def _served(svc: Services, audiences: list[str] | str | None) -> list[str] | None:
    wanted = [audiences] if isinstance(audiences, str) else audiences or []
    served = [a for a in wanted if a in svc.settings.cluster_ids]
    return served or None


def _token_line(
    svc: Services, note: _Note, failed: bool, *, verify_subject: bool = True
) -> dict[str, Any]:
    grant = _form("grant_type")
    fields: dict[str, Any] = {"grant": _GRANTS.get(grant or "", "other")}
    if note.web_identity:
        fields["grant"] = "web_identity"
        if note.minted is not None and not failed:
            fields["source_identity"] = note.minted.claims.get("source_identity")
        elif note.detail is not None:
            fields["detail"] = note.detail
        verify_subject = False  # not an authbridge token: nothing of ours to name
    subject = _subject(svc) if grant == TOKEN_EXCHANGE and verify_subject else None
    if note.minted is not None and not failed:
        claims = note.minted.claims
        fields.update(
            arn=claims["arn"],
            canonical_arn=claims["sub"],
            principal_id=claims["principal_id"],
            session=claims.get("session_name"),
            access_key_id=claims.get("access_key_id"),
            username=claims.get("k8s_username"),
            groups=claims.get("k8s_groups"),
            audience=_served(svc, claims["aud"]),
            jti=note.minted.jti,
            sid=claims.get("sid") if isinstance(claims.get("sid"), str) else None,
        )
        if subject is not None:
            fields.update(source_arn=subject.arn, access_key_id=subject.access_key_id)
        return fields
    fields.update(_client_fields(note))
    if subject is not None:
        fields.update(_principal_fields(subject))
    fields["audience"] = _served(svc, _form("audience"))
    return fields


def _account(response: Response) -> Response:
    """After every answer of the token, introspection, revocation and device authorization
    endpoints: audit, count."""
    event = _EVENTS.get((flask_request.endpoint or "").rpartition(".")[2])
    if event is None:
        return response
    svc = _server().svc
    note = _note()
    status = response.status_code
    error = _error_code(response) if status >= 400 else None
    outcome: audit.Outcome = "allowed" if error is None else "error" if status >= 500 else "denied"
    fields: dict[str, Any]
    if event == "token_issued":
        # A limited caller (429) must not cost a token verification for its audit line.
        fields = _token_line(
            svc, note, failed=error is not None, verify_subject=error != "too_many_requests"
        )
        if error is None:
            metrics.TOKENS_ISSUED.labels(grant=fields["grant"]).inc()
        else:
            metrics.TOKEN_FAILURES.labels(grant=fields["grant"], error=error).inc()
        reason = error or "ok"
    elif event == "device_authorization":
        fields, reason = {}, error or "ok"
    else:
        fields = {"caller": _client_fields(note)["access_key_id"]}
        if event == "introspect":
            if error is None and note.verified is not None:
                fields.update(_principal_fields(note.verified.principal))
                fields.update(audience=_served(svc, note.verified.audiences), jti=note.verified.jti)
                result, reason = "active", "ok"
            elif error is None:
                result, reason = "inactive", note.inactive or "inactive"
                outcome = "denied"
            else:
                result, reason = ("error" if outcome == "error" else "refused"), error
            metrics.INTROSPECTIONS.labels(result=result).inc()
        else:
            if error is None:
                result = reason = "revoked" if note.revoked else "not_revocable"
                if note.sid is not None:  # a refresh token: its session was ended
                    fields["sid"] = note.sid
                else:
                    fields["jti"] = note.revoked
            else:
                result, reason = ("error" if outcome == "error" else "refused"), error
            metrics.REVOCATIONS.labels(result=result).inc()
    audit_writer().write(
        audit.record(
            event,
            request_id=audit.new_request_id(),
            client=limits.audit_client(flask_request.environ, svc.settings.trusted_proxies),
            outcome=outcome,
            reason=reason,
            started=note.started,
            **fields,
        )
    )
    return response


def _start() -> None:
    _note()  # starts the clock


bp.before_request(_start)
bp.after_request(_account)


def install(app: Flask, svc: Services) -> OAuthServer:
    # Authlib logs caller input at DEBUG: the client_id it tried, which may be a secret
    # pasted into the wrong field (tests/test_audit_canary.py). Never below INFO.
    authlib_log = logging.getLogger("authlib")
    if authlib_log.level < logging.INFO:
        authlib_log.setLevel(logging.INFO)
    server = OAuthServer(svc)
    app.extensions[EXTENSION] = server
    return server
