"""The access explorer "by permission": ``python -m bench.explorer [--rounds N]``.

The question the console asks most (which IAM principals may delete deployments in
``prod``?) must answer in under a second for 1,000 users, 200 roles, 50 access
entries and 300 bindings. Pure CPU in one process (no server, no store, no
cluster): :func:`authbridge.explain.explain_permission` over a synthetic
:class:`~authbridge.explain.Snapshot` built from the same values the store and the
kube adapter give:

* users in 20 IAM groups (each user in one), every group in ``mapGroups``, one user
  in ten also in ``mapUsers``; roles in ``mapRoles``, each trusting one IAM group
  (one in four also one user); access entries for the first users and roles, each
  with an associated policy (``edit`` in ``prod``, or ``view`` cluster-wide);
* bindings as a live cluster lists them: ClusterRoleBindings and RoleBindings in
  ten namespaces, to the shipped ClusterRoles and a few of the operator's (one
  aggregated), their subjects the mapping's groups, the roles' groups and some
  usernames; plus the bindings the entries' policies render to.

It checks the answer (some principals reach the request, each through a binding
that grants it), then times the best of ``--rounds`` runs (default 5) at the
target size and with each dimension doubled and quadrupled alone, and prints
the time and the ratio to the base, so how the cost grows with each one shows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from authbridge.explain import explain_permission, permission_request
from authbridge.explain.core import IamSnapshot, Snapshot
from authbridge.explain.rbac import RBAC_GROUP, rbac_from_objects, shipped_cluster_roles
from authbridge.iam.access import AccessEntry, AccessSnapshot, PolicyAssociation
from authbridge.iam.model import Group, Role, TrustEntry, User
from authbridge.mapping.entries import effective_mapping
from authbridge.mapping.model import GroupRule, Mapping, RoleRule, UserRule
from authbridge.rbac.desired import desired_state

ACCOUNT = "111122223333"
T0 = datetime(2026, 12, 4, tzinfo=UTC)
NAMESPACES = [f"team-{i}" for i in range(9)] + ["prod"]
GROUPS = 20
TARGET = {"users": 1000, "roles": 200, "entries": 50, "bindings": 300}
TARGET_SECONDS = 1.0


def build(users: int, roles: int, entries: int, bindings: int) -> Snapshot:
    groups = [
        Group(f"AGPA{i:017d}", ACCOUNT, f"g{i}", "/", f"arn:aws:iam::{ACCOUNT}:group/g{i}", T0)
        for i in range(GROUPS)
    ]
    people = [
        User(f"AIDA{i:017d}", ACCOUNT, f"u{i}", "/", f"arn:aws:iam::{ACCOUNT}:user/u{i}", True, T0)
        for i in range(users)
    ]
    member = {u.user_id: (groups[i % GROUPS],) for i, u in enumerate(people)}
    iam_roles = []
    for i in range(roles):
        trust = [TrustEntry("group", groups[i % GROUPS].group_id, groups[i % GROUPS].arn)]
        if i % 4 == 0 and people:
            u = people[(i * 7) % len(people)]
            trust.append(TrustEntry("user", u.user_id, u.arn))
        iam_roles.append(
            Role(
                f"AROA{i:017d}",
                ACCOUNT,
                f"r{i}",
                "/",
                f"arn:aws:iam::{ACCOUNT}:role/r{i}",
                3600,
                "",
                T0,
                tuple(trust),
            )
        )
    mapping = Mapping(
        source="bench",
        digest="",
        cluster_id="prod",
        map_roles=tuple(
            RoleRule(r.arn, f"r{i}:{{{{SessionName}}}}", (f"role-{i % 40}",))
            for i, r in enumerate(iam_roles)
        ),
        map_users=tuple(
            UserRule(u.arn, u.name, ("direct",)) for i, u in enumerate(people) if i % 10 == 0
        ),
        map_groups=tuple(GroupRule(g.arn, (f"k8s-{g.name}",)) for g in groups),
    )
    # Access entries: the first users and roles, alternating, each with one policy.
    chosen = [p for pair in zip(people, iam_roles, strict=False) for p in pair][:entries]
    entry_map = {}
    policies = {}
    for i, p in enumerate(chosen):
        pid = p.user_id if isinstance(p, User) else p.role_id
        entry_map[("prod", pid)] = AccessEntry(
            "prod", pid, p.arn, None, ("entry",), "STANDARD", T0, T0
        )
        prod_edit = i % 2 == 0
        policies[("prod", pid)] = (
            PolicyAssociation(
                "prod",
                pid,
                p.arn,
                "AmazonEKSEditPolicy" if prod_edit else "AmazonEKSViewPolicy",
                "namespace" if prod_edit else "cluster",
                ("prod",) if prod_edit else (),
                T0,
                T0,
            ),
        )
    access = AccessSnapshot(1, {"prod": "API_AND_CONFIG_MAP"}, entry_map, policies)
    objects: list[dict[str, Any]] = list(shipped_cluster_roles())
    objects += [
        _role("deployers", [{"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}]),
        _role("readers", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list"]}]),
        _role("ops", [], aggregate={"example.com/ops": "true"}),
        _role(
            "ops-apps",
            [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["delete"]}],
            labels={"example.com/ops": "true"},
        ),
    ]
    role_names = ["authbridge:edit", "authbridge:view", "deployers", "readers", "ops"]
    for i in range(bindings):
        subject = (
            {"kind": "Group", "name": f"k8s-g{i % GROUPS}"}
            if i % 3 == 0
            else {"kind": "Group", "name": f"role-{i % 40}"}
            if i % 3 == 1
            else {"kind": "User", "name": f"u{(i * 13) % max(users, 1)}"}
        )
        subject["apiGroup"] = RBAC_GROUP
        namespace = NAMESPACES[i % len(NAMESPACES)] if i % 5 else None
        objects.append(_binding(f"b{i}", role_names[i % len(role_names)], subject, namespace))
    effective = effective_mapping(mapping, access, "prod")
    objects += [o.manifest for o in desired_state(effective, NAMESPACES).objects]
    rbac = rbac_from_objects(objects, source="cluster", where="bench")
    iam = IamSnapshot("aws", tuple(people), member, tuple(iam_roles))
    return Snapshot(iam, mapping, access, {"prod": rbac}, ("prod",))


def _role(
    name: str,
    rules: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    aggregate: dict[str, str] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "rules": rules,
    }
    if aggregate is not None:
        doc["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": aggregate}]}
    return doc


def _binding(
    name: str, role: str, subject: dict[str, str], namespace: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    return {
        "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


REQUEST = permission_request("delete", "deployments", api_group="apps", namespace="prod")


def timed(snapshot: Snapshot, rounds: int) -> tuple[float, int]:
    best = float("inf")
    reached = 0
    for _ in range(rounds):
        start = time.perf_counter()
        answer = explain_permission(snapshot, REQUEST)
        best = min(best, time.perf_counter() - start)
        reached = len(answer.clusters[0].principals)
    return best, reached


def check(snapshot: Snapshot) -> int:
    answer = explain_permission(snapshot, REQUEST)
    principals = answer.clusters[0].principals
    assert principals, "nobody reaches the request: the bench's snapshot is wrong"
    rbac = snapshot.rbac["prod"]
    for p in principals:
        assert p.allowed, p.arn
        for g in p.grants:
            assert any(r.allows(REQUEST) for r in g.rules), (p.arn, g.binding.name)
            assert rbac.role_of(g.binding) is not None
    json.dumps(answer.to_json())
    return len(principals)


def store_read(users: int, roles: int) -> tuple[float, float]:
    """Seconds to fill a SQLite store (untimed: setup) and then to read the snapshot's IAM
    side and access entries from it (:func:`authbridge.explain.load.from_store`'s reads)."""
    import secrets
    import tempfile

    from authbridge.explain import load
    from authbridge.iam.credentials import Pepper
    from authbridge.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/bench.db", pepper=Pepper(secrets.token_bytes(32)))
        try:
            start = time.perf_counter()
            store.create_account(ACCOUNT)
            for i in range(GROUPS):
                store.create_group(ACCOUNT, f"g{i}")
            for i in range(users):
                store.create_user(ACCOUNT, f"u{i}")
                store.add_user_to_group(ACCOUNT, f"g{i % GROUPS}", f"u{i}")
            for i in range(roles):
                store.create_role(
                    ACCOUNT, f"r{i}", trust=[f"arn:aws:iam::{ACCOUNT}:group/g{i % GROUPS}"]
                )
            filled = time.perf_counter() - start
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                iam = load.iam_from_store(store, "aws")
                store.access_snapshot()
                best = min(best, time.perf_counter() - start)
            assert len(iam.users) == users and len(iam.roles) == roles
            return filled, best
        finally:
            store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explorer", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="runs per size (best is kept)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    base_snapshot = build(**TARGET)
    reached = check(base_snapshot)
    base, _ = timed(base_snapshot, args.rounds)
    rows = [("target", TARGET, base, reached)]
    for dim in ("users", "roles", "entries", "bindings"):
        for factor in (2, 4):
            size = {**TARGET, dim: TARGET[dim] * factor}
            seconds, n = timed(build(**size), args.rounds)
            rows.append((f"{dim} x{factor}", size, seconds, n))
    print(
        f"explain_permission: {REQUEST.verb} {REQUEST.resource}.{REQUEST.api_group} in"
        f" {REQUEST.namespace}, best of {args.rounds}, one core"
    )
    print()
    print("| case | users | roles | entries | bindings | principals reached | ms | x target |")
    print("|---|---|---|---|---|---|---|---|")
    for name, size, seconds, n in rows:
        print(
            f"| {name} | {size['users']:,} | {size['roles']:,} | {size['entries']:,} |"
            f" {size['bindings']:,} | {n:,} | {seconds * 1000:,.0f} | {seconds / base:.2f} |"
        )
    filled, read = store_read(TARGET["users"], TARGET["roles"])
    print()
    print(
        f"the store read the CLI adds (SQLite, {TARGET['users']:,} users in {GROUPS} groups,"
        f" {TARGET['roles']} roles; filled in {filled:.1f} s): {read * 1000:,.0f} ms"
    )
    ok = base < TARGET_SECONDS
    print()
    print(
        f"target: under {TARGET_SECONDS:.0f} s at {TARGET['users']:,} users, {TARGET['roles']}"
        f" roles, {TARGET['entries']} entries, {TARGET['bindings']} bindings:"
        f" {base * 1000:,.0f} ms {'PASS' if ok else 'MISS'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
