"""``authbridge keys …``: the signing keys in the keys directory (init, list, rotate, retire).

The rules (states, delays, what may be retired) are :mod:`authbridge.keys`'s;
this module only reads the settings, calls it and shows the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from authbridge.keys import Algorithm, KeyDescription, KeyDirectory

# authbridge.keys.ALGORITHMS, repeated so that `--help` does not import cryptography.
_ALGORITHMS = ("RS256", "ES256")

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def keys() -> None:
    """Manage the token signing keys: init, list, rotate, retire.

    The keys live in --keys-dir (default keys/). A key is pending (published,
    not yet signing), active (signing), retiring (published so the tokens it
    signed still verify) or retired.

    \b
    Example:
      authbridge keys init
      authbridge keys rotate
      authbridge keys list
    """


def _directory(app: App) -> KeyDirectory:
    from authbridge.keys import KeyDirectory

    settings = app.settings
    return KeyDirectory(
        settings.keys_dir,
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
    )


def _describe(directory: KeyDirectory, now: float) -> list[KeyDescription]:
    return directory.load().describe(now)


def _row(rows: list[KeyDescription], kid: str) -> dict[str, Any]:
    for row in rows:
        if row["kid"] == kid:
            return dict(row)
    raise AssertionError(f"kid {kid} vanished from the key directory")  # pragma: no cover


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
    directory = _directory(app)
    key = directory.init(algorithm or app.settings.key_algorithm)
    row = _row(_describe(directory, time.time()), key.kid)
    app.emit(
        {"Key": row},
        lambda: (
            f"Created signing key {key.kid} ({key.alg}) in {directory.path}; "
            f"it is {row['state']} now."
        ),
    )


@keys.command("list")
@output_option
@pass_app
def list_keys(app: App) -> None:
    """List every signing key with its state and times (UTC).

    \b
    Example:
      authbridge -o json keys list
    """
    rows = [dict(r) for r in _describe(_directory(app), time.time())]
    app.emit({"Keys": rows}, lambda: out.table(rows, out.KEY_COLUMNS, "No signing keys."))


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
    directory = _directory(app)
    now = time.time()
    key = directory.rotate(algorithm, now)
    row = _row(_describe(directory, now), key.kid)

    def text() -> str:
        delay = max(0, key.activates_at - int(now))
        return (
            f"Created signing key {key.kid} ({key.alg}); it is {row['state']}: "
            f"published now, it starts signing at {row['activates']} (in {delay} s)."
        )

    app.emit({"Key": row}, text)


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
    directory = _directory(app)
    now = time.time()
    directory.retire(kid, now)
    row = _row(_describe(directory, now), kid)
    app.emit(
        {"Key": row},
        lambda: f"Key {kid} is {row['state']}; tokens it signed no longer verify.",
    )
