"""The first administrator of a new store: made once, its one-time credential handed over once.

``authbridge init`` on an empty store, and the first ``authbridge serve`` of a
new deployment (``bootstrapCredentialsFile`` / ``bootstrapSecret``), call
:func:`bootstrap`: the account, a user (``admin``) with ``AdministratorAccess``
and one access key, in one store transaction
(:meth:`~authbridge.store.base.Store.bootstrap_admin`). The account insert is
the lock: of several callers at once (init and a replica, two replicas) exactly
one makes them; the others see the account and make nothing.

Where the secret goes decides when it is handed over:

* a file or a Kubernetes Secret is written *before* the commit, under the
  store's lock, so a failed write leaves no administrator behind and the
  next run makes one; a commit that fails after the write removes the file
  (a Secret left behind is overwritten by the next bootstrap: while the store
  has no account, whatever it holds names a key that does not exist);
* stdout (``init`` without ``--bootstrap-credentials``) is printed after the
  commit, since a printed secret cannot be taken back.

Either way it exists only in that one place: never in a log line, an audit
record or an error. A store that already has an account gets nothing new, so
running it again never mints a second credential; a lost one is replaced by
hand (``iam create-access-key --user-name admin``, then deleting the old key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from authbridge.errors import InputError
from authbridge.files import PRIVATE, write_atomic
from authbridge.iam.model import BootstrapAdmin
from authbridge.iam.policy import aws_managed_arn
from authbridge.store.base import Store

ADMIN_POLICY = "AdministratorAccess"
DEFAULT_ADMIN_USER = "admin"
ADMIN_PROFILE = "admin"

Deliver = Callable[[BootstrapAdmin], None]


def credential_document(made: BootstrapAdmin, *, endpoint: str) -> dict[str, str]:
    """What the administrator needs to configure a profile: the key, its secret, where."""
    return {
        "AccountId": made.account.account_id,
        "UserName": made.user.name,
        "Arn": made.user.arn,
        "AccessKeyId": made.key.key.access_key_id,
        "SecretAccessKey": made.key.secret_access_key,
        "Endpoint": endpoint,
    }


def summary(made: BootstrapAdmin) -> dict[str, str]:
    """The same without the secret: what may be printed and logged."""
    return {
        "AccountId": made.account.account_id,
        "UserName": made.user.name,
        "Arn": made.user.arn,
        "AccessKeyId": made.key.key.access_key_id,
        "PolicyArn": made.policy_arn,
    }


def configure_command(
    endpoint: str, access_key_id: str, *, ca_file: str | None, profile: str = ADMIN_PROFILE
) -> str:
    """The ``authbridge configure`` line that saves the key (its secret comes from stdin)."""
    import shlex

    words = ["authbridge", "configure", "--profile", profile, "--endpoint", endpoint]
    if ca_file is not None:
        words += ["--ca-file", ca_file]
    words += ["--access-key-id", access_key_id]
    return shlex.join(words)


class CredentialsFile:
    """``--bootstrap-credentials FILE``: the credential as JSON, 0600, never overwritten.

    Written atomically (a temp file linked into place, so a reader never sees
    half of it and an existing file is an error, not replaced). :meth:`undo`
    removes what :meth:`write` wrote, for a store commit that failed after it.
    """

    def __init__(self, path: Path, *, endpoint: str) -> None:
        self.path = path
        self.endpoint = endpoint
        self._written = False

    def write(self, made: BootstrapAdmin) -> None:
        doc = credential_document(made, endpoint=self.endpoint)
        data = (json.dumps(doc, indent=2) + "\n").encode()
        try:
            write_atomic(self.path, data, mode=PRIVATE, exclusive=True)
        except FileExistsError:
            raise self._exists() from None
        except OSError as e:
            raise InputError(
                "bootstrapCredentialsFile",
                f"cannot write {self.path}: {e.strerror}",
                hint="name a file in a directory this process may write (0700 is best)",
            ) from None
        self._written = True

    def undo(self) -> None:
        if self._written:
            self.path.unlink(missing_ok=True)
            self._written = False

    def _exists(self) -> InputError:
        return InputError(
            "bootstrapCredentialsFile",
            f"{self.path} already exists; it is never overwritten",
            hint="move it away (it may hold an earlier credential) or name another file",
        )


def bootstrap(
    store: Store,
    *,
    account_id: str,
    user_name: str = DEFAULT_ADMIN_USER,
    deliver: Deliver | None = None,
    undo: Callable[[], None] | None = None,
) -> BootstrapAdmin | None:
    """The account and its administrator, if the store has no account yet; else ``None``.

    ``deliver`` runs before the commit (see the module docstring); ``undo``
    runs when the store fails after it, so nothing points at a key that was
    never stored.
    """
    arn = aws_managed_arn(store.partition, ADMIN_POLICY)
    delivered = False

    def hand_over(made: BootstrapAdmin) -> None:
        nonlocal delivered
        if deliver is not None:
            deliver(made)
        delivered = True

    try:
        return store.bootstrap_admin(account_id, user_name, arn, deliver=hand_over)
    except BaseException:
        if delivered and undo is not None:
            undo()
        raise
