"""Sign-in: the authorization server's service layer (device and code grants, sessions).

Flask-free, between the web surfaces (the sign-in pages, the token endpoint)
and the store. See :mod:`authbridge.signin.authorize` for the authorization
request's checks, :mod:`authbridge.signin.service` for the rest, and
:mod:`authbridge.iam.sessions` for the values, codes and lifetimes.

Public API (the pages and the CLI code against these names)::

    validate_authorize_request(params) -> AuthorizeRequest      raises AuthorizeError
    issue_authorization_code(store, request, *, user_id, mfa, now) -> str
    find_device_request(store, user_code, now) -> DeviceRequest | None
    approve_device(store, user_code, *, user_id, mfa, now)      raises DeviceCodeError
    deny_device(store, user_code, now)                          raises DeviceCodeError
    start_browser_session(store, *, user_id, mfa, address, now[, lifetimes]) -> (id, secret)
    browser_session(store, secret, now) -> BrowserSession | None
    end_session(store, session_id, now) -> bool
    end_user_sessions(store, account_id, user_name, now) -> int

and, for the token endpoint: start_device_authorization, redeem_device_code,
redeem_authorization_code, refresh_session, revoke_refresh_token.
"""

from __future__ import annotations

from authbridge.iam.sessions import CLI_CLIENT_ID, SessionLifetimes, normalize_user_code
from authbridge.signin.authorize import (
    AuthorizeError,
    AuthorizeRequest,
    redirect_uri_problem,
    validate_authorize_request,
)
from authbridge.signin.service import (
    DEVICE_PATH,
    SESSION_ENDED,
    AccessDenied,
    AuthorizationPending,
    BrowserSession,
    DeviceAuthorization,
    DeviceCodeError,
    DeviceRequest,
    ExpiredToken,
    SessionEnded,
    SessionGrantRefused,
    SessionTokens,
    SigninGrantError,
    SlowDown,
    UnknownClient,
    approve_device,
    browser_session,
    check_client,
    deny_device,
    end_session,
    end_user_sessions,
    find_device_request,
    issue_authorization_code,
    redeem_authorization_code,
    redeem_device_code,
    refresh_session,
    revoke_refresh_token,
    session_claims,
    session_lifetimes,
    session_tokens,
    start_browser_session,
    start_device_authorization,
)

__all__ = [
    "CLI_CLIENT_ID",
    "DEVICE_PATH",
    "SESSION_ENDED",
    "AccessDenied",
    "AuthorizationPending",
    "AuthorizeError",
    "AuthorizeRequest",
    "BrowserSession",
    "DeviceAuthorization",
    "DeviceCodeError",
    "DeviceRequest",
    "ExpiredToken",
    "SessionEnded",
    "SessionGrantRefused",
    "SessionLifetimes",
    "SessionTokens",
    "SigninGrantError",
    "SlowDown",
    "UnknownClient",
    "approve_device",
    "browser_session",
    "check_client",
    "deny_device",
    "end_session",
    "end_user_sessions",
    "find_device_request",
    "issue_authorization_code",
    "normalize_user_code",
    "redeem_authorization_code",
    "redeem_device_code",
    "redirect_uri_problem",
    "refresh_session",
    "revoke_refresh_token",
    "session_claims",
    "session_lifetimes",
    "session_tokens",
    "start_browser_session",
    "start_device_authorization",
    "validate_authorize_request",
]
