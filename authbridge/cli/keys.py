"""``authbridge keys …``: the signing keys (init, list, rotate, retire, revoke, import, export).

The keys live where the ``keySource`` setting says: ``files`` (the keys
directory, as always) or ``store`` (sealed under the KEK; the default when a
KEK is configured). Every verb acts on that source; ``keys import`` copies
the keys directory into the store, ``keys revoke`` works on the store only.
The rules (states, delays, what may be retired or revoked) are
:mod:`authbridge.keys`'s. ``list``, ``rotate``, ``retire``, ``revoke`` and
``export`` are admin actions (:mod:`authbridge.admin.keys`), called through
:meth:`App.admin`: the admin API with ``--profile``/``--endpoint``, else the
configured source here. ``init`` and ``import`` need the keys themselves and
are refused in API mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from authbridge.admin import keys as ops
from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from authbridge.keys import Algorithm, KeyDescription, KeyDirectory, KeySet, StoreKeys

# authbridge.keys.ALGORITHMS and REVOCATION_REASONS, repeated so that `--help` does not
# import cryptography (a test holds them equal).
_ALGORITHMS = ("RS256", "ES256")
_REVOCATION_REASONS = ("compromised", "superseded", "unspecified")

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def keys() -> None:
    """Manage the token signing keys: init, list, rotate, retire, revoke, import, export.

    The keys live in --keys-dir (default keys/), or in the store, sealed under a
    key-encryption key, when keySource is store (the default once kekFile or
    AUTHBRIDGE_KEK is set). A key is pending (published, not yet signing),
    active (signing), retiring (published so the tokens it signed still
    verify), retired or revoked.

    \b
    Example:
      authbridge keys init
      authbridge keys rotate
      authbridge keys list
    """


def _directory(app: App) -> KeyDirectory:
    return ops.directory(app.settings)


def _store_keys(app: App) -> StoreKeys:
    return ops.store_keys(app.settings, app.store)


def _place(app: App) -> ops.KeyPlace:
    """Where the keys live: the store when keySource is store, else the keys directory."""
    return ops.key_place(app.settings, lambda: app.store)


def _source(app: App) -> KeyDirectory | StoreKeys:
    return _place(app).source


def load_keys(app: App) -> KeySet:
    """The key set of the configured source, for commands that sign or verify locally."""
    return _source(app).load()


def _location(app: App) -> str:
    return ops.location(app.settings)


def _timestamp(iso: str) -> int:
    """Seconds since the epoch of a KeyDescription time (ISO 8601 UTC)."""
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def _describe(source: KeyDirectory | StoreKeys, now: float) -> list[KeyDescription]:
    return source.load().describe(now)


def _row(rows: list[KeyDescription], kid: str) -> dict[str, Any]:
    for row in rows:
        if row["kid"] == kid:
            return dict(row)
    raise AssertionError(f"kid {kid} vanished from the signing keys")  # pragma: no cover


def _doc(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document of an action that always answers one."""
    if doc is None:
        raise AssertionError("the action answered no document")  # pragma: no cover
    return doc


def _algorithm_option(help_text: str) -> Callable[[F], F]:
    return click.option("--algorithm", type=click.Choice(_ALGORITHMS), default=None, help=help_text)


@keys.command("init")
@_algorithm_option("Signing algorithm (default: the keyAlgorithm setting, RS256).")
@output_option
@pass_app
def init(app: App, algorithm: Algorithm | None) -> None:
    """Create the keys directory and its first signing key, active at once.

    Refused when the directory already has keys: use `authbridge keys rotate`.

    \b
    Example:
      authbridge keys init --algorithm ES256
    """
    app.require_store("keys init")
    from authbridge.cli.admin_call import break_glass

    with break_glass(app, "authbridge:InitSigningKeys") as note:
        source = _source(app)
        key = source.init(algorithm or app.settings.key_algorithm)
        note.targets = (f"arn:{app.settings.partition}:authbridge:::signing-key/{key.kid}",)
    row = _row(_describe(source, time.time()), key.kid)
    where = _location(app)
    app.emit(
        {"Key": row, "Source": where},
        lambda: f"Created signing key {key.kid} ({key.alg}) in {where}; it is {row['state']} now.",
    )


@keys.command("list")
@output_option
@pass_app
def list_keys(app: App) -> None:
    """List every signing key with its state and times (UTC), and say where they live.

    \b
    Example:
      authbridge -o json keys list
    """
    result = _doc(app.admin("ListSigningKeys", {}))
    rows, where = result["Keys"], result["Source"]
    app.emit(
        result,
        lambda: out.table(rows, out.KEY_COLUMNS, "No signing keys.") + f"\nKeys live in {where}.",
    )


@keys.command("rotate")
@_algorithm_option("Algorithm of the new key (default: the active key's).")
@output_option
@pass_app
def rotate(app: App, algorithm: Algorithm | None) -> None:
    """Add a new signing key. It is published at once and starts signing later.

    The delay (prepublicationDelaySeconds, default 600) lets every verifier
    fetch the new key before it signs; the old key then keeps verifying the
    tokens it signed for maxTokenLifetimeSeconds.

    \b
    Example:
      authbridge keys rotate
    """
    now = time.time()
    result = _doc(app.admin("RotateSigningKey", {"Algorithm": algorithm}))
    row = result["Key"]

    def text() -> str:
        delay = max(0, _timestamp(row["activates"]) - int(now))
        return (
            f"Created signing key {row['kid']} ({row['alg']}); it is {row['state']}: "
            f"published now, it starts signing at {row['activates']} (in {delay} s)."
        )

    app.emit(result, text)


@keys.command("retire")
@click.option("--kid", required=True, metavar="KID", help="The key to retire (see `keys list`).")
@output_option
@pass_app
def retire(app: App, kid: str) -> None:
    """Stop publishing a key now: tokens it signed stop verifying. The active key is refused.

    \b
    Example:
      authbridge keys retire --kid NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs
    """
    result = _doc(app.admin("RetireSigningKey", {"KeyId": kid}))
    row = result["Key"]
    app.emit(
        result,
        lambda: f"Key {kid} is {row['state']}; tokens it signed no longer verify.",
    )


@keys.command("revoke")
@click.option("--kid", required=True, metavar="KID", help="The key to revoke (see `keys list`).")
@click.option(
    "--reason",
    required=True,
    type=click.Choice(_REVOCATION_REASONS),
    help="Why (kept with the key): compromised, superseded or unspecified.",
)
@click.option(
    "--rotate",
    "rotate_too",
    is_flag=True,
    help="Also make a new key, active at once (needed to revoke the key that signs now).",
)
@output_option
@pass_app
def revoke(app: App, kid: str, reason: str, rotate_too: bool) -> None:
    """Revoke a key in the store: out of the JWKS at once, every token it signed refused.

    Servers drop it within keyRefreshSeconds (default 10). The key that signs
    now is refused unless --rotate makes its successor in the same step.

    \b
    Example:
      authbridge keys revoke --kid NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs \\
          --reason compromised --rotate
    """
    doc = _doc(
        app.admin("RevokeSigningKey", {"KeyId": kid, "Reason": reason, "Rotate": rotate_too})
    )
    new = doc.get("NewKey")

    def text() -> str:
        said = f"Key {kid} is revoked ({reason}): out of the JWKS; tokens it signed are refused."
        if new is not None:
            said += f" New signing key {new['kid']} ({new['alg']}) is active now."
        return said

    app.emit(doc, text)


@keys.command("import")
@output_option
@pass_app
def import_keys(app: App) -> None:
    """Copy the keys directory's signing keys into the store, sealed under the KEK.

    Running it again changes nothing ("already in the store"). The files stay
    as they are; set keySource: store (or just the KEK) for servers to use the
    store's keys.

    \b
    Example:
      AUTHBRIDGE_KEK_FILE=keys/kek authbridge keys import
    """
    app.require_store("keys import")
    from authbridge.cli.admin_call import break_glass

    with break_glass(app, "authbridge:ImportSigningKeys") as note:
        directory = _directory(app)
        keyset = directory.load()
        imported, present = _store_keys(app).import_keys(keyset)
        partition = app.settings.partition
        note.targets = tuple(f"arn:{partition}:authbridge:::signing-key/{k}" for k in imported)
    app.emit(
        {"Imported": imported, "AlreadyInStore": present},
        lambda: "\n".join(
            [f"Imported signing key {kid} into the store." for kid in imported]
            + [f"Signing key {kid} is already in the store." for kid in present]
        ),
    )


@keys.command("export")
@click.option("--public", "public", is_flag=True, help="Print the JWKS (the only export).")
@output_option
@pass_app
def export(app: App, public: bool) -> None:
    """Print the JWKS of the published keys (public keys only), from wherever keys live.

    Private keys are never exported: back up the store (or keys/) and the KEK.

    \b
    Example:
      authbridge keys export --public > jwks.json
    """
    import json

    if not public:
        raise click.UsageError("only --public is supported: private keys never leave the store")
    jwks = _doc(app.admin("ExportSigningKeys", {}))
    click.echo(json.dumps(jwks, indent=2, ensure_ascii=True))
