"""``authbridge mapping …``: check a mapping file; convert an EKS aws-auth ConfigMap into one.

``check`` is the one command whose refusal takes several lines: a mapping
is checked whole, and every problem is worth seeing at once. The first line
is ``authbridge: <file> is invalid (N problems):``, then one indented line per
problem, exit code 1. With ``-o json`` the verdict (problems included) is a
JSON document on stdout, and stderr has the first line only.

A valid file may have *warnings* (:mod:`authbridge.mapping.collisions`: a
template that can render another entry's name, session-name text not fenced
by a fixed prefix). In text mode each is one ``authbridge: warning: …`` line
on stderr and the exit code stays 0; with ``--strict`` they refuse the file
like problems (``authbridge: <file> is refused by --strict (N warnings):``,
then one indented line each, exit code 1). ``-o json`` lists them under
``warnings`` on stdout instead (``valid: false`` when ``--strict`` refuses).

``import-aws-auth`` refuses in one line like every other command. FILE may be
``-`` (stdin) for both commands. The mapping modules (and PyYAML) are imported
only when a command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import ConfigError, InputError

if TYPE_CHECKING:
    from authbridge.mapping.model import Mapping

STDIN = "-"
STDIN_SOURCE = "<stdin>"


@click.group()
def mapping() -> None:
    """Check mapping files, and convert EKS aws-auth ConfigMaps into them.

    The mapping (rbac/mapping.yaml by default; setting mappingFile, or
    AUTHBRIDGE_MAPPING_FILE) turns IAM principals into Kubernetes usernames
    and groups. Its format is a superset of the EKS aws-auth ConfigMap.

    \b
    Example:
      authbridge mapping check
      kubectl -n kube-system get configmap aws-auth -o yaml \\
        | authbridge mapping import-aws-auth - --output-file rbac/mapping.yaml
    """


def _read(file: str) -> tuple[bytes, str]:
    """The bytes of FILE (or stdin for ``-``), capped at the mapping size limit."""
    from authbridge.mapping import yamlsafe
    from authbridge.mapping.parse import read_capped

    if file == STDIN:
        data = sys.stdin.buffer.read(yamlsafe.MAX_BYTES + 1)
        # decode() refuses more than MAX_BYTES, naming the source.
        return data, STDIN_SOURCE
    return read_capped(Path(file))[0], file


def _counts(m: Mapping) -> dict[str, int]:
    return {
        "mapRoles": len(m.map_roles),
        "mapUsers": len(m.map_users),
        "mapGroups": len(m.map_groups),
        "mapAccounts": len(m.map_accounts),
        "bindings": len(m.bindings),
        "serviceAccounts": len(m.service_accounts),
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(m: Mapping) -> str:
    return ", ".join(
        [
            _plural(len(m.map_roles), "role"),
            _plural(len(m.map_users), "user"),
            _plural(len(m.map_groups), "group"),
            _plural(len(m.map_accounts), "account"),
            _plural(len(m.bindings), "binding"),
            _plural(len(m.service_accounts), "service account"),
        ]
    )


@mapping.command("check")
@click.argument("file", required=False, metavar="[FILE]")
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse the file (exit code 1) when it has warnings, e.g. a template that can"
    " render another entry's username.",
)
@output_option
@pass_app
def check(app: App, file: str | None, strict: bool) -> None:
    """Validate a mapping file and report every problem at once.

    FILE defaults to the configured mapping file (rbac/mapping.yaml); - reads
    stdin. Exit code 0 when the file is valid, 1 when it is not: each problem
    names the file, the entry and the field, and says what to change.
    Warnings (names two entries can share; session names, which the caller
    chooses, without a fixed prefix ending in ':') go to stderr; --strict
    makes them refuse the file.

    \b
    Example:
      authbridge mapping check rbac/mapping.yaml
      authbridge mapping check --strict - -o json < rbac/mapping.yaml
    """
    from authbridge.mapping import MappingError, parse_mapping

    if file is None:
        path = app.settings.mapping_file
        if not path.exists():
            raise ConfigError(
                f"mapping file {path} does not exist",
                hint="pass FILE, or set mappingFile in the config (AUTHBRIDGE_MAPPING_FILE)",
            )
        file = str(path)
    try:
        data, source = _read(file)
        parsed = parse_mapping(data, source)
    except MappingError as e:
        source = STDIN_SOURCE if file == STDIN else file
        count = len(e.problems)
        head = f"authbridge: {out.clean(source)} is invalid ({_plural(count, 'problem')})"
        if app.output == "json":
            app.emit({"file": source, "valid": False, "problems": e.problems}, lambda: None)
            click.echo(head, err=True)
        else:
            click.echo(head + ":", err=True)
            for problem in e.problems:
                click.echo(f"  {out.clean(problem)}", err=True)
        raise click.exceptions.Exit(1) from None
    warnings = list(parsed.warnings)
    if strict and warnings:
        head = (
            f"authbridge: {out.clean(source)} is refused by --strict"
            f" ({_plural(len(warnings), 'warning')})"
        )
        if app.output == "json":
            refused = {"file": source, "valid": False, "problems": [], "warnings": warnings}
            app.emit(refused, lambda: None)
            click.echo(head, err=True)
        else:
            click.echo(head + ":", err=True)
            for warning in warnings:
                click.echo(f"  {out.clean(warning)}", err=True)
        raise click.exceptions.Exit(1)
    if app.output != "json":
        for warning in warnings:
            click.echo(f"authbridge: warning: {out.clean(warning)}", err=True)
    doc: dict[str, Any] = {
        "file": source,
        "valid": True,
        "sha256": parsed.digest,
        "clusterID": parsed.cluster_id,
        "counts": _counts(parsed),
        "warnings": warnings,
    }
    app.emit(doc, lambda: f"ok: {out.clean(source)} ({_summary(parsed)}; sha256 {parsed.digest})")


@mapping.command("import-aws-auth")
@click.argument("file", metavar="FILE")
@click.option(
    "--output-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="F",
    help="Write the mapping to F (0644, atomically) instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace --output-file if it exists.")
@click.option(
    "--skip-unsupported",
    is_flag=True,
    help="Leave out entries authbridge cannot carry over (EC2 node templates, SSO"
    " matchers), each listed as a comment, instead of refusing.",
)
@output_option
@pass_app
def import_aws_auth(
    app: App, file: str, output_file: Path | None, force: bool, skip_unsupported: bool
) -> None:
    """Convert an EKS aws-auth ConfigMap (YAML or JSON) into a mapping file.

    FILE is the ConfigMap as `kubectl get -o yaml` prints it (- reads stdin).
    Keys inside entries match case-insensitively, as EKS does. Whatever
    cannot be carried over faithfully is refused, naming the entry; the
    output notes, as comments, every difference from how EKS read it. The
    mapping goes to stdout unless --output-file is given; -o json prints
    {"file", "mapping", "counts", "notes", "skipped"}.

    \b
    Example:
      authbridge mapping import-aws-auth aws-auth.yaml --output-file rbac/mapping.yaml
      kubectl -n kube-system get configmap aws-auth -o yaml \\
        | authbridge mapping import-aws-auth - --skip-unsupported
    """
    from authbridge.files import PUBLIC, write_atomic
    from authbridge.mapping import convert_aws_auth

    data, source = _read(file)
    result = convert_aws_auth(data, source, skip_unsupported=skip_unsupported)
    if output_file is not None:
        try:
            write_atomic(output_file, result.text.encode(), mode=PUBLIC, exclusive=not force)
        except FileExistsError:
            raise InputError(
                "--output-file",
                f"{out.clean(str(output_file))} already exists",
                hint="pass --force to replace it",
            ) from None
    if result.skipped:
        click.echo(
            f"authbridge: left out {len(result.skipped)} unsupported"
            f" {'entry' if len(result.skipped) == 1 else 'entries'};"
            " each is listed as a comment in the mapping",
            err=True,
        )
    doc = {
        "file": None if output_file is None else str(output_file),
        "mapping": result.text if output_file is None else None,
        "counts": _counts(result.mapping),
        "notes": list(result.notes),
        "skipped": list(result.skipped),
    }
    if output_file is None:
        app.emit(doc, lambda: result.text.rstrip("\n"))
        return
    app.emit(
        doc,
        lambda: (
            f"wrote {out.clean(str(output_file))} ({_summary(result.mapping)});"
            f" check it with `authbridge mapping check {out.clean(str(output_file))}`"
        ),
    )


@mapping.command("export")
@click.option(
    "--cluster-id", required=True, metavar="ID", help="The cluster whose entries to write."
)
@click.option(
    "--output-file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="F",
    help="Write the mapping to F (0644, atomically) instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace --output-file if it exists.")
@output_option
@pass_app
def export_command(app: App, cluster_id: str, output_file: Path | None, force: bool) -> None:
    """Write a cluster's access entries (and their policies) as a mapping file.

    For GitOps: commit the file, review changes as diffs, load it back with
    `authbridge mapping import`. Each entry is a mapRoles or mapUsers rule;
    each associated policy a bindings item for the entry's own group
    (authbridge-internal:access-entry:<ARN>). Served as a mapping file it
    gives the same users, groups and RBAC objects. -o json prints
    {"file", "mapping", "entries"}.

    \b
    Example:
      authbridge mapping export --cluster-id prod --output-file gitops/prod-access.yaml
    """
    from authbridge.iam.access import cluster_id as check_cluster
    from authbridge.mapping.entries import export_entries

    check_cluster(cluster_id)
    snapshot = app.store.access_snapshot()
    text = export_entries(snapshot, cluster_id)
    _write(output_file, text, force)
    count = len(snapshot.cluster_entries(cluster_id))
    doc = {
        "file": None if output_file is None else str(output_file),
        "mapping": text if output_file is None else None,
        "entries": count,
    }
    if output_file is None:
        app.emit(doc, lambda: text.rstrip("\n"))
        return
    app.emit(
        doc,
        lambda: (
            f"wrote {out.clean(str(output_file))} ({count} access"
            f" {'entry' if count == 1 else 'entries'})"
        ),
    )


def _write(output_file: Path | None, text: str, force: bool) -> None:
    from authbridge.files import PUBLIC, write_atomic

    if output_file is None:
        return
    try:
        write_atomic(output_file, text.encode(), mode=PUBLIC, exclusive=not force)
    except FileExistsError:
        raise InputError(
            "--output-file",
            f"{out.clean(str(output_file))} already exists",
            hint="pass --force to replace it",
        ) from None


@mapping.command("import")
@click.argument("file", metavar="FILE")
@click.option(
    "--cluster-id", metavar="ID", help="The cluster to load into (default: the file's clusterID)."
)
@click.option(
    "--prune", is_flag=True, help="Also delete the cluster's entries the file does not name."
)
@click.option("--dry-run", is_flag=True, help="Show what would change and change nothing.")
@click.option(
    "--skip-unsupported",
    is_flag=True,
    help="Leave out what entries cannot hold (mapGroups, mapAccounts, serviceAccounts,"
    " bindings of other groups), each listed on stderr, instead of refusing.",
)
@output_option
@pass_app
def import_command(
    app: App,
    file: str,
    cluster_id: str | None,
    prune: bool,
    dry_run: bool,
    skip_unsupported: bool,
) -> None:
    """Load a mapping file's mapRoles, mapUsers and their bindings as access entries.

    The reverse of `authbridge mapping export`, in one transaction: each rule
    becomes (or updates) the entry of its user or role, with its username and
    groups; each bindings item for an entry's own group becomes one of its
    associated policies (the ClusterRole of an access policy, cluster-wide or
    in its namespaces). Entries the file does not name are kept (listed)
    unless --prune. Whatever entries cannot hold is refused, naming the
    field, unless --skip-unsupported. -o json prints {"clusterName",
    "dryRun", "created", "updated", "deleted", "unchanged", "keptWithoutPrune",
    "skipped"}.

    \b
    Example:
      authbridge mapping import gitops/prod-access.yaml --prune --dry-run
      authbridge mapping import gitops/prod-access.yaml --prune
    """
    from authbridge.mapping import MappingError, parse_mapping
    from authbridge.mapping.entries import entries_from_mapping
    from authbridge.mapping.templates import check_access_entry

    data, source = _read(file)
    try:
        parsed = parse_mapping(data, source, partitions=_partitions(app))
        wanted = entries_from_mapping(parsed, cluster_id, skip_unsupported=skip_unsupported)
    except MappingError as e:
        head = f"authbridge: {out.clean(source)} cannot be imported"
        click.echo(f"{head} ({_plural(len(e.problems), 'problem')}):", err=True)
        for problem in e.problems:
            click.echo(f"  {out.clean(problem)}", err=True)
        if e.hint:
            click.echo(f"  hint: {out.clean(e.hint)}", err=True)
        raise click.exceptions.Exit(1) from None
    for spec in wanted.entries:
        kind = "role" if spec.where.startswith("mapRoles") else "user"
        try:
            check_access_entry(kind, spec.username, spec.groups)
        except InputError as e:
            detail = e.message.removeprefix(f"{e.field}: ")
            raise InputError(f"{spec.where}.{e.field}", detail, hint=e.hint) from None
    result = app.store.import_access_entries(
        wanted.cluster_id, wanted.entries, prune=prune, dry_run=dry_run
    )
    for note in wanted.notes:
        click.echo(f"authbridge: left out {out.one_line(note)}", err=True)
    doc = {"clusterName": wanted.cluster_id, "dryRun": dry_run, **result.to_json()}
    doc["skipped"] = list(wanted.notes)

    def text() -> str:
        would = "would be " if dry_run else ""
        lines = [
            f"{sign} {out.clean(arn)}: {would}{verb}"
            for sign, verb, arns in (
                ("+", "created", result.created),
                ("~", "updated", result.updated),
                ("-", "deleted", result.deleted),
            )
            for arn in arns
        ]
        lines += [f"  {out.clean(a)}: not in the file; kept (pass --prune)" for a in result.kept]
        counts = (
            f"{len(result.created)} created, {len(result.updated)} updated,"
            f" {len(result.deleted)} deleted, {len(result.unchanged)} unchanged"
        )
        lines.append(f"{'Dry run: ' if dry_run else ''}cluster {wanted.cluster_id}: {counts}.")
        return "\n".join(lines)

    app.emit(doc, text)


def _partitions(app: App) -> frozenset[str]:
    from authbridge import arn as arns

    return frozenset(arns.KNOWN_PARTITIONS | {app.settings.partition})
