"""The ``authbridge`` command: global options, subcommand groups, and one error handler.

Exit codes: 0 success; 1 refused or failed, with exactly one line on stderr
(``authbridge: <what>; <what to do>``); 2 usage error (click's own output).
Unexpected exceptions print one line naming the exception type; with
``AUTHBRIDGE_DEBUG=1`` they are re-raised with their traceback.

This module must stay cheap to import: the store, database drivers, Flask,
the kubernetes client and cryptography are imported only by the commands that
use them (check with ``python -X importtime -c "import authbridge.cli.main"``),
and each subcommand's module only when that command runs or ``--help`` lists
it (:data:`COMMANDS`), so ``authbridge token`` loads ``authbridge.cli.token``
and no other command. The console script enters through
:mod:`authbridge.cli.entry`, which answers a cached ``authbridge token``
before this module (and click) is imported at all.

Global options (:data:`GLOBAL_OPTIONS`: ``--config``, ``--store``,
``--keys-dir``, ``--account-id``, ``--partition``, ``--profile``,
``--endpoint``, ``-o``) are the root
group's, with their environment variables, and are added when a command is
loaded (:func:`_with_global_options`) to every subcommand and subgroup, as
kubectl and the AWS CLI take them anywhere. After the subcommand they carry no
environment variable or default, only what was typed, and override the value
given before it; an option a command declares itself keeps its meaning there.
Precedence stays flag > ``AUTHBRIDGE_*`` environment > config file > default.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, NoReturn, cast

import click

from authbridge import __version__
from authbridge.cli.context import CONFIG_FILE_NAME, OUTPUT_FORMATS, App, OutputFormat
from authbridge.cli.output import one_line
from authbridge.errors import (
    AuthbridgeError,
    EntityAlreadyExists,
    InputError,
    InvalidTrust,
    NoSuchEntity,
)

DEBUG_ENV = "AUTHBRIDGE_DEBUG"
CONFIG_ENV = "AUTHBRIDGE_CONFIG"

# What to do next, for errors raised without a hint (the first match in the MRO wins).
_DEFAULT_HINTS: dict[type[AuthbridgeError], str] = {
    # The store's message says "(IAM names are case-insensitive)" when the case differs.
    EntityAlreadyExists: "choose another name, or delete the existing one first",
    NoSuchEntity: "check the name; `authbridge iam list-users`, `list-groups` and"
    " `list-roles` show what exists",
    InvalidTrust: "each --trust must be the ARN of an existing user or group,"
    " or arn:<partition>:iam::<account>:root",
}
_NOT_UTF8 = "authbridge.cli.not_utf8"

# Every subcommand: name -> "module:attribute", imported on first use (see _LazyCommands).
COMMANDS: dict[str, str] = {
    "init": "authbridge.cli.init:init",
    "iam": "authbridge.cli.iam:iam",
    "access": "authbridge.cli.access:access_group",
    "quickstart": "authbridge.cli.quickstart:quickstart",
    "serve": "authbridge.cli.serve:serve",
    "keys": "authbridge.cli.keys:keys",
    "configure": "authbridge.cli.configure:configure",
    "token": "authbridge.cli.token:token",
    "login": "authbridge.cli.login:login",
    "logout": "authbridge.cli.login:logout",
    "kubeconfig": "authbridge.cli.kubeconfig:kubeconfig",
    "mapping": "authbridge.cli.mapping:mapping",
    "verify": "authbridge.cli.verify:verify",
    "rbac": "authbridge.cli.rbac:rbac",
    "apiserver-config": "authbridge.cli.apiserver_config:apiserver_config",
}


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _error_line(e: AuthbridgeError) -> str:
    if e.hint:
        return str(e)
    for cls in type(e).__mro__:
        hint = _DEFAULT_HINTS.get(cls)
        if hint:
            return f"{e.message}; {hint}"
    return str(e)


def _is_utf8(arg: str) -> bool:
    # Bytes that are not UTF-8 reach Python as lone surrogates ("surrogateescape").
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fail(message: str) -> NoReturn:
    click.echo(f"authbridge: {one_line(message)}", err=True)
    raise click.exceptions.Exit(1)


def _os_error_message(e: OSError) -> str:
    what = e.strerror or type(e).__name__
    if e.filename is not None:
        return f"cannot use {e.filename}: {what}; check that the path exists and is accessible"
    return f"{what}; check the paths and permissions authbridge uses"


class _LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands`` that imports each command when it is first looked up.

    click's documented LazyGroup pattern (a name -> ``"module:attr"`` map, the
    module imported when the command is wanted), placed in the mapping that
    :class:`click.Group` already consults (``get_command``, ``list_commands``,
    the "did you mean" suggestions) rather than in overrides of those methods,
    so code that walks ``group.commands`` (the README and deploy checks) sees
    every command too. Listing names imports nothing; a lookup imports one
    module; ``--help`` looks up every command for its short help.
    """

    def __init__(self, specs: Mapping[str, str]) -> None:
        self._entries: dict[str, click.Command | str] = dict(specs)

    def __getitem__(self, name: str) -> click.Command:
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            loaded = cast(click.Command, getattr(importlib.import_module(module), attr))
            entry = self._entries[name] = _with_global_options(loaded)
        return entry

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._entries[name] = _with_global_options(command)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class _Main(click.Group):
    """The root group: turns every failure of a subcommand into one line and an exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        bad = [i for i, arg in enumerate(args, start=1) if not _is_utf8(arg)]
        if bad:
            # Reported by invoke, as one line with exit code 1 like any refused input.
            ctx.meta[_NOT_UTF8] = bad[0]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                if _NOT_UTF8 in ctx.meta:
                    raise InputError(
                        "arguments",
                        f"argument {ctx.meta[_NOT_UTF8]} is not valid UTF-8 text",
                        hint="pass names and values as UTF-8",
                    )
                return super().invoke(ctx)
            finally:
                if isinstance(ctx.obj, App):
                    ctx.obj.close()
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except AuthbridgeError as e:
            _fail(_error_line(e))
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): nothing more to say, to anyone.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise click.exceptions.Exit(1) from None
        except Exception as e:
            if _debug():
                raise
            if isinstance(e, OSError):
                _fail(_os_error_message(e))
            _fail(f"internal error ({type(e).__name__}); run with {DEBUG_ENV}=1 for a traceback")


# The global options: name -> (declarations, click.Option settings). The root group takes
# them before the subcommand (with their environment variables); _with_global_options adds
# them to every subcommand and subgroup as well, where they override the root's.
_CONFIG_HELP = (
    f"YAML config file (also {CONFIG_ENV}; default keys/{CONFIG_FILE_NAME} when it"
    " exists). Relative paths in it resolve against its directory."
)
GLOBAL_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "config": (
        ("--config",),
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "metavar": "FILE",
            "help": _CONFIG_HELP,
        },
    ),
    "store": (
        ("--store",),
        {
            "metavar": "DSN",
            "help": "IAM store: sqlite:///PATH or postgresql://… (also AUTHBRIDGE_STORE; "
            "default sqlite:///data/authbridge.db).",
        },
    ),
    "keys_dir": (
        ("--keys-dir",),
        {
            "metavar": "DIR",
            "help": "Signing keys and the access-key pepper (also AUTHBRIDGE_KEYS_DIR;"
            " default keys).",
        },
    ),
    "account_id": (
        ("--account-id",),
        {
            "metavar": "ID",
            "help": "12-digit account IAM commands act on (also AUTHBRIDGE_ACCOUNT_ID; default:"
            " the store's only account).",
        },
    ),
    "partition": (
        ("--partition",),
        {"metavar": "P", "help": "ARN partition (also AUTHBRIDGE_PARTITION; default aws)."},
    ),
    "profile": (
        ("--profile",),
        {
            "metavar": "NAME",
            "help": "Call the admin API as this credentials profile (also AUTHBRIDGE_PROFILE)"
            " instead of using the store directly; see `authbridge configure`.",
        },
    ),
    "endpoint": (
        ("--endpoint",),
        {
            "metavar": "URL",
            "help": "Call the admin API of this https server (also AUTHBRIDGE_ENDPOINT) instead"
            " of using the store directly.",
        },
    ),
    "output": (
        ("-o", "--output"),
        {
            "type": click.Choice(OUTPUT_FORMATS),
            "help": "Output format: text (default) or json (AWS CLI shapes).",
        },
    ),
}
_AFTER_HELP = " Global: may also come before the subcommand; given both ways, this one wins."


def _set_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the subcommand: it overrides the one before."""
    if value is None or param.name is None:
        return
    app = ctx.find_object(App)
    if app is not None:
        app.set_global(param.name, value)


def _with_global_options(command: click.Command) -> click.Command:
    """Add the global options to ``command`` and, for a group, to every command under it.

    Options a command declares itself win (``iam create-account --account-id`` names
    the account to create, ``apiserver-config -o`` has its own formats): a global
    option is added only when none of its spellings is taken. Idempotent.
    """
    taken = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    for decls, settings in GLOBAL_OPTIONS.values():
        if taken.isdisjoint(decls):
            command.params.append(
                click.Option(
                    decls,
                    **{**settings, "help": settings["help"] + _AFTER_HELP},
                    expose_value=False,
                    callback=_set_global,
                )
            )
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _with_global_options(sub)
    return command


@click.group(
    cls=_Main,
    commands=_LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(*GLOBAL_OPTIONS["config"][0], **GLOBAL_OPTIONS["config"][1], envvar=CONFIG_ENV)
@click.option(*GLOBAL_OPTIONS["store"][0], **GLOBAL_OPTIONS["store"][1])
@click.option(*GLOBAL_OPTIONS["keys_dir"][0], **GLOBAL_OPTIONS["keys_dir"][1])
@click.option(*GLOBAL_OPTIONS["account_id"][0], **GLOBAL_OPTIONS["account_id"][1])
@click.option(*GLOBAL_OPTIONS["partition"][0], **GLOBAL_OPTIONS["partition"][1])
@click.option(*GLOBAL_OPTIONS["profile"][0], **GLOBAL_OPTIONS["profile"][1])
@click.option(*GLOBAL_OPTIONS["endpoint"][0], **GLOBAL_OPTIONS["endpoint"][1])
@click.option(*GLOBAL_OPTIONS["output"][0], **GLOBAL_OPTIONS["output"][1])
@click.version_option(__version__, "--version", prog_name="authbridge")
@click.pass_context
def main(
    ctx: click.Context,
    config: Path | None,
    store: str | None,
    keys_dir: str | None,
    account_id: str | None,
    partition: str | None,
    profile: str | None,
    endpoint: str | None,
    output: str | None,
) -> None:
    """authbridge: self-hosted IAM for Kubernetes, the Amazon EKS access flow on any cluster.

    Settings come from flags, then AUTHBRIDGE_* environment variables, then the
    --config file, then defaults. Exit codes: 0 success, 1 refused or failed
    (one line on stderr saying what to do), 2 usage error.

    \b
    Example:
      authbridge iam create-account --alias prod
      authbridge iam create-user --user-name alice
      authbridge -o json iam create-access-key --user-name alice
      authbridge keys init

    With --profile or --endpoint (or AUTHBRIDGE_PROFILE / AUTHBRIDGE_ENDPOINT),
    the iam, access and keys commands call the admin API over HTTPS as that
    profile's caller; without, they use the store directly (break-glass,
    audited).

    The global options (--config, --store, --keys-dir, --account-id, --partition,
    --profile, --endpoint, -o) may also follow the subcommand, as in kubectl and the AWS CLI
    (`authbridge serve --config F`); given both before and after, the one after
    the subcommand wins.
    """
    ctx.obj = App(
        flags={
            "store": store,
            "keys_dir": keys_dir,
            "account_id": account_id,
            "partition": partition,
        },
        config_file=config,
        env=os.environ,
        output=cast(OutputFormat, output or "text"),
        profile=profile,
        endpoint=endpoint,
    )
