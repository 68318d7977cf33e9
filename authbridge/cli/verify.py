"""``authbridge verify``: what Kubernetes would see for a token, or precisely why it is refused.

The token comes from the argument, else from stdin when stdin is not a
terminal (a bare token, or the ``ExecCredential`` JSON ``authbridge token``
prints). Arguments are visible in ``ps``; prefer a pipe for tokens that are
still valid.

Remote (the default when an endpoint is known: ``--endpoint``,
``AUTHBRIDGE_ENDPOINT``, or the endpoint of the credentials profile:
``--profile``, ``AUTHBRIDGE_PROFILE``, else ``default``): POST the token to
``{endpoint}/verify`` over verified TLS and print the answer. Local
(``--local``, or when no endpoint is known and the keys directory holds
signing keys, i.e. on the server): load the settings, ``keys/``, the store and
the mapping file and compute the same answer in-process
(:func:`authbridge.review.review_token`), with no server involved. With no
endpoint and no keys (a laptop without a profile) it says to pass
``--profile`` or ``--endpoint``. Either way one line on stderr says which
mode decided (``checked remotely at URL`` / ``checked locally with the keys in
DIR``; on a refusal it ends the ``token refused`` line).

``-o json`` prints the ``/verify`` JSON as it is. Exit codes: 0 authenticated;
1 refused (``authbridge: token refused: <reason> (<mode>)`` on stderr) or failed; 2 usage.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

import click

from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from authbridge.review import VerifyAnswer

MAX_STDIN: Final = 64 * 1024  # bytes: a token, or an ExecCredential holding one
MAX_RESPONSE: Final = 256 * 1024
TIMEOUT: Final = 10.0  # seconds, connect and each read
VERIFY_PATH: Final = "/verify"
PIPE_HINT: Final = (
    "pass the token as an argument or on stdin, e.g."
    " `authbridge token --cluster-id ID --token-only | authbridge verify`"
)


# --------------------------------------------------------------------------- input


def _token_from_text(text: str, source: str) -> str:
    text = text.strip()
    if text.startswith("{"):
        # An ExecCredential (`authbridge token` without --token-only).
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise click.UsageError(f"{source} is JSON but not an ExecCredential") from e
        status = doc.get("status") if isinstance(doc, dict) else None
        token = status.get("token") if isinstance(status, dict) else None
        if not isinstance(token, str) or not token:
            raise click.UsageError(f"{source} is JSON without status.token (not an ExecCredential)")
        return token.strip()
    if not text:
        raise click.UsageError(f"{source} is empty; {PIPE_HINT}")
    if any(c.isspace() for c in text):
        raise click.UsageError(f"{source} holds more than one word; give one token")
    return text


def _read_token(argument: str | None) -> str:
    if argument is not None and argument != "-":
        return _token_from_text(argument, "the TOKEN argument")
    stdin = sys.stdin
    if argument is None and stdin.isatty():  # a person at a terminal, not a pipe
        raise click.UsageError(f"no token given; {PIPE_HINT}")
    data = stdin.read(MAX_STDIN + 1)
    if len(data) > MAX_STDIN:
        raise click.UsageError(f"stdin holds more than {MAX_STDIN // 1024} KiB; give one token")
    return _token_from_text(data, "stdin")


# --------------------------------------------------------------------------- remote


def _remote_target(
    endpoint: str | None, ca_file: str | None, profile: str | None
) -> tuple[str, str | None] | None:
    """(endpoint, CA file) from the flags, the environment, then the profile; None if unknown."""
    from authbridge.client.config import ENV, check_ca_file, check_endpoint, check_profile_name
    from authbridge.client.credentials import DEFAULT_PROFILE, credentials_path, read_credentials

    env = os.environ
    url = check_endpoint(endpoint) if endpoint is not None else None
    ca = check_ca_file(ca_file) if ca_file is not None else None
    if url is None and env.get(ENV["endpoint"]):
        url = check_endpoint(env[ENV["endpoint"]], ENV["endpoint"])
    if ca is None and env.get(ENV["ca_file"]):
        ca = check_ca_file(env[ENV["ca_file"]], ENV["ca_file"])
    if url is not None and ca is not None:
        return url, ca

    name = profile or env.get(ENV["profile"]) or DEFAULT_PROFILE
    check_profile_name(name, "--profile" if profile else ENV["profile"])
    path = credentials_path(env)
    profiles = read_credentials(path) if (profile or path.exists()) else None
    section = profiles.get(name) if profiles else None
    if profile is not None and section is None:
        from authbridge.client.errors import CredentialsError

        raise CredentialsError(
            f"profile {name} is not in {path}",
            hint=f"create it with `authbridge configure --profile {name} --endpoint URL …`",
        )
    if section is not None:
        source = f"credentials file {path}, profile {name}"
        if url is None and section.values.get("endpoint"):
            url = check_endpoint(section.values["endpoint"], f"{source}, key endpoint")
        if ca is None and section.values.get("ca_file"):
            ca = check_ca_file(section.values["ca_file"], f"{source}, key ca_file")
            ca = str(path.parent / Path(ca).expanduser())
    if url is None:
        if ca_file is not None:
            raise click.UsageError("--ca-file needs a server: give --endpoint (or use neither)")
        return None
    return url, ca


def _fail(message: str, hint: str) -> NoReturn:
    from authbridge.client.errors import IssuerError

    raise IssuerError(message, hint=hint)


def _post_verify(endpoint: str, ca_file: str | None, token: str, cluster_id: str | None) -> Any:
    """POST the token to ``{endpoint}/verify``; the decoded JSON answer."""
    import ssl
    import urllib.error
    import urllib.request

    from authbridge import __version__

    url = endpoint + VERIFY_PATH
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except OSError as e:
        why = getattr(e, "strerror", None) or e
        _fail(f"cannot use CA file {ca_file}: {why}", "check --ca-file")

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # a redirect would carry the token elsewhere: answered as an error

    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), NoRedirects()
    )
    body: dict[str, str] = {"token": token}
    if cluster_id is not None:
        body["clusterID"] = cluster_id
    # S310: the endpoint was checked to be https:// (authbridge.client.config.check_endpoint).
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"authbridge/{__version__}",
        },
        method="POST",
    )
    try:
        with opener.open(request, timeout=TIMEOUT) as response:
            raw = response.read(MAX_RESPONSE + 1)
            status = response.status
    except urllib.error.HTTPError as e:
        raw = e.read(MAX_RESPONSE + 1) if e.fp is not None else b""
        status = e.code
        e.close()
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            _fail(
                f"TLS verification of {endpoint} failed: {reason.verify_message or reason}",
                "pass --ca-file with the CA that signed the server's certificate"
                " (authbridge init writes keys/tls/ca.crt)",
            )
        text = getattr(reason, "strerror", None) or reason
        _fail(f"cannot reach {endpoint}: {text}", "check --endpoint and that the server runs")
    except (OSError, ValueError) as e:
        _fail(f"cannot reach {endpoint}: {e}", "check --endpoint and that the server runs")
    if len(raw) > MAX_RESPONSE:
        _fail(f"{url} answered with more than {MAX_RESPONSE // 1024} KiB", "check --endpoint")
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if status == 200 and isinstance(doc, dict) and isinstance(doc.get("authenticated"), bool):
        return doc
    said = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(said, str) and said:
        described = doc.get("error_description")
        what = described if isinstance(described, str) and described else said
        if status == 400 and cluster_id is not None and "not served" in what:
            hint = "give --cluster-id one of the served clusters, or leave it out"
        elif status in (429, 503):
            hint = "try again shortly"
        else:
            hint = "fix what the server names and try again"
        _fail(f"{url} answered HTTP {status}: {what[:300]}", hint)
    _fail(
        f"{url} answered HTTP {status} without a /verify answer",
        "check that --endpoint is the base URL of an authbridge server",
    )


# --------------------------------------------------------------------------- local


def _require_local_keys(keys_dir: Path) -> None:
    """No server was named: checking here needs this server's keys, which a laptop lacks."""
    from authbridge.errors import ConfigError
    from authbridge.keys import KeyDirectory

    if not KeyDirectory(keys_dir).exists():
        raise ConfigError(
            f"no authbridge server to ask (no --endpoint, AUTHBRIDGE_ENDPOINT or profile"
            f" endpoint) and no signing keys in {keys_dir} to check the token here",
            hint="pass --profile NAME or --endpoint URL (or run on the server with --keys-dir DIR)",
        )


def _local_answer(app: App, token: str, cluster_id: str | None) -> VerifyAnswer:
    from authbridge.cli.keys import load_keys
    from authbridge.errors import InputError
    from authbridge.mapping.model import Mapping
    from authbridge.mapping.parse import load_mapping
    from authbridge.review import describe_clusters, review_token, verify_answer
    from authbridge.sts import IssuerPolicy

    settings = app.settings
    if cluster_id is not None and cluster_id not in settings.cluster_ids:
        raise InputError(
            "--cluster-id",
            f"{cluster_id!r} is not a cluster of this configuration"
            f" ({describe_clusters(settings.cluster_ids)})",
        )
    keys = load_keys(app)  # keys/ or the store, as keySource says
    # As `serve`: without a mapping file only access entries let anybody in (the
    # mapping ConfigMap is optional when entries carry the access).
    if settings.mapping_file.exists():
        mapping = load_mapping(settings.mapping_file)
    else:
        mapping = Mapping(source=f"{settings.mapping_file} (absent)", digest="", cluster_id=None)
    review = review_token(
        token,
        store=app.store,
        keys=keys,
        policy=IssuerPolicy.from_settings(settings),
        mapping=mapping,
        clusters=(cluster_id,) if cluster_id else settings.cluster_ids,
        now=time.time(),
    )
    return verify_answer(review)


# --------------------------------------------------------------------------- output


def _mark(ok: bool) -> str:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if encoding in ("utf8", "utf_8"):
        return "✓" if ok else "✗"
    return "OK" if ok else "REFUSED"


def render_text(doc: dict[str, Any]) -> str:
    """A readable summary of a /verify answer."""
    from authbridge.cli.output import clean, fields

    lines: list[str] = []
    shown: dict[str, Any] = {}
    if doc.get("authenticated"):
        kube = doc.get("kubernetes") or {}
        lines.append(f"{_mark(True)} authenticated as {clean(kube.get('username'))}")
        shown["Username"] = kube.get("username")
        shown["UID"] = kube.get("uid")
        shown["Groups"] = list(kube.get("groups") or [])
        rule = doc.get("matchedRule")
        if isinstance(rule, dict):
            where = f"{rule.get('section')}[{rule.get('index')}]"
            shown["Rule"] = f"{where} {rule['arn']}" if rule.get("arn") else where
        others = doc.get("contributingRules") or []
        if len(others) > 1:
            shown["AlsoMatched"] = [
                f"{r.get('section')}[{r.get('index')}]" + (f" {r['arn']}" if r.get("arn") else "")
                for r in others[1:]
                if isinstance(r, dict)
            ]
    else:
        lines.append(f"{_mark(False)} refused: {clean(doc.get('reason'))}")
        if doc.get("hint"):
            shown["Hint"] = doc["hint"]
    ident = doc.get("identity")
    if isinstance(ident, dict):
        shown["Arn"] = ident.get("arn")
        shown["CanonicalArn"] = ident.get("canonicalArn")
        shown["Account"] = ident.get("accountId")
        shown["PrincipalId"] = ident.get("principalId")
        shown["Session"] = ident.get("sessionName")
        shown["AccessKeyId"] = ident.get("accessKeyId")
        # Where the session started (authbridge.sts, "Source identity").
        shown["SourceIdentity"] = ident.get("sourceIdentity")
        for name in ("sourceAccessKeyId", "sourceJti"):
            if ident.get(name):
                shown[name[0].upper() + name[1:]] = ident[name]
    if doc.get("clusters"):
        shown["Clusters"] = list(doc["clusters"])
    tok = doc.get("token")
    if isinstance(tok, dict):
        verified = "" if tok.get("verified") else " (unverified)"
        shown["Issuer"] = f"{clean(tok.get('iss'))}{verified}"
        shown["Audience"] = list(tok.get("aud") or [])
        shown["Expires"] = tok.get("expiresAt") or tok.get("exp")
        shown["KeyId"] = tok.get("kid")
    if shown:
        lines.append(fields(shown))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command


@click.command("verify")
@click.argument("token", required=False, metavar="[TOKEN]")
@click.option(
    "--cluster-id",
    metavar="ID",
    help="Check the token for this cluster only (default: any cluster the server serves).",
)
@click.option(
    "--endpoint",
    metavar="URL",
    help="Ask this authbridge server (also AUTHBRIDGE_ENDPOINT, or the profile's endpoint).",
)
@click.option(
    "--ca-file",
    metavar="FILE",
    help="CA bundle to verify the server with (also AUTHBRIDGE_CA_FILE, or the profile's).",
)
@click.option("--profile", metavar="NAME", help="Credentials profile to take the endpoint from.")
@click.option(
    "--local",
    is_flag=True,
    help="Decide here, from the config, keys/, the store and the mapping file (no server).",
)
@output_option
@pass_app
def verify(
    app: App,
    token: str | None,
    cluster_id: str | None,
    endpoint: str | None,
    ca_file: str | None,
    profile: str | None,
    local: bool,
) -> None:
    """Show what Kubernetes would see for TOKEN, or exactly why it is refused.

    TOKEN comes from the argument, else from stdin (a bare token or the
    ExecCredential JSON of `authbridge token`). The server's /verify answers
    when an endpoint is known (--endpoint, AUTHBRIDGE_ENDPOINT, or the
    profile's: --profile, else the default profile); --local decides here
    instead, from the configuration, keys, store and mapping file (also the
    fallback on a server with keys and no endpoint). stderr says which mode
    decided. Exit 0 when the token is accepted, 1 when it is refused.

    \b
    Example:
      authbridge token --cluster-id prod --token-only | authbridge verify
      authbridge verify --endpoint https://authbridge:8443 --ca-file ca.crt "$TOKEN"
      authbridge --keys-dir keys verify --local -o json "$TOKEN"
    """
    if local and (endpoint or ca_file or profile):
        given = [
            flag
            for flag, value in (
                ("--endpoint", endpoint),
                ("--ca-file", ca_file),
                ("--profile", profile),
            )
            if value
        ]
        raise click.UsageError(f"{', '.join(given)} cannot be used with --local")
    if cluster_id is not None:
        from authbridge.client.config import check_cluster_id

        check_cluster_id(cluster_id)
    value = _read_token(token)

    from authbridge.cli.output import one_line

    target = None if local else _remote_target(endpoint, ca_file, profile)
    if target is not None:
        doc = _post_verify(target[0], target[1], value, cluster_id)
        where = f"checked remotely at {target[0]}{VERIFY_PATH}"
    else:
        keys_dir = app.settings.keys_dir
        if not local:
            _require_local_keys(keys_dir)
        doc = dict(_local_answer(app, value, cluster_id))
        where = f"checked locally with the keys in {keys_dir}"

    app.emit(doc, lambda: render_text(doc))
    if not doc.get("authenticated"):
        reason = one_line(str(doc.get("reason")))
        click.echo(f"authbridge: token refused: {reason} ({where})", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"authbridge: {one_line(where)}", err=True)
