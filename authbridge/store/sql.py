"""The IAM store over SQL: all the IAM rules, written once for both backends.

A backend (SQLite, PostgreSQL) supplies a :class:`Driver`: transactions, its
placeholder style and row locking. Everything that decides anything lives
here, so the conformance suite exercises the same logic on both.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from authbridge import arn as arns
from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidCredentials,
    InvalidTrust,
    KeyStoreError,
    LimitExceeded,
    MalformedArn,
    NoSuchEntity,
    SchemaTooNew,
)
from authbridge.iam import access, credentials, names, oidc_provider
from authbridge.iam import trust as trust_policies
from authbridge.iam.access import (
    DEFAULT_AUTHENTICATION_MODE,
    AccessEntry,
    AccessImport,
    AccessSnapshot,
    AuthenticationMode,
    EntrySpec,
    PolicyAssociation,
)
from authbridge.iam.model import (
    AccessKey,
    AccessKeyStatus,
    Account,
    BootstrapAdmin,
    Group,
    NewAccessKey,
    Role,
    TrustEntry,
    TrustKind,
    User,
)
from authbridge.iam.policy import aws_managed_arn
from authbridge.store.base import MAX_ACCESS_KEYS_PER_USER, PrincipalRefusal, ReviewFacts
from authbridge.store.migrations import LATEST_VERSION, MIGRATIONS
from authbridge.store.sql_flows import SqlFlows
from authbridge.store.sql_oidc import SqlOidc
from authbridge.store.sql_policies import AWS_REF_PREFIX, SqlPolicies
from authbridge.store.sql_sessions import SqlSessions
from authbridge.store.sql_signin import SqlSignin

if TYPE_CHECKING:
    from authbridge.keys import KeyEdit, KeyRecord

Row = tuple[Any, ...]

# A used key's LastUsedDate is refreshed at most this often, so the token
# endpoint does not turn every request into a database write.
LAST_USED_GRANULARITY = 60

_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)

# Checking a secret for an unknown key id hashes this, so both paths cost the same.
_DUMMY_HASH = "0" * 44


class Cursor(Protocol):
    """One transaction's view of the database (``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @property
    def rowcount(self) -> int: ...


class Driver(Protocol):
    dialect: str
    lock_suffix: str  # appended to a SELECT to lock its rows for the transaction

    def transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """One read-only statement as its own transaction: one snapshot, one round trip."""
        ...

    def lock_for_migration(self, cur: Cursor) -> None: ...

    def lock_accounts(self, cur: Cursor) -> None:
        """Hold off every other account insert (and bootstrap) until the transaction ends."""
        ...

    def lock_signing_keys(self, cur: Cursor, *, wait: bool) -> bool:
        """Hold the signing-key lock until the transaction ends; False if busy and not ``wait``."""
        ...

    def has_table(self, cur: Cursor, name: str) -> bool: ...

    def is_unique_violation(self, exc: BaseException) -> bool: ...

    def close(self) -> None: ...


def _now() -> int:
    return int(time.time())


def _dt(ts: int | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _dt_req(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


_USER_COLS = "user_id, account_id, name, path, enabled, tags, created_at"
_GROUP_COLS = "group_id, account_id, name, path, created_at"
_ROLE_COLS = (
    "role_id, account_id, name, path, max_session_duration, description, created_at, trust_document"
)
_KEY_COLS = (
    "k.access_key_id, k.user_id, u.name, u.account_id, k.status, k.created_at, k.last_used_at"
)
# review_facts: one row per group of the user (one row if none, or no such user),
# each carrying the revocations, the role's existence, the access version, the
# user, the source user
# and the key status (the key must belong to the source user: the principal
# itself for a user token). Parameters in order: jti, source jti, role id,
# principal id, source id, access key id. The sign-in session a token names (its
# ``sid``) is live when a row for it, of the token's source user, has not been ended
# (parameter after the role id: the session id, NULL for a token with none); a
# federated sign-in's session is its subject's, whose source is ``<provider ARN>:<sub>``.
_REVIEW_FACTS_SQL = (
    "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?),"
    " EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?),"
    " EXISTS (SELECT 1 FROM iam_roles WHERE role_id = ?),"
    " EXISTS (SELECT 1 FROM signin_sessions ss WHERE ss.session_id = ?"
    "  AND ss.ended_at IS NULL AND (ss.user_id = p.source_id OR EXISTS (SELECT 1"
    "  FROM signin_federated_subjects fs WHERE fs.subject_id = ss.federated_id"
    "  AND fs.provider_arn || ':' || fs.sub = p.source_id))),"
    " (SELECT version FROM access_version WHERE id = 1),"
    " u.user_id, u.enabled, u.name, k.status, s.user_id, s.enabled, s.name,"
    " g.account_id, g.name, g.path"
    " FROM (SELECT CAST(? AS TEXT) AS principal_id, CAST(? AS TEXT) AS source_id) p"
    " LEFT JOIN iam_users u ON u.user_id = p.principal_id"
    " LEFT JOIN iam_users s ON s.user_id = p.source_id"
    " LEFT JOIN iam_access_keys k ON k.access_key_id = ? AND k.user_id = s.user_id"
    " LEFT JOIN iam_group_members m ON m.user_id = u.user_id"
    " LEFT JOIN iam_groups g ON g.group_id = m.group_id"
    " ORDER BY g.name_key"
)


def _trust_policy(
    trust: Sequence[str], document: str | Mapping[str, Any] | None
) -> trust_policies.TrustPolicy:
    """The trust policy a role is given: a document, or ``--trust`` ARNs as one."""
    if document is not None and trust:
        raise InputError(
            "AssumeRolePolicyDocument",
            "give either a trust policy document or trusted principal ARNs, not both",
        )
    if document is None:
        document = trust_policies.shorthand_document(list(trust))
    return trust_policies.parse_trust_policy(document)


@functools.lru_cache(maxsize=1024)
def _stored_trust(text: str) -> trust_policies.TrustPolicy:
    """A stored trust document, parsed once per distinct text (documents never change)."""
    return trust_policies.parse_trust_policy(text)


class SqlStore(SqlPolicies, SqlSignin, SqlOidc, SqlSessions, SqlFlows):
    """The :class:`~authbridge.store.base.Store` protocol over a SQL driver.

    IAM policies (managed, inline, attachments, tags) are :class:`SqlPolicies`'; login
    profiles, the password policy, virtual MFA and sign-in counters :class:`SqlSignin`'s; OIDC
    providers :class:`SqlOidc`'s; sign-in sessions, their codes and refresh tokens
    :class:`SqlSessions`'; the sign-in pages' flow state :class:`SqlFlows`'.
    """

    def __init__(
        self,
        driver: Driver,
        *,
        pepper: credentials.Pepper | Callable[[], credentials.Pepper],
        partition: str = "aws",
    ) -> None:
        self._db = driver
        # The pepper may be given as a loader: commands that never touch a secret
        # then never read (or create) the pepper file.
        self._pepper_source = pepper
        self._pepper_value: credentials.Pepper | None = None
        self.partition = partition
        self._partitions = arns.KNOWN_PARTITIONS | {partition}
        self._access: AccessSnapshot | None = None  # the last one read (access_snapshot)

    def __repr__(self) -> str:
        return f"SqlStore(dialect={self._db.dialect!r}, partition={self.partition!r})"

    @property
    def _pepper(self) -> credentials.Pepper:
        if self._pepper_value is None:
            source = self._pepper_source
            self._pepper_value = source if isinstance(source, credentials.Pepper) else source()
        return self._pepper_value

    # -- lifecycle -------------------------------------------------------------------
    def migrate(self) -> int:
        with self._db.transaction(write=True) as cur:
            self._db.lock_for_migration(cur)
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
            )
            current = self._version(cur)
            if current > LATEST_VERSION:
                raise SchemaTooNew(
                    f"the database schema is version {current}, newer than this authbridge"
                    f" understands ({LATEST_VERSION})",
                    hint="upgrade authbridge before using this database",
                )
            for migration in MIGRATIONS:
                if migration.version <= current:
                    continue
                for stmt in migration.sql_for(self._db.dialect):
                    cur.execute(stmt)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now()),
                )
            return max(current, LATEST_VERSION)

    def schema_version(self) -> int:
        with self._db.transaction(write=False) as cur:
            return self._version(cur)

    def _version(self, cur: Cursor) -> int:
        if not self._db.has_table(cur, "schema_migrations"):
            return 0
        rows = cur.execute("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def close(self) -> None:
        self._db.close()

    def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]:
        return self._db.transaction(write=write)

    # -- accounts ------------------------------------------------------------------
    def create_account(self, account_id: str, alias: str | None = None) -> Account:
        names.account_id(account_id)
        if alias is not None:
            _check_alias(alias)
        now = _now()
        with self._tx(write=True) as cur:
            if cur.execute("SELECT 1 FROM iam_accounts WHERE account_id = ?", (account_id,)):
                raise EntityAlreadyExists(f"account {account_id} already exists")
            self._insert(
                cur,
                "INSERT INTO iam_accounts (account_id, alias, created_at) VALUES (?, ?, ?)",
                (account_id, alias, now),
                f"account {account_id} already exists",
            )
        return Account(account_id, alias, _dt_req(now))

    def get_account(self, account_id: str) -> Account:
        with self._tx() as cur:
            return self._account(cur, account_id)

    def list_accounts(self) -> list[Account]:
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT account_id, alias, created_at FROM iam_accounts ORDER BY account_id"
            )
        return [Account(r[0], r[1], _dt_req(r[2])) for r in rows]

    def bootstrap_admin(
        self,
        account_id: str,
        user_name: str,
        policy_arn: str,
        *,
        deliver: Callable[[BootstrapAdmin], None] | None = None,
    ) -> BootstrapAdmin | None:
        names.account_id(account_id)
        names.user_name(user_name)
        ref = self._policy_arn(policy_arn)
        now = _now()
        user_id = credentials.new_user_id()
        key_id = credentials.new_access_key_id()
        secret = credentials.new_secret()
        if not ref.aws_managed:  # an account's own policy cannot exist before the account
            raise InputError(
                "policy_arn",
                f"{policy_arn} is not an AWS managed policy",
                hint="the first administrator gets a shipped policy, e.g."
                f" arn:{self.partition}:iam::aws:policy/AdministratorAccess",
            )
        policy_ref = AWS_REF_PREFIX + self._aws_name(ref)
        with self._tx(write=True) as cur:
            self._db.lock_accounts(cur)
            if cur.execute("SELECT 1 FROM iam_accounts LIMIT 1"):
                return None
            cur.execute(
                "INSERT INTO iam_accounts (account_id, alias, created_at) VALUES (?, ?, ?)",
                (account_id, None, now),
            )
            cur.execute(
                f"INSERT INTO iam_users ({_USER_COLS}, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, account_id, user_name, "/", 1, _tags_json({}), now, user_name.lower()),
            )
            cur.execute(
                "INSERT INTO iam_policy_attachments (principal_id, principal_kind, account_id,"
                " policy_ref, attached_at) VALUES (?, ?, ?, ?, ?)",
                (user_id, "user", account_id, policy_ref, now),
            )
            cur.execute(
                "INSERT INTO iam_access_keys (access_key_id, user_id, secret_hash, pepper_id,"
                " status, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    user_id,
                    self._pepper.hash_secret(secret),
                    self._pepper.pepper_id,
                    "Active",
                    now,
                ),
            )
            user = self._user((user_id, account_id, user_name, "/", 1, _tags_json({}), now))
            key = AccessKey(key_id, user_id, user_name, account_id, "Active", _dt_req(now), None)
            made = BootstrapAdmin(
                account=Account(account_id, None, _dt_req(now)),
                user=user,
                policy_arn=aws_managed_arn(self.partition, policy_ref.removeprefix(AWS_REF_PREFIX)),
                key=NewAccessKey(key=key, secret_access_key=secret),
            )
            if deliver is not None:
                deliver(made)  # raising rolls the transaction back: nothing was made
        return made

    def _account(self, cur: Cursor, account_id: str) -> Account:
        names.account_id(account_id)
        rows = cur.execute(
            "SELECT account_id, alias, created_at FROM iam_accounts WHERE account_id = ?",
            (account_id,),
        )
        if not rows:
            raise NoSuchEntity(
                f"account {account_id} does not exist",
                hint=f"create it with `authbridge iam create-account --account-id {account_id}`",
            )
        r = rows[0]
        return Account(r[0], r[1], _dt_req(r[2]))

    # -- users -----------------------------------------------------------------------
    def create_user(
        self,
        account_id: str,
        name: str,
        path: str = "/",
        tags: dict[str, str] | None = None,
    ) -> User:
        names.user_name(name)
        names.path(path)
        tag_map = names.tags(tags or {})
        now = _now()
        user_id = credentials.new_user_id()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            taken = cur.execute(
                "SELECT name FROM iam_users WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            if taken:
                raise EntityAlreadyExists(_taken("user", name, taken[0][0], account_id))
            self._insert(
                cur,
                f"INSERT INTO iam_users ({_USER_COLS}, name_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user_id, account_id, name, path, 1, _tags_json(tag_map), now, name.lower()),
                _taken("user", name, name, account_id),
            )
        return self._user((user_id, account_id, name, path, 1, _tags_json(tag_map), now))

    def get_user(self, account_id: str, name: str) -> User:
        with self._tx() as cur:
            return self._user(self._user_row(cur, account_id, name))

    def get_user_by_id(self, user_id: str) -> User:
        with self._tx() as cur:
            rows = cur.execute(f"SELECT {_USER_COLS} FROM iam_users WHERE user_id = ?", (user_id,))
        if not rows:
            raise NoSuchEntity(f"no user has the unique id {user_id}")
        return self._user(rows[0])

    def list_users(self, account_id: str, path_prefix: str = "/") -> list[User]:
        names.path(path_prefix)
        with self._tx() as cur:
            self._account(cur, account_id)
            rows = cur.execute(
                f"SELECT {_USER_COLS} FROM iam_users WHERE account_id = ?"
                " AND substr(path, 1, ?) = ? ORDER BY name_key",
                (account_id, len(path_prefix), path_prefix),
            )
        return [self._user(r) for r in rows]

    def set_user_enabled(self, account_id: str, name: str, enabled: bool) -> User:
        with self._tx(write=True) as cur:
            row = self._user_row(cur, account_id, name, lock=True)
            cur.execute(
                "UPDATE iam_users SET enabled = ? WHERE user_id = ?", (int(enabled), row[0])
            )
            if not enabled:  # enabling the user again does not bring its sessions back
                self._end_all(cur, row[0], "user_disabled", _now())
            row = (*row[:4], int(enabled), *row[5:])
        return self._user(row)

    def delete_user(self, account_id: str, name: str, *, force: bool = False) -> None:
        with self._tx(write=True) as cur:
            row = self._user_row(cur, account_id, name, lock=True)
            user_id = row[0]
            keys = cur.execute(
                "SELECT access_key_id FROM iam_access_keys WHERE user_id = ? ORDER BY 1",
                (user_id,),
            )
            groups = cur.execute(
                "SELECT g.name FROM iam_group_members m JOIN iam_groups g"
                " ON g.group_id = m.group_id WHERE m.user_id = ? ORDER BY g.name_key",
                (user_id,),
            )
            policies = self._principal_policy_holdings(cur, user_id)
            policies.extend(self._signin_holdings(cur, user_id))
            if (keys or groups or policies) and not force:
                attached = []
                if keys:
                    attached.append("access keys " + ", ".join(r[0] for r in keys))
                if groups:
                    attached.append("membership of groups " + ", ".join(r[0] for r in groups))
                attached.extend(policies)
                raise DeleteConflict(
                    f"user {row[2]} still has {' and '.join(attached)}",
                    hint="delete those first, or pass --force to delete them with the user",
                )
            self._drop_principal_policies(cur, user_id)
            self._drop_signin(cur, user_id)
            self._drop_sessions(cur, user_id)
            cur.execute("DELETE FROM iam_access_keys WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM iam_group_members WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM iam_users WHERE user_id = ?", (user_id,))

    def _user_row(self, cur: Cursor, account_id: str, name: str, *, lock: bool = False) -> Row:
        names.user_name(name)
        self._account(cur, account_id)
        rows = cur.execute(
            f"SELECT {_USER_COLS} FROM iam_users WHERE account_id = ? AND name_key = ?"
            + (self._db.lock_suffix if lock else ""),
            (account_id, name.lower()),
        )
        if not rows:
            raise NoSuchEntity(
                f"user {name} does not exist in account {account_id}",
                hint="list users with `authbridge iam list-users`",
            )
        return rows[0]

    def _user(self, r: Row) -> User:
        user_id, account_id, name, path, enabled, tags, created = r
        return User(
            user_id=user_id,
            account_id=account_id,
            name=name,
            path=path,
            arn=arns.user_arn(self.partition, account_id, name, path),
            enabled=bool(enabled),
            created_at=_dt_req(created),
            tags=json.loads(tags),
        )

    # -- groups ----------------------------------------------------------------------
    def create_group(self, account_id: str, name: str, path: str = "/") -> Group:
        names.group_name(name)
        names.path(path)
        now = _now()
        group_id = credentials.new_group_id()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            taken = cur.execute(
                "SELECT name FROM iam_groups WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            if taken:
                raise EntityAlreadyExists(_taken("group", name, taken[0][0], account_id))
            self._insert(
                cur,
                f"INSERT INTO iam_groups ({_GROUP_COLS}, name_key) VALUES (?, ?, ?, ?, ?, ?)",
                (group_id, account_id, name, path, now, name.lower()),
                _taken("group", name, name, account_id),
            )
        return self._group((group_id, account_id, name, path, now))

    def get_group(self, account_id: str, name: str) -> Group:
        with self._tx() as cur:
            return self._group(self._group_row(cur, account_id, name))

    def list_groups(self, account_id: str, path_prefix: str = "/") -> list[Group]:
        names.path(path_prefix)
        with self._tx() as cur:
            self._account(cur, account_id)
            rows = cur.execute(
                f"SELECT {_GROUP_COLS} FROM iam_groups WHERE account_id = ?"
                " AND substr(path, 1, ?) = ? ORDER BY name_key",
                (account_id, len(path_prefix), path_prefix),
            )
        return [self._group(r) for r in rows]

    def delete_group(self, account_id: str, name: str, *, force: bool = False) -> None:
        with self._tx(write=True) as cur:
            row = self._group_row(cur, account_id, name, lock=True)
            members = cur.execute(
                "SELECT u.name FROM iam_group_members m JOIN iam_users u"
                " ON u.user_id = m.user_id WHERE m.group_id = ? ORDER BY u.name_key",
                (row[0],),
            )
            policies = self._principal_policy_holdings(cur, row[0])
            if members and not force:
                raise DeleteConflict(
                    f"group {row[2]} still has members: "
                    + ", ".join(r[0] for r in members)
                    + "".join(f" and {held}" for held in policies),
                    hint="remove them with `authbridge iam remove-user-from-group`"
                    + (", `delete-group-policy` and `detach-group-policy`" if policies else "")
                    + ", or pass --force",
                )
            if policies and not force:
                raise DeleteConflict(
                    f"group {row[2]} still has {' and '.join(policies)}",
                    hint="delete and detach them with `authbridge iam delete-group-policy` and"
                    " `detach-group-policy`, or pass --force",
                )
            self._drop_principal_policies(cur, row[0])
            cur.execute("DELETE FROM iam_group_members WHERE group_id = ?", (row[0],))
            cur.execute("DELETE FROM iam_groups WHERE group_id = ?", (row[0],))

    def add_user_to_group(self, account_id: str, group_name: str, user_name: str) -> None:
        with self._tx(write=True) as cur:
            group = self._group_row(cur, account_id, group_name, lock=True)
            user = self._user_row(cur, account_id, user_name, lock=True)
            # IAM's AddUserToGroup is idempotent.
            cur.execute(
                "INSERT INTO iam_group_members (group_id, user_id) VALUES (?, ?)"
                " ON CONFLICT DO NOTHING",
                (group[0], user[0]),
            )

    def remove_user_from_group(self, account_id: str, group_name: str, user_name: str) -> None:
        with self._tx(write=True) as cur:
            group = self._group_row(cur, account_id, group_name)
            user = self._user_row(cur, account_id, user_name)
            cur.execute(
                "DELETE FROM iam_group_members WHERE group_id = ? AND user_id = ?",
                (group[0], user[0]),
            )
            if cur.rowcount == 0:
                raise NoSuchEntity(f"user {user[2]} is not a member of group {group[2]}")

    def list_group_members(self, account_id: str, group_name: str) -> list[User]:
        with self._tx() as cur:
            group = self._group_row(cur, account_id, group_name)
            rows = cur.execute(
                f"SELECT {', '.join('u.' + c for c in _USER_COLS.split(', '))}"
                " FROM iam_group_members m JOIN iam_users u ON u.user_id = m.user_id"
                " WHERE m.group_id = ? ORDER BY u.name_key",
                (group[0],),
            )
        return [self._user(r) for r in rows]

    def list_groups_for_user(self, account_id: str, user_name: str) -> list[Group]:
        with self._tx() as cur:
            user = self._user_row(cur, account_id, user_name)
            rows = cur.execute(
                f"SELECT {', '.join('g.' + c for c in _GROUP_COLS.split(', '))}"
                " FROM iam_group_members m JOIN iam_groups g ON g.group_id = m.group_id"
                " WHERE m.user_id = ? ORDER BY g.name_key",
                (user[0],),
            )
        return [self._group(r) for r in rows]

    def _group_row(self, cur: Cursor, account_id: str, name: str, *, lock: bool = False) -> Row:
        names.group_name(name)
        self._account(cur, account_id)
        rows = cur.execute(
            f"SELECT {_GROUP_COLS} FROM iam_groups WHERE account_id = ? AND name_key = ?"
            + (self._db.lock_suffix if lock else ""),
            (account_id, name.lower()),
        )
        if not rows:
            raise NoSuchEntity(
                f"group {name} does not exist in account {account_id}",
                hint="list groups with `authbridge iam list-groups`",
            )
        return rows[0]

    def _group(self, r: Row) -> Group:
        group_id, account_id, name, path, created = r
        return Group(
            group_id=group_id,
            account_id=account_id,
            name=name,
            path=path,
            arn=arns.group_arn(self.partition, account_id, name, path),
            created_at=_dt_req(created),
        )

    # -- roles -----------------------------------------------------------------------
    def create_role(
        self,
        account_id: str,
        name: str,
        *,
        trust: Sequence[str] = (),
        trust_policy: str | Mapping[str, Any] | None = None,
        path: str = "/",
        max_session_duration: int = names.DEFAULT_MAX_SESSION_DURATION,
        description: str = "",
    ) -> Role:
        names.role_name(name)
        names.path(path)
        names.max_session_duration(max_session_duration)
        names.description(description)
        policy = _trust_policy(trust, trust_policy)
        now = _now()
        role_id = credentials.new_role_id()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            taken = cur.execute(
                "SELECT name FROM iam_roles WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            if taken:
                raise EntityAlreadyExists(_taken("role", name, taken[0][0], account_id))
            entries, stored = self._resolve_trust_policy(cur, account_id, policy)
            self._insert(
                cur,
                f"INSERT INTO iam_roles ({_ROLE_COLS}, name_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    role_id,
                    account_id,
                    name,
                    path,
                    max_session_duration,
                    description,
                    now,
                    stored,
                    name.lower(),
                ),
                _taken("role", name, name, account_id),
            )
            self._write_trust(cur, role_id, entries)
            return self._role(
                cur,
                (role_id, account_id, name, path, max_session_duration, description, now, stored),
            )

    def get_role(self, account_id: str, name: str) -> Role:
        names.role_name(name)
        with self._tx() as cur:
            # The same three statements whether or not the account and the role exist
            # (an absent role's trust is read for an id no role has), so the time an
            # answer takes does not tell which (role enumeration: sts.assume_role).
            try:
                self._account(cur, account_id)
                absent: NoSuchEntity | None = None
            except NoSuchEntity as e:
                absent = e
            rows = cur.execute(
                f"SELECT {_ROLE_COLS} FROM iam_roles WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            role = self._role(cur, rows[0] if rows else ("", account_id, name, "/", 0, "", 0, None))
        # Raised after the transaction ends as it does for a role found (not a rollback).
        if absent is not None:
            raise absent
        if not rows:
            raise NoSuchEntity(
                f"role {name} does not exist in account {account_id}",
                hint="list roles with `authbridge iam list-roles`",
            )
        return role

    def get_role_by_id(self, role_id: str) -> Role:
        with self._tx() as cur:
            rows = cur.execute(f"SELECT {_ROLE_COLS} FROM iam_roles WHERE role_id = ?", (role_id,))
            if not rows:
                raise NoSuchEntity(f"no role has the unique id {role_id}")
            return self._role(cur, rows[0])

    def list_roles(self, account_id: str, path_prefix: str = "/") -> list[Role]:
        names.path(path_prefix)
        with self._tx() as cur:
            self._account(cur, account_id)
            rows = cur.execute(
                f"SELECT {_ROLE_COLS} FROM iam_roles WHERE account_id = ?"
                " AND substr(path, 1, ?) = ? ORDER BY name_key",
                (account_id, len(path_prefix), path_prefix),
            )
            return [self._role(cur, r) for r in rows]

    def update_role_trust(self, account_id: str, name: str, trust: Sequence[str]) -> Role:
        return self.update_assume_role_policy(
            account_id, name, trust_policies.shorthand_document(trust)
        )

    def update_assume_role_policy(
        self, account_id: str, name: str, document: str | Mapping[str, Any]
    ) -> Role:
        policy = _trust_policy((), document)
        with self._tx(write=True) as cur:
            row = self._role_row(cur, account_id, name, lock=True)
            entries, stored = self._resolve_trust_policy(cur, account_id, policy)
            cur.execute("DELETE FROM iam_role_trust WHERE role_id = ?", (row[0],))
            self._write_trust(cur, row[0], entries)
            cur.execute(
                "UPDATE iam_roles SET trust_document = ? WHERE role_id = ?", (stored, row[0])
            )
            return self._role(cur, (*row[:7], stored))

    def delete_role(self, account_id: str, name: str, *, force: bool = False) -> None:
        with self._tx(write=True) as cur:
            row = self._role_row(cur, account_id, name, lock=True)
            policies = self._principal_policy_holdings(cur, row[0])
            if policies and not force:
                raise DeleteConflict(
                    f"role {row[2]} still has {' and '.join(policies)}",
                    hint="delete and detach them with `authbridge iam delete-role-policy` and"
                    " `detach-role-policy` first",
                )
            self._drop_principal_policies(cur, row[0])
            cur.execute("DELETE FROM iam_role_trust WHERE role_id = ?", (row[0],))
            cur.execute("DELETE FROM iam_roles WHERE role_id = ?", (row[0],))

    def _role_row(self, cur: Cursor, account_id: str, name: str, *, lock: bool = False) -> Row:
        names.role_name(name)
        self._account(cur, account_id)
        rows = cur.execute(
            f"SELECT {_ROLE_COLS} FROM iam_roles WHERE account_id = ? AND name_key = ?"
            + (self._db.lock_suffix if lock else ""),
            (account_id, name.lower()),
        )
        if not rows:
            raise NoSuchEntity(
                f"role {name} does not exist in account {account_id}",
                hint="list roles with `authbridge iam list-roles`",
            )
        return rows[0]

    def _role(self, cur: Cursor, r: Row) -> Role:
        role_id, account_id, name, path, max_dur, desc, created, document = r
        trust_rows = cur.execute(
            "SELECT t.kind, t.principal_id, u.account_id, u.name, u.path,"
            " g.account_id, g.name, g.path, a.account_id"
            " FROM iam_role_trust t"
            " LEFT JOIN iam_users u ON t.kind = 'user' AND u.user_id = t.principal_id"
            " LEFT JOIN iam_groups g ON t.kind = 'group' AND g.group_id = t.principal_id"
            " LEFT JOIN iam_accounts a ON t.kind = 'root' AND a.account_id = t.principal_id"
            " WHERE t.role_id = ? ORDER BY t.position",
            (role_id,),
        )
        trust = []
        for kind, pid, u_acct, u_name, u_path, g_acct, g_name, g_path, a_acct in trust_rows:
            if kind == "user" and u_name is not None:
                shown = arns.user_arn(self.partition, u_acct, u_name, u_path)
            elif kind == "group" and g_name is not None:
                shown = arns.group_arn(self.partition, g_acct, g_name, g_path)
            elif kind == "root" and a_acct is not None:
                shown = arns.root_arn(self.partition, a_acct)
            else:
                shown = pid  # deleted principal: IAM shows the bare unique id
            trust.append(TrustEntry(kind=kind, principal_id=pid, arn=shown))
        return Role(
            role_id=role_id,
            account_id=account_id,
            name=name,
            path=path,
            arn=arns.role_arn(self.partition, account_id, name, path),
            max_session_duration=int(max_dur),
            description=desc,
            created_at=_dt_req(created),
            trust=tuple(trust),
            trust_document=None if document is None else _stored_trust(document),
        )

    def _resolve_trust_policy(
        self, cur: Cursor, account_id: str, policy: trust_policies.TrustPolicy
    ) -> tuple[list[tuple[TrustKind, str]], str]:
        """The AWS principals as (kind, unique id) rows, and the document to store.

        Every AWS principal must exist (an account id means its root); every
        Federated one must be a provider registered in the role's account.
        """
        entries: list[tuple[TrustKind, str]] = []
        ids: dict[str, str] = {}
        for text in policy.aws_principals():
            # A bare account id means its root, as IAM reads it.
            arn = arns.root_arn(self.partition, text) if _ACCOUNT_ID.fullmatch(text) else text
            entry = self._resolve_trust_entry(cur, arn)
            ids[text] = entry[1]
            if entry not in entries:
                entries.append(entry)
        for text in policy.federated_principals():
            parsed = oidc_provider.parse_provider_arn(text)
            if (
                parsed.partition != self.partition
                or parsed.account_id != account_id
                or not self._provider_registered(cur, account_id, parsed.key)
            ):
                raise InvalidTrust(
                    f"trust policy names OIDC provider {text}, which is not registered in"
                    f" account {account_id}",
                    hint="register it with `authbridge iam create-open-id-connect-provider`",
                )
        stored = policy.with_aws(ids.__getitem__).to_json()
        return entries, json.dumps(stored, separators=(",", ":"), ensure_ascii=False)

    def _resolve_trust_entry(self, cur: Cursor, text: str) -> tuple[TrustKind, str]:
        try:
            p = arns.parse_principal(text, partitions=self._partitions)
        except MalformedArn as e:
            raise InvalidTrust(f"trust entry is not a principal ARN: {e.message}") from e
        if p.partition != self.partition:
            raise InvalidTrust(
                f"trust entry {text} is in partition {p.partition}, this store uses"
                f" {self.partition}"
            )
        if p.kind == "root":
            if not cur.execute("SELECT 1 FROM iam_accounts WHERE account_id = ?", (p.account_id,)):
                raise InvalidTrust(f"trust entry {text}: account {p.account_id} does not exist")
            return ("root", p.account_id)
        if p.kind not in ("user", "group"):
            raise InvalidTrust(
                f"trust entry {text} is a {p.kind}; a role may trust users, groups"
                " or an account root (arn:…:iam::<account>:root)"
            )
        table, id_col = ("iam_users", "user_id") if p.kind == "user" else ("iam_groups", "group_id")
        rows = cur.execute(
            f"SELECT {id_col}, path FROM {table} WHERE account_id = ? AND name_key = ?",
            (p.account_id, p.name.lower()),
        )
        if not rows:
            raise InvalidTrust(
                f"trust entry {text}: no {p.kind} {p.name} in account {p.account_id}",
                hint=f"create the {p.kind} first",
            )
        if rows[0][1] != p.path:
            raise InvalidTrust(
                f"trust entry {text}: {p.kind} {p.name} has path {rows[0][1]}, not {p.path}"
            )
        return (p.kind, rows[0][0])

    @staticmethod
    def _write_trust(cur: Cursor, role_id: str, entries: list[tuple[TrustKind, str]]) -> None:
        for position, (kind, pid) in enumerate(entries):
            cur.execute(
                "INSERT INTO iam_role_trust (role_id, kind, principal_id, position)"
                " VALUES (?, ?, ?, ?)",
                (role_id, kind, pid, position),
            )

    # -- access keys ---------------------------------------------------------------
    def create_access_key(self, account_id: str, user_name: str) -> NewAccessKey:
        now = _now()
        key_id = credentials.new_access_key_id()
        secret = credentials.new_secret()
        with self._tx(write=True) as cur:
            # The row lock serializes concurrent creations for one user (PostgreSQL);
            # SQLite's write transaction is already exclusive.
            user = self._user_row(cur, account_id, user_name, lock=True)
            count = cur.execute(
                "SELECT COUNT(*) FROM iam_access_keys WHERE user_id = ?", (user[0],)
            )[0][0]
            if count >= MAX_ACCESS_KEYS_PER_USER:
                raise LimitExceeded(
                    f"user {user[2]} already has {MAX_ACCESS_KEYS_PER_USER} access keys,"
                    " the most IAM allows",
                    hint="delete one with `authbridge iam delete-access-key` first",
                )
            self._insert(
                cur,
                "INSERT INTO iam_access_keys (access_key_id, user_id, secret_hash, pepper_id,"
                " status, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    user[0],
                    self._pepper.hash_secret(secret),
                    self._pepper.pepper_id,
                    "Active",
                    now,
                ),
                f"access key id {key_id} collided; try again",
            )
        key = AccessKey(key_id, user[0], user[2], account_id, "Active", _dt_req(now), None)
        return NewAccessKey(key=key, secret_access_key=secret)

    def get_access_key(self, access_key_id: str) -> AccessKey:
        with self._tx() as cur:
            return self._key(self._key_row(cur, access_key_id))

    def list_access_keys(self, account_id: str, user_name: str) -> list[AccessKey]:
        with self._tx() as cur:
            user = self._user_row(cur, account_id, user_name)
            rows = cur.execute(
                f"SELECT {_KEY_COLS} FROM iam_access_keys k JOIN iam_users u"
                " ON u.user_id = k.user_id WHERE k.user_id = ? ORDER BY k.created_at,"
                " k.access_key_id",
                (user[0],),
            )
        return [self._key(r) for r in rows]

    def update_access_key(self, access_key_id: str, status: AccessKeyStatus) -> AccessKey:
        if status not in ("Active", "Inactive"):
            raise InputError("Status", f"must be Active or Inactive, got {status!r}")
        with self._tx(write=True) as cur:
            row = self._key_row(cur, access_key_id)
            cur.execute(
                "UPDATE iam_access_keys SET status = ? WHERE access_key_id = ?",
                (status, access_key_id),
            )
        return self._key((*row[:4], status, *row[5:]))

    def delete_access_key(self, access_key_id: str) -> None:
        with self._tx(write=True) as cur:
            self._key_row(cur, access_key_id)
            cur.execute("DELETE FROM iam_access_keys WHERE access_key_id = ?", (access_key_id,))

    def authenticate_access_key(self, access_key_id: str, secret: str) -> tuple[AccessKey, User]:
        refused = InvalidCredentials(
            "the access key id or secret is not valid, or the key is inactive",
            hint="check the credentials, or create a new key with"
            " `authbridge iam create-access-key`",
        )
        rows: list[Row] = []
        if credentials.looks_like_access_key_id(access_key_id):
            with self._tx() as cur:
                rows = cur.execute(
                    "SELECT k.secret_hash, k.pepper_id, k.status, k.last_used_at, k.created_at,"
                    f" {', '.join('u.' + c for c in _USER_COLS.split(', '))}"
                    " FROM iam_access_keys k JOIN iam_users u ON u.user_id = k.user_id"
                    " WHERE k.access_key_id = ?",
                    (access_key_id,),
                )
        if not rows:
            self._pepper.matches(secret, _DUMMY_HASH)  # same work as a real check
            raise refused
        secret_hash, pepper_id, status, last_used, created, *user_cols = rows[0]
        if pepper_id != self._pepper.pepper_id:
            raise KeyStoreError(
                f"access key {access_key_id} was issued under pepper {pepper_id}, but the"
                f" loaded pepper is {self._pepper.pepper_id}",
                hint="restore the access-key-pepper file that issued it",
            )
        ok = self._pepper.matches(secret, secret_hash)
        user = self._user(tuple(user_cols))
        if not ok or status != "Active" or not user.enabled:
            raise refused
        now = _now()
        if last_used is None or now - last_used >= LAST_USED_GRANULARITY:
            with self._tx(write=True) as cur:
                cur.execute(
                    "UPDATE iam_access_keys SET last_used_at = ? WHERE access_key_id = ?",
                    (now, access_key_id),
                )
            last_used = now
        key = AccessKey(
            access_key_id,
            user.user_id,
            user.name,
            user.account_id,
            "Active",
            _dt_req(created),
            _dt(last_used),
        )
        return key, user

    def _key_row(self, cur: Cursor, access_key_id: str) -> Row:
        rows = []
        if credentials.looks_like_access_key_id(access_key_id):
            rows = cur.execute(
                f"SELECT {_KEY_COLS} FROM iam_access_keys k JOIN iam_users u"
                " ON u.user_id = k.user_id WHERE k.access_key_id = ?",
                (access_key_id,),
            )
        if not rows:
            raise NoSuchEntity(
                f"access key {_short(access_key_id)} does not exist",
                hint="list keys with `authbridge iam list-access-keys --user-name NAME`",
            )
        return rows[0]

    @staticmethod
    def _key(r: Row) -> AccessKey:
        key_id, user_id, user_name, account_id, status, created, last_used = r
        return AccessKey(
            key_id, user_id, user_name, account_id, status, _dt_req(created), _dt(last_used)
        )

    # -- token checks ----------------------------------------------------------------
    def check_principal(
        self, principal_id: str, access_key_id: str | None = None
    ) -> PrincipalRefusal | None:
        with self._tx() as cur:
            if principal_id.startswith(credentials.ROLE_ID_PREFIX):
                role_id = principal_id.split(":", 1)[0]
                if not cur.execute("SELECT 1 FROM iam_roles WHERE role_id = ?", (role_id,)):
                    return "principal_deleted"
                return None
            if not principal_id.startswith(credentials.USER_ID_PREFIX):
                return "principal_deleted"
            rows = cur.execute("SELECT enabled FROM iam_users WHERE user_id = ?", (principal_id,))
            if not rows:
                return "principal_deleted"
            if not rows[0][0]:
                return "user_disabled"
            if access_key_id is None:
                return None
            keys = cur.execute(
                "SELECT status FROM iam_access_keys WHERE access_key_id = ? AND user_id = ?",
                (access_key_id, principal_id),
            )
            if not keys:
                return "access_key_deleted"
            if keys[0][0] != "Active":
                return "access_key_inactive"
            return None

    def review_facts(
        self,
        jti: str,
        principal_id: str,
        access_key_id: str | None = None,
        *,
        source_identity: str | None = None,
        source_jti: str | None = None,
        session_id: str | None = None,
    ) -> ReviewFacts:
        # One statement outside an explicit transaction: it sees one snapshot
        # (SQLite: one read transaction; PostgreSQL: the statement's own), and
        # costs one round trip instead of BEGIN, four reads and COMMIT four times.
        role_id = principal_id.split(":", 1)[0]
        source_id = source_identity or principal_id
        rows = self._db.query(
            _REVIEW_FACTS_SQL,
            (jti, source_jti, role_id, session_id, principal_id, source_id, access_key_id),
        )
        (
            revoked,
            source_revoked,
            role_exists,
            session_live,
            access_version,
            user_id,
            enabled,
            user_name,
            key_status,
            source_user_id,
            source_enabled,
            source_name,
        ) = rows[0][:12]
        # The decision of check_principal, in its order, on the facts just read,
        # then the source's (whose key the access key must be).
        refusal: PrincipalRefusal | None = None
        is_role = principal_id.startswith(credentials.ROLE_ID_PREFIX)
        if is_role:
            refusal = None if role_exists else "principal_deleted"
        elif not principal_id.startswith(credentials.USER_ID_PREFIX) or user_id is None:
            refusal = "principal_deleted"
        elif not enabled:
            refusal = "user_disabled"
        web_source = (
            oidc_provider.source_provider_keys(source_id)
            if is_role and source_id.startswith("arn:")
            else None
        )
        if refusal is None and web_source is not None:
            # A web identity session (authbridge.web_identity): its source is a provider,
            # which must still be registered; there is no IAM user to look for.
            if not self._web_identity_source_live(*web_source):
                refusal = "source_deleted"
        elif (
            refusal is None and source_id != principal_id and not (is_role and source_id == role_id)
        ):
            if not source_id.startswith(credentials.USER_ID_PREFIX) or source_user_id is None:
                refusal = "source_deleted"
            elif not source_enabled:
                refusal = "source_user_disabled"
        # A key is a user's: a role session with no user behind it has none to check.
        user_source = source_id.startswith(credentials.USER_ID_PREFIX)
        if refusal is None and access_key_id is not None and user_source:
            if key_status is None:
                refusal = "access_key_deleted"
            elif key_status != "Active":
                refusal = "access_key_inactive"
        return ReviewFacts(
            revoked=bool(revoked),
            refusal=refusal,
            user_name=user_name if user_id is not None else None,
            group_arns=tuple(
                arns.group_arn(self.partition, g_account, g_name, g_path)
                for *_, g_account, g_name, g_path in rows
                if g_name is not None
            ),
            source_revoked=bool(source_revoked),
            source_user_name=source_name
            if source_user_id is not None and source_id != principal_id
            else None,
            access_version=int(access_version),
            session_ended=session_id is not None and not session_live,
        )

    def _web_identity_source_live(self, account_id: str, keys: tuple[str, ...]) -> bool:
        """Whether one of ``keys`` is a provider registered in ``account_id`` (one read)."""
        marks = ", ".join("?" for _ in keys)
        return bool(
            self._db.query(
                "SELECT 1 FROM iam_oidc_providers WHERE account_id = ?"
                f" AND provider_key IN ({marks})",  # noqa: S608 - placeholders only
                (account_id, *keys),
            )
        )

    # -- revocation ----------------------------------------------------------------
    def revoke_token(self, jti: str, expires_at: datetime) -> None:
        if not jti or len(jti) > 256:
            raise InputError("jti", "must be 1 to 256 characters")
        exp = int(expires_at.timestamp())
        with self._tx(write=True) as cur:
            cur.execute(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (jti, exp, _now()),
            )

    def is_token_revoked(self, jti: str) -> bool:
        with self._tx() as cur:
            return bool(cur.execute("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)))

    def purge_revoked_tokens(self, now: datetime | None = None) -> int:
        cutoff = int((now or datetime.now(UTC)).timestamp())
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (cutoff,))
            return cur.rowcount

    # -- signing keys (authbridge.keys.StoreKeys) -------------------------------------
    # Rows are opaque here: sealing, opening and every rule about key states live in
    # authbridge.keys; the store only reads and writes them in one transaction.
    def list_signing_keys(self) -> list[KeyRecord]:
        """Every signing key row, oldest activation first."""
        return [_key_record(r) for r in self._db.query(_SIGNING_KEYS_SQL)]

    def signing_keys_version(self) -> tuple[Row, ...]:
        """What changes whenever a key is added, retired or revoked (no key material)."""
        return tuple(
            tuple(r)
            for r in self._db.query(
                "SELECT kid, kek_id, created_at, activates_at, retired_at, revoked_at"
                " FROM signing_keys ORDER BY kid"
            )
        )

    def edit_signing_keys(
        self, edit: Callable[[list[KeyRecord]], KeyEdit], *, wait: bool = True
    ) -> KeyEdit | None:
        """Read the rows under the key lock, let ``edit`` decide, write its answer: one transaction.

        The lock is PostgreSQL's ``pg_advisory_xact_lock`` (``wait=False``: the
        ``try`` form, ``None`` when another replica holds it); on SQLite the
        ``BEGIN IMMEDIATE`` write lock. Either way it ends with the transaction.
        """
        with self._tx(write=True) as cur:
            if not self._db.lock_signing_keys(cur, wait=wait):
                return None
            change = edit([_key_record(r) for r in cur.execute(_SIGNING_KEYS_SQL)])
            for rec in change.add:
                self._insert(
                    cur,
                    "INSERT INTO signing_keys (kid, alg, public_jwk, sealed_private_key, kek_id,"
                    " created_at, activates_at, retired_at, revoked_at, revocation_reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.kid,
                        rec.alg,
                        rec.public_jwk,
                        rec.sealed_private_key,
                        rec.kek_id,
                        rec.created_at,
                        rec.activates_at,
                        rec.retired_at,
                        rec.revoked_at,
                        rec.revocation_reason,
                    ),
                    f"signing key {rec.kid} is already in the store",
                )
            for rec in change.update:
                cur.execute(
                    "UPDATE signing_keys SET retired_at = ?, revoked_at = ?, revocation_reason = ?"
                    " WHERE kid = ?",
                    (rec.retired_at, rec.revoked_at, rec.revocation_reason, rec.kid),
                )
                if cur.rowcount != 1:
                    raise KeyStoreError(f"signing key {rec.kid} is not in the store")
            return change

    # -- access entries (authbridge.iam.access) ---------------------------------------
    # Every change bumps access_version in its own transaction; on PostgreSQL that
    # UPDATE also serializes concurrent changes on the version row.
    def access_version(self) -> int:
        return int(self._db.query("SELECT version FROM access_version WHERE id = 1")[0][0])

    def access_snapshot(self, version: int | None = None) -> AccessSnapshot:
        """All modes and entries; the cached snapshot when it is of ``version``.

        ``version`` is what the caller just read (``ReviewFacts.access_version``);
        None reads it here. A new snapshot is read in one transaction.
        """
        cached = self._access
        if version is None:
            version = self.access_version()
        if cached is not None and cached.version == version:
            return cached
        with self._tx() as cur:
            # The version first: under READ COMMITTED a change committed between these
            # statements gives newer rows under the older tag (one reload too many),
            # never older rows under the newer one.
            now = int(cur.execute("SELECT version FROM access_version WHERE id = 1")[0][0])
            modes = {
                r[0]: access.authentication_mode(r[1])
                for r in cur.execute("SELECT cluster_id, authentication_mode FROM access_clusters")
            }
            entries = [
                _access_entry(r) for r in cur.execute(f"SELECT {_ENTRY_COLS} FROM access_entries")
            ]
            associations = [
                _association(r) for r in cur.execute(_ASSOCIATIONS_SQL + _ASSOCIATIONS_ORDER)
            ]
        policies: dict[tuple[str, str], tuple[PolicyAssociation, ...]] = {}
        for a in associations:
            key = (a.cluster_id, a.principal_id)
            policies[key] = (*policies.get(key, ()), a)
        snapshot = AccessSnapshot(
            now, modes, {(e.cluster_id, e.principal_id): e for e in entries}, policies
        )
        self._access = snapshot  # one reference swap: safe for a worker's threads
        return snapshot

    def get_authentication_mode(self, cluster_id: str) -> AuthenticationMode:
        access.cluster_id(cluster_id)
        rows = self._db.query(
            "SELECT authentication_mode FROM access_clusters WHERE cluster_id = ?", (cluster_id,)
        )
        return access.authentication_mode(rows[0][0]) if rows else DEFAULT_AUTHENTICATION_MODE

    def set_authentication_mode(self, cluster_id: str, mode: str) -> AuthenticationMode:
        access.cluster_id(cluster_id)
        checked = access.authentication_mode(mode)
        with self._tx(write=True) as cur:
            self._bump_access_version(cur)
            cur.execute(
                "INSERT INTO access_clusters (cluster_id, authentication_mode) VALUES (?, ?)"
                " ON CONFLICT (cluster_id) DO UPDATE SET"
                " authentication_mode = excluded.authentication_mode",
                (cluster_id, checked),
            )
        return checked

    def create_access_entry(
        self,
        cluster_id: str,
        principal_arn: str,
        *,
        username: str | None = None,
        groups: Sequence[str] = (),
        entry_type: str = "STANDARD",
    ) -> AccessEntry:
        access.cluster_id(cluster_id)
        kind = access.entry_type(entry_type)
        group_list = _entry_groups(groups)
        if username is not None and not username:
            raise InputError("username", "must not be empty", hint="omit it for the default")
        now = _now()
        with self._tx(write=True) as cur:
            self._bump_access_version(cur)
            principal_id, arn, key = self._entry_principal(cur, principal_arn)
            taken = cur.execute(
                "SELECT principal_id FROM access_entries WHERE cluster_id = ? AND arn_key = ?",
                (cluster_id, key),
            )
            if taken:
                stale = taken[0][0] != principal_id
                raise EntityAlreadyExists(
                    f"cluster {cluster_id} already has an access entry for {arn}"
                    + (" (made for a deleted principal of that name)" if stale else ""),
                    hint="delete it first with `authbridge access delete-entry`"
                    if stale
                    else "see it with `authbridge access describe-entry`",
                )
            self._insert(
                cur,
                "INSERT INTO access_entries (cluster_id, principal_id, principal_arn, arn_key,"
                " username, groups_json, entry_type, created_at, modified_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cluster_id,
                    principal_id,
                    arn,
                    key,
                    username,
                    json.dumps(group_list),
                    kind,
                    now,
                    now,
                ),
                f"cluster {cluster_id} already has an access entry for {arn}",
            )
        return AccessEntry(
            cluster_id,
            principal_id,
            arn,
            username,
            tuple(group_list),
            kind,
            _dt_req(now),
            _dt_req(now),
        )

    def get_access_entry(self, cluster_id: str, principal_arn: str) -> AccessEntry:
        with self._tx() as cur:
            return _access_entry(self._entry_row(cur, cluster_id, principal_arn))

    def list_access_entries(self, cluster_id: str | None = None) -> list[AccessEntry]:
        """The entries of one cluster (every cluster's with None), by cluster and ARN."""
        if cluster_id is not None:
            access.cluster_id(cluster_id)
        rows = self._db.query(
            f"SELECT {_ENTRY_COLS} FROM access_entries"
            + (" WHERE cluster_id = ?" if cluster_id is not None else "")
            + " ORDER BY cluster_id, arn_key",
            () if cluster_id is None else (cluster_id,),
        )
        return [_access_entry(r) for r in rows]

    def delete_access_entry(self, cluster_id: str, principal_arn: str) -> None:
        with self._tx(write=True) as cur:
            self._bump_access_version(cur)
            row = self._entry_row(cur, cluster_id, principal_arn)
            cur.execute(
                "DELETE FROM access_policy_associations WHERE cluster_id = ? AND principal_id = ?",
                (cluster_id, row[1]),
            )
            cur.execute(
                "DELETE FROM access_entries WHERE cluster_id = ? AND principal_id = ?",
                (cluster_id, row[1]),
            )

    def associate_access_policy(
        self,
        cluster_id: str,
        principal_arn: str,
        policy: str,
        *,
        scope: str,
        namespaces: Sequence[str] = (),
    ) -> PolicyAssociation:
        """Associate (or re-scope, as EKS does) a policy with an entry."""
        name = access.policy_name(policy)
        kind, ns = access.scope(scope, namespaces)
        now = _now()
        with self._tx(write=True) as cur:
            self._bump_access_version(cur)
            row = self._entry_row(cur, cluster_id, principal_arn)
            old = cur.execute(
                "SELECT associated_at FROM access_policy_associations"
                " WHERE cluster_id = ? AND principal_id = ? AND policy = ?",
                (cluster_id, row[1], name),
            )
            associated = int(old[0][0]) if old else now
            cur.execute(
                "INSERT INTO access_policy_associations (cluster_id, principal_id, policy,"
                " scope, namespaces_json, associated_at, modified_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (cluster_id, principal_id, policy) DO UPDATE SET"
                " scope = excluded.scope, namespaces_json = excluded.namespaces_json,"
                " modified_at = excluded.modified_at",
                (cluster_id, row[1], name, kind, json.dumps(list(ns)), associated, now),
            )
        return PolicyAssociation(
            cluster_id, row[1], row[2], name, kind, ns, _dt_req(associated), _dt_req(now)
        )

    def disassociate_access_policy(self, cluster_id: str, principal_arn: str, policy: str) -> None:
        name = access.policy_name(policy)
        with self._tx(write=True) as cur:
            self._bump_access_version(cur)
            row = self._entry_row(cur, cluster_id, principal_arn)
            cur.execute(
                "DELETE FROM access_policy_associations"
                " WHERE cluster_id = ? AND principal_id = ? AND policy = ?",
                (cluster_id, row[1], name),
            )
            if cur.rowcount != 1:
                raise NoSuchEntity(
                    f"policy {name} is not associated with the access entry for {row[2]}"
                    f" in cluster {cluster_id}",
                    hint="see its policies with `authbridge access list-associated-policies`",
                )

    def list_associated_access_policies(
        self, cluster_id: str | None = None, principal_arn: str | None = None
    ) -> list[PolicyAssociation]:
        """One entry's associations, or (no ARN) every entry's of the cluster (or of all)."""
        with self._tx() as cur:
            where, params = "", ()  # type: tuple[str, tuple[str, ...]]
            if principal_arn is not None:
                if cluster_id is None:
                    raise InputError("clusterName", "is required with a principal ARN")
                row = self._entry_row(cur, cluster_id, principal_arn)
                where, params = (
                    " WHERE a.cluster_id = ? AND a.principal_id = ?",
                    (
                        cluster_id,
                        row[1],
                    ),
                )
            elif cluster_id is not None:
                access.cluster_id(cluster_id)
                where, params = " WHERE a.cluster_id = ?", (cluster_id,)
            rows = cur.execute(_ASSOCIATIONS_SQL + where + _ASSOCIATIONS_ORDER, params)
        return [_association(r) for r in rows]

    def import_access_entries(
        self,
        cluster_id: str,
        entries: Sequence[EntrySpec],
        *,
        prune: bool = False,
        dry_run: bool = False,
    ) -> AccessImport:
        access.cluster_id(cluster_id)
        now = _now()
        try:
            with self._tx(write=True) as cur:
                self._bump_access_version(cur)
                result = self._import_entries(cur, cluster_id, entries, prune, now)
                if dry_run or not result.changed:
                    raise _RollBack(result)
        except _RollBack as undone:
            return undone.result
        return result

    def _import_entries(
        self,
        cur: Cursor,
        cluster_id: str,
        entries: Sequence[EntrySpec],
        prune: bool,
        now: int,
    ) -> AccessImport:
        existing = {
            r[0]: r
            for r in cur.execute(
                f"SELECT arn_key, {_ENTRY_COLS} FROM access_entries WHERE cluster_id = ?",
                (cluster_id,),
            )
        }
        created: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        wanted: set[str] = set()
        for spec in entries:
            where = spec.where or spec.principal_arn
            groups = _entry_groups(spec.groups)
            if spec.username is not None and not spec.username:
                raise InputError(f"{where}.username", "must not be empty")
            policies = {
                access.policy_name(p.policy): access.scope(p.scope, p.namespaces)
                for p in spec.policies
            }
            principal_id, arn, key = self._entry_principal(cur, spec.principal_arn)
            if key in wanted:
                raise InputError(where, f"{arn} is named twice; a principal has one entry")
            wanted.add(key)
            draft = AccessEntry(
                cluster_id, principal_id, arn, None, (), "STANDARD", _dt_req(now), _dt_req(now)
            )
            username = None if spec.username == draft.default_username() else spec.username
            row = existing.get(key)
            if row is not None and row[2] != principal_id:
                raise EntityAlreadyExists(
                    f"cluster {cluster_id} has an access entry for {arn} made for a deleted"
                    " principal of that name",
                    hint="delete it first with `authbridge access delete-entry`",
                )
            if row is None:
                cur.execute(
                    "INSERT INTO access_entries (cluster_id, principal_id, principal_arn, arn_key,"
                    " username, groups_json, entry_type, created_at, modified_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cluster_id,
                        principal_id,
                        arn,
                        key,
                        username,
                        json.dumps(groups),
                        "STANDARD",
                        now,
                        now,
                    ),
                )
                created.append(arn)
                have: dict[str, tuple[str, tuple[str, ...]]] = {}
            else:
                have = {
                    r[0]: (r[1], tuple(json.loads(r[2])))
                    for r in cur.execute(
                        "SELECT policy, scope, namespaces_json FROM access_policy_associations"
                        " WHERE cluster_id = ? AND principal_id = ?",
                        (cluster_id, principal_id),
                    )
                }
                same = row[4] == username and list(json.loads(row[5])) == groups
                if same and have == policies:
                    unchanged.append(arn)
                    continue
                if not same:
                    cur.execute(
                        "UPDATE access_entries SET username = ?, groups_json = ?, modified_at = ?"
                        " WHERE cluster_id = ? AND principal_id = ?",
                        (username, json.dumps(groups), now, cluster_id, principal_id),
                    )
                updated.append(arn)
            for policy in have.keys() - policies.keys():
                cur.execute(
                    "DELETE FROM access_policy_associations"
                    " WHERE cluster_id = ? AND principal_id = ? AND policy = ?",
                    (cluster_id, principal_id, policy),
                )
            for policy, (kind, ns) in policies.items():
                if have.get(policy) == (kind, ns):
                    continue
                cur.execute(
                    "INSERT INTO access_policy_associations (cluster_id, principal_id, policy,"
                    " scope, namespaces_json, associated_at, modified_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (cluster_id, principal_id, policy) DO UPDATE SET"
                    " scope = excluded.scope, namespaces_json = excluded.namespaces_json,"
                    " modified_at = excluded.modified_at",
                    (cluster_id, principal_id, policy, kind, json.dumps(list(ns)), now, now),
                )
        deleted: list[str] = []
        kept: list[str] = []
        for key, row in sorted(existing.items()):
            if key in wanted:
                continue
            if not prune:
                kept.append(row[3])
                continue
            for table in ("access_policy_associations", "access_entries"):
                cur.execute(
                    f"DELETE FROM {table} WHERE cluster_id = ? AND principal_id = ?",
                    (cluster_id, row[2]),
                )
            deleted.append(row[3])
        return AccessImport(
            tuple(created), tuple(updated), tuple(deleted), tuple(unchanged), tuple(kept)
        )

    def _bump_access_version(self, cur: Cursor) -> None:
        cur.execute("UPDATE access_version SET version = version + 1 WHERE id = 1")

    def _entry_principal(self, cur: Cursor, principal_arn: str) -> tuple[str, str, str]:
        """The (unique id, ARN, arn key) of the existing user or role ``principal_arn`` names."""
        p, key = self._entry_arn(principal_arn)
        if p.kind == "user":
            row = self._user_row(cur, p.account_id, p.name)
            return row[0], arns.user_arn(self.partition, row[1], row[2], row[3]), key
        role = self._role_row(cur, p.account_id, p.name)
        return role[0], arns.role_arn(self.partition, role[1], role[2], role[3]), key

    def _entry_arn(self, principal_arn: str) -> tuple[arns.PrincipalArn, str]:
        try:
            p = arns.parse_principal(principal_arn, partitions=self._partitions)
        except MalformedArn as e:
            raise InputError("principalArn", e.message, hint=e.hint) from e
        if p.kind not in ("user", "role"):
            raise InputError(
                "principalArn",
                f"must be an IAM user or role ARN, got a {p.kind} ARN",
                hint="a role session matches the entry of its role: use"
                " arn:aws:iam::<account>:role/<name>"
                if p.kind == "assumed-role"
                else None,
            )
        return p, f"{p.account_id}:{p.kind}:{p.name.lower()}"

    def _entry_row(self, cur: Cursor, cluster_id: str, principal_arn: str) -> Row:
        access.cluster_id(cluster_id)
        _, key = self._entry_arn(principal_arn)
        rows = cur.execute(
            f"SELECT {_ENTRY_COLS} FROM access_entries WHERE cluster_id = ? AND arn_key = ?",
            (cluster_id, key),
        )
        if not rows:
            raise NoSuchEntity(
                f"cluster {cluster_id} has no access entry for {principal_arn}",
                hint=f"list them with `authbridge access list-entries --cluster-id {cluster_id}`",
            )
        return rows[0]

    # -- helpers -------------------------------------------------------------------
    def _insert(self, cur: Cursor, sql: str, params: Sequence[Any], conflict: str) -> None:
        """Insert; a unique-key race lost to another writer reads as 'already exists'."""
        try:
            cur.execute(sql, params)
        except Exception as e:
            if self._db.is_unique_violation(e):
                raise EntityAlreadyExists(conflict) from e
            raise


_SIGNING_KEYS_SQL = (
    "SELECT kid, alg, public_jwk, sealed_private_key, kek_id, created_at, activates_at,"
    " retired_at, revoked_at, revocation_reason FROM signing_keys"
    " ORDER BY activates_at, created_at, kid"
)


def _key_record(row: Row) -> KeyRecord:
    from authbridge.keys import KeyRecord  # not at import: it loads cryptography

    return KeyRecord(
        kid=row[0],
        alg=row[1],
        public_jwk=row[2],
        sealed_private_key=row[3],
        kek_id=row[4],
        created_at=int(row[5]),
        activates_at=int(row[6]),
        retired_at=None if row[7] is None else int(row[7]),
        revoked_at=None if row[8] is None else int(row[8]),
        revocation_reason=row[9],
    )


_ENTRY_COLS = (
    "cluster_id, principal_id, principal_arn, username, groups_json, entry_type, created_at,"
    " modified_at"
)


def _access_entry(r: Row) -> AccessEntry:
    return AccessEntry(
        cluster_id=r[0],
        principal_id=r[1],
        principal_arn=r[2],
        username=r[3],
        groups=tuple(json.loads(r[4])),
        type=access.entry_type(r[5]),
        created_at=_dt_req(r[6]),
        modified_at=_dt_req(r[7]),
    )


class _RollBack(Exception):
    """Raised inside a transaction to undo it (a dry run, or a change of nothing)."""

    def __init__(self, result: AccessImport) -> None:
        super().__init__("rolled back")
        self.result = result


_ASSOCIATIONS_SQL = (
    "SELECT a.cluster_id, a.principal_id, e.principal_arn, a.policy, a.scope,"
    " a.namespaces_json, a.associated_at, a.modified_at"
    " FROM access_policy_associations a JOIN access_entries e"
    " ON e.cluster_id = a.cluster_id AND e.principal_id = a.principal_id"
)
_ASSOCIATIONS_ORDER = " ORDER BY a.cluster_id, e.arn_key, a.policy"


def _association(r: Row) -> PolicyAssociation:
    return PolicyAssociation(
        cluster_id=r[0],
        principal_id=r[1],
        principal_arn=r[2],
        policy=r[3],
        scope="cluster" if r[4] == "cluster" else "namespace",
        namespaces=tuple(json.loads(r[5])),
        associated_at=_dt_req(r[6]),
        modified_at=_dt_req(r[7]),
    )


def _entry_groups(groups: Sequence[str]) -> list[str]:
    out: list[str] = []
    for g in groups:
        if not isinstance(g, str) or not g:
            raise InputError("kubernetesGroups", "a group name must be a non-empty string")
        if g not in out:
            out.append(g)
    if len(out) > access.MAX_GROUPS:
        raise InputError("kubernetesGroups", f"at most {access.MAX_GROUPS} groups")
    return out


def _taken(kind: str, name: str, existing: str, account_id: str) -> str:
    if existing != name:
        return (
            f"{kind} {name} already exists in account {account_id} as {existing}"
            " (IAM names are case-insensitive)"
        )
    return f"{kind} {name} already exists in account {account_id}"


def _tags_json(tags: dict[str, str]) -> str:
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))


def _check_alias(alias: str) -> None:
    if not re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])?", alias, re.ASCII):
        raise InputError(
            "AccountAlias", "must be 3 to 63 lowercase letters, digits or dashes", hint="e.g. prod"
        )


def _short(value: str) -> str:
    return value if len(value) <= 32 else value[:29] + "..."
