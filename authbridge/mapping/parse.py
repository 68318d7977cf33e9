"""Reading and validating a mapping file (``rbac/mapping.yaml``): every problem at once.

The file (documented for users in docs/mapping.md) is a YAML mapping with these keys,
all optional, and no others:

``clusterID``
    a cluster id (1-100 letters, digits, ``.``, ``_``, ``-``); when set, the
    mapping is meant for that cluster only (the webhook checks it).
``mapRoles`` / ``mapUsers``
    lists of ``{rolearn|userarn, username, groups, allowReservedPrefixes}``.
    ``rolearn`` must be an IAM role ARN (``arn:aws:iam::<acct>:role/<path>Name``,
    never a session's ``assumed-role`` ARN); ``userarn`` an IAM user ARN.
    ``username`` is required.
``mapGroups``
    a list of ``{grouparn, groups, username, allowReservedPrefixes}``: the IAM
    group's members get ``groups``; ``username`` is used only for members that
    no ``mapUsers`` entry names.
``mapAccounts``
    account ids whose principals are let in with their canonical ARN as
    username and no groups. Each is a string of exactly 12 digits; an
    integer is accepted when it has exactly 12 digits (quote ids that start
    with 0, since YAML drops leading zeros or reads them as octal).
``bindings``
    ``{group | user, clusterRole, namespaces, allowReservedPrefixes}``: exactly
    one subject; ``namespaces`` (omit it for a ClusterRoleBinding) lists
    namespace names or patterns with ``*`` (DNS-1123 label characters plus ``*``).
``serviceAccounts``
    ``{rolearn, namespace, name, clusterRole, namespaces}``: an IAM role's
    in-cluster twin; ``namespace`` a DNS-1123 label, ``name`` a DNS-1123 subdomain.

Rules checked (each problem names file, entry and field, e.g.
``rbac/mapping.yaml: mapRoles[2].username: uses the reserved prefix "system:";
set allowReservedPrefixes: true on this entry if you mean it``):

* keys are case-sensitive camelCase as above; an unknown key is a problem,
  with "did you mean" when one is close (``roleARN`` → ``rolearn``).
  ``authbridge mapping import-aws-auth`` converts EKS spellings;
* types: strings where strings are meant (``username: 123`` is refused, not
  turned into ``"123"``), lists where lists are meant, booleans for flags.
  An empty section (``mapRoles:`` with nothing after it) is an empty list.
  Dates, timestamps, numbers with a point and over-long integers are never
  built (see :mod:`~authbridge.mapping.yamlsafe`): they are refused with the
  text and line written (``got a date (2001-02-30, line 3)``);
* ARNs parse with :func:`authbridge.arn.parse_principal` and are of the kind
  the section needs; within a section no two entries may name the same
  principal: ARNs compare case-insensitively, and role ARNs also with their
  path removed (a ``rolearn`` matches its role whatever the path, so the
  second entry could never be used);
* templates (see :mod:`authbridge.mapping.templates`): known variables only,
  and only where they can have a value; no stray ``{{`` / ``}}``;
* usernames and groups: non-empty, printable, at most 253 characters; the
  text before the first template may not start with a reserved prefix unless
  the entry says ``allowReservedPrefixes: true`` (the rendered result is
  checked again when a principal is mapped);
* bindings and service accounts: required keys, Kubernetes name rules,
  ``namespaces`` never an empty list (which would silently turn a namespaced
  binding into a cluster-wide one).

A valid mapping can still carry *warnings* (``Mapping.warnings``, from
:mod:`authbridge.mapping.collisions`): a template that can render a name
another entry renders, or session-name text not fenced by a fixed prefix.

The YAML itself is read by :mod:`authbridge.mapping.yamlsafe`: at most 1 MiB,
UTF-8, no anchors/aliases, no duplicate keys, nesting capped. An empty file
is refused (a half-written file must never be taken for "no rules"); ``{}``
is a valid mapping that refuses everyone.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final, TypeVar

from authbridge import arn
from authbridge.errors import MalformedArn
from authbridge.mapping import collisions, templates, yamlsafe
from authbridge.mapping.model import (
    Binding,
    GroupRule,
    Mapping,
    MappingError,
    RoleRule,
    ServiceAccountRule,
    UserRule,
)

__all__ = [
    "BINDING_KEYS",
    "GROUP_KEYS",
    "ROLE_KEYS",
    "SERVICE_ACCOUNT_KEYS",
    "TOP_KEYS",
    "USER_KEYS",
    "article",
    "load_mapping",
    "parse_mapping",
    "read_capped",
]

TOP_KEYS: Final = (
    "clusterID",
    "mapRoles",
    "mapUsers",
    "mapGroups",
    "mapAccounts",
    "bindings",
    "serviceAccounts",
)
ROLE_KEYS: Final = ("rolearn", "username", "groups", "allowReservedPrefixes")
USER_KEYS: Final = ("userarn", "username", "groups", "allowReservedPrefixes")
GROUP_KEYS: Final = ("grouparn", "username", "groups", "allowReservedPrefixes")
BINDING_KEYS: Final = ("group", "user", "clusterRole", "namespaces", "allowReservedPrefixes")
SERVICE_ACCOUNT_KEYS: Final = ("rolearn", "namespace", "name", "clusterRole", "namespaces")

_CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)  # as authbridge.settings
_ACCOUNT_ID = re.compile(r"[0-9]{12}", re.ASCII)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", re.ASCII)
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)
_NAMESPACE_PATTERN = re.compile(r"[a-z0-9*](?:[-a-z0-9*]{0,61}[a-z0-9*])?", re.ASCII)
_RESERVED_HINT: Final = "set allowReservedPrefixes: true on this entry if you mean it"

T = TypeVar("T")


def read_capped(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of ``path`` (at most 1 MiB, else MappingError) and its stat, from one open."""
    with path.open("rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(yamlsafe.MAX_BYTES + 1)
    if len(data) > yamlsafe.MAX_BYTES:
        size = max(st.st_size, len(data))
        raise MappingError(
            [f"{path}: is {size} bytes or more; the limit is {yamlsafe.MAX_BYTES} (1 MiB)"]
        )
    return data, st


def load_mapping(path: Path, *, partitions: Collection[str] = arn.KNOWN_PARTITIONS) -> Mapping:
    """Read ``path`` (size-capped) and :func:`parse_mapping` it. OSError passes through."""
    data, _ = read_capped(path)
    return parse_mapping(data, str(path), partitions=partitions)


def parse_mapping(
    text: str | bytes, source: str, *, partitions: Collection[str] = arn.KNOWN_PARTITIONS
) -> Mapping:
    """The validated mapping in ``text``; MappingError lists every problem, each naming ``source``.

    ``digest`` is the sha256 of the bytes given (of the UTF-8 encoding for text).
    ``warnings`` lists what is valid but doubtful (:mod:`authbridge.mapping.collisions`:
    templates that can render another entry's name, caller-chosen text not fenced
    by a fixed prefix).
    """
    doc = yamlsafe.load(yamlsafe.decode(text, source), source)
    checker = _Checker(source, partitions)
    mapping = checker.mapping(doc, yamlsafe.digest(text))
    if checker.problems:
        raise MappingError(checker.problems)
    return dataclasses.replace(mapping, warnings=collisions.warnings(mapping))


# -- helpers -----------------------------------------------------------------------------


def article(word: str) -> str:
    """``word`` with "a" or "an" in front ("an assumed-role", "a user")."""
    return ("an " if word[:1] in "aeio" else "a ") + word


def _kind(value: Any) -> str:
    """What a YAML value is, for messages ("an integer (123)")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, yamlsafe.Foreign):
        return value.describe()
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover - yamlsafe.load makes nothing else


def _quote_hint(value: Any) -> str:
    scalar = isinstance(value, bool | int | yamlsafe.Foreign)
    return "; quote it to make it a string" if scalar else ""


def _show(text: str, limit: int = 64) -> str:
    """``text`` quoted for a message: shortened, non-ASCII and control characters escaped."""
    shown = ascii(text[:limit])
    return shown + "..." if len(text) > limit else shown


def _key_path(where: str, key: str) -> str:
    shown = key if key.isprintable() and key.isascii() and len(key) <= 64 else _show(key)
    return f"{where}.{shown}" if where else shown


def _suggestion(key: str, allowed: Collection[str]) -> str:
    folded = {a.lower(): a for a in allowed}
    if key.lower() in folded:
        return f"; did you mean {folded[key.lower()]}? (keys are case-sensitive)"
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return "; known keys: " + ", ".join(allowed)


class _Checker:
    """Walks the loaded document, collecting problems and building the rules."""

    def __init__(self, source: str, partitions: Collection[str]) -> None:
        self.source = source
        self.partitions = partitions
        self.problems: list[str] = []
        # section -> match key -> (index, ARN as written)
        self._seen: dict[str, dict[str, tuple[int, str]]] = {}
        self._index = 0  # position of the entry being checked in its section

    def add(self, where: str, message: str) -> None:
        self.problems.append(
            f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}"
        )

    # -- generic checks ------------------------------------------------------------------

    def keys(self, where: str, obj: dict[Any, Any], allowed: Collection[str]) -> None:
        for key in obj:
            if not isinstance(key, str):
                self.add(where, f"key {_kind(key)} must be a string (one of {', '.join(allowed)})")
            elif key not in allowed:
                self.add(_key_path(where, key), "unknown key" + _suggestion(key, allowed))

    def string(
        self, where: str, obj: dict[str, Any], key: str, *, required: bool, what: str = ""
    ) -> str | None:
        """``obj[key]`` as a non-empty printable string of at most 253 characters."""
        path = f"{where}.{key}"
        value = obj.get(key)
        if value is None:
            if required:
                self.add(path, f"is required{what}")
            return None
        return self.text(path, value)

    def text(self, path: str, value: Any) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}{_quote_hint(value)}")
            return None
        if not value:
            self.add(path, "is empty")
            return None
        if len(value) > templates.MAX_NAME_LENGTH:
            self.add(path, f"is {len(value)} characters; the limit is {templates.MAX_NAME_LENGTH}")
            return None
        if not value.isprintable():
            bad = next(c for c in value if not c.isprintable())
            self.add(path, f"has a character that is not printable ({ascii(bad)})")
            return None
        return value

    def flag(self, where: str, obj: dict[str, Any]) -> bool:
        value = obj.get("allowReservedPrefixes", False)
        if not isinstance(value, bool):
            self.add(f"{where}.allowReservedPrefixes", f"must be true or false, got {_kind(value)}")
            return False
        return value

    def template(self, path: str, value: Any, section: str, allow: bool) -> str | None:
        """A username or group template: text rules, template rules, reserved prefixes."""
        text = self.text(path, value)
        if text is None:
            return None
        problems = templates.template_problems(text, section)
        for problem in problems:
            self.add(path, problem)
        prefix = templates.reserved_prefix(templates.literal_prefix(text))
        if prefix is not None and not allow:
            self.add(path, f'uses the reserved prefix "{prefix}"; {_RESERVED_HINT}')
            return None
        return None if problems else text

    def groups(
        self, where: str, obj: dict[str, Any], section: str, allow: bool
    ) -> tuple[str, ...] | None:
        path = f"{where}.groups"
        value = obj.get("groups")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(path, f"must be a list of group names, got {_kind(value)}")
            return None
        out = [self.template(f"{path}[{j}]", item, section, allow) for j, item in enumerate(value)]
        return tuple(g for g in out if g is not None) if all(g is not None for g in out) else None

    def principal(
        self, where: str, obj: dict[str, Any], key: str, kind: str, section: str
    ) -> str | None:
        """``obj[key]``: an IAM ARN of ``kind``, not naming what an earlier entry names."""
        path = f"{where}.{key}"
        example = f"arn:aws:iam::111122223333:{kind}/Name"
        value = obj.get(key)
        if value is None:
            self.add(path, f"is required: the IAM {kind} ARN, e.g. {example}")
            return None
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}")
            return None
        if not value:
            self.add(path, f"is empty; write the IAM {kind} ARN, e.g. {example}")
            return None
        try:
            parsed = arn.parse_principal(value, partitions=self.partitions)
        except MalformedArn as e:
            detail = e.message.removeprefix("arn: ")
            self.add(
                path, f"is not a valid {kind} ARN: {detail}" + (f"; {e.hint}" if e.hint else "")
            )
            return None
        if parsed.kind != kind:
            hint = f"write the {kind}'s ARN, e.g. {example}"
            if parsed.kind == "assumed-role" and kind == "role":
                hint = (
                    "write the role's ARN, arn:<partition>:iam::<account>:role/<path><name>;"
                    " the entry then matches every session of the role"
                )
            self.add(
                path, f"is {article(parsed.kind)} ARN; {section} needs an IAM {kind} ARN: {hint}"
            )
            return None
        if section != "serviceAccounts":
            self.unique(path, section, value, kind)
        return value

    def unique(self, path: str, section: str, value: str, kind: str) -> None:
        lowered = value.lower()
        key = lowered
        if kind == "role":
            # The partition was checked by parse_principal; only the shape matters here.
            key = arn.strip_role_path(lowered, partitions=(lowered.split(":")[1],))
        seen = self._seen.setdefault(section, {})
        first = seen.get(key)
        if first is None:
            seen[key] = (self._index, value)
            return
        index, written = first
        if written.lower() == lowered:
            self.add(
                path,
                f"duplicates {section}[{index}] (ARNs compare case-insensitively);"
                " only the first matching entry is ever used: merge the two",
            )
        else:
            self.add(
                path,
                f"names the same role as {section}[{index}] ({_show(written, 128)}): a rolearn"
                " matches its role whatever the path, so only the first matching entry is"
                " ever used: merge the two",
            )

    def section(
        self,
        doc: dict[str, Any],
        name: str,
        keys: Collection[str],
        build: Callable[[str, dict[str, Any]], T | None],
    ) -> tuple[T, ...]:
        value = doc.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add(name, f"must be a list, got {_kind(value)}")
            return ()
        out: list[T] = []
        for i, entry in enumerate(value):
            where = f"{name}[{i}]"
            self._index = i
            if not isinstance(entry, dict):
                self.add(
                    where, f"must be a mapping with keys {', '.join(keys)}; got {_kind(entry)}"
                )
                continue
            self.keys(where, entry, keys)
            rule = build(where, entry)
            if rule is not None:
                out.append(rule)
        return tuple(out)

    # -- the document ----------------------------------------------------------------------

    def mapping(self, doc: Any, digest: str) -> Mapping:
        empty = Mapping(source=self.source, digest=digest, cluster_id=None)
        if doc is None:
            self.add(
                "",
                "is empty; a mapping with no rules refuses everyone. If you mean that, write {}",
            )
            return empty
        if not isinstance(doc, dict):
            self.add(
                "",
                f"must be a YAML mapping with keys {', '.join(TOP_KEYS)}; got {_kind(doc)}",
            )
            return empty
        self.keys("", doc, TOP_KEYS)
        cluster_id = self.cluster_id(doc)
        return Mapping(
            source=self.source,
            digest=digest,
            cluster_id=cluster_id,
            map_roles=self.section(doc, "mapRoles", ROLE_KEYS, self.role_rule),
            map_users=self.section(doc, "mapUsers", USER_KEYS, self.user_rule),
            map_groups=self.section(doc, "mapGroups", GROUP_KEYS, self.group_rule),
            map_accounts=self.accounts(doc),
            bindings=self.section(doc, "bindings", BINDING_KEYS, self.binding),
            service_accounts=self.section(
                doc, "serviceAccounts", SERVICE_ACCOUNT_KEYS, self.service_account
            ),
        )

    def cluster_id(self, doc: dict[str, Any]) -> str | None:
        value = doc.get("clusterID")
        if value is None:
            return None
        if not isinstance(value, str) or not _CLUSTER_ID.fullmatch(value):
            got = "" if isinstance(value, str) else f", got {_kind(value)}"
            self.add(
                "clusterID",
                "must be a cluster id: 1-100 letters, digits, '.', '_' or '-' starting with a"
                f" letter or digit{got}",
            )
            return None
        return value

    def role_rule(self, where: str, entry: dict[str, Any]) -> RoleRule | None:
        rolearn = self.principal(where, entry, "rolearn", "role", "mapRoles")
        allow = self.flag(where, entry)
        username = self.required_template(where, entry, "mapRoles", allow)
        groups = self.groups(where, entry, "mapRoles", allow)
        if rolearn is None or username is None or groups is None:
            return None
        return RoleRule(rolearn, username, groups, allow)

    def user_rule(self, where: str, entry: dict[str, Any]) -> UserRule | None:
        userarn = self.principal(where, entry, "userarn", "user", "mapUsers")
        allow = self.flag(where, entry)
        username = self.required_template(where, entry, "mapUsers", allow)
        groups = self.groups(where, entry, "mapUsers", allow)
        if userarn is None or username is None or groups is None:
            return None
        return UserRule(userarn, username, groups, allow)

    def group_rule(self, where: str, entry: dict[str, Any]) -> GroupRule | None:
        grouparn = self.principal(where, entry, "grouparn", "group", "mapGroups")
        allow = self.flag(where, entry)
        username: str | None = None
        given = entry.get("username") is not None
        if given:
            username = self.template(f"{where}.username", entry["username"], "mapGroups", allow)
        groups = self.groups(where, entry, "mapGroups", allow)
        if grouparn is None or groups is None or (given and username is None):
            return None
        return GroupRule(grouparn, groups, username, allow)

    def required_template(
        self, where: str, entry: dict[str, Any], section: str, allow: bool
    ) -> str | None:
        value = entry.get("username")
        if value is None:
            self.add(f"{where}.username", "is required: the Kubernetes username (a template)")
            return None
        return self.template(f"{where}.username", value, section, allow)

    def accounts(self, doc: dict[str, Any]) -> tuple[str, ...]:
        value = doc.get("mapAccounts")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.add("mapAccounts", f"must be a list of 12-digit account ids, got {_kind(value)}")
            return ()
        out: list[str] = []
        first: dict[str, int] = {}
        for i, item in enumerate(value):
            path = f"mapAccounts[{i}]"
            account: str | None = None
            if isinstance(item, str) and _ACCOUNT_ID.fullmatch(item):
                account = item
            elif (
                isinstance(item, int)
                and not isinstance(item, bool)
                and _ACCOUNT_ID.fullmatch(str(item))
            ):
                account = str(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                self.add(
                    path,
                    f"is the number {item}, not 12 digits; quote account ids"
                    ' ("012345678901"): unquoted, YAML drops leading zeros or reads them as octal',
                )
            elif isinstance(item, yamlsafe.Foreign):
                self.add(
                    path,
                    f"is {item.describe()}, not a 12-digit account id"
                    + ('; quote account ids ("012345678901")' if "integer" in item.kind else ""),
                )
            elif isinstance(item, str):
                self.add(path, f"{_show(item)} is not an account id: exactly 12 digits")
            else:
                self.add(path, f"must be a 12-digit account id string, got {_kind(item)}")
            if account is None:
                continue
            if account in first:
                self.add(path, f"duplicates mapAccounts[{first[account]}] ({account})")
                continue
            first[account] = i
            out.append(account)
        return tuple(out)

    def namespaces(self, where: str, entry: dict[str, Any]) -> tuple[str, ...] | None:
        path = f"{where}.namespaces"
        if "namespaces" not in entry:
            return ()
        value = entry["namespaces"]
        if not isinstance(value, list):
            self.add(path, f"must be a list of namespace names or patterns, got {_kind(value)}")
            return None
        if not value:
            self.add(
                path,
                "is empty; omit namespaces for a cluster-wide binding, or list the namespaces",
            )
            return None
        out: list[str] = []
        ok = True
        for j, item in enumerate(value):
            item_path = f"{path}[{j}]"
            if not isinstance(item, str):
                self.add(item_path, f"must be a string, got {_kind(item)}{_quote_hint(item)}")
                ok = False
            elif not _NAMESPACE_PATTERN.fullmatch(item):
                self.add(
                    item_path,
                    f"{_show(item)} is not a namespace name or pattern: at most 63"
                    " lowercase letters, digits, '-' and '*', starting and ending with a"
                    " letter, digit or '*'",
                )
                ok = False
            elif item in out:
                self.add(item_path, f"duplicates {path}[{out.index(item)}] ({item})")
                ok = False
            else:
                out.append(item)
        return tuple(out) if ok else None

    def cluster_role(self, where: str, entry: dict[str, Any], *, required: bool) -> str | None:
        name = self.string(
            where, entry, "clusterRole", required=required, what=": the ClusterRole to bind"
        )
        if name is None:
            return None
        if name in (".", "..") or "/" in name or "%" in name:
            self.add(f"{where}.clusterRole", f"{_show(name)} is not a ClusterRole name")
            return None
        return name

    def binding(self, where: str, entry: dict[str, Any]) -> Binding | None:
        allow = self.flag(where, entry)
        subjects = [k for k in ("group", "user") if entry.get(k) is not None]
        if len(subjects) != 1:
            self.add(
                where,
                "has both group and user; a binding names exactly one subject"
                if subjects
                else "needs group or user: the Kubernetes subject to bind",
            )
        subject: dict[str, str | None] = {"group": None, "user": None}
        ok = len(subjects) == 1
        for key in subjects:
            value = self.string(where, entry, key, required=True)
            if value is None:
                ok = False
                continue
            path = f"{where}.{key}"
            if "{{" in value or "}}" in value:
                self.add(path, f"templates are not expanded in bindings; name the Kubernetes {key}")
                ok = False
            prefix = templates.reserved_prefix(value)
            if prefix is not None and not allow:
                self.add(path, f'uses the reserved prefix "{prefix}"; {_RESERVED_HINT}')
                ok = False
            subject[key] = value
        cluster_role = self.cluster_role(where, entry, required=True)
        namespaces = self.namespaces(where, entry)
        if not ok or cluster_role is None or namespaces is None:
            return None
        return Binding(cluster_role, subject["group"], subject["user"], namespaces, allow)

    def service_account(self, where: str, entry: dict[str, Any]) -> ServiceAccountRule | None:
        rolearn = self.principal(where, entry, "rolearn", "role", "serviceAccounts")
        namespace = self.string(where, entry, "namespace", required=True)
        if namespace is not None and not _DNS_LABEL.fullmatch(namespace):
            self.add(
                f"{where}.namespace",
                f"{_show(namespace)} is not a namespace name: at most 63 lowercase letters,"
                " digits and '-', starting and ending with a letter or digit",
            )
            namespace = None
        name = self.string(where, entry, "name", required=True)
        if name is not None and not _DNS_SUBDOMAIN.fullmatch(name):
            self.add(
                f"{where}.name",
                f"{_show(name)} is not a ServiceAccount name: lowercase letters, digits,"
                " '-' and '.', starting and ending with a letter or digit",
            )
            name = None
        cluster_role = self.cluster_role(where, entry, required=False)
        bad_role = entry.get("clusterRole") is not None and cluster_role is None
        namespaces = self.namespaces(where, entry)
        if namespace is not None and name is not None:
            seen = self._seen.setdefault("serviceAccounts", {})
            first = seen.get(f"{namespace}/{name}")
            if first is not None:
                self.add(
                    where,
                    f"duplicates serviceAccounts[{first[0]}]: both are {namespace}/{name}",
                )
                return None
            seen[f"{namespace}/{name}"] = (self._index, f"{namespace}/{name}")
        if rolearn is None or namespace is None or name is None or bad_role or namespaces is None:
            return None
        return ServiceAccountRule(rolearn, namespace, name, cluster_role, namespaces)
