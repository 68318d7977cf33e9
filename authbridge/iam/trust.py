"""Role trust policies: the AWS trust policy document, parsed and evaluated (pure).

A role's trust policy (AWS ``AssumeRolePolicyDocument``) says who may assume
it. The grammar is the identity policy's (:mod:`authbridge.iam.policy_document`:
``Version``, ``Statement``, ``Sid``, ``Effect``, ``Condition`` with every IAM
operator), with these differences, as IAM's "role trust policy" has them:

* a statement names its principals: ``Principal: {"AWS": ARN | [ARN…]}``
  (users, groups - an authbridge extension: every member may assume - and
  account roots ``arn:…:iam::<account>:root`` or a bare 12-digit account id)
  and/or ``{"Federated": <oidc-provider ARN>}``. ``"*"``, ``Service``,
  ``CanonicalUser``, ``NotPrincipal`` and SAML providers are refused: deny by
  default means a trust names whom it trusts;
* ``Action`` is ``sts:AssumeRole``, ``sts:AssumeRoleWithWebIdentity``,
  ``sts:TagSession`` or ``sts:SetSourceIdentity`` (case-insensitive; wildcards
  as in identity policies, e.g. ``sts:*``, must match one of them);
  ``NotAction``, ``Resource`` and ``NotResource`` are refused;
* condition keys are IAM's (``aws:MultiFactorAuthPresent``, ``aws:username``,
  …) or a provider's claims, ``<host[:port]/path>:<claim>`` (its
  :func:`~authbridge.iam.oidc_provider.provider_key`), nested claims joined by
  ``/`` (``kube.example:kubernetes.io/serviceaccount/name``);
* at most :data:`MAX_TRUST_CHARS` characters, whitespace not counted (IAM's
  quota, raised to its maximum).

The store keeps the document with every ``AWS`` principal replaced by the
principal's unique id (``AIDA…``, ``AGPA…``, or the account id for a root),
as IAM does, so a user deleted and re-created under the same name is not
trusted; it shows the current ARN again when the document is read, or the
bare id of a deleted principal (:meth:`TrustPolicy.to_json`).

Evaluation (:func:`evaluate`): a statement applies when one of its principals
is the caller (the user, one of its groups, or its account; or the OIDC
provider that issued the token), its action matches, and every condition
holds. An applying ``Deny`` decides; else an applying ``Allow``; else the
request is refused. The :class:`TrustDecision` names the deciding statement,
or for a refusal the statement that came closest (its principal and action
matched) and the first condition that failed, with the request's value
shortened, never a whole token.

Roles made before trust documents existed trust a list of principals; that
list reads as :func:`legacy_policy`, one ``Allow`` of ``sts:AssumeRole`` for
all of them, so they mean what they meant. The ``--trust ARN`` flags write
exactly that document (:func:`shorthand_document`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from authbridge.errors import InputError, MalformedPolicyDocument
from authbridge.iam import oidc_provider
from authbridge.iam.policy_conditions import Condition
from authbridge.iam.policy_document import (
    action_patterns,
    conditions_json,
    document_envelope,
    load_document,
    one_or_list,
    parse_conditions,
    parse_strings,
    statement_label,
)
from authbridge.iam.policy_patterns import ContextValue, PatternSet, bare, context_string, show

MAX_TRUST_CHARS: Final = 4096  # IAM's quota for a role trust policy, at its maximum
MAX_PRINCIPALS: Final = 100  # per statement and element
MAX_CLAIM_KEYS: Final = 256  # condition keys a token's claims turn into
MAX_CLAIM_DEPTH: Final = 4  # nesting of claim objects flattened into keys

ASSUME_ROLE: Final = "sts:AssumeRole"
ASSUME_ROLE_WITH_WEB_IDENTITY: Final = "sts:AssumeRoleWithWebIdentity"
TRUST_ACTIONS: Final = (
    ASSUME_ROLE,
    ASSUME_ROLE_WITH_WEB_IDENTITY,
    "sts:TagSession",
    "sts:SetSourceIdentity",
)
TrustAction = Literal["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"]

_STATEMENT_KEYS: Final = ("Sid", "Effect", "Principal", "Action", "Condition")
_PRINCIPAL_TEXT: Final = re.compile(r"[\x21-\x7e]{1,2048}", re.ASCII)
_PRINCIPAL_HINT: Final = (
    'write {"AWS": "arn:aws:iam::111122223333:user/alice"} (a user, group or account root)'
    ' or {"Federated": "arn:aws:iam::111122223333:oidc-provider/HOST"}'
)


@dataclass(frozen=True)
class TrustStatement:
    """One statement. ``aws``: ARNs as written, or unique ids once stored."""

    index: int
    sid: str | None
    effect: Literal["Allow", "Deny"]
    aws: tuple[str, ...]
    federated: tuple[str, ...]
    actions: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    _actions: PatternSet = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_actions", action_patterns(self.actions, f"{self.label}.Action"))

    @property
    def label(self) -> str:
        return statement_label(self.index, self.sid)

    def matches_action(self, action: str) -> bool:
        return self._actions.match(action.lower(), {}, {}) is True

    def to_json(self, show_aws: Callable[[str], str] = str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sid is not None:
            out["Sid"] = self.sid
        out["Effect"] = self.effect
        principal: dict[str, Any] = {}
        if self.aws:
            principal["AWS"] = one_or_list(tuple(show_aws(p) for p in self.aws))
        if self.federated:
            principal["Federated"] = one_or_list(self.federated)
        out["Principal"] = principal
        out["Action"] = one_or_list(self.actions)
        if self.conditions:
            out["Condition"] = conditions_json(self.conditions)
        return out


@dataclass(frozen=True)
class TrustPolicy:
    """A parsed trust policy; :meth:`to_json` gives back an equivalent document."""

    version: str
    statements: tuple[TrustStatement, ...]
    id: str | None = None

    def aws_principals(self) -> tuple[str, ...]:
        """Every ``AWS`` principal, in order of appearance, each once."""
        return tuple(dict.fromkeys(p for s in self.statements for p in s.aws))

    def federated_principals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for s in self.statements for p in s.federated))

    def with_aws(self, replace: Callable[[str], str]) -> TrustPolicy:
        """The same policy with every ``AWS`` principal replaced (ARN → unique id)."""
        return TrustPolicy(
            self.version,
            tuple(
                TrustStatement(
                    s.index,
                    s.sid,
                    s.effect,
                    tuple(dict.fromkeys(replace(p) for p in s.aws)),
                    s.federated,
                    s.actions,
                    s.conditions,
                )
                for s in self.statements
            ),
            self.id,
        )

    def to_json(self, show_aws: Callable[[str], str] = str) -> dict[str, Any]:
        out: dict[str, Any] = {"Version": self.version}
        if self.id is not None:
            out["Id"] = self.id
        out["Statement"] = [s.to_json(show_aws) for s in self.statements]
        return out


# -- parsing -------------------------------------------------------------------------------


def _principal_values(value: Any, where: str) -> tuple[str, ...]:
    values = parse_strings(value, where)
    if len(values) > MAX_PRINCIPALS:
        raise MalformedPolicyDocument(
            where, f"names {len(values)} principals, at most {MAX_PRINCIPALS} are allowed"
        )
    for position, text in enumerate(values):
        here = f"{where}[{position}]" if not isinstance(value, str) else where
        if text == "*":
            raise MalformedPolicyDocument(
                here,
                "a wildcard principal would let anyone assume the role",
                hint="name the users, groups, accounts or provider the role trusts",
            )
        if not _PRINCIPAL_TEXT.fullmatch(text):
            raise MalformedPolicyDocument(
                here, f"{show(text)} is not a principal ARN", hint=_PRINCIPAL_HINT
            )
    return values


def _check_federated(values: tuple[str, ...], where: str) -> None:
    for position, text in enumerate(values):
        here = f"{where}[{position}]" if len(values) > 1 else where
        if ":saml-provider/" in text:
            raise MalformedPolicyDocument(
                here,
                "SAML providers are not supported",
                hint="register the IdP as an OIDC provider (iam create-open-id-connect-provider)",
            )
        try:
            oidc_provider.parse_provider_arn(text, field=here)
        except InputError as e:
            raise MalformedPolicyDocument(
                here,
                e.message.removeprefix(f"{here}: "),
                hint="register the provider with `authbridge iam create-open-id-connect-provider`"
                " and name its ARN",
            ) from None


def _principal(raw: Any, label: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    where = f"{label}.Principal"
    if raw == "*":
        raise MalformedPolicyDocument(
            where,
            "a wildcard principal would let anyone assume the role",
            hint=_PRINCIPAL_HINT,
        )
    if not isinstance(raw, Mapping) or not raw:
        raise MalformedPolicyDocument(
            where, f"must be an object naming principals, got {show(raw)}", hint=_PRINCIPAL_HINT
        )
    aws: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()
    for key, value in raw.items():
        if key == "AWS":
            # Their kind and existence are the store's to check (InvalidTrust).
            aws = _principal_values(value, f"{where}.AWS")
        elif key == "Federated":
            federated = _principal_values(value, f"{where}.Federated")
            _check_federated(federated, f"{where}.Federated")
        elif key in ("Service", "CanonicalUser"):
            raise MalformedPolicyDocument(
                f"{where}.{key}",
                f"{key} principals do not exist in authbridge",
                hint=_PRINCIPAL_HINT,
            )
        else:
            raise MalformedPolicyDocument(
                f"{where}.{bare(key)}", "unknown principal type", hint=_PRINCIPAL_HINT
            )
    return aws, federated


def _actions(raw: Any, label: str) -> tuple[str, ...]:
    where = f"{label}.Action"
    actions = parse_strings(raw, where)
    known = tuple(a.lower() for a in TRUST_ACTIONS)
    for position, action in enumerate(actions):
        here = f"{where}[{position}]" if not isinstance(raw, str) else where
        patterns = action_patterns((action,), here)
        if not any(patterns.match(k, {}, {}) is True for k in known):
            raise MalformedPolicyDocument(
                here,
                f"{show(action)} is not an action a trust policy grants",
                hint="use sts:AssumeRole or sts:AssumeRoleWithWebIdentity",
            )
    return actions


def _statement(index: int, raw: Any, seen: set[str], *, variables: bool) -> TrustStatement:
    if not isinstance(raw, Mapping):
        raise MalformedPolicyDocument(f"Statement[{index}]", f"must be an object, got {show(raw)}")
    sid = raw.get("Sid")
    label = statement_label(index, sid)
    for key in raw:
        if key == "NotPrincipal":
            raise MalformedPolicyDocument(
                f"{label}.NotPrincipal",
                "a trust policy names whom it trusts; NotPrincipal is refused",
                hint="write Principal",
            )
        if key in ("Resource", "NotResource", "NotAction"):
            raise MalformedPolicyDocument(
                f"{label}.{key}",
                "a trust policy has no resource and no NotAction: the role is the resource",
                hint="drop the element; write Action",
            )
        if key not in _STATEMENT_KEYS:
            raise MalformedPolicyDocument(
                f"{label}.{bare(key)}",
                "unknown element",
                hint="a trust statement has Sid, Effect, Principal, Action and Condition",
            )
    if sid is not None:
        if not isinstance(sid, str) or not re.fullmatch(r"[A-Za-z0-9]{1,128}", sid, re.ASCII):
            raise MalformedPolicyDocument(
                f"{label}.Sid", f"{show(sid)} is not 1 to 128 letters and digits"
            )
        if sid in seen:
            raise MalformedPolicyDocument(f"{label}.Sid", "is already used in this document")
        seen.add(sid)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(
            f"{label}.Effect", f"must be Allow or Deny, got {show(effect) if effect else 'nothing'}"
        )
    if "Principal" not in raw:
        raise MalformedPolicyDocument(label, "needs Principal", hint=_PRINCIPAL_HINT)
    aws, federated = _principal(raw["Principal"], label)
    if "Action" not in raw:
        raise MalformedPolicyDocument(
            label, "needs Action", hint="e.g. sts:AssumeRoleWithWebIdentity"
        )
    actions = _actions(raw["Action"], label)
    conditions = (
        parse_conditions(raw["Condition"], label, variables=variables, trust_keys=True)
        if "Condition" in raw
        else ()
    )
    return TrustStatement(index, sid, effect, aws, federated, actions, conditions)


def parse_trust_policy(document: str | Mapping[str, Any]) -> TrustPolicy:
    """The checked trust policy, or :class:`MalformedPolicyDocument` naming what is wrong.

    ``AWS`` principals are only checked to be printable text here: the store
    resolves them (ARNs or account ids as given; unique ids in its own form).
    """
    version, policy_id, raw_statements = document_envelope(
        load_document(document, limit=MAX_TRUST_CHARS, what="role trust policy"),
        what="a trust policy",
        version_hint='write "Version": "2012-10-17"',
    )
    seen: set[str] = set()
    statements = tuple(
        _statement(i, raw, seen, variables=version == "2012-10-17")
        for i, raw in enumerate(raw_statements)
    )
    return TrustPolicy(version, statements, policy_id)


def shorthand_document(principals: Sequence[str]) -> dict[str, Any]:
    """The document ``--trust ARN…`` writes: one Allow of sts:AssumeRole for all of them."""
    if not principals:
        raise InputError(
            "Trust", "a role must trust at least one principal", hint="pass --trust ARN"
        )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": one_or_list(tuple(dict.fromkeys(principals)))},
                "Action": ASSUME_ROLE,
            }
        ],
    }


def legacy_policy(principal_ids: Sequence[str]) -> TrustPolicy:
    """What a role's trust list (unique ids, or account ids for roots) always meant."""
    return TrustPolicy(
        "2012-10-17",
        (
            TrustStatement(
                0, None, "Allow", tuple(dict.fromkeys(principal_ids)), (), (ASSUME_ROLE,)
            ),
        ),
    )


# -- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustRequest:
    """Who asks to assume the role, how, and the condition context (lowercased keys).

    For ``sts:AssumeRole``, ``principal_ids`` are the user's unique id, its
    groups' and its account id; for web identity, ``federated`` is the ARN of
    the provider that issued the (verified) token.
    """

    action: TrustAction
    principal_ids: frozenset[str] = frozenset()
    federated: str | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class FailedCondition:
    """The condition that kept a statement from applying, and what the request had."""

    statement: str
    operator: str
    key: str
    wanted: tuple[str, ...]
    got: str | None  # the request's value, shortened; None when it had none

    def describe(self) -> str:
        wanted = ", ".join(show(v) for v in self.wanted[:3]) + (
            ", …" if len(self.wanted) > 3 else ""
        )
        had = "has no value for it" if self.got is None else f"has {self.got}"
        return (
            f"{self.statement}: condition {self.operator} {bare(self.key)} [{wanted}]"
            f" is not met: the request {had}"
        )


Outcome = Literal["allowed", "explicitDeny", "implicitDeny"]


@dataclass(frozen=True)
class TrustDecision:
    outcome: Outcome
    statement: str | None  # the deciding statement (allowed, explicitDeny) or the closest one
    reason: str
    failed: FailedCondition | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


def _shown(value: ContextValue | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        items = ", ".join(show(v) for v in value[:3]) + (", …" if len(value) > 3 else "")
        return f"[{items}]"
    text = context_string(value)
    return show(text) if text is not None else None


def _first_failure(
    statement: TrustStatement, context: Mapping[str, ContextValue]
) -> FailedCondition | None:
    for condition in statement.conditions:
        if not condition.evaluate(context, {}, allow=statement.effect == "Allow"):
            return FailedCondition(
                statement.label,
                condition.operator,
                condition.key,
                condition.values,
                _shown(context.get(condition.key.lower())),
            )
    return None


def evaluate(policy: TrustPolicy, request: TrustRequest) -> TrustDecision:
    """Whether the trust policy lets the request assume the role (see the module docstring)."""
    allowed: TrustStatement | None = None
    closest: FailedCondition | None = None
    closest_label: str | None = None
    for statement in policy.statements:
        named = bool(request.principal_ids.intersection(statement.aws)) or (
            request.federated is not None and request.federated in statement.federated
        )
        if not named or not statement.matches_action(request.action):
            continue
        failed = _first_failure(statement, request.context)
        if failed is None:
            if statement.effect == "Deny":
                return TrustDecision(
                    "explicitDeny",
                    statement.label,
                    f"denied by {statement.label} of the role's trust policy",
                )
            allowed = allowed or statement
        elif statement.effect == "Allow" and closest is None:
            closest, closest_label = failed, statement.label
    if allowed is not None:
        return TrustDecision("allowed", allowed.label, f"allowed by {allowed.label}")
    if closest is not None:
        return TrustDecision("implicitDeny", closest_label, closest.describe(), closest)
    who = request.federated or "the caller"
    return TrustDecision(
        "implicitDeny",
        None,
        f"no statement of the role's trust policy allows {who} {request.action}",
    )


# -- request contexts ----------------------------------------------------------------------


def _time_context(now: float) -> dict[str, ContextValue]:
    moment = datetime.fromtimestamp(now, UTC)
    return {"aws:currenttime": moment, "aws:epochtime": int(now)}


def assume_role_context(
    *, user_arn: str, user_name: str, user_id: str, account_id: str, mfa: bool, now: float
) -> dict[str, ContextValue]:
    """The keys an ``sts:AssumeRole`` trust condition may test.

    ``mfa`` is the subject token's ``mfa`` claim (``aws:MultiFactorAuthPresent``);
    a caller authenticated by its access key alone has none.
    """
    return {
        "aws:multifactorauthpresent": mfa,
        "aws:principalarn": user_arn,
        "aws:username": user_name,
        "aws:userid": user_id,
        "aws:principalaccount": account_id,
        "aws:principaltype": "User",
        **_time_context(now),
    }


def _claim_value(value: Any) -> ContextValue | None:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, list):
        items = tuple(
            s
            for s in (context_string(v) if isinstance(v, bool | str | int) else None for v in value)
            if s is not None
        )
        return items
    return None


def web_identity_context(
    provider_key: str, provider_arn: str, claims: Mapping[str, Any], *, now: float
) -> dict[str, ContextValue]:
    """The keys an ``sts:AssumeRoleWithWebIdentity`` trust condition may test.

    Each claim of the verified token is ``<provider key>:<claim>`` (lowercased,
    as every condition key is looked up); an object claim's members are
    ``<claim>/<member>``, to :data:`MAX_CLAIM_DEPTH` levels; a list claim is
    multi-valued (its strings, numbers and booleans), for ``ForAnyValue:`` /
    ``ForAllValues:``. ``null`` and other values are absent, and so are two
    claims that would make one key (they differ only in case). At most
    :data:`MAX_CLAIM_KEYS` keys are made, so a token stuffed with claims
    costs no more than that.
    """
    out: dict[str, ContextValue] = {
        **_time_context(now),
        "aws:federatedprovider": provider_arn,
        "aws:principaltype": "WebIdentityUser",
    }
    prefix = provider_key.lower() + ":"
    budget = [MAX_CLAIM_KEYS]
    made: dict[str, ContextValue] = {}
    ambiguous: set[str] = set()

    def add(name: str, value: Any, depth: int) -> None:
        if budget[0] <= 0:
            return
        if isinstance(value, Mapping):
            if depth >= MAX_CLAIM_DEPTH:
                return
            for member, inner in value.items():
                if isinstance(member, str):
                    add(f"{name}/{member}", inner, depth + 1)
            return
        converted = _claim_value(value)
        if converted is not None:
            budget[0] -= 1
            key = prefix + name.lower()
            if key in made:
                ambiguous.add(key)
            made[key] = converted

    for name, value in claims.items():
        if isinstance(name, str):
            add(name, value, 0)
    # Two claims that read as one key (``sub`` and ``Sub``, or a claim named ``a/b`` and
    # the member b of a): neither is trusted, so a positive condition on it fails.
    out.update((k, v) for k, v in made.items() if k not in ambiguous)
    return out


def evaluate_web_identity(
    policy: TrustPolicy, provider_arn: str, claims: Mapping[str, Any], *, now: float
) -> TrustDecision:
    """AssumeRoleWithWebIdentity's trust check for a token that already verified.

    ``claims`` are the verified token's (its ``iss`` is the provider's URL, its
    ``aud`` one of the provider's client ids: the exchange has checked both);
    ``provider_arn`` is the registered provider's ARN.
    """
    key = oidc_provider.parse_provider_arn(provider_arn).key
    return evaluate(
        policy,
        TrustRequest(
            ASSUME_ROLE_WITH_WEB_IDENTITY,
            federated=provider_arn,
            context=web_identity_context(key, provider_arn, claims, now=now),
        ),
    )
