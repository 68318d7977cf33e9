"""The IAM policy actions: managed policies and versions, inline policies, attachments,
user and role tags, and SimulatePrincipalPolicy, as ``aws iam`` names and shapes them.

Each function is one ``authbridge iam …`` verb of :mod:`authbridge.cli.iam_policies`
and returns the document that verb prints with ``-o json`` (``None`` where it
prints nothing), from the same store calls and ``to_aws()`` shapes; a test runs
the CLI and the API on one store and compares. Resources, as IAM's: the
policy's ARN (CreatePolicy: the ARN it will have), the user, group or role
for inline policies, attachments and tags, the simulated principal for
SimulatePrincipalPolicy, ``*`` for ListPolicies.

``PolicyDocument`` is the document as JSON text (as the AWS API takes it) or
as a JSON object; either is checked by :func:`authbridge.iam.policy.parse_policy`
in the store before anything is written (``MalformedPolicyDocument`` naming
the statement and field). ``ContextEntries`` are objects with
``ContextKeyName``, ``ContextKeyValues`` and ``ContextKeyType``, checked as the
CLI's ``--context-entries`` are (:mod:`authbridge.iam.simulate`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from authbridge import arn as arns
from authbridge.admin.actions import Action, Document, Target, anywhere, iam_action
from authbridge.admin.iam import PATH, PATH_PREFIX, entity_arn
from authbridge.admin.params import Param
from authbridge.errors import InputError, MalformedArn, NoSuchEntity
from authbridge.iam import managed, policy, simulate
from authbridge.iam.managed import PrincipalKind, TaggableKind
from authbridge.store.base import Store

# --------------------------------------------------------------------------- handlers


def create_policy(
    store: Store,
    account: str,
    name: str,
    document: str | Mapping[str, Any],
    *,
    path: str,
    description: str,
) -> Document:
    created = store.create_policy(account, name, document, path=path, description=description)
    return {"Policy": created.to_aws()}


def get_policy(store: Store, account: str, policy_arn: str) -> Document:
    return {"Policy": store.get_policy(account, policy_arn).to_aws()}


def list_policies(
    store: Store, account: str, *, scope: str, only_attached: bool, path_prefix: str
) -> Document:
    found = store.list_policies(
        account, scope=scope, only_attached=only_attached, path_prefix=path_prefix
    )
    return {"Policies": [p.to_aws() for p in found]}


def delete_policy(store: Store, account: str, policy_arn: str) -> None:
    store.delete_policy(account, policy_arn)


def create_policy_version(
    store: Store,
    account: str,
    policy_arn: str,
    document: str | Mapping[str, Any],
    *,
    set_as_default: bool,
) -> Document:
    version = store.create_policy_version(
        account, policy_arn, document, set_as_default=set_as_default
    )
    return {"PolicyVersion": version.to_aws(with_document=False)}


def get_policy_version(store: Store, account: str, policy_arn: str, version_id: str) -> Document:
    version = store.get_policy_version(account, policy_arn, version_id)
    return {"PolicyVersion": version.to_aws()}


def list_policy_versions(store: Store, account: str, policy_arn: str) -> Document:
    versions = store.list_policy_versions(account, policy_arn)
    return {"Versions": [v.to_aws(with_document=False) for v in versions]}


def set_default_policy_version(
    store: Store, account: str, policy_arn: str, version_id: str
) -> None:
    store.set_default_policy_version(account, policy_arn, version_id)


def delete_policy_version(store: Store, account: str, policy_arn: str, version_id: str) -> None:
    store.delete_policy_version(account, policy_arn, version_id)


def put_inline_policy(
    store: Store,
    account: str,
    kind: PrincipalKind,
    principal: str,
    name: str,
    document: str | Mapping[str, Any],
) -> None:
    store.put_inline_policy(account, kind, principal, name, document)


def get_inline_policy(
    store: Store, account: str, kind: PrincipalKind, principal: str, name: str
) -> Document:
    return store.get_inline_policy(account, kind, principal, name).to_aws()


def list_inline_policies(
    store: Store, account: str, kind: PrincipalKind, principal: str
) -> Document:
    return {"PolicyNames": store.list_inline_policies(account, kind, principal)}


def delete_inline_policy(
    store: Store, account: str, kind: PrincipalKind, principal: str, name: str
) -> None:
    store.delete_inline_policy(account, kind, principal, name)


def attach_policy(
    store: Store, account: str, kind: PrincipalKind, principal: str, policy_arn: str
) -> None:
    store.attach_policy(account, kind, principal, policy_arn)


def detach_policy(
    store: Store, account: str, kind: PrincipalKind, principal: str, policy_arn: str
) -> None:
    store.detach_policy(account, kind, principal, policy_arn)


def list_attached_policies(
    store: Store, account: str, kind: PrincipalKind, principal: str, path_prefix: str
) -> Document:
    found = store.list_attached_policies(account, kind, principal, path_prefix=path_prefix)
    return {"AttachedPolicies": [a.to_aws() for a in found]}


def tag_principal(
    store: Store, account: str, kind: TaggableKind, principal: str, tags: Mapping[str, str]
) -> None:
    store.tag_principal(account, kind, principal, tags)


def untag_principal(
    store: Store, account: str, kind: TaggableKind, principal: str, keys: Sequence[str]
) -> None:
    store.untag_principal(account, kind, principal, list(keys))


def list_principal_tags(store: Store, account: str, kind: TaggableKind, principal: str) -> Document:
    return {"Tags": managed.tags_to_aws(store.list_principal_tags(account, kind, principal))}


def source_principal(store: Store, source_arn: str) -> arns.PrincipalArn:
    """``PolicySourceArn`` parsed: a user, group, role or role-session ARN."""
    try:
        return arns.parse_principal(
            source_arn, partitions=arns.KNOWN_PARTITIONS | {store.partition}
        )
    except MalformedArn as e:
        raise InputError("PolicySourceArn", e.message, hint=e.hint) from e


def identity(store: Store, account: str, p: arns.PrincipalArn) -> tuple[str, str, str | None]:
    """(aws:PrincipalArn, aws:userid, aws:username) of a simulated principal, as IAM sets them."""
    if p.kind == "user":
        user = store.get_user(account, p.name)
        return user.arn, user.user_id, user.name
    if p.kind == "group":
        group = store.get_group(account, p.name)
        return group.arn, group.group_id, None
    role = store.get_role(account, p.name)
    if p.kind == "assumed-role":
        return role.arn, f"{role.role_id}:{p.session_name}", None
    return role.arn, role.role_id, None


def simulate_principal_policy(
    store: Store,
    account: str,
    source_arn: str,
    actions: Sequence[str],
    resources: Sequence[str],
    entries: Sequence[str],
    *,
    now: datetime,
) -> Document:
    """``{"EvaluationResults": […]}`` for every action on every resource (default ``*``).

    The principal is looked up in ``account``; the CLI passes the account its
    ARN names, the API the caller's (a principal of another account is not
    found there).
    """
    context_entries = simulate.parse_context_entries(entries)
    for action in actions:
        simulate.action_name(action)
    targets = tuple(resources) or ("*",)
    for resource in targets:
        simulate.resource_name(resource)
    source = source_principal(store, source_arn)
    if source.account_id != account:
        raise NoSuchEntity(
            f"PolicySourceArn names account {source.account_id}; this call acts in {account}"
        )
    policies = store.principal_policies(account, source_arn)
    principal_arn, user_id, user_name = identity(store, account, source)
    context = simulate.simulation_context(
        principal_arn=principal_arn,
        user_id=user_id,
        user_name=user_name,
        tags=store.principal_tags(account, source_arn),
        now=now,
        entries=context_entries,
    )
    results = [
        simulate.evaluation_result(
            action, resource, policy.evaluate(policies, policy.Request(action, resource, context))
        )
        for action in actions
        for resource in targets
    ]
    return {"EvaluationResults": results}


# --------------------------------------------------------------------------- schema

POLICY_ARN = Param("PolicyArn", "policy_arn", required=True)
POLICY_NAME = Param("PolicyName", "name", required=True)
DOCUMENT = Param("PolicyDocument", "document", kind="document", required=True)
VERSION_ID = Param("VersionId", "version_id", required=True)
NAME_PARAMS: Final[dict[str, Param]] = {
    "user": Param("UserName", "principal", required=True),
    "group": Param("GroupName", "principal", required=True),
    "role": Param("RoleName", "principal", required=True),
}
TITLES: Final = {"user": "User", "group": "Group", "role": "Role"}


def _policy(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    policy_arn = args["policy_arn"]
    managed.parse_policy_arn(policy_arn, partition=target.partition)  # ValidationError first
    return (policy_arn,)


def _new_policy(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    name = managed.policy_name(args["name"])
    return (managed.policy_arn(target.partition, target.account_id, name, args["path"]),)


def _principal(kind: str) -> Callable[[Target, Mapping[str, Any]], tuple[str, ...]]:
    return lambda target, args: (entity_arn(kind, target, args["principal"]),)


def _simulated(target: Target, args: Mapping[str, Any]) -> tuple[str, ...]:
    source_principal(target.store, args["source_arn"])  # ValidationError first
    return (args["source_arn"],)


def _entries(value: Sequence[Mapping[str, Any]]) -> list[str]:
    """ContextEntries objects as the JSON texts :func:`simulate.parse_context_entries` reads."""
    return [json.dumps(entry) for entry in value]


def _policy_actions() -> tuple[Action, ...]:
    return (
        iam_action(
            "CreatePolicy",
            "create-policy",
            (POLICY_NAME, DOCUMENT, PATH, Param("Description", "description", default="")),
            lambda t, a: create_policy(
                t.store,
                t.account_id,
                a["name"],
                a["document"],
                path=a["path"],
                description=a["description"],
            ),
            _new_policy,
            mutating=True,
        ),
        iam_action(
            "GetPolicy",
            "get-policy",
            (POLICY_ARN,),
            lambda t, a: get_policy(t.store, t.account_id, a["policy_arn"]),
            _policy,
            mutating=False,
        ),
        iam_action(
            "ListPolicies",
            "list-policies",
            (
                Param("Scope", "scope", default="All", choices=managed.LIST_SCOPES),
                Param("OnlyAttached", "only_attached", kind="boolean", default=False),
                PATH_PREFIX,
            ),
            lambda t, a: list_policies(
                t.store,
                t.account_id,
                scope=a["scope"],
                only_attached=a["only_attached"],
                path_prefix=a["path_prefix"],
            ),
            anywhere,
            mutating=False,
        ),
        iam_action(
            "DeletePolicy",
            "delete-policy",
            (POLICY_ARN,),
            lambda t, a: delete_policy(t.store, t.account_id, a["policy_arn"]),
            _policy,
            mutating=True,
        ),
        iam_action(
            "CreatePolicyVersion",
            "create-policy-version",
            (
                POLICY_ARN,
                DOCUMENT,
                Param("SetAsDefault", "set_as_default", kind="boolean", default=False),
            ),
            lambda t, a: create_policy_version(
                t.store,
                t.account_id,
                a["policy_arn"],
                a["document"],
                set_as_default=a["set_as_default"],
            ),
            _policy,
            mutating=True,
        ),
        iam_action(
            "GetPolicyVersion",
            "get-policy-version",
            (POLICY_ARN, VERSION_ID),
            lambda t, a: get_policy_version(
                t.store, t.account_id, a["policy_arn"], a["version_id"]
            ),
            _policy,
            mutating=False,
        ),
        iam_action(
            "ListPolicyVersions",
            "list-policy-versions",
            (POLICY_ARN,),
            lambda t, a: list_policy_versions(t.store, t.account_id, a["policy_arn"]),
            _policy,
            mutating=False,
        ),
        iam_action(
            "SetDefaultPolicyVersion",
            "set-default-policy-version",
            (POLICY_ARN, VERSION_ID),
            lambda t, a: set_default_policy_version(
                t.store, t.account_id, a["policy_arn"], a["version_id"]
            ),
            _policy,
            mutating=True,
        ),
        iam_action(
            "DeletePolicyVersion",
            "delete-policy-version",
            (POLICY_ARN, VERSION_ID),
            lambda t, a: delete_policy_version(
                t.store, t.account_id, a["policy_arn"], a["version_id"]
            ),
            _policy,
            mutating=True,
        ),
    )


def _principal_actions(kind: PrincipalKind) -> tuple[Action, ...]:
    title, who, on = TITLES[kind], NAME_PARAMS[kind], _principal(kind)
    return (
        iam_action(
            f"Put{title}Policy",
            f"put-{kind}-policy",
            (who, POLICY_NAME, DOCUMENT),
            lambda t, a: put_inline_policy(
                t.store, t.account_id, kind, a["principal"], a["name"], a["document"]
            ),
            on,
            mutating=True,
        ),
        iam_action(
            f"Get{title}Policy",
            f"get-{kind}-policy",
            (who, POLICY_NAME),
            lambda t, a: get_inline_policy(t.store, t.account_id, kind, a["principal"], a["name"]),
            on,
            mutating=False,
        ),
        iam_action(
            f"List{title}Policies",
            f"list-{kind}-policies",
            (who,),
            lambda t, a: list_inline_policies(t.store, t.account_id, kind, a["principal"]),
            on,
            mutating=False,
        ),
        iam_action(
            f"Delete{title}Policy",
            f"delete-{kind}-policy",
            (who, POLICY_NAME),
            lambda t, a: delete_inline_policy(
                t.store, t.account_id, kind, a["principal"], a["name"]
            ),
            on,
            mutating=True,
        ),
        iam_action(
            f"Attach{title}Policy",
            f"attach-{kind}-policy",
            (who, POLICY_ARN),
            lambda t, a: attach_policy(
                t.store, t.account_id, kind, a["principal"], a["policy_arn"]
            ),
            on,
            mutating=True,
        ),
        iam_action(
            f"Detach{title}Policy",
            f"detach-{kind}-policy",
            (who, POLICY_ARN),
            lambda t, a: detach_policy(
                t.store, t.account_id, kind, a["principal"], a["policy_arn"]
            ),
            on,
            mutating=True,
        ),
        iam_action(
            f"ListAttached{title}Policies",
            f"list-attached-{kind}-policies",
            (who, PATH_PREFIX),
            lambda t, a: list_attached_policies(
                t.store, t.account_id, kind, a["principal"], a["path_prefix"]
            ),
            on,
            mutating=False,
        ),
    )


def _tag_actions(kind: TaggableKind) -> tuple[Action, ...]:
    title, who, on = TITLES[kind], NAME_PARAMS[kind], _principal(kind)
    return (
        iam_action(
            f"Tag{title}",
            f"tag-{kind}",
            (who, Param("Tags", "tags", kind="tags", required=True)),
            lambda t, a: tag_principal(t.store, t.account_id, kind, a["principal"], a["tags"]),
            on,
            mutating=True,
        ),
        iam_action(
            f"Untag{title}",
            f"untag-{kind}",
            (who, Param("TagKeys", "keys", kind="strings", required=True)),
            lambda t, a: untag_principal(t.store, t.account_id, kind, a["principal"], a["keys"]),
            on,
            mutating=True,
        ),
        iam_action(
            f"List{title}Tags",
            f"list-{kind}-tags",
            (who,),
            lambda t, a: list_principal_tags(t.store, t.account_id, kind, a["principal"]),
            on,
            mutating=False,
        ),
    )


SIMULATE: Final = iam_action(
    "SimulatePrincipalPolicy",
    "simulate-principal-policy",
    (
        Param("PolicySourceArn", "source_arn", required=True),
        Param("ActionNames", "actions", kind="strings", required=True),
        Param("ResourceArns", "resources", kind="strings", default=()),
        Param("ContextEntries", "entries", kind="objects", default=()),
    ),
    lambda t, a: simulate_principal_policy(
        t.store,
        t.account_id,
        a["source_arn"],
        a["actions"],
        a["resources"],
        _entries(a["entries"]),
        now=datetime.fromtimestamp(t.now(), UTC),
    ),
    _simulated,
    mutating=False,
)

ACTIONS: Final[tuple[Action, ...]] = (
    *_policy_actions(),
    *(a for kind in managed.PRINCIPAL_KINDS for a in _principal_actions(kind)),
    *_tag_actions("user"),
    *_tag_actions("role"),
    SIMULATE,
)
