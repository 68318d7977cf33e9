"""``authbridge rbac …``: the RBAC objects the mapping asks for: render, plan, apply, watch.

The mapping is the configured one (setting ``mappingFile``, ``AUTHBRIDGE_MAPPING_FILE``,
default ``rbac/mapping.yaml``) unless ``--mapping FILE`` names another. An
invalid mapping is reported as ``authbridge mapping check`` reports it (a
header line, then one indented line per problem) with exit code 1.

The cluster (plan, apply, watch) is ``--kubeconfig``/``--context`` when given,
else ``$KUBECONFIG``, else the pod's ServiceAccount when running in a cluster
(``KUBERNETES_SERVICE_HOST`` set), else ``~/.kube/config``.

Exit codes: 0 success (plan: nothing to do); 1 refused or failed (one line on
stderr: a lockout, a name taken by an object authbridge does not manage, an
API error); plan: 2 when changes are pending, so CI can gate on drift.
Warnings (a namespace the mapping names that does not exist …) go to stderr
as ``authbridge: warning: …`` lines and do not change the exit code.

This module imports the RBAC code, the mapping and the kubernetes client only
when a command runs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import ConfigError

if TYPE_CHECKING:
    from authbridge.kube import KubeAdapter
    from authbridge.mapping.model import Mapping
    from authbridge.rbac.model import Action, KubeObject
    from authbridge.rbac.reconcile import Planned

PLAN_PENDING_EXIT = 2


@click.group()
def rbac() -> None:
    """Turn the mapping's bindings and serviceAccounts into RBAC objects in a cluster.

    Objects authbridge makes carry app.kubernetes.io/managed-by: authbridge;
    nothing else is ever updated or deleted. apply refuses a change that
    would leave no identity of the mapping bound to cluster-admin unless
    --allow-lockout is given.

    \b
    Example:
      authbridge rbac render --namespace dev | kubectl apply -f -
      authbridge rbac plan --prune            # exit 2 when changes are pending
      authbridge rbac apply --prune --dry-run=server
      authbridge rbac apply --prune
      authbridge rbac watch --prune --interval 60   # in the cluster, as a Deployment
    """


_mapping_option = click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Mapping file (default: the setting mappingFile, rbac/mapping.yaml).",
)
_cluster_option = click.option(
    "--cluster-id",
    metavar="ID",
    help="The cluster whose access entries to render with the mapping (default: the"
    " mapping's clusterID, else the one configured cluster).",
)
_kubeconfig_option = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="kubeconfig file (default: $KUBECONFIG, in-cluster, then ~/.kube/config).",
)
_context_option = click.option(
    "--context", metavar="NAME", help="kubeconfig context (default: its current-context)."
)
_prune_option = click.option(
    "--prune",
    is_flag=True,
    help="Also delete objects labelled managed-by authbridge that the mapping no longer asks for.",
)
_allow_lockout_option = click.option(
    "--allow-lockout",
    is_flag=True,
    help="Apply even if no identity in the mapping would be left bound to cluster-admin.",
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _mapping_path(app: App, mapping_file: Path | None) -> Path:
    return mapping_file if mapping_file is not None else app.settings.mapping_file


def _load_mapping(app: App, mapping_file: Path | None) -> Mapping:
    """The mapping, or exit 1 with ``mapping check``'s multi-line report when it is invalid."""
    from authbridge.mapping import MappingError, load_mapping

    path = _mapping_path(app, mapping_file)
    if not path.exists():
        raise ConfigError(
            f"mapping file {path} does not exist",
            hint="pass --mapping FILE, or set mappingFile in the config (AUTHBRIDGE_MAPPING_FILE)",
        )
    try:
        return load_mapping(path)
    except MappingError as e:
        head = f"authbridge: {out.clean(str(path))} is invalid"
        click.echo(f"{head} ({_plural(len(e.problems), 'problem')}):", err=True)
        for problem in e.problems:
            click.echo(f"  {out.clean(problem)}", err=True)
        raise click.exceptions.Exit(1) from None


def _entries_cluster(app: App, mapping: Mapping, cluster_id: str | None) -> str | None:
    """The cluster whose access entries join the mapping; None: the file alone.

    Entries are read when the store exists (a PostgreSQL store, or a SQLite
    file that is there): ``rbac render`` on a machine with only a mapping file
    renders the file, and creates no store.
    """
    from authbridge.iam.access import cluster_id as check_cluster

    dsn = app.settings.store
    if dsn.startswith("sqlite:///") and not Path(dsn.removeprefix("sqlite:///")).exists():
        if cluster_id is not None:
            raise ConfigError(
                f"--cluster-id {cluster_id}: there is no store to read its access entries from"
                f" ({dsn} does not exist)",
                hint="pass --store DSN (or set AUTHBRIDGE_STORE), or drop --cluster-id",
            )
        return None
    cluster = cluster_id or mapping.cluster_id
    if cluster is None and len(app.settings.cluster_ids) == 1:
        cluster = app.settings.cluster_ids[0]
    if cluster is None:
        snapshot = app.store.access_snapshot()
        if snapshot.entries or snapshot.modes:
            raise ConfigError(
                "the store has access entries and no cluster was chosen",
                hint="pass --cluster-id ID, or set clusterID in the mapping",
            )
        return None
    return check_cluster(cluster)


def _with_entries(app: App, mapping: Mapping, cluster_id: str | None) -> Mapping:
    """The mapping RBAC works from (authbridge.mapping.entries.effective_mapping)."""
    from authbridge.mapping.entries import effective_mapping

    cluster = _entries_cluster(app, mapping, cluster_id)
    if cluster is None:
        return mapping
    return effective_mapping(mapping, app.store.access_snapshot(), cluster)


class _WithEntries:
    """A :class:`~authbridge.rbac.reconcile.MappingSource`: the file's holder and the store.

    ``version`` moves when either the mapping file or the store's access
    version does, so watch reconciles on an access-entry change as on a file
    change. A store that cannot be read keeps the last entries and says why in
    ``last_error``.
    """

    def __init__(self, holder: Any, store: Any, cluster: str) -> None:
        self._holder, self._store, self._cluster = holder, store, cluster
        self._seen: tuple[int, int] | None = None
        self._snapshot: Any = None
        self._store_error: str | None = None
        self.version = 0

    @property
    def ready(self) -> bool:
        return bool(self._holder.ready) and self._snapshot is not None

    @property
    def last_error(self) -> str | None:
        return self._holder.last_error or self._store_error

    def current(self) -> Mapping:
        from authbridge.errors import StoreError
        from authbridge.mapping.entries import effective_mapping

        mapping: Mapping = self._holder.current()
        try:
            self._snapshot = self._store.access_snapshot()
            self._store_error = None
        except StoreError as e:
            self._store_error = f"access entries: {e} (the last ones read are kept)"
        if self._snapshot is None:
            return mapping
        seen = (self._holder.version, self._snapshot.version)
        if seen != self._seen:
            self._seen = seen
            self.version += 1
        return effective_mapping(mapping, self._snapshot, self._cluster)


def _warn(line: str) -> None:
    click.echo(f"authbridge: {out.one_line(line)}", err=True)


def _adapter(kubeconfig: Path | None, context: str | None) -> KubeAdapter:
    from authbridge.kube import KubeAdapter

    return KubeAdapter.auto(kubeconfig, context, env=os.environ)


@rbac.command("render")
@_mapping_option
@_cluster_option
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="A namespace of the target cluster (repeat). Given: namespace patterns resolve"
    " against these and other namespaces are left out. Not given: the namespaces the"
    " mapping names exactly are taken as existing, patterns are left out.",
)
@output_option
@pass_app
def render(
    app: App, mapping_file: Path | None, cluster_id: str | None, namespaces: tuple[str, ...]
) -> None:
    """Print the objects the mapping asks for as YAML that `kubectl apply -f -` accepts.

    Needs no cluster (for GitOps). A cluster's namespaces are not known here:
    pass them with --namespace to resolve patterns such as team-*; what cannot
    be placed is reported on stderr as a warning. Unlike apply, render cannot
    delete what the mapping no longer asks for. -o json prints a v1 List.

    \b
    Example:
      authbridge rbac render --namespace dev --namespace team-a | kubectl apply -f -
      authbridge rbac render --mapping rbac/mapping.yaml > rbac/objects.yaml
    """
    from authbridge.rbac.desired import desired_state
    from authbridge.rbac.render import apply_manifest, render_yaml

    mapping = _with_entries(app, _load_mapping(app, mapping_file), cluster_id)
    state = desired_state(mapping, list(namespaces) if namespaces else None)
    for warning in state.warnings:
        _warn(f"warning: {warning}")
    if app.output == "json":
        # A v1 List, which kubectl apply -f - reads as well.
        items = [apply_manifest(o.manifest) for o in state.objects]
        app.emit({"apiVersion": "v1", "kind": "List", "items": items}, lambda: None)
        return
    text = render_yaml(state.objects)
    if text:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        click.echo("# no objects: the mapping has no bindings or serviceAccounts to place")


def _action_doc(a: Action) -> dict[str, Any]:
    return {
        "op": a.op,
        "kind": a.ref.kind,
        "namespace": a.ref.namespace,
        "name": a.ref.name,
        "changes": list(a.changes),
    }


def _ref_doc(o: KubeObject) -> dict[str, Any]:
    return {"kind": o.ref.kind, "namespace": o.ref.namespace, "name": o.ref.name}


def _plan_doc(planned: Planned) -> dict[str, Any]:
    return {
        "changes": [_action_doc(a) for a in planned.actions],
        "keptWithoutPrune": [_ref_doc(o) for o in planned.orphans],
        "lockout": planned.lockout,
        "warnings": list(planned.warnings),
        "desiredObjects": len(planned.desired),
    }


def _plan_summary(actions: tuple[Action, ...]) -> str:
    counts = {op: sum(1 for a in actions if a.op == op) for op in ("create", "update", "replace")}
    counts["delete"] = sum(1 for a in actions if a.op == "delete")
    return (
        f"Plan: {counts['create']} to create, {counts['update']} to update,"
        f" {counts['replace']} to replace, {counts['delete']} to delete."
    )


@rbac.command("plan")
@_mapping_option
@_cluster_option
@_kubeconfig_option
@_context_option
@_prune_option
@output_option
@pass_app
def plan_command(
    app: App,
    mapping_file: Path | None,
    cluster_id: str | None,
    kubeconfig: Path | None,
    context: str | None,
    prune: bool,
) -> None:
    """Show what apply would change in the cluster, without changing anything.

    One line per change: + create, ~ update in place, -/+ delete and create
    (a binding's roleRef cannot change), - delete (with --prune). Without
    --prune, managed objects the mapping no longer asks for are listed as
    "would delete with --prune". Exit code 0 when there is nothing to do, 2
    when changes are pending (1 on errors). -o json prints the changes as JSON.

    \b
    Example:
      authbridge rbac plan --prune || echo "the cluster has drifted from the mapping"
    """
    from authbridge.rbac.reconcile import describe_action, orphan_line, plan_cluster

    mapping = _with_entries(app, _load_mapping(app, mapping_file), cluster_id)
    adapter = _adapter(kubeconfig, context)
    try:
        planned = plan_cluster(adapter, mapping, prune=prune)
    finally:
        adapter.close()
    for warning in planned.warnings:
        _warn(f"warning: {warning}")

    def text() -> str:
        lines = [out.clean(describe_action(a)) for a in planned.actions]
        lines += [out.clean(orphan_line(o)) for o in planned.orphans]
        if planned.lockout is not None:
            lines.append(out.clean(f"! apply would refuse this plan: {planned.lockout}"))
        if planned.actions:
            lines.append(_plan_summary(planned.actions))
        else:
            n = len(planned.desired)
            lines.append(f"No changes: the cluster matches the mapping ({_plural(n, 'object')}).")
        return "\n".join(lines)

    app.emit(_plan_doc(planned), text)
    if planned.actions:
        raise click.exceptions.Exit(PLAN_PENDING_EXIT)


@rbac.command("apply")
@_mapping_option
@_cluster_option
@_kubeconfig_option
@_context_option
@_prune_option
@click.option(
    "--dry-run",
    type=click.Choice(["none", "server"]),
    default="none",
    show_default=True,
    help="server: send every change with dryRun=All, so the API server checks it"
    " (permissions, validation, admission) and stores nothing.",
)
@_allow_lockout_option
@output_option
@pass_app
def apply_command(
    app: App,
    mapping_file: Path | None,
    cluster_id: str | None,
    kubeconfig: Path | None,
    context: str | None,
    prune: bool,
    dry_run: str,
    allow_lockout: bool,
) -> None:
    """Make the cluster's RBAC objects match the mapping, reporting each change.

    Runs the plan of `authbridge rbac plan`: creates, updates (checked against
    the version it read: a concurrent change is refused, not overwritten),
    delete-and-creates, and with --prune deletes. On an API error it stops
    with one line on stderr saying what to do; what was done stays done, and
    running apply again converges from there. -o json prints what was done
    as one JSON document at the end.

    \b
    Example:
      authbridge rbac apply --prune --dry-run=server
      authbridge rbac apply --prune --kubeconfig ~/.kube/prod --context admin@prod
    """
    from authbridge.rbac.reconcile import orphan_line, reconcile

    mapping = _with_entries(app, _load_mapping(app, mapping_file), cluster_id)
    adapter = _adapter(kubeconfig, context)
    try:
        result = reconcile(
            adapter,
            mapping,
            prune=prune,
            dry_run=dry_run == "server",
            allow_lockout=allow_lockout,
            report=(lambda _: None) if app.output == "json" else _echo,
            warn=_warn,
        )
    finally:
        adapter.close()
    doc = {
        "dryRun": result.dry_run,
        "done": [_action_doc(a) for a in result.done],
        "keptWithoutPrune": [_ref_doc(o) for o in result.planned.orphans],
        "summary": result.summary(),
    }

    def text() -> str:
        lines = [out.clean(orphan_line(o)) for o in result.planned.orphans]
        return "\n".join([*lines, out.clean(result.summary())])

    app.emit(doc, text)


def _echo(line: str) -> None:
    click.echo(out.clean(line))


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@rbac.command("watch")
@_mapping_option
@_cluster_option
@_kubeconfig_option
@_context_option
@_prune_option
@_allow_lockout_option
@click.option(
    "--interval",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Reconcile at least this often (also on every change of the mapping file).",
)
@output_option
@pass_app
def watch_command(
    app: App,
    mapping_file: Path | None,
    cluster_id: str | None,
    kubeconfig: Path | None,
    context: str | None,
    prune: bool,
    allow_lockout: bool,
    interval: float,
) -> None:
    """Keep the cluster matching the mapping: apply as a long-running controller.

    Reconciles at start, whenever the mapping file changes (checked every
    second; an invalid new file is reported and the last good mapping kept)
    and every --interval seconds (new namespaces matching a pattern get their
    RoleBindings). API errors back off (1 s, 2 s, … up to 60 s) and are
    retried. One timestamped line per event on stdout (-o json: one JSON
    object per line, {"time", "message"}). SIGTERM or SIGINT
    stops it cleanly (exit 0). Meant to run in the cluster as the
    ServiceAccount of rbac/authbridge-rbac.yaml.

    \b
    Example:
      authbridge rbac watch --prune --mapping /etc/authbridge/mapping.yaml
    """
    from authbridge.mapping import MappingHolder
    from authbridge.rbac.reconcile import watch

    # Checked once up front: a bad start is an error now, not a controller waiting forever.
    cluster = _entries_cluster(app, _load_mapping(app, mapping_file), cluster_id)
    path = _mapping_path(app, mapping_file)
    adapter = _adapter(kubeconfig, context)
    stop = threading.Event()

    def report(line: str) -> None:
        if app.output == "json":
            click.echo(json.dumps({"time": _stamp(), "message": line}, ensure_ascii=True))
        else:
            click.echo(f"{_stamp()} {out.clean(line)}")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        report(f"received {signal.Signals(signum).name}; stopping")
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        holder: Any = MappingHolder(path, log=_silent_log())
        if cluster is not None:
            holder = _WithEntries(holder, app.store, cluster)
        report(
            f"watching {adapter.source} for mapping {path} (every {interval:g}s"
            f"{', prune' if prune else ''}{', allow-lockout' if allow_lockout else ''})"
        )
        watch(
            adapter,
            holder,
            stop=stop,
            interval=interval,
            prune=prune,
            allow_lockout=allow_lockout,
            report=report,
        )
        report("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        adapter.close()


def _silent_log() -> Any:
    """A logger that drops the holder's own lines: watch reports the same events itself."""
    import logging

    log = logging.getLogger("authbridge.cli.rbac.watch.mapping")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log
