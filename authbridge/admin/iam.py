"""The IAM actions: accounts, users, groups, roles and access keys, as ``aws iam`` shapes them.

Each function is one ``authbridge iam …`` verb: one store call (two for
GetGroup), and the document ``authbridge -o json iam …`` prints. The CLI
renders text from the same documents. :data:`ACTIONS` describes them for
the admin API: AWS names, parameters, the IAM action string and the
resource ARN each acts on (the entity's own ARN, looked up so that its path
counts as IAM counts it; ``*`` for the List actions, which IAM has no
resource type for).

``create-account`` and ``list-accounts`` are CLI verbs only: an account is
the boundary between tenants of one store, and an API caller lives in one
account and acts in it alone, so creating accounts or listing the others
is not something a caller's policies could grant.

Decisions where the API differs from ``aws iam``: UpdateUser takes
``Enabled`` (authbridge's users are enabled or disabled, not renamed);
CreateRole and UpdateAssumeRolePolicy take the trust policy document
(``AssumeRolePolicyDocument``, ``PolicyDocument``; JSON text or an object)
or, as shorthand, ``Trust`` (the ARNs ``--trust`` takes), one of the two;
CreateOpenIDConnectProvider takes ``CaBundle`` (the PEM of the CA that signs
the issuer's certificate) instead of ``ThumbprintList``; UserName is
required wherever the CLI requires ``--user-name``. OIDC provider actions
act on the provider's ARN (``arn:…:iam::<account>:oidc-provider/<host/path>``).
Access keys are found by id in the caller's account only: a key of another
account is "not found", whatever the caller's policies say.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from authbridge import arn as arns
from authbridge.admin.actions import Action, Document, Target, anywhere, iam_action
from authbridge.admin.params import Param
from authbridge.errors import EntityAlreadyExists, InputError, NoSuchEntity
from authbridge.iam import names, oidc_provider, oidc_signin
from authbridge.iam.model import AccessKey, AccessKeyStatus
from authbridge.store.base import Store

RANDOM_ACCOUNT_ATTEMPTS: Final = 5


def random_account_id() -> str:
    """A random 12-digit account id (AWS account ids may start with 0)."""
    return f"{secrets.randbelow(10**12):012d}"


# --------------------------------------------------------------------------- handlers


def create_account(
    store: Store,
    account_id: str | None,
    alias: str | None,
    *,
    new_id: Callable[[], str] = random_account_id,
) -> Document:
    """``{"Account": …}``: the given id, else a random one (a few tries on a collision)."""
    if account_id is not None:
        account = store.create_account(account_id, alias)
    else:
        for attempt in range(RANDOM_ACCOUNT_ATTEMPTS):
            try:
                account = store.create_account(new_id(), alias)
                break
            except EntityAlreadyExists:
                if attempt == RANDOM_ACCOUNT_ATTEMPTS - 1:
                    raise
    return {"Account": account.to_aws()}


def list_accounts(store: Store) -> Document:
    return {"Accounts": [a.to_aws() for a in store.list_accounts()]}


def create_user(
    store: Store, account: str, user_name: str, path: str, tags: Mapping[str, str]
) -> Document:
    return {"User": store.create_user(account, user_name, path, dict(tags)).to_aws()}


def get_user(store: Store, account: str, user_name: str) -> Document:
    return {"User": store.get_user(account, user_name).to_aws()}


def list_users(store: Store, account: str, path_prefix: str) -> Document:
    return {"Users": [u.to_aws() for u in store.list_users(account, path_prefix)]}


def update_user(store: Store, account: str, user_name: str, enabled: bool) -> Document:
    return {"User": store.set_user_enabled(account, user_name, enabled).to_aws()}


def delete_user(store: Store, account: str, user_name: str, force: bool) -> None:
    store.delete_user(account, user_name, force=force)


def create_group(store: Store, account: str, group_name: str, path: str) -> Document:
    return {"Group": store.create_group(account, group_name, path).to_aws()}


def get_group(store: Store, account: str, group_name: str) -> Document:
    group = store.get_group(account, group_name).to_aws()
    users = [u.to_aws() for u in store.list_group_members(account, group_name)]
    return {"Group": group, "Users": users}


def list_groups(store: Store, account: str, path_prefix: str) -> Document:
    return {"Groups": [g.to_aws() for g in store.list_groups(account, path_prefix)]}


def list_groups_for_user(store: Store, account: str, user_name: str) -> Document:
    return {"Groups": [g.to_aws() for g in store.list_groups_for_user(account, user_name)]}


def delete_group(store: Store, account: str, group_name: str, force: bool) -> None:
    store.delete_group(account, group_name, force=force)


def add_user_to_group(store: Store, account: str, group_name: str, user_name: str) -> None:
    store.add_user_to_group(account, group_name, user_name)


def remove_user_from_group(store: Store, account: str, group_name: str, user_name: str) -> None:
    store.remove_user_from_group(account, group_name, user_name)


def create_role(
    store: Store,
    account: str,
    role_name: str,
    *,
    path: str,
    trust: Sequence[str],
    max_session_duration: int,
    description: str,
    trust_policy: str | Mapping[str, Any] | None = None,
) -> Document:
    role = store.create_role(
        account,
        role_name,
        trust=list(trust),
        trust_policy=trust_policy,
        path=path,
        max_session_duration=max_session_duration,
        description=description,
    )
    return {"Role": role.to_aws()}


def get_role(store: Store, account: str, role_name: str) -> Document:
    return {"Role": store.get_role(account, role_name).to_aws()}


def list_roles(store: Store, account: str, path_prefix: str) -> Document:
    return {"Roles": [r.to_aws() for r in store.list_roles(account, path_prefix)]}


def update_role_trust(store: Store, account: str, role_name: str, trust: Sequence[str]) -> Document:
    return {"Role": store.update_role_trust(account, role_name, list(trust)).to_aws()}


def update_assume_role_policy(
    store: Store,
    account: str,
    role_name: str,
    document: str | Mapping[str, Any] | None,
    trust: Sequence[str],
) -> Document:
    """The trust policy replaced by ``document``, or by the shorthand of ``trust``."""
    if (document is None) == (not trust):
        raise InputError(
            "PolicyDocument",
            "give either the trust policy document or Trust (principal ARNs), not both",
            hint="e.g. --policy-document file://trust.json",
        )
    if document is None:
        return update_role_trust(store, account, role_name, trust)
    return {"Role": store.update_assume_role_policy(account, role_name, document).to_aws()}


def create_open_id_connect_provider(
    store: Store,
    account: str,
    url: str,
    client_ids: Sequence[str],
    ca_bundle: object,
    tags: Mapping[str, str],
) -> Document:
    if ca_bundle is not None and not isinstance(ca_bundle, str):
        raise InputError("CaBundle", "must be PEM text", hint="pass --ca-file ca.pem")
    provider = store.create_open_id_connect_provider(
        account, url, list(client_ids), ca_bundle=ca_bundle, tags=dict(tags)
    )
    return {"OpenIDConnectProviderArn": provider.arn, "Tags": provider.to_aws().get("Tags", [])}


def get_open_id_connect_provider(store: Store, account: str, arn: str, issuer: str) -> Document:
    shown = store.get_open_id_connect_provider(account, arn).to_aws()
    shown.pop("Arn")
    sign_in = sign_in_document(store, account, arn, issuer)
    if sign_in is not None:
        shown["SignIn"] = sign_in
    return shown


def sign_in_document(store: Store, account: str, arn: str, issuer: str) -> Document | None:
    """The provider's ``SignIn`` (never its secret), or None when it is no sign-in provider."""
    config = store.get_open_id_connect_provider_sign_in(account, arn)
    return None if config is None else config.to_aws(oidc_signin.redirect_uri(issuer))


def list_open_id_connect_providers(store: Store, account: str) -> Document:
    return {
        "OpenIDConnectProviderList": [
            {"Arn": p.arn} for p in store.list_open_id_connect_providers(account)
        ]
    }


def delete_open_id_connect_provider(store: Store, account: str, arn: str) -> None:
    store.delete_open_id_connect_provider(account, arn)


def add_client_id_to_open_id_connect_provider(
    store: Store, account: str, arn: str, client_id: str
) -> None:
    store.add_client_id_to_open_id_connect_provider(account, arn, client_id)


def remove_client_id_from_open_id_connect_provider(
    store: Store, account: str, arn: str, client_id: str
) -> None:
    store.remove_client_id_from_open_id_connect_provider(account, arn, client_id)


def delete_role(store: Store, account: str, role_name: str) -> None:
    store.delete_role(account, role_name)


def create_access_key(store: Store, account: str, user_name: str) -> Document:
    """``{"AccessKey": …}`` with the secret: the only document that ever holds one."""
    return {"AccessKey": store.create_access_key(account, user_name).to_aws()}


def list_access_keys(store: Store, account: str, user_name: str) -> Document:
    return {"AccessKeyMetadata": [k.to_aws() for k in store.list_access_keys(account, user_name)]}


def update_access_key(store: Store, access_key_id: str, status: AccessKeyStatus) -> Document:
    return {"AccessKey": store.update_access_key(access_key_id, status).to_aws()}


def delete_access_key(store: Store, access_key_id: str) -> None:
    store.delete_access_key(access_key_id)


# --------------------------------------------------------------------------- resources


_CHECK_NAME: Final[dict[str, Callable[[str], str]]] = {
    "user": names.user_name,
    "group": names.group_name,
    "role": names.role_name,
}


def entity_arn(kind: str, target: Target, name: object) -> str:
    """The entity's ARN as stored (its path included), else the path-less ARN it would have."""
    assert isinstance(name, str)  # noqa: S101 - the schema made it a string
    _CHECK_NAME[kind](name)  # ValidationError naming the parameter, before anything else
    account, partition = target.account_id, target.partition
    try:
        if kind == "user":
            return target.store.get_user(account, name).arn
        if kind == "group":
            return target.store.get_group(account, name).arn
        return target.store.get_role(account, name).arn
    except NoSuchEntity:
        pass
    if kind == "user":
        return arns.user_arn(partition, account, name)
    if kind == "group":
        return arns.group_arn(partition, account, name)
    return arns.role_arn(partition, account, name)


def _new_arn(kind: str, target: Target, name: object, path: object) -> str:
    """The ARN an entity created with this name and path will have (InputError if invalid)."""
    assert isinstance(name, str) and isinstance(path, str)  # noqa: S101 - the schema's types
    _CHECK_NAME[kind](name)
    names.path(path)
    build = {"user": arns.user_arn, "group": arns.group_arn, "role": arns.role_arn}[kind]
    return build(target.partition, target.account_id, name, path)


def _user(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (entity_arn("user", target, args["user_name"]),)


def _group(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (entity_arn("group", target, args["group_name"]),)


def _role(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (entity_arn("role", target, args["role_name"]),)


def _provider(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    """The provider's ARN, checked (MalformedArn naming the parameter), found or not."""
    oidc_provider.parse_provider_arn(args["arn"])
    return (args["arn"],)


provider_resource = _provider  # the sign-in actions (authbridge.admin.oidc_signin) act on it too


def _new_provider(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    key = oidc_provider.parse_url(args["url"]).key
    return (oidc_provider.provider_arn(target.partition, target.account_id, key),)


def _membership(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    return (*_group(target, args), *_user(target, args))


def _new(kind: str, arg: str) -> Callable[[Target, Mapping[str, Any]], tuple[str, ...]]:
    return lambda target, args: (_new_arn(kind, target, args[arg], args["path"]),)


def owned_key(target: Target, access_key_id: str, user_name: str | None) -> AccessKey:
    """The caller's account's key ``access_key_id`` (of ``user_name``, when given).

    A key of another account, or of another user than ``user_name``, is
    NoSuchEntity, with the message of a key that does not exist.
    """
    missing = NoSuchEntity(
        f"access key {access_key_id} does not exist",
        hint="list keys with `authbridge iam list-access-keys --user-name NAME`",
    )
    try:
        key = target.store.get_access_key(access_key_id)
    except NoSuchEntity:
        raise missing from None
    if key.account_id != target.account_id:
        raise missing
    if user_name is not None and key.user_name.lower() != user_name.lower():
        raise missing
    return key


def _key_owner(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    """The user owning the key; for a key not found, the named user, else ``user/*``.

    So that a caller who may not act on keys learns nothing about which ids
    exist: it is refused either way, and an allowed caller then gets
    NoSuchEntity from the handler.
    """
    try:
        key = owned_key(target, args["access_key_id"], args["user_name"])
    except NoSuchEntity:
        if args["user_name"] is not None:
            return (entity_arn("user", target, args["user_name"]),)
        return (f"arn:{target.partition}:iam::{target.account_id}:user/*",)
    return (entity_arn("user", target, key.user_name),)


# --------------------------------------------------------------------------- schema


def _p(name: str, arg: str, **kw: Any) -> Param:
    return Param(name, arg, **kw)


USER_NAME = _p("UserName", "user_name", required=True)
GROUP_NAME = _p("GroupName", "group_name", required=True)
ROLE_NAME = _p("RoleName", "role_name", required=True)
PATH = _p("Path", "path", default="/")
PATH_PREFIX = _p("PathPrefix", "path_prefix", default="/")
FORCE = _p("Force", "force", kind="boolean", default=False)
TRUST = _p("Trust", "trust", kind="strings", default=())
PROVIDER_ARN = _p("OpenIDConnectProviderArn", "arn", required=True)
CLIENT_ID = _p("ClientID", "client_id", required=True)
ACCESS_KEY_ID = _p("AccessKeyId", "access_key_id", required=True)
KEY_USER = _p("UserName", "user_name")


def _key_update(target: Target, args: Mapping[str, Any]) -> Document:
    owned_key(target, args["access_key_id"], args["user_name"])
    return update_access_key(target.store, args["access_key_id"], args["status"])


def _key_delete(target: Target, args: Mapping[str, Any]) -> None:
    owned_key(target, args["access_key_id"], args["user_name"])
    delete_access_key(target.store, args["access_key_id"])


ACTIONS: Final[tuple[Action, ...]] = (
    iam_action(
        "CreateUser",
        "create-user",
        (USER_NAME, PATH, _p("Tags", "tags", kind="tags", default={})),
        lambda t, a: create_user(t.store, t.account_id, a["user_name"], a["path"], a["tags"]),
        _new("user", "user_name"),
        mutating=True,
    ),
    iam_action(
        "GetUser",
        "get-user",
        (USER_NAME,),
        lambda t, a: get_user(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=False,
    ),
    iam_action(
        "ListUsers",
        "list-users",
        (PATH_PREFIX,),
        lambda t, a: list_users(t.store, t.account_id, a["path_prefix"]),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "UpdateUser",
        "update-user",
        (USER_NAME, _p("Enabled", "enabled", kind="boolean", required=True)),
        lambda t, a: update_user(t.store, t.account_id, a["user_name"], a["enabled"]),
        _user,
        mutating=True,
    ),
    iam_action(
        "DeleteUser",
        "delete-user",
        (USER_NAME, FORCE),
        lambda t, a: delete_user(t.store, t.account_id, a["user_name"], a["force"]),
        _user,
        mutating=True,
    ),
    iam_action(
        "CreateGroup",
        "create-group",
        (GROUP_NAME, PATH),
        lambda t, a: create_group(t.store, t.account_id, a["group_name"], a["path"]),
        _new("group", "group_name"),
        mutating=True,
    ),
    iam_action(
        "GetGroup",
        "get-group",
        (GROUP_NAME,),
        lambda t, a: get_group(t.store, t.account_id, a["group_name"]),
        _group,
        mutating=False,
    ),
    iam_action(
        "ListGroups",
        "list-groups",
        (PATH_PREFIX,),
        lambda t, a: list_groups(t.store, t.account_id, a["path_prefix"]),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "ListGroupsForUser",
        "list-groups-for-user",
        (USER_NAME,),
        lambda t, a: list_groups_for_user(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=False,
    ),
    iam_action(
        "DeleteGroup",
        "delete-group",
        (GROUP_NAME, FORCE),
        lambda t, a: delete_group(t.store, t.account_id, a["group_name"], a["force"]),
        _group,
        mutating=True,
    ),
    iam_action(
        "AddUserToGroup",
        "add-user-to-group",
        (GROUP_NAME, USER_NAME),
        lambda t, a: add_user_to_group(t.store, t.account_id, a["group_name"], a["user_name"]),
        _membership,
        mutating=True,
    ),
    iam_action(
        "RemoveUserFromGroup",
        "remove-user-from-group",
        (GROUP_NAME, USER_NAME),
        lambda t, a: remove_user_from_group(t.store, t.account_id, a["group_name"], a["user_name"]),
        _membership,
        mutating=True,
    ),
    iam_action(
        "CreateRole",
        "create-role",
        (
            ROLE_NAME,
            PATH,
            TRUST,
            _p("AssumeRolePolicyDocument", "trust_policy", kind="document"),
            _p("MaxSessionDuration", "max_session_duration", kind="integer", default=3600),
            _p("Description", "description", default=""),
        ),
        lambda t, a: create_role(
            t.store,
            t.account_id,
            a["role_name"],
            path=a["path"],
            trust=a["trust"],
            trust_policy=a["trust_policy"],
            max_session_duration=a["max_session_duration"],
            description=a["description"],
        ),
        _new("role", "role_name"),
        mutating=True,
    ),
    iam_action(
        "GetRole",
        "get-role",
        (ROLE_NAME,),
        lambda t, a: get_role(t.store, t.account_id, a["role_name"]),
        _role,
        mutating=False,
    ),
    iam_action(
        "ListRoles",
        "list-roles",
        (PATH_PREFIX,),
        lambda t, a: list_roles(t.store, t.account_id, a["path_prefix"]),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "UpdateAssumeRolePolicy",
        "update-assume-role-policy",
        (ROLE_NAME, _p("PolicyDocument", "document", kind="document"), TRUST),
        lambda t, a: update_assume_role_policy(
            t.store, t.account_id, a["role_name"], a["document"], a["trust"]
        ),
        _role,
        mutating=True,
    ),
    iam_action(
        "DeleteRole",
        "delete-role",
        (ROLE_NAME,),
        lambda t, a: delete_role(t.store, t.account_id, a["role_name"]),
        _role,
        mutating=True,
    ),
    iam_action(
        "CreateOpenIDConnectProvider",
        "create-open-id-connect-provider",
        (
            _p("Url", "url", required=True),
            _p("ClientIDList", "client_ids", kind="strings", default=()),
            # PEM is longer than a string parameter may be: taken as a document's text.
            _p("CaBundle", "ca_bundle", kind="document"),
            _p("Tags", "tags", kind="tags", default={}),
        ),
        lambda t, a: create_open_id_connect_provider(
            t.store, t.account_id, a["url"], a["client_ids"], a["ca_bundle"], a["tags"]
        ),
        _new_provider,
        mutating=True,
    ),
    iam_action(
        "GetOpenIDConnectProvider",
        "get-open-id-connect-provider",
        (PROVIDER_ARN,),
        lambda t, a: get_open_id_connect_provider(t.store, t.account_id, a["arn"], t.issuer),
        _provider,
        mutating=False,
    ),
    iam_action(
        "ListOpenIDConnectProviders",
        "list-open-id-connect-providers",
        (),
        lambda t, a: list_open_id_connect_providers(t.store, t.account_id),
        anywhere,
        mutating=False,
    ),
    iam_action(
        "DeleteOpenIDConnectProvider",
        "delete-open-id-connect-provider",
        (PROVIDER_ARN,),
        lambda t, a: delete_open_id_connect_provider(t.store, t.account_id, a["arn"]),
        _provider,
        mutating=True,
    ),
    iam_action(
        "AddClientIDToOpenIDConnectProvider",
        "add-client-id-to-open-id-connect-provider",
        (PROVIDER_ARN, CLIENT_ID),
        lambda t, a: add_client_id_to_open_id_connect_provider(
            t.store, t.account_id, a["arn"], a["client_id"]
        ),
        _provider,
        mutating=True,
    ),
    iam_action(
        "RemoveClientIDFromOpenIDConnectProvider",
        "remove-client-id-from-open-id-connect-provider",
        (PROVIDER_ARN, CLIENT_ID),
        lambda t, a: remove_client_id_from_open_id_connect_provider(
            t.store, t.account_id, a["arn"], a["client_id"]
        ),
        _provider,
        mutating=True,
    ),
    iam_action(
        "CreateAccessKey",
        "create-access-key",
        (USER_NAME,),
        lambda t, a: create_access_key(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=True,
    ),
    iam_action(
        "ListAccessKeys",
        "list-access-keys",
        (USER_NAME,),
        lambda t, a: list_access_keys(t.store, t.account_id, a["user_name"]),
        _user,
        mutating=False,
    ),
    iam_action(
        "UpdateAccessKey",
        "update-access-key",
        (
            ACCESS_KEY_ID,
            _p("Status", "status", required=True, choices=("Active", "Inactive")),
            KEY_USER,
        ),
        _key_update,
        _key_owner,
        mutating=True,
    ),
    iam_action(
        "DeleteAccessKey",
        "delete-access-key",
        (ACCESS_KEY_ID, KEY_USER),
        _key_delete,
        _key_owner,
        mutating=True,
    ),
)
