"""``authbridge iam …``: accounts, users, groups, roles and access keys, in the AWS CLI grammar.

Each command is a thin translation: options in, the parameters of its admin
action (:mod:`authbridge.admin.iam`), one :meth:`App.admin` call (the admin API
with ``--profile``/``--endpoint``, else the store: :mod:`authbridge.cli.admin_call`),
that document out (``-o json``) or an aligned text rendering of it. Every rule
(names, limits, trust, delete conflicts) is the store's; its errors name the
field and say what to do. ``create-access-key`` is the only command whose
output ever contains a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from authbridge.admin import iam as ops
from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import EntityAlreadyExists

if TYPE_CHECKING:
    from authbridge.iam.model import AccessKeyStatus


@click.group()
def iam() -> None:
    """Manage IAM accounts, users, groups, roles, access keys, policies and OIDC providers.

    The commands, options and JSON shapes follow `aws iam`. With --profile or
    --endpoint (or AUTHBRIDGE_PROFILE / AUTHBRIDGE_ENDPOINT) they call the
    admin API as that caller, in the caller's account; otherwise they use the
    store directly (break-glass, audited) and act on the account given by the
    global --account-id (or AUTHBRIDGE_ACCOUNT_ID), or the store's only account.

    \b
    Example:
      authbridge iam create-account --alias prod
      authbridge iam create-user --user-name alice
      authbridge -o json iam list-users
    """


def _short(text: str, limit: int = 60) -> str:
    text = out.clean(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_tags(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {_short(item)!r}")
        if key in tags:
            raise click.BadParameter(f"tag key {_short(key)!r} is given twice")
        tags[key] = value
    return tags


_path_option = click.option(
    "--path", default="/", show_default=True, metavar="PATH", help="IAM path: / or /a/b/."
)


_path_prefix_option = click.option(
    "--path-prefix",
    default="/",
    show_default=True,
    metavar="PATH",
    help="Only entities whose path starts with this.",
)
_user_name_option = click.option("--user-name", required=True, metavar="NAME", help="User name.")
_group_name_option = click.option("--group-name", required=True, metavar="NAME", help="Group name.")
_role_name_option = click.option("--role-name", required=True, metavar="NAME", help="Role name.")
_access_key_option = click.option(
    "--access-key-id", required=True, metavar="AKIA…", help="Access key id."
)
_force_option = click.option(
    "--force", is_flag=True, help="Also delete what still depends on it instead of refusing."
)


def _doc(doc: dict[str, Any] | None) -> dict[str, Any]:
    """The document of an action that always answers one."""
    if doc is None:
        raise AssertionError("the action answered no document")  # pragma: no cover
    return doc


def _aws_tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _users_table(users: list[dict[str, Any]], empty: str) -> str:
    return out.table(users, out.USER_COLUMNS, empty)


# -- accounts ---------------------------------------------------------------------------


@iam.command("create-account")
@click.option(
    "--account-id",
    metavar="ID",
    help="12 digits. Default: the global --account-id, else a random id.",
)
@click.option("--alias", metavar="ALIAS", help="3 to 63 lowercase letters, digits or dashes.")
@output_option
@pass_app
def create_account(app: App, account_id: str | None, alias: str | None) -> None:
    """Create an account: the 12-digit id that users, groups and roles belong to.

    \b
    Example:
      authbridge iam create-account --account-id 111122223333 --alias prod
    """
    app.require_store("iam create-account")
    chosen = account_id or app.settings.account_id
    from authbridge.cli.admin_call import break_glass

    with break_glass(app, "iam:CreateAccount") as note:
        if chosen is not None:
            note.targets = (f"arn:{app.settings.partition}:iam::{chosen}:root",)
        try:
            result = ops.create_account(app.store, chosen, alias, new_id=app.new_account_id)
        except EntityAlreadyExists as e:
            if chosen is None:
                raise
            raise EntityAlreadyExists(
                e.message, hint="use it, or omit --account-id to create one with a random id"
            ) from e
        note.targets = (f"arn:{app.settings.partition}:iam::{result['Account']['AccountId']}:root",)
    doc = result["Account"]
    app.emit(result, lambda: out.fields(doc))


@iam.command("list-accounts")
@output_option
@pass_app
def list_accounts(app: App) -> None:
    """List the accounts in the store.

    \b
    Example:
      authbridge iam list-accounts
    """
    app.require_store("iam list-accounts")
    result = ops.list_accounts(app.store)
    docs = result["Accounts"]
    app.emit(
        result,
        lambda: out.table(
            docs,
            out.ACCOUNT_COLUMNS,
            "No accounts; create one with `authbridge iam create-account`.",
        ),
    )


# -- users ------------------------------------------------------------------------------


@iam.command("create-user")
@_user_name_option
@_path_option
@click.option(
    "--tag", "tags", multiple=True, metavar="KEY=VALUE", callback=_parse_tags, help="Repeatable."
)
@output_option
@pass_app
def create_user(app: App, user_name: str, path: str, tags: dict[str, str]) -> None:
    """Create a user.

    \b
    Example:
      authbridge iam create-user --user-name alice --path /team/ --tag team=platform
    """
    result = _doc(
        app.admin("CreateUser", {"UserName": user_name, "Path": path, "Tags": _aws_tags(tags)})
    )
    app.emit(result, lambda: out.fields(result["User"], out.USER_FIELDS))


@iam.command("get-user")
@_user_name_option
@output_option
@pass_app
def get_user(app: App, user_name: str) -> None:
    """Show a user.

    \b
    Example:
      authbridge iam get-user --user-name alice
    """
    result = _doc(app.admin("GetUser", {"UserName": user_name}))
    app.emit(result, lambda: out.fields(result["User"], out.USER_FIELDS))


@iam.command("list-users")
@_path_prefix_option
@output_option
@pass_app
def list_users(app: App, path_prefix: str) -> None:
    """List users, sorted by name.

    \b
    Example:
      authbridge iam list-users --path-prefix /team/
    """
    result = _doc(app.admin("ListUsers", {"PathPrefix": path_prefix}))
    app.emit(result, lambda: _users_table(result["Users"], "No users."))


@iam.command("update-user")
@_user_name_option
@click.option(
    "--enable/--disable",
    "enabled",
    default=None,
    help="Enable the user, or disable it (its keys and tokens stop working).",
)
@output_option
@pass_app
def update_user(app: App, user_name: str, enabled: bool | None) -> None:
    """Enable or disable a user. A disabled user's access keys and tokens are refused.

    \b
    Example:
      authbridge iam update-user --user-name alice --disable
    """
    if enabled is None:
        raise click.UsageError("pass --enable or --disable")
    result = _doc(app.admin("UpdateUser", {"UserName": user_name, "Enabled": enabled}))
    doc = result["User"]
    app.emit(
        result,
        lambda: f"User {doc['UserName']} is now {'enabled' if doc['Enabled'] else 'disabled'}.",
    )


@iam.command("delete-user")
@_user_name_option
@_force_option
@output_option
@pass_app
def delete_user(app: App, user_name: str, force: bool) -> None:
    """Delete a user. Refused while it has access keys, groups or policies, unless --force.

    \b
    Example:
      authbridge iam delete-user --user-name alice --force
    """
    app.admin("DeleteUser", {"UserName": user_name, "Force": force})
    app.emit(None, lambda: f"Deleted user {user_name}.")


# -- groups -----------------------------------------------------------------------------


@iam.command("create-group")
@_group_name_option
@_path_option
@output_option
@pass_app
def create_group(app: App, group_name: str, path: str) -> None:
    """Create a group.

    \b
    Example:
      authbridge iam create-group --group-name devs
    """
    result = _doc(app.admin("CreateGroup", {"GroupName": group_name, "Path": path}))
    app.emit(result, lambda: out.fields(result["Group"], out.GROUP_FIELDS))


@iam.command("get-group")
@_group_name_option
@output_option
@pass_app
def get_group(app: App, group_name: str) -> None:
    """Show a group and its members (JSON: {"Group": …, "Users": […]}, like AWS GetGroup).

    \b
    Example:
      authbridge iam get-group --group-name devs
    """
    result = _doc(app.admin("GetGroup", {"GroupName": group_name}))
    group, users = result["Group"], result["Users"]
    app.emit(
        result,
        lambda: out.fields(group, out.GROUP_FIELDS) + "\n\n" + _users_table(users, "No members."),
    )


@iam.command("list-groups")
@_path_prefix_option
@output_option
@pass_app
def list_groups(app: App, path_prefix: str) -> None:
    """List groups, sorted by name.

    \b
    Example:
      authbridge iam list-groups
    """
    result = _doc(app.admin("ListGroups", {"PathPrefix": path_prefix}))
    app.emit(result, lambda: out.table(result["Groups"], out.GROUP_COLUMNS, "No groups."))


@iam.command("list-groups-for-user")
@_user_name_option
@output_option
@pass_app
def list_groups_for_user(app: App, user_name: str) -> None:
    """List the groups a user belongs to.

    \b
    Example:
      authbridge iam list-groups-for-user --user-name alice
    """
    result = _doc(app.admin("ListGroupsForUser", {"UserName": user_name}))
    app.emit(
        result,
        lambda: out.table(result["Groups"], out.GROUP_COLUMNS, f"User {user_name} is in no group."),
    )


@iam.command("delete-group")
@_group_name_option
@_force_option
@output_option
@pass_app
def delete_group(app: App, group_name: str, force: bool) -> None:
    """Delete a group. Refused while it has members or policies, unless --force.

    \b
    Example:
      authbridge iam delete-group --group-name devs --force
    """
    app.admin("DeleteGroup", {"GroupName": group_name, "Force": force})
    app.emit(None, lambda: f"Deleted group {group_name}.")


@iam.command("add-user-to-group")
@_group_name_option
@_user_name_option
@output_option
@pass_app
def add_user_to_group(app: App, group_name: str, user_name: str) -> None:
    """Add a user to a group (adding a member again changes nothing).

    \b
    Example:
      authbridge iam add-user-to-group --group-name devs --user-name alice
    """
    app.admin("AddUserToGroup", {"GroupName": group_name, "UserName": user_name})
    app.emit(None, lambda: f"User {user_name} is a member of group {group_name}.")


@iam.command("remove-user-from-group")
@_group_name_option
@_user_name_option
@output_option
@pass_app
def remove_user_from_group(app: App, group_name: str, user_name: str) -> None:
    """Remove a user from a group.

    \b
    Example:
      authbridge iam remove-user-from-group --group-name devs --user-name alice
    """
    app.admin("RemoveUserFromGroup", {"GroupName": group_name, "UserName": user_name})
    app.emit(None, lambda: f"Removed user {user_name} from group {group_name}.")


# -- roles ------------------------------------------------------------------------------

_trust_option = click.option(
    "--trust",
    "trust",
    multiple=True,
    required=True,
    metavar="ARN",
    help="A user, group or account root (arn:aws:iam::ACCOUNT:root) that may assume the "
    "role. Repeatable.",
)


def _trust_document(value: str, field: str) -> str:
    """A trust policy read (JSON, file://PATH or -) and checked before the store is opened."""
    from authbridge.cli.iam_policies import read_document
    from authbridge.iam.trust import parse_trust_policy

    text = read_document(value, field)
    parse_trust_policy(text)
    return text


def _role_fields(role: dict[str, Any]) -> str:
    """A role's fields, then its trust policy as indented JSON."""
    import json

    return (
        out.fields(role, out.ROLE_FIELDS)
        + "\nAssumeRolePolicyDocument\n"
        + json.dumps(role.get("AssumeRolePolicyDocument"), indent=2)
    )


@iam.command("create-role")
@_role_name_option
@_path_option
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="ARN",
    help="A user, group or account root (arn:aws:iam::ACCOUNT:root) that may assume the "
    "role. Repeatable. Shorthand for a trust policy allowing them sts:AssumeRole.",
)
@click.option(
    "--assume-role-policy-document",
    "trust_policy",
    metavar="JSON|file://F|-",
    help="The trust policy document (AWS shape): JSON text, file://PATH, or - for stdin.",
)
@click.option(
    "--max-session-duration",
    type=int,
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="Longest role session, 900 to 43200 seconds.",
)
@click.option("--description", default="", metavar="TEXT", help="Free text.")
@output_option
@pass_app
def create_role(
    app: App,
    role_name: str,
    path: str,
    trust: tuple[str, ...],
    trust_policy: str | None,
    max_session_duration: int,
    description: str,
) -> None:
    """Create a role, with a trust policy document or the --trust shorthand (one of the two).

    A trust policy names AWS principals (users, groups, account roots, which
    must exist) and/or an OIDC provider (Federated, registered with
    create-open-id-connect-provider), the action (sts:AssumeRole,
    sts:AssumeRoleWithWebIdentity) and conditions on the caller or the
    token's claims. Every --trust ARN must name an existing user, group or
    account.

    \b
    Example:
      authbridge iam create-role --role-name Admin --path /platform/ \\
          --trust arn:aws:iam::111122223333:group/oncall --max-session-duration 3600
      authbridge iam create-role --role-name Deployer \\
          --assume-role-policy-document file://trust.json
    """
    if (trust_policy is None) == (not trust):
        raise click.UsageError("give --assume-role-policy-document or --trust ARN (not both)")
    params: dict[str, Any] = {
        "RoleName": role_name,
        "Path": path,
        "Trust": list(trust),
        "MaxSessionDuration": max_session_duration,
        "Description": description,
    }
    if trust_policy is not None:
        params["AssumeRolePolicyDocument"] = _trust_document(
            trust_policy, "AssumeRolePolicyDocument"
        )
    result = _doc(app.admin("CreateRole", params))
    app.emit(result, lambda: out.fields(result["Role"], out.ROLE_FIELDS))


@iam.command("get-role")
@_role_name_option
@output_option
@pass_app
def get_role(app: App, role_name: str) -> None:
    """Show a role and whom it trusts (a deleted principal shows as its bare unique id).

    \b
    Example:
      authbridge iam get-role --role-name Admin
    """
    result = _doc(app.admin("GetRole", {"RoleName": role_name}))
    app.emit(result, lambda: _role_fields(result["Role"]))


@iam.command("list-roles")
@_path_prefix_option
@output_option
@pass_app
def list_roles(app: App, path_prefix: str) -> None:
    """List roles, sorted by name.

    \b
    Example:
      authbridge iam list-roles --path-prefix /platform/
    """
    result = _doc(app.admin("ListRoles", {"PathPrefix": path_prefix}))
    app.emit(result, lambda: out.table(result["Roles"], out.ROLE_COLUMNS, "No roles."))


@iam.command("update-role-trust")
@_role_name_option
@_trust_option
@output_option
@pass_app
def update_role_trust(app: App, role_name: str, trust: tuple[str, ...]) -> None:
    """Replace whom a role trusts.

    \b
    Example:
      authbridge iam update-role-trust --role-name Admin \\
          --trust arn:aws:iam::111122223333:user/alice
    """
    result = _doc(
        app.admin("UpdateAssumeRolePolicy", {"RoleName": role_name, "Trust": list(trust)})
    )
    app.emit(result, lambda: out.fields(result["Role"], out.ROLE_FIELDS))


@iam.command("update-assume-role-policy")
@_role_name_option
@click.option(
    "--policy-document",
    required=True,
    metavar="JSON|file://F|-",
    help="The new trust policy document: JSON text, file://PATH, or - for stdin.",
)
@output_option
@pass_app
def update_assume_role_policy(app: App, role_name: str, policy_document: str) -> None:
    """Replace a role's trust policy document, whole.

    \b
    Example:
      authbridge iam update-assume-role-policy --role-name Deployer \\
          --policy-document file://trust.json
    """
    text = _trust_document(policy_document, "PolicyDocument")
    result = _doc(
        app.admin("UpdateAssumeRolePolicy", {"RoleName": role_name, "PolicyDocument": text})
    )
    app.emit(result, lambda: _role_fields(result["Role"]))


@iam.command("delete-role")
@_role_name_option
@output_option
@pass_app
def delete_role(app: App, role_name: str) -> None:
    """Delete a role. Its sessions' tokens stop verifying. Refused while it has policies.

    \b
    Example:
      authbridge iam delete-role --role-name Admin
    """
    app.admin("DeleteRole", {"RoleName": role_name})
    app.emit(None, lambda: f"Deleted role {role_name}.")


# -- access keys ------------------------------------------------------------------------


@iam.command("create-access-key")
@_user_name_option
@output_option
@pass_app
def create_access_key(app: App, user_name: str) -> None:
    """Create an access key for a user (at most two per user).

    The secret access key is printed now and never again: authbridge keeps
    only a keyed hash of it.

    \b
    Example:
      authbridge -o json iam create-access-key --user-name alice
    """
    result = _doc(app.admin("CreateAccessKey", {"UserName": user_name}))
    doc = result["AccessKey"]

    def text() -> str:
        click.echo(
            "authbridge: save the secret access key now; it is shown only this once "
            "and cannot be retrieved later",
            err=True,
        )
        return out.fields(
            doc, ("AccessKeyId", "SecretAccessKey", "UserName", "Status", "CreateDate")
        )

    app.emit(result, text)


@iam.command("list-access-keys")
@_user_name_option
@output_option
@pass_app
def list_access_keys(app: App, user_name: str) -> None:
    """List a user's access keys (ids and status; never secrets).

    \b
    Example:
      authbridge iam list-access-keys --user-name alice
    """
    result = _doc(app.admin("ListAccessKeys", {"UserName": user_name}))
    docs = result["AccessKeyMetadata"]
    app.emit(
        result,
        lambda: out.table(docs, out.ACCESS_KEY_COLUMNS, f"User {user_name} has no access keys."),
    )


@iam.command("update-access-key")
@_access_key_option
@click.option(
    "--status",
    required=True,
    type=click.Choice(["Active", "Inactive"]),
    help="Inactive keys are refused until made Active again.",
)
@output_option
@pass_app
def update_access_key(app: App, access_key_id: str, status: AccessKeyStatus) -> None:
    """Make an access key Active or Inactive.

    \b
    Example:
      authbridge iam update-access-key --access-key-id AKIAEXAMPLE --status Inactive
    """
    result = _doc(app.admin("UpdateAccessKey", {"AccessKeyId": access_key_id, "Status": status}))
    doc = result["AccessKey"]
    app.emit(
        result,
        lambda: (
            f"Access key {doc['AccessKeyId']} of user {doc['UserName']} is now {doc['Status']}."
        ),
    )


@iam.command("delete-access-key")
@_access_key_option
@output_option
@pass_app
def delete_access_key(app: App, access_key_id: str) -> None:
    """Delete an access key. Tokens minted with it stop verifying.

    \b
    Example:
      authbridge iam delete-access-key --access-key-id AKIAEXAMPLE
    """
    app.admin("DeleteAccessKey", {"AccessKeyId": access_key_id})
    app.emit(None, lambda: f"Deleted access key {access_key_id}.")


def _add_policy_commands() -> None:
    """The policy verbs (:mod:`authbridge.cli.iam_policies`) belong to this group too."""
    from authbridge.cli.iam_policies import COMMANDS

    for command in COMMANDS:
        iam.add_command(command)


_add_policy_commands()
# Register the sign-in and OIDC provider verbs on `iam`.
from authbridge.cli import iam_oidc, iam_signin  # noqa: E402, F401
