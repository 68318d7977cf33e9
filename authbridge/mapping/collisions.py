"""Where a mapping's usernames and groups can meet: warnings for `mapping check` (pure).

Session names are chosen by the caller. Whoever may assume a role picks the
session name (2-64 characters of ``A-Z a-z 0-9 _ + = , . @ -``), so
``{{SessionName}}`` and ``{{SessionNameRaw}}`` are text the caller writes
into a Kubernetes username or group. A valid mapping can therefore still let
one principal be reviewed as another user: ``username: "{{SessionName}}"``
next to ``mapUsers alice → alice`` lets any member of the role call its
session ``alice``. :func:`warnings` finds such mappings; ``mapping check``
prints the warnings (``--strict`` refuses them) and the server logs them when
it loads the file.

The model. Each username or group is read as the set of names it can render:

* literal text is itself; ``{{AccountID}}`` is the account of the entry's
  ARN (an entry only ever matches principals of that account);
* ``{{SessionName}}``: 2-64 session-name characters without ``@`` (rendered
  as ``-``); ``{{SessionNameRaw}}``: the same with ``@``;
* ``{{PrincipalID}}``: in ``mapRoles`` the role's unique id, ``:`` and the
  raw session name; elsewhere the user's unique id. ``{{AccessKeyID}}``: a
  key id. Unique ids and key ids are made by authbridge and differ between
  principals, so they are taken as text no other entry spells (a fixed name
  that happens to equal a real id is not seen).

Warnings, each ``<file>: <entry>.<field>: <what>``:

1. **Collision.** Two entries' usernames can be equal: a template that can
   render another entry's username, two templates that can render one same
   name, or one fixed username given twice: two principals would be one
   Kubernetes user. Against caller-chosen text, a binding's ``user`` counts
   too. For groups, only caller-chosen text counts (sharing a fixed group is
   what groups are for): a group template that can render a group another
   entry gives or a binding binds lets every member of the role join it.
   Each template is reported once, with one example name and how many other
   entries it meets; a pair of templates is reported at the later one.
2. **Not fenced.** Caller-chosen text that is not preceded by fixed text
   ending in a character session names cannot contain (``:``, as in
   Kubernetes' own ``system:`` and the ``--oidc-username-prefix``
   convention). Without that fence the caller can spell names outside the
   entry's own namespace, names that other authenticators or later entries
   use: ``{{SessionName}}`` renders ``alice``, ``admin-{{SessionName}}``
   renders ``admin-ops``. ``admin:{{SessionName}}`` renders only
   ``admin:<session>``.

Not a warning: within one entry, ``{{SessionName}}`` folds ``bob@corp`` and
``bob-corp`` into one ``admin:bob-corp``. The caller chooses the session name
anyway (any member of the role can call a session ``bob-corp``), so the
folding lets nobody reach a name they could not already, and TokenReview's
``extra.sessionName`` keeps the raw name for the audit log. Write
``{{SessionNameRaw}}`` when the two spellings must stay apart.

Two templates are compared by walking both character by character at once
(a product of two small automata), so the answer is exact for the model
above and comes with the shortest example name. Templates with several
session names each would take long to walk (over ``_MAX_PAIRS`` position
pairs): those are taken to meet when their fixed start and end agree, and
the warning says "may render the same names", without an example. Fixed
names are matched against each template's regular expression.
"""

from __future__ import annotations

import bisect
import itertools
import re
import string
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from authbridge.iam import names
from authbridge.mapping import templates
from authbridge.mapping.model import Mapping

__all__ = ["SESSION_CHARS", "warnings"]

# AWS RoleSessionName, as authbridge.iam.names checks it: [\w+=,.@-], ASCII \w.
SESSION_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_+=,.@-")
_FOLDED: Final = SESSION_CHARS - {"@"}
_PREFERRED: Final = string.ascii_lowercase + string.digits + string.ascii_uppercase
_OPAQUE_BASE: Final = 0xF0000  # supplementary private use: never printable, never in a name
# Beyond this many position pairs (two session names in each template) two templates are taken
# to meet when their fixed ends agree, without an example: a warning, never a hang.
_MAX_PAIRS: Final = 20_000


@dataclass(frozen=True)
class _Item:
    """One character of a rendered name: any of ``chars``; ``optional`` ones may be absent."""

    chars: frozenset[str]
    optional: bool = False
    caller: bool = False  # chosen by the caller (part of a session name)


@dataclass(frozen=True)
class _Name:
    rule: str  # "mapRoles[0]", "bindings[2]": names of one rule are never compared
    where: str  # "mapRoles[0].username"
    text: str  # as written
    items: tuple[_Item, ...]
    regex: str  # the same set of names, as a regular expression
    templated: bool  # has a {{Variable}}
    caller: bool  # has text the caller chooses
    key: tuple[str, ...]  # equal keys render equal sets of names
    head: str  # what every rendering starts with
    tail: str  # ... and ends with


def _class(chars: frozenset[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


_CLASSES: Final = {SESSION_CHARS: _class(SESSION_CHARS), _FOLDED: _class(_FOLDED)}


class _Builder:
    def __init__(self) -> None:
        self._opaque = _OPAQUE_BASE

    def _unique(self) -> _Item:
        self._opaque += 1
        return _Item(frozenset({chr(self._opaque)}))

    def name(self, rule: str, where: str, text: str, section: str, arn: str) -> _Name:
        items: list[_Item] = []
        regex: list[str] = []
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        lo, hi = names.SESSION_NAME_MIN, names.SESSION_NAME_MAX

        def literal(piece: str) -> None:
            items.extend(_Item(frozenset(c)) for c in piece)
            regex.append(re.escape(piece))

        def session(chars: frozenset[str]) -> None:
            items.extend([_Item(chars, caller=True)] * lo + [_Item(chars, True, True)] * (hi - lo))
            regex.append(f"{_CLASSES[chars]}{{{lo},{hi}}}")

        templated = False
        key: tuple[str, ...] = (text, section, account)
        for piece, variable in templates.parts(text):
            if not variable:
                literal(piece)
                continue
            templated = True
            if piece == "AccountID":
                literal(account)
            elif piece == "SessionName":
                session(_FOLDED)
            elif piece == "SessionNameRaw":
                session(SESSION_CHARS)
            else:  # PrincipalID, AccessKeyID: unique per principal or key
                items.append(self._unique())
                key = (text, section, account, rule)
                regex.append("(?!)")  # no fixed (printable) name spells a unique id
                if piece == "PrincipalID" and section == "mapRoles":
                    literal(":")
                    session(SESSION_CHARS)
        head, tail = _fixed_ends(items)
        caller = any(i.caller for i in items)
        return _Name(
            rule, where, text, tuple(items), "".join(regex), templated, caller, key, head, tail
        )


def _pick(chars: frozenset[str]) -> str:
    return next((c for c in _PREFERRED if c in chars), min(chars))


def _fixed_ends(items: Sequence[_Item]) -> tuple[str, str]:
    """The text every rendering starts and ends with (up to the first/last variable part)."""

    def run(seq: Iterable[_Item]) -> str:
        out = []
        for item in seq:
            if item.optional or len(item.chars) != 1:
                break
            out.append(next(iter(item.chars)))
        return "".join(out)

    return run(items), run(reversed(items))[::-1]


def _may_meet(a: _Name, b: _Name) -> bool:
    """A cheap test first: fixed starts (and ends) must agree as far as both go."""
    heads = a.head.startswith(b.head) or b.head.startswith(a.head)
    return heads and (a.tail.endswith(b.tail) or b.tail.endswith(a.tail))


def _meet(a: Sequence[_Item], b: Sequence[_Item]) -> str | None:
    """The shortest name both ``a`` and ``b`` can render, or None.

    0-1 breadth-first search over pairs of positions: skipping an optional
    character costs nothing, writing a character both allow costs one. ``""``
    when the templates are too long to walk (see ``_MAX_PAIRS``).
    """
    if len(a) * len(b) > _MAX_PAIRS:
        return ""
    start = (0, 0)
    cost = {start: 0}
    parent: dict[tuple[int, int], tuple[tuple[int, int], str]] = {}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        i, j = state
        if i == len(a) and j == len(b):
            out: list[str] = []
            while state != start:
                state, char = parent[state]
                out.append(char)
            return "".join(reversed(out))
        moves: list[tuple[tuple[int, int], str]] = []
        if i < len(a) and a[i].optional:
            moves.append(((i + 1, j), ""))
        if j < len(b) and b[j].optional:
            moves.append(((i, j + 1), ""))
        if i < len(a) and j < len(b):
            common = a[i].chars & b[j].chars
            if common:
                moves.append(((i + 1, j + 1), _pick(common)))
        for nxt, char in moves:
            step = 1 if char else 0
            if cost[state] + step < cost.get(nxt, len(a) + len(b) + 1):
                cost[nxt] = cost[state] + step
                parent[nxt] = (state, char)
                if step:
                    queue.append(nxt)
                else:
                    queue.appendleft(nxt)
    return None


def _fence(name: _Name) -> str | None:
    """Why ``name``'s caller-chosen text is not fenced by a fixed prefix, or None."""
    first = next(k for k, item in enumerate(name.items) if item.caller)
    shown = ascii(name.text)
    if first == 0:
        return (
            f"{shown} starts with the caller's session name, which the caller chooses: it can"
            " render names that other users, authenticators or later entries have (e.g."
            " 'alice'); put fixed text ending in ':' in front, e.g. 'sso:"
            + name.text.lstrip()
            + "'"
        )
    before = name.items[first - 1]
    if before.chars.isdisjoint(SESSION_CHARS):
        return None
    prefix = "".join(_pick(i.chars) for i in name.items[:first])
    head = prefix.rstrip("".join(SESSION_CHARS - set(string.ascii_letters + string.digits)))
    return (
        f"{shown}: the fixed text before the session name ends in {ascii(prefix[-1])}, which"
        f" session names may contain, so the caller can spell any name that starts with"
        f" {ascii(prefix)} (e.g. {ascii(prefix + 'ops')}); end it with ':' instead, e.g."
        f" {ascii((head or 'sso') + ':' + '{{SessionName}}')}"
    )


def _collision(name: _Name, others: list[tuple[_Name, str]], what: str) -> str:
    other, example = others[0]
    more = len(others) - 1
    also = f" (and {more} more entr{'y' if more == 1 else 'ies'})" if more else ""
    shown = "" if other.text == example else f" ({ascii(other.text)})"
    if not example:  # too long to walk: the fixed ends agree
        return (
            f"{ascii(name.text)} may render the same names as {other.where}{shown}{also}:"
            " their fixed start and end agree; give them distinct fixed prefixes ending in ':'"
        )
    if name.caller:
        why = (
            "the caller chooses the session name, so any member of the role can"
            + (" be reviewed as that user" if what == "username" else " join that group")
            + "; give the template a fixed prefix ending in ':' that no other name uses"
        )
    else:
        why = f"two principals would be one Kubernetes {'user' if what == 'username' else what}"
    return (
        f"{ascii(name.text)} can render {ascii(example)}, as {other.where}{shown} does{also}: {why}"
    )


def _compare(names_: list[_Name], bound: list[_Name], what: str) -> list[tuple[str, str]]:
    """(where, message) collisions among ``names_`` (entries) and ``bound`` (binding subjects)."""
    out: list[tuple[str, str]] = []
    fixed: dict[str, _Name] = {}
    for name in names_:
        if name.templated:
            continue
        first = fixed.setdefault(name.text, name)
        if first is not name and first.rule != name.rule and what == "username":
            out.append(
                (
                    name.where,
                    f"{ascii(name.text)} is also the username of {first.rule}: two principals"
                    " would be one Kubernetes user; give each its own username",
                )
            )
    met_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], str | None] = {}

    def reported(n: _Name) -> bool:  # a name whose own collisions are reported
        return n.templated and (what == "username" or n.caller)

    # Fixed names, one per line, so that each template scans them all in one regex call.
    plain = [n for n in names_ if not n.templated]
    lines = {False: plain, True: plain + bound}  # binding subjects count against the caller
    texts = {c: "\n".join(n.text for n in ns) for c, ns in lines.items()}
    starts = {
        c: list(itertools.accumulate((len(n.text) + 1 for n in ns), initial=0))
        for c, ns in lines.items()
    }
    templated = [n for n in names_ if n.templated]
    own = [reported(n) for n in templated]
    for index, name in enumerate(templated):
        if not own[index]:
            continue
        met: list[tuple[_Name, str]] = []
        scan = re.compile(f"^(?:{name.regex})$", re.MULTILINE)
        for found in scan.finditer(texts[name.caller]):
            other = lines[name.caller][bisect.bisect_right(starts[name.caller], found.start()) - 1]
            if other.rule != name.rule:
                met.append((other, other.text))
        for k, other in enumerate(templated):
            if other.rule == name.rule or (own[k] and k > index):
                continue  # a pair of templates is reported at the later one
            if not _may_meet(name, other):
                continue
            pair = (name.key, other.key)
            if pair not in met_cache:  # many entries share one template ("admin:{{SessionName}}")
                met_cache[pair] = _meet(name.items, other.items)
            example = met_cache[pair]
            if example is not None:
                met.append((other, example))
        if met:
            out.append((name.where, _collision(name, met, what)))
    return out


def warnings(mapping: Mapping) -> tuple[str, ...]:
    """Every warning for ``mapping`` (see the module docstring), each naming file and entry."""
    build = _Builder()
    users: list[_Name] = []
    groups: list[_Name] = []
    sections: list[tuple[str, Sequence[tuple[str, str | None, tuple[str, ...]]]]] = [
        ("mapRoles", [(r.rolearn, r.username, r.groups) for r in mapping.map_roles]),
        ("mapUsers", [(r.userarn, r.username, r.groups) for r in mapping.map_users]),
        ("mapGroups", [(r.grouparn, r.username, r.groups) for r in mapping.map_groups]),
    ]
    for section, rules in sections:
        for i, (arn, username, group_texts) in enumerate(rules):
            rule = f"{section}[{i}]"
            if username is not None:
                users.append(build.name(rule, f"{rule}.username", username, section, arn))
            for j, group in enumerate(group_texts):
                groups.append(build.name(rule, f"{rule}.groups[{j}]", group, section, arn))
    bound_users: list[_Name] = []
    bound_groups: list[_Name] = []
    for k, binding in enumerate(mapping.bindings):
        rule = f"bindings[{k}]"
        if binding.user is not None:
            bound_users.append(build.name(rule, f"{rule}.user", binding.user, "bindings", ""))
        if binding.group is not None:
            bound_groups.append(build.name(rule, f"{rule}.group", binding.group, "bindings", ""))
    found: list[tuple[str, str]] = []
    for name in users + groups:
        if name.caller:
            why = _fence(name)
            if why is not None:
                found.append((name.where, why))
    found += _compare(users, bound_users, "username")
    found += _compare(groups, bound_groups, "group")
    order = {n.where: k for k, n in enumerate(users + groups)}
    found.sort(key=lambda w: order.get(w[0], len(order)))  # stable: file order per field
    return tuple(f"{mapping.source}: {where}: {message}" for where, message in found)
