"""Per-invocation CLI state: settings, the IAM store and the output format, built on first use.

Nothing is read from disk or the database until a command asks for it, so
``--help``, ``--version`` and usage errors work anywhere, even with a broken
config file or an unreachable database. A global option given after the
subcommand arrives through :meth:`App.set_global` and replaces the one given
before it (a ``--keys-dir`` also moves the default config file with it).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import click

from authbridge.errors import ConfigError, NoSuchEntity

if TYPE_CHECKING:
    from authbridge.settings import Settings
    from authbridge.store.base import Store

# The same as authbridge.settings.CONFIG_FILE_NAME (a test holds them equal): not
# imported from there, so `authbridge token` never loads the settings module.
CONFIG_FILE_NAME = "authbridge.yaml"
KEYS_DIR_ENV = "AUTHBRIDGE_KEYS_DIR"

OutputFormat = Literal["json", "text"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("json", "text")

# How many account ids an "which account?" error lists before "…".
_ACCOUNTS_SHOWN = 10

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """What one ``authbridge`` invocation runs with. Lazy: see the module docstring."""

    def __init__(
        self,
        *,
        flags: Mapping[str, Any],
        config_file: Path | None,
        env: Mapping[str, str],
        output: OutputFormat = "text",
        profile: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self._flags: dict[str, Any] = dict(flags)
        self._env = env
        # --profile / --endpoint: the admin API instead of the store (authbridge.cli.admin_call).
        self.profile = profile
        self.endpoint = endpoint
        # --config (or AUTHBRIDGE_CONFIG) as given; else the default found in the keys dir.
        self._config_flag = config_file
        self._config_file = config_file if config_file is not None else self._default_config()
        self.output: OutputFormat = output
        self._settings: Settings | None = None
        self._store: Store | None = None

    def _default_config(self) -> Path | None:
        """``<keys dir>/authbridge.yaml`` when it exists: `authbridge init` writes it there."""
        keys_dir = self._flags.get("keys_dir") or self._env.get(KEYS_DIR_ENV) or "keys"
        default = Path(keys_dir) / CONFIG_FILE_NAME
        return default if default.is_file() else None

    def set_global(self, name: str, value: Any) -> None:
        """A global option given after the subcommand: it replaces the one given before."""
        if name == "output":
            self.output = cast(OutputFormat, value)
            return
        if name in ("profile", "endpoint"):
            setattr(self, name, value)
            return
        if name == "config":
            self._config_flag = self._config_file = Path(value)
        else:
            self._flags[name] = value
            if name == "keys_dir" and self._config_flag is None:
                self._config_file = self._default_config()
        self._settings = None

    # -- the admin API or the store ----------------------------------------------------
    @property
    def env(self) -> Mapping[str, str]:
        return self._env

    @property
    def api_mode(self) -> bool:
        """Whether ``iam``/``access``/``keys`` verbs go to the admin API (a profile or endpoint)."""
        from authbridge.cli.admin_call import wants_api

        return wants_api(self.profile, self.endpoint, self._env)

    def admin(
        self, action: str, params: Mapping[str, Any], *, account: str | None = None
    ) -> dict[str, Any] | None:
        """Admin action ``action`` with AWS-named ``params``, over the API or on the store.

        See :mod:`authbridge.cli.admin_call`: the document ``-o json`` prints
        (``None`` or ``{}`` for verbs that print nothing).
        """
        from authbridge.cli.admin_call import call

        return call(self, action, params, account=account)

    def require_store(self, verb: str) -> None:
        """Refuse API mode for ``verb``: it has no admin API action."""
        from authbridge.cli.admin_call import require_store

        require_store(self, verb)

    # -- settings and store ------------------------------------------------------------
    def use_config_file(self, path: Path) -> None:
        """Read settings from ``path`` from now on (after ``init`` wrote it)."""
        if self._config_file is None:
            self._config_file = path
            self._settings = None

    def add_flags(self, **flags: Any) -> None:
        """Settings given as a subcommand's own flags (``serve --bind …``); None = not given."""
        self._flags.update({k: v for k, v in flags.items() if v is not None})
        self._settings = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from authbridge.settings import load_settings

            self._settings = load_settings(self._flags, self._env, self._config_file)
        return self._settings

    @property
    def store(self) -> Store:
        """The IAM store, opened (and migrated) on first use; closed by :meth:`close`."""
        if self._store is None:
            from authbridge.iam.credentials import load_or_create_pepper
            from authbridge.store import open_store

            settings = self.settings
            # The pepper (in the keys directory) is read, or created 0600 in a 0700
            # directory, only when a command hashes or checks a secret.
            self._store = open_store(
                settings.store,
                pepper=lambda: load_or_create_pepper(settings.pepper_file),
                partition=settings.partition,
            )
        return self._store

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def account_id(self) -> str:
        """The account IAM commands act on: the setting, else the store's only account."""
        chosen = self.settings.account_id
        if chosen is not None:
            return chosen
        accounts = [a.account_id for a in self.store.list_accounts()]
        if len(accounts) == 1:
            return accounts[0]
        if not accounts:
            raise NoSuchEntity(
                "the store has no IAM account yet",
                hint="create one with `authbridge iam create-account`",
            )
        shown = ", ".join(accounts[:_ACCOUNTS_SHOWN])
        if len(accounts) > _ACCOUNTS_SHOWN:
            shown += ", …"
        raise ConfigError(
            f"the store has {len(accounts)} IAM accounts ({shown}) and none was chosen",
            hint="pass --account-id ID or set AUTHBRIDGE_ACCOUNT_ID",
        )

    def new_account_id(self) -> str:
        """A random 12-digit account id (AWS account ids may start with 0)."""
        return f"{secrets.randbelow(10**12):012d}"

    # -- output ------------------------------------------------------------------------
    def emit(self, doc: Mapping[str, Any] | None, text: Callable[[], str | None]) -> None:
        """Print ``doc`` as JSON, or ``text()`` in text mode; ``None`` prints nothing."""
        if self.output == "json":
            if doc is not None:
                # ensure_ascii: whatever a tag or description holds, the bytes
                # written are plain ASCII and cannot drive the terminal.
                click.echo(json.dumps(doc, indent=4, ensure_ascii=True))
            return
        rendered = text()
        if rendered:
            click.echo(rendered)


pass_app = click.make_pass_decorator(App)


def _set_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        app = ctx.find_object(App)
        if app is not None:
            app.output = cast(OutputFormat, value)


def output_option(f: F) -> F:
    """``-o/--output`` on a subcommand, so it may come after the command as well as before."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default=None,
        expose_value=False,
        callback=_set_output,
        help="Output format (overrides the global -o).",
    )(f)
