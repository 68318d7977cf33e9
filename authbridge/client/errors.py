"""What can go wrong on the client side, as :class:`~authbridge.errors.AuthbridgeError` subclasses.

    AuthbridgeError
    ├── ConfigError
    │   └── CredentialsError       credentials file unsafe, unreadable, malformed; profile missing
    ├── IssuerError                talking to the token endpoint failed (network, TLS, bad answer)
    │   └── IssuerRefused          an RFC 6749 §5.2 error answer: .error, .description, .status
    └── SignInError                `authbridge login` did not complete (denied, expired, timed out)
        └── SessionEnded           no sign-in session, or the server ended it: log in again

The CLI's one error handler turns each into one stderr line and exit code 1.
Messages never contain a secret or a token: a credentials file is described by
its name, profile, key and line number, never by its content.
"""

from __future__ import annotations

from authbridge.errors import AuthbridgeError, ConfigError


class CredentialsError(ConfigError):
    code = "CredentialsError"


class IssuerError(AuthbridgeError):
    code = "IssuerError"


class IssuerRefused(IssuerError):
    """The issuer answered with an OAuth 2.0 error (RFC 6749 §5.2)."""

    code = "IssuerRefused"

    def __init__(
        self, error: str, description: str, *, status: int, hint: str | None = None
    ) -> None:
        shown = f"{error}: {description}" if description else error
        super().__init__(f"the issuer refused: {shown}", hint=hint)
        self.error = error
        self.description = description
        self.status = status


class SignInError(AuthbridgeError):
    """A sign-in (browser or device code) did not end in a session."""

    code = "SignInError"


class SessionEnded(SignInError):
    """There is no usable sign-in session for the profile: ``authbridge login`` again."""

    code = "SessionEnded"

    def __init__(self, profile: str, why: str) -> None:
        super().__init__(why, hint=f"run `authbridge login --profile {profile}`")
        self.profile = profile
