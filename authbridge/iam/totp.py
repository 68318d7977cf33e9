"""Virtual MFA codes: TOTP (RFC 6238) over HOTP (RFC 4226), as authenticator apps compute them.

HMAC-SHA-1, 6 digits, a 30 s step counted from the Unix epoch (RFC 6238
§4), 160-bit secrets (RFC 4226 §4 recommends it) shown as unpadded base32
and in the ``otpauth://totp/`` URI authenticator apps scan. A code is
accepted one step either side of now (RFC 6238 §5.2: clock drift and the
time it takes to type), and only for a step later than the device's last
accepted one, so each code works once (§5.2: "MUST NOT be accepted twice").
Enabling a device takes two consecutive codes, which proves the app holds
the secret and that its clock agrees with ours.

Pure: the caller passes the time and the last used step, and stores the
step :func:`match` returns.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from typing import Final
from urllib.parse import quote

from authbridge.errors import InputError

STEP_SECONDS: Final = 30
DIGITS: Final = 6
SECRET_BYTES: Final = 20  # 160 bits
SKEW_STEPS: Final = 1
RESYNC_STEPS: Final = 10  # how far a resync looks either side of now (5 minutes)
MAX_CODE_INPUT: Final = 32  # characters of a typed code, spaces included, before refusal


def new_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def base32_secret(secret: bytes) -> str:
    """The secret as authenticator apps take it typed: base32, no padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def otpauth_uri(secret: bytes, *, issuer: str, account_name: str) -> str:
    """``otpauth://totp/<issuer>:<account>?secret=…&issuer=…`` (Google's Key Uri Format)."""
    label = quote(issuer, safe="") + ":" + quote(account_name, safe="")
    return (
        f"otpauth://totp/{label}?secret={base32_secret(secret)}&issuer={quote(issuer, safe='')}"
        f"&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}"
    )


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA-1 of the 8-byte counter, dynamically truncated."""
    mac = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def step_at(now: float) -> int:
    """The time step ``T`` of RFC 6238 §4.2 (T0 = 0, X = 30 s)."""
    return int(now) // STEP_SECONDS


def code_at(secret: bytes, now: float, digits: int = DIGITS) -> str:
    return hotp(secret, step_at(now), digits)


def parse_code(text: str, field: str = "AuthenticationCode") -> str:
    """The six digits a person typed (spaces allowed between), or InputError naming ``field``.

    The message never repeats the input: a password typed into the code box
    must not end up in a log.
    """
    if not isinstance(text, str):
        raise InputError(field, "must be a string of 6 digits")
    if len(text) > MAX_CODE_INPUT:
        raise InputError(field, f"must be {DIGITS} digits, got {len(text)} characters")
    digits = text.strip().replace(" ", "")
    if len(digits) != DIGITS or not all("0" <= c <= "9" for c in digits):
        raise InputError(field, f"must be {DIGITS} digits (0-9)")
    return digits


def _well_formed(code: str) -> bool:
    return len(code) == DIGITS and all("0" <= c <= "9" for c in code)


def match(
    secret: bytes,
    code: str,
    now: float,
    *,
    last_used_step: int | None,
    skew: int = SKEW_STEPS,
    drift: int = 0,
) -> int | None:
    """The step ``code`` is valid for, within ±``skew`` of now and after ``last_used_step``.

    ``drift`` is the device clock's offset in steps, as a resync found it
    (RFC 6238 §6): the window is centred on now + drift.

    ``None`` when it matches no such step: wrong, too old, or already used
    (replayed). Every candidate step is compared, in constant time each, so
    the work does not tell which one matched.
    """
    if not _well_formed(code):
        return None
    now_step = step_at(now) + drift
    found: int | None = None
    for step in range(max(0, now_step - skew), now_step + skew + 1):
        equal = hmac.compare_digest(hotp(secret, step), code)
        if equal and found is None and (last_used_step is None or step > last_used_step):
            found = step
    return found


def match_consecutive(
    secret: bytes, code1: str, code2: str, now: float, *, skew: int = SKEW_STEPS
) -> int | None:
    """The step of ``code2`` when ``code1`` and ``code2`` are two consecutive codes, else None.

    ``code2`` may be the current step's code or one step either side (the
    person typed code1, waited for the next one, typed it); ``code1`` is the
    step before ``code2``'s.
    """
    if not (_well_formed(code1) and _well_formed(code2)):
        return None
    now_step = step_at(now)
    found: int | None = None
    for step in range(max(1, now_step - skew), now_step + skew + 1):
        first = hmac.compare_digest(hotp(secret, step - 1), code1)
        second = hmac.compare_digest(hotp(secret, step), code2)
        if first and second and found is None:
            found = step
    return found
