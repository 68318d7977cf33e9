"""Signing keys: the ``keys/`` directory or the store, key states over time, and the JWKS.

Three parts:

* :class:`KeySet` is an immutable, pure snapshot: which key signs, which keys
  verify, what the JWKS says, all as a function of ``now``. Nothing in it does I/O.
* :class:`KeyDirectory` is the on-disk side: it loads a :class:`KeySet` from a
  directory and makes the only three writes (``init``, ``rotate``, ``retire``).
* :class:`StoreKeys` is the same in the IAM store (``keySource: store``), for
  replicas that share no disk: each row holds the public JWK, the timeline and
  the private key sealed with AES-256-GCM under a key-encryption key
  (:class:`Kek`, from ``kekFile`` or ``AUTHBRIDGE_KEK``) that never enters the
  store; the kid and alg are the AEAD's associated data, so a sealed key moved
  to another row does not open. A wrong or missing KEK is a
  :class:`~authbridge.errors.KeyStoreError` naming the setting, never a
  fallback to the files. Besides ``init``, ``rotate`` and ``retire`` it can
  ``import_keys`` (from a directory, idempotent), ``revoke`` (a compromised
  key: out of the JWKS and of verification at once; the key that signs now
  only together with a new key) and ``maybe_rotate``: automatic rotation
  every ``rotationPeriodSeconds``, decided by the pure :func:`plan_rotation`
  on the rows read under a lock (PostgreSQL advisory lock, SQLite's write
  lock), so of all replicas exactly one makes the new key, in one
  transaction.

:class:`KeyRing` holds the current :class:`KeySet` of either source in a
server worker; for the store it refreshes in a background thread every
``keyRefreshSeconds`` (and calls ``maybe_rotate`` there), so no request waits
for a load. Revocation bound for a revoked key: ``keyRefreshSeconds`` for
token introspection, ``/verify`` and new tokens; for ``/authenticate`` plus
the webhook's verdict cache (``webhookCacheTTLSeconds``) and the
kube-apiserver's own cache.

On disk, each key is one unencrypted PKCS#8 PEM file ``<kid>.pem`` (mode 0600)
and ``signing-keys.json`` lists every key with its timestamps (epoch seconds)::

    {"version": 1, "keys": [{"kid": "…", "alg": "RS256", "file": "<kid>.pem",
      "created_at": 1700000000, "activates_at": 1700000600, "retired_at": null}]}

A key's state is *derived* from those timestamps (and, in the store, ``revoked_at``:
a revoked key is in no list, yet still counts as its predecessor's successor) at a
given ``now`` rather than stored, so replicas that mount ``keys/`` read-only from a
Kubernetes Secret agree on the active key without ever writing::

    pending ──(now ≥ activates_at)──► active ──(a successor activates)──► retiring
       │                                                                     │
       └──────────(retire)──────────► retired ◄──(successor.activates_at + max_token_lifetime)

A new key is published as ``pending`` for ``prepublication_delay`` seconds before
it signs, so verifiers that cache the JWKS never meet an unknown ``kid``; an old
key stays published (``retiring``) for ``max_token_lifetime`` seconds after its
successor took over, so every token it signed can still be verified.

The ``kid`` is the RFC 7638 JWK thumbprint of the public key, so it is stable,
unique and checkable: a key file that does not hash to its ``kid`` is refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NotRequired, Protocol, TypedDict, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge.errors import KeyStoreError, StoreError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_MAX_TOKEN_LIFETIME",
    "DEFAULT_PREPUBLICATION_DELAY",
    "LOCK_FILE",
    "STATE_FILE",
    "JWK",
    "JWKS",
    "Algorithm",
    "KeyDescription",
    "KeyDirectory",
    "KeySet",
    "KeyState",
    "PrivateKey",
    "PublicKey",
    "SigningKey",
    "generate_signing_key",
    "jwk_thumbprint",
]

Algorithm = Literal["RS256", "ES256"]
KeyState = Literal["pending", "active", "retiring", "retired", "revoked"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
STATE_FILE = "signing-keys.json"
LOCK_FILE = ".signing-keys.lock"
DEFAULT_PREPUBLICATION_DELAY = 600  # seconds a new key is published before it signs
DEFAULT_MAX_TOKEN_LIFETIME = 43200  # seconds; the longest token any key may have signed

_log = logging.getLogger("authbridge.keys")
_STATE_VERSION = 1
_RSA_KEY_SIZE = 2048
_RSA_MIN_KEY_SIZE = 2048
_PUBLISHED: frozenset[KeyState] = frozenset({"pending", "active", "retiring"})
# An RFC 7638 SHA-256 thumbprint: 32 bytes, base64url without padding = 43 characters.
_KID_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# group-write and any access for "other"; group-read stays allowed because a
# Kubernetes Secret mounted with an fsGroup is 0440.
_UNSAFE_MODE_BITS = 0o027


class JWK(TypedDict):
    """A public JWK (RFC 7517 §4) as published in the JWKS: never any private parameter."""

    kty: Literal["RSA", "EC"]
    kid: str
    use: Literal["sig"]
    alg: Algorithm
    n: NotRequired[str]  # RSA modulus (RFC 7518 §6.3.1.1)
    e: NotRequired[str]  # RSA public exponent (RFC 7518 §6.3.1.2)
    crv: NotRequired[Literal["P-256"]]  # EC curve (RFC 7518 §6.2.1.1)
    x: NotRequired[str]
    y: NotRequired[str]


class JWKS(TypedDict):
    """A JWK Set (RFC 7517 §5)."""

    keys: list[JWK]


class KeyDescription(TypedDict):
    """One row of ``authbridge keys list``; times are ISO 8601 UTC, ``None`` when not set."""

    kid: str
    alg: Algorithm
    state: KeyState
    created: str
    activates: str
    retires: str | None  # when it stops being published (explicitly, or as successor + max)
    retired: str | None  # the explicit retirement time, if `keys retire` was used
    revoked: NotRequired[str]  # when `keys revoke` took it out (keys in the store only)


# --------------------------------------------------------------------------- helpers


def _b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2, "Base64url Encoding")."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int, length: int | None = None) -> str:
    """An unsigned big-endian integer as base64url (RFC 7518 §6.2.1.2, §6.3.1.1).

    RSA parameters use the minimal octet string; EC coordinates use the full
    coordinate length (``length``), leading zeros included.
    """
    if length is None:
        length = max(1, (value.bit_length() + 7) // 8)
    return _b64url(value.to_bytes(length, "big"))


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat()


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a public JWK.

    RFC 7638 §3.2: only the required members of the key type, in lexicographic
    order, no whitespace (``e``, ``kty``, ``n`` for RSA; ``crv``, ``kty``, ``x``,
    ``y`` for EC).
    """
    kty = jwk.get("kty")
    members: tuple[str, ...]
    if kty == "RSA":
        members = ("e", "kty", "n")
    elif kty == "EC":
        members = ("crv", "kty", "x", "y")
    else:
        raise ValueError(f"unsupported JWK key type {kty!r}; expected 'RSA' or 'EC'")
    required = {name: jwk[name] for name in members}
    # sort_keys + compact separators gives exactly the RFC 7638 §3.3 serialization
    # for these members (all values are ASCII strings).
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def _public_jwk(public_key: PublicKey, alg: Algorithm) -> JWK:
    """RFC 7517 §4 / RFC 7518 §6 public JWK, without ``kid`` filled in yet."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {
            "kty": "RSA",
            "kid": "",
            "use": "sig",
            "alg": alg,
            "n": _uint_b64url(numbers.n),
            "e": _uint_b64url(numbers.e),
        }
    ec_numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "kid": "",
        "use": "sig",
        "alg": alg,
        "crv": "P-256",
        "x": _uint_b64url(ec_numbers.x, 32),
        "y": _uint_b64url(ec_numbers.y, 32),
    }


def _check_key_matches_alg(private_key: object, alg: str) -> str | None:
    """Why ``private_key`` cannot be used with ``alg``, or ``None`` if it can."""
    if alg == "RS256":
        if not isinstance(private_key, rsa.RSAPrivateKey):
            return "RS256 needs an RSA private key"
        if private_key.key_size < _RSA_MIN_KEY_SIZE:
            return f"RSA key is {private_key.key_size} bits; at least {_RSA_MIN_KEY_SIZE} needed"
        return None
    if alg == "ES256":
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            return "ES256 needs an EC private key"
        if not isinstance(private_key.curve, ec.SECP256R1):
            return f"ES256 needs a P-256 key, not {private_key.curve.name}"
        return None
    return f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}"


# --------------------------------------------------------------------------- SigningKey


@dataclass(frozen=True)
class SigningKey:
    """One signing key and its timeline. The private key never appears in repr/str."""

    kid: str
    alg: Algorithm
    created_at: int
    activates_at: int
    retired_at: int | None
    private_key: PrivateKey = field(repr=False, compare=False)
    # Only keys in the store are revoked (`keys revoke`): from then on the key is in no
    # list that signs, verifies or publishes, yet still counts as its predecessor's
    # successor, so revoking the active key never brings an older one back to signing.
    revoked_at: int | None = field(default=None, kw_only=True)
    public_key: PublicKey = field(init=False, repr=False, compare=False)
    _jwk: JWK = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problem = _check_key_matches_alg(self.private_key, self.alg)
        if problem:
            raise ValueError(f"signing key {self.kid}: {problem}")
        public_key = self.private_key.public_key()
        jwk = _public_jwk(public_key, self.alg)
        # RFC 7638: the kid *is* the thumbprint, so it cannot drift from the key.
        if jwk_thumbprint(jwk) != self.kid:
            raise ValueError(f"kid {self.kid} is not the RFC 7638 thumbprint of its key")
        jwk["kid"] = self.kid
        # Frozen dataclass: derived fields are set once here, so verification never
        # re-derives the public key per token.
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "_jwk", jwk)

    @classmethod
    def from_private_key(
        cls,
        private_key: PrivateKey,
        alg: Algorithm,
        *,
        created_at: int,
        activates_at: int | None = None,
        retired_at: int | None = None,
    ) -> SigningKey:
        """Wrap a key object; the ``kid`` is computed as its RFC 7638 thumbprint."""
        problem = _check_key_matches_alg(private_key, alg)
        if problem:
            raise ValueError(problem)
        kid = jwk_thumbprint(_public_jwk(private_key.public_key(), alg))
        return cls(
            kid=kid,
            alg=alg,
            created_at=created_at,
            activates_at=created_at if activates_at is None else activates_at,
            retired_at=retired_at,
            private_key=private_key,
        )

    def public_jwk(self) -> JWK:
        """The public JWK: ``kty, kid, use=sig, alg`` and ``n, e`` or ``crv, x, y``."""
        return self._jwk.copy()

    def private_pem(self) -> bytes:
        """PKCS#8 unencrypted PEM, for writing the key file. Handle with care."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def retires_at(self, successor_activates_at: int | None, max_token_lifetime: int) -> int | None:
        """When this key stops being published, or ``None`` while that is not yet known."""
        ends = [] if self.retired_at is None else [self.retired_at]
        if successor_activates_at is not None:
            ends.append(successor_activates_at + max_token_lifetime)
        return min(ends) if ends else None

    def state(
        self, now: float, successor_activates_at: int | None, max_token_lifetime: int
    ) -> KeyState:
        """This key's state at ``now``.

        ``successor_activates_at`` is when the key that took over from this one
        activated (``None`` if this key is the newest activated one, i.e. active).
        """
        if self.revoked_at is not None and now >= self.revoked_at:
            return "revoked"
        if self.retired_at is not None and now >= self.retired_at:
            return "retired"
        if now < self.activates_at:
            return "pending"
        if successor_activates_at is None:
            return "active"
        if now >= successor_activates_at + max_token_lifetime:
            return "retired"
        return "retiring"


def generate_signing_key(
    alg: Algorithm = "RS256", *, now: int | None = None, activates_at: int | None = None
) -> SigningKey:
    """A fresh in-memory key (RSA-2048 for RS256, P-256 for ES256); nothing is written."""
    private_key: PrivateKey
    if alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_KEY_SIZE)
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")
    created = int(time.time()) if now is None else int(now)
    return SigningKey.from_private_key(
        private_key, alg, created_at=created, activates_at=activates_at
    )


# --------------------------------------------------------------------------- KeySet


def _order(key: SigningKey) -> tuple[int, int, str]:
    return (key.activates_at, key.created_at, key.kid)


@dataclass(frozen=True)
class KeySet:
    """An immutable snapshot of the signing keys; every answer is a pure function of ``now``."""

    keys: tuple[SigningKey, ...]
    max_token_lifetime: int = DEFAULT_MAX_TOKEN_LIFETIME
    _by_kid: dict[str, SigningKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be a positive number of seconds")
        ordered = tuple(sorted(self.keys, key=_order))
        by_kid: dict[str, SigningKey] = {}
        for key in ordered:
            if key.kid in by_kid:
                raise ValueError(f"duplicate signing key kid {key.kid}")
            by_kid[key.kid] = key
        object.__setattr__(self, "keys", ordered)
        object.__setattr__(self, "_by_kid", by_kid)

    def get(self, kid: str) -> SigningKey | None:
        """The key with this ``kid`` whatever its state, or ``None``."""
        return self._by_kid.get(kid)

    def _candidates(self, now: float) -> list[SigningKey]:
        # Activated and not explicitly retired, oldest first. The newest of these
        # signs; each other one was superseded by the next one in this list.
        return [
            k
            for k in self.keys
            if now >= k.activates_at and (k.retired_at is None or now < k.retired_at)
        ]

    def _successor_activates_at(self, key: SigningKey, now: float) -> int | None:
        candidates = self._candidates(now)
        for i, k in enumerate(candidates):
            if k.kid == key.kid:
                return candidates[i + 1].activates_at if i + 1 < len(candidates) else None
        return None

    def _key_state(self, key: SigningKey, now: float) -> KeyState:
        return key.state(now, self._successor_activates_at(key, now), self.max_token_lifetime)

    def state_of(self, kid: str, now: float) -> KeyState:
        """The state of key ``kid`` at ``now``; :class:`KeyStoreError` for an unknown kid."""
        key = self._by_kid.get(kid)
        if key is None:
            raise KeyStoreError(
                f"no signing key with kid {kid}",
                hint="`authbridge keys list` shows the known kids",
            )
        return self._key_state(key, now)

    def states(self, now: float) -> dict[str, KeyState]:
        """Every key's state at ``now``, by kid."""
        return {k.kid: self._key_state(k, now) for k in self.keys}

    def signing_key(self, now: float) -> SigningKey:
        """The active key: the one that signs new tokens at ``now``."""
        candidates = self._candidates(now)
        if candidates and self._key_state(candidates[-1], now) == "revoked":
            raise KeyStoreError(
                f"the active signing key {candidates[-1].kid} is revoked",
                hint="run `authbridge keys rotate` to make a new key",
            )
        if not candidates:
            raise KeyStoreError(
                "no active signing key",
                hint="run `authbridge keys init` to create one,"
                " or wait for a pending key to activate",
            )
        return candidates[-1]

    def verification_key(self, kid: str, now: float) -> SigningKey | None:
        """The key for ``kid`` if it is published (pending, active or retiring) at ``now``."""
        key = self._by_kid.get(kid)
        if key is None or self._key_state(key, now) not in _PUBLISHED:
            return None
        return key

    def published(self, now: float) -> tuple[SigningKey, ...]:
        """Published keys at ``now``: active first, then pending, then retiring (newest first)."""
        rank = {"active": 0, "pending": 1, "retiring": 2}
        states = self.states(now)
        keys = [k for k in reversed(self.keys) if states[k.kid] in _PUBLISHED]
        return tuple(sorted(keys, key=lambda k: rank[states[k.kid]]))

    def jwks(self, now: float) -> JWKS:
        """The JWK Set (RFC 7517 §5) of the published keys: public parameters only."""
        return {"keys": [k.public_jwk() for k in self.published(now)]}

    def describe(self, now: float) -> list[KeyDescription]:
        """One row per key, oldest first, for ``authbridge keys list``."""
        rows: list[KeyDescription] = []
        for key in self.keys:
            state = self._key_state(key, now)
            successor = self._successor_activates_at(key, now)
            if successor is None and state in ("active", "pending"):
                # Predict: the next key by activation that will not be retired before it activates.
                later = [
                    k
                    for k in self.keys
                    if _order(k) > _order(key)
                    and (k.retired_at is None or k.retired_at > k.activates_at)
                ]
                successor = later[0].activates_at if later else None
            row: KeyDescription = {
                "kid": key.kid,
                "alg": key.alg,
                "state": state,
                "created": _iso(key.created_at) or "",
                "activates": _iso(key.activates_at) or "",
                "retires": _iso(key.retires_at(successor, self.max_token_lifetime)),
                "retired": _iso(key.retired_at),
            }
            if key.revoked_at is not None:
                row["revoked"] = _iso(key.revoked_at) or ""
            rows.append(row)
        return rows


# --------------------------------------------------------------------------- on disk


@dataclass(frozen=True)
class _Entry:
    kid: str
    alg: Algorithm
    file: str
    created_at: int
    activates_at: int
    retired_at: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "alg": self.alg,
            "file": self.file,
            "created_at": self.created_at,
            "activates_at": self.activates_at,
            "retired_at": self.retired_at,
        }


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_unsafe(st: os.stat_result, what: str, path: Path) -> None:
    """Refuse a secret file that is not a regular file, or that others may read."""
    if not stat.S_ISREG(st.st_mode):
        raise KeyStoreError(f"{what} is not a regular file")
    if st.st_mode & _UNSAFE_MODE_BITS:
        raise KeyStoreError(
            f"{what} is accessible by other users (mode {stat.S_IMODE(st.st_mode):04o});"
            " refusing to use it",
            hint=f"run `chmod 600 {path}`",
        )


class KeyDirectory:
    """The signing keys directory (default ``keys/``): load, init, rotate, retire.

    Reading never writes, so a read-only Secret mount works. Writers serialize on
    an ``flock`` of ``.signing-keys.lock`` and write the new key file before
    atomically replacing ``signing-keys.json``, so a reader never sees a state
    naming a key file that is not there yet.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        prepublication_delay: int = DEFAULT_PREPUBLICATION_DELAY,
        max_token_lifetime: int = DEFAULT_MAX_TOKEN_LIFETIME,
    ) -> None:
        if prepublication_delay < 0:
            raise ValueError("prepublication_delay must be >= 0 seconds")
        if max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be > 0 seconds")
        self.path = Path(path)
        self.prepublication_delay = prepublication_delay
        self.max_token_lifetime = max_token_lifetime

    def __repr__(self) -> str:
        return f"KeyDirectory({str(self.path)!r})"

    @property
    def state_file(self) -> Path:
        return self.path / STATE_FILE

    # ----------------------------------------------------------------- reading

    def exists(self) -> bool:
        """Whether the directory holds a state file (i.e. keys were initialised)."""
        return self.state_file.exists()

    def load(self) -> KeySet:
        """Read and check every key; :class:`KeyStoreError` says which file and what to do."""
        return self._load(self._read_state())

    def fingerprint(self) -> tuple[int | None, ...]:
        """A cheap change detector: compare two results to know whether to reload.

        Covers the state file (followed through symlinks, as a Kubernetes Secret
        update swaps the ``..data`` link) and the directory itself.
        """
        out: list[int | None] = []
        for p in (self.state_file, self.path):
            try:
                st = os.stat(p)
            except OSError:
                out.extend((None, None, None))
            else:
                out.extend((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _not_initialised(self) -> KeyStoreError:
        return KeyStoreError(
            f"no signing keys in {self.path}",
            hint=f"run `authbridge --keys-dir {self.path} keys init` to create the first key",
        )

    def _read_state(self) -> list[_Entry]:
        sf = self.state_file
        if not sf.exists():
            raise self._not_initialised()
        fix = f"restore {sf} from a backup (or the Secret it was mounted from)"
        try:
            raw = sf.read_bytes()
        except OSError as e:
            raise KeyStoreError(f"cannot read {sf}: {e.strerror}", hint=fix) from e
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise KeyStoreError(f"{sf} is not valid JSON (corrupt?)", hint=fix) from e
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise KeyStoreError(f'{sf} has no "keys" list', hint=fix)
        if doc.get("version") != _STATE_VERSION:
            raise KeyStoreError(
                f"{sf} has version {doc.get('version')!r}; this authbridge reads version "
                f"{_STATE_VERSION}",
                hint="upgrade authbridge, or " + fix,
            )
        entries: list[_Entry] = []
        seen: set[str] = set()
        for i, item in enumerate(doc["keys"]):
            entry = self._parse_entry(item, i, fix)
            if entry.kid in seen:
                raise KeyStoreError(f"{sf} lists kid {entry.kid} twice", hint=fix)
            seen.add(entry.kid)
            entries.append(entry)
        if not entries:
            raise self._not_initialised()
        return entries

    def _parse_entry(self, item: object, i: int, fix: str) -> _Entry:
        sf = self.state_file
        where = f"{sf}: keys[{i}]"
        if not isinstance(item, dict):
            raise KeyStoreError(f"{where} is not an object", hint=fix)
        kid, alg, file = item.get("kid"), item.get("alg"), item.get("file")
        if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
            raise KeyStoreError(f"{where} has no valid kid (an RFC 7638 thumbprint)", hint=fix)
        if alg not in ALGORITHMS:
            raise KeyStoreError(
                f"{where} (kid {kid}) has algorithm {alg!r}; only {', '.join(ALGORITHMS)} "
                "are supported",
                hint=fix,
            )
        if (
            not isinstance(file, str)
            or not file
            or file != os.path.basename(file)
            or file.startswith(".")
        ):
            raise KeyStoreError(
                f"{where} (kid {kid}) has file {file!r}; it must be a file name in {self.path}",
                hint=fix,
            )
        for name in ("created_at", "activates_at"):
            if not _is_int(item.get(name)):
                raise KeyStoreError(
                    f"{where} (kid {kid}) needs {name} as epoch seconds (an integer)", hint=fix
                )
        retired_at = item.get("retired_at")
        if retired_at is not None and not _is_int(retired_at):
            raise KeyStoreError(
                f"{where} (kid {kid}) has retired_at that is neither null nor epoch seconds",
                hint=fix,
            )
        return _Entry(
            kid=kid,
            alg=alg,
            file=file,
            created_at=item["created_at"],
            activates_at=item["activates_at"],
            retired_at=retired_at,
        )

    def _load_key(self, entry: _Entry) -> SigningKey:
        key_path = self.path / entry.file
        try:
            st = os.stat(key_path)  # follows symlinks: Secret mounts are symlinks
        except FileNotFoundError as e:
            raise KeyStoreError(
                f"key file {key_path} for kid {entry.kid} is missing",
                hint=f"restore it from a backup, or retire the key with "
                f"`authbridge keys retire --kid {entry.kid}` after rotating",
            ) from e
        except OSError as e:
            raise KeyStoreError(f"cannot read key file {key_path}: {e.strerror}") from e
        _refuse_unsafe(st, f"key file {key_path}", key_path)
        try:
            data = key_path.read_bytes()
        except OSError as e:
            raise KeyStoreError(f"cannot read key file {key_path}: {e.strerror}") from e
        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            # The library's message is not included: it is not needed and we never
            # want anything derived from key material in a message.
            raise KeyStoreError(
                f"key file {key_path} is not an unencrypted PEM private key",
                hint="restore it from a backup",
            ) from e
        problem = _check_key_matches_alg(private_key, entry.alg)
        if problem or not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KeyStoreError(
                f"key file {key_path} does not fit kid {entry.kid} ({entry.alg}): {problem}",
                hint=f"restore the original key file, or fix the alg of {entry.kid} in "
                f"{self.state_file}",
            )
        # RFC 7638: the kid is the thumbprint, so a swapped or replaced file shows.
        actual = jwk_thumbprint(_public_jwk(private_key.public_key(), entry.alg))
        if actual != entry.kid:
            raise KeyStoreError(
                f"key file {key_path} does not match its kid {entry.kid} "
                f"(its thumbprint is {actual})",
                hint="restore the original key file; key files cannot be swapped or renamed",
            )
        return SigningKey(
            kid=entry.kid,
            alg=entry.alg,
            created_at=entry.created_at,
            activates_at=entry.activates_at,
            retired_at=entry.retired_at,
            private_key=private_key,
        )

    def _load(self, entries: list[_Entry]) -> KeySet:
        return KeySet(
            tuple(self._load_key(e) for e in entries),
            max_token_lifetime=self.max_token_lifetime,
        )

    # ----------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize writers across processes (an advisory ``flock``)."""
        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            read_only = e.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            raise KeyStoreError(
                f"cannot write in {self.path}: {e.strerror}",
                hint="keys mounted read-only (e.g. from a Kubernetes Secret) are changed "
                "where the Secret is made, not on a replica"
                if read_only
                else f"check that {self.path} is a writable directory",
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write_key_file(self, key: SigningKey) -> str:
        name = f"{key.kid}.pem"
        fd = os.open(
            self.path / name,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o600,
        )
        try:
            os.fchmod(fd, 0o600)  # regardless of umask
            os.write(fd, key.private_pem())
            os.fsync(fd)
        finally:
            os.close(fd)
        return name

    def _write_state(self, entries: list[_Entry]) -> None:
        doc = {"version": _STATE_VERSION, "keys": [e.to_json() for e in entries]}
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".signing-keys.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def _add_key(self, entries: list[_Entry], key: SigningKey) -> None:
        name = self._write_key_file(key)
        self._fsync_dir()
        entries.append(
            _Entry(
                kid=key.kid,
                alg=key.alg,
                file=name,
                created_at=key.created_at,
                activates_at=key.activates_at,
                retired_at=None,
            )
        )
        self._write_state(entries)

    def init(self, alg: Algorithm = "RS256", now: float | None = None) -> SigningKey:
        """Create the directory (0700) and the first key, active at once.

        Refuses if the directory already has keys.
        """
        if alg not in ALGORITHMS:
            raise KeyStoreError(
                f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}"
            )
        if not self.path.exists():
            self.path.mkdir(mode=0o700, parents=True)
            os.chmod(self.path, 0o700)  # mkdir's mode is masked by the umask
        with self._locked():
            if self.state_file.exists():
                raise KeyStoreError(
                    f"{self.path} already has signing keys",
                    hint="use `authbridge keys rotate` to add a new key",
                )
            ts = int(time.time()) if now is None else int(now)
            key = generate_signing_key(alg, now=ts, activates_at=ts)
            self._add_key([], key)
            return key

    def rotate(
        self,
        alg: Algorithm | None = None,
        now: float | None = None,
        *,
        activates_in: int | None = None,
    ) -> SigningKey:
        """Add a key that activates after ``prepublication_delay``; it is published as pending.

        ``alg`` defaults to the algorithm of the key active at ``now``.
        ``activates_in`` overrides the delay (``0`` for an emergency swap, at the
        cost of verifiers with a cached JWKS briefly meeting an unknown kid).
        """
        if alg is not None and alg not in ALGORITHMS:
            raise KeyStoreError(
                f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}"
            )
        delay = self.prepublication_delay if activates_in is None else activates_in
        if delay < 0:
            raise ValueError("activates_in must be >= 0 seconds")
        with self._locked():
            entries = self._read_state()
            keyset = self._load(entries)  # refuse to extend a broken directory
            ts = int(time.time()) if now is None else int(now)
            if alg is None:
                candidates = keyset._candidates(ts)
                alg = (candidates[-1] if candidates else keyset.keys[-1]).alg
            key = generate_signing_key(alg, now=ts, activates_at=ts + delay)
            self._add_key(entries, key)
            return key

    def retire(self, kid: str, now: float | None = None) -> None:
        """Stop publishing ``kid`` from ``now`` on: tokens it signed stop verifying.

        Refuses the active key (rotate first, and retire it once its successor
        is active) and unknown kids. Retiring a retired key changes nothing.
        """
        with self._locked():
            entries = self._read_state()
            keyset = self._load(entries)
            ts = int(time.time()) if now is None else int(now)
            state = keyset.state_of(kid, ts)
            if state == "active":
                raise KeyStoreError(
                    f"kid {kid} is the active signing key and cannot be retired",
                    hint="run `authbridge keys rotate` first, then retire it once the new key "
                    f"is active (after {self.prepublication_delay} s)",
                )
            if state == "retired":
                return
            entries = [
                _Entry(e.kid, e.alg, e.file, e.created_at, e.activates_at, ts)
                if e.kid == kid
                else e
                for e in entries
            ]
            self._write_state(entries)


class KeySource(Protocol):
    """Where a :class:`KeyRing` loads its keys from: :class:`KeyDirectory` or :class:`StoreKeys`."""

    def fingerprint(self) -> Hashable:
        """A cheap change detector: when it is equal, :meth:`load` would give the same keys."""
        ...

    def load(self) -> KeySet: ...


class KeyRing:
    """The current :class:`KeySet` of a key source, reloaded when the source changes.

    Each server worker holds one. Two ways to follow the source:

    * on the request path (files, the default): :meth:`current` looks at the
      directory's fingerprint (two ``stat`` calls) at most every
      ``check_interval`` seconds and reloads on change;
    * in the background (:meth:`start_refresher`, used for keys in the store):
      a daemon thread of the worker calls :meth:`refresh` every interval, and
      :meth:`current` only reads one reference, so no request ever waits for a
      database read or a decryption. A :class:`KeySet` is immutable and the
      reference is replaced in one assignment, so a request sees the old set or
      the new one, never a mix.

    A reload that fails (a half-copied Secret, a bad file, the store down, a
    row that does not decrypt) keeps the last good key set serving and records
    why in :attr:`last_error`.
    """

    def __init__(
        self,
        directory: KeySource,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.check_interval = check_interval
        self._clock = clock
        self._fingerprint = directory.fingerprint()
        self._keys = directory.load()
        self._checked = clock()
        self._lock = threading.Lock()
        self._background = False
        self._stop = threading.Event()
        self.last_error: str | None = None
        self.reloads = 0

    def current(self) -> KeySet:
        if self._background:
            return self._keys  # the refresher thread keeps it fresh
        now = self._clock()
        if now - self._checked < self.check_interval:
            return self._keys
        with self._lock:
            if now - self._checked < self.check_interval:
                return self._keys
            self._checked = now
            self._reload_if_changed()
        return self._keys

    def refresh(self) -> bool:
        """Look at the source now and reload if it changed; return whether it did."""
        with self._lock:
            return self._reload_if_changed()

    def _reload_if_changed(self) -> bool:
        try:
            fingerprint = self.directory.fingerprint()
            if fingerprint == self._fingerprint:
                return False
            keys = self.directory.load()
        except (KeyStoreError, StoreError) as e:
            self.last_error = str(e)
            return False
        self._keys = keys
        self._fingerprint = fingerprint
        self.last_error = None
        self.reloads += 1
        return True

    def start_refresher(
        self,
        interval: float,
        *,
        after_refresh: Callable[[KeySet], object] | None = None,
    ) -> threading.Thread:
        """Refresh every ``interval`` seconds in a daemon thread (start it after the fork).

        ``after_refresh`` runs in that thread after each look, with the current
        key set (the server passes :meth:`StoreKeys.maybe_rotate`); when it
        returns something true, the ring refreshes again at once. Whatever it
        raises is recorded in :attr:`last_error` and the loop goes on.
        """
        self._background = True

        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()
                if after_refresh is None:
                    continue
                try:
                    if after_refresh(self._keys):
                        self.refresh()
                except (KeyStoreError, StoreError) as e:
                    self.last_error = str(e)
                except Exception as e:  # the thread must outlive any one failure
                    self.last_error = f"key refresh failed ({type(e).__name__})"
                    _log.warning("signing key refresh failed: %s", type(e).__name__)

        thread = threading.Thread(target=loop, name="authbridge-key-refresh", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the refresher thread (tests; a worker just exits)."""
        self._stop.set()


# --------------------------------------------------------------------------- in the store

KEK_BYTES = 32
KEK_ENV = "AUTHBRIDGE_KEK"
KEK_SETTINGS = "kekFile (AUTHBRIDGE_KEK_FILE) or AUTHBRIDGE_KEK"
DEFAULT_ROTATION_PERIOD = 30 * 86400  # seconds between automatic rotations
DEFAULT_KEY_REFRESH = 10  # seconds between two looks at the store's key set, per worker
REVOCATION_REASONS = ("compromised", "superseded", "unspecified")
RotationDecision = Literal["rotate", "off", "no_keys", "pending", "not_due"]

_SEAL_VERSION = "v1"
_NONCE_BYTES = 12  # 96-bit nonces, random per encryption (NIST SP 800-38D §8.2.2)
_KEK_ID_INFO = b"authbridge kek id v1"


def _aad(kid: str, alg: str) -> bytes:
    # The AEAD's associated data: a sealed private key opens only in the row of its own
    # kid and algorithm, so ciphertexts moved between rows are refused, not used.
    # A kid is base64url and an alg is RS256/ES256: neither contains "|".
    return f"authbridge signing key|{kid}|{alg}".encode("ascii")


class Kek:
    """The key-encryption key: 32 bytes that never enter the store, a log, an error or a repr.

    ``source`` names the setting it came from, for messages. ``kek_id`` names the
    KEK without revealing it (the first 12 bytes of an HMAC-SHA256 of a constant
    under it), so that a wrong KEK is told apart from an altered row.
    """

    __slots__ = ("_aead", "kek_id", "source")

    def __init__(self, value: bytes, source: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(value) != KEK_BYTES:
            raise ValueError(f"a KEK is {KEK_BYTES} bytes")
        self._aead = AESGCM(value)
        self.source = source
        self.kek_id = _b64url(hmac.new(value, _KEK_ID_INFO, hashlib.sha256).digest()[:12])

    def __repr__(self) -> str:
        return f"Kek(source={self.source!r}, kek_id={self.kek_id!r})"

    @classmethod
    def generate(cls, source: str = "generated") -> Kek:
        return cls(os.urandom(KEK_BYTES), source)

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        """AES-256-GCM with a fresh random nonce: ``v1.<nonce>.<ciphertext+tag>`` (base64url)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext, aad)
        return f"{_SEAL_VERSION}.{_b64url(nonce)}.{_b64url(sealed)}"

    def open(self, sealed: str, aad: bytes) -> bytes:
        """The plaintext; :class:`ValueError` unless this KEK sealed ``sealed`` for ``aad``."""
        from cryptography.exceptions import InvalidTag

        version, _, rest = sealed.partition(".")
        nonce_b64, _, data_b64 = rest.partition(".")
        if version != _SEAL_VERSION or not nonce_b64 or not data_b64:
            raise ValueError("not a sealed value of this authbridge")
        try:
            nonce = _b64url_decode(nonce_b64)
            data = _b64url_decode(data_b64)
        except (ValueError, binascii.Error):
            raise ValueError("not a sealed value of this authbridge") from None
        if len(nonce) != _NONCE_BYTES:
            raise ValueError("not a sealed value of this authbridge")
        try:
            return self._aead.decrypt(nonce, data, aad)
        except InvalidTag:
            raise ValueError("does not decrypt (wrong KEK, or altered)") from None


def _b64url_decode(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_kek(kek_file: Path | None, kek_env: str | None) -> Kek:
    """The KEK from ``kekFile`` (a 0600 file) or ``AUTHBRIDGE_KEK`` (base64); exactly one.

    The file holds 32 raw bytes or their base64 (``openssl rand -base64 32``).
    Every refusal names the setting and never quotes what it holds.
    """
    if kek_file is not None and kek_env is not None:
        raise KeyStoreError(
            "both kekFile (AUTHBRIDGE_KEK_FILE) and AUTHBRIDGE_KEK are set",
            hint="set only one of them",
        )
    if kek_env is not None:
        value = _decode_kek_text(kek_env)
        if value is None:
            raise KeyStoreError(
                f"AUTHBRIDGE_KEK is not the base64 of {KEK_BYTES} bytes",
                hint=f"set it to the output of `openssl rand -base64 {KEK_BYTES}`"
                " (the one the store's keys were sealed with)",
            )
        return Kek(value, KEK_ENV)
    if kek_file is None:
        raise KeyStoreError(
            "keySource is store but no key-encryption key (KEK) is configured",
            hint=f"set {KEK_SETTINGS}; the keys in the store cannot be read without it",
        )
    where = f"kekFile {kek_file}"
    try:
        st = os.stat(kek_file)  # follows symlinks: Secret mounts are symlinks
    except FileNotFoundError:
        raise KeyStoreError(
            f"{where} does not exist",
            hint="mount the KEK Secret there, or point kekFile (AUTHBRIDGE_KEK_FILE) at it"
            f" (a new one: `openssl rand -base64 {KEK_BYTES} > FILE; chmod 600 FILE`)",
        ) from None
    except OSError as e:
        raise KeyStoreError(f"cannot read {where}: {e.strerror}") from None
    _refuse_unsafe(st, where, kek_file)
    try:
        data = Path(kek_file).read_bytes()
    except OSError as e:
        raise KeyStoreError(f"cannot read {where}: {e.strerror}") from None
    value = data if len(data) == KEK_BYTES else _decode_kek_text(data.decode("ascii", "replace"))
    if value is None:
        raise KeyStoreError(
            f"{where} holds neither {KEK_BYTES} bytes nor the base64 of {KEK_BYTES} bytes",
            hint="restore the KEK the store's keys were sealed with",
        )
    return Kek(value, where)


def _decode_kek_text(text: str) -> bytes | None:
    try:
        value = base64.b64decode(text.strip(), validate=True)
    except (ValueError, binascii.Error):
        return None
    return value if len(value) == KEK_BYTES else None


@dataclass(frozen=True)
class KeyRecord:
    """One signing key as the store holds it: public JWK, timeline, and the sealed private key.

    ``sealed_private_key`` is the PKCS#8 DER private key under AES-256-GCM with
    the KEK, the kid and alg as associated data (:meth:`Kek.seal`); ``kek_id``
    names the KEK it was sealed with.
    """

    kid: str
    alg: Algorithm
    public_jwk: str  # the JWK as canonical JSON (sorted keys, no spaces)
    sealed_private_key: str = field(repr=False)
    kek_id: str
    created_at: int
    activates_at: int
    retired_at: int | None = None
    revoked_at: int | None = None
    revocation_reason: str | None = None


@dataclass(frozen=True)
class KeyEdit:
    """What one change to the store's keys writes, in one transaction.

    ``update`` rows are matched by kid; only their ``retired_at``, ``revoked_at``
    and ``revocation_reason`` are written (a key's material never changes).
    """

    add: tuple[KeyRecord, ...] = ()
    update: tuple[KeyRecord, ...] = ()


class KeyRecords(Protocol):
    """What :class:`StoreKeys` needs of the store (``SqlStore`` implements it)."""

    def list_signing_keys(self) -> list[KeyRecord]: ...

    def signing_keys_version(self) -> Hashable: ...

    def edit_signing_keys(
        self, edit: Callable[[list[KeyRecord]], KeyEdit], *, wait: bool = True
    ) -> KeyEdit | None:
        """Run ``edit`` on the rows read under the key lock and write what it returns.

        One transaction: a crash leaves everything or nothing. ``wait=False``
        returns ``None`` at once when another process holds the lock.
        """
        ...


def _canonical_jwk(jwk: JWK) -> str:
    return json.dumps(jwk, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def seal_key(key: SigningKey, kek: Kek) -> KeyRecord:
    """The store row for ``key``: its private key sealed under ``kek``."""
    der = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyRecord(
        kid=key.kid,
        alg=key.alg,
        public_jwk=_canonical_jwk(key.public_jwk()),
        sealed_private_key=kek.seal(der, _aad(key.kid, key.alg)),
        kek_id=kek.kek_id,
        created_at=key.created_at,
        activates_at=key.activates_at,
        retired_at=key.retired_at,
        revoked_at=key.revoked_at,
    )


def open_key(record: KeyRecord, kek: Kek) -> SigningKey:
    """The signing key of a store row; :class:`KeyStoreError` when it cannot be trusted."""
    kid = record.kid
    if record.kek_id != kek.kek_id:
        raise KeyStoreError(
            f"signing key {kid} in the store was sealed with another key-encryption key"
            f" (KEK id {record.kek_id}; the one from {kek.source} is {kek.kek_id})",
            hint=f"set {KEK_SETTINGS} to the KEK the keys were sealed with",
        )
    altered = KeyStoreError(
        f"signing key {kid} in the store does not decrypt under the KEK from {kek.source}:"
        " its row was altered or swapped with another",
        hint="restore the store from a backup; never edit signing_keys rows by hand",
    )
    if record.alg not in ALGORITHMS:
        raise altered
    try:
        der = kek.open(record.sealed_private_key, _aad(kid, record.alg))
    except ValueError:
        raise altered from None
    try:
        private_key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise altered from None
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise altered
    try:
        key = SigningKey(
            kid=kid,
            alg=record.alg,
            created_at=record.created_at,
            activates_at=record.activates_at,
            retired_at=record.retired_at,
            private_key=private_key,
            revoked_at=record.revoked_at,
        )
    except ValueError:
        raise altered from None
    if _canonical_jwk(key.public_jwk()) != record.public_jwk:
        raise altered
    return key


def plan_rotation(keys: KeySet, now: float, rotation_period: int) -> RotationDecision:
    """Whether automatic rotation should make a new pending key at ``now``, and why (not).

    ``rotate`` when the newest key that is neither revoked nor retired was
    created ``rotation_period`` seconds ago or more and no key is pending, or
    when every key is revoked or retired; ``off`` when ``rotation_period`` is
    0; ``no_keys`` for an empty set (``keys init`` / ``keys import`` make the
    first key, never rotation).
    """
    if rotation_period <= 0:
        return "off"
    if not keys.keys:
        return "no_keys"
    states = keys.states(now)
    live = [k for k in keys.keys if states[k.kid] not in ("revoked", "retired")]
    if not live:
        return "rotate"  # nothing signs or will: a new key heals that after the delay
    if any(states[k.kid] == "pending" for k in live):
        return "pending"
    newest = max(k.created_at for k in live)
    return "rotate" if now >= newest + rotation_period else "not_due"


class StoreKeys:
    """The signing keys in the store: load, init, import, rotate, retire, revoke, auto-rotate.

    The store side of :class:`KeyDirectory`, with the same states and rules;
    every write is one :meth:`KeyRecords.edit_signing_keys` transaction that
    first decrypts every key under the KEK (refusing to extend a store it
    cannot read), then decides on the rows it read under the lock.
    """

    def __init__(
        self,
        records: KeyRecords,
        kek: Kek,
        *,
        prepublication_delay: int = DEFAULT_PREPUBLICATION_DELAY,
        max_token_lifetime: int = DEFAULT_MAX_TOKEN_LIFETIME,
        rotation_period: int = DEFAULT_ROTATION_PERIOD,
        location: str = "store",
    ) -> None:
        if prepublication_delay < 0:
            raise ValueError("prepublication_delay must be >= 0 seconds")
        if max_token_lifetime <= 0:
            raise ValueError("max_token_lifetime must be > 0 seconds")
        self.records = records
        self.kek = kek
        self.prepublication_delay = prepublication_delay
        self.max_token_lifetime = max_token_lifetime
        self.rotation_period = rotation_period
        self.location = location

    def __repr__(self) -> str:
        return f"StoreKeys({self.location!r})"

    # ----------------------------------------------------------------- reading

    def fingerprint(self) -> Hashable:
        return self.records.signing_keys_version()

    def load(self) -> KeySet:
        """Every key of the store, decrypted and checked."""
        return self._keyset(self.records.list_signing_keys())

    def _keyset(self, rows: list[KeyRecord]) -> KeySet:
        if not rows:
            raise KeyStoreError(
                "no signing keys in the store",
                hint="run `authbridge keys import` to move the keys/ files in, or"
                " `authbridge keys init` to create the first key",
            )
        return KeySet(
            tuple(open_key(r, self.kek) for r in rows), max_token_lifetime=self.max_token_lifetime
        )

    # ----------------------------------------------------------------- writing

    def _edit(
        self, decide: Callable[[list[KeyRecord]], KeyEdit], *, wait: bool = True
    ) -> KeyEdit | None:
        return self.records.edit_signing_keys(decide, wait=wait)

    def init(self, alg: Algorithm = "RS256", now: float | None = None) -> SigningKey:
        """The first key, active at once; refused when the store has keys."""
        _check_alg(alg)
        ts = int(time.time()) if now is None else int(now)
        made: list[SigningKey] = []

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            if rows:
                raise KeyStoreError(
                    "the store already has signing keys",
                    hint="use `authbridge keys rotate` to add a new key",
                )
            made.append(generate_signing_key(alg, now=ts, activates_at=ts))
            return KeyEdit(add=(seal_key(made[0], self.kek),))

        self._edit(decide)
        return made[0]

    def import_keys(self, keys: KeySet) -> tuple[list[str], list[str]]:
        """Copy ``keys`` in; return (kids imported, kids already in the store). Idempotent."""
        imported: list[str] = []
        present: list[str] = []

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            imported.clear()
            present.clear()
            if rows:
                self._keyset(rows)  # the store's keys must open under this KEK too
            have = {r.kid for r in rows}
            add = []
            for key in keys.keys:
                if key.kid in have:
                    present.append(key.kid)
                else:
                    imported.append(key.kid)
                    add.append(seal_key(key, self.kek))
            return KeyEdit(add=tuple(add))

        self._edit(decide)
        return imported, present

    def rotate(
        self,
        alg: Algorithm | None = None,
        now: float | None = None,
        *,
        activates_in: int | None = None,
    ) -> SigningKey:
        """Add a key that activates after ``prepublication_delay`` (or ``activates_in``)."""
        if alg is not None:
            _check_alg(alg)
        delay = self.prepublication_delay if activates_in is None else activates_in
        if delay < 0:
            raise ValueError("activates_in must be >= 0 seconds")
        ts = int(time.time()) if now is None else int(now)
        made: list[SigningKey] = []

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            keyset = self._keyset(rows)
            made[:] = [
                generate_signing_key(
                    alg or _current_alg(keyset, ts), now=ts, activates_at=ts + delay
                )
            ]
            return KeyEdit(add=(seal_key(made[0], self.kek),))

        self._edit(decide)
        return made[0]

    def retire(self, kid: str, now: float | None = None) -> None:
        """Stop publishing ``kid`` now, with :meth:`KeyDirectory.retire`'s rules."""
        ts = int(time.time()) if now is None else int(now)

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            state = self._keyset(rows).state_of(kid, ts)
            if state == "active":
                raise KeyStoreError(
                    f"kid {kid} is the active signing key and cannot be retired",
                    hint="run `authbridge keys rotate` first, then retire it once the new key "
                    f"is active (after {self.prepublication_delay} s)",
                )
            if state in ("retired", "revoked"):
                return KeyEdit()
            row = next(r for r in rows if r.kid == kid)
            return KeyEdit(update=(replace(row, retired_at=ts),))

        self._edit(decide)

    def revoke(
        self, kid: str, reason: str, now: float | None = None, *, rotate: bool = False
    ) -> SigningKey | None:
        """Take ``kid`` out of the JWKS and out of verification now; return the new key, if any.

        Revoking the key that signs now leaves nothing to sign with, so it is
        refused unless ``rotate`` makes a new key, active at once, in the same
        transaction. Revoking a revoked key changes nothing.
        """
        if reason not in REVOCATION_REASONS:
            raise KeyStoreError(
                f"unknown revocation reason {reason!r}",
                hint=f"use one of {', '.join(REVOCATION_REASONS)}",
            )
        ts = int(time.time()) if now is None else int(now)
        made: list[SigningKey] = []

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            made.clear()
            keyset = self._keyset(rows)
            state = keyset.state_of(kid, ts)
            if state == "revoked":
                return KeyEdit()
            signs_now = _signing_kid(keyset, ts) == kid
            add: tuple[KeyRecord, ...] = ()
            if rotate:
                # Active at once: with a compromised key, a verifier briefly meeting an
                # unknown kid is the lesser harm.
                # Keys are ordered by (activates_at, created_at, kid): a key that activated
                # this same second (a rotation just before) must sort before the successor,
                # or the revoked key would still count as the newest and none would sign.
                ties = [k.created_at + 1 for k in keyset.keys if k.activates_at == ts]
                created = max([ts, *ties])
                alg = _current_alg(keyset, ts)
                made.append(generate_signing_key(alg, now=created, activates_at=ts))
                add = (seal_key(made[0], self.kek),)
            elif signs_now:
                raise KeyStoreError(
                    f"kid {kid} is the key that signs now; revoking it would leave none",
                    hint="add --rotate to make a new key, active at once, in the same step",
                )
            row = next(r for r in rows if r.kid == kid)
            return KeyEdit(add=add, update=(replace(row, revoked_at=ts, revocation_reason=reason),))

        self._edit(decide)
        return made[0] if made else None

    def maybe_rotate(self, current: KeySet | None = None, now: float | None = None) -> bool:
        """Automatic rotation: make a pending key if one is due; safe to call from every replica.

        The cheap check on ``current`` (the ring's key set) runs first, so the
        lock is taken only when a rotation looks due. Under the lock the rows are
        read again and the decision is made on them: of replicas racing, exactly
        one writes, and a replica that finds the lock held does nothing this
        time (``wait=False``). Returns whether a key was made.
        """
        ts = time.time() if now is None else now
        if current is not None and plan_rotation(current, ts, self.rotation_period) != "rotate":
            return False
        made: list[SigningKey] = []

        def decide(rows: list[KeyRecord]) -> KeyEdit:
            made.clear()
            keyset = self._keyset(rows)
            if plan_rotation(keyset, ts, self.rotation_period) != "rotate":
                return KeyEdit()
            made.append(
                generate_signing_key(
                    _current_alg(keyset, ts),
                    now=int(ts),
                    activates_at=int(ts) + self.prepublication_delay,
                )
            )
            return KeyEdit(add=(seal_key(made[0], self.kek),))

        done = self._edit(decide, wait=False)
        if made and done is not None:
            _log.info("signing keys: rotated automatically, new pending key %s", made[0].kid)
            return True
        return False

    def describe(self, now: float) -> list[KeyDescription]:
        return self.load().describe(now)


def _check_alg(alg: str) -> None:
    if alg not in ALGORITHMS:
        raise KeyStoreError(f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


def _signing_kid(keys: KeySet, now: float) -> str | None:
    try:
        return keys.signing_key(now).kid
    except KeyStoreError:
        return None


def _current_alg(keys: KeySet, now: float) -> Algorithm:
    """The algorithm a new key gets by default: the active key's, else the newest key's."""
    candidates = keys._candidates(now)
    return (candidates[-1] if candidates else keys.keys[-1]).alg
