"""Sign-in values: login profiles and virtual MFA devices, shaped as ``aws iam`` shows them.

A login profile is a user's password (its argon2id hash, never shown) and
whether it must be changed at the next sign-in. A virtual MFA device is a
TOTP secret with a serial number ``arn:<partition>:iam::<account>:mfa/<path><name>``,
created unassigned and then enabled for one user with two consecutive
codes (:mod:`authbridge.iam.totp`). The secret leaves the store once, in
:class:`NewVirtualMfaDevice` on creation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from authbridge.errors import InputError
from authbridge.iam import totp

MAX_MFA_DEVICES_PER_USER: Final = 8  # as IAM
_DEVICE_NAME: Final = re.compile(r"[\w+=,.@-]{1,226}", re.ASCII)
MFA_ISSUER: Final = "authbridge"


def device_name(name: str) -> str:
    """A virtual MFA device name as IAM allows it (``[\\w+=,.@-]``, 1-226 characters)."""
    if not isinstance(name, str) or not _DEVICE_NAME.fullmatch(name):
        raise InputError(
            "VirtualMFADeviceName",
            "must be 1-226 characters of letters, digits and _+=,.@-",
        )
    return name


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class LoginProfile:
    user_name: str
    user_id: str
    created_at: datetime
    password_changed_at: datetime
    password_reset_required: bool

    def to_aws(self) -> dict[str, Any]:
        return {
            "UserName": self.user_name,
            "CreateDate": _iso(self.created_at),
            "PasswordResetRequired": self.password_reset_required,
        }


@dataclass(frozen=True)
class MfaDevice:
    """A virtual MFA device; ``user_*`` and ``enabled_at`` are set while it is enabled."""

    serial_number: str
    name: str
    created_at: datetime
    user_name: str | None = None
    user_id: str | None = None
    user_arn: str | None = None
    enabled_at: datetime | None = None

    def to_aws_mfa(self) -> dict[str, Any]:
        """An entry of ``list-mfa-devices``: ``{"UserName", "SerialNumber", "EnableDate"}``."""
        return {
            "UserName": self.user_name,
            "SerialNumber": self.serial_number,
            "EnableDate": _iso(self.enabled_at) if self.enabled_at else None,
        }

    def to_aws_virtual(self) -> dict[str, Any]:
        """An entry of ``list-virtual-mfa-devices``; ``User`` and ``EnableDate`` when assigned."""
        doc: dict[str, Any] = {"SerialNumber": self.serial_number}
        if self.enabled_at is not None and self.user_name is not None:
            doc["EnableDate"] = _iso(self.enabled_at)
            doc["User"] = {"UserName": self.user_name, "UserId": self.user_id, "Arn": self.user_arn}
        return doc


@dataclass(frozen=True)
class NewVirtualMfaDevice:
    """A device just created, with its secret: the only value that ever holds it."""

    device: MfaDevice
    secret: bytes = field(repr=False)

    def otpauth_uri(self, issuer: str = MFA_ISSUER) -> str:
        return totp.otpauth_uri(self.secret, issuer=issuer, account_name=self.device.name)

    def to_aws(self, issuer: str = MFA_ISSUER) -> dict[str, Any]:
        """``{"VirtualMFADevice": …}``'s value: the serial, the base32 seed and the URI.

        AWS's API gives the seed base64-encoded as a blob; authbridge gives the
        base32 text an app takes (what ``aws iam`` writes to ``--outfile``), and
        the ``otpauth://`` URI a QR code would carry (``OtpauthUri``).
        """
        return {
            "SerialNumber": self.device.serial_number,
            "Base32StringSeed": totp.base32_secret(self.secret),
            "OtpauthUri": self.otpauth_uri(issuer),
        }
