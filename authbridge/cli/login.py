"""``authbridge login`` and ``logout``: a sign-in session instead of a long-lived access key.

``login`` signs the profile in through the issuer (``authbridge.client.signin``):

* in the browser when one can be opened (not over SSH without a display):
  authorization code + PKCE S256 + ``state``, the code received on a one-shot
  loopback server (``authbridge.client.loopback``, RFC 8252 §7.3); the URL is
  always printed on stderr too, in case the browser does not open;
* with ``--device-code``, or when no browser can be opened: the device
  authorization grant (RFC 8628): the verification URL and user code on
  stderr, approved on any device, polled for.

Either ends in a session (``authbridge.client.session``), stored 0600 beside
the token cache for that profile and endpoint; ``authbridge token`` then uses
it for any profile without an access key. ``--role`` is kept in the session:
``authbridge token`` assumes it unless given another ``--role``. A profile
that holds an access key is refused: ``authbridge token`` would keep using the
key. A profile not yet in the credentials file is written there with the
endpoint (and CA file) used, so later commands need only ``--profile``.

``logout`` revokes the refresh token at the issuer (RFC 7009), which ends the
session server-side, then deletes the session and that profile's cached
tokens. Idempotent: with no session it says so and succeeds.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import click

from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from collections.abc import Mapping

    from authbridge.client.config import SignInTarget
    from authbridge.client.session import Session, SessionFiles
    from authbridge.client.signin import SignInClient, SignInTokens

LOGIN_TIMEOUT = 300  # seconds the browser flow waits for the callback
_SESSION_NAME_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+=,.@-"
)


def say(message: str) -> None:
    """One line for the person at the terminal (stderr: stdout may be kubectl's)."""
    click.echo(message, err=True)


def browser_available(env: Mapping[str, str]) -> bool:
    """Whether :mod:`webbrowser` can open a graphical browser here.

    ``$BROWSER`` names one. On Linux and the BSDs without ``DISPLAY`` or
    ``WAYLAND_DISPLAY`` (a server, an SSH session) there is none: the console
    browsers webbrowser would fall back to (lynx, w3m) would take over the
    terminal, and the issuer's pages are not for them.
    """
    import webbrowser

    if env.get("BROWSER"):
        return True
    if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not (
        env.get("DISPLAY") or env.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        webbrowser.get()
    except webbrowser.Error:
        return False
    return True


def _browser_flow(
    client: SignInClient, authorization_endpoint: str, timeout: float
) -> SignInTokens:
    import threading
    import webbrowser

    from authbridge.client.loopback import LoopbackReceiver, new_state
    from authbridge.client.signin import authorize_url, code_challenge, new_code_verifier

    verifier = new_code_verifier()
    state = new_state()
    with LoopbackReceiver(state) as receiver:
        url = authorize_url(
            authorization_endpoint,
            redirect_uri=receiver.redirect_uri,
            state=state,
            challenge=code_challenge(verifier),
        )
        say("Opening the browser to sign in. If it does not open, open this URL:")
        say(f"  {url}")
        # In a thread: a $BROWSER command that waits must not keep the callback waiting.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        code = receiver.wait(timeout)
    return client.redeem_code(code, verifier=verifier, redirect_uri=receiver.redirect_uri)


def default_session_name(arn: str | None, source_identity: str | None) -> str | None:
    """The role session name for a signed-in user: the user's name, else their id."""
    for candidate in (arn.rsplit("/", 1)[-1] if arn else None, source_identity):
        if candidate and 2 <= len(candidate) <= 64 and set(candidate) <= _SESSION_NAME_CHARS:
            return candidate
    return None


def sign_in(
    files: SessionFiles,
    target: SignInTarget,
    *,
    role: str | None,
    device_code: bool,
    timeout: float = LOGIN_TIMEOUT,
) -> Session:
    """Sign ``target`` in (browser, else device code), store the session, and return it.

    Stored under the refresh lock, so a concurrent ``authbridge token`` refreshing
    the previous session cannot write it back over this one. The previous
    session's cluster tokens are deleted and its refresh token revoked (best effort).
    """
    from authbridge.client.errors import IssuerError
    from authbridge.client.issuer import Issuer
    from authbridge.client.session import Session, new_session_key
    from authbridge.client.signin import SignInClient, run_device_flow, token_identity

    client = SignInClient(Issuer(target.endpoint, ca_file=target.ca_file))
    discovered = client.discover()
    if device_code or not browser_available(os.environ):
        tokens = run_device_flow(client, say)
    else:
        tokens = _browser_flow(client, discovered.authorization_endpoint, timeout)
    arn, source_identity = token_identity(tokens.access.token)
    session = Session(
        endpoint=target.endpoint,
        profile=target.profile,
        issuer=discovered.issuer,
        key=new_session_key(),
        user=arn,
        refresh_token=tokens.refresh_token,
        refresh_expires_at=tokens.refresh_expires_at,
        access_token=tokens.access.token,
        access_expires_at=tokens.access.expires_at,
        role=role,
        session_name=default_session_name(arn, source_identity),
        signed_in_at=int(time.time()),
    )
    with files.locked():
        previous = files.load()
        files.save(session)
        files.clear_tokens()
    if previous is not None:
        try:
            client.revoke(previous.refresh_token)
        except IssuerError:
            pass  # it ends by itself; this one is what matters now
    return session


def _record_profile(target: SignInTarget) -> None:
    """Write a profile that is not in the credentials file yet: endpoint and CA file."""
    from authbridge.client.credentials import (
        CREDENTIALS_ENV,
        read_credentials_text,
        update_profile,
        write_credentials,
    )

    if target.profile_exists:
        return
    values = {"endpoint": target.endpoint}
    if target.ca_file is not None:
        values["ca_file"] = os.path.abspath(target.ca_file)
    path = target.credentials_file
    got = read_credentials_text(path)
    text = got[0] if got is not None else ""
    write_credentials(
        path,
        update_profile(text, target.profile, values, path),
        private_parent=not os.environ.get(CREDENTIALS_ENV),
    )


def _until(ts: int | None) -> str:
    if ts is None:
        return "until the server ends it"
    return "until " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _target(profile: str | None, endpoint: str | None, ca_file: str | None) -> SignInTarget:
    from authbridge.client.config import SignInTarget, resolve_target
    from authbridge.errors import InputError

    target = resolve_target(
        os.environ, profile=profile, endpoint=endpoint, ca_file=ca_file, new_profile=True
    )
    if not isinstance(target, SignInTarget):
        raise InputError(
            "--profile",
            f"profile {target.profile} uses the access key {target.access_key_id}, which"
            " `authbridge token` keeps using; a sign-in is for profiles without a key",
            hint="pick another --profile (login creates it), or remove the key from this one"
            " (and unset AUTHBRIDGE_ACCESS_KEY_ID / AUTHBRIDGE_SECRET_ACCESS_KEY)",
        )
    return target


_PROFILE_HELP = "Profile to sign in (also AUTHBRIDGE_PROFILE; default: default)."
_ENDPOINT_HELP = "The authbridge server, https://… (also AUTHBRIDGE_ENDPOINT, or the profile's)."
_CA_HELP = (
    "CA bundle to verify the server with (also AUTHBRIDGE_CA_FILE, or the profile's ca_file;"
    " default: the system trust store)."
)


@click.command("login")
@click.option("--profile", metavar="NAME", help=_PROFILE_HELP)
@click.option("--endpoint", metavar="URL", help=_ENDPOINT_HELP)
@click.option("--ca-file", metavar="FILE", help=_CA_HELP)
@click.option(
    "--device-code",
    is_flag=True,
    help="Sign in with a code on another device (RFC 8628) instead of this machine's browser.",
)
@click.option(
    "--role",
    metavar="ARN",
    help="Role `authbridge token` assumes with this session (unless given another --role).",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 3600),
    default=LOGIN_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long the browser sign-in waits for the browser.",
)
@output_option
@pass_app
def login(
    app: App,
    profile: str | None,
    endpoint: str | None,
    ca_file: str | None,
    device_code: bool,
    role: str | None,
    timeout: int,
) -> None:
    """Sign in (browser or device code) and keep a short session for `authbridge token`.

    Opens the browser when it can (the URL is printed too); with --device-code,
    or when there is no browser (an SSH session), prints a URL and a code to
    enter on any device. The session (a refresh token and a short-lived token)
    is stored 0600 in ~/.kube/cache/authbridge/, per profile and endpoint;
    `authbridge token` uses it for a profile without an access key, and
    refreshes it silently. It lasts until the server's session limit
    (sessionMaxSeconds) or `authbridge logout`. A new profile is written to the
    credentials file with the endpoint and CA file used.

    \b
    Example:
      authbridge login --profile dev --endpoint https://authbridge.example.com:8443
      authbridge login --profile dev --device-code
      authbridge login --profile dev --role arn:aws:iam::111122223333:role/Admin
    """
    from authbridge.client.config import check_role_arn
    from authbridge.client.session import SessionFiles

    target = _target(profile, endpoint, ca_file)
    role = check_role_arn(role) if role is not None else None
    files = SessionFiles.of(os.environ, target.endpoint, target.profile)
    session = sign_in(files, target, role=role, device_code=device_code, timeout=timeout)
    _record_profile(target)
    who = session.user or "your user"
    as_role = f", assuming {session.role}" if session.role else ""
    say(
        f"Signed in as {who}{as_role} (profile {target.profile}),"
        f" {_until(session.refresh_expires_at)}."
        f" `authbridge logout --profile {target.profile}` ends it."
    )


@click.command("logout")
@click.option("--profile", metavar="NAME", help="Profile to sign out (default: default).")
@click.option("--endpoint", metavar="URL", help=_ENDPOINT_HELP)
@click.option("--ca-file", metavar="FILE", help=_CA_HELP)
@output_option
@pass_app
def logout(app: App, profile: str | None, endpoint: str | None, ca_file: str | None) -> None:
    """End the profile's sign-in session: revoke it at the server, delete it here.

    Deletes the session and the profile's cached tokens from
    ~/.kube/cache/authbridge/ too. Signed out already: says so, exit 0.

    \b
    Example:
      authbridge logout --profile dev
    """
    from authbridge.client.errors import IssuerError, IssuerRefused, SignInError
    from authbridge.client.issuer import Issuer
    from authbridge.client.session import SessionFiles
    from authbridge.client.signin import SignInClient

    target = _target(profile, endpoint, ca_file)
    files = SessionFiles.of(os.environ, target.endpoint, target.profile)
    if files.load() is None:
        files.delete()  # cached tokens of an unreadable session, if any
        say(f"Profile {target.profile} is not signed in; nothing to do.")
        return
    with files.locked():
        session = files.load()
        failed: IssuerError | None = None
        if session is not None:
            try:
                SignInClient(Issuer(target.endpoint, ca_file=target.ca_file)).revoke(
                    session.refresh_token
                )
            except IssuerRefused as e:
                if e.error not in ("invalid_grant", "invalid_token"):
                    failed = e  # else: the server had ended it already
            except IssuerError as e:
                failed = e
        files.delete()
    if failed is not None:
        raise SignInError(
            f"signed out on this machine, but the server did not revoke the session"
            f" ({failed.message})",
            hint=f"it ends by itself {_until(session.refresh_expires_at if session else None)};"
            " an administrator can end it now with `authbridge iam revoke-sessions`",
        )
    say(f"Signed out (profile {target.profile}).")
