"""Signing keys: the ``keys/`` directory, key states over time, and the JWKS.

Two halves:

* :class:`KeySet` is an immutable, pure snapshot: which key signs, which keys
  verify, what the JWKS says, all as a function of ``now``. Nothing in it does I/O.
* :class:`KeyDirectory` is the on-disk side: it loads a :class:`KeySet` from a
  directory and makes the only three writes (``init``, ``rotate``, ``retire``).

On disk, each key is one unencrypted PKCS#8 PEM file ``<kid>.pem`` (mode 0600)
and ``signing-keys.json`` lists every key with its timestamps (epoch seconds)::

    {"version": 1, "keys": [{"kid": "…", "alg": "RS256", "file": "<kid>.pem",
      "created_at": 1700000000, "activates_at": 1700000600, "retired_at": null}]}

A key's state is *derived* from those timestamps at a given ``now`` rather than
stored, so replicas that mount ``keys/`` read-only from a Kubernetes Secret agree
on the active key without ever writing::

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
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge.errors import KeyStoreError

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
KeyState = Literal["pending", "active", "retiring", "retired"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

ALGORITHMS: tuple[Algorithm, ...] = get_args(Algorithm)
STATE_FILE = "signing-keys.json"
LOCK_FILE = ".signing-keys.lock"
DEFAULT_PREPUBLICATION_DELAY = 600  # seconds a new key is published before it signs
DEFAULT_MAX_TOKEN_LIFETIME = 43200  # seconds; the longest token any key may have signed

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
            rows.append(
                {
                    "kid": key.kid,
                    "alg": key.alg,
                    "state": state,
                    "created": _iso(key.created_at) or "",
                    "activates": _iso(key.activates_at) or "",
                    "retires": _iso(key.retires_at(successor, self.max_token_lifetime)),
                    "retired": _iso(key.retired_at),
                }
            )
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
        if not stat.S_ISREG(st.st_mode):
            raise KeyStoreError(f"key file {key_path} is not a regular file")
        if st.st_mode & _UNSAFE_MODE_BITS:
            raise KeyStoreError(
                f"key file {key_path} is accessible by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); refusing to use it",
                hint=f"run `chmod 600 {key_path}`",
            )
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


class KeyRing:
    """The current :class:`KeySet` of a directory, reloaded when the directory changes.

    Each server worker holds one. :meth:`current` looks at the directory's
    fingerprint at most every ``check_interval`` seconds and reloads on change;
    a reload that fails (a half-copied Secret, a bad file) keeps the last good
    key set serving and records why in :attr:`last_error`.
    """

    def __init__(
        self,
        directory: KeyDirectory,
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
        self.last_error: str | None = None
        self.reloads = 0

    def current(self) -> KeySet:
        now = self._clock()
        if now - self._checked < self.check_interval:
            return self._keys
        with self._lock:
            if now - self._checked < self.check_interval:
                return self._keys
            self._checked = now
            fingerprint = self.directory.fingerprint()
            if fingerprint != self._fingerprint:
                try:
                    self._keys = self.directory.load()
                except KeyStoreError as e:
                    self.last_error = str(e)
                else:
                    self._fingerprint = fingerprint
                    self.last_error = None
                    self.reloads += 1
        return self._keys
