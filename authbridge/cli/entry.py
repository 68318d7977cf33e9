"""The ``authbridge`` console script: a cached ``authbridge token`` is answered before click loads.

kubectl runs ``authbridge token`` before every request, and importing click
and the command tree costs more than everything else that call does.
:func:`main` reads argv as click would for the plain forms kubectl uses
(``token`` first, then its own options, each at most once) and asks
:func:`authbridge.client.fastpath.cached_output`. Anything else (another
command, a global option, ``--help``, ``--local``, ``--no-cache``, an option
not listed here, a value that is empty or looks like an option) and every
``None`` from the fast path run the click CLI, :mod:`authbridge.cli.main`,
exactly as before: the fast path only ever answers, it never refuses.

Standard library only (``os``, ``sys``, ``time``), like the fast path;
``tests/test_client_fastpath.py`` checks the imports and that both paths
print the same bytes.
"""

from __future__ import annotations

import os
import sys
import time

# typing.TYPE_CHECKING without importing typing (mypy reads this name the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# `authbridge token`'s options the fast path reads -> its keyword; a test holds them to the
# click command's. -o/--output is accepted and ignored, as the command ignores it.
VALUE_OPTIONS = {
    "--cluster-id": "cluster_id",
    "--role": "role",
    "--session-name": "session_name",
    "--profile": "profile",
    "--endpoint": "endpoint",
    "--duration": "duration",
    "--ca-file": "ca_file",
    "--web-identity-token-file": "web_identity_token_file",
    "-o": "output",
    "--output": "output",
}
FLAG_OPTIONS = {"--token-only": "token_only"}
OUTPUT_FORMATS = ("json", "text")  # authbridge.cli.context.OUTPUT_FORMATS
DURATION_RANGE = (900, 43200)  # token --duration's click.IntRange
# The root group's own environment: --config's envvar (authbridge.cli.main.CONFIG_ENV),
# and the default config file its callback looks for in the keys directory.
_CONFIG_ENV = "AUTHBRIDGE_CONFIG"
_CONFIG_FILE_NAME = "authbridge.yaml"


def main() -> None:
    """The console script: answer a cached ``authbridge token`` at once, else run the click CLI."""
    answer = cached_answer(sys.argv[1:], os.environ, time.time())
    if answer is None or not _write(answer):
        from authbridge.cli.main import main as cli

        cli()  # click's standalone mode: parses argv, runs the command, exits


def token_flags(args: Sequence[str]) -> dict[str, str] | None:
    """``authbridge token``'s options in ``args`` as click reads them, or ``None`` if not plain.

    Plain: ``token`` first, then options from :data:`VALUE_OPTIONS` (``--opt
    value`` or ``--opt=value``) and :data:`FLAG_OPTIONS`, each at most once,
    values not empty and not starting with ``-``, ``-o`` one of the formats and
    ``--duration`` ASCII digits within the option's range.
    """
    if not args or args[0] != "token":
        return None
    flags: dict[str, str] = {}
    rest = iter(args[1:])
    for arg in rest:
        if arg in FLAG_OPTIONS:
            name, value = FLAG_OPTIONS[arg], ""
        else:
            option, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
            if option not in VALUE_OPTIONS:
                return None
            name = VALUE_OPTIONS[option]
            if not eq:
                value = next(rest, "")
            if not value or value.startswith("-"):
                return None
        if name in flags:
            return None
        flags[name] = value
    if flags.pop("output", OUTPUT_FORMATS[0]) not in OUTPUT_FORMATS:
        return None
    duration = flags.get("duration")
    if duration is not None and not (
        duration.isascii()
        and duration.isdigit()
        and DURATION_RANGE[0] <= int(duration) <= DURATION_RANGE[1]
    ):
        return None
    return flags


def plain_invocation(args: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether click, before reaching ``token``, would do nothing but parse ``args``.

    Not so when an argument is not UTF-8 (the root group refuses it), a shell
    asks for completion (``_AUTHBRIDGE_COMPLETE``), ``AUTHBRIDGE_CONFIG`` is set
    (click checks the path), or looking for ``keys/authbridge.yaml`` fails
    other than with "no such file".
    """
    try:
        for arg in args:
            arg.encode("utf-8")  # bytes that are not UTF-8 arrive as lone surrogates
    except UnicodeEncodeError:
        return False
    if _CONFIG_ENV in env:
        return False
    if any(k.startswith("_") and k.endswith("_COMPLETE") and v for k, v in env.items()):
        return False
    keys_dir = env.get("AUTHBRIDGE_KEYS_DIR") or "keys"
    try:
        os.stat(os.path.join(keys_dir, _CONFIG_FILE_NAME))
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError):
        return False
    return True


def cached_answer(args: Sequence[str], env: Mapping[str, str], now: float) -> str | None:
    """What ``authbridge <args>`` prints if it is a plain ``token`` call the cache answers."""
    flags = token_flags(args)
    if flags is None or not plain_invocation(args, env):
        return None
    from authbridge.client.fastpath import cached_output

    duration = flags.get("duration")
    return cached_output(
        env,
        now,
        cluster_id=flags.get("cluster_id"),
        role=flags.get("role"),
        session_name=flags.get("session_name"),
        profile=flags.get("profile"),
        endpoint=flags.get("endpoint"),
        duration=None if duration is None else int(duration),
        ca_file=flags.get("ca_file"),
        token_only="token_only" in flags,
        web_identity_token_file=flags.get("web_identity_token_file"),
    )


def _write(answer: str) -> bool:
    """Print ``answer`` as click.echo would; False if stdout is closed or the write fails."""
    if sys.stdout is None:
        return False  # click.echo prints nothing then: let it
    try:
        sys.stdout.write(answer)
        sys.stdout.flush()
    except OSError:
        # The click CLI writes it again, fails the same way and reports it as it
        # always has (a closed pipe: exit 1, nothing said).
        return False
    return True
