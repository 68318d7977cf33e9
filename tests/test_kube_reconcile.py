"""``reconcile`` and ``watch`` (authbridge.rbac.reconcile) through the real adapter and fake API.

Covers, for reconcile: the first apply creates every object (ClusterRoleBinding,
RoleBindings per namespace and pattern, ServiceAccount and its RoleBinding) and
a second plan is empty; a hand-edited managed object is updated in place (with
its resourceVersion, keeping what others added); a roleRef that differs is a
delete (with precondition) then create; prune removes exactly a removed
entry's objects and never an object without the managed-by label (one with
the same name, one unrelated), and without prune the orphans are only listed;
a name taken by an unmanaged object refuses the whole plan; a 409 injected
mid-apply, a real conflict (someone writes between observe and update) and a
500 each stop with a clear message saying how far it got, and a re-run
converges; an object already gone counts as deleted; the lockout guard
refuses with the entry named and changes nothing, --allow-lockout applies;
a server dry run changes nothing, including a replace.

For watch (driven by an injected clock and sleep): reconciles at start, on a
mapping change, and every interval (a new namespace gets its RoleBinding);
backs off 1, 2, 4 s … on API errors and recovers; a refusal waits for the
interval; never reconciles before a valid mapping was loaded; keeps the last
good mapping when the file turns invalid (nothing pruned); stops on ``stop``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authbridge.kube import KubeAdapter
from authbridge.mapping import MappingHolder, parse_mapping
from authbridge.mapping.model import Mapping
from authbridge.rbac.errors import LockoutRefused, PlanConflict
from authbridge.rbac.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from authbridge.rbac.names import binding_name
from authbridge.rbac.reconcile import (
    KubeConflict,
    KubeUnavailable,
    backoff_delay,
    plan_cluster,
    reconcile,
    watch,
)
from tests.fakekube import FakeKube

RBAC = "rbac.authorization.k8s.io"
NAMESPACES = ["default", "kube-system", "dev", "team-a", "ci"]

HEAD = """\
mapRoles:
  - rolearn: arn:aws:iam::111122223333:role/platform/Admin
    username: "admin:{{SessionName}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::111122223333:user/alice
    username: alice
    groups: ["authbridge:devs"]
"""
ADMINS = """\
  - group: "authbridge:admins"
    clusterRole: cluster-admin
"""
DEVS = """\
  - group: "authbridge:devs"
    clusterRole: edit
    namespaces: ["dev", "team-*"]
"""
VIEWERS = """\
  - user: alice
    clusterRole: view
"""
SERVICE_ACCOUNTS = """\
serviceAccounts:
  - rolearn: arn:aws:iam::111122223333:role/ci-deployer
    namespace: ci
    name: deployer
    clusterRole: edit
"""
MAPPING = HEAD + "bindings:\n" + ADMINS + DEVS + SERVICE_ACCOUNTS

CRB_ADMINS = "authbridge-cluster-admin-authbridge-admins-fd8fe283"
RB_DEVS = "authbridge-edit-authbridge-devs-2411f851"
RB_DEPLOYER = binding_name("RoleBinding", "edit", "ServiceAccount", "ci/deployer")


def mapping(text: str = MAPPING) -> Mapping:
    return parse_mapping(text, "rbac/mapping.yaml")


def everything(fake: FakeKube) -> set[str]:
    """``Kind name`` / ``Kind ns/name`` of every object of the kinds authbridge writes."""
    return {
        f"{kind} {name}"
        for kind in ("ClusterRoleBinding", "RoleBinding", "ServiceAccount")
        for name in fake.names(kind)
    }


def unmanaged(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["labels"] = {"owner": "platform-team"}
    return manifest


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube(namespaces=NAMESPACES) as server:
        yield server


@pytest.fixture
def adapter(fake: FakeKube, tmp_path: Path) -> Iterator[KubeAdapter]:
    a = KubeAdapter.from_kubeconfig(fake.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        yield a
    finally:
        a.close()


# -- apply --------------------------------------------------------------------------------------


def test_first_apply_creates_everything_and_a_second_plan_is_empty(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    lines: list[str] = []
    result = reconcile(adapter, mapping(), report=lines.append)
    assert everything(fake) == {
        f"ClusterRoleBinding {CRB_ADMINS}",
        f"RoleBinding dev/{RB_DEVS}",
        f"RoleBinding team-a/{RB_DEVS}",
        "ServiceAccount ci/deployer",
        f"RoleBinding ci/{RB_DEPLOYER}",
    }
    assert len(result.done) == 5 and result.summary() == "applied 5 changes (5 created)"
    # Plan order: ServiceAccounts first, then bindings.
    assert lines[0] == (
        "+ created ServiceAccount ci/deployer (serviceAccounts[0]: role"
        " arn:aws:iam::111122223333:role/ci-deployer)"
    )
    assert lines[1] == (
        f"+ created ClusterRoleBinding {CRB_ADMINS} (bindings[0]: Group authbridge:admins"
        " -> ClusterRole cluster-admin)"
    )
    for obj in fake.objects("RoleBinding") + fake.objects("ClusterRoleBinding"):
        assert obj["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY_VALUE
    account = fake.get("ServiceAccount", "deployer", "ci")
    assert account is not None
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == (
        "arn:aws:iam::111122223333:role/ci-deployer"
    )

    fake.clear_requests()
    again = plan_cluster(adapter, mapping(), prune=True)
    assert again.actions == () and again.orphans == () and again.lockout is None
    assert {r.verb for r in fake.requests} == {"list"}  # read-only; nothing left to get
    assert reconcile(adapter, mapping(), prune=True).summary() == (
        "no changes: the cluster matches the mapping (5 objects)"
    )


def test_a_hand_edited_object_is_updated_in_place_keeping_what_others_added(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    reconcile(adapter, mapping())
    edited = fake.get("RoleBinding", RB_DEVS, "dev")
    assert edited is not None
    edited["subjects"].append({"kind": "User", "apiGroup": RBAC, "name": "mallory"})
    edited["metadata"]["labels"]["team"] = "dev"
    edited["metadata"]["annotations"]["note"] = "kept"
    fake.put(edited)
    uid = edited["metadata"]["uid"]

    planned = plan_cluster(adapter, mapping(), prune=False)
    assert [(a.op, str(a.ref)) for a in planned.actions] == [
        ("update", f"RoleBinding dev/{RB_DEVS}")
    ]
    lines: list[str] = []
    fake.clear_requests()
    reconcile(adapter, mapping(), report=lines.append)
    assert lines == [f"~ updated RoleBinding dev/{RB_DEVS}: subjects: -User mallory"]
    put = next(r for r in fake.requests if r.verb == "update")
    assert put.body["metadata"]["resourceVersion"]  # optimistic concurrency
    after = fake.get("RoleBinding", RB_DEVS, "dev")
    assert after is not None
    assert [s["name"] for s in after["subjects"]] == ["authbridge:devs"]
    assert after["metadata"]["labels"]["team"] == "dev"
    assert after["metadata"]["annotations"]["note"] == "kept"
    assert after["metadata"]["uid"] == uid  # the same object, updated
    assert plan_cluster(adapter, mapping(), prune=True).actions == ()


def test_a_different_role_ref_is_deleted_then_created(fake: FakeKube, adapter: KubeAdapter) -> None:
    reconcile(adapter, mapping())
    wrong = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert wrong is not None
    fake.remove("ClusterRoleBinding", CRB_ADMINS)  # re-created by hand with another role
    wrong["roleRef"]["name"] = "view"
    fake.put(wrong)
    fake.clear_requests()
    lines: list[str] = []
    reconcile(adapter, mapping(), report=lines.append)
    assert lines == [
        f"-/+ replaced ClusterRoleBinding {CRB_ADMINS}: roleRef: ClusterRole view ->"
        " ClusterRole cluster-admin"
    ]
    writes = [(r.verb, r.status) for r in fake.requests if r.verb not in ("list", "get")]
    assert writes == [("delete", 200), ("create", 201)]
    delete = next(r for r in fake.requests if r.verb == "delete")
    assert delete.body["preconditions"]["resourceVersion"]
    after = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert after is not None and after["roleRef"]["name"] == "cluster-admin"
    assert after["metadata"]["uid"] != wrong["metadata"]["uid"]


def test_prune_removes_exactly_the_removed_entry_and_never_unmanaged_objects(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    both = HEAD + "bindings:\n" + ADMINS + VIEWERS + DEVS  # the last entry goes
    reconcile(adapter, mapping(both))
    before = everything(fake)
    viewer = next(n for n in fake.names("ClusterRoleBinding") if n.startswith("authbridge-view"))
    # The same name as an object of the removed entry, but not authbridge's …
    twin = fake.get("RoleBinding", RB_DEVS, "dev")
    assert twin is not None
    twin["metadata"]["namespace"] = "default"
    fake.put(unmanaged(twin))
    # … and an unrelated object.
    fake.put(
        unmanaged(
            {
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "platform-admins"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "platform"}],
            }
        )
    )
    without_devs = HEAD + "bindings:\n" + ADMINS + VIEWERS

    # Without prune: nothing deleted; the orphans are listed.
    kept = reconcile(adapter, mapping(without_devs))
    assert not kept.done
    assert sorted(str(o.ref) for o in kept.planned.orphans) == [
        f"RoleBinding dev/{RB_DEVS}",
        f"RoleBinding team-a/{RB_DEVS}",
    ]

    lines: list[str] = []
    pruned = reconcile(adapter, mapping(without_devs), prune=True, report=lines.append)
    assert sorted(lines) == [
        f"- deleted RoleBinding dev/{RB_DEVS}: not in the mapping (was bindings[2])",
        f"- deleted RoleBinding team-a/{RB_DEVS}: not in the mapping (was bindings[2])",
    ]
    assert pruned.summary() == "applied 2 changes (2 deleted)"
    assert everything(fake) == (
        before - {f"RoleBinding dev/{RB_DEVS}", f"RoleBinding team-a/{RB_DEVS}"}
        | {f"RoleBinding default/{RB_DEVS}", "ClusterRoleBinding platform-admins"}
    )
    assert f"ClusterRoleBinding {viewer}" in everything(fake)
    assert plan_cluster(adapter, mapping(without_devs), prune=True).actions == ()


def test_a_name_taken_by_an_unmanaged_object_refuses_the_plan(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    fake.put(
        unmanaged(
            {
                "kind": "RoleBinding",
                "metadata": {"name": RB_DEVS, "namespace": "team-a"},
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "someone"}],
            }
        )
    )
    before = fake.snapshot()
    with pytest.raises(PlanConflict) as info:
        reconcile(adapter, mapping(), prune=True)
    assert f"RoleBinding team-a/{RB_DEVS}" in str(info.value)
    assert "not managed by authbridge" in str(info.value)
    assert fake.snapshot() == before


def test_a_conflict_mid_apply_stops_with_a_clear_message_and_a_rerun_converges(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    fake.fail_next(
        "POST",
        "/clusterrolebindings$",
        409,
        reason="AlreadyExists",
        message=f'clusterrolebindings.rbac.authorization.k8s.io "{CRB_ADMINS}" already exists',
    )
    lines: list[str] = []
    with pytest.raises(KubeConflict) as info:
        reconcile(adapter, mapping(), report=lines.append)
    message = str(info.value)
    assert message.startswith("stopped after 1 of 5 changes: ")
    assert f"ClusterRoleBinding {CRB_ADMINS} was created by someone else meanwhile" in message
    assert "run apply again" in message
    assert lines == [
        "+ created ServiceAccount ci/deployer (serviceAccounts[0]: role"
        " arn:aws:iam::111122223333:role/ci-deployer)"
    ]
    assert everything(fake) == {"ServiceAccount ci/deployer"}

    rerun = reconcile(adapter, mapping())
    assert rerun.summary() == "applied 4 changes (4 created)"
    assert plan_cluster(adapter, mapping(), prune=True).actions == ()


def test_a_real_conflict_between_observe_and_update_is_never_overwritten(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    reconcile(adapter, mapping())
    edited = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert edited is not None
    edited["subjects"].append({"kind": "User", "apiGroup": RBAC, "name": "mallory"})
    fake.put(edited)

    def meanwhile() -> None:
        current = fake.get("ClusterRoleBinding", CRB_ADMINS)
        assert current is not None
        current["metadata"]["annotations"]["touched"] = "by someone else"
        fake.put(current)

    fake.on_next("PUT", f"/clusterrolebindings/{CRB_ADMINS}$", meanwhile)
    with pytest.raises(KubeConflict, match="changed by someone else meanwhile"):
        reconcile(adapter, mapping())
    stored = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert stored is not None
    assert stored["metadata"]["annotations"]["touched"] == "by someone else"
    reconcile(adapter, mapping())
    stored = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert stored is not None
    assert [s["name"] for s in stored["subjects"]] == ["authbridge:admins"]
    assert stored["metadata"]["annotations"]["touched"] == "by someone else"


def test_a_server_error_mid_apply_stops_and_a_rerun_converges(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    fake.fail_next("POST", "/namespaces/team-a/rolebindings$", 500)
    with pytest.raises(KubeUnavailable) as info:
        reconcile(adapter, mapping())
    # Order: the ServiceAccount, the ClusterRoleBinding, RoleBindings in ci, dev, team-a.
    assert str(info.value).startswith("stopped after 4 of 5 changes: the API server at")
    assert "try again later" in str(info.value)
    assert len(everything(fake)) == 4
    assert reconcile(adapter, mapping()).summary() == "applied 1 change (1 created)"


def test_an_object_already_gone_counts_as_deleted(fake: FakeKube, adapter: KubeAdapter) -> None:
    reconcile(adapter, mapping())
    fake.on_next(
        "DELETE",
        "/rolebindings/",
        lambda: fake.remove("RoleBinding", RB_DEVS, "dev"),
    )
    lines: list[str] = []
    without_devs = HEAD + "bindings:\n" + ADMINS + SERVICE_ACCOUNTS
    reconcile(adapter, mapping(without_devs), prune=True, report=lines.append)
    assert (
        f"- deleted RoleBinding dev/{RB_DEVS}: not in the mapping (was bindings[1])"
        + (" (it was already gone)")
        in lines
    )
    assert plan_cluster(adapter, mapping(without_devs), prune=True).actions == ()


def test_lockout_is_refused_naming_the_entry_unless_allowed(
    fake: FakeKube, adapter: KubeAdapter
) -> None:
    reconcile(adapter, mapping())
    no_admins = HEAD + "bindings:\n" + DEVS + SERVICE_ACCOUNTS
    before = fake.snapshot()
    with pytest.raises(LockoutRefused) as info:
        reconcile(adapter, mapping(no_admins), prune=True)
    message = str(info.value)
    assert "bindings[0]" in message and "Group authbridge:admins" in message
    assert "--allow-lockout" in message
    assert fake.snapshot() == before
    # Without prune the old binding stays, so nobody is locked out.
    assert reconcile(adapter, mapping(no_admins)).planned.lockout is None

    lines: list[str] = []
    done = reconcile(
        adapter, mapping(no_admins), prune=True, allow_lockout=True, report=lines.append
    )
    assert lines[0].startswith("warning: --allow-lockout given: bindings[0]")
    assert [a.op for a in done.done] == ["delete"]
    assert fake.get("ClusterRoleBinding", CRB_ADMINS) is None


def test_server_dry_run_changes_nothing(fake: FakeKube, adapter: KubeAdapter) -> None:
    before = fake.snapshot()
    lines: list[str] = []
    result = reconcile(adapter, mapping(), dry_run=True, report=lines.append)
    assert fake.snapshot() == before
    assert len(lines) == 5 and all(line.endswith("(server dry run)") for line in lines)
    assert result.summary() == (
        "server dry run: 5 changes (5 created) accepted by the API server; nothing was changed"
    )
    # A replace in a dry run: the delete is not real, so the create meets the old object.
    reconcile(adapter, mapping())
    wrong = fake.get("ClusterRoleBinding", CRB_ADMINS)
    assert wrong is not None
    fake.remove("ClusterRoleBinding", CRB_ADMINS)
    wrong["roleRef"]["name"] = "view"
    fake.put(wrong)
    before = fake.snapshot()
    result = reconcile(adapter, mapping(), dry_run=True)
    assert [a.op for a in result.done] == ["replace"]
    assert fake.snapshot() == before


# -- watch --------------------------------------------------------------------------------------


class Clock:
    """Fake time for watch: ``sleep`` advances it and runs the scripted events that fall due."""

    def __init__(self, stop: threading.Event, until: float) -> None:
        self.now = 0.0
        self.stop = stop
        self.until = until
        self.events: list[tuple[float, Callable[[], None]]] = []
        self.sleeps: list[float] = []

    def at(self, when: float, event: Callable[[], None]) -> None:
        self.events.append((when, event))
        self.events.sort(key=lambda e: e[0])

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.001)
        while self.events and self.events[0][0] <= self.now:
            self.events.pop(0)[1]()
        if self.now >= self.until:
            self.stop.set()


def run_watch(
    adapter: KubeAdapter,
    mapping_file: Path,
    *,
    until: float,
    script: Callable[[Clock], None] = lambda clock: None,
    **options: Any,
) -> tuple[list[tuple[float, str]], Clock]:
    stop = threading.Event()
    clock = Clock(stop, until)
    script(clock)
    holder = MappingHolder(mapping_file, check_interval=0.0, clock=clock)
    lines: list[tuple[float, str]] = []
    watch(
        adapter,
        holder,
        stop=stop,
        report=lambda line: lines.append((clock.now, line)),
        sleep=clock.sleep,
        clock=clock,
        jitter=lambda: 0.0,
        **options,
    )
    return lines, clock


def write(path: Path, text: str) -> None:
    # Atomically, as a ConfigMap mount changes: a new inode, so the holder sees it.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def test_watch_reconciles_at_start_on_mapping_change_and_periodically(
    fake: FakeKube, adapter: KubeAdapter, tmp_path: Path
) -> None:
    file = tmp_path / "mapping.yaml"
    write(file, MAPPING)

    def script(clock: Clock) -> None:
        clock.at(5, lambda: write(file, HEAD + "bindings:\n" + ADMINS + DEVS + VIEWERS))
        clock.at(10, lambda: fake.add_namespace("team-b"))

    lines, _ = run_watch(adapter, file, until=75, interval=60, prune=True, script=script)
    text = [line for _, line in lines]
    assert sum(line.startswith("+ created") for line in text) == 7
    assert text[5] == "applied 5 changes (5 created)"
    assert lines[5][0] < 1  # at start
    changed = next(t for t, line in lines if line.startswith("mapping changed (version 2)"))
    assert 5 <= changed <= 6
    viewer = next(t for t, line in lines if "alice -> ClusterRole view" in line)
    assert 5 <= viewer <= 6
    team_b = next(t for t, line in lines if "team-b/" in line)
    assert 65 <= team_b <= 66  # the periodic run: an interval after the last one, not before
    assert f"RoleBinding team-b/{RB_DEVS}" in everything(fake)


def test_watch_backs_off_on_api_errors_and_recovers(
    fake: FakeKube, adapter: KubeAdapter, tmp_path: Path
) -> None:
    file = tmp_path / "mapping.yaml"
    write(file, MAPPING)
    fake.fail_next("GET", "^/api/v1/namespaces$", 503, times=4)
    lines, _ = run_watch(adapter, file, until=30, interval=60)
    errors = [(t, line) for t, line in lines if line.startswith("error:")]
    assert [line.rsplit("retrying in ", 1)[1] for _, line in errors] == [
        "1.0s)",
        "2.0s)",
        "4.0s)",
        "8.0s)",
    ]
    assert "503 ServiceUnavailable" in errors[0][1] and "failure 1 in a row" in errors[0][1]
    assert [round(t) for t, _ in errors] == [0, 1, 3, 7]
    applied = next(t for t, line in lines if line.startswith("applied 5 changes"))
    assert 15 <= applied <= 16
    assert len(everything(fake)) == 5


def test_backoff_delay_doubles_with_jitter_up_to_a_minute() -> None:
    assert [backoff_delay(n, 0.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay(3, 0.5) == pytest.approx(4.4)
    assert backoff_delay(6, 0.99) == pytest.approx(38.336)
    assert backoff_delay(7, 0.99) == 60
    assert backoff_delay(10_000, 0.99) == 60


def test_watch_refusal_waits_for_the_interval_or_a_mapping_change(
    fake: FakeKube, adapter: KubeAdapter, tmp_path: Path
) -> None:
    file = tmp_path / "mapping.yaml"
    write(file, MAPPING)
    reconcile(adapter, mapping())
    write(file, HEAD + "bindings:\n" + DEVS + SERVICE_ACCOUNTS)  # drops the admins entry
    lines, _ = run_watch(
        adapter,
        file,
        until=130,
        interval=60,
        prune=True,
        script=lambda c: c.at(100, lambda: write(file, MAPPING)),
    )
    refusals = [t for t, line in lines if line.startswith("refused:") and "bindings[0]" in line]
    assert [round(t) for t in refusals] == [0, 60]
    assert fake.get("ClusterRoleBinding", CRB_ADMINS) is not None
    assert lines[-1][1] == "no changes: the cluster matches the mapping (5 objects)"


def test_watch_never_reconciles_without_a_valid_mapping(
    fake: FakeKube, adapter: KubeAdapter, tmp_path: Path
) -> None:
    reconcile(adapter, mapping())
    before = fake.snapshot()
    fake.clear_requests()
    lines, _ = run_watch(adapter, tmp_path / "missing.yaml", until=5, prune=True)
    assert fake.requests == [] and fake.snapshot() == before
    assert [line for _, line in lines] == [
        f"mapping: mapping file {tmp_path / 'missing.yaml'} does not exist; every identity is"
        " refused",
        "waiting for a valid mapping file; nothing is reconciled until then",
    ]


def test_watch_keeps_the_last_good_mapping_when_the_file_turns_invalid(
    fake: FakeKube, adapter: KubeAdapter, tmp_path: Path
) -> None:
    file = tmp_path / "mapping.yaml"
    write(file, MAPPING)
    lines, _ = run_watch(
        adapter,
        file,
        until=70,
        interval=60,
        prune=True,
        script=lambda c: c.at(3, lambda: write(file, "bindings: [{group: x}]\n")),
    )
    assert len(everything(fake)) == 5  # nothing pruned
    invalid = [line for _, line in lines if line.startswith("mapping: ")]
    assert len(invalid) == 1 and "is invalid" in invalid[0]
    assert "still serving the last good mapping" in invalid[0]
