"""IAM policy documents: the grammar, checked and compiled into immutable values (pure).

Grammar ("IAM JSON policy element reference"):

* ``Version`` is ``2012-10-17`` or ``2008-10-17`` (required here; the older
  version has no policy variables); ``Id`` is optional; ``Statement`` is one
  object or a non-empty list;
* a statement has ``Effect`` (``Allow``/``Deny``), exactly one of ``Action`` /
  ``NotAction`` and one of ``Resource`` / ``NotResource`` (a string or a
  non-empty list of strings), an optional alphanumeric ``Sid`` unique in the
  document and an optional ``Condition`` (:mod:`authbridge.iam.policy_conditions`).
  ``Principal``/``NotPrincipal`` belong to resource policies and are refused;
  any other element is refused;
* an action is ``service:Name`` or ``*``, with ``*``/``?`` wildcards, matched
  case-insensitively; a resource is ``*`` or an ARN, with wildcards and policy
  variables (:mod:`authbridge.iam.policy_patterns`), matched case-sensitively
  field by field;
* a document is at most :data:`MAX_CHARS` characters for its kind, whitespace
  not counted (IAM's quotas); a JSON text of more than :data:`MAX_TEXT_CHARS`
  characters is refused before it is even read, and duplicate keys in an
  object are refused (IAM would keep one silently; here they are an ambiguity
  an attacker could use).

Every refusal is a :class:`~authbridge.errors.MalformedPolicyDocument` whose
field names the statement (index from 0, and its Sid) and the element.

An unresolved variable never widens an Allow: in ``Resource`` its pattern
matches nothing, and an ``Allow`` whose ``NotResource`` cannot be resolved
does not apply (a ``Deny``'s unresolved ``NotResource`` pattern matches
nothing, so the Deny applies).

The public names are re-exported by :mod:`authbridge.iam.policy`; import them from there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from authbridge.errors import MalformedPolicyDocument
from authbridge.iam.policy_conditions import Condition
from authbridge.iam.policy_patterns import ContextValue, PatternSet, bare, show, template

PolicyKind = Literal["managed", "user", "group", "role"]
Effect = Literal["Allow", "Deny"]

# IAM quotas, in characters with whitespace not counted: managed policy,
# inline policies of a user, group and role ("IAM and AWS STS quotas").
MAX_CHARS: Final = {"managed": 6144, "user": 2048, "role": 10240, "group": 5120}
MAX_TEXT_CHARS: Final = 128 * 1024  # a JSON text larger than this is not read at all
VERSIONS: Final = ("2012-10-17", "2008-10-17")
_VARIABLES_VERSION: Final = "2012-10-17"
_ACTION_CACHE: Final = 512  # distinct actions remembered per document

_SID: Final = re.compile(r"[A-Za-z0-9]{1,128}", re.ASCII)
_ACTION: Final = re.compile(r"\*|[A-Za-z0-9*?-]{1,64}:[A-Za-z0-9_*?-]{1,128}", re.ASCII)
_WHITESPACE: Final = str.maketrans("", "", " \t\r\n")
_STATEMENT_KEYS: Final = (
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_TOP_KEYS: Final = ("Version", "Id", "Statement")


@dataclass(frozen=True)
class Statement:
    """One statement; ``index`` is its place in the document (from 0).

    Exactly one of ``actions``/``not_actions`` and one of ``resources``/
    ``not_resources`` is set. Building one compiles its patterns once.
    """

    index: int
    sid: str | None
    effect: Effect
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Condition, ...] = ()
    policy_variables: bool = field(default=True, compare=False, repr=False)
    _actions: PatternSet = field(init=False, compare=False, repr=False)
    _resources: PatternSet = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        label = _label(self.index, self.sid)
        if (self.actions is None) == (self.not_actions is None):
            raise MalformedPolicyDocument(label, "needs exactly one of Action and NotAction")
        if (self.resources is None) == (self.not_resources is None):
            raise MalformedPolicyDocument(label, "needs exactly one of Resource and NotResource")
        actions = self.actions if self.actions is not None else self.not_actions
        resources = self.resources if self.resources is not None else self.not_resources
        assert actions is not None and resources is not None  # noqa: S101 - checked above
        action_field = "Action" if self.actions is not None else "NotAction"
        resource_field = "Resource" if self.resources is not None else "NotResource"
        object.__setattr__(self, "_actions", _action_patterns(actions, f"{label}.{action_field}"))
        object.__setattr__(
            self,
            "_resources",
            _resource_patterns(
                resources, f"{label}.{resource_field}", variables=self.policy_variables
            ),
        )

    def matches_action(self, action: str) -> bool:
        """Whether the action element matches ``action`` (lowercased)."""
        return (self._actions.match(action, {}, {}) is True) == (self.actions is not None)

    def applies(
        self,
        action: str,
        resource: str,
        context: Mapping[str, ContextValue],
        missing: dict[str, str],
    ) -> bool:
        """Whether this statement matches the request.

        ``action`` is lowercased, and so are ``context``'s keys; absent keys are
        added to ``missing``.
        """
        return self.matches_action(action) and self.applies_beyond_action(
            resource, context, missing
        )

    def applies_beyond_action(
        self, resource: str, context: Mapping[str, ContextValue], missing: dict[str, str]
    ) -> bool:
        """:meth:`applies` for a request whose action this statement already matched."""
        matched = self._resources.match(resource, context, missing)
        if self.resources is not None:
            if matched is not True:
                return False
        elif matched is True or (matched is None and self.effect == "Allow"):
            return False
        allow = self.effect == "Allow"
        result = True
        for condition in self.conditions:  # every one, so `missing` lists every absent key
            if not condition.evaluate(context, missing, allow=allow):
                result = False
        return result

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.sid is not None:
            out["Sid"] = self.sid
        out["Effect"] = self.effect
        if self.actions is not None:
            out["Action"] = one_or_list(self.actions)
        if self.not_actions is not None:
            out["NotAction"] = one_or_list(self.not_actions)
        if self.resources is not None:
            out["Resource"] = one_or_list(self.resources)
        if self.not_resources is not None:
            out["NotResource"] = one_or_list(self.not_resources)
        if self.conditions:
            out["Condition"] = conditions_json(self.conditions)
        return out


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed policy document; :meth:`to_json` gives back an equivalent document."""

    version: str
    statements: tuple[Statement, ...]
    id: str | None = None
    # action (lowercased) -> the statements whose action element matches it; actions
    # need no context, so a request checks only these (bounded; dict ops are atomic)
    _by_action: dict[str, tuple[Statement, ...]] = field(
        init=False, compare=False, repr=False, default_factory=dict
    )

    def statements_for(self, action: str) -> tuple[Statement, ...]:
        """The statements whose Action/NotAction matches ``action`` (lowercased)."""
        hit = self._by_action.get(action)
        if hit is None:
            hit = tuple(s for s in self.statements if s.matches_action(action))
            if len(self._by_action) >= _ACTION_CACHE:
                self._by_action.clear()
            self._by_action[action] = hit
        return hit

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Version": self.version}
        if self.id is not None:
            out["Id"] = self.id
        out["Statement"] = [statement.to_json() for statement in self.statements]
        return out


# -- parsing -------------------------------------------------------------------------------


def _label(index: int, sid: object) -> str:
    if isinstance(sid, str) and _SID.fullmatch(sid):
        return f"Statement[{index}] (Sid {sid})"
    return f"Statement[{index}]"


def one_or_list(values: tuple[str, ...]) -> str | list[str]:
    """A policy element as IAM writes it back: one value bare, several as a list."""
    return values[0] if len(values) == 1 else list(values)


def conditions_json(conditions: tuple[Condition, ...]) -> dict[str, dict[str, Any]]:
    """A statement's ``Condition`` block: operator -> key -> value(s)."""
    block: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        block.setdefault(condition.operator, {})[condition.key] = one_or_list(condition.values)
    return block


def _action_patterns(actions: tuple[str, ...], where: str) -> PatternSet:
    for position, action in enumerate(actions):
        if not isinstance(action, str) or not _ACTION.fullmatch(action):
            raise MalformedPolicyDocument(
                f"{where}[{position}]",
                f"{show(action)} is not an action",
                hint="write service:Name, e.g. iam:CreateUser, iam:List* or *",
            )
    return PatternSet.build(tuple((a.lower(),) for a in actions), arn=False)


def _resource_patterns(resources: tuple[str, ...], where: str, *, variables: bool) -> PatternSet:
    templates = []
    for position, resource in enumerate(resources):
        here = f"{where}[{position}]"
        if not isinstance(resource, str):
            raise MalformedPolicyDocument(here, f"must be a string, got {show(resource)}")
        parts = template(resource, variables=variables, field=here)
        plain = "".join(part for part in parts if isinstance(part, str))
        if resource != "*" and not (resource.startswith("arn:") and plain.count(":") >= 5):
            raise MalformedPolicyDocument(
                here,
                f'{show(resource)} must be in ARN format or "*"',
                hint="e.g. arn:aws:iam::111122223333:user/* or *",
            )
        templates.append(parts)
    return PatternSet.build(tuple(templates), arn=True)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _jsonable(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(type(value).__name__)


def _load(document: str | Mapping[str, Any], kind: PolicyKind) -> Any:
    """The document as JSON values, after the size check."""
    return load_document(document, limit=MAX_CHARS[kind], what=f"{kind} policy")


def load_document(document: str | Mapping[str, Any], *, limit: int, what: str) -> Any:
    """A policy document's JSON values, refused over ``limit`` characters (no whitespace).

    Duplicate keys and non-JSON constants are refused; ``what`` names the limit's
    kind in the message (``role trust policy``).
    """
    if isinstance(document, str):
        if len(document) > MAX_TEXT_CHARS:
            raise MalformedPolicyDocument(
                "PolicyDocument", f"{len(document)} characters is far over any policy limit"
            )
        text = document
    elif isinstance(document, Mapping):
        try:
            text = json.dumps(
                document,
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
                default=_jsonable,
            )
        except (TypeError, ValueError, RecursionError) as err:
            raise MalformedPolicyDocument(
                "PolicyDocument",
                "holds values that are not JSON (strings, numbers, lists, objects only)",
            ) from err
    else:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"must be a JSON object or its text, got {show(document)}"
        )
    size = len(text.translate(_WHITESPACE))
    if size > limit:
        raise MalformedPolicyDocument(
            "PolicyDocument",
            f"{size} characters (whitespace not counted) exceed the {what} limit of {limit}",
            hint="split it into several policies",
        )
    if not isinstance(document, str):
        return document
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except _DuplicateKey as err:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"the key {show(err.key)} appears twice in one object"
        ) from None
    except json.JSONDecodeError as err:
        raise MalformedPolicyDocument(
            "PolicyDocument", f"not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}"
        ) from None
    except (ValueError, RecursionError):
        raise MalformedPolicyDocument("PolicyDocument", "not valid JSON") from None


def _strings(value: Any, where: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings, as a tuple."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise MalformedPolicyDocument(
            where, f"must be a string or a list of strings, got {show(value)}"
        )
    if not value:
        raise MalformedPolicyDocument(where, "must not be an empty list")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise MalformedPolicyDocument(
                f"{where}[{position}]", f"must be a string, got {show(item)}"
            )
    return tuple(value)


def _condition_value(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return repr(value)
    raise MalformedPolicyDocument(where, f"must be a string, number or boolean, got {show(value)}")


def parse_conditions(
    block: Any, label: str, *, variables: bool, trust_keys: bool = False
) -> tuple[Condition, ...]:
    """A statement's ``Condition`` block; ``label`` names the statement in errors."""
    return _conditions(block, label, variables=variables, trust_keys=trust_keys)


def parse_strings(value: Any, where: str) -> tuple[str, ...]:
    """A string or a non-empty list of strings, as a tuple (MalformedPolicyDocument)."""
    return _strings(value, where)


def statement_label(index: int, sid: object) -> str:
    """``Statement[2] (Sid ReadOnly)``: how errors and decisions name a statement."""
    return _label(index, sid)


def action_patterns(actions: tuple[str, ...], where: str) -> PatternSet:
    """``service:Name`` patterns with wildcards, checked and compiled (lowercased)."""
    return _action_patterns(actions, where)


def _conditions(
    block: Any, label: str, *, variables: bool, trust_keys: bool = False
) -> tuple[Condition, ...]:
    where = f"{label}.Condition"
    if not isinstance(block, Mapping) or not block:
        raise MalformedPolicyDocument(
            where, 'must be an object of condition operators, e.g. {"Bool": {...}}'
        )
    out = []
    for operator, tests in block.items():
        if not isinstance(operator, str):
            raise MalformedPolicyDocument(where, f"operator {show(operator)} is not a string")
        if not isinstance(tests, Mapping) or not tests:
            raise MalformedPolicyDocument(
                f"{where}.{bare(operator)}",
                "must be an object of condition keys and values",
            )
        for key, raw in tests.items():
            here = f"{where}.{bare(operator)}.{bare(key)}"
            raw_values = raw if isinstance(raw, list | tuple) else [raw]
            if not raw_values:
                raise MalformedPolicyDocument(here, "must not be an empty list")
            values = tuple(_condition_value(v, here) for v in raw_values)
            try:
                out.append(
                    Condition(
                        operator, key, values, policy_variables=variables, trust_keys=trust_keys
                    )
                )
            except MalformedPolicyDocument as err:
                raise err.under(label) from None
    return tuple(out)


def _statement(index: int, raw: Any, seen_sids: set[str], *, variables: bool) -> Statement:
    if not isinstance(raw, Mapping):
        raise MalformedPolicyDocument(f"Statement[{index}]", f"must be an object, got {show(raw)}")
    sid = raw.get("Sid")
    label = _label(index, sid)
    for key in raw:
        if key in ("Principal", "NotPrincipal"):
            raise MalformedPolicyDocument(
                f"{label}.{key}",
                "an identity policy cannot name a principal",
                hint="the policy applies to whoever it is attached to; drop the element",
            )
        if key not in _STATEMENT_KEYS:
            raise MalformedPolicyDocument(
                f"{label}.{bare(key)}",
                "unknown element",
                hint="a statement has Sid, Effect, Action or NotAction, Resource or"
                " NotResource, and Condition",
            )
    if sid is not None:
        if not isinstance(sid, str) or not _SID.fullmatch(sid):
            raise MalformedPolicyDocument(
                f"{label}.Sid", f"{show(sid)} is not 1 to 128 letters and digits"
            )
        if sid in seen_sids:
            raise MalformedPolicyDocument(f"{label}.Sid", "is already used in this document")
        seen_sids.add(sid)
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(
            f"{label}.Effect", f"must be Allow or Deny, got {show(effect) if effect else 'nothing'}"
        )

    def pair(positive: str, negative: str) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        if positive in raw and negative in raw:
            raise MalformedPolicyDocument(
                f"{label}.{negative}", f"{positive} and {negative} cannot both be given"
            )
        if positive not in raw and negative not in raw:
            raise MalformedPolicyDocument(label, f"needs {positive} or {negative}")
        if positive in raw:
            return _strings(raw[positive], f"{label}.{positive}"), None
        return None, _strings(raw[negative], f"{label}.{negative}")

    actions, not_actions = pair("Action", "NotAction")
    resources, not_resources = pair("Resource", "NotResource")
    conditions = (
        _conditions(raw["Condition"], label, variables=variables) if "Condition" in raw else ()
    )
    return Statement(
        index,
        sid,
        effect,
        actions,
        not_actions,
        resources,
        not_resources,
        conditions,
        policy_variables=variables,
    )


def document_envelope(
    data: Any, *, what: str, version_hint: str
) -> tuple[str, str | None, list[Any] | tuple[Any, ...]]:
    """A decoded document's Version, Id and raw Statement list, checked (identity and
    trust policies share this shape); :class:`MalformedPolicyDocument` naming what is wrong."""
    if not isinstance(data, Mapping):
        raise MalformedPolicyDocument("PolicyDocument", f"must be a JSON object, got {show(data)}")
    for key in data:
        if key not in _TOP_KEYS:
            raise MalformedPolicyDocument(
                f"PolicyDocument.{bare(key)}",
                "unknown element",
                hint=f"{what} has Version, Id and Statement",
            )
    version = data.get("Version")
    if version not in VERSIONS:
        raise MalformedPolicyDocument(
            "Version",
            f'must be "2012-10-17", got {show(version) if version is not None else "nothing"}',
            hint=version_hint,
        )
    policy_id = data.get("Id")
    if policy_id is not None and (not isinstance(policy_id, str) or not policy_id):
        raise MalformedPolicyDocument("Id", f"must be a non-empty string, got {show(policy_id)}")
    raw_statements = data.get("Statement")
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list | tuple) or not raw_statements:
        raise MalformedPolicyDocument(
            "Statement", "must be a statement object or a non-empty list of them"
        )
    return str(version), policy_id, raw_statements


def parse_policy(
    document: str | Mapping[str, Any], *, kind: PolicyKind = "managed"
) -> PolicyDocument:
    """The checked document, or :class:`MalformedPolicyDocument` naming what is wrong.

    ``kind`` picks the size limit (:data:`MAX_CHARS`). Accepts the JSON text
    or the already-decoded object.
    """
    if kind not in MAX_CHARS:
        raise ValueError(f"unknown policy kind {kind!r}")
    version, policy_id, raw_statements = document_envelope(
        _load(document, kind),
        what="a policy document",
        version_hint='write "Version": "2012-10-17" ("2008-10-17" is accepted, without variables)',
    )
    variables = version == _VARIABLES_VERSION
    seen: set[str] = set()
    statements = tuple(
        _statement(index, raw, seen, variables=variables)
        for index, raw in enumerate(raw_statements)
    )
    return PolicyDocument(version, statements, policy_id)
