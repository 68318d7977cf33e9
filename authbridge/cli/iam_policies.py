"""``authbridge iam …`` for IAM policies: managed policies and versions, inline policies,
attachments, user and role tags, and ``simulate-principal-policy``.

The verbs, options and ``-o json`` shapes are the AWS CLI's; lists are given
by repeating an option (``--action-names A --action-names B``), as elsewhere
in authbridge. A ``--policy-document`` is JSON, ``file://PATH`` or ``-``
(stdin); it is read and checked (:func:`authbridge.iam.policy.parse_policy`)
before the store is opened, so a malformed document fails first, naming the
statement and the field. Each verb then calls its admin action of
:mod:`authbridge.admin.policies` through :meth:`App.admin` (the admin API with
``--profile``/``--endpoint``, else the store), so both modes print the same
document. The commands are registered on the ``iam`` group by
:mod:`authbridge.cli.iam` (:data:`COMMANDS`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from authbridge import arn as arns
from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import InputError, MalformedArn
from authbridge.iam import managed, policy, simulate
from authbridge.iam.managed import PrincipalKind, TaggableKind

COMMANDS: list[click.Command] = []

POLICY_FIELDS = (
    "PolicyName",
    "PolicyId",
    "Arn",
    "Path",
    "DefaultVersionId",
    "AttachmentCount",
    "Description",
    "CreateDate",
    "UpdateDate",
)
POLICY_COLUMNS = ("PolicyName", "DefaultVersionId", "AttachmentCount", "UpdateDate", "Arn")
VERSION_COLUMNS = ("VersionId", "IsDefaultVersion", "CreateDate")
TITLES = {"user": "User", "group": "Group", "role": "Role"}


def _command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """``@_command("create-policy")``: a click command with ``-o``, kept in :data:`COMMANDS`."""

    def wrap(f: Callable[..., None]) -> click.Command:
        cmd = click.command(name)(output_option(f))
        COMMANDS.append(cmd)
        return cmd

    return wrap


# -- documents --------------------------------------------------------------------------


def read_document(value: str, field: str = "PolicyDocument") -> str:
    """The document text ``--policy-document`` names: JSON itself, ``file://PATH`` or ``-``."""
    limit = policy.MAX_TEXT_CHARS
    cap = 4 * limit + 1  # UTF-8 takes at most four bytes a character: never read more
    if value == "-":
        raw = sys.stdin.buffer.read(cap)
        where = "stdin"
    elif value.startswith("file://"):
        path = Path(value.removeprefix("file://")).expanduser()
        where = str(path)
        try:
            with path.open("rb") as f:
                raw = f.read(cap)
        except OSError as e:
            raise InputError(
                field,
                f"cannot read {where}: {e.strerror or type(e).__name__}",
                hint="check the path after file://",
            ) from None
    else:
        return value
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if len(raw) >= cap or (text is not None and len(text) > limit):
        raise InputError(
            field, f"{where} holds more than {limit} characters; a policy is far smaller"
        )
    if text is None:
        raise InputError(field, f"{where} is not UTF-8 text")
    return text


def checked_document(value: str, kind: policy.PolicyKind) -> str:
    """Read and check a document; every refusal happens here, before the store is opened."""
    text = read_document(value)
    policy.parse_policy(text, kind=kind)
    return text


_document_option = click.option(
    "--policy-document",
    required=True,
    metavar="JSON|file://F|-",
    help="The policy: JSON text, file://PATH, or - for stdin.",
)
_policy_arn_option = click.option(
    "--policy-arn", required=True, metavar="ARN", help="arn:aws:iam::ACCOUNT:policy/PATH/NAME."
)
_version_option = click.option("--version-id", required=True, metavar="vN", help="e.g. v2.")
_path_prefix_option = click.option(
    "--path-prefix", default="/", show_default=True, metavar="PATH", help="Only these paths."
)


def _name_option(kind: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        f"--{kind}-name", "principal_name", required=True, metavar="NAME", help=f"{kind} name."
    )


def _pretty(doc: Any) -> str:
    return json.dumps(doc, indent=4, ensure_ascii=True)


# -- managed policies ---------------------------------------------------------------------


@_command("create-policy")
@click.option("--policy-name", required=True, metavar="NAME", help="Unique in the account.")
@_document_option
@click.option("--path", default="/", show_default=True, metavar="PATH", help="/ or /a/b/.")
@click.option("--description", default="", metavar="TEXT", help="At most 1000 characters.")
@pass_app
def create_policy(
    app: App, policy_name: str, policy_document: str, path: str, description: str
) -> None:
    """Create a customer managed policy (version v1, the default).

    \b
    Example:
      authbridge iam create-policy --policy-name ReadIam \\
          --policy-document file://read-iam.json --description "Read IAM"
    """
    text = checked_document(policy_document, "managed")
    result = _doc(
        app.admin(
            "CreatePolicy",
            {
                "PolicyName": policy_name,
                "PolicyDocument": text,
                "Path": path,
                "Description": description,
            },
        )
    )
    app.emit(result, lambda: out.fields(result["Policy"], POLICY_FIELDS))


@_command("get-policy")
@_policy_arn_option
@pass_app
def get_policy(app: App, policy_arn: str) -> None:
    """Show a managed policy (the account's, or a shipped AWS managed one).

    \b
    Example:
      authbridge iam get-policy --policy-arn arn:aws:iam::aws:policy/IAMReadOnlyAccess
    """
    result = _doc(app.admin("GetPolicy", {"PolicyArn": policy_arn}))
    app.emit(result, lambda: out.fields(result["Policy"], POLICY_FIELDS))


@_command("list-policies")
@click.option(
    "--scope",
    type=click.Choice(managed.LIST_SCOPES),
    default="All",
    show_default=True,
    help="AWS: the shipped AWS managed policies; Local: the account's own.",
)
@click.option("--only-attached", is_flag=True, help="Only policies attached to someone.")
@_path_prefix_option
@pass_app
def list_policies(app: App, scope: str, only_attached: bool, path_prefix: str) -> None:
    """List managed policies, sorted by name.

    \b
    Example:
      authbridge iam list-policies --scope Local --only-attached
    """
    result = _doc(
        app.admin(
            "ListPolicies",
            {"Scope": scope, "OnlyAttached": only_attached, "PathPrefix": path_prefix},
        )
    )
    app.emit(result, lambda: out.table(result["Policies"], POLICY_COLUMNS, "No policies."))


@_command("delete-policy")
@_policy_arn_option
@pass_app
def delete_policy(app: App, policy_arn: str) -> None:
    """Delete a managed policy and its versions. Refused while it is attached.

    \b
    Example:
      authbridge iam delete-policy --policy-arn arn:aws:iam::111122223333:policy/ReadIam
    """
    app.admin("DeletePolicy", {"PolicyArn": policy_arn})
    app.emit(None, lambda: f"Deleted policy {out.clean(policy_arn)}.")


# -- versions -----------------------------------------------------------------------------


@_command("create-policy-version")
@_policy_arn_option
@_document_option
@click.option("--set-as-default", is_flag=True, help="Make the new version the one in force.")
@pass_app
def create_policy_version(
    app: App, policy_arn: str, policy_document: str, set_as_default: bool
) -> None:
    """Add a version to a managed policy (at most five versions).

    \b
    Example:
      authbridge iam create-policy-version --policy-arn ARN \\
          --policy-document file://v2.json --set-as-default
    """
    text = checked_document(policy_document, "managed")
    result = _doc(
        app.admin(
            "CreatePolicyVersion",
            {"PolicyArn": policy_arn, "PolicyDocument": text, "SetAsDefault": set_as_default},
        )
    )
    doc = result["PolicyVersion"]
    app.emit(
        result,
        lambda: (
            f"Created version {out.clean(doc['VersionId'])} of policy {out.clean(policy_arn)}"
            + (" (the default)." if doc["IsDefaultVersion"] else " (not the default).")
        ),
    )


@_command("get-policy-version")
@_policy_arn_option
@_version_option
@pass_app
def get_policy_version(app: App, policy_arn: str, version_id: str) -> None:
    """Show one version of a managed policy, with its document.

    \b
    Example:
      authbridge iam get-policy-version --policy-arn ARN --version-id v1
    """
    result = _doc(app.admin("GetPolicyVersion", {"PolicyArn": policy_arn, "VersionId": version_id}))
    doc = result["PolicyVersion"]
    app.emit(
        result,
        lambda: out.fields(doc, VERSION_COLUMNS) + "\n" + _pretty(doc["Document"]),
    )


@_command("list-policy-versions")
@_policy_arn_option
@pass_app
def list_policy_versions(app: App, policy_arn: str) -> None:
    """List a managed policy's versions, newest first.

    \b
    Example:
      authbridge iam list-policy-versions --policy-arn ARN
    """
    result = _doc(app.admin("ListPolicyVersions", {"PolicyArn": policy_arn}))
    app.emit(result, lambda: out.table(result["Versions"], VERSION_COLUMNS, "No versions."))


@_command("set-default-policy-version")
@_policy_arn_option
@_version_option
@pass_app
def set_default_policy_version(app: App, policy_arn: str, version_id: str) -> None:
    """Make a version the one in force.

    \b
    Example:
      authbridge iam set-default-policy-version --policy-arn ARN --version-id v2
    """
    app.admin("SetDefaultPolicyVersion", {"PolicyArn": policy_arn, "VersionId": version_id})
    app.emit(
        None,
        lambda: f"Version {out.clean(version_id)} is now the default of {out.clean(policy_arn)}.",
    )


@_command("delete-policy-version")
@_policy_arn_option
@_version_option
@pass_app
def delete_policy_version(app: App, policy_arn: str, version_id: str) -> None:
    """Delete a version that is not the default.

    \b
    Example:
      authbridge iam delete-policy-version --policy-arn ARN --version-id v1
    """
    app.admin("DeletePolicyVersion", {"PolicyArn": policy_arn, "VersionId": version_id})
    app.emit(None, lambda: f"Deleted version {out.clean(version_id)} of {out.clean(policy_arn)}.")


# -- inline policies and attachments, for each principal kind -----------------------------


def _inline_commands(kind: PrincipalKind) -> None:
    title = TITLES[kind]
    who_param = f"{title}Name"
    example_name = {"user": "alice", "group": "devs", "role": "Deployer"}[kind]
    who = f"--{kind}-name {example_name}"

    @_command(f"put-{kind}-policy")
    @_name_option(kind)
    @click.option("--policy-name", required=True, metavar="NAME", help="Inline policy name.")
    @_document_option
    @pass_app
    def put(app: App, principal_name: str, policy_name: str, policy_document: str) -> None:
        text = checked_document(policy_document, kind)
        app.admin(
            f"Put{title}Policy",
            {who_param: principal_name, "PolicyName": policy_name, "PolicyDocument": text},
        )
        app.emit(
            None,
            lambda: f"Put inline policy {policy_name} on {kind} {principal_name}.",
        )

    put.help = (
        f"Create or replace an inline policy of a {kind}.\n\n"
        f"\b\nExample:\n  authbridge iam put-{kind}-policy {who} --policy-name Ops \\\n"
        "      --policy-document file://ops.json"
    )

    @_command(f"get-{kind}-policy")
    @_name_option(kind)
    @click.option("--policy-name", required=True, metavar="NAME", help="Inline policy name.")
    @pass_app
    def get(app: App, principal_name: str, policy_name: str) -> None:
        doc = _doc(
            app.admin(f"Get{title}Policy", {who_param: principal_name, "PolicyName": policy_name})
        )
        app.emit(
            doc,
            lambda: (
                out.fields(doc, (f"{title}Name", "PolicyName"))
                + "\n"
                + _pretty(doc["PolicyDocument"])
            ),
        )

    get.help = (
        f"Show an inline policy of a {kind} and its document.\n\n"
        f"\b\nExample:\n  authbridge iam get-{kind}-policy {who} --policy-name Ops"
    )

    @_command(f"list-{kind}-policies")
    @_name_option(kind)
    @pass_app
    def list_(app: App, principal_name: str) -> None:
        result = _doc(app.admin(f"List{title}Policies", {who_param: principal_name}))
        found = result["PolicyNames"]
        app.emit(
            result,
            lambda: (
                "\n".join(out.clean(n) for n in found)
                or f"{title} {principal_name} has no inline policies."
            ),
        )

    list_.help = (
        f"List the names of a {kind}'s inline policies.\n\n"
        f"\b\nExample:\n  authbridge iam list-{kind}-policies {who}"
    )

    @_command(f"delete-{kind}-policy")
    @_name_option(kind)
    @click.option("--policy-name", required=True, metavar="NAME", help="Inline policy name.")
    @pass_app
    def delete(app: App, principal_name: str, policy_name: str) -> None:
        app.admin(f"Delete{title}Policy", {who_param: principal_name, "PolicyName": policy_name})
        app.emit(None, lambda: f"Deleted inline policy {policy_name} of {kind} {principal_name}.")

    delete.help = (
        f"Delete an inline policy of a {kind}.\n\n"
        f"\b\nExample:\n  authbridge iam delete-{kind}-policy {who} --policy-name Ops"
    )

    @_command(f"attach-{kind}-policy")
    @_name_option(kind)
    @_policy_arn_option
    @pass_app
    def attach(app: App, principal_name: str, policy_arn: str) -> None:
        app.admin(f"Attach{title}Policy", {who_param: principal_name, "PolicyArn": policy_arn})
        app.emit(None, lambda: f"Attached {out.clean(policy_arn)} to {kind} {principal_name}.")

    attach.help = (
        f"Attach a managed policy to a {kind} (at most ten; again changes nothing).\n\n"
        f"\b\nExample:\n  authbridge iam attach-{kind}-policy {who} \\\n"
        "      --policy-arn arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )

    @_command(f"detach-{kind}-policy")
    @_name_option(kind)
    @_policy_arn_option
    @pass_app
    def detach(app: App, principal_name: str, policy_arn: str) -> None:
        app.admin(f"Detach{title}Policy", {who_param: principal_name, "PolicyArn": policy_arn})
        app.emit(None, lambda: f"Detached {out.clean(policy_arn)} from {kind} {principal_name}.")

    detach.help = (
        f"Detach a managed policy from a {kind}.\n\n"
        f"\b\nExample:\n  authbridge iam detach-{kind}-policy {who} \\\n"
        "      --policy-arn arn:aws:iam::aws:policy/IAMReadOnlyAccess"
    )

    @_command(f"list-attached-{kind}-policies")
    @_name_option(kind)
    @_path_prefix_option
    @pass_app
    def list_attached(app: App, principal_name: str, path_prefix: str) -> None:
        result = _doc(
            app.admin(
                f"ListAttached{title}Policies",
                {who_param: principal_name, "PathPrefix": path_prefix},
            )
        )
        docs = result["AttachedPolicies"]
        app.emit(
            result,
            lambda: out.table(
                docs,
                ("PolicyName", "PolicyArn"),
                f"{title} {principal_name} has no managed policies attached.",
            ),
        )

    list_attached.help = (
        f"List the managed policies attached to a {kind}.\n\n"
        f"\b\nExample:\n  authbridge iam list-attached-{kind}-policies {who}"
    )


for _kind in managed.PRINCIPAL_KINDS:
    _inline_commands(_kind)


# -- tags ---------------------------------------------------------------------------------


def _tag_commands(kind: TaggableKind) -> None:
    title = TITLES[kind]
    who_param = f"{title}Name"
    who = f"--{kind}-name {'alice' if kind == 'user' else 'Deployer'}"

    @_command(f"tag-{kind}")
    @_name_option(kind)
    @click.option(
        "--tags",
        "tags",
        multiple=True,
        required=True,
        metavar="Key=K,Value=V",
        help='Repeatable; or JSON [{"Key": …, "Value": …}].',
    )
    @pass_app
    def tag(app: App, principal_name: str, tags: tuple[str, ...]) -> None:
        given = managed.parse_tag_arguments(tags)
        app.admin(
            f"Tag{title}",
            {who_param: principal_name, "Tags": [{"Key": k, "Value": v} for k, v in given.items()]},
        )
        app.emit(None, lambda: f"Tagged {kind} {principal_name}.")

    tag.help = (
        f"Add tags to a {kind}, or change their values (at most 50 tags; keys are"
        " case-insensitive).\n\n"
        f"\b\nExample:\n  authbridge iam tag-{kind} {who} --tags Key=team,Value=platform"
    )

    @_command(f"untag-{kind}")
    @_name_option(kind)
    @click.option(
        "--tag-keys", "keys", multiple=True, required=True, metavar="KEY", help="Repeatable."
    )
    @pass_app
    def untag(app: App, principal_name: str, keys: tuple[str, ...]) -> None:
        app.admin(f"Untag{title}", {who_param: principal_name, "TagKeys": list(keys)})
        app.emit(None, lambda: f"Removed tags from {kind} {principal_name}.")

    untag.help = (
        f"Remove tags from a {kind} by key (a key it does not have is ignored).\n\n"
        f"\b\nExample:\n  authbridge iam untag-{kind} {who} --tag-keys team"
    )

    @_command(f"list-{kind}-tags")
    @_name_option(kind)
    @pass_app
    def list_tags(app: App, principal_name: str) -> None:
        result = _doc(app.admin(f"List{title}Tags", {who_param: principal_name}))
        docs = result["Tags"]
        app.emit(
            result,
            lambda: out.table(docs, ("Key", "Value"), f"{title} {principal_name} has no tags."),
        )

    list_tags.help = (
        f"List a {kind}'s tags, sorted by key.\n\n"
        f"\b\nExample:\n  authbridge iam list-{kind}-tags {who}"
    )


for _taggable in ("user", "role"):
    _tag_commands(managed.taggable_kind(_taggable))


# -- simulation ---------------------------------------------------------------------------


@_command("simulate-principal-policy")
@click.option(
    "--policy-source-arn",
    required=True,
    metavar="ARN",
    help="A user, group, role or role-session ARN.",
)
@click.option(
    "--action-names", "actions", multiple=True, required=True, metavar="ACTION", help="Repeatable."
)
@click.option(
    "--resource-arns",
    "resources",
    multiple=True,
    metavar="ARN",
    help='Repeatable; default "*".',
)
@click.option(
    "--context-entries",
    "entries",
    multiple=True,
    metavar="ContextKeyName=K,ContextKeyValues=V,ContextKeyType=T",
    help="Repeatable; the AWS CLI shorthand, or JSON.",
)
@pass_app
def simulate_principal_policy(
    app: App,
    policy_source_arn: str,
    actions: tuple[str, ...],
    resources: tuple[str, ...],
    entries: tuple[str, ...],
) -> None:
    """Evaluate a principal's policies for actions on resources: allowed or denied, and why.

    A user's policies include those of its groups; a role session's are its
    role's. The principal's account is the one its ARN names. aws:username,
    aws:userid, aws:PrincipalArn and aws:PrincipalTag/* come from the store
    and aws:CurrentTime is now; give other condition keys (aws:SourceIp,
    aws:MultiFactorAuthPresent, …) with --context-entries.
    Text output is one line per action and resource: the decision, then the
    deciding statements (policy#index) and any missing context keys.

    \b
    Example:
      authbridge iam simulate-principal-policy \\
          --policy-source-arn arn:aws:iam::111122223333:user/alice \\
          --action-names iam:CreateUser --action-names iam:DeleteUser \\
          --context-entries ContextKeyName=aws:SourceIp,ContextKeyValues=10.0.0.1,ContextKeyType=ip
    """
    context_entries = simulate.parse_context_entries(entries)
    for action in actions:
        simulate.action_name(action)
    for resource in resources:
        simulate.resource_name(resource)
    source = _source(app, policy_source_arn)
    params = {
        "PolicySourceArn": policy_source_arn,
        "ActionNames": list(actions),
        "ResourceArns": list(resources),
        "ContextEntries": [
            {"ContextKeyName": e.name, "ContextKeyValues": list(e.values), "ContextKeyType": e.type}
            for e in context_entries
        ],
    }
    # In the store, the principal's own account: the ARN names it, whatever --account-id says.
    result = _doc(app.admin("SimulatePrincipalPolicy", params, account=source.account_id))
    app.emit(result, lambda: _results_text(result["EvaluationResults"]))


def _doc(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document of an action that always answers one."""
    if doc is None:
        raise AssertionError("the action answered no document")  # pragma: no cover
    return doc


def _source(app: App, source_arn: str) -> arns.PrincipalArn:
    try:
        return arns.parse_principal(
            source_arn, partitions=arns.KNOWN_PARTITIONS | {app.settings.partition}
        )
    except MalformedArn as e:
        raise InputError("PolicySourceArn", e.message, hint=e.hint) from e


def _results_text(results: Sequence[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        line = f"{r['EvalDecision']:<12}  {out.clean(r['EvalActionName'])}  on"
        line += f" {out.clean(r['EvalResourceName'])}"
        statements = [
            f"{out.clean(s['SourcePolicyId'])}#{s['StatementIndex']}"
            + (f" ({out.clean(s['Sid'])})" if "Sid" in s else "")
            for s in r["MatchedStatements"]
        ]
        if statements:
            line += "  by " + ", ".join(statements)
        elif r["EvalDecision"] == "implicitDeny":
            line += "  (no statement allows it)"
        if r["MissingContextValues"]:
            line += "  missing context: " + ", ".join(r["MissingContextValues"])
        lines.append(line)
    return "\n".join(lines)
