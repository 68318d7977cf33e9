"""The signing-key actions: list, export (the JWKS), rotate, retire and revoke.

Each function is one ``authbridge keys …`` verb over the configured key
source (:func:`key_place`: the keys directory, or the store sealed under the
KEK when ``keySource`` is ``store``) and returns what ``authbridge -o json
keys …`` prints (``keys export --public`` prints the JWKS whatever ``-o``
says). Resources: ``arn:<partition>:authbridge::<account>:signing-key/<kid>``
for retire and revoke, ``…:signing-key/*`` for the rest.

Not in the API: ``keys init`` (a running server already has its first key:
``keys rotate`` adds one) and ``keys import`` (it copies the files of a
local keys directory into the store; only someone with those files can run
it, so it stays a CLI verb). Both stay what they are in the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from authbridge.admin.actions import Action, Document, Target
from authbridge.admin.params import Param
from authbridge.errors import InputError, KeyStoreError

if TYPE_CHECKING:
    from authbridge.keys import Algorithm, Kek, KeyDescription, KeyDirectory, StoreKeys
    from authbridge.settings import Settings
    from authbridge.store.base import Store

# authbridge.keys.ALGORITHMS and REVOCATION_REASONS (a test holds them equal): repeated so
# that describing the actions does not import cryptography.
ALGORITHMS: Final = ("RS256", "ES256")
REVOCATION_REASONS: Final = ("compromised", "superseded", "unspecified")


@dataclass(frozen=True)
class KeyPlace:
    """Where the signing keys live: the source to act on and its description."""

    source: KeyDirectory | StoreKeys
    location: str  # "files: keys" or "store: <DSN without password>"

    @property
    def in_store(self) -> bool:
        from authbridge.keys import StoreKeys

        return isinstance(self.source, StoreKeys)


def directory(settings: Settings) -> KeyDirectory:
    from authbridge.keys import KeyDirectory

    return KeyDirectory(
        settings.keys_dir,
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
    )


def store_keys(settings: Settings, store: Store) -> StoreKeys:
    from authbridge.keys import StoreKeys, load_kek

    kek = load_kek(settings.kek_file, settings.kek)
    return StoreKeys(
        store,
        kek,
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
        rotation_period=settings.rotation_period,
        location=location(settings),
    )


def location(settings: Settings) -> str:
    from authbridge.settings import redact_dsn

    if settings.key_source == "store":
        return f"store: {redact_dsn(settings.store)}"
    return f"files: {settings.keys_dir}"


def configured_kek(settings: Settings) -> Kek | None:
    """The key-encryption key when one is configured (kekFile or AUTHBRIDGE_KEK), else None."""
    from authbridge.keys import load_kek

    if settings.kek_file is None and settings.kek is None:
        return None
    return load_kek(settings.kek_file, settings.kek)


def key_place(settings: Settings, store: Callable[[], Store]) -> KeyPlace:
    """The configured source; the store is asked for only when the keys live there."""
    if settings.key_source == "store":
        return KeyPlace(store_keys(settings, store()), location(settings))
    return KeyPlace(directory(settings), location(settings))


def _row(rows: list[KeyDescription], kid: str) -> dict[str, Any]:
    for row in rows:
        if row["kid"] == kid:
            return dict(row)
    raise AssertionError(f"kid {kid} vanished from the signing keys")  # pragma: no cover


def _rows(place: KeyPlace, now: float) -> list[KeyDescription]:
    return place.source.load().describe(now)


def list_keys(place: KeyPlace, now: float) -> Document:
    return {"Keys": [dict(r) for r in _rows(place, now)], "Source": place.location}


def export_public(place: KeyPlace, now: float) -> Document:
    """The JWKS of the published keys: public keys only, never a private one."""
    return dict(place.source.load().jwks(now))


def rotate(place: KeyPlace, algorithm: Algorithm | None, now: float) -> Document:
    key = place.source.rotate(algorithm, now)
    return {"Key": _row(_rows(place, now), key.kid)}


def retire(place: KeyPlace, kid: str, now: float) -> Document:
    place.source.retire(kid, now)
    return {"Key": _row(_rows(place, now), kid)}


def revoke(place: KeyPlace, kid: str, reason: str, rotate_too: bool, now: float) -> Document:
    """``{"Key", "Reason"[, "NewKey"]}``; keys in the store only (files: KeyStoreError)."""
    from authbridge.keys import StoreKeys

    source = place.source
    if not isinstance(source, StoreKeys):
        raise KeyStoreError(
            "keys revoke acts on keys in the store, and keySource is files",
            hint=f"run `authbridge keys retire --kid {kid}` (after `keys rotate` if it is the"
            " active key): a retired key file stops verifying at once",
        )
    new = source.revoke(kid, reason, now, rotate=rotate_too)
    rows = _rows(place, now)
    doc: Document = {"Key": _row(rows, kid), "Reason": reason}
    if new is not None:
        doc["NewKey"] = _row(rows, new.kid)
    return doc


# --------------------------------------------------------------------------- schema


def key_arn(target: Target, kid: str) -> str:
    return f"arn:{target.partition}:authbridge::{target.account_id}:signing-key/{kid}"


def _all_keys(target: Target, _args: Mapping[str, Any]) -> tuple[str, ...]:
    return (key_arn(target, "*"),)


_KID = re.compile(r"[A-Za-z0-9_-]{1,128}", re.ASCII)  # RFC 7638 thumbprints, base64url


def _one_key(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    kid = args["kid"]
    if not _KID.fullmatch(kid):
        raise InputError("KeyId", "must be a kid: 1 to 128 base64url characters")
    return (key_arn(target, kid),)


KID = Param("KeyId", "kid", required=True, doc="The kid (see ListSigningKeys).")

ACTIONS: Final[tuple[Action, ...]] = (
    Action(
        "ListSigningKeys",
        "authbridge",
        "keys",
        "keys list",
        (),
        lambda t, a: list_keys(t.key_place(), t.now()),
        _all_keys,
        mutating=False,
    ),
    Action(
        "ExportSigningKeys",
        "authbridge",
        "keys",
        "keys export --public",
        (),
        lambda t, a: export_public(t.key_place(), t.now()),
        _all_keys,
        mutating=False,
    ),
    Action(
        "RotateSigningKey",
        "authbridge",
        "keys",
        "keys rotate",
        (Param("Algorithm", "algorithm", choices=ALGORITHMS),),
        lambda t, a: rotate(t.key_place(), a["algorithm"], t.now()),
        _all_keys,
        mutating=True,
    ),
    Action(
        "RetireSigningKey",
        "authbridge",
        "keys",
        "keys retire",
        (KID,),
        lambda t, a: retire(t.key_place(), a["kid"], t.now()),
        _one_key,
        mutating=True,
    ),
    Action(
        "RevokeSigningKey",
        "authbridge",
        "keys",
        "keys revoke",
        (
            KID,
            Param("Reason", "reason", required=True, choices=REVOCATION_REASONS),
            Param("Rotate", "rotate", kind="boolean", default=False),
        ),
        lambda t, a: revoke(t.key_place(), a["kid"], a["reason"], a["rotate"], t.now()),
        _one_key,
        mutating=True,
    ),
)
