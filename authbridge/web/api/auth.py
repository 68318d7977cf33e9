"""Who calls the admin API: an admin-audience bearer token, or an access key (HTTP Basic).

``Authorization: Bearer <token>``
    An authbridge token whose ``aud`` is exactly the admin audience (the
    issuer URL + ``/admin``; DESIGN.md "Audiences"), of a user or a role
    session, verified as strictly as the token endpoint verifies subject
    tokens (:func:`authbridge.sts.verify_token_facts`: signature and
    algorithm, issuer, lifetime, revocation of the token and of the token it
    was exchanged from, the principal, the source user and the source access
    key). A cluster token is refused as such ("a cluster token is not an
    admin credential"), and so is an ``sts`` token (it is for the token
    endpoint only); so is any token carrying the admin audience beside
    another.
``Authorization: Basic base64(<access key id>:<secret>)``
    Access-key client authentication, exactly as the token endpoint's
    ``client_secret_basic`` (RFC 6749 §2.3.1): the key must be active and its
    user enabled. One message for every way it fails.

Failures are charged to the token endpoint's failed-authentication limits
(:mod:`authbridge.web.limits`: per client address, and per access key id
for Basic), and a limited caller gets 429 ``Throttling`` before any secret
or token is looked at.
"""

from __future__ import annotations

from typing import Final

from authbridge import sts
from authbridge.admin.authorize import Caller
from authbridge.errors import (
    AuthbridgeError,
    InvalidCredentials,
    StoreUnavailable,
    TokenError,
    TokenExpired,
)
from authbridge.web import limits
from authbridge.web.context import Services
from authbridge.web.errors import CLIENT_AUTH_FAILED
from authbridge.web.oauth import basic_credentials

BEARER: Final = "bearer"
BASIC: Final = "basic"
NOT_AN_ADMIN_CREDENTIAL: Final = "a cluster token is not an admin credential"


class NotAuthenticated(AuthbridgeError):
    """401: no credential, or one that does not authenticate (``code`` says which)."""

    code = "InvalidClientTokenId"

    def __init__(self, message: str, *, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        if code is not None:
            self.code = code


def authenticate(svc: Services, authorization: str | None) -> Caller:
    """The caller the ``Authorization`` header proves, or NotAuthenticated / 429."""
    if not authorization or not authorization.strip():
        raise NotAuthenticated(
            "the request has no credentials",
            code="MissingAuthenticationToken",
            hint=f"send Authorization: Bearer <a token for audience {svc.policy.admin_audience}>"
            " or HTTP Basic with an access key",
        )
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == BASIC:
        return _access_key(svc, authorization)
    if scheme == BEARER:
        return _token(svc, value.strip())
    raise NotAuthenticated(
        "the Authorization scheme must be Bearer (an admin token) or Basic (an access key)"
    )


def _access_key(svc: Services, authorization: str) -> Caller:
    credentials = basic_credentials(authorization)
    attempt = limits.begin_client_authentication(
        credentials[0] if credentials else None, svc.clock()
    )
    try:
        if credentials is None:
            raise InvalidCredentials(CLIENT_AUTH_FAILED)
        key, user = svc.store.authenticate_access_key(*credentials)
    except InvalidCredentials:
        attempt.failed()
        raise NotAuthenticated(CLIENT_AUTH_FAILED) from None
    except BaseException:
        attempt.abandoned()
        raise
    attempt.succeeded()
    return Caller(
        arn=user.arn,
        canonical_arn=user.arn,
        account_id=user.account_id,
        principal_id=user.user_id,
        user_name=user.name,
        source_identity=user.user_id,
        method="access_key",
        access_key_id=key.access_key_id,
    )


def _token(svc: Services, token: str) -> Caller:
    attempt = limits.begin_client_authentication(None, svc.clock())
    try:
        caller = _verify(svc, token)
    except NotAuthenticated:
        attempt.failed()
        raise
    except StoreUnavailable:
        attempt.abandoned()
        raise
    return caller


def _verify(svc: Services, token: str) -> Caller:
    policy = svc.policy
    admin = policy.admin_audience
    if not token:
        raise NotAuthenticated("the Bearer token is empty")
    try:
        # Every audience of ours, so that a cluster or sts token is told apart and named.
        verified, facts = sts.verify_token_facts(
            svc.store,
            svc.keys(),
            policy,
            token,
            audiences=policy.cluster_ids | policy.service_audiences,
            now=svc.clock(),
        )
    except TokenExpired as e:
        raise NotAuthenticated(e.message, code="ExpiredToken", hint="get a new token") from None
    except TokenError as e:
        raise NotAuthenticated(f"the token is refused: {e.message}") from None
    if verified.audiences != [admin]:
        if policy.cluster_ids.intersection(verified.audiences):
            raise NotAuthenticated(
                NOT_AN_ADMIN_CREDENTIAL,
                hint=f"get a token for audience {admin} (client_credentials with that audience,"
                " or AssumeRole with it)",
            )
        raise NotAuthenticated(
            f"the token is not for the admin API: its audience must be exactly {admin}"
            " (an sts token is only for the token endpoint)"
        )
    principal = verified.principal
    amr = verified.claims.get("amr")
    mfa = verified.claims.get("mfa") is True or (isinstance(amr, list) and "mfa" in amr)
    return Caller(
        arn=principal.arn,
        canonical_arn=principal.canonical_arn,
        account_id=principal.account_id,
        principal_id=principal.principal_id,
        user_name=facts.user_name if principal.session_name is None else None,
        source_identity=principal.source,
        method="token",
        access_key_id=principal.access_key_id,
        session_name=principal.session_name,
        mfa=mfa,
        jti=verified.jti,
    )
