"""The authbridge exception tree: every refusal knows its code and what to do next.

    AuthbridgeError                  .code (stable, machine-readable), .hint (what next)
    ├── ConfigError                  settings or config file wrong (all problems at once)
    ├── InputError                   a caller-given value breaks a rule (AWS "ValidationError")
    │   ├── MalformedArn             not a well-formed, supported ARN
    │   ├── MalformedPolicyDocument  a policy document breaks the grammar (names the statement)
    │   ├── PasswordPolicyViolation  a new password breaks the account password policy
    │   └── InvalidAuthenticationCode  MFA codes that do not prove the device (enabling it)
    ├── StoreError
    │   ├── NoSuchEntity             the named entity does not exist
    │   ├── EntityAlreadyExists      the name is taken (names are case-insensitive)
    │   ├── DeleteConflict           entity still has dependants; use --force
    │   ├── LimitExceeded            e.g. more than two access keys per user
    │   ├── InvalidTrust             a trust entry names no existing user, group or account
    │   ├── StoreUnavailable         the database cannot be reached
    │   └── SchemaTooNew             the database was migrated by a newer authbridge
    ├── InvalidCredentials           access key id/secret pair refused (never says which part)
    ├── KeyStoreError                signing keys missing, unsafe or unreadable
    ├── Throttled                    no password-hashing slot freed up in time (a login flood)
    └── TokenError                   a token refused; .code is the reason label
        ├── TokenMalformed           malformed / not compact JWS / oversized
        ├── TokenAlgorithmRefused    alg none, HMAC, or not the algorithm of its key
        ├── TokenUnknownKey          kid not among the published keys
        ├── TokenBadSignature
        ├── TokenClaimsInvalid       missing claim, wrong iss
        ├── TokenWrongAudience
        ├── TokenExpired
        ├── TokenNotYetValid
        ├── TokenRevoked
        │   ├── TokenSourceRevoked   the token a role session was exchanged from is revoked
        │   └── TokenSessionEnded    the sign-in session (sid) it came from has ended
        └── TokenPrincipalRefused    principal or source user disabled/deleted, key inactive/deleted

Messages never contain secrets or whole tokens: they are shown to users, logged,
and (for tokens) may be returned by /verify.
"""

from __future__ import annotations


class AuthbridgeError(Exception):
    """Base class. ``str(err)`` is one line saying what went wrong and what to do."""

    code: str = "InternalError"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class ConfigError(AuthbridgeError):
    code = "ConfigError"

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems), hint=hint)


class InputError(AuthbridgeError):
    """A caller-supplied value breaks a rule. ``field`` names the offending input."""

    code = "ValidationError"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


class MalformedArn(InputError):
    code = "MalformedArn"


class MalformedPolicyDocument(InputError):
    """A policy document is refused; ``field`` names the statement and element.

    ``field`` reads like ``Statement[2] (Sid ReadOnly).Condition.StringLikeX``;
    ``reason`` is the message without it, so a caller that parsed a part of a
    document can put the part's place in front (:meth:`under`).
    """

    code = "MalformedPolicyDocument"

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(field, message, hint=hint)
        self.reason = message

    def under(self, prefix: str) -> MalformedPolicyDocument:
        """The same refusal, its field placed under ``prefix`` (``Statement[0]``)."""
        return MalformedPolicyDocument(f"{prefix}.{self.field}", self.reason, hint=self.hint)


class PasswordPolicyViolation(InputError):
    """A new password breaks the account password policy; ``problems`` names each rule."""

    code = "PasswordPolicyViolation"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Password",
            "does not meet the account password policy: " + "; ".join(problems),
            hint="see it with `authbridge iam get-account-password-policy`",
        )


class InvalidAuthenticationCode(InputError):
    code = "InvalidAuthenticationCode"


class StoreError(AuthbridgeError):
    code = "StoreError"


class NoSuchEntity(StoreError):
    code = "NoSuchEntity"


class EntityAlreadyExists(StoreError):
    code = "EntityAlreadyExists"


class DeleteConflict(StoreError):
    code = "DeleteConflict"


class LimitExceeded(StoreError):
    code = "LimitExceeded"


class InvalidTrust(StoreError):
    code = "MalformedPolicyDocument"


class StoreUnavailable(StoreError):
    code = "StoreUnavailable"


class SchemaTooNew(StoreError):
    code = "SchemaTooNew"


class InvalidCredentials(AuthbridgeError):
    code = "InvalidClientTokenId"


class KeyStoreError(AuthbridgeError):
    code = "KeyStoreError"


class Throttled(AuthbridgeError):
    code = "Throttling"


class TokenError(AuthbridgeError):
    """A token was refused. ``code`` is the short reason label used in logs and metrics."""

    code = "invalid_token"


class TokenMalformed(TokenError):
    code = "malformed"


class TokenAlgorithmRefused(TokenError):
    code = "bad_algorithm"


class TokenUnknownKey(TokenError):
    code = "unknown_kid"


class TokenBadSignature(TokenError):
    code = "bad_signature"


class TokenClaimsInvalid(TokenError):
    code = "invalid_claims"


class TokenWrongAudience(TokenError):
    code = "wrong_audience"


class TokenExpired(TokenError):
    code = "expired"


class TokenNotYetValid(TokenError):
    code = "not_yet_valid"


class TokenRevoked(TokenError):
    code = "revoked"


class TokenSourceRevoked(TokenRevoked):
    """The token's ``source_jti`` is revoked; the same reason label as its own revocation."""


class TokenSessionEnded(TokenRevoked):
    """The sign-in session the token's ``sid`` names has ended; the label is ``revoked``."""


class TokenPrincipalRefused(TokenError):
    code = "disabled"
