"""``authbridge token``: the kubectl exec credential plugin (``aws eks get-token``'s twin).

kubectl runs it before every request. A plain cache hit never gets here: the
console script (:mod:`authbridge.cli.entry`) answers it with
:mod:`authbridge.client.fastpath` before click is imported (standard library
only; ~25 ms, bench/RESULTS.md). Every other case runs this command, whose
cached path imports only the standard library, click and
:mod:`authbridge.client`'s cheap modules (config, credentials, cache,
exec_credential): no cryptography, JWT, YAML, store or settings, and not even
``ssl`` or ``urllib.request``, which only the minting path
(:mod:`authbridge.client.issuer`) loads. ``tests/test_cli_token.py`` and
``tests/test_client_fastpath.py`` check both with ``-X importtime``.

stdout carries only the ``ExecCredential`` JSON (or, with ``--token-only``, the
token); warnings and errors go to stderr, and a failure exits non-zero.

``--role`` first gets an ``sts`` token (client credentials for the issuer URL +
``/sts``, :mod:`authbridge.client.issuer`), kept in the same cache (0600) for
every role and cluster of the profile, then exchanges it for the role: a
cluster token is never a subject token. The ``sts`` token never leaves this
client except to the token endpoint. If the exchange refuses a cached ``sts``
token (``invalid_grant``: revoked, say), a fresh one is tried once. The final
role token is cached as before, so the fast path is unchanged.

A profile without an access key (and none in the environment) uses its
sign-in session instead (``authbridge login``; :func:`_signed_in`): the
session's ``sts`` token, refreshed under a lock when it has expired, is
exchanged for the cluster, and the result cached beside the session where the
fast path finds it too. No session: ``run authbridge login --profile P``, or,
when kubectl runs interactively in a terminal, the device flow right there.

``--local`` is break-glass: sign with the key in ``keys/`` instead of asking the
issuer (see :mod:`authbridge.client.break_glass`); never cached, always logged.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING

import click

from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from authbridge.client.cache import TokenCache
    from authbridge.client.config import ClientConfig, SignInTarget
    from authbridge.client.issuer import IssuedToken, Issuer
    from authbridge.client.session import Session, SessionFiles

_MIN_DURATION, _MAX_DURATION = 900, 43200


def _warn(message: str) -> None:
    from authbridge.cli.output import one_line

    click.echo(f"authbridge: warning: {one_line(message)}", err=True)


def _keep(cache: TokenCache, key: str, issued: IssuedToken, what: str = "token") -> None:
    """Cache ``issued`` under ``key`` when it is still usable; a cache that fails only warns."""
    from authbridge.client.cache import CachedToken, CacheError

    entry = CachedToken(issued.token, issued.expires_at)
    if entry.usable(time.time()):
        try:
            cache.put(key, entry)
        except CacheError as e:
            _warn(f"{what} not cached: {e}")


def _emit_cached(cache: TokenCache, key: str, token_only: bool) -> bool:
    """Print the token cached under ``key`` if it is still usable; whether there was one."""
    now = time.time()
    hit = cache.get(key, now)
    if hit is None:
        return False
    _emit(hit.token, hit.expires_at, now, token_only)
    return True


def _emit_minted(
    cache: TokenCache, key: str, issued: IssuedToken, *, token_only: bool, no_cache: bool
) -> None:
    """Print the token just minted, cached under ``key`` first (unless ``no_cache``)."""
    if not no_cache:
        _keep(cache, key, issued)
    _emit(issued.token, issued.expires_at, time.time(), token_only)


def _emit(token: str, expires_at: int, now: float, token_only: bool) -> None:
    if token_only:
        click.echo(token)
        return
    from authbridge.client.exec_credential import EXEC_INFO_ENV, build, parse_exec_info

    info = parse_exec_info(os.environ.get(EXEC_INFO_ENV))
    if info.warning:
        _warn(info.warning)
    click.echo(json.dumps(build(info, token, expires_at, now), separators=(",", ":")))


@click.command("token")
@click.option(
    "--cluster-id",
    metavar="ID",
    help="The cluster (token audience). Also AUTHBRIDGE_CLUSTER_ID, or cluster_id in the profile.",
)
@click.option("--role", metavar="ARN", help="Assume this role (AssumeRole) instead of your user.")
@click.option(
    "--session-name",
    metavar="NAME",
    help="Role session name (with --role; default: the access key id; with --local: break-glass).",
)
@click.option(
    "--profile",
    metavar="NAME",
    help="Credentials profile (also AUTHBRIDGE_PROFILE; default: default).",
)
@click.option(
    "--endpoint",
    metavar="URL",
    help="The authbridge server, https://… (also AUTHBRIDGE_ENDPOINT, or the profile's).",
)
@click.option(
    "--duration",
    type=click.IntRange(_MIN_DURATION, _MAX_DURATION),
    metavar="SECONDS",
    help="Token lifetime, 900-43200 (default: the server's, 900). The server may cap it.",
)
@click.option("--token-only", is_flag=True, help="Print only the token, not an ExecCredential.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the token cache.")
@click.option(
    "--ca-file",
    metavar="FILE",
    help="CA bundle to verify the server with (also AUTHBRIDGE_CA_FILE, or the profile's"
    " ca_file; default: the system trust store).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Break-glass: sign locally with the key in --keys-dir (needs read access to it;"
    " logged to break-glass.log there).",
)
@click.option("--principal", metavar="ARN", help="With --local: the user or role ARN to sign for.")
@click.option(
    "--web-identity-token-file",
    metavar="FILE",
    help="AssumeRoleWithWebIdentity: exchange the OIDC token in FILE (a projected"
    " service-account token, a CI job's token) for --role; read afresh on every mint. Also"
    " AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE (then --role may come from AUTHBRIDGE_ROLE_ARN).",
)
@output_option
@pass_app
def token(
    app: App,
    cluster_id: str | None,
    role: str | None,
    session_name: str | None,
    profile: str | None,
    endpoint: str | None,
    duration: int | None,
    token_only: bool,
    no_cache: bool,
    ca_file: str | None,
    local: bool,
    principal: str | None,
    web_identity_token_file: str | None,
) -> None:
    """Print a token for kubectl, as an ExecCredential (the exec credential plugin).

    Credentials come from ~/.authbridge/credentials (see `authbridge configure`)
    or AUTHBRIDGE_ACCESS_KEY_ID, AUTHBRIDGE_SECRET_ACCESS_KEY and
    AUTHBRIDGE_ENDPOINT; flags win over the environment, which wins over the
    profile. The secret is never a flag. A profile without an access key uses
    its sign-in session (`authbridge login`), refreshed silently; when that is
    over, kubectl in a terminal gets a device-code prompt, else the command
    fails saying to run `authbridge login --profile P`. Tokens are cached in
    ~/.kube/cache/authbridge/ (0600) until 60 s before they expire. The
    ExecCredential's apiVersion follows KUBERNETES_EXEC_INFO (v1 by default).
    The output is that JSON whatever -o says; --token-only prints the bare token.

    \b
    Example:
      authbridge token --cluster-id prod
      authbridge token --cluster-id prod --role arn:aws:iam::111122223333:role/Admin
      authbridge --keys-dir keys token --local --cluster-id prod \\
          --principal arn:aws:iam::111122223333:user/alice
      authbridge token --cluster-id prod --endpoint https://authbridge.example.com \\
          --web-identity-token-file /var/run/secrets/authbridge/serviceaccount/token \\
          --role arn:aws:iam::111122223333:role/Deployer
    """
    from authbridge.client.web_identity import TOKEN_FILE_ENV

    token_file = web_identity_token_file or os.environ.get(TOKEN_FILE_ENV) or None
    if token_file is not None and not local:
        _web_identity(
            token_file,
            cluster_id=cluster_id,
            role=role,
            session_name=session_name,
            profile=profile,
            endpoint=endpoint,
            duration=duration,
            token_only=token_only,
            no_cache=no_cache,
            ca_file=ca_file,
            principal=principal,
        )
        return
    if web_identity_token_file is not None:
        raise click.UsageError("--web-identity-token-file cannot be used with --local")
    if local:
        _local(
            app,
            principal,
            cluster_id,
            session_name,
            duration,
            token_only,
            role=role,
            profile=profile,
            endpoint=endpoint,
            ca_file=ca_file,
        )
        return
    if principal is not None:
        raise click.UsageError("--principal applies only with --local")
    if session_name is not None and role is None:
        raise click.UsageError("--session-name applies only with --role (or --local)")

    from authbridge.client.config import (
        SignInTarget,
        check_role_arn,
        check_session_name,
        resolve_target,
    )

    target = resolve_target(
        os.environ, profile=profile, endpoint=endpoint, ca_file=ca_file, cluster_id=cluster_id
    )
    cluster = target.cluster_id
    if cluster is None:
        raise click.UsageError(
            "--cluster-id is required (or AUTHBRIDGE_CLUSTER_ID, or cluster_id in the profile)"
        )
    if isinstance(target, SignInTarget):
        _signed_in(
            target,
            cluster,
            check_role_arn(role) if role is not None else None,
            check_session_name(session_name) if session_name else None,
            duration,
            token_only=token_only,
            no_cache=no_cache,
        )
        return
    cfg = target
    assume: tuple[str, str] | None = None
    if role is not None:
        # The default session name is the access key id: the user's name is not known here.
        session_name = check_session_name(session_name) if session_name else cfg.access_key_id
        assume = (check_role_arn(role), session_name)

    from authbridge.client.cache import TokenCache, cache_key

    cache = TokenCache.default(os.environ)
    key = cache_key(
        endpoint=cfg.endpoint,
        profile=cfg.profile,
        access_key_id=cfg.access_key_id,
        cluster_id=cluster,
        role=role,
        session_name=session_name,
        duration=duration,
    )
    if not no_cache and _emit_cached(cache, key, token_only):
        return
    issued = _mint(cfg, cluster, assume, duration, None if no_cache else cache)
    _emit_minted(cache, key, issued, token_only=token_only, no_cache=no_cache)


def _web_identity(
    token_file: str,
    *,
    cluster_id: str | None,
    role: str | None,
    session_name: str | None,
    profile: str | None,
    endpoint: str | None,
    duration: int | None,
    token_only: bool,
    no_cache: bool,
    ca_file: str | None,
    principal: str | None,
) -> None:
    """AssumeRoleWithWebIdentity with the token in ``token_file``; cached like the rest.

    No profile and no access key: the endpoint, CA file and cluster come from the
    flags or the environment (what the admission webhook puts in a pod). The file is
    read only when a token is minted (the kubelet rotates it), never cached itself.
    """
    from authbridge.client.cache import TokenCache
    from authbridge.client.config import (
        ENV,
        check_ca_file,
        check_cluster_id,
        check_endpoint,
        check_role_arn,
        check_session_name,
    )
    from authbridge.client.fastpath import web_identity_cache_key
    from authbridge.client.web_identity import DEFAULT_SESSION_NAME, ROLE_ENV, read_token_file

    if profile is not None or principal is not None:
        raise click.UsageError(
            "--profile and --principal do not apply with a web identity token file"
        )
    role = role or os.environ.get(ROLE_ENV) or None
    if role is None:
        raise click.UsageError(f"--role (or {ROLE_ENV}) is required with a web identity token")
    role = check_role_arn(role, "--role" if os.environ.get(ROLE_ENV) != role else ROLE_ENV)
    session_name = check_session_name(session_name) if session_name else DEFAULT_SESSION_NAME
    url = endpoint or os.environ.get(ENV["endpoint"]) or None
    if url is None:
        raise click.UsageError(f"--endpoint (or {ENV['endpoint']}) is required")
    url = check_endpoint(url, "--endpoint" if endpoint else ENV["endpoint"])
    ca = ca_file or os.environ.get(ENV["ca_file"]) or None
    if ca is not None:
        ca = check_ca_file(ca, "--ca-file" if ca_file else ENV["ca_file"])
    cluster = cluster_id or os.environ.get(ENV["cluster_id"]) or None
    if cluster is None:
        raise click.UsageError(f"--cluster-id is required (or {ENV['cluster_id']})")
    cluster = check_cluster_id(cluster, "--cluster-id" if cluster_id else ENV["cluster_id"])

    cache = TokenCache.default(os.environ)
    key = web_identity_cache_key(
        endpoint=url,
        token_file=token_file,
        cluster_id=cluster,
        role=role,
        session_name=session_name,
        duration=duration,
    )
    if not no_cache and _emit_cached(cache, key, token_only):
        return
    from authbridge.client.issuer import Issuer

    issued = Issuer(url, ca_file=ca).assume_role_with_web_identity(
        read_token_file(token_file),
        audience=cluster,
        role_arn=role,
        session_name=session_name,
        duration=duration,
    )
    _emit_minted(cache, key, issued, token_only=token_only, no_cache=no_cache)


def _mint(
    cfg: ClientConfig,
    cluster_id: str,
    assume: tuple[str, str] | None,
    duration: int | None,
    cache: TokenCache | None,
) -> IssuedToken:
    """Ask the issuer: a user token, or an ``sts`` token exchanged for a role token."""
    from authbridge.client.errors import IssuerRefused
    from authbridge.client.issuer import Issuer

    issuer = Issuer(cfg.endpoint, ca_file=cfg.ca_file)
    if assume is None:
        return issuer.session_token(
            cfg.access_key_id, cfg.secret_access_key, audience=cluster_id, duration=duration
        )
    role, session_name = assume

    def exchange(subject: str) -> IssuedToken:
        return issuer.assume_role(
            subject, audience=cluster_id, role_arn=role, session_name=session_name,
            duration=duration,
        )  # fmt: skip

    subject, cached = _sts_token(cfg, issuer, cache, reuse=True)
    try:
        return exchange(subject.token)
    except IssuerRefused as e:
        if not cached or e.error != "invalid_grant":
            raise
    # The cached sts token may have been revoked since: once more with a new one.
    subject, _ = _sts_token(cfg, issuer, cache, reuse=False)
    return exchange(subject.token)


def _sts_token(
    cfg: ClientConfig, issuer: Issuer, cache: TokenCache | None, *, reuse: bool
) -> tuple[IssuedToken, bool]:
    """The profile's ``sts`` token, and whether it came from the cache (``reuse``)."""
    from authbridge.client.cache import sts_cache_key
    from authbridge.client.issuer import IssuedToken

    key = sts_cache_key(endpoint=cfg.endpoint, profile=cfg.profile, access_key_id=cfg.access_key_id)
    if cache is not None and reuse:
        hit = cache.get(key, time.time())
        if hit is not None:
            return IssuedToken(hit.token, hit.expires_at), True
    # Its own default lifetime: --duration is the role session's.
    issued = issuer.sts_token(cfg.access_key_id, cfg.secret_access_key)
    if cache is not None:
        _keep(cache, key, issued, "sts token")
    return issued, False


def _signed_in(
    target: SignInTarget,
    cluster_id: str,
    role: str | None,
    session_name: str | None,
    duration: int | None,
    *,
    token_only: bool,
    no_cache: bool,
) -> None:
    """A profile without an access key: a cluster token from its sign-in session.

    The session's ``sts`` token (refreshed when it has expired) is exchanged
    (RFC 8693) for the cluster: the user's own token, or with ``--role`` (else
    the role given to ``authbridge login``) an AssumeRole. Cached in the
    session's directory under a key naming the sign-in, so the fast path finds it.
    With no session (never signed in, logged out, or ended by the server) the
    device flow runs on the terminal when kubectl says it is interactive
    (``interactiveMode: IfAvailable`` and a terminal), else :class:`SessionEnded`.
    """
    from authbridge.client.errors import SessionEnded
    from authbridge.client.session import SessionFiles

    files = SessionFiles.of(os.environ, target.endpoint, target.profile)
    session = files.load()
    if session is not None and not no_cache:
        key = _session_cache_key(session, target, cluster_id, role, session_name, duration)
        if _emit_cached(files.tokens, key, token_only):
            return
    try:
        issued, session = _mint_signed_in(files, target, cluster_id, role, session_name, duration)
    except SessionEnded as ended:
        if not _interactive():
            raise
        from authbridge.cli.login import say, sign_in

        say(f"authbridge: {ended.message}; signing in again (profile {target.profile}).")
        sign_in(files, target, role=session.role if session else None, device_code=True)
        issued, session = _mint_signed_in(files, target, cluster_id, role, session_name, duration)
    # The key names the session the token came from: a new one after signing in again.
    key = _session_cache_key(session, target, cluster_id, role, session_name, duration)
    _emit_minted(files.tokens, key, issued, token_only=token_only, no_cache=no_cache)


def _session_cache_key(
    session: Session,
    target: SignInTarget,
    cluster_id: str,
    role: str | None,
    session_name: str | None,
    duration: int | None,
) -> str:
    """The cache key of a session's cluster token (the fast path derives the same one)."""
    from authbridge.client.cache import cache_key

    role = role or session.role
    return cache_key(
        endpoint=target.endpoint,
        profile=target.profile,
        access_key_id=f"session:{session.key}",
        cluster_id=cluster_id,
        role=role,
        session_name=(session_name or session.session_name) if role else None,
        duration=duration,
    )


def _interactive() -> bool:
    """kubectl says the plugin may talk to the user, and there is a terminal to talk on."""
    import sys

    from authbridge.client.exec_credential import EXEC_INFO_ENV, parse_exec_info

    info = parse_exec_info(os.environ.get(EXEC_INFO_ENV))
    return info.interactive is True and sys.stderr is not None and sys.stderr.isatty()


def _mint_signed_in(
    files: SessionFiles,
    target: SignInTarget,
    cluster_id: str,
    role: str | None,
    session_name: str | None,
    duration: int | None,
) -> tuple[IssuedToken, Session]:
    """Exchange the session's ``sts`` token; a refused one is refreshed and tried once more."""
    from authbridge.client.errors import IssuerRefused
    from authbridge.client.issuer import Issuer
    from authbridge.client.signin import SignInClient, current_session

    issuer = Issuer(target.endpoint, ca_file=target.ca_file)
    client = SignInClient(issuer)

    def exchange(s: Session) -> IssuedToken:
        assume = role or s.role
        if assume is None:
            return issuer.own_token(s.access_token, audience=cluster_id, duration=duration)
        name = session_name or s.session_name
        if name is None:
            raise click.UsageError("--session-name is required: the user's name is not a valid"
                                   " role session name")  # fmt: skip
        return issuer.assume_role(
            s.access_token, audience=cluster_id, role_arn=assume, session_name=name,
            duration=duration,
        )  # fmt: skip

    session = current_session(files, client, target.profile)
    try:
        return exchange(session), session
    except IssuerRefused as e:
        if e.error != "invalid_grant":
            raise
    # Revoked since it was issued, perhaps: a fresh one (the refresh says if the session ended).
    session = current_session(files, client, target.profile, refused=session.access_token)
    return exchange(session), session


def _local(
    app: App,
    principal: str | None,
    cluster_id: str | None,
    session_name: str | None,
    duration: int | None,
    token_only: bool,
    **remote_only: str | None,
) -> None:
    """Break-glass: sign with the local key; logged before the token is printed."""
    given = [f"--{name.replace('_', '-')}" for name, value in remote_only.items() if value]
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be used with --local")
    if principal is None:
        raise click.UsageError("--local needs --principal ARN (the user or role to sign for)")
    cluster_id = cluster_id or os.environ.get("AUTHBRIDGE_CLUSTER_ID")
    if not cluster_id:
        raise click.UsageError("--cluster-id is required (or AUTHBRIDGE_CLUSTER_ID)")

    from authbridge.cli.keys import load_keys
    from authbridge.client.break_glass import BREAK_GLASS_LOG, append_log, log_record, mint_locally

    settings = app.settings
    keys = load_keys(app)  # keys/ or the store, as keySource says
    minted, who = mint_locally(
        principal,
        cluster_id,
        settings=settings,
        store=app.store,
        keys=keys,
        session_name=session_name,
        duration=duration,
    )
    append_log(settings.keys_dir / BREAK_GLASS_LOG, log_record(minted, who, cluster_id))
    _warn(f"break-glass token for {who.arn} signed locally with key {minted.kid}; this is logged")
    _emit(minted.token, minted.expires_at, time.time(), token_only)
