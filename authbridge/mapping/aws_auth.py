"""Converting an EKS ``aws-auth`` ConfigMap into an authbridge mapping file (pure).

The input is read the way EKS reads it (aws-iam-authenticator,
``pkg/mapper/configmap/configmap.go`` ``ParseMap`` and ``pkg/config/types.go``):

* a ``kind: ConfigMap`` whose ``data.mapRoles`` and ``data.mapUsers`` are
  *strings* holding a YAML list, and ``data.mapAccounts`` a string holding a
  list of account ids. Also accepted: the bare ``data`` mapping (what
  ``kubectl get configmap aws-auth -o jsonpath='{.data}'`` prints) and
  ``{data: …}``. JSON is YAML, so ``-o json`` output works too;
* the ``data`` keys are case-sensitive (EKS ignores ``mapusers``); inside an
  entry the keys are matched case-insensitively (``rolearn``, ``roleARN``,
  ``RoLeArN``), because EKS decodes entries with Go's ``encoding/json``;
* a value of ``""``, ````` `` ````` or ``'""'`` (after trimming) is an empty list, as
  upstream's ``isSkippable``; account ids keep the exact text written (Go's
  yaml.v2 does the same into ``[]string``), so ``0123…`` stays ``0123…``.

EKS is lenient where a mapping file is strict; the import refuses whatever
it cannot carry over faithfully, naming the entry and field, instead of
dropping it:

* unknown keys (EKS ignores them silently), a key given twice in different
  case, a missing ``rolearn``/``userarn``/``username``, wrong types, an ARN
  of the wrong kind (an ``assumed-role`` ARN in ``rolearn`` never matched in
  EKS either), a data value that is not a string (a ``mapRoles:`` without
  ``|``, which Kubernetes itself refuses);
* *unsupported* entries: templates authbridge cannot render
  (``{{EC2PrivateDNSName}}``, ``{{EC2PrivateDNSNameRaw}}`` for worker nodes,
  ``{{SessionKey …}}``, anything unknown, ``{{SessionName}}`` in ``mapUsers``
  or ``{{AccessKeyID}}`` in ``mapRoles`` where they would always be empty)
  and ``sso`` matchers. With ``skip_unsupported`` these entries are left
  out instead, each listed as a comment in the output, so nothing vanishes
  unseen. A typical EKS node-group role (``system:node:{{EC2PrivateDNSName}}``)
  is such an entry: authbridge does not authenticate EC2 nodes.

What is carried over with a comment in the output, so the result maps every
principal as EKS did (the round-trip tests check this):

* reserved prefixes: aws-auth allows ``system:masters``, ``system:nodes``, … so
  entries that use them get ``allowReservedPrefixes: true``;
* several entries for the same ARN (case-insensitively): EKS keys entries by
  lowercased ARN, so the *last* one wins; the others are left out and
  commented. A ``rolearn`` with a path never matched in EKS (sessions carry
  no path) but does in authbridge: when a path-less entry names the same
  role, that one is kept;
* a ``rolearn`` with a path is kept (authbridge matches it, EKS did not);
* ``userid`` is not carried over: EKS's aws-auth matching ignores it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from yaml.nodes import ScalarNode, SequenceNode

from authbridge import arn
from authbridge.errors import MalformedArn
from authbridge.mapping import templates, yamlsafe
from authbridge.mapping.model import Mapping, MappingError
from authbridge.mapping.parse import article, parse_mapping

__all__ = ["AwsAuthImport", "convert_aws_auth", "import_aws_auth"]

DATA_KEYS: Final = ("mapRoles", "mapUsers", "mapAccounts")
_ENTRY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "mapRoles": ("rolearn", "username", "groups", "userid", "sso"),
    "mapUsers": ("userarn", "username", "groups", "userid"),
}
_ARN_KEY: Final = {"mapRoles": "rolearn", "mapUsers": "userarn"}
_KIND: Final = {"mapRoles": "role", "mapUsers": "user"}
_SKIPPABLE: Final = ("", "``", '""')
SKIP_HINT: Final = (
    "fix the aws-auth ConfigMap, or pass --skip-unsupported to leave the unsupported"
    " entries out (each is listed as a comment in the output)"
)


@dataclass(frozen=True)
class AwsAuthImport:
    """The converted mapping: its YAML, the same parsed, and what to review."""

    text: str
    mapping: Mapping
    notes: tuple[str, ...] = ()  # differences from EKS (also comments in ``text``)
    skipped: tuple[str, ...] = ()  # entries left out by skip_unsupported, and why


@dataclass
class _Entry:
    section: str
    index: int
    arn: str
    username: str
    groups: list[str]
    allow: bool = False
    comments: list[str] = field(default_factory=list)
    left_out: str | None = None  # why the entry is only a comment in the output

    @property
    def key(self) -> str:
        lowered = self.arn.lower()
        if self.section != "mapRoles":
            return lowered
        return arn.strip_role_path(lowered, partitions=(lowered.split(":")[1],))


def _comment(text: str) -> str:
    """``text`` safe inside a YAML comment: one line, control characters escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _quote(text: str) -> str:
    # JSON strings are YAML double-quoted scalars; the values are printable (checked).
    return json.dumps(text, ensure_ascii=False)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, yamlsafe.Foreign):
        return value.describe()
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "a " + type(value).__name__


class _Converter:
    def __init__(self, source: str, skip_unsupported: bool, partitions: Collection[str]) -> None:
        self.source = source
        self.skip = skip_unsupported
        self.partitions = partitions
        self.problems: list[str] = []
        self.unsupported = False
        self.notes: list[str] = []
        self.skipped: list[str] = []
        self.account_notes: list[str] = []
        self.prefix = "data."

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{self.source}: {where}: {message}")

    # -- the document ----------------------------------------------------------------------

    def data(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict):
            raise MappingError(
                [f"{self.source}: is not an aws-auth ConfigMap (got {_kind(doc)})"],
                hint="pass the output of `kubectl -n kube-system get configmap aws-auth -o yaml`",
            )
        if "kind" in doc:
            if doc["kind"] != "ConfigMap":
                shown = doc["kind"] if isinstance(doc["kind"], str) else _kind(doc["kind"])
                raise MappingError(
                    [f"{self.source}: kind: is {_comment(str(shown))}, not ConfigMap"],
                    hint="pass the aws-auth ConfigMap",
                )
            metadata = doc.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(name, str) and name != "aws-auth":
                self.notes.append(
                    f"the ConfigMap is named {name!r}; EKS reads only kube-system/aws-auth"
                )
            data = doc.get("data")
        elif "data" in doc:
            data = doc["data"]
        elif doc and all(isinstance(k, str) and k in DATA_KEYS for k in doc):
            self.prefix = ""
            data = doc
        else:
            raise MappingError(
                [
                    f"{self.source}: is not an aws-auth ConfigMap: expected kind: ConfigMap with"
                    " data.mapRoles, data.mapUsers or data.mapAccounts"
                ],
                hint="pass the output of `kubectl -n kube-system get configmap aws-auth -o yaml`",
            )
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise MappingError([f"{self.source}: data: must be a mapping, got {_kind(data)}"])
        for key in data:
            if not isinstance(key, str) or key in DATA_KEYS:
                continue
            close = {k.lower(): k for k in DATA_KEYS}.get(key.lower()) or next(
                iter(difflib.get_close_matches(key, DATA_KEYS, n=1, cutoff=0.6)), None
            )
            hint = f"; did you mean {close}?" if close else ""
            self.add(
                f"{self.prefix}{_comment(key)}",
                "is not an aws-auth key, so EKS ignores it (data keys are case-sensitive)" + hint,
            )
        return data

    def embedded(self, data: dict[str, Any], section: str) -> str | None:
        """The YAML text of ``data[section]``, or None when absent or empty."""
        where = f"{self.prefix}{section}"
        value = data.get(section)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(
                where,
                f"must be a string holding YAML (write `{section}: |`), got {_kind(value)};"
                " ConfigMap data values are strings and Kubernetes refuses this ConfigMap",
            )
            return None
        return None if value.strip() in _SKIPPABLE else value

    # -- entries ---------------------------------------------------------------------------

    def entries(self, data: dict[str, Any], section: str) -> list[_Entry]:
        text = self.embedded(data, section)
        if text is None:
            return []
        where = f"{self.prefix}{section}"
        try:
            items = yamlsafe.load(text, f"{self.source}: {where}")
        except MappingError as e:
            self.problems.extend(e.problems)
            return []
        if items is None:
            return []
        if not isinstance(items, list):
            self.add(where, f"must hold a YAML list of entries, got {_kind(items)}")
            return []
        out: list[_Entry] = []
        for i, raw in enumerate(items):
            entry = self.entry(section, i, raw)
            if entry is not None:
                out.append(entry)
        return out

    def fold(self, where: str, section: str, raw: dict[Any, Any]) -> dict[str, Any] | None:
        """The entry's keys lowercased, as Go's encoding/json matches them."""
        known = _ENTRY_KEYS[section]
        folded: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        ok = True
        for key, value in raw.items():
            if not isinstance(key, str):
                self.add(where, f"key {_kind(key)} is not a string")
                ok = False
                continue
            lower = key.lower()
            if lower not in known:
                close = difflib.get_close_matches(lower, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)})"
                self.add(
                    f"{where}.{_comment(key)}",
                    "unknown key; EKS ignores it silently, so remove it or fix the spelling" + hint,
                )
                ok = False
            elif lower in folded:
                self.add(
                    f"{where}.{_comment(key)}",
                    f"is given twice (as {spelled[lower]} and {_comment(key)}; keys are"
                    " case-insensitive in aws-auth); keep one",
                )
                ok = False
            else:
                folded[lower] = value
                spelled[lower] = _comment(key)
        return folded if ok else None

    def name(self, path: str, value: Any, what: str) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}")
            return None
        if not value:
            self.add(path, f"is empty; EKS would give Kubernetes an empty {what}")
            return None
        if not value.isprintable():
            self.add(path, "has a character that is not printable")
            return None
        if len(value) > templates.MAX_NAME_LENGTH:
            self.add(path, f"is {len(value)} characters; the limit is {templates.MAX_NAME_LENGTH}")
            return None
        return value

    def entry(self, section: str, index: int, raw: Any) -> _Entry | None:
        where = f"{self.prefix}{section}[{index}]"
        if not isinstance(raw, dict):
            self.add(where, f"must be a mapping, got {_kind(raw)}")
            return None
        fields = self.fold(where, section, raw)
        if fields is None:
            return None
        unsupported: list[str] = []  # "<field>: <why>"
        if fields.get("sso") is not None:
            unsupported.append(
                "sso: SSO permission-set matchers are not supported; map each"
                " AWSReservedSSO_… role ARN with rolearn"
            )
        arn_key, kind = _ARN_KEY[section], _KIND[section]
        principal = self.principal(f"{where}.{arn_key}", fields.get(arn_key), kind)
        comments: list[str] = []
        if fields.get("username") is None:
            self.add(
                f"{where}.username",
                "is missing; EKS would give Kubernetes an empty username, which authbridge"
                " refuses: set one",
            )
            username = None
        else:
            username = self.name(f"{where}.username", fields["username"], "username")
        groups: list[str] | None = []
        raw_groups = fields.get("groups")
        if raw_groups is not None and not isinstance(raw_groups, list):
            self.add(f"{where}.groups", f"must be a list, got {_kind(raw_groups)}")
            groups = None
        elif raw_groups:
            names = [
                self.name(f"{where}.groups[{j}]", g, "group") for j, g in enumerate(raw_groups)
            ]
            groups = [g for g in names if g is not None] if None not in names else None
        if principal is None or username is None or groups is None:
            return None
        for path, text in [("username", username)] + [
            (f"groups[{j}]", g) for j, g in enumerate(groups)
        ]:
            unsupported.extend(f"{path}: {p}" for p in templates.template_problems(text, section))
        reserved = sorted(
            {
                p
                for p in (
                    templates.reserved_prefix(templates.literal_prefix(t))
                    for t in [username, *groups]
                )
                if p is not None
            }
        )
        entry = _Entry(section, index, principal, username, groups, bool(reserved), comments)
        if unsupported:
            if not self.skip:
                self.unsupported = True
                self.problems.extend(f"{self.source}: {where}.{u}" for u in unsupported)
                return None
            entry.left_out = "left out, not supported by authbridge: " + "; ".join(unsupported)
            self.skipped.append(f"{where} ({principal}): " + "; ".join(unsupported))
            return entry
        if reserved:
            comments.append(
                f"allowReservedPrefixes: keeps {', '.join(reserved)}, as aws-auth allows; review"
            )
        if section == "mapRoles" and principal.count("/") > 1:
            comments.append(
                "this rolearn has a path: EKS never matched it (role sessions carry no path);"
                " authbridge matches it"
            )
        if fields.get("userid") is not None:
            comments.append("userid not carried over: EKS's aws-auth matching ignores it")
        return entry

    def principal(self, path: str, value: Any, kind: str) -> str | None:
        if value is None or value == "":
            self.add(path, f"is required: the IAM {kind} ARN (EKS drops entries without one)")
            return None
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {_kind(value)}")
            return None
        try:
            parsed = arn.parse_principal(value, partitions=self.partitions)
        except MalformedArn as e:
            self.add(path, f"is not a valid {kind} ARN: {e.message.removeprefix('arn: ')}")
            return None
        if parsed.kind != kind:
            other = {"role": "mapRoles", "user": "mapUsers"}.get(parsed.kind)
            fix = f"move the entry to {other}" if other else f"write the IAM {kind} ARN"
            self.add(path, f"is {article(parsed.kind)} ARN, not an IAM {kind} ARN; {fix}")
            return None
        return value

    def dedupe(self, entries: list[_Entry], section: str) -> None:
        """Mark all but the entry EKS would use, per principal, as left out."""
        groups: dict[str, list[_Entry]] = {}
        for e in entries:
            if e.left_out is None:
                groups.setdefault(e.key, []).append(e)
        for same in groups.values():
            if len(same) < 2:
                continue
            pathless = [e for e in same if e.arn.lower() == e.key]
            kept = (pathless or same)[-1]
            for e in same:
                if e is kept:
                    continue
                kept_at = f"{self.prefix}{section}[{kept.index}]"
                if e.arn.lower() == kept.arn.lower():
                    why = f"EKS uses {kept_at}, the later entry for the same ARN"
                elif kept.arn.lower() == kept.key:
                    why = (
                        f"{kept_at} names the same role without a path, and EKS matched only"
                        " that one"
                    )
                else:
                    why = (
                        f"{kept_at} names the same role (the later entry is kept; EKS matched"
                        " neither, as role sessions carry no path)"
                    )
                e.left_out = f"left out: {why}"

    def accounts(self, data: dict[str, Any]) -> list[str]:
        text = self.embedded(data, "mapAccounts")
        if text is None:
            return []
        where = f"{self.prefix}mapAccounts"
        try:
            node = yamlsafe.compose(text, f"{self.source}: {where}")
        except MappingError as e:
            self.problems.extend(e.problems)
            return []
        if node is None:
            return []
        if not isinstance(node, SequenceNode):
            self.add(where, "must hold a YAML list of account ids")
            return []
        out: list[str] = []
        for i, item in enumerate(node.value):
            if not isinstance(item, ScalarNode) or not isinstance(item.value, str):
                self.add(f"{where}[{i}]", "must be an account id")
                continue
            value = item.value
            if len(value) != 12 or not value.isascii() or not value.isdigit():
                self.add(f"{where}[{i}]", f"{_comment(value)!r} is not a 12-digit account id")
            elif value in out:
                self.account_notes.append(f"{where}[{i}]: {value} is listed twice; kept once")
            else:
                out.append(value)
        return out

    # -- output ----------------------------------------------------------------------------

    def render(self, roles: list[_Entry], users: list[_Entry], accounts: list[str]) -> str:
        lines = [
            "# authbridge mapping (rbac/mapping.yaml), converted from the EKS aws-auth ConfigMap",
            f"# in {_comment(self.source)} by `authbridge mapping import-aws-auth`.",
            "# Differences from how EKS read it are noted next to the entries concerned.",
            "# Check it with `authbridge mapping check FILE`. mapGroups, bindings and",
            "# serviceAccounts (no aws-auth equivalent) are in authbridge's docs/mapping.md.",
        ]
        for section, entries in (("mapRoles", roles), ("mapUsers", users)):
            shown = [e for e in entries if e.left_out is None]
            lines.append(f"{section}:" + ("" if entries else " []"))
            for e in entries:
                origin = f"{self.prefix}{section}[{e.index}]"
                if e.left_out is not None:
                    lines.append(f"  # {origin} ({_comment(e.arn)}) {_comment(e.left_out)}")
                    lines.append(
                        f"  #   was: username {_comment(_quote(e.username))},"
                        f" groups {_comment(json.dumps(e.groups, ensure_ascii=False))}"
                    )
                    continue
                lines.append(f"  # {origin}")
                lines.extend(f"  # {_comment(c)}" for c in e.comments)
                lines.append(f"  - {_ARN_KEY[section]}: {_quote(e.arn)}")
                lines.append(f"    username: {_quote(e.username)}")
                if e.groups:
                    lines.append("    groups:")
                    lines.extend(f"      - {_quote(g)}" for g in e.groups)
                else:
                    lines.append("    groups: []")
                if e.allow:
                    lines.append("    allowReservedPrefixes: true")
            if entries and not shown:
                lines.append(f"  []  # every {section} entry was left out")
        if accounts:
            lines.append("mapAccounts:")
            lines.extend(f"  - {_quote(a)}" for a in accounts)
        else:
            lines.append("mapAccounts: []")
        return "\n".join(lines) + "\n"


def convert_aws_auth(
    data: str | bytes,
    source: str,
    *,
    skip_unsupported: bool = False,
    partitions: Collection[str] = arn.KNOWN_PARTITIONS,
) -> AwsAuthImport:
    """Convert the aws-auth ConfigMap in ``data``; MappingError lists every problem."""
    doc = yamlsafe.load(yamlsafe.decode(data, source), source)
    conv = _Converter(source, skip_unsupported, partitions)
    fields = conv.data(doc)
    roles = conv.entries(fields, "mapRoles")
    users = conv.entries(fields, "mapUsers")
    accounts = conv.accounts(fields)
    if conv.problems:
        raise MappingError(conv.problems, hint=SKIP_HINT if conv.unsupported else None)
    conv.dedupe(roles, "mapRoles")
    conv.dedupe(users, "mapUsers")
    for e in roles + users:
        where = f"{conv.prefix}{e.section}[{e.index}]"
        if e.left_out is None:
            conv.notes.extend(f"{where}: {c}" for c in e.comments)
        elif not e.left_out.startswith("left out, not supported"):
            conv.notes.append(f"{where} ({e.arn}): {e.left_out}")
    conv.notes.extend(conv.account_notes)
    text = conv.render(roles, users, accounts)
    try:
        mapping = parse_mapping(text, f"{source} (converted)", partitions=partitions)
    except MappingError as e:  # pragma: no cover - every rule is checked above; a bug if not
        raise MappingError(
            [f"the mapping converted from {source} is invalid: {p}" for p in e.problems]
        ) from e
    return AwsAuthImport(text, mapping, tuple(conv.notes), tuple(conv.skipped))


def import_aws_auth(text: str | bytes, source: str, *, skip_unsupported: bool = False) -> str:
    """The mapping YAML for the aws-auth ConfigMap in ``text`` (see :func:`convert_aws_auth`)."""
    return convert_aws_auth(text, source, skip_unsupported=skip_unsupported).text
