"""``authbridge access explain``: the access explorer from the command line.

Two questions, one command (:mod:`authbridge.explain` answers both; ``-o json``
prints its ``to_json()``, docs/reference.md "Access explorer"):

* ``--principal-arn ARN``: per cluster, the Kubernetes user an IAM user, role or
  role session gets (what ``/verify`` would answer), the roles it may assume, and
  every RBAC binding that applies with its role's rules;
* ``--verb V --resource R [--api-group G] [--namespace N] [--name NAME]``: the IAM
  users and roles that may do that, and through which binding, entry and trust.

It reads the store directly (like ``rbac``; no admin API action yet: API mode is
refused) and the mapping file (``--mapping``, else the setting; no file at the
configured path means the access entries alone, as the server does). RBAC is read
from the cluster named by ``--cluster-id`` when ``--kubeconfig`` or ``--context``
is given (list clusterroles, roles, clusterrolebindings, rolebindings, as whoever
the kubeconfig speaks for); every other cluster, and that one when it cannot be
read, is answered from the bindings ``rbac render`` gives, and the answer says so
(``rbac.source``: ``cluster`` or ``rendered``, with the reason in ``rbac.notes``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import ConfigError

if TYPE_CHECKING:
    from authbridge.explain import Rbac, Snapshot
    from authbridge.iam.access import AccessSnapshot
    from authbridge.mapping.model import Mapping

_EXAMPLE = """\b
Examples:
  authbridge access explain --principal-arn arn:aws:iam::111122223333:user/alice
  authbridge access explain --verb delete --resource deployments --api-group apps \\
      --namespace prod --cluster-id prod --kubeconfig ~/.kube/prod -o json
"""


def _rules_text(rules: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rules:
        verbs = ",".join(r["verbs"])
        if "nonResourceURLs" in r:
            lines.append(f"      {verbs} on URLs {','.join(r['nonResourceURLs'])}")
            continue
        groups = ",".join(g or "core" for g in r["apiGroups"])
        names = f" named {','.join(r['resourceNames'])}" if r.get("resourceNames") else ""
        lines.append(f"      {verbs} on {','.join(r['resources'])} ({groups}){names}")
    return [out.clean(line) for line in lines]


def _binding_text(b: dict[str, Any]) -> str:
    where = f"{b['namespace']}/" if b.get("namespace") else ""
    return f"{b['kind']} {where}{b['name']} -> {b['roleRef']['kind']} {b['roleRef']['name']}"


def _subject_text(s: dict[str, Any]) -> str:
    return f"{s['kind']} {s['name']}"


def _identity_lines(c: dict[str, Any]) -> list[str]:
    lines = [
        f"Cluster {c['clusterId']} (authenticationMode {c['authenticationMode']};"
        f" RBAC {c['rbac']['source']}: {c['rbac']['where']})"
    ]
    lines += [f"  note: {n}" for n in c["rbac"]["notes"]]
    if not c["authenticated"]:
        lines.append(f"  not authenticated: {c['reason']}")
        return [out.clean(line) for line in lines]
    k = c["kubernetes"]
    lines.append(f"  username  {k['username']}")
    lines.append(f"  uid       {k['uid']}")
    lines.append(f"  groups    {', '.join(k['effectiveGroups'])}")
    rules = ", ".join(
        f"{r['section']}[{r['index']}]" + (f" ({r['arn']})" if r["arn"] else "")
        for r in c["contributingRules"]
    )
    lines.append(f"  mapped by {rules}")
    return [out.clean(line) for line in lines]


def principal_text(doc: dict[str, Any]) -> str:
    p = doc["principal"]
    lines = [out.clean(f"Principal {p['arn']} ({p['type']}, {p['principalId']})")]
    if p["type"] == "user":
        if not p["enabled"]:
            lines.append("  disabled: its tokens are refused")
        lines += [out.clean(f"  IAM group {g}") for g in p["iamGroups"]]
        lines.append(
            "Roles it may assume:" if doc["assumableRoles"] else "Roles it may assume: none"
        )
        lines += [
            out.clean(f"  {r['roleArn']}  (trust: {r['trust']['type']} {r['trust']['arn']})")
            for r in doc["assumableRoles"]
        ]
    else:
        lines.append(out.clean(f"  session name {p['sessionName']}"))
        lines.append(
            "Users that may assume it:" if doc["assumableBy"] else "Users that may assume it: none"
        )
        lines += [
            out.clean(f"  {u['userArn']}  (trust: {u['trust']['type']} {u['trust']['arn']})")
            for u in doc["assumableBy"]
        ]
    for c in doc["clusters"]:
        lines.append("")
        lines += _identity_lines(c)
        if not c["authenticated"]:
            continue
        if c["privileged"]:
            lines.append("  system:masters: the kube-apiserver allows it everything")
        if not c["grants"] and not c["privileged"]:
            lines.append("  no binding applies: RBAC allows it nothing")
        for g in c["grants"]:
            session = f", session {g['sessionName']} only" if "sessionName" in g else ""
            source = g["binding"]["source"] or "not authbridge's"
            lines.append(
                out.clean(
                    f"  {_binding_text(g['binding'])}  ({_subject_text(g['subject'])};"
                    f" source {source}{session})"
                )
            )
            lines += _rules_text(g["rules"])
        for u in c["unresolved"]:
            lines.append(out.clean(f"  {_binding_text(u['binding'])}: {u['reason']}"))
    return "\n".join(lines)


def permission_text(doc: dict[str, Any]) -> str:
    r = doc["request"]
    where = f"in namespace {r['namespace']}" if r["namespace"] else "cluster-wide"
    named = f" named {r['name']}" if r["name"] else ""
    lines = [
        out.clean(
            f"{r['verb']} {r['resource']}{named} ({r['apiGroup'] or 'core'} API group) {where}"
        )
    ]
    for c in doc["clusters"]:
        lines.append("")
        lines.append(
            out.clean(
                f"Cluster {c['clusterId']} (RBAC {c['rbac']['source']}: {c['rbac']['where']})"
            )
        )
        lines += [out.clean(f"  note: {n}") for n in c["rbac"]["notes"]]
        rows = []
        for p in c["principals"]:
            via = [_binding_text(g["binding"]) for g in p["grants"]]
            if p["privileged"]:
                via.insert(0, "group system:masters")
            trust = [u["userArn"] for u in p.get("assumableBy", [])]
            rows.append(
                {
                    "PRINCIPAL": p["arn"],
                    "TYPE": p["type"],
                    "ACCESS": p["access"],
                    "KUBERNETES USER": p["kubernetes"]["username"],
                    "VIA": via,
                    "SOURCE": sorted({g["binding"]["source"] or "-" for g in p["grants"]}),
                    "ASSUMABLE BY": trust if p["type"] == "role" else None,
                }
            )
        columns = (
            "PRINCIPAL",
            "TYPE",
            "ACCESS",
            "KUBERNETES USER",
            "VIA",
            "SOURCE",
            "ASSUMABLE BY",
        )
        lines.append(out.table(rows, columns, "  No IAM principal reaches it."))
        lines += [out.clean(f"  IAM group {g['arn']} ({g['via']})") for g in c["iamGroups"]]
        lines += [
            out.clean(f"  unresolved: {_binding_text(u['binding'])}: {u['reason']}")
            for u in c["unresolved"]
        ]
    return "\n".join(lines)


@click.command("explain", epilog=_EXAMPLE)
@click.option("--principal-arn", metavar="ARN", help="An IAM user, role or role-session ARN.")
@click.option("--verb", metavar="VERB", help="By permission: get, list, create, delete, … or *.")
@click.option(
    "--resource", metavar="RESOURCE", help="By permission: pods, deployments, pods/log, …"
)
@click.option("--api-group", metavar="GROUP", help="The resource's API group (default: core).")
@click.option("--namespace", metavar="NS", help="Default: cluster-scoped / all namespaces.")
@click.option("--name", "object_name", metavar="NAME", help="One object (resourceNames rules).")
@click.option(
    "--cluster-id",
    "cluster_ids",
    multiple=True,
    metavar="ID",
    help="The cluster (repeatable; default: every configured cluster).",
)
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Mapping file (default: the setting mappingFile).",
)
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Read RBAC from this cluster (the one --cluster-id names).",
)
@click.option("--context", metavar="NAME", help="kubeconfig context (implies reading the cluster).")
@output_option
@pass_app
def explain(
    app: App,
    principal_arn: str | None,
    verb: str | None,
    resource: str | None,
    api_group: str | None,
    namespace: str | None,
    object_name: str | None,
    cluster_ids: tuple[str, ...],
    mapping_file: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Who an IAM principal is in each cluster and what RBAC allows it, or who may do
    something: --principal-arn ARN, or --verb V --resource R [--namespace N].

    \b
    Example:
      authbridge access explain --principal-arn arn:aws:iam::111122223333:user/alice
      authbridge access explain --verb delete --resource deployments --api-group apps \\
          --namespace prod --cluster-id prod -o json
    """
    by_permission = [
        n
        for n, v in (
            ("--verb", verb),
            ("--resource", resource),
            ("--api-group", api_group),
            ("--namespace", namespace),
            ("--name", object_name),
        )
        if v is not None
    ]
    if principal_arn is not None and by_permission:
        raise click.UsageError(
            f"--principal-arn and {by_permission[0]} ask different questions; pass one of"
            " --principal-arn ARN or --verb V --resource R"
        )
    if principal_arn is None and not by_permission:
        raise click.UsageError("pass --principal-arn ARN, or --verb V --resource R")
    if by_permission and (verb is None or resource is None):
        missing = "--verb" if verb is None else "--resource"
        raise click.UsageError(f"{missing} is missing: by permission needs --verb and --resource")
    app.require_store("access explain")

    from authbridge.explain import explain_permission, explain_principal, permission_request

    # Checked before anything is read, so a bad request costs no store or cluster call.
    request = (
        permission_request(
            verb or "",
            resource or "",
            api_group=api_group or "",
            namespace=namespace,
            name=object_name,
        )
        if by_permission
        else None
    )
    snapshot = _snapshot(app, cluster_ids, mapping_file, kubeconfig, context)
    if request is not None:
        answer = explain_permission(snapshot, request, clusters=cluster_ids or None).to_json()
        app.emit(answer, lambda: permission_text(answer))
    else:
        doc = explain_principal(snapshot, principal_arn or "", clusters=cluster_ids or None)
        result = doc.to_json()
        app.emit(result, lambda: principal_text(result))


def _snapshot(
    app: App,
    cluster_ids: tuple[str, ...],
    mapping_file: Path | None,
    kubeconfig: Path | None,
    context: str | None,
) -> Snapshot:
    from authbridge.errors import InputError
    from authbridge.explain import load
    from authbridge.mapping.model import Mapping

    settings = app.settings
    served = settings.cluster_ids
    for c in cluster_ids:
        if c not in served:
            raise InputError(
                "clusterId",
                f"{out.clean(c)[:100]} is not a cluster this authbridge serves"
                f" ({', '.join(served)})",
                hint="pass one of the configured clusters (setting clusters)",
            )
    live = kubeconfig is not None or context is not None
    if live and len(cluster_ids) != 1 and len(served) != 1:
        raise click.UsageError(
            "--kubeconfig/--context read one cluster: name it with one --cluster-id"
        )
    live_cluster = (cluster_ids or served)[0] if live else None

    path = mapping_file if mapping_file is not None else settings.mapping_file
    if mapping_file is None and not path.exists():
        mapping = Mapping(source=str(path), digest="", cluster_id=None)
        click.echo(
            f"authbridge: warning: no mapping file at {out.clean(str(path))}: the access entries"
            " alone decide",
            err=True,
        )
    else:
        mapping = _load_mapping(path)
    live_rbac = _read_cluster(kubeconfig, context) if live_cluster is not None else None

    def rbac_of(mapping: Mapping, access: AccessSnapshot, cluster: str) -> Rbac:
        if cluster == live_cluster and live_rbac is not None:
            objects, where, problem = live_rbac
            if problem is None:
                return load.live_rbac(objects, where)
            return load.rendered_for(mapping, access, cluster, why=problem)
        return load.rendered_for(
            mapping,
            access,
            cluster,
            why=f"cluster {cluster} was not read (pass --cluster-id {cluster} --kubeconfig"
            " FILE to read it)",
        )

    return load.from_store(
        app.store,
        partition=settings.partition,
        mapping=mapping,
        clusters=list(cluster_ids or served),
        rbac_of=rbac_of,
    )


def _load_mapping(path: Path) -> Any:
    from authbridge.mapping import MappingError, load_mapping

    if not path.exists():
        raise ConfigError(
            f"mapping file {path} does not exist",
            hint="pass --mapping FILE naming the mapping, or leave --mapping out",
        )
    try:
        return load_mapping(path)
    except MappingError as e:
        raise ConfigError(
            f"{path} is invalid: {e.problems[0]}"
            + (f" (and {len(e.problems) - 1} more)" if len(e.problems) > 1 else ""),
            hint="`authbridge mapping check` lists every problem",
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read mapping file {path}: {e.strerror or e}") from e


def _read_cluster(
    kubeconfig: Path | None, context: str | None
) -> tuple[list[dict[str, Any]], str, str | None]:
    """The cluster's RBAC objects and where they came from, or the reason they could not
    be read (then the answer is rendered). A kubeconfig that cannot be used is an error:
    it was asked for by name."""
    from authbridge.kube import KubeAdapter
    from authbridge.rbac.reconcile import KubeApiError

    adapter = KubeAdapter.auto(kubeconfig, context, env=os.environ)
    try:
        return adapter.rbac_objects(), adapter.source, None
    except KubeApiError as e:
        return [], adapter.source, f"cannot read RBAC from {adapter.source}: {e}; rendered instead"
    finally:
        adapter.close()
