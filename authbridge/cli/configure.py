"""``authbridge configure``: write a profile to the credentials file for ``authbridge token``.

The secret never comes from a flag (argv shows in ``ps``): it is read as one
line from stdin when stdin is not a terminal (``… | authbridge configure …``),
else prompted for without echo, on stderr. Everything is checked before the
file is touched; the file is then replaced atomically (0600 from the first
byte, in a 0700 ``~/.authbridge``), keeping every other profile and comment.
Values not given keep what the profile had.
"""

from __future__ import annotations

import os
import sys

import click

from authbridge.cli.context import App, output_option, pass_app

_MAX_SECRET_LINE = 4096
_MAX_CA_BYTES = 1024 * 1024
_PIPE_HINT = (
    "pipe it in (e.g. `pass show authbridge | authbridge configure …`) or run in a terminal"
)


def _read_secret() -> str:
    from authbridge.errors import InputError

    stdin = sys.stdin
    if stdin is not None and stdin.isatty():
        value = click.prompt("Secret access key", hide_input=True, err=True)
        return str(value).strip()
    if stdin is None:
        raise InputError("secret access key", "stdin is closed", hint=_PIPE_HINT)
    line = stdin.buffer.readline(_MAX_SECRET_LINE + 1)
    if len(line) > _MAX_SECRET_LINE:
        raise InputError("secret access key", "the first line of stdin is too long")
    try:
        value = line.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise InputError("secret access key", "stdin is not UTF-8 text") from e
    if not value:
        raise InputError("secret access key", "nothing on stdin", hint=_PIPE_HINT)
    return value


def _check_ca_file(path: str) -> str:
    from authbridge.errors import InputError

    absolute = os.path.abspath(os.path.expanduser(path))
    try:
        with open(absolute, "rb") as f:
            data = f.read(_MAX_CA_BYTES + 1)
    except OSError as e:
        raise InputError("--ca-file", f"cannot read {absolute}: {e.strerror}") from e
    if len(data) > _MAX_CA_BYTES or b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(
            "--ca-file",
            f"{absolute} is not a PEM CA bundle",
            hint="pass the CA certificate that signed the server's (authbridge init writes"
            " keys/tls/ca.crt)",
        )
    return absolute


@click.command("configure")
@click.option(
    "--profile",
    metavar="NAME",
    help="Profile to write (also AUTHBRIDGE_PROFILE; default: default).",
)
@click.option(
    "--endpoint",
    required=True,
    metavar="URL",
    help="The authbridge server: https://host[:port].",
)
@click.option(
    "--access-key-id",
    required=True,
    metavar="AKIA…",
    help="From `authbridge iam create-access-key`. The secret is read from stdin or prompted.",
)
@click.option(
    "--ca-file",
    metavar="FILE",
    help="CA bundle that signed the server's certificate (default: the system trust store).",
)
@click.option("--cluster-id", metavar="ID", help="Default cluster id for `authbridge token`.")
@output_option
@pass_app
def configure(
    app: App,
    profile: str | None,
    endpoint: str,
    access_key_id: str,
    ca_file: str | None,
    cluster_id: str | None,
) -> None:
    """Save an endpoint and access key as a profile in ~/.authbridge/credentials.

    The secret access key is read as one line from stdin when stdin is not a
    terminal, else prompted for without echo. Other profiles are kept, and
    values not given keep what the profile had. AUTHBRIDGE_CREDENTIALS_FILE
    names another file.

    \b
    Example:
      authbridge configure --endpoint https://authbridge.example.com:8443 \\
          --access-key-id AKIAIOSFODNN7EXAMPLE --ca-file keys/tls/ca.crt --cluster-id prod
      printf '%s\\n' "$SECRET" | authbridge configure --profile ci --endpoint … --access-key-id …
    """
    from authbridge.client.config import (
        ENV,
        check_access_key_id,
        check_cluster_id,
        check_endpoint,
        check_profile_name,
        check_secret,
    )
    from authbridge.client.credentials import (
        CREDENTIALS_ENV,
        DEFAULT_PROFILE,
        credentials_path,
        read_credentials_text,
        update_profile,
        write_credentials,
    )

    env = os.environ
    if profile is not None:
        name = check_profile_name(profile)
    elif env.get(ENV["profile"]):
        name = check_profile_name(env[ENV["profile"]], ENV["profile"])
    else:
        name = DEFAULT_PROFILE
    values = {
        "endpoint": check_endpoint(endpoint),
        "access_key_id": check_access_key_id(access_key_id),
    }
    if ca_file is not None:
        values["ca_file"] = _check_ca_file(ca_file)
    if cluster_id is not None:
        values["cluster_id"] = check_cluster_id(cluster_id)

    path = credentials_path(env)
    # Read (and parse) before asking for the secret: a broken file fails fast.
    existing = read_credentials_text(path, private=False)
    text = update_profile(existing[0] if existing else "", name, values, path)
    secret = check_secret(_read_secret())
    text = update_profile(text, name, {"secret_access_key": secret}, path)
    write_credentials(path, text, private_parent=not env.get(CREDENTIALS_ENV))

    if existing is not None and existing[1] & 0o077:
        click.echo(
            f"authbridge: warning: {path} was readable or writable by other users"
            f" (mode {existing[1]:04o}); it is 0600 now, but treat the secrets it held as"
            " exposed and rotate them",
            err=True,
        )
    doc = {
        "Profile": name,
        "CredentialsFile": str(path),
        "Endpoint": values["endpoint"],
        "AccessKeyId": values["access_key_id"],
    }
    app.emit(doc, lambda: f"Saved profile {name} ({values['access_key_id']}) to {path}.")
