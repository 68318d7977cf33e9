"""One call path for every ``authbridge iam|access|keys`` verb: the admin API, or the store.

A verb builds its admin action's parameters, AWS-named as the API takes them
(``{"UserName": "alice", "Path": "/"}``), and calls :func:`call`, which
returns the action's document (what ``-o json`` prints). Where it runs:

API mode
    when ``--profile`` or ``--endpoint`` is given (before or after the
    subcommand), or ``AUTHBRIDGE_PROFILE`` / ``AUTHBRIDGE_ENDPOINT`` is set
    (:func:`wants_api`). The action is POSTed to ``<endpoint>/api/<surface>``
    as the profile's caller (:mod:`authbridge.client.admin_api`); the
    server's policies decide. A ``default`` profile in the credentials file
    does not switch it on by itself: a script that administers the store
    directly keeps doing so until it names a profile or an endpoint.
store mode (break-glass)
    otherwise. The action's own parameter parser and handler run here,
    against the store and keys the settings name, with no policy check:
    whoever can open the store can change it anyway. Each mutating call
    appends one ``admin_call`` audit line (:func:`audit_line`) whose caller
    is ``break-glass (store access)``, with the OS user, host, action,
    targets and outcome, to the ``auditLog`` file when one is configured,
    else to ``<keys dir>/break-glass.log`` (the file ``token --local``
    writes). The file is opened before the call: no audit line, no change.
    Nothing is printed for it: ``-o json`` output stays the document alone.

Both modes run the same handler (here, or in the server), so the JSON is the
same by construction, and every verb renders its text from that document.
An error answer of the API is raised as the error class store mode raises
for it (:func:`remote_error`: ``NoSuchEntity``, ``EntityAlreadyExists``, …),
so the stderr line and exit code are the same too. Verbs that have no
admin action (``iam create-account``, ``iam list-accounts``, ``keys init``,
``keys import``) call :func:`require_store`, which refuses API mode.
"""

from __future__ import annotations

import getpass
import os
import socket
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from authbridge import audit
from authbridge.admin import ALL_ACTIONS
from authbridge.admin.actions import Action, Document
from authbridge.admin.authorize import AccessDenied
from authbridge.admin.keys import KeyPlace, configured_kek, key_place
from authbridge.admin.params import parse_args
from authbridge.errors import (
    AuthbridgeError,
    ConfigError,
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidCredentials,
    InvalidTrust,
    KeyStoreError,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from authbridge.cli.context import App
    from authbridge.client.admin_api import AdminClient, ApiRefused
    from authbridge.keys import Kek
    from authbridge.store.base import Store

PROFILE_ENV: Final = "AUTHBRIDGE_PROFILE"
ENDPOINT_ENV: Final = "AUTHBRIDGE_ENDPOINT"
BREAK_GLASS_CALLER: Final = "break-glass (store access)"
BREAK_GLASS_LOG: Final = "break-glass.log"  # authbridge.client.break_glass.BREAK_GLASS_LOG

ACTIONS: Final[dict[str, Action]] = {a.name: a for a in ALL_ACTIONS}

# The API's error codes, as the classes store mode raises (web/api's table, reversed).
_CLASSES: Final[dict[str, type[AuthbridgeError]]] = {
    "ValidationError": InputError,
    "InvalidAction": InputError,
    "MalformedPolicyDocument": MalformedPolicyDocument,
    "NoSuchEntity": NoSuchEntity,
    "EntityAlreadyExists": EntityAlreadyExists,
    "DeleteConflict": DeleteConflict,
    "LimitExceeded": LimitExceeded,
    "KeyStoreError": KeyStoreError,
    "AccessDenied": AccessDenied,
    "ServiceUnavailable": StoreUnavailable,
    "MissingAuthenticationToken": InvalidCredentials,
    "InvalidClientTokenId": InvalidCredentials,
    "ExpiredToken": InvalidCredentials,
}
# Actions whose only MalformedPolicyDocument is a trust list (InvalidTrust in the store).
_TRUST_ACTIONS: Final = frozenset({"CreateRole", "UpdateAssumeRolePolicy"})


def wants_api(profile: str | None, endpoint: str | None, env: Mapping[str, str]) -> bool:
    """API mode: a profile or an endpoint named by flag or environment (module docstring)."""
    return (
        profile is not None
        or endpoint is not None
        or bool(env.get(PROFILE_ENV))
        or bool(env.get(ENDPOINT_ENV))
    )


def require_store(app: App, verb: str) -> None:
    """Refuse API mode for ``verb``, which has no admin API action."""
    if app.api_mode:
        raise ConfigError(
            f"`authbridge {verb}` needs store access: the admin API has no such action",
            hint=f"run it without --profile/--endpoint (and with {PROFILE_ENV} and {ENDPOINT_ENV}"
            " unset) where the store and keys are reachable",
        )


def call(
    app: App, name: str, params: Mapping[str, Any], *, account: str | None = None
) -> Document | None:
    """Run action ``name`` with AWS-named ``params``: over the API or on the store.

    ``account`` (store mode only) is the account to act in instead of the
    CLI's (simulate-principal-policy acts in the account its ARN names); in
    API mode the caller's account is the server's to know.
    """
    action = ACTIONS[name]
    if app.api_mode:
        return _over_api(app, action, dict(params))
    return _on_store(app, action, params, account)


# --------------------------------------------------------------------------- API mode


def client(app: App) -> AdminClient:
    """The admin API client of the chosen profile / endpoint, as the caller it names."""
    from authbridge.client.admin_api import AccessKeyAuthorization, AdminClient
    from authbridge.client.config import ENV, resolve

    env: Mapping[str, str] = app.env
    if app.profile is not None:
        # As the AWS CLI: a --profile flag means that profile's key, even with a key pair in
        # the environment (AUTHBRIDGE_ACCESS_KEY_ID beats only AUTHBRIDGE_PROFILE).
        pair = (ENV["access_key_id"], ENV["secret_access_key"])
        env = {k: v for k, v in env.items() if k not in pair}
    cfg = resolve(env, profile=app.profile, endpoint=app.endpoint)
    # The seam for a sign-in session: an object whose authorization() is "Bearer <admin token>".
    credentials = AccessKeyAuthorization(cfg.access_key_id, cfg.secret_access_key)
    return AdminClient(cfg.endpoint, credentials, ca_file=cfg.ca_file)


def _over_api(app: App, action: Action, params: dict[str, Any]) -> Document:
    from authbridge.client.admin_api import ApiRefused

    try:
        return client(app).call(action.surface, action.name, params)
    except ApiRefused as e:
        raise remote_error(e, action.name) from None


def _rebuild(cls: type[AuthbridgeError], text: str) -> AuthbridgeError:
    """An instance of ``cls`` whose ``str()`` is ``text`` (the server's ``message; hint``)."""
    message, sep, hint = text.partition("; ")
    error = cls.__new__(cls)
    AuthbridgeError.__init__(error, message, hint=hint if sep else None)
    if isinstance(error, InputError):
        field, _, reason = message.partition(": ")
        error.field = field
        if isinstance(error, MalformedPolicyDocument):
            error.reason = reason
    return error


def remote_error(e: ApiRefused, action: str) -> AuthbridgeError:
    """The error store mode raises for the API's answer ``e`` (one line, the same words)."""
    if e.code == "Throttling":
        after = f"retry after {e.retry_after} s" if e.retry_after is not None else "retry later"
        return AuthbridgeError(f"Throttling: {e.message}", hint=after)
    cls = _CLASSES.get(e.code)
    if cls is MalformedPolicyDocument and action in _TRUST_ACTIONS:
        cls = InvalidTrust
    if cls is None:
        shown = f"{e.code}: {e.message}" if e.message != e.code else e.code
        return AuthbridgeError(
            f"the admin API refused ({e.status}): {shown}",
            hint="if it persists, tell the authbridge administrator",
        )
    if cls is AccessDenied:
        return AccessDenied(
            f"AccessDenied: {e.message}",
            hint="ask an administrator for a policy that allows it"
            " (`authbridge iam simulate-principal-policy` shows why)",
        )
    if cls is InvalidCredentials:
        return InvalidCredentials(
            f"{e.code}: {e.message}",
            hint="check the profile's access key (`authbridge configure --profile P`)",
        )
    return _rebuild(cls, e.message)


# --------------------------------------------------------------------------- store mode


@dataclass
class StoreTarget:
    """What a handler acts on in store mode: the CLI's store, account, keys and clock."""

    app: App
    surface: str
    account: str | None = None

    @property
    def store(self) -> Store:
        return self.app.store

    @property
    def account_id(self) -> str:
        if self.account is None:
            if self.surface == "keys":
                # Keys belong to the deployment: the audit ARN names the configured account,
                # if any, without opening the store for it (keySource files needs none).
                self.account = self.app.settings.account_id or ""
            elif self.surface == "access":
                # Access entries belong to clusters; the account is only in the audit ARN.
                try:
                    self.account = self.app.account_id()
                except (NoSuchEntity, ConfigError):
                    self.account = ""
            else:
                self.account = self.app.account_id()
        return self.account

    @property
    def partition(self) -> str:
        return self.app.settings.partition

    def key_place(self) -> KeyPlace:
        return key_place(self.app.settings, lambda: self.app.store)

    def kek(self) -> Kek | None:
        return configured_kek(self.app.settings)

    @property
    def issuer(self) -> str:
        return self.app.settings.issuer

    def now(self) -> float:
        return time.time()


def _on_store(
    app: App, action: Action, params: Mapping[str, Any], account: str | None
) -> Document | None:
    args = parse_args(action.params, params)
    target = StoreTarget(app, action.surface, account)
    if not action.mutating:
        return action.run(target, args)
    with break_glass(app, action.iam_action) as note:
        note.targets = action.resources(target, args)
        return action.run(target, args)


@dataclass
class Note:
    """What a break-glass change acted on, for its audit line (set by the caller)."""

    targets: tuple[str, ...] = ()


@contextmanager
def break_glass(app: App, iam_action: str) -> Iterator[Note]:
    """Audit the store-mode change made in the ``with`` block: one line with its outcome.

    The audit file is opened first: a change that cannot be audited is not
    made. Also used by the verbs with no admin action (``iam create-account``,
    ``keys init``, ``keys import``), under the action names IAM would give them.
    """
    log = BreakGlassLog.open(break_glass_destination(app))
    note = Note()
    started = time.perf_counter()
    try:
        yield note
    except AuthbridgeError as e:
        detail = audit.redact(str(e))
        log.write(audit_line(iam_action, note.targets, "denied", e.code, detail, started))
        raise
    except Exception as e:
        what = type(e).__name__
        log.write(audit_line(iam_action, note.targets, "error", "internal", what, started))
        raise
    else:
        log.write(audit_line(iam_action, note.targets, "allowed", "ok", None, started))
    finally:
        log.close()


def break_glass_destination(app: App) -> Path:
    """The ``auditLog`` file when configured, else ``<keys dir>/break-glass.log``."""
    settings = app.settings
    if settings.audit_log is not None:
        return settings.audit_log
    return settings.keys_dir / BREAK_GLASS_LOG


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def audit_line(
    action: str,
    targets: tuple[str, ...],
    outcome: audit.Outcome,
    reason: str,
    detail: str | None,
    started: float,
    *,
    event: audit.Event = "admin_call",
) -> dict[str, Any]:
    """The ``admin_call`` line of a break-glass call: the API's shape, caller break-glass."""
    line: dict[str, Any] = dict(
        audit.record(
            event,
            request_id=audit.new_request_id(),
            client=None,
            outcome=outcome,
            reason=reason,
            caller=BREAK_GLASS_CALLER,
            action=action,
            targets=targets,
            detail=detail,
            started=started,
        )
    )
    line.update(local_user=_local_user(), host=socket.gethostname(), pid=os.getpid())
    return audit.scrub(line)


class BreakGlassLog:
    """The break-glass audit file, opened (0600, ``O_APPEND``) before a call, written after."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def open(cls, path: Path) -> BreakGlassLog:
        hint = (
            "store-mode changes are made only once they can be audited; make it writable for"
            " this user, or use the admin API (--profile)"
        )
        try:
            if not path.parent.exists():
                path.parent.mkdir(mode=0o700, parents=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
        except OSError as e:
            raise KeyStoreError(
                f"cannot write the break-glass audit log {path}: {e.strerror}", hint=hint
            ) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise KeyStoreError(f"break-glass audit log {path} is not a regular file", hint=hint)
        if stat.S_IMODE(st.st_mode) & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)
        return cls(path, fd)

    def write(self, line: Mapping[str, Any]) -> None:
        """One JSON line in one ``write(2)``; a failure is reported on stderr, once."""
        import json

        data = (json.dumps(line, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        assert self._fd is not None  # noqa: S101 - written before close, by _on_store only
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as e:
            import click

            click.echo(
                f"authbridge: cannot write the break-glass audit log {self.path}:"
                f" {e.strerror}; tell the authbridge administrator",
                err=True,
            )

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
