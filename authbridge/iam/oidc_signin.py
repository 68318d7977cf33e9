"""A provider's sign-in configuration, and the session name of a person it signs in (pure).

An OIDC provider registered in IAM (:mod:`authbridge.iam.oidc_provider`) may
also be a *sign-in provider*: the login page then offers "Sign in with
<display name>", and authbridge runs the authorization code flow with PKCE
against it (authbridge is the provider's client ``client_id``). What is
configured, each value checked here before anything is stored, every refusal
an :class:`~authbridge.errors.InputError` naming the field and the fix:

* ``DisplayName``: 1 to :data:`MAX_DISPLAY_NAME` printable characters, no
  leading or trailing space (it is the button's label);
* ``ClientID``: a client id of the provider's ``ClientIDList`` (the ID token's
  ``aud`` must hold it), checked by :func:`check_client_id`;
* ``Scopes``: RFC 6749 §3.3 scope tokens (1 to :data:`MAX_SCOPE` characters of
  ``%x21 / %x23-5B / %x5D-7E``), at most :data:`MAX_SCOPES` of them, duplicates
  folded, order kept; :data:`DEFAULT_SCOPES` when none are given, and
  ``openid`` put first when it is missing (an authorization request without it
  is not OpenID Connect and returns no ID token);
* the client secret (optional: a public client uses PKCE without one) is
  1 to :data:`MAX_CLIENT_SECRET` characters of ``%x20-7E`` (RFC 6749 Appendix
  A.2, VSCHAR) with no leading or trailing space. It is sealed with the
  key-encryption key (:meth:`authbridge.keys.Kek.seal`, associated data naming
  the provider ARN: :func:`secret_aad`) before it reaches the store, and is
  never shown, logged or in a repr (:class:`ClientSecret`).

The session name of a federated sign-in (:func:`session_name`) is the ID
token's ``preferred_username``, else ``email``, else ``sub``, reduced to
``[\\w+=,.@-]`` (ASCII, as IAM's RoleSessionName) and cut to 64 characters;
a candidate shorter than 2 characters once reduced is skipped, and when none
is left the name is ``fed-`` and 16 hex digits of the SHA-256 of ``sub``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from authbridge.errors import InputError
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.iam.policy_patterns import show

MAX_DISPLAY_NAME: Final = 64
MAX_SCOPES: Final = 20
MAX_SCOPE: Final = 128
MAX_CLIENT_SECRET: Final = 1024
DEFAULT_SCOPES: Final = ("openid", "profile", "email")
MIN_SESSION_NAME: Final = 2
MAX_SESSION_NAME: Final = 64
SESSION_NAME_CLAIMS: Final = ("preferred_username", "email", "sub")
CALLBACK_PATH: Final = "/login/upstream/callback"

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+", re.ASCII)
_SECRET: Final = re.compile(r"[\x20-\x7e]+", re.ASCII)
_NOT_SESSION_CHAR: Final = re.compile(r"[^\w+=,.@-]", re.ASCII)
_SCOPE_HINT: Final = "write scopes as the provider documents them, e.g. openid profile email groups"


class ClientSecret:
    """A client secret in memory: its repr and str never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ClientSecret(***)"

    __str__ = __repr__


def secret_aad(provider_arn: str) -> bytes:
    """The associated data a client secret is sealed with: it opens for this provider only."""
    return f"authbridge oidc sign-in client secret|{provider_arn}".encode()


def parse_display_name(value: object, *, field: str = "DisplayName") -> str:
    hint = 'the label of the sign-in button, e.g. "Example SSO"'
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {show(value)}", hint=hint)
    if not 1 <= len(value) <= MAX_DISPLAY_NAME:
        raise InputError(
            field, f"must be 1 to {MAX_DISPLAY_NAME} characters, got {len(value)}", hint=hint
        )
    if not value.isprintable():
        raise InputError(field, "must hold printable characters only", hint=hint)
    if value != value.strip():
        raise InputError(field, "must not start or end with a space", hint=hint)
    return value


def parse_scopes(values: object, *, field: str = "Scopes") -> tuple[str, ...]:
    """Checked scope tokens, ``openid`` first when missing; the default when empty."""
    if values is None:
        return DEFAULT_SCOPES
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InputError(field, f"must be a list of scopes, got {show(values)}", hint=_SCOPE_HINT)
    if len(values) > MAX_SCOPES:
        raise InputError(
            field, f"must have at most {MAX_SCOPES} scopes, got {len(values)}", hint=_SCOPE_HINT
        )
    out: list[str] = []
    for position, value in enumerate(values):
        where = f"{field}[{position}]"
        if not isinstance(value, str):
            raise InputError(where, f"must be a string, got {show(value)}", hint=_SCOPE_HINT)
        if not 1 <= len(value) <= MAX_SCOPE:
            raise InputError(
                where, f"must be 1 to {MAX_SCOPE} characters, got {len(value)}", hint=_SCOPE_HINT
            )
        if not _SCOPE.fullmatch(value):
            raise InputError(
                where,
                f"{show(value)} is not a scope token (RFC 6749 §3.3: printable ASCII"
                ' without space, " or \\)',
                hint=_SCOPE_HINT,
            )
        if value not in out:
            out.append(value)
    if not out:
        return DEFAULT_SCOPES
    if "openid" not in out:
        if len(out) >= MAX_SCOPES:
            raise InputError(
                field,
                f"with openid added it would have more than {MAX_SCOPES} scopes",
                hint="drop a scope, or give openid yourself",
            )
        out.insert(0, "openid")
    return tuple(out)


def parse_client_secret(value: object, *, field: str = "ClientSecret") -> ClientSecret:
    """A checked client secret; messages never quote it."""
    hint = "give the secret the provider issued for this client (--client-secret-stdin)"
    if not isinstance(value, str):
        raise InputError(field, f"must be a string, got {type(value).__name__}", hint=hint)
    if not 1 <= len(value) <= MAX_CLIENT_SECRET:
        raise InputError(
            field, f"must be 1 to {MAX_CLIENT_SECRET} characters, got {len(value)}", hint=hint
        )
    if not _SECRET.fullmatch(value) or value != value.strip():
        raise InputError(
            field,
            "must be printable ASCII, with no leading or trailing space or newline",
            hint=hint,
        )
    return ClientSecret(value)


def check_client_id(provider: OidcProvider, client_id: object, *, field: str = "ClientID") -> str:
    """``client_id`` if it is in the provider's ClientIDList, else an InputError saying how."""
    if not isinstance(client_id, str) or not client_id:
        raise InputError(field, f"must be a client id, got {show(client_id)}")
    if client_id not in provider.client_ids:
        raise InputError(
            field,
            f"{show(client_id)} is not in the ClientIDList of {provider.arn}",
            hint="add it first: authbridge iam add-client-id-to-open-id-connect-provider"
            f" --open-id-connect-provider-arn {provider.arn} --client-id {client_id}",
        )
    return client_id


@dataclass(frozen=True)
class SignInConfig:
    """A provider's sign-in configuration, as the store returns it."""

    provider_arn: str
    account_id: str
    display_name: str
    client_id: str
    scopes: tuple[str, ...]
    updated_at: int
    sealed_secret: str | None = field(default=None, repr=False)
    kek_id: str | None = None

    @property
    def client_secret_set(self) -> bool:
        return self.sealed_secret is not None

    def to_aws(self, redirect_uri: str) -> dict[str, Any]:
        """``GetOpenIDConnectProvider``'s ``SignIn`` member (never the secret)."""
        return {
            "DisplayName": self.display_name,
            "ClientID": self.client_id,
            "ClientSecretSet": self.client_secret_set,
            "Scopes": list(self.scopes),
            "RedirectUri": redirect_uri,
        }


def redirect_uri(issuer: str) -> str:
    """Where the provider sends the browser back: ``<issuer>/login/upstream/callback``."""
    return issuer.rstrip("/") + CALLBACK_PATH


def _reduced(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = _NOT_SESSION_CHAR.sub("", value)[:MAX_SESSION_NAME]
    return name if len(name) >= MIN_SESSION_NAME else None


def session_name(claims: Mapping[str, Any]) -> str:
    """The role session name of a federated sign-in (see the module docstring)."""
    for claim in SESSION_NAME_CLAIMS:
        name = _reduced(claims.get(claim))
        if name is not None:
            return name
    sub = claims.get("sub")
    digest = hashlib.sha256(str(sub).encode("utf-8", "surrogatepass")).hexdigest()
    return f"fed-{digest[:16]}"
