"""Who calls an admin action, and whether their IAM policies let them: default deny.

A :class:`Caller` is what authentication established (an admin-audience token
of a user or role session, or an access key): its ARNs, unique id, source
identity and whether MFA was used. :func:`request_context` turns it into the
condition keys a policy may test (``aws:username``, ``aws:userid``,
``aws:PrincipalArn``, ``aws:SourceIp``, ``aws:CurrentTime``,
``aws:MultiFactorAuthPresent``, ``aws:PrincipalTag/<key>``), as AWS fills
them in:

* ``aws:username`` only for an IAM user (a role session has none);
* ``aws:userid`` is the unique id: ``AIDA…`` for a user, ``AROA…:<session>``
  for a role session;
* ``aws:PrincipalArn`` is the user's ARN, or for a role session the role's
  ARN (not the session's);
* ``aws:MultiFactorAuthPresent`` is true only when the token says MFA was
  used; access keys never do.

An :class:`Authorizer` decides ``(caller, action, resource, context)``
(:class:`StorePolicies`: the caller's policies from the store, inline and
managed, its groups' too, or its role's for a session, evaluated by
:func:`authbridge.iam.policy.evaluate`);
anything but ``allowed`` is :class:`AccessDenied` with AWS's wording, naming
the caller, the action and the resource, and saying whether a policy denied
it explicitly or none allowed it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

from authbridge.errors import AuthbridgeError
from authbridge.iam.policy import Decision, Request, evaluate
from authbridge.store.base import Store

DecisionName = Literal["allowed", "explicitDeny", "implicitDeny"]
ContextValue = str | bool | int | datetime | tuple[str, ...]
AuthMethod = Literal["token", "access_key"]

TAG_KEY_PREFIX: Final = "aws:PrincipalTag/"


class AccessDenied(AuthbridgeError):
    """403: the caller's policies do not allow the action on the resource."""

    code = "AccessDenied"


@dataclass(frozen=True)
class Caller:
    """An authenticated admin API caller (see the module docstring)."""

    arn: str  # the user ARN, or the role session's assumed-role ARN
    canonical_arn: str  # the user or role ARN (aws:PrincipalArn)
    account_id: str
    principal_id: str  # aws:userid
    user_name: str | None  # aws:username; None for a role session
    source_identity: str  # the unique id the session started from
    method: AuthMethod
    access_key_id: str | None = None
    session_name: str | None = None
    mfa: bool = False
    jti: str | None = None  # the token's id, when it came with one


class Verdict(Protocol):
    """What an evaluator answers; only ``decision`` is read here."""

    @property
    def decision(self) -> DecisionName: ...


class Authorizer(Protocol):
    """Decides one call: evaluates the caller's policies against it."""

    def decide(
        self, caller: Caller, action: str, resource: str, context: Mapping[str, ContextValue]
    ) -> Verdict: ...

    def principal_tags(self, caller: Caller) -> Mapping[str, str]: ...


def request_context(
    caller: Caller,
    *,
    source_ip: str | None,
    now: float,
    tags: Mapping[str, str],
) -> dict[str, ContextValue]:
    """The condition keys of one call (see the module docstring)."""
    context: dict[str, ContextValue] = {
        "aws:userid": caller.principal_id,
        "aws:PrincipalArn": caller.canonical_arn,
        "aws:CurrentTime": datetime.fromtimestamp(now, UTC),
        "aws:MultiFactorAuthPresent": caller.mfa,
    }
    if caller.user_name is not None:
        context["aws:username"] = caller.user_name
    if source_ip is not None:
        context["aws:SourceIp"] = source_ip
    for key, value in tags.items():
        context[TAG_KEY_PREFIX + key] = value
    return context


def denial(caller: Caller, action: str, resource: str, decision: DecisionName) -> AccessDenied:
    """AWS's AccessDenied message for a refused call."""
    why = (
        "with an explicit deny in an identity-based policy"
        if decision == "explicitDeny"
        else f"because no identity-based policy allows the {action} action"
    )
    return AccessDenied(
        # AWS says "User:" for role sessions too.
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} {why}"
    )


def authorize(
    authorizer: Authorizer,
    caller: Caller,
    action: str,
    resource: str,
    *,
    source_ip: str | None,
    now: float,
) -> Verdict:
    """The verdict when it is ``allowed``; :class:`AccessDenied` otherwise (default deny)."""
    context = request_context(
        caller, source_ip=source_ip, now=now, tags=authorizer.principal_tags(caller)
    )
    verdict = authorizer.decide(caller, action, resource, context)
    if verdict.decision != "allowed":
        raise denial(caller, action, resource, verdict.decision)
    return verdict


class StorePolicies:
    """The :class:`Authorizer` of the admin API: the caller's policies, read from the store.

    Two reads per call (the policies and the tags; each one statement); nothing
    cached, so a detached policy stops allowing at the next call.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def principal_tags(self, caller: Caller) -> Mapping[str, str]:
        return self.store.principal_tags(caller.account_id, caller.arn)

    def decide(
        self, caller: Caller, action: str, resource: str, context: Mapping[str, ContextValue]
    ) -> Decision:
        policies = self.store.principal_policies(caller.account_id, caller.arn)
        return evaluate(policies, Request(action, resource, context))
