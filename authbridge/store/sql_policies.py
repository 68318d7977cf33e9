"""IAM policies over SQL: managed policies and versions, inline policies, attachments, tags.

Mixed into :class:`authbridge.store.sql.SqlStore`, so both backends share it and
the conformance suite (``tests/test_store_policies.py``) runs it on each. The
values and input rules are :mod:`authbridge.iam.managed`'s; documents are
checked by :func:`authbridge.iam.policy.parse_policy` before any statement
runs, and stored as the caller's JSON, compacted.

Rules, as AWS IAM has them:

* at most :data:`~authbridge.iam.managed.MAX_POLICY_VERSIONS` versions per
  managed policy (``LimitExceeded``); the default version cannot be deleted
  (``DeleteConflict``); a policy still attached cannot be deleted
  (``DeleteConflict``, naming who holds it); its versions go with it;
* at most :data:`~authbridge.iam.managed.MAX_ATTACHED_POLICIES` managed
  policies per principal (``LimitExceeded``); attaching twice changes nothing;
* a principal's inline policies together hold at most
  ``policy.MAX_CHARS[kind]`` characters, whitespace not counted (``LimitExceeded``);
* inline policies and attachments are bound to the principal's unique id;
  deleting the principal while it holds any is a ``DeleteConflict``
  (``--force`` removes them with it), so a re-created namesake starts empty;
* tags on users and roles: at most 50, keys unique case-insensitively (a tag
  whose key differs only in case replaces the old one), ``aws:`` reserved.

Every write is one transaction, and rows a limit or a conflict depends on are
locked first (the principal's row, the policy's row), so two writers cannot
both pass a check that only one of them may.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from authbridge import arn as arns
from authbridge.errors import (
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    LimitExceeded,
    MalformedArn,
    NoSuchEntity,
)
from authbridge.iam import credentials, managed, names, policy
from authbridge.iam.managed import (
    AttachedPolicy,
    InlinePolicy,
    ListScope,
    ManagedPolicy,
    PolicyArn,
    PolicyVersion,
    PrincipalKind,
    TaggableKind,
)

if TYPE_CHECKING:
    from authbridge.iam.model import Account
    from authbridge.iam.policy import PolicyKind
    from authbridge.store.sql import Cursor, Driver, Row

# A shipped AWS managed policy is attached as this prefix + its name.
AWS_REF_PREFIX = "aws:"

_POLICY_COLS = (
    "p.policy_id, p.account_id, p.name, p.path, p.description, p.default_version,"
    " p.created_at, p.updated_at,"
    " (SELECT COUNT(*) FROM iam_policy_attachments a WHERE a.policy_ref = p.policy_id)"
)
_TABLES: Mapping[PrincipalKind, tuple[str, str]] = {
    "user": ("iam_users", "user_id"),
    "group": ("iam_groups", "group_id"),
    "role": ("iam_roles", "role_id"),
}
_LIST_HINT: Mapping[PrincipalKind, str] = {
    "user": "list-user-policies --user-name",
    "group": "list-group-policies --group-name",
    "role": "list-role-policies --role-name",
}

# principal_policies: one row per policy a holder has (one row of NULLs for a holder
# with none), holders being the principal and, for a user, its groups. {holders} is
# a SELECT of (kind, id, name, path, sort key) rows.
_PRINCIPAL_POLICIES_SQL = (
    "WITH h (kind, id, name, path, ord) AS ({holders})"
    " SELECT h.kind, h.id, h.name, h.path, x.source, x.name, x.ref, x.path, x.document"
    " FROM h LEFT JOIN ("
    "  SELECT i.principal_id AS principal_id, 'inline' AS source, i.name AS name,"
    "   i.name_key AS name_key, CAST(NULL AS TEXT) AS ref, CAST(NULL AS TEXT) AS path,"
    "   i.document AS document"
    "  FROM iam_inline_policies i"
    "  UNION ALL"
    "  SELECT a.principal_id, 'attached', p.name, p.name_key, a.policy_ref, p.path,"
    "   v.document"
    "  FROM iam_policy_attachments a"
    "  LEFT JOIN iam_policies p ON p.policy_id = a.policy_ref"
    "  LEFT JOIN iam_policy_versions v"
    "   ON v.policy_id = p.policy_id AND v.version = p.default_version"
    " ) x ON x.principal_id = h.id"
    " ORDER BY h.ord, CASE x.source WHEN 'inline' THEN 0 ELSE 1 END,"
    " COALESCE(x.name_key, lower(x.ref))"
)
_USER_HOLDERS = (
    "SELECT 'user', u.user_id, u.name, u.path, '' FROM iam_users u"
    " WHERE u.account_id = ? AND u.name_key = ?"
    " UNION ALL"
    " SELECT 'group', g.group_id, g.name, g.path, g.name_key FROM iam_users u"
    " JOIN iam_group_members m ON m.user_id = u.user_id"
    " JOIN iam_groups g ON g.group_id = m.group_id"
    " WHERE u.account_id = ? AND u.name_key = ?"
)
_SINGLE_HOLDER = (
    "SELECT '{kind}', {id_col}, name, path, '' FROM {table} WHERE account_id = ? AND name_key = ?"
)


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


_WHITESPACE = str.maketrans("", "", " \t\r\n")


def _size(text: str) -> int:
    """A document's size as IAM (and parse_policy) counts it: whitespace is not counted."""
    return len(text.translate(_WHITESPACE))


def checked_document(
    document: str | Mapping[str, Any], kind: PolicyKind
) -> tuple[str, dict[str, Any]]:
    """The document as stored (compact JSON text) and as shown, once ``parse_policy`` passed it.

    Raises :class:`~authbridge.errors.MalformedPolicyDocument` naming the
    statement and field, before any statement runs.
    """
    policy.parse_policy(document, kind=kind)
    obj = json.loads(document) if isinstance(document, str) else json.loads(_compact(document))
    if not isinstance(obj, dict):  # parse_policy refuses these; kept for the type
        raise InputError("PolicyDocument", "must be a JSON object")
    return _compact(obj), obj


def _aws_policy_id(name: str) -> str:
    """A stable PolicyId for a shipped AWS managed policy: the same in every store."""
    digest = hashlib.sha256(b"authbridge aws managed policy\0" + name.encode()).digest()
    return credentials.POLICY_ID_PREFIX + base64.b32encode(digest).decode()[:17]


class SqlPolicies:
    """The policy half of the store protocol (:mod:`authbridge.store.base`), over SqlStore."""

    if TYPE_CHECKING:
        _db: Driver
        partition: str
        _partitions: frozenset[str] | set[str]

        def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]: ...
        def _account(self, cur: Cursor, account_id: str) -> Account: ...
        def _user_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...
        def _group_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...
        def _role_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...
        def _insert(self, cur: Cursor, sql: str, params: Sequence[Any], conflict: str) -> None: ...

    # -- managed policies ---------------------------------------------------------------
    def create_policy(
        self,
        account_id: str,
        name: str,
        document: str | Mapping[str, Any],
        *,
        path: str = "/",
        description: str = "",
    ) -> ManagedPolicy:
        managed.policy_name(name)
        names.path(path)
        managed.policy_description(description)
        text, _ = checked_document(document, "managed")
        now = _now()
        policy_id = credentials.new_policy_id()
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            taken = cur.execute(
                "SELECT name FROM iam_policies WHERE account_id = ? AND name_key = ?",
                (account_id, name.lower()),
            )
            if taken:
                raise EntityAlreadyExists(_policy_taken(name, taken[0][0], account_id))
            self._insert(
                cur,
                "INSERT INTO iam_policies (policy_id, account_id, name, name_key, path,"
                " description, default_version, next_version, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 1, 2, ?, ?)",
                (policy_id, account_id, name, name.lower(), path, description, now, now),
                _policy_taken(name, name, account_id),
            )
            cur.execute(
                "INSERT INTO iam_policy_versions (policy_id, version, document, created_at)"
                " VALUES (?, 1, ?, ?)",
                (policy_id, text, now),
            )
        return self._managed((policy_id, account_id, name, path, description, 1, now, now, 0))

    def get_policy(self, account_id: str, policy_arn: str) -> ManagedPolicy:
        with self._tx() as cur:
            ref = self._policy_arn(policy_arn)
            if ref.aws_managed:
                return self._aws_managed(cur, account_id, ref)
            return self._managed(self._policy_row(cur, account_id, ref))

    def list_policies(
        self,
        account_id: str,
        *,
        scope: str = "All",
        only_attached: bool = False,
        path_prefix: str = "/",
    ) -> list[ManagedPolicy]:
        """AWS managed (``AWS``), the account's own (``Local``) or both, sorted by name."""
        chosen: ListScope = managed.list_scope(scope)
        names.path(path_prefix)
        found: list[ManagedPolicy] = []
        with self._tx() as cur:
            account = self._account(cur, account_id)
            if chosen in ("All", "AWS") and path_prefix == "/":
                counts = self._aws_attachment_counts(cur, account_id)
                found.extend(
                    self._aws_value(name, account, counts.get(name, 0))
                    for name in policy.AWS_MANAGED_POLICIES
                )
            if chosen in ("All", "Local"):
                rows = cur.execute(
                    f"SELECT {_POLICY_COLS} FROM iam_policies p WHERE p.account_id = ?"
                    " AND substr(p.path, 1, ?) = ?",
                    (account_id, len(path_prefix), path_prefix),
                )
                found.extend(self._managed(r) for r in rows)
        if only_attached:
            found = [p for p in found if p.attachment_count > 0]
        return sorted(found, key=lambda p: (p.name.lower(), p.arn))

    def delete_policy(self, account_id: str, policy_arn: str) -> None:
        ref = self._policy_arn(policy_arn)
        _refuse_aws_change(ref, "deleted")
        with self._tx(write=True) as cur:
            row = self._policy_row(cur, account_id, ref, lock=True)
            holders = self._holders_of(cur, row[0])
            if holders:
                raise DeleteConflict(
                    f"policy {row[2]} is still attached to {', '.join(holders)}",
                    hint="detach it first with `authbridge iam detach-user-policy`,"
                    " `detach-group-policy` or `detach-role-policy`",
                )
            cur.execute("DELETE FROM iam_policy_versions WHERE policy_id = ?", (row[0],))
            cur.execute("DELETE FROM iam_policies WHERE policy_id = ?", (row[0],))

    # -- versions ------------------------------------------------------------------------
    def create_policy_version(
        self,
        account_id: str,
        policy_arn: str,
        document: str | Mapping[str, Any],
        *,
        set_as_default: bool = False,
    ) -> PolicyVersion:
        ref = self._policy_arn(policy_arn)
        _refuse_aws_change(ref, "given new versions")
        text, obj = checked_document(document, "managed")
        now = _now()
        with self._tx(write=True) as cur:
            row = self._policy_row(cur, account_id, ref, lock=True)
            policy_id, arn = row[0], self._policy_arn_of(row)
            count = int(
                cur.execute(
                    "SELECT COUNT(*) FROM iam_policy_versions WHERE policy_id = ?", (policy_id,)
                )[0][0]
            )
            if count >= managed.MAX_POLICY_VERSIONS:
                raise LimitExceeded(
                    f"policy {row[2]} already has {managed.MAX_POLICY_VERSIONS} versions,"
                    " the most IAM allows",
                    hint="delete one with `authbridge iam delete-policy-version` first",
                )
            number = int(
                cur.execute(
                    "SELECT next_version FROM iam_policies WHERE policy_id = ?", (policy_id,)
                )[0][0]
            )
            cur.execute(
                "INSERT INTO iam_policy_versions (policy_id, version, document, created_at)"
                " VALUES (?, ?, ?, ?)",
                (policy_id, number, text, now),
            )
            cur.execute(
                "UPDATE iam_policies SET next_version = ?, updated_at = ?"
                + (", default_version = ?" if set_as_default else "")
                + " WHERE policy_id = ?",
                (number + 1, now, *((number,) if set_as_default else ()), policy_id),
            )
        return PolicyVersion(arn, number, set_as_default, _dt(now), obj)

    def get_policy_version(
        self, account_id: str, policy_arn: str, version_id: str
    ) -> PolicyVersion:
        number = managed.version_id(version_id)
        versions = [v for v in self._versions(account_id, policy_arn) if v.version == number]
        if not versions:
            raise NoSuchEntity(
                f"policy {policy_arn} has no version {version_id}",
                hint="list them with `authbridge iam list-policy-versions`",
            )
        return versions[0]

    def list_policy_versions(self, account_id: str, policy_arn: str) -> list[PolicyVersion]:
        """Every version, newest first (as AWS lists them)."""
        return self._versions(account_id, policy_arn)

    def set_default_policy_version(self, account_id: str, policy_arn: str, version_id: str) -> None:
        ref = self._policy_arn(policy_arn)
        _refuse_aws_change(ref, "changed")
        number = managed.version_id(version_id)
        with self._tx(write=True) as cur:
            row = self._policy_row(cur, account_id, ref, lock=True)
            self._version_exists(cur, row, number, version_id)
            cur.execute(
                "UPDATE iam_policies SET default_version = ? WHERE policy_id = ?",
                (number, row[0]),
            )

    def delete_policy_version(self, account_id: str, policy_arn: str, version_id: str) -> None:
        ref = self._policy_arn(policy_arn)
        _refuse_aws_change(ref, "changed")
        number = managed.version_id(version_id)
        with self._tx(write=True) as cur:
            row = self._policy_row(cur, account_id, ref, lock=True)
            self._version_exists(cur, row, number, version_id)
            if int(row[5]) == number:
                raise DeleteConflict(
                    f"{version_id} is the default version of policy {row[2]}",
                    hint="make another version the default with"
                    " `authbridge iam set-default-policy-version` first,"
                    " or delete the policy",
                )
            cur.execute(
                "DELETE FROM iam_policy_versions WHERE policy_id = ? AND version = ?",
                (row[0], number),
            )

    # -- inline policies -----------------------------------------------------------------
    def put_inline_policy(
        self,
        account_id: str,
        kind: str,
        principal_name: str,
        policy_name: str,
        document: str | Mapping[str, Any],
    ) -> InlinePolicy:
        """Create or replace a user's, group's or role's inline policy (PutUserPolicy …)."""
        holder = managed.principal_kind(kind)
        managed.policy_name(policy_name)
        text, obj = checked_document(document, holder)
        now = _now()
        with self._tx(write=True) as cur:
            pid, name, _ = self._principal(cur, account_id, holder, principal_name, lock=True)
            others = cur.execute(
                "SELECT document FROM iam_inline_policies WHERE principal_id = ? AND name_key <> ?",
                (pid, policy_name.lower()),
            )
            total = _size(text) + sum(_size(r[0]) for r in others)
            limit = policy.MAX_CHARS[holder]
            if total > limit:
                raise LimitExceeded(
                    f"the inline policies of {holder} {name} would hold {total} characters;"
                    f" IAM allows {limit} in all (whitespace not counted)",
                    hint="attach a managed policy instead, or shorten or delete"
                    " another inline policy",
                )
            cur.execute(
                "INSERT INTO iam_inline_policies (principal_id, principal_kind, name, name_key,"
                " document, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (principal_id, name_key) DO UPDATE SET name = excluded.name,"
                " document = excluded.document, updated_at = excluded.updated_at",
                (pid, holder, policy_name, policy_name.lower(), text, now, now),
            )
        return InlinePolicy(holder, pid, name, policy_name, obj)

    def get_inline_policy(
        self, account_id: str, kind: str, principal_name: str, policy_name: str
    ) -> InlinePolicy:
        holder = managed.principal_kind(kind)
        managed.policy_name(policy_name)
        with self._tx() as cur:
            pid, name, _ = self._principal(cur, account_id, holder, principal_name)
            rows = cur.execute(
                "SELECT name, document FROM iam_inline_policies"
                " WHERE principal_id = ? AND name_key = ?",
                (pid, policy_name.lower()),
            )
        if not rows:
            raise _no_inline(holder, name, policy_name)
        return InlinePolicy(holder, pid, name, rows[0][0], json.loads(rows[0][1]))

    def list_inline_policies(self, account_id: str, kind: str, principal_name: str) -> list[str]:
        """The names of a principal's inline policies, sorted case-insensitively."""
        holder = managed.principal_kind(kind)
        with self._tx() as cur:
            pid, _, _ = self._principal(cur, account_id, holder, principal_name)
            rows = cur.execute(
                "SELECT name FROM iam_inline_policies WHERE principal_id = ? ORDER BY name_key",
                (pid,),
            )
        return [r[0] for r in rows]

    def delete_inline_policy(
        self, account_id: str, kind: str, principal_name: str, policy_name: str
    ) -> None:
        holder = managed.principal_kind(kind)
        managed.policy_name(policy_name)
        with self._tx(write=True) as cur:
            pid, name, _ = self._principal(cur, account_id, holder, principal_name, lock=True)
            cur.execute(
                "DELETE FROM iam_inline_policies WHERE principal_id = ? AND name_key = ?",
                (pid, policy_name.lower()),
            )
            if cur.rowcount != 1:
                raise _no_inline(holder, name, policy_name)

    # -- attachments ---------------------------------------------------------------------
    def attach_policy(
        self, account_id: str, kind: str, principal_name: str, policy_arn: str
    ) -> None:
        """Attach a managed policy (the account's or AWS's) to a principal; again is a no-op."""
        holder = managed.principal_kind(kind)
        ref = self._policy_arn(policy_arn)
        now = _now()
        with self._tx(write=True) as cur:
            if ref.aws_managed:
                policy_ref = AWS_REF_PREFIX + self._aws_name(ref)
            else:
                # Locked: a delete-policy racing this attach waits, then sees it.
                policy_ref = self._policy_row(cur, account_id, ref, lock=True)[0]
            pid, name, _ = self._principal(cur, account_id, holder, principal_name, lock=True)
            held = cur.execute(
                "SELECT policy_ref FROM iam_policy_attachments WHERE principal_id = ?", (pid,)
            )
            if any(r[0] == policy_ref for r in held):
                return
            if len(held) >= managed.MAX_ATTACHED_POLICIES:
                raise LimitExceeded(
                    f"{holder} {name} already has {managed.MAX_ATTACHED_POLICIES} managed"
                    " policies attached, the most IAM allows",
                    hint=f"detach one with `authbridge iam detach-{holder}-policy` first,"
                    " or merge policies",
                )
            cur.execute(
                "INSERT INTO iam_policy_attachments (principal_id, principal_kind, account_id,"
                " policy_ref, attached_at) VALUES (?, ?, ?, ?, ?)",
                (pid, holder, account_id, policy_ref, now),
            )

    def detach_policy(
        self, account_id: str, kind: str, principal_name: str, policy_arn: str
    ) -> None:
        holder = managed.principal_kind(kind)
        ref = self._policy_arn(policy_arn)
        with self._tx(write=True) as cur:
            if ref.aws_managed:
                policy_ref = AWS_REF_PREFIX + self._aws_name(ref)
            else:
                policy_ref = self._policy_row(cur, account_id, ref, lock=True)[0]
            pid, name, _ = self._principal(cur, account_id, holder, principal_name, lock=True)
            cur.execute(
                "DELETE FROM iam_policy_attachments WHERE principal_id = ? AND policy_ref = ?",
                (pid, policy_ref),
            )
            if cur.rowcount != 1:
                raise NoSuchEntity(
                    f"policy {policy_arn} is not attached to {holder} {name}",
                    hint=f"see what is with `authbridge iam list-attached-{holder}-policies`",
                )

    def list_attached_policies(
        self, account_id: str, kind: str, principal_name: str, *, path_prefix: str = "/"
    ) -> list[AttachedPolicy]:
        """The managed policies attached to a principal, sorted by name."""
        holder = managed.principal_kind(kind)
        names.path(path_prefix)
        with self._tx() as cur:
            pid, _, _ = self._principal(cur, account_id, holder, principal_name)
            rows = cur.execute(
                "SELECT a.policy_ref, p.account_id, p.name, p.path"
                " FROM iam_policy_attachments a"
                " LEFT JOIN iam_policies p ON p.policy_id = a.policy_ref"
                " WHERE a.principal_id = ?",
                (pid,),
            )
        found: list[AttachedPolicy] = []
        for ref, p_account, p_name, p_path in rows:
            if p_name is None:
                name = ref.removeprefix(AWS_REF_PREFIX)
                if path_prefix == "/":
                    found.append(AttachedPolicy(name, policy.aws_managed_arn(self.partition, name)))
            elif p_path.startswith(path_prefix):
                arn = managed.policy_arn(self.partition, p_account, p_name, p_path)
                found.append(AttachedPolicy(p_name, arn))
        return sorted(found, key=lambda a: (a.name.lower(), a.arn))

    # -- tags ----------------------------------------------------------------------------
    def tag_principal(
        self, account_id: str, kind: str, principal_name: str, tags: Mapping[str, str]
    ) -> dict[str, str]:
        """Add or replace tags of a user or role; return all its tags."""
        holder = managed.taggable_kind(kind)
        given = names.tags(dict(tags))
        if not given:
            raise InputError("Tags", "name at least one tag", hint="pass --tags Key=K,Value=V")
        with self._tx(write=True) as cur:
            pid, current = self._tags_row(cur, account_id, holder, principal_name)
            lowered = {k.lower() for k in given}
            merged = {k: v for k, v in current.items() if k.lower() not in lowered}
            merged.update(given)
            if len(merged) > names.MAX_TAGS:
                raise LimitExceeded(
                    f"{holder} {principal_name} would have {len(merged)} tags;"
                    f" IAM allows {names.MAX_TAGS}",
                    hint=f"remove some with `authbridge iam untag-{holder}` first",
                )
            self._write_tags(cur, holder, pid, merged)
        return dict(sorted(merged.items()))

    def untag_principal(
        self, account_id: str, kind: str, principal_name: str, keys: Sequence[str]
    ) -> dict[str, str]:
        """Remove tags by key (case-insensitively; absent keys are ignored, as IAM does)."""
        holder = managed.taggable_kind(kind)
        lowered = {k.lower() for k in managed.tag_keys(keys)}
        with self._tx(write=True) as cur:
            pid, current = self._tags_row(cur, account_id, holder, principal_name)
            kept = {k: v for k, v in current.items() if k.lower() not in lowered}
            self._write_tags(cur, holder, pid, kept)
        return dict(sorted(kept.items()))

    def list_principal_tags(
        self, account_id: str, kind: str, principal_name: str
    ) -> dict[str, str]:
        holder = managed.taggable_kind(kind)
        with self._tx() as cur:
            _, current = self._tags_row(cur, account_id, holder, principal_name, lock=False)
        return dict(sorted(current.items()))

    def principal_tags(self, account_id: str, principal_arn: str) -> dict[str, str]:
        """The tags ``aws:PrincipalTag/…`` reads: a user's, or a role's (for its sessions too).

        A group ARN has no tags (``{}``); anything else is refused.
        """
        kind, name = self._policy_source(account_id, principal_arn)
        if kind == "group":
            with self._tx() as cur:
                self._principal(cur, account_id, "group", name)
            return {}
        return self.list_principal_tags(account_id, kind, name)

    # -- evaluation input --------------------------------------------------------------------
    def principal_policies(self, account_id: str, principal_arn: str) -> list[policy.SourcePolicy]:
        """Every policy that applies to a principal, read in one statement (one round trip).

        A user: its inline and attached policies and those of each of its groups;
        a role, or a role session (``…:assumed-role/Role/session``): the role's;
        a group: its own. Inline policies come first, then attached ones, each by
        name; the user's before its groups' (by group name). ``policy_id`` is
        ``<kind>/<holder>/<name>`` for an inline policy (``group/devs/ReadOnly``)
        and the ARN of a managed one; ``policy_type`` is ``user``, ``group`` or
        ``role`` for inline policies, ``managed`` or ``aws-managed`` for attached.
        """
        kind, name = self._policy_source(account_id, principal_arn)
        wanted_path = self._source_path(principal_arn)
        if kind == "user":
            holders = _USER_HOLDERS
            params: tuple[str, ...] = (account_id, name.lower()) * 2
        else:
            table, id_col = _TABLES[kind]
            holders = _SINGLE_HOLDER.format(kind=kind, id_col=id_col, table=table)
            params = (account_id, name.lower())
        rows = self._db.query(_PRINCIPAL_POLICIES_SQL.format(holders=holders), params)
        if not rows or rows[0][0] != kind:
            raise _no_principal(kind, name, account_id)
        if wanted_path is not None and rows[0][3] != wanted_path:
            raise NoSuchEntity(
                f"{kind} {rows[0][2]} has path {rows[0][3]}, not {wanted_path}",
                hint=f"use the ARN `authbridge iam get-{kind}` shows",
            )
        out: list[policy.SourcePolicy] = []
        for h_kind, _, h_name, _, source, p_name, ref, p_path, document in rows:
            if source is None:
                continue
            if source == "inline":
                doc = _parsed(document, h_kind)
                out.append(policy.SourcePolicy(f"{h_kind}/{h_name}/{p_name}", h_kind, doc))
            elif ref.startswith(AWS_REF_PREFIX):
                aws_name = ref.removeprefix(AWS_REF_PREFIX)
                arn = policy.aws_managed_arn(self.partition, aws_name)
                out.append(
                    policy.SourcePolicy(arn, "aws-managed", policy.AWS_MANAGED_POLICIES[aws_name])
                )
            else:
                doc = _parsed(document, "managed")
                arn = managed.policy_arn(self.partition, account_id, p_name, p_path)
                out.append(policy.SourcePolicy(arn, "managed", doc))
        return out

    # -- used by SqlStore's deletes ---------------------------------------------------------
    def _principal_policy_holdings(self, cur: Cursor, principal_id: str) -> list[str]:
        """What a principal still holds, for a DeleteConflict: its inline and attached policies."""
        inline = cur.execute(
            "SELECT name FROM iam_inline_policies WHERE principal_id = ? ORDER BY name_key",
            (principal_id,),
        )
        attached = cur.execute(
            "SELECT a.policy_ref, p.name FROM iam_policy_attachments a"
            " LEFT JOIN iam_policies p ON p.policy_id = a.policy_ref"
            " WHERE a.principal_id = ?",
            (principal_id,),
        )
        held: list[str] = []
        if inline:
            held.append("inline policies " + ", ".join(r[0] for r in inline))
        if attached:
            shown = sorted(r[1] or r[0].removeprefix(AWS_REF_PREFIX) for r in attached)
            held.append("attached policies " + ", ".join(shown))
        return held

    def _drop_principal_policies(self, cur: Cursor, principal_id: str) -> None:
        cur.execute("DELETE FROM iam_inline_policies WHERE principal_id = ?", (principal_id,))
        cur.execute("DELETE FROM iam_policy_attachments WHERE principal_id = ?", (principal_id,))

    # -- helpers -----------------------------------------------------------------------------
    def _policy_arn(self, policy_arn: str) -> PolicyArn:
        return managed.parse_policy_arn(policy_arn, partition=self.partition)

    def _policy_arn_of(self, row: Row) -> str:
        return managed.policy_arn(self.partition, row[1], row[2], row[3])

    def _policy_row(
        self, cur: Cursor, account_id: str, ref: PolicyArn, *, lock: bool = False
    ) -> Row:
        """The account's policy the ARN names (policy_id, account, name, path, …, count)."""
        self._account(cur, account_id)
        shown = managed.policy_arn(ref.partition, ref.account_id, ref.name, ref.path)
        if ref.account_id != account_id:
            raise NoSuchEntity(
                f"policy {shown} is not in account {account_id}",
                hint="pass --account-id to act on another account",
            )
        # Locked on its own: FOR UPDATE may not stand beside the count subquery.
        if lock:
            cur.execute(
                "SELECT policy_id FROM iam_policies WHERE account_id = ? AND name_key = ?"
                + self._db.lock_suffix,
                (account_id, ref.name.lower()),
            )
        rows = cur.execute(
            f"SELECT {_POLICY_COLS} FROM iam_policies p WHERE p.account_id = ? AND p.name_key = ?",
            (account_id, ref.name.lower()),
        )
        if not rows or rows[0][3] != ref.path or rows[0][2] != ref.name:
            raise NoSuchEntity(
                f"policy {shown} does not exist",
                hint="list policies with `authbridge iam list-policies --scope Local`",
            )
        return rows[0]

    def _managed(self, r: Row) -> ManagedPolicy:
        policy_id, account_id, name, path, description, default, created, updated, count = r
        return ManagedPolicy(
            policy_id=policy_id,
            account_id=account_id,
            name=name,
            path=path,
            arn=managed.policy_arn(self.partition, account_id, name, path),
            description=description,
            default_version=int(default),
            attachment_count=int(count),
            created_at=_dt(created),
            updated_at=_dt(updated),
        )

    def _aws_name(self, ref: PolicyArn) -> str:
        if ref.path != "/" or ref.name not in policy.AWS_MANAGED_POLICIES:
            raise NoSuchEntity(
                f"there is no AWS managed policy {ref.path.removeprefix('/')}{ref.name}",
                hint="authbridge ships " + ", ".join(sorted(policy.AWS_MANAGED_POLICIES)),
            )
        return ref.name

    def _aws_attachment_counts(self, cur: Cursor, account_id: str) -> dict[str, int]:
        rows = cur.execute(
            "SELECT policy_ref, COUNT(*) FROM iam_policy_attachments"
            " WHERE account_id = ? AND substr(policy_ref, 1, ?) = ? GROUP BY policy_ref",
            (account_id, len(AWS_REF_PREFIX), AWS_REF_PREFIX),
        )
        return {r[0].removeprefix(AWS_REF_PREFIX): int(r[1]) for r in rows}

    def _aws_managed(self, cur: Cursor, account_id: str, ref: PolicyArn) -> ManagedPolicy:
        name = self._aws_name(ref)
        account = self._account(cur, account_id)
        return self._aws_value(
            name, account, self._aws_attachment_counts(cur, account_id).get(name, 0)
        )

    def _aws_value(self, name: str, account: Account, count: int) -> ManagedPolicy:
        """A shipped policy as this account sees it: one version, dated as the account."""
        return ManagedPolicy(
            policy_id=_aws_policy_id(name),
            account_id=managed.AWS_ACCOUNT,
            name=name,
            path="/",
            arn=policy.aws_managed_arn(self.partition, name),
            description="",
            default_version=1,
            attachment_count=count,
            created_at=account.created_at,
            updated_at=account.created_at,
        )

    def _versions(self, account_id: str, policy_arn: str) -> list[PolicyVersion]:
        ref = self._policy_arn(policy_arn)
        with self._tx() as cur:
            if ref.aws_managed:
                aws = self._aws_managed(cur, account_id, ref)
                doc = policy.AWS_MANAGED_POLICIES[aws.name].to_json()
                return [PolicyVersion(aws.arn, 1, True, aws.created_at, doc)]
            row = self._policy_row(cur, account_id, ref)
            rows = cur.execute(
                "SELECT version, document, created_at FROM iam_policy_versions"
                " WHERE policy_id = ? ORDER BY version DESC",
                (row[0],),
            )
        arn = self._policy_arn_of(row)
        return [
            PolicyVersion(arn, int(v), int(v) == int(row[5]), _dt(created), json.loads(doc))
            for v, doc, created in rows
        ]

    def _version_exists(self, cur: Cursor, row: Row, number: int, version_id: str) -> None:
        if not cur.execute(
            "SELECT 1 FROM iam_policy_versions WHERE policy_id = ? AND version = ?",
            (row[0], number),
        ):
            raise NoSuchEntity(
                f"policy {row[2]} has no version {version_id}",
                hint="list them with `authbridge iam list-policy-versions`",
            )

    def _holders_of(self, cur: Cursor, policy_ref: str) -> list[str]:
        rows = cur.execute(
            "SELECT a.principal_kind, COALESCE(u.name, g.name, r.name, a.principal_id)"
            " FROM iam_policy_attachments a"
            " LEFT JOIN iam_users u ON a.principal_kind = 'user' AND u.user_id = a.principal_id"
            " LEFT JOIN iam_groups g ON a.principal_kind = 'group'"
            " AND g.group_id = a.principal_id"
            " LEFT JOIN iam_roles r ON a.principal_kind = 'role' AND r.role_id = a.principal_id"
            " WHERE a.policy_ref = ?",
            (policy_ref,),
        )
        order = {k: i for i, k in enumerate(managed.PRINCIPAL_KINDS)}
        return [f"{k} {n}" for k, n in sorted(rows, key=lambda r: (order[r[0]], r[1].lower()))]

    def _principal(
        self, cur: Cursor, account_id: str, kind: PrincipalKind, name: str, *, lock: bool = False
    ) -> tuple[str, str, str]:
        """(unique id, name, path) of the account's user, group or role."""
        if kind == "user":
            row = self._user_row(cur, account_id, name, lock=lock)
        elif kind == "group":
            row = self._group_row(cur, account_id, name, lock=lock)
        else:
            row = self._role_row(cur, account_id, name, lock=lock)
        return row[0], row[2], row[3]

    def _tags_row(
        self,
        cur: Cursor,
        account_id: str,
        kind: TaggableKind,
        name: str,
        *,
        lock: bool = True,
    ) -> tuple[str, dict[str, str]]:
        pid, _, _ = self._principal(cur, account_id, kind, name, lock=lock)
        table, id_col = _TABLES[kind]
        rows = cur.execute(f"SELECT tags FROM {table} WHERE {id_col} = ?", (pid,))
        return pid, dict(json.loads(rows[0][0]))

    @staticmethod
    def _write_tags(cur: Cursor, kind: TaggableKind, pid: str, tags: Mapping[str, str]) -> None:
        table, id_col = _TABLES[kind]
        cur.execute(
            f"UPDATE {table} SET tags = ? WHERE {id_col} = ?",
            (json.dumps(dict(tags), sort_keys=True, separators=(",", ":")), pid),
        )

    def _policy_source(self, account_id: str, principal_arn: str) -> tuple[PrincipalKind, str]:
        """(kind, name) of the user, group or role a PolicySourceArn names (a session: its role)."""
        try:
            p = arns.parse_principal(principal_arn, partitions=self._partitions)
        except MalformedArn as e:
            raise InputError("PolicySourceArn", e.message, hint=e.hint) from e
        if p.partition != self.partition:
            raise InputError(
                "PolicySourceArn",
                f"is in partition {p.partition}, this store uses {self.partition}",
            )
        if p.account_id != account_id:
            raise NoSuchEntity(
                f"{principal_arn} is not in account {account_id}",
                hint="pass --account-id to act on another account",
            )
        if p.kind == "assumed-role":
            return "role", p.name
        if p.kind in ("user", "group", "role"):
            return managed.principal_kind(p.kind), p.name
        raise InputError(
            "PolicySourceArn",
            f"must be a user, group, role or role session ARN, got a {p.kind} ARN",
        )

    def _source_path(self, principal_arn: str) -> str | None:
        """The path the ARN gives (None for a role session, whose ARN carries none)."""
        p = arns.parse_principal(principal_arn, partitions=self._partitions)
        return None if p.kind == "assumed-role" else p.path


def _now() -> int:
    return int(time.time())


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _refuse_aws_change(ref: PolicyArn, what: str) -> None:
    if ref.aws_managed:
        raise InputError(
            "PolicyArn",
            f"AWS managed policies cannot be {what}",
            hint="create a policy of your own with `authbridge iam create-policy`",
        )


def _policy_taken(name: str, existing: str, account_id: str) -> str:
    if existing != name:
        return (
            f"policy {name} already exists in account {account_id} as {existing}"
            " (IAM names are case-insensitive)"
        )
    return f"policy {name} already exists in account {account_id}"


def _no_inline(kind: PrincipalKind, name: str, policy_name: str) -> NoSuchEntity:
    return NoSuchEntity(
        f"{kind} {name} has no inline policy named {policy_name}",
        hint=f"list them with `authbridge iam {_LIST_HINT[kind]} {name}`",
    )


def _no_principal(kind: PrincipalKind, name: str, account_id: str) -> NoSuchEntity:
    return NoSuchEntity(
        f"{kind} {name} does not exist in account {account_id}",
        hint=f"list them with `authbridge iam list-{kind}s`",
    )


@functools.lru_cache(maxsize=512)
def _parsed(document: str, kind: policy.PolicyKind) -> policy.PolicyDocument:
    """A stored document, parsed once per process (the admin API reads the caller's on
    every call). The text is the key, so an edit is a new entry; the values are
    immutable, and each keeps its own per-action statement cache warm."""
    return policy.parse_policy(document, kind=kind)
