"""Who a verified identity is in Kubernetes: the mapping's rules applied in a fixed order (pure).

Precedence (the first step that decides wins; rules are never merged across steps):

1. **Role sessions** (the canonical ARN is an IAM role): the *first* ``mapRoles``
   entry, in file order, whose ``rolearn`` names the role decides username and
   groups. ``mapGroups`` never applies to roles (a role is in no IAM group).
2. **IAM users**: the *first* ``mapUsers`` entry whose ``userarn`` names the
   user gives the username and its groups; then *every* ``mapGroups`` entry
   whose ``grouparn`` is one of the user's IAM groups (``iam_group_arns``,
   given by the caller) adds its groups, in file order. A user that no
   ``mapUsers`` entry names but at least one ``mapGroups`` entry covers is
   mapped too: the username is the ``username`` template of the first
   matching ``mapGroups`` entry that sets one, else the user's canonical ARN.
3. **Accounts**: otherwise, when the identity's account is in ``mapAccounts``,
   the username is the canonical ARN and there are no groups (as
   aws-iam-authenticator's ``IsAccountAllowed``). This is also the only step
   for root and federated users.
4. Otherwise the identity is refused: ``user=None`` and
   ``reason="no mapping rule matched <canonical ARN> (mapRoles/mapUsers/mapGroups/mapAccounts)"``.

Matching. ARNs compare case-insensitively (upstream lowercases both sides and
uses ``strings.EqualFold``). Role ARNs are compared with the path removed on
both sides (:func:`authbridge.arn.strip_role_path`, upstream ``StripPath``): so
``role/platform/Admin`` in the mapping matches sessions of that role, and a
path-less ``role/Admin`` entry matches it too. Upstream compares
``StripPath(mapping ARN)`` with the session's canonical ARN, which STS never
gives a path; authbridge knows the role's path, so it strips both. IAM role
names are unique per account whatever the path, so this never confuses two
roles. User ARNs must match path and all (a user ARN always carries its path).

Rendering. Username and groups are rendered from their templates
(:mod:`authbridge.mapping.templates`). Groups are de-duplicated keeping the
first occurrence. A rendered username or group that is empty, longer than
253 characters, or starts with a reserved prefix when its entry does not say
``allowReservedPrefixes: true`` refuses the identity with a reason naming the
entry: nothing is ever silently dropped. Whether ``mapping.cluster_id`` fits
the token's audience is the caller's business.

Output. ``uid`` is ``authbridge:<account>:<principal id>`` (upstream:
``aws-iam-authenticator:<account>:<UserID>``). ``extra`` uses upstream's key
names (``pkg/server/server.go``): ``arn``, ``canonicalArn``, ``sessionName``,
``accessKeyId``, ``principalId``. Upstream always sends all five, empty
strings included; authbridge leaves out the empty ones. EKS itself also sends
``sigs.k8s.io/aws-iam-authenticator/principalId``; authbridge does not.
``rules`` lists every entry that contributed, in the order applied.

Access entries (:func:`resolve_access`, :mod:`authbridge.iam.access`) come
before all of this, by the cluster's ``authenticationMode``:

======================  ==============================================================
mode                    rule order
======================  ==============================================================
``CONFIG_MAP``          the file only (steps 1-4); entries are ignored
``API_AND_CONFIG_MAP``  the principal's entry, if it has one, decides alone (the
                        file is not consulted, so nothing is merged); else steps 1-4
``API``                 the principal's entry, or refused; the file is ignored
======================  ==============================================================

The caller finds the entry by unique id (a user's ``AIDA…``; a role session's
role id, the ``AROA…`` before the ``:``), so a re-created namesake has none.
An entry's username defaults to EKS's: a user's canonical ARN, a role's
``arn:…:sts::<acct>:assumed-role/<role>/{{SessionName}}``. Its rendered names
follow the rules above with no reserved-prefix opt-out; the matched rule is
``accessEntry`` with the entry's principal ARN. An entry with associated
policies also gives its group ``authbridge-internal:access-entry:<principal
ARN>``, the subject of the RBAC objects ``rbac apply`` renders from them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from authbridge import arn
from authbridge.errors import MalformedArn
from authbridge.iam.access import AccessEntry, AuthenticationMode, PolicyAssociation, entry_group
from authbridge.mapping import templates
from authbridge.mapping.model import (
    Identity,
    KubeIdentity,
    Mapping,
    MatchedRule,
    Resolution,
)

__all__ = ["UNMAPPED_SECTIONS", "resolve", "resolve_access", "template_values"]

UNMAPPED_SECTIONS = "mapRoles/mapUsers/mapGroups/mapAccounts"

# (template, allowReservedPrefixes of its entry, which entry: for messages)
_Item = tuple[str, bool, MatchedRule]


class _Refused(Exception):
    """A rendered name breaks a rule; the message is the resolution's reason."""


def template_values(identity: Identity) -> dict[str, str]:
    """What each template variable stands for, for ``identity``."""
    session = identity.session_name or ""
    return {
        "AccountID": identity.account_id,
        "SessionName": session.replace("@", "-"),
        "SessionNameRaw": session,
        "AccessKeyID": identity.access_key_id or "",
        "PrincipalID": identity.principal_id,
    }


def _extra(identity: Identity) -> dict[str, list[str]]:
    """The five keys aws-iam-authenticator sends (pkg/server/server.go), always all five,
    an empty string where a value does not apply, so tooling reading them keeps working."""
    return {
        "arn": [identity.arn],
        "canonicalArn": [identity.canonical_arn],
        "sessionName": [identity.session_name or ""],
        "accessKeyId": [identity.access_key_id or ""],
        "principalId": [identity.principal_id],
    }


def _resource_type(canonical: str) -> str:
    """``role``, ``user``, … from an ``arn:…:iam::<acct>:<type>/…`` ARN ('' if not IAM)."""
    parts = canonical.lower().split(":", 5)  # upstream lowercases the whole ARN
    if len(parts) != 6 or parts[2] != "iam":
        return ""
    return parts[5].split("/", 1)[0]


@functools.lru_cache(maxsize=16384)  # pure; spares re-parsing every rolearn on every request
def _role_key(role_arn: str) -> str:
    """The role an ARN names, for comparison: lowercased, path removed."""
    lowered = role_arn.lower()
    parts = lowered.split(":", 2)
    # Partitions were checked when the mapping was parsed and the token verified;
    # only the ARN's shape matters here.
    partition = parts[1] if len(parts) == 3 else ""
    try:
        return arn.strip_role_path(lowered, partitions=(partition,))
    except MalformedArn:
        return lowered


def _describe(rule: MatchedRule) -> str:
    return f"{rule.section}[{rule.index}]" + (f" ({rule.arn})" if rule.arn else "")


def _render(item: _Item, values: dict[str, str], what: str) -> str:
    template, allow, rule = item
    try:
        rendered = templates.render(template, values)
    except templates.RenderError as e:
        raise _Refused(f"{_describe(rule)}: {what} {template!r}: {e}") from e
    if not rendered:
        raise _Refused(f"{_describe(rule)}: {what} {template!r} renders to an empty {what}")
    if len(rendered) > templates.MAX_NAME_LENGTH:
        raise _Refused(
            f"{_describe(rule)}: {what} {template!r} renders to {len(rendered)} characters;"
            f" the limit is {templates.MAX_NAME_LENGTH}"
        )
    prefix = templates.reserved_prefix(rendered)
    if prefix is not None and not allow:
        raise _Refused(
            f"{_describe(rule)}: {what} {template!r} renders to {rendered!r}, which starts with"
            f' the reserved prefix "{prefix}"; set allowReservedPrefixes: true on that entry'
            " if you mean it"
        )
    return rendered


def _mapped(
    identity: Identity,
    rules: Sequence[MatchedRule],
    username: _Item | None,
    groups: Iterable[_Item],
) -> Resolution:
    values = template_values(identity)
    try:
        name = identity.canonical_arn if username is None else _render(username, values, "username")
        rendered: list[str] = []
        for item in groups:
            group = _render(item, values, "group")
            if group not in rendered:
                rendered.append(group)
    except _Refused as e:
        return Resolution(user=None, rules=tuple(rules), reason=str(e))
    user = KubeIdentity(
        username=name,
        uid=f"authbridge:{identity.account_id}:{identity.principal_id}",
        groups=tuple(rendered),
        extra=_extra(identity),
    )
    return Resolution(user=user, rules=tuple(rules))


def _resolve_role(mapping: Mapping, identity: Identity) -> Resolution | None:
    wanted = _role_key(identity.canonical_arn)
    for index, rule in enumerate(mapping.map_roles):
        if _role_key(rule.rolearn) == wanted:
            matched = MatchedRule("mapRoles", index, rule.rolearn)
            items = [(g, rule.allow_reserved_prefixes, matched) for g in rule.groups]
            return _mapped(
                identity, [matched], (rule.username, rule.allow_reserved_prefixes, matched), items
            )
    return None


def _resolve_user(
    mapping: Mapping, identity: Identity, iam_group_arns: Sequence[str]
) -> Resolution | None:
    wanted = identity.canonical_arn.lower()
    rules: list[MatchedRule] = []
    username: _Item | None = None
    groups: list[_Item] = []
    for index, user_rule in enumerate(mapping.map_users):
        if user_rule.userarn.lower() == wanted:
            matched = MatchedRule("mapUsers", index, user_rule.userarn)
            rules.append(matched)
            username = (user_rule.username, user_rule.allow_reserved_prefixes, matched)
            groups.extend((g, user_rule.allow_reserved_prefixes, matched) for g in user_rule.groups)
            break
    member_of = {g.lower() for g in iam_group_arns}
    for index, group_rule in enumerate(mapping.map_groups):
        if group_rule.grouparn.lower() not in member_of:
            continue
        matched = MatchedRule("mapGroups", index, group_rule.grouparn)
        rules.append(matched)
        allow = group_rule.allow_reserved_prefixes
        if username is None and group_rule.username is not None:
            username = (group_rule.username, allow, matched)
        groups.extend((g, allow, matched) for g in group_rule.groups)
    if not rules:
        return None
    return _mapped(identity, rules, username, groups)


def resolve(mapping: Mapping, identity: Identity, iam_group_arns: Sequence[str] = ()) -> Resolution:
    """Map ``identity`` by the precedence in the module docstring.

    ``iam_group_arns`` are the ARNs of the IAM groups the user belongs to (the
    caller looks them up; ignored for everything but IAM users).
    """
    kind = _resource_type(identity.canonical_arn)
    found: Resolution | None = None
    if kind == "role":
        found = _resolve_role(mapping, identity)
    elif kind == "user":
        found = _resolve_user(mapping, identity, iam_group_arns)
    if found is not None:
        return found
    if identity.account_id in mapping.map_accounts:
        index = mapping.map_accounts.index(identity.account_id)
        return _mapped(identity, [MatchedRule("mapAccounts", index, None)], None, ())
    return Resolution(
        user=None,
        reason=f"no mapping rule matched {identity.canonical_arn} ({UNMAPPED_SECTIONS})",
    )


def resolve_access(
    mapping: Mapping,
    identity: Identity,
    iam_group_arns: Sequence[str] = (),
    *,
    mode: AuthenticationMode,
    entry: AccessEntry | None,
    entry_policies: Sequence[PolicyAssociation] = (),
) -> Resolution:
    """Map ``identity`` by ``mode`` (module docstring), ``entry`` being its access entry.

    ``entry_policies`` are the entry's associated policies: with any, the user
    also gets the entry's group (:func:`authbridge.iam.access.entry_group`),
    which the RBAC objects rendered from those policies bind.
    """
    if mode == "CONFIG_MAP":
        return resolve(mapping, identity, iam_group_arns)
    if entry is not None:
        matched = MatchedRule("accessEntry", 0, entry.principal_arn)
        username = entry.username if entry.username is not None else entry.default_username()
        groups = [(g, False, matched) for g in entry.groups]
        if entry_policies:
            groups.append((entry_group(entry.principal_arn), True, matched))
        return _mapped(identity, [matched], (username, False, matched), groups)
    if mode == "API":
        return Resolution(
            user=None,
            reason=f"no access entry matched {identity.canonical_arn} (the cluster's"
            " authenticationMode is API: the mapping file is not used)",
        )
    return resolve(mapping, identity, iam_group_arns)
