"""HTTP to the issuer's token endpoint: GetSessionToken and AssumeRole, over verified TLS.

Only imported when a token has to be minted: :mod:`urllib.request` and
:mod:`ssl` cost more to import than a cached ``authbridge token`` takes in total.

The contract (``POST {endpoint}/oauth2/token``, form-encoded, RFC 6749 §3.2):

* user token ("GetSessionToken"), RFC 6749 §4.4 client credentials:
  ``grant_type=client_credentials&audience=<cluster>[&duration_seconds=N]``,
  the access key id and secret as HTTP Basic client credentials, each
  form-urlencoded first (RFC 6749 §2.3.1);
* ``sts`` token: the same client credentials grant with ``audience`` = the
  issuer URL + ``/sts`` (:func:`sts_audience`, as ``authbridge.sts`` says),
  the issuer URL read once from ``GET {endpoint}/.well-known/openid-configuration``
  (the endpoint the client talks to need not be the issuer URL). That token
  is only ever sent back to this endpoint, as a subject token: a cluster
  token is never one (the issuer refuses it);
* role token ("AssumeRole"), RFC 8693 token exchange, no client authentication:
  ``grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=<sts
  token>&subject_token_type=urn:ietf:params:oauth:token-type:jwt&audience=<cluster>
  &role_arn=<ARN>&role_session_name=<name>[&duration_seconds=N]``;
* success (RFC 6749 §5.1): ``{"access_token", "token_type": "Bearer",
  "expires_in"[, "issued_token_type"]}``; refusal (RFC 6749 §5.2):
  ``{"error", "error_description"}``, usually with 400 or 401.

The token's expiry is the time the request was sent plus ``expires_in``: a
relative lifetime, so a client clock that is off does not make kubectl keep a
token the server already refuses. Without ``expires_in`` the JWT's ``exp`` is
read (base64 and JSON only: the token comes over verified TLS from the issuer,
and the cluster checks its signature anyway).

Transport rules: https only; the CA bundle given (``--ca-file``) or the system
trust store, never no verification; 10 s connect and read timeouts; redirects
are not followed (they would carry the client credentials elsewhere).
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, NoReturn
from urllib.parse import quote_plus, urlencode

from authbridge import __version__
from authbridge.client.connection import BadCaFile, RefuseRedirects, Words, explain, tls_context
from authbridge.client.errors import IssuerError, IssuerRefused
from authbridge.client.fastpath import is_token

__all__ = [
    "DISCOVERY_PATH",
    "GRANT_AUTHORIZATION_CODE",
    "GRANT_CLIENT_CREDENTIALS",
    "GRANT_DEVICE_CODE",
    "GRANT_REFRESH_TOKEN",
    "GRANT_TOKEN_EXCHANGE",
    "MAX_RESPONSE_BYTES",
    "TIMEOUT",
    "TOKEN_PATH",
    "TOKEN_TYPE_JWT",
    "IssuedToken",
    "Issuer",
    "basic_authorization",
    "jwt_exp",
    "parse_discovery",
    "parse_refusal",
    "parse_success",
    "sts_audience",
]

# S105: protocol names (a URL path, RFC 8693 URNs), not passwords.
TOKEN_PATH = "/oauth2/token"  # noqa: S105
DISCOVERY_PATH = "/.well-known/openid-configuration"
STS_AUDIENCE_PATH = "/sts"  # authbridge.sts.STS_AUDIENCE_PATH (the server side, not imported here)
_MAX_ISSUER = 2048
TIMEOUT = 10.0  # seconds, for the TCP connect and for each read
MAX_RESPONSE_BYTES = 64 * 1024
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105
TOKEN_TYPE_ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
_MAX_TOKEN = 8192  # authbridge.tokens.MAX_TOKEN_SIZE
_MAX_DESCRIPTION = 300
_CA_HINT = "pass --ca-file (or set ca_file in the profile, or AUTHBRIDGE_CA_FILE)"
_WORDS = Words(
    service="the issuer",
    endpoint="--endpoint",
    ca_hint=_CA_HINT,
    refused_hint="check --endpoint and that the authbridge server is running",
)

# What to do about each RFC 6749 §5.2 / RFC 8693 §2.2.2 error code.
_HINTS = {
    "invalid_client": "check the access key id and secret, `authbridge configure`",
    "invalid_target": "check --cluster-id: the issuer does not issue tokens for that cluster",
    "invalid_request": "check --cluster-id, --role, --session-name and --duration",
    "invalid_scope": "check --cluster-id, --role, --session-name and --duration",
    "unauthorized_client": "this access key may not use that grant; ask the authbridge"
    " administrator",
    "unsupported_grant_type": "check that --endpoint is an authbridge server that issues"
    " tokens to `authbridge token`",
    "access_denied": "ask the authbridge administrator for access",
    "server_error": "try again; if it persists, tell the authbridge administrator",
    "temporarily_unavailable": "try again shortly",
}
_GRANT_HINTS = {
    GRANT_CLIENT_CREDENTIALS: "the access key or its user is not accepted; check them with"
    " the authbridge administrator, or `authbridge configure`",
    GRANT_TOKEN_EXCHANGE: "check that --role names a role that trusts your user (or one of"
    " its groups) and that --duration is within its maximum session duration",
}
# The sign-in grants (authbridge.client.signin), all of the public client authbridge-cli.
GRANT_DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_AUTHORIZATION_CODE = "authorization_code"
GRANT_REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type, not a token
_SIGNED_OUT = "the sign-in session has ended; run `authbridge login` again"
_GRANT_HINTS[GRANT_REFRESH_TOKEN] = _SIGNED_OUT
_GRANT_HINTS[GRANT_DEVICE_CODE] = "run `authbridge login` again for a new code"
_GRANT_HINTS[GRANT_AUTHORIZATION_CODE] = "run `authbridge login` again"
_OWN_TOKEN = "own-token"  # noqa: S105 - the hint key of an exchange without role_arn
_GRANT_HINTS[_OWN_TOKEN] = (
    "the sign-in session cannot be used for that cluster; check --cluster-id, or run"
    " `authbridge login` again"
)
_DEFAULT_HINT = "ask the authbridge administrator"


@dataclass(frozen=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_at: int  # epoch seconds, on this machine's clock


def sts_audience(issuer: str) -> str:
    """The audience of subject tokens: the issuer URL + ``/sts``, as ``authbridge.sts`` says."""
    return issuer.rstrip("/") + STS_AUDIENCE_PATH


def parse_discovery(body: bytes, endpoint: str) -> str:
    """The ``issuer`` of an OIDC discovery document; :class:`IssuerError` if there is none."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    issuer = doc.get("issuer") if isinstance(doc, dict) else None
    if (
        not isinstance(issuer, str)
        or not issuer.startswith(("https://", "http://"))
        or len(issuer) > _MAX_ISSUER
        or not issuer.isprintable()
    ):
        raise IssuerError(
            f"the issuer at {endpoint} has no usable discovery document ({DISCOVERY_PATH})",
            hint="check that --endpoint is the URL of the authbridge server",
        )
    return issuer


def basic_authorization(client_id: str, secret: str) -> str:
    """The ``Authorization`` header value for client credentials (RFC 6749 §2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def jwt_exp(token: str) -> int | None:
    """The ``exp`` claim of a compact JWT, unverified, or ``None`` if it has none."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError):  # binascii.Error is a ValueError
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        return None
    return int(exp)


def _is_error_code(value: object) -> bool:
    # RFC 6749 §5.2: error is %x20-21 / %x23-5B / %x5D-7E.
    return (
        isinstance(value, str)
        and 0 < len(value) <= 100
        and all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in value)
    )


def parse_success(body: bytes, sent_at: float, endpoint: str) -> IssuedToken:
    """The token in an RFC 6749 §5.1 answer; :class:`IssuerError` if it is not one."""
    check = "check that --endpoint is the URL of the authbridge server"
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise IssuerError(
            f"the issuer at {endpoint} answered with something that is not JSON", hint=check
        ) from e
    if not isinstance(doc, dict):
        raise IssuerError(f"the issuer at {endpoint} answered with a non-object", hint=check)
    token = doc.get("access_token")
    if not is_token(token):
        raise IssuerError(f"the issuer at {endpoint} answered without a usable access_token")
    token_type = doc.get("token_type")
    # RFC 6749 §5.1: token_type is case-insensitive.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise IssuerError(f"the issuer at {endpoint} answered with a token that is not Bearer")
    expires_in = doc.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        expires_in = None
    if expires_in is not None and (not math.isfinite(expires_in) or expires_in <= 0):
        raise IssuerError(f"the issuer at {endpoint} answered with expires_in {expires_in!r}")
    if expires_in is not None:
        expires_at = int(sent_at + expires_in)
    else:
        exp = jwt_exp(token)
        if exp is None:
            raise IssuerError(f"the issuer at {endpoint} did not say when the token expires")
        expires_at = exp
    if expires_at <= sent_at:
        raise IssuerError(
            f"the issuer at {endpoint} handed out a token that has already expired",
            hint="check the clocks of this machine and the server",
        )
    return IssuedToken(token, expires_at)


def parse_refusal(status: int, body: bytes, grant: str) -> IssuerRefused | None:
    """The RFC 6749 §5.2 error in ``body``, or ``None`` if it holds none."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not _is_error_code(doc.get("error")):
        return None
    error = str(doc["error"])
    description = doc.get("error_description")
    description = description if isinstance(description, str) else ""
    if len(description) > _MAX_DESCRIPTION:
        description = description[: _MAX_DESCRIPTION - 1] + "…"
    if error == "invalid_grant":
        hint = _GRANT_HINTS.get(grant, _DEFAULT_HINT)
    else:
        hint = _HINTS.get(error, _DEFAULT_HINT)
    return IssuerRefused(error, description, status=status, hint=hint)


def _status_error(endpoint: str, status: int, reason: str) -> IssuerError:
    shown = f"HTTP {status} {reason}".strip()
    if status == 401:
        hint = _HINTS["invalid_client"]
    elif status in (404, 405):
        hint = (
            "check that --endpoint is the base URL of the authbridge server"
            f" (authbridge posts to {endpoint}{TOKEN_PATH})"
        )
    elif status >= 500:
        hint = "the server failed; try again, and tell the authbridge administrator if it persists"
    else:
        hint = "check that --endpoint is the URL of the authbridge server"
    return IssuerError(f"the issuer at {endpoint} answered {shown[:80]}", hint=hint)


def _read_limited(stream: IO[bytes], endpoint: str) -> bytes:
    body = stream.read(MAX_RESPONSE_BYTES + 1)
    if len(body) > MAX_RESPONSE_BYTES:
        raise IssuerError(
            f"the issuer at {endpoint} answered with more than {MAX_RESPONSE_BYTES // 1024} KiB",
            hint="check that --endpoint is the URL of the authbridge server",
        )
    return body


def _redirect_refused(endpoint: str) -> Callable[[int, str], IssuerError]:
    def refusal(code: int, new_url: str) -> IssuerError:
        where = new_url if len(new_url) <= 200 else new_url[:199] + "…"
        return IssuerError(
            f"the issuer at {endpoint} answered HTTP {code}, a redirect to {where}",
            hint="authbridge does not follow redirects; set --endpoint to the server's own"
            " https URL",
        )

    return refusal


class Issuer:
    """The token endpoint of one authbridge server."""

    def __init__(
        self, endpoint: str, *, ca_file: str | None = None, timeout: float = TIMEOUT
    ) -> None:
        if not endpoint.startswith("https://"):
            # authbridge.client.config checked it; this is the last line of defence.
            raise IssuerError(f"refusing to send credentials to {endpoint}: not https")
        self.endpoint = endpoint.rstrip("/")
        self.token_url = self.endpoint + TOKEN_PATH
        self.ca_file = ca_file
        self.timeout = timeout
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._tls_context()),
            RefuseRedirects(_redirect_refused(self.endpoint)),
        )

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return tls_context(self.ca_file, _CA_HINT)
        except BadCaFile as e:
            raise IssuerError(e.message, hint=e.hint) from e.__cause__

    # -- the two grants --------------------------------------------------------------------
    def session_token(
        self, access_key_id: str, secret: str, *, audience: str, duration: int | None = None
    ) -> IssuedToken:
        """A user token ("GetSessionToken"): client credentials with the access key."""
        form = {"grant_type": GRANT_CLIENT_CREDENTIALS, "audience": audience}
        if duration is not None:
            form["duration_seconds"] = str(duration)
        return self._post(form, basic_authorization(access_key_id, secret))

    def discover(self) -> str:
        """The issuer URL, from the endpoint's OIDC discovery document."""
        return parse_discovery(self.fetch(DISCOVERY_PATH), self.endpoint)

    def fetch(self, path: str) -> bytes:
        """``GET`` ``path`` of the endpoint: the 2xx body, else :class:`IssuerError`."""
        request = urllib.request.Request(  # noqa: S310 - https:// (checked in __init__)
            self.endpoint + path, headers=self._headers(), method="GET"
        )
        return self._send(request, None)

    def sts_token(self, access_key_id: str, secret: str) -> IssuedToken:
        """A user token for the ``sts`` audience: the subject token of :meth:`assume_role`."""
        return self.session_token(access_key_id, secret, audience=sts_audience(self.discover()))

    def assume_role(
        self,
        subject_token: str,
        *,
        audience: str,
        role_arn: str,
        session_name: str,
        duration: int | None = None,
    ) -> IssuedToken:
        """A role token ("AssumeRole"): RFC 8693 exchange of an ``sts`` token."""
        form = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": TOKEN_TYPE_JWT,
            "audience": audience,
            "role_arn": role_arn,
            "role_session_name": session_name,
        }
        if duration is not None:
            form["duration_seconds"] = str(duration)
        return self._post(form, None)

    def assume_role_with_web_identity(
        self,
        web_identity_token: str,
        *,
        audience: str,
        role_arn: str,
        session_name: str,
        duration: int | None = None,
    ) -> IssuedToken:
        """A role token for an OIDC provider's token (AssumeRoleWithWebIdentity, RFC 8693).

        No client authentication: the web identity token is the credential.
        """
        form = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": web_identity_token,
            "subject_token_type": TOKEN_TYPE_ID_TOKEN,
            "audience": audience,
            "role_arn": role_arn,
            "role_session_name": session_name,
        }
        if duration is not None:
            form["duration_seconds"] = str(duration)
        return self._post(form, None)

    def own_token(
        self, subject_token: str, *, audience: str, duration: int | None = None
    ) -> IssuedToken:
        """The subject user's own token for ``audience``: RFC 8693 exchange, no ``role_arn``
        (a signed-in user's cluster token, from the session's ``sts`` token)."""
        form = {
            "grant_type": GRANT_TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": TOKEN_TYPE_JWT,
            "audience": audience,
        }
        if duration is not None:
            form["duration_seconds"] = str(duration)
        return self._post(form, None, hint=_OWN_TOKEN)

    # -- transport ---------------------------------------------------------------------------
    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": f"authbridge/{__version__}"}

    def _post(
        self, form: dict[str, str], authorization: str | None, hint: str | None = None
    ) -> IssuedToken:
        body, sent_at = self.post_form(TOKEN_PATH, form, authorization, hint=hint)
        return parse_success(body, sent_at, self.endpoint)

    def post_form(
        self,
        path: str,
        form: dict[str, str],
        authorization: str | None = None,
        *,
        hint: str | None = None,
    ) -> tuple[bytes, float]:
        """POST ``form`` to ``path``: the 2xx body and when it was sent, else the error.

        ``hint`` picks what an ``invalid_grant`` refusal advises (default: the grant type).
        """
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self._headers()}
        if authorization is not None:
            headers["Authorization"] = authorization
        # S310: the endpoint is https:// (checked in __init__), never file: or another scheme.
        request = urllib.request.Request(  # noqa: S310
            self.endpoint + path,
            data=urlencode(form).encode("ascii"),
            headers=headers,
            method="POST",
        )
        sent_at = time.time()
        return self._send(request, hint or form.get("grant_type", "")), sent_at

    def _send(self, request: urllib.request.Request, grant: str | None) -> bytes:
        """The body of a 2xx answer; the error the answer is otherwise (``grant``: a token call)."""
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body = _read_limited(response, self.endpoint)
        except urllib.error.HTTPError as e:
            error_body = b""
            if e.fp is not None:
                try:
                    error_body = _read_limited(e, self.endpoint)
                except (OSError, http.client.HTTPException):
                    pass  # the status line says enough
                finally:
                    e.close()
            refusal = parse_refusal(e.code, error_body, grant) if grant is not None else None
            if refusal is not None:
                raise refusal from None
            raise _status_error(self.endpoint, e.code, str(e.reason)) from None
        except urllib.error.URLError as e:
            self._unreachable(e.reason, e)
        except (OSError, http.client.HTTPException) as e:
            self._unreachable(e, e)
        return body

    def _unreachable(self, reason: object, cause: BaseException) -> NoReturn:
        message, hint = explain(
            reason, where=self.endpoint, timeout=self.timeout, ca_file=self.ca_file, words=_WORDS
        )
        raise IssuerError(message, hint=hint) from cause
