"""Access entries beside the mapping file: the mapping RBAC sees, and entries as a file.

Three pure functions join the store's access entries
(:mod:`authbridge.iam.access`) to the mapping file's world:

* :func:`effective_mapping`: the mapping ``rbac render/plan/apply/watch`` and
  the lockout guard work from for one cluster. It is the file as the
  cluster's ``authenticationMode`` uses it, plus one ``mapRoles``/``mapUsers``
  rule per entry and one ``bindings`` item per associated policy:

  ======================  ===========================================================
  mode                    identity rules                      bindings
  ======================  ===========================================================
  ``CONFIG_MAP``          the file's                          the file's
  ``API_AND_CONFIG_MAP``  entries, then the file's rules for  the file's, then the
                          principals without an entry         entries' policies
  ``API``                 entries only                        the file's, then the
                                                              entries' policies
  ======================  ===========================================================

  The file's ``bindings`` and ``serviceAccounts`` are RBAC objects the
  operator asked for, so they stay in every mode; only who is authenticated
  how follows the mode, as at review time (:func:`~authbridge.mapping.resolve.resolve_access`).
  An associated policy becomes a binding of the policy's ClusterRole
  (``authbridge:view`` …) to the entry's group
  (:func:`~authbridge.iam.access.entry_group`): at the cluster scope a
  ClusterRoleBinding, at the namespace scope a RoleBinding in each namespace
  its names and ``team-*`` patterns match. Its source annotation says
  ``accessEntries[<principal ARN>].<policy>``.
* :func:`export_entries`: a cluster's entries as a mapping file (GitOps). The
  file means the same when served as a mapping (the same users, groups and
  RBAC objects) and loads back into entries with :func:`entries_from_mapping`.
* :func:`entries_from_mapping`: what a mapping file asks of a cluster's
  entries; every part entries cannot hold (``mapGroups``, ``mapAccounts``,
  ``serviceAccounts``, a binding of any group but an entry's own, a ClusterRole
  that is no access policy's) is a problem naming the field, or with
  ``skip_unsupported`` a note, as ``mapping import-aws-auth`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Final

from authbridge import arn
from authbridge.iam.access import (
    POLICY_CLUSTER_ROLES,
    AccessEntry,
    AccessSnapshot,
    EntrySpec,
    PolicyAssociation,
    PolicySpec,
    Scope,
    entry_group,
    policy_for_cluster_role,
)
from authbridge.mapping.model import Binding, GroupRule, Mapping, MappingError, RoleRule, UserRule

__all__ = [
    "SKIP_HINT",
    "EntriesImport",
    "EntrySpec",
    "PolicySpec",
    "effective_mapping",
    "entries_from_mapping",
    "entry_source",
    "export_entries",
]

SKIP_HINT: Final = "pass --skip-unsupported to import the entries and leave the rest out"


def entry_source(principal_arn: str, policy: str) -> str:
    """The source annotation of the objects an associated policy gives."""
    return f"accessEntries[{principal_arn}].{policy}"


def _binding(a: PolicyAssociation) -> Binding:
    return Binding(
        cluster_role=a.cluster_role,
        group=entry_group(a.principal_arn),
        namespaces=a.namespaces if a.scope == "namespace" else (),
        allow_reserved_prefixes=True,
        source=entry_source(a.principal_arn, a.policy),
    )


def _rule(entry: AccessEntry, bound: bool) -> RoleRule | UserRule:
    username = entry.username if entry.username is not None else entry.default_username()
    groups = entry.groups + ((entry_group(entry.principal_arn),) if bound else ())
    # The entry's own names never use a reserved prefix (checked on write); the flag
    # lets only its group through.
    if ":role/" in entry.principal_arn:
        return RoleRule(entry.principal_arn, username, groups, allow_reserved_prefixes=bound)
    return UserRule(entry.principal_arn, username, groups, allow_reserved_prefixes=bound)


def _role_key(role_arn: str) -> str:
    lowered = role_arn.lower()
    return arn.strip_role_path(lowered, partitions=(lowered.split(":")[1],))


def effective_mapping(mapping: Mapping, snapshot: AccessSnapshot, cluster: str) -> Mapping:
    """The mapping RBAC works from in ``cluster`` (module docstring)."""
    mode = snapshot.mode(cluster)
    if mode == "CONFIG_MAP":
        return mapping
    entries = snapshot.cluster_entries(cluster)
    policies = [a for e in entries for a in snapshot.policies_for(cluster, e.principal_id)]
    rules = [_rule(e, bool(snapshot.policies_for(cluster, e.principal_id))) for e in entries]
    entry_roles = tuple(r for r in rules if isinstance(r, RoleRule))
    entry_users = tuple(r for r in rules if isinstance(r, UserRule))
    if mode == "API":
        file_roles: tuple[RoleRule, ...] = ()
        file_users: tuple[UserRule, ...] = ()
        file_groups: tuple[GroupRule, ...] = ()
        accounts: tuple[str, ...] = ()
    else:
        taken_roles = {_role_key(r.rolearn) for r in entry_roles}
        taken_users = {r.userarn.lower() for r in entry_users}
        file_roles = tuple(r for r in mapping.map_roles if _role_key(r.rolearn) not in taken_roles)
        file_users = tuple(r for r in mapping.map_users if r.userarn.lower() not in taken_users)
        file_groups = mapping.map_groups
        accounts = mapping.map_accounts
    return replace(
        mapping,
        source=f"{mapping.source} and the access entries of cluster {cluster}"
        f" (authenticationMode {mode}, access version {snapshot.version})",
        cluster_id=mapping.cluster_id or cluster,
        map_roles=entry_roles + file_roles,
        map_users=entry_users + file_users,
        map_groups=file_groups,
        map_accounts=accounts,
        bindings=mapping.bindings + tuple(_binding(a) for a in policies),
    )


# -- entries as a mapping file ------------------------------------------------------------


def _quote(text: str) -> str:
    # JSON strings are YAML double-quoted scalars; ensure_ascii keeps the file ASCII.
    return json.dumps(text, ensure_ascii=True)


def export_entries(snapshot: AccessSnapshot, cluster: str) -> str:
    """The entries of ``cluster`` in ``snapshot`` as mapping YAML (module docstring)."""
    entries = snapshot.cluster_entries(cluster)
    lines = [
        f"# The access entries of cluster {cluster} (authenticationMode"
        f" {snapshot.mode(cluster)}, access version {snapshot.version}),",
        "# written by `authbridge mapping export`. Load them back with `authbridge mapping",
        "# import FILE`; served as a mapping file, this gives the same users, groups and",
        "# RBAC objects. The authbridge-internal:access-entry: group of an entry is what",
        "# the bindings of its associated policies bind.",
        f"clusterID: {_quote(cluster)}",
    ]
    bindings: list[str] = []
    for section, key, is_role in (("mapRoles", "rolearn", True), ("mapUsers", "userarn", False)):
        chosen = [e for e in entries if (":role/" in e.principal_arn) == is_role]
        lines.append(f"{section}:" + ("" if chosen else " []"))
        for e in chosen:
            policies = snapshot.policies_for(cluster, e.principal_id)
            rule = _rule(e, bool(policies))
            lines.append(f"  - {key}: {_quote(e.principal_arn)}")
            lines.append(f"    username: {_quote(rule.username)}")
            if rule.groups:
                lines.append("    groups:")
                lines.extend(f"      - {_quote(g)}" for g in rule.groups)
            else:
                lines.append("    groups: []")
            if policies:
                lines.append("    allowReservedPrefixes: true")
            for a in policies:
                bindings.append(f"  - group: {_quote(entry_group(a.principal_arn))}")
                bindings.append(f"    clusterRole: {_quote(a.cluster_role)}")
                if a.scope == "namespace":
                    bindings.append("    namespaces:")
                    bindings.extend(f"      - {_quote(ns)}" for ns in a.namespaces)
                bindings.append("    allowReservedPrefixes: true")
    lines.append("bindings:" + ("" if bindings else " []"))
    lines.extend(bindings)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EntriesImport:
    cluster_id: str
    entries: tuple[EntrySpec, ...]
    notes: tuple[str, ...] = ()  # what --skip-unsupported left out


def _default_username(principal_arn: str, is_role: bool) -> str:
    if not is_role:
        return principal_arn
    pieces = principal_arn.split(":")
    role = principal_arn.rsplit("/", 1)[1]
    return f"arn:{pieces[1]}:sts::{pieces[4]}:assumed-role/{role}/{{{{SessionName}}}}"


def entries_from_mapping(
    mapping: Mapping, cluster: str | None = None, *, skip_unsupported: bool = False
) -> EntriesImport:
    """The entries ``mapping`` asks of ``cluster`` (default: its ``clusterID``).

    Raises :class:`MappingError` listing every part entries cannot hold, unless
    ``skip_unsupported`` makes those notes. The names' own rules (no reserved
    prefix, templates) are the store's and the CLI's to check per entry.
    """
    problems: list[str] = []
    unsupported: list[str] = []
    where_file = mapping.source
    if cluster is None:
        if mapping.cluster_id is None:
            raise MappingError(
                [f"{where_file}: has no clusterID and no cluster was named"],
                hint="pass --cluster-id ID, or set clusterID in the file",
            )
        cluster = mapping.cluster_id
    elif mapping.cluster_id is not None and mapping.cluster_id != cluster:
        raise MappingError(
            [f"{where_file}: clusterID is {mapping.cluster_id}, not {cluster}"],
            hint="import it into its own cluster, or change clusterID in the file",
        )
    rules: list[tuple[str, str, str, tuple[str, ...], bool]] = [
        (f"mapRoles[{i}]", r.rolearn, r.username, r.groups, True)
        for i, r in enumerate(mapping.map_roles)
    ] + [
        (f"mapUsers[{i}]", r.userarn, r.username, r.groups, False)
        for i, r in enumerate(mapping.map_users)
    ]
    by_group: dict[str, str] = {}
    specs: dict[str, EntrySpec] = {}
    seen: dict[str, str] = {}
    for where, principal, username, groups, is_role in rules:
        key = _role_key(principal) if is_role else principal.lower()
        if key in seen:  # pragma: no cover - parse_mapping refuses such a file first
            problems.append(
                f"{where}: names {principal} as {seen[key]} does; a principal has one access"
                " entry per cluster"
            )
            continue
        seen[key] = where
        own = entry_group(principal)
        by_group[own] = principal
        specs[principal] = EntrySpec(
            principal_arn=principal,
            username=None if username == _default_username(principal, is_role) else username,
            groups=tuple(g for g in groups if g != own),
            where=where,
        )
    for section, items in (
        ("mapGroups", mapping.map_groups),
        ("mapAccounts", mapping.map_accounts),
        ("serviceAccounts", mapping.service_accounts),
    ):
        for i in range(len(items)):
            unsupported.append(
                f"{section}[{i}]: access entries are per IAM user or role; keep {section} in"
                " a mapping file"
            )
    policies: dict[str, list[PolicySpec]] = {}
    for i, b in enumerate(mapping.bindings):
        where = f"bindings[{i}]"
        found = by_group.get(b.group or "")
        if found is None:
            subject = f"group {b.group}" if b.group is not None else f"user {b.user}"
            unsupported.append(
                f"{where}: binds {subject}, which is no entry's own group; an access entry"
                " holds only policies bound to its authbridge-internal:access-entry: group"
            )
            continue
        principal = found
        policy = policy_for_cluster_role(b.cluster_role)
        if policy is None:
            roles = ", ".join(sorted(POLICY_CLUSTER_ROLES.values()))
            problems.append(
                f"{where}.clusterRole: {b.cluster_role} is the ClusterRole of no access policy"
                f" (one of {roles})"
            )
            continue
        mine = policies.setdefault(principal, [])
        if any(p.policy == policy for p in mine):
            problems.append(
                f"{where}: a second binding of {policy} for {principal}; an entry has each"
                " policy once (list every namespace in one binding)"
            )
            continue
        scope: Scope = "namespace" if b.namespaces else "cluster"
        mine.append(PolicySpec(policy, scope, b.namespaces))
    if unsupported and not skip_unsupported:
        problems.extend(unsupported)
    if problems:
        raise MappingError(
            [f"{where_file}: {p}" for p in problems],
            hint=SKIP_HINT if unsupported and not skip_unsupported else None,
        )
    entries = tuple(
        replace(spec, policies=tuple(policies.get(arn_, ()))) for arn_, spec in specs.items()
    )
    return EntriesImport(cluster, entries, tuple(unsupported))
