"""Access entries as RBAC and as a mapping file: effective mapping, export/import, the store.

Covers: the mapping RBAC works from per ``authenticationMode`` (the file's
identity rules shadowed or dropped, its bindings kept, one binding per
associated policy to the entry's own group); the entry group at review time
(only with a policy, only for the entry's own principal by unique id: a
re-created namesake gets nothing); export → parse → import gives back the
same entries (Hypothesis) and, served as a file, the same users and groups;
what import refuses (duplicates, bindings of other groups, ClusterRoles of no
policy, unsupported sections, another entry's group); the lockout guard with
entries; the store's one-transaction import on both backends (create, update,
unchanged, prune, dry run, a failure midway leaves nothing, the access
version moves only on a real change).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.errors import EntityAlreadyExists, NoSuchEntity
from authbridge.iam.access import (
    ENTRY_GROUP_PREFIX,
    AccessEntry,
    AccessSnapshot,
    EntrySpec,
    PolicyAssociation,
    PolicySpec,
    entry_group,
)
from authbridge.kube import KubeAdapter
from authbridge.mapping.entries import effective_mapping, entries_from_mapping, export_entries
from authbridge.mapping.model import Identity, MappingError
from authbridge.mapping.parse import parse_mapping
from authbridge.mapping.resolve import resolve, resolve_access
from authbridge.rbac.desired import desired_state
from authbridge.rbac.errors import LockoutRefused
from authbridge.rbac.reconcile import reconcile
from authbridge.store import SqlStore
from tests.conftest import ACCOUNT
from tests.fakekube import FakeKube
from tests.test_cli_rbac import RULES

T0 = datetime(2026, 1, 1, tzinfo=UTC)
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/ci/Deploy"
FILE = parse_mapping(
    f"""
mapUsers:
  - userarn: {USER_ARN}
    username: file-alice
    groups: [file-admins]
  - userarn: arn:aws:iam::{ACCOUNT}:user/bob
    username: bob
    groups: [devs]
mapAccounts: ["{ACCOUNT}"]
bindings:
  - group: file-admins
    clusterRole: cluster-admin
  - group: devs
    clusterRole: view
    namespaces: [dev]
""",
    "mapping.yaml",
)


def _entry(
    arn: str, pid: str, username: str | None = None, groups: tuple[str, ...] = ()
) -> AccessEntry:
    return AccessEntry("prod", pid, arn, username, groups, "STANDARD", T0, T0)


def _assoc(arn: str, pid: str, policy: str, namespaces: tuple[str, ...] = ()) -> PolicyAssociation:
    scope = "namespace" if namespaces else "cluster"
    return PolicyAssociation("prod", pid, arn, policy, scope, namespaces, T0, T0)


def _snapshot(
    mode: str | None = None,
    entries: tuple[AccessEntry, ...] = (),
    policies: tuple[PolicyAssociation, ...] = (),
    version: int = 7,
) -> AccessSnapshot:
    by: dict[tuple[str, str], tuple[PolicyAssociation, ...]] = {}
    for a in policies:
        by[(a.cluster_id, a.principal_id)] = (*by.get((a.cluster_id, a.principal_id), ()), a)
    modes = {"prod": mode} if mode is not None else {}
    return AccessSnapshot(
        version,
        modes,
        {(e.cluster_id, e.principal_id): e for e in entries},
        by,  # type: ignore[arg-type]
    )


ALICE_ENTRY = _entry(USER_ARN, "AIDAALICE", "entry-alice", ("entry-devs",))
DEPLOY_ENTRY = _entry(ROLE_ARN, "AROADEPLOY", None, ("deployers",))
DEPLOY_EDIT = _assoc(ROLE_ARN, "AROADEPLOY", "AmazonEKSEditPolicy", ("team-*", "dev"))
ALICE_ADMIN = _assoc(USER_ARN, "AIDAALICE", "AmazonEKSClusterAdminPolicy")
WITH_ENTRIES = (ALICE_ENTRY, DEPLOY_ENTRY)
WITH_POLICIES = (DEPLOY_EDIT, ALICE_ADMIN)


def _sources(mapping_: object, namespaces: list[str]) -> list[tuple[str, str | None, str]]:
    state = desired_state(mapping_, namespaces)  # type: ignore[arg-type]
    return [
        (
            o.ref.kind,
            o.ref.namespace,
            o.manifest["metadata"]["annotations"]["authbridge.dev/source"],
        )
        for o in state.objects
    ]


# -- the mapping RBAC works from ----------------------------------------------------------


def test_config_map_mode_is_the_file_alone() -> None:
    assert (
        effective_mapping(FILE, _snapshot("CONFIG_MAP", WITH_ENTRIES, WITH_POLICIES), "prod")
        is FILE
    )


def test_api_and_config_map_entries_shadow_the_file_rule_of_their_principal() -> None:
    got = effective_mapping(FILE, _snapshot(None, WITH_ENTRIES, WITH_POLICIES), "prod")
    assert [r.userarn for r in got.map_users] == [USER_ARN, f"arn:aws:iam::{ACCOUNT}:user/bob"]
    alice = got.map_users[0]
    assert alice.username == "entry-alice"  # the entry's, not the file's file-alice
    assert alice.groups == ("entry-devs", entry_group(USER_ARN))
    (deploy,) = got.map_roles
    assert deploy.username == f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/{{{{SessionName}}}}"
    assert got.map_accounts == (ACCOUNT,)
    assert _sources(got, ["dev", "team-a", "other"]) == [
        ("ClusterRoleBinding", None, "bindings[0]"),
        ("RoleBinding", "dev", "bindings[1]"),
        ("RoleBinding", "dev", f"accessEntries[{ROLE_ARN}].AmazonEKSEditPolicy"),
        ("RoleBinding", "team-a", f"accessEntries[{ROLE_ARN}].AmazonEKSEditPolicy"),
        ("ClusterRoleBinding", None, f"accessEntries[{USER_ARN}].AmazonEKSClusterAdminPolicy"),
    ]
    objects = desired_state(got, ["dev", "team-a"]).objects
    edit = next(
        o
        for o in objects
        if "Edit" in o.manifest["metadata"]["annotations"]["authbridge.dev/source"]
    )
    assert edit.manifest["roleRef"]["name"] == "authbridge:edit"
    assert edit.manifest["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": entry_group(ROLE_ARN)}
    ]


def test_api_mode_drops_the_file_identity_rules_and_keeps_its_bindings() -> None:
    got = effective_mapping(FILE, _snapshot("API", WITH_ENTRIES, WITH_POLICIES), "prod")
    assert [r.userarn for r in got.map_users] == [USER_ARN]
    assert got.map_accounts == () and got.map_groups == ()
    assert got.bindings[:2] == FILE.bindings


def test_an_entry_without_policies_gets_no_entry_group() -> None:
    got = effective_mapping(FILE, _snapshot(None, WITH_ENTRIES, ()), "prod")
    assert got.map_users[0].groups == ("entry-devs",)
    assert got.bindings == FILE.bindings


def test_entries_of_other_clusters_are_not_rendered() -> None:
    assert (
        effective_mapping(FILE, _snapshot(None, WITH_ENTRIES, WITH_POLICIES), "staging").bindings
        == FILE.bindings
    )


def test_entry_group_of_a_long_arn_is_a_stable_digest() -> None:
    long_arn = f"arn:aws:iam::{ACCOUNT}:role/{'p/' * 120}R"
    group = entry_group(long_arn)
    assert group.startswith(ENTRY_GROUP_PREFIX + "sha256-") and len(group) <= 253
    assert group == entry_group(long_arn) != entry_group(long_arn + "2")


# -- the entry group at review time ------------------------------------------------------

_ALICE = Identity(
    arn=USER_ARN, canonical_arn=USER_ARN, account_id=ACCOUNT, principal_id="AIDAALICE"
)


def test_review_gives_the_entry_group_only_with_a_policy() -> None:
    bare = resolve_access(FILE, _ALICE, (), mode="API", entry=ALICE_ENTRY)
    assert bare.user is not None and bare.user.groups == ("entry-devs",)
    bound = resolve_access(
        FILE, _ALICE, (), mode="API", entry=ALICE_ENTRY, entry_policies=(ALICE_ADMIN,)
    )
    assert bound.user is not None
    assert bound.user.groups == ("entry-devs", entry_group(USER_ARN))


def test_recreated_namesake_does_not_get_the_entry_group(store: SqlStore) -> None:
    """The group is keyed by ARN, but only the entry's own unique id is handed it."""
    store.create_user(ACCOUNT, "alice")
    store.create_access_entry("prod", USER_ARN)
    store.associate_access_policy("prod", USER_ARN, "cluster-admin", scope="cluster")
    store.delete_user(ACCOUNT, "alice")
    again = store.create_user(ACCOUNT, "alice")
    snapshot = store.access_snapshot()
    assert snapshot.entry_for("prod", again.user_id) is None
    assert snapshot.policies_for("prod", again.user_id) == ()
    identity = Identity(
        arn=USER_ARN, canonical_arn=USER_ARN, account_id=ACCOUNT, principal_id=again.user_id
    )
    got = resolve_access(FILE, identity, (), mode="API_AND_CONFIG_MAP", entry=None)
    assert got.user is not None and entry_group(USER_ARN) not in got.user.groups


# -- export and import --------------------------------------------------------------------


def test_export_served_as_a_file_gives_what_the_entries_give() -> None:
    snap = _snapshot("API", WITH_ENTRIES, WITH_POLICIES)
    served = parse_mapping(export_entries(snap, "prod"), "export.yaml")
    assert served.cluster_id == "prod"
    session = Identity(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/ci@example.com",
        canonical_arn=ROLE_ARN,
        account_id=ACCOUNT,
        principal_id="AROADEPLOY:ci@example.com",
        session_name="ci@example.com",
    )
    for identity, entry, policies in (
        (_ALICE, ALICE_ENTRY, (ALICE_ADMIN,)),
        (session, DEPLOY_ENTRY, (DEPLOY_EDIT,)),
    ):
        from_file = resolve(served, identity)
        from_entry = resolve_access(
            FILE, identity, (), mode="API", entry=entry, entry_policies=policies
        )
        assert from_file.user == from_entry.user
    assert _sources(served, ["dev", "team-a"]) == [
        ("RoleBinding", "dev", "bindings[0]"),
        ("RoleBinding", "team-a", "bindings[0]"),
        ("ClusterRoleBinding", None, "bindings[1]"),
    ]
    wanted = entries_from_mapping(served)
    assert wanted.cluster_id == "prod" and wanted.notes == ()
    assert wanted.entries == (
        EntrySpec(
            ROLE_ARN,
            None,
            ("deployers",),
            (PolicySpec("AmazonEKSEditPolicy", "namespace", ("team-*", "dev")),),
            "mapRoles[0]",
        ),
        EntrySpec(
            USER_ARN,
            "entry-alice",
            ("entry-devs",),
            (PolicySpec("AmazonEKSClusterAdminPolicy", "cluster"),),
            "mapUsers[0]",
        ),
    )


_NAME = st.text(alphabet="abcdefghij-0123", min_size=1, max_size=12).filter(
    lambda s: s[0].isalpha() and s[-1].isalnum()
)
_POLICY = st.sampled_from(
    [
        "AmazonEKSViewPolicy",
        "AmazonEKSEditPolicy",
        "AmazonEKSAdminPolicy",
        "AmazonEKSClusterAdminPolicy",
    ]
)


@given(
    st.lists(
        st.tuples(
            st.booleans(),
            _NAME,
            st.one_of(st.none(), _NAME),
            st.lists(_NAME, max_size=3, unique=True),
            st.dictionaries(_POLICY, st.lists(_NAME, max_size=3, unique=True), max_size=3),
        ),
        max_size=6,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_export_then_import_gives_back_the_entries(
    specs: list[tuple[bool, str, str | None, list[str], dict[str, list[str]]]],
) -> None:
    entries, policies, expected = [], [], []
    for i, (is_role, name, username, groups, pols) in enumerate(specs):
        arn = f"arn:aws:iam::{ACCOUNT}:{'role' if is_role else 'user'}/{name}"
        pid = f"{'AROA' if is_role else 'AIDA'}{i}"
        entries.append(_entry(arn, pid, username, tuple(groups)))
        assocs = tuple(_assoc(arn, pid, p, tuple(ns)) for p, ns in sorted(pols.items()))
        policies.extend(assocs)
        expected.append(
            (
                arn,
                username,
                tuple(groups),
                frozenset((a.policy, a.scope, a.namespaces) for a in assocs),
            )
        )
    text = export_entries(_snapshot(None, tuple(entries), tuple(policies)), "prod")
    got = entries_from_mapping(parse_mapping(text, "export.yaml"), "prod")
    assert {
        (
            s.principal_arn,
            s.username,
            s.groups,
            frozenset((p.policy, p.scope, p.namespaces) for p in s.policies),
        )
        for s in got.entries
    } == {(arn, u, g, frozenset(pol)) for arn, u, g, pol in expected}


def _problems(text: str, cluster: str | None = "prod", **kw: bool) -> list[str]:
    with pytest.raises(MappingError) as e:
        entries_from_mapping(parse_mapping(text, "in.yaml"), cluster, **kw)
    return e.value.problems


def test_import_refuses_what_entries_cannot_hold_naming_the_field() -> None:
    g = entry_group(USER_ARN)
    problems = _problems(
        f"""
mapUsers:
  - {{userarn: "{USER_ARN}", username: a}}
mapGroups:
  - {{grouparn: "arn:aws:iam::{ACCOUNT}:group/g", groups: [x]}}
bindings:
  - {{group: devs, clusterRole: view}}
  - {{group: "{g}", clusterRole: cluster-admin, allowReservedPrefixes: true}}
  - {{group: "{g}", clusterRole: "authbridge:view", allowReservedPrefixes: true}}
  - {{group: "{g}", clusterRole: "authbridge:view", namespaces: [dev], allowReservedPrefixes: true}}
"""
    )
    roles = "authbridge:admin, authbridge:admin-view, authbridge:cluster-admin, authbridge:edit"
    assert problems == [
        "in.yaml: bindings[1].clusterRole: cluster-admin is the ClusterRole of no access policy"
        f" (one of {roles}, authbridge:view)",
        f"in.yaml: bindings[3]: a second binding of AmazonEKSViewPolicy for {USER_ARN}; an entry"
        " has each policy once (list every namespace in one binding)",
        "in.yaml: mapGroups[0]: access entries are per IAM user or role; keep mapGroups in a"
        " mapping file",
        "in.yaml: bindings[0]: binds group devs, which is no entry's own group; an access entry"
        " holds only policies bound to its authbridge-internal:access-entry: group",
    ]


def test_import_skip_unsupported_makes_notes_and_keeps_the_entries() -> None:
    got = entries_from_mapping(FILE, "prod", skip_unsupported=True)
    assert [s.principal_arn for s in got.entries] == [USER_ARN, f"arn:aws:iam::{ACCOUNT}:user/bob"]
    assert [n.split(":")[0] for n in got.notes] == ["mapAccounts[0]", "bindings[0]", "bindings[1]"]


def test_import_needs_a_cluster_and_the_right_one() -> None:
    assert "has no clusterID" in _problems("mapRoles: []\n", None)[0]
    assert "clusterID is staging, not prod" in _problems("clusterID: staging\n", "prod")[0]


# -- the lockout guard covers entries ------------------------------------------------------


def test_lockout_guard_refuses_removing_the_last_entry_path_to_cluster_admin(
    tmp_path: Path,
) -> None:
    only_entries = parse_mapping("mapRoles: []\n", "mapping.yaml")
    with FakeKube(namespaces=("default", "dev"), rules=RULES) as kube:
        adapter = KubeAdapter.from_kubeconfig(kube.write_kubeconfig(tmp_path / "kubeconfig"))
        try:
            with_admin = effective_mapping(
                only_entries, _snapshot("API", WITH_ENTRIES, (ALICE_ADMIN,)), "prod"
            )
            reconcile(adapter, with_admin, prune=True)  # alice's policy: a path
            (crb,) = [k for k in kube.snapshot() if "clusterrolebindings" in k]
            without = effective_mapping(only_entries, _snapshot("API", WITH_ENTRIES, ()), "prod")
            with pytest.raises(LockoutRefused) as e:
                reconcile(adapter, without, prune=True)
            # Without the policy the mapping no longer gives alice the entry group.
            assert "no identity in the mapping is bound to" in str(e.value)
            assert "--allow-lockout" in str(e.value)
            assert crb in kube.snapshot()
            reconcile(adapter, without, prune=True, allow_lockout=True)
        finally:
            adapter.close()


# -- the store: one transaction ------------------------------------------------------------


def _principals(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.create_role(ACCOUNT, "Deploy", trust=[USER_ARN], path="/ci/")


VIEW_DEV = PolicySpec("view", "namespace", ("dev",))


def test_store_import_creates_updates_prunes_in_one_transaction(store: SqlStore) -> None:
    _principals(store)
    store.create_user(ACCOUNT, "carol")
    carol = f"arn:aws:iam::{ACCOUNT}:user/carol"
    store.create_access_entry("prod", carol)
    start = store.access_version()
    specs = [
        EntrySpec(USER_ARN, "alice", ("devs",), (VIEW_DEV,)),
        EntrySpec(
            f"arn:aws:iam::{ACCOUNT}:role/Deploy", None, (), (PolicySpec("edit", "cluster"),)
        ),
    ]
    dry = store.import_access_entries("prod", specs, prune=True, dry_run=True)
    assert dry.created == (USER_ARN, ROLE_ARN) and dry.deleted == (carol,)
    assert store.access_version() == start and len(store.list_access_entries("prod")) == 1
    done = store.import_access_entries("prod", specs)
    assert done.created == (USER_ARN, ROLE_ARN) and done.kept == (carol,)
    assert store.access_version() == start + 1
    again = store.import_access_entries("prod", specs)
    assert again.unchanged == (USER_ARN, ROLE_ARN) and not again.changed
    assert store.access_version() == start + 1  # nothing changed: the version stays
    policies = {
        a.principal_arn: (a.policy, a.scope, a.namespaces)
        for a in store.list_associated_access_policies("prod")
    }
    assert policies == {
        USER_ARN: ("AmazonEKSViewPolicy", "namespace", ("dev",)),
        ROLE_ARN: ("AmazonEKSEditPolicy", "cluster", ()),
    }
    changed = [EntrySpec(USER_ARN, "alice2", ("devs",), (PolicySpec("admin", "cluster"),))]
    result = store.import_access_entries("prod", changed, prune=True)
    assert result.updated == (USER_ARN,) and set(result.deleted) == {ROLE_ARN, carol}
    (entry,) = store.list_access_entries("prod")
    assert entry.username == "alice2"
    assert [a.policy for a in store.list_associated_access_policies("prod")] == [
        "AmazonEKSAdminPolicy"
    ]


def test_store_import_failing_midway_leaves_nothing(store: SqlStore) -> None:
    _principals(store)
    start = store.access_version()
    specs = [
        EntrySpec(USER_ARN, None, ("devs",), (VIEW_DEV,)),
        EntrySpec(f"arn:aws:iam::{ACCOUNT}:user/nobody", None, ()),
    ]
    with pytest.raises(NoSuchEntity):
        store.import_access_entries("prod", specs)
    assert store.list_access_entries("prod") == [] and store.access_version() == start


def test_store_import_refuses_a_stale_namesake_entry(store: SqlStore) -> None:
    store.create_user(ACCOUNT, "alice")
    store.create_access_entry("prod", USER_ARN)
    store.delete_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "alice")
    with pytest.raises(EntityAlreadyExists, match="deleted principal"):
        store.import_access_entries("prod", [EntrySpec(USER_ARN, None, ())])


def test_store_import_default_username_is_stored_as_the_default(store: SqlStore) -> None:
    _principals(store)
    default = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deploy/{{{{SessionName}}}}"
    store.import_access_entries("prod", [EntrySpec(ROLE_ARN, default, ())])
    (entry,) = store.list_access_entries("prod")
    assert entry.username is None and entry.to_aws()["username"] == default


def test_watch_source_moves_with_the_access_version(store: SqlStore, tmp_path: Path) -> None:
    """rbac watch reconciles on an entry change as on a file change (authbridge.cli.rbac)."""
    from authbridge.cli.rbac import _WithEntries
    from authbridge.mapping.holder import MappingHolder

    (tmp_path / "m.yaml").write_text("mapRoles: []\n")
    _principals(store)
    source = _WithEntries(MappingHolder(tmp_path / "m.yaml"), store, "prod")
    assert source.current().bindings == () and source.ready
    first = source.version
    assert source.current().bindings == () and source.version == first  # nothing moved
    store.create_access_entry("prod", USER_ARN)
    store.associate_access_policy("prod", USER_ARN, "view", scope="cluster")
    (binding,) = source.current().bindings
    assert binding.group == entry_group(USER_ARN) and source.version == first + 1
