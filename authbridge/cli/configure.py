"""``authbridge configure``: write a profile to the credentials file for ``authbridge token``.

The secret never comes from a flag (argv shows in ``ps``): it is read as one
line from stdin when stdin is not a terminal (``… | authbridge configure …``),
else prompted for without echo, on stderr. Everything is checked before the
file is touched; the file is then replaced atomically (0600 from the first
byte, in a 0700 ``~/.authbridge``), keeping every other profile and comment.
Values not given keep what the profile had.

Before saving, the key is checked against the endpoint (``--no-verify`` skips
it, for an offline set-up): one ``POST /oauth2/introspect`` authenticated with
the access key (RFC 7662 needs client authentication; the token sent is a
placeholder, answered ``{"active": false}``), so nothing is minted and no
audience is needed. A wrong secret would otherwise be saved, fail at the first
``authbridge token`` with ``invalid_client``, and after the server's
failure limit lock out every caller of the same key: the check costs one
attempt, and a refusal saves nothing (exit 1, saying what to do).
``--secret-access-key VALUE`` is refused (exit 2) without repeating the value.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from authbridge.cli.context import App, output_option, pass_app

_MAX_SECRET_LINE = 4096
_MAX_CA_BYTES = 1024 * 1024
_MAX_RESPONSE = 64 * 1024
_TIMEOUT = 10.0  # seconds, connect and each read
INTROSPECT_PATH = "/oauth2/introspect"
# Sent as the token to introspect: the check is the client authentication, not the token.
_PROBE_TOKEN = "authbridge-configure-check"  # noqa: S105 - a placeholder, not a secret
_NO_VERIFY = "or pass --no-verify to save it without checking (offline set-up)"
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


def _refuse_secret_flag(_ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        # Never echo the value: it is a secret, already in the shell history and `ps`.
        raise click.UsageError(
            "--secret-access-key: secrets come from stdin or the prompt, never argv"
            " (argv shows in `ps` and shell history; rotate the key if that was a real one)"
        )


def _check_key(endpoint: str, ca_file: str | None, key_id: str, secret: str) -> None:
    """One client-authenticated request proving the server accepts this key and secret."""
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    from authbridge import __version__
    from authbridge.client.errors import IssuerError
    from authbridge.client.issuer import basic_authorization

    url = endpoint.rstrip("/") + INTROSPECT_PATH
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except OSError as e:
        raise IssuerError(
            f"cannot use CA file {ca_file}: {getattr(e, 'strerror', None) or e}",
            hint="check --ca-file",
        ) from e

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect would carry the credentials elsewhere

    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), NoRedirects()
    )
    # S310: the endpoint was checked to be https:// (authbridge.client.config.check_endpoint).
    request = urllib.request.Request(  # noqa: S310
        url,
        data=urllib.parse.urlencode({"token": _PROBE_TOKEN}).encode("ascii"),
        headers={
            "Authorization": basic_authorization(key_id, secret),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": f"authbridge/{__version__}",
        },
        method="POST",
    )
    try:
        with opener.open(request, timeout=_TIMEOUT) as response:
            raw, status = response.read(_MAX_RESPONSE + 1), response.status
    except urllib.error.HTTPError as e:
        raw = e.read(_MAX_RESPONSE + 1) if e.fp is not None else b""
        status = e.code
        e.close()
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise IssuerError(
                f"TLS verification of {endpoint} failed: {reason.verify_message or reason};"
                " nothing was saved",
                hint="pass --ca-file with the CA that signed the server's certificate"
                f" (authbridge init writes keys/tls/ca.crt), {_NO_VERIFY}",
            ) from None
        text = getattr(reason, "strerror", None) or reason
        raise IssuerError(
            f"cannot reach {endpoint} to check the key: {text}; nothing was saved",
            hint=f"check --endpoint and that the server runs, {_NO_VERIFY}",
        ) from None
    except (OSError, ValueError) as e:
        raise IssuerError(
            f"cannot reach {endpoint} to check the key: {e}; nothing was saved",
            hint=f"check --endpoint and that the server runs, {_NO_VERIFY}",
        ) from None
    check_answer(status, raw, endpoint, key_id)


def check_answer(status: int, raw: bytes, endpoint: str, key_id: str) -> None:
    """Whether the introspection answer accepts the key: returns, or raises :class:`IssuerError`.

    Any status and body (the server's, or whatever answered instead) end in one of
    the two; the body is never repeated, only its OAuth ``error`` code.
    """
    import json

    from authbridge.client.errors import IssuerError

    try:
        doc = json.loads(raw) if len(raw) <= _MAX_RESPONSE else None
    except (ValueError, RecursionError):
        doc = None
    if status == 200 and isinstance(doc, dict) and isinstance(doc.get("active"), bool):
        return
    error = doc.get("error") if isinstance(doc, dict) else None
    if error == "invalid_client":
        raise IssuerError(
            f"{endpoint} refused access key {key_id} (invalid_client): the secret is wrong, or"
            " the key is inactive or deleted; nothing was saved",
            hint="run configure again with the secret `authbridge iam create-access-key`"
            " printed (`authbridge iam list-access-keys --user-name NAME` shows the key's status)",
        )
    if status == 429 or error == "too_many_requests":
        raise IssuerError(
            f"{endpoint} refused the check: too many failed attempts for this key or address;"
            " nothing was saved",
            hint="wait a minute, then run configure again with the right secret",
        )
    raise IssuerError(
        f"{endpoint}{INTROSPECT_PATH} answered HTTP {status}, not an authbridge introspection"
        " answer; nothing was saved",
        hint=f"check that --endpoint is the base URL of an authbridge server, {_NO_VERIFY}",
    )


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
@click.option(
    "--no-verify",
    is_flag=True,
    help="Save without checking the key against the endpoint (offline set-up).",
)
@click.option(
    "--secret-access-key",
    hidden=True,
    expose_value=False,
    is_eager=True,
    callback=_refuse_secret_flag,
    help="Refused: the secret comes from stdin or the prompt, never argv.",
)
@output_option
@pass_app
def configure(
    app: App,
    profile: str | None,
    endpoint: str,
    access_key_id: str,
    ca_file: str | None,
    cluster_id: str | None,
    no_verify: bool,
) -> None:
    """Save an endpoint and access key as a profile in ~/.authbridge/credentials.

    The secret access key is read as one line from stdin when stdin is not a
    terminal, else prompted for without echo; never from a flag. Before
    saving, the key and secret are checked against the endpoint with one
    authenticated request (nothing is saved if the server refuses them);
    --no-verify skips the check for an offline set-up. Other profiles are
    kept, and values not given keep what the profile had.
    AUTHBRIDGE_CREDENTIALS_FILE names another file.

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
        parse_credentials,
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
    if not no_verify:
        # The CA the profile will hold: the one given, else the one it already had.
        saved = parse_credentials(text, path)[name].values
        ca = saved.get("ca_file")
        _check_key(
            values["endpoint"],
            str(path.parent / os.path.expanduser(ca)) if ca else None,
            values["access_key_id"],
            secret,
        )
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
        "Verified": not no_verify,
    }
    checked = "checked against the endpoint" if not no_verify else "not checked (--no-verify)"
    app.emit(doc, lambda: f"Saved profile {name} ({values['access_key_id']}, {checked}) to {path}.")
