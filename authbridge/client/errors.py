"""What can go wrong on the client side, as :class:`~authbridge.errors.AuthbridgeError` subclasses.

    AuthbridgeError
    ├── ConfigError
    │   └── CredentialsError       credentials file unsafe, unreadable, malformed; profile missing
    └── IssuerError                talking to the token endpoint failed (network, TLS, bad answer)
        └── IssuerRefused          an RFC 6749 §5.2 error answer: .error, .description, .status

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
