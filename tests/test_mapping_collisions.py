"""Tests for authbridge.mapping.collisions: names two entries can share, unfenced session names.

Covers:
* the issue's two cases: ``{{SessionName}}`` next to ``mapUsers alice → alice``
  (a collision and no fence); two roles sharing ``admin:`` templates;
* fences: ``{{SessionName}}`` and ``admin-{{SessionName}}`` warn,
  ``admin:{{SessionName}}`` and ``{{PrincipalID}}`` (``AROA…:<session>``) do not;
* collisions: template vs fixed username, template vs template (once, at the
  later entry), fixed username given twice, ``{{AccountID}}`` vs the account
  number, a caller-chosen group that can render a bound or given group, a
  caller-chosen username that can render a binding's user;
* no false alarms: unique ids and key ids, fixed groups shared by design,
  templates with different fixed prefixes, the folding of ``@`` within one
  entry (a documented decision), the example mapping file;
* warnings are data on the Mapping (not part of equality) and the holder logs
  them once per new mapping;
* properties (Hypothesis): a session name the real renderer turns into
  another entry's fixed username is always reported; every example name in a
  collision warning is one both templates really render.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.mapping import MappingHolder, load_mapping, parse_mapping, resolve
from authbridge.mapping import collisions as c
from authbridge.mapping.model import Identity

SRC = "m.yaml"
ACCOUNT = "111122223333"
REPO = Path(__file__).resolve().parent.parent


def role(name: str, username: str, groups: str = "[]") -> str:
    return (
        f"  - rolearn: arn:aws:iam::{ACCOUNT}:role/{name}\n"
        f"    username: {username!r}\n    groups: {groups}\n"
    )


def user(name: str, username: str, groups: str = "[]") -> str:
    return (
        f"  - userarn: arn:aws:iam::{ACCOUNT}:user/{name}\n"
        f"    username: {username!r}\n    groups: {groups}\n"
    )


def warnings(roles: list[str], users: Sequence[str] = (), extra: str = "") -> list[str]:
    text = "mapRoles:\n" + "".join(roles) + "mapUsers:\n" + "".join(users) + extra
    return [w.removeprefix(f"{SRC}: ") for w in parse_mapping(text or "{}", SRC).warnings]


def session(arn_role: str, name: str) -> Identity:
    return Identity(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/{arn_role}/{name}",
        canonical_arn=f"arn:aws:iam::{ACCOUNT}:role/{arn_role}",
        account_id=ACCOUNT,
        principal_id=f"AROAEXAMPLE:{name}",
        session_name=name,
    )


# -- the cases ------------------------------------------------------------------------


def test_a_session_name_template_can_be_reviewed_as_a_mapped_user() -> None:
    found = warnings([role("Dev", "{{SessionName}}")], [user("alice", "alice")])
    assert found == [
        "mapRoles[0].username: '{{SessionName}}' starts with the caller's session name, which"
        " the caller chooses: it can render names that other users, authenticators or later"
        " entries have (e.g. 'alice'); put fixed text ending in ':' in front, e.g."
        " 'sso:{{SessionName}}'",
        "mapRoles[0].username: '{{SessionName}}' can render 'alice', as mapUsers[0].username"
        " does: the caller chooses the session name, so any member of the role can be reviewed"
        " as that user; give the template a fixed prefix ending in ':' that no other name uses",
    ]
    # What the warning is about, with the real resolver: a member picks the session "alice".
    text = "mapRoles:\n" + role("Dev", "{{SessionName}}") + "mapUsers:\n" + user("alice", "alice")
    mapped = resolve(parse_mapping(text, SRC), session("Dev", "alice"))
    assert mapped.user is not None and mapped.user.username == "alice"


def test_two_roles_with_one_fixed_prefix_collide_reported_once_at_the_later() -> None:
    found = warnings([role("Dev", "admin:{{SessionName}}"), role("Ops", "admin:{{SessionName}}")])
    assert found == [
        "mapRoles[1].username: 'admin:{{SessionName}}' can render 'admin:aa', as"
        " mapRoles[0].username ('admin:{{SessionName}}') does: the caller chooses the session"
        " name, so any member of the role can be reviewed as that user; give the template a"
        " fixed prefix ending in ':' that no other name uses",
    ]


def test_raw_and_folded_session_names_of_two_roles_collide() -> None:
    found = warnings([role("Dev", "a:{{SessionName}}"), role("Ops", "a:{{SessionNameRaw}}-x")])
    assert len(found) == 1 and found[0].startswith(
        "mapRoles[1].username: 'a:{{SessionNameRaw}}-x' can render 'a:aa-x', as"
        " mapRoles[0].username"
    )


# -- fences -----------------------------------------------------------------------------------


def test_a_prefix_ending_in_a_session_name_character_is_not_a_fence() -> None:
    assert warnings([role("Dev", "admin-{{SessionName}}")]) == [
        "mapRoles[0].username: 'admin-{{SessionName}}': the fixed text before the session name"
        " ends in '-', which session names may contain, so the caller can spell any name that"
        " starts with 'admin-' (e.g. 'admin-ops'); end it with ':' instead, e.g."
        " 'admin:{{SessionName}}'",
    ]
    assert warnings([role("Dev", "{{SessionNameRaw}}-admin")])[0].startswith(
        "mapRoles[0].username: '{{SessionNameRaw}}-admin' starts with the caller's session name"
    )
    assert warnings([role("Dev", "x", "['{{SessionName}}']")])[0].startswith(
        "mapRoles[0].groups[0]: '{{SessionName}}' starts with the caller's session name"
    )


def test_fenced_templates_do_not_warn() -> None:
    assert warnings([role("Dev", "admin:{{SessionName}}")]) == []
    assert warnings([role("Dev", "{{PrincipalID}}")]) == []  # AROA…:<session>
    assert warnings([role("Dev", "{{AccountID}}/{{SessionNameRaw}}")]) == []
    assert warnings([role("Dev", "dev:x", "['team:{{SessionName}}']")]) == []


# -- collisions -------------------------------------------------------------------------------


def test_a_fixed_username_given_twice() -> None:
    assert warnings([], [user("alice", "ops"), user("bob", "ops")]) == [
        "mapUsers[1].username: 'ops' is also the username of mapUsers[0]: two principals would"
        " be one Kubernetes user; give each its own username",
    ]


def test_account_id_renders_the_rules_account() -> None:
    assert warnings([], [user("a", "{{AccountID}}"), user("b", ACCOUNT)]) == [
        f"mapUsers[0].username: '{{{{AccountID}}}}' can render '{ACCOUNT}', as"
        " mapUsers[1].username does: two principals would be one Kubernetes user",
    ]


def test_a_caller_chosen_group_that_can_join_a_bound_group() -> None:
    bindings = "bindings:\n  - group: dev:admins\n    clusterRole: cluster-admin\n"
    found = warnings([role("Dev", "dev:x", "['dev:{{SessionName}}']")], [], bindings)
    assert found == [
        "mapRoles[0].groups[0]: 'dev:{{SessionName}}' can render 'dev:admins', as"
        " bindings[0].group does: the caller chooses the session name, so any member of the"
        " role can join that group; give the template a fixed prefix ending in ':' that no"
        " other name uses",
    ]
    given_group = warnings(
        [role("Dev", "dev:x", "['dev:{{SessionName}}']")], [user("a", "a", "['dev:oncall']")]
    )
    assert given_group[0].startswith(
        "mapRoles[0].groups[0]: 'dev:{{SessionName}}' can render 'dev:oncall', as"
        " mapUsers[0].groups[0] does"
    )


def test_a_caller_chosen_username_that_can_render_a_bound_user() -> None:
    bindings = "bindings:\n  - user: ops:root\n    clusterRole: cluster-admin\n"
    found = warnings([role("Dev", "ops:{{SessionName}}")], [], bindings)
    assert len(found) == 1 and found[0].startswith(
        "mapRoles[0].username: 'ops:{{SessionName}}' can render 'ops:root', as bindings[0].user"
    )


def test_one_warning_per_template_counting_the_others() -> None:
    found = warnings(
        [role("Dev", "a:{{SessionName}}")],
        [user("x", "a:xx"), user("y", "a:yy"), user("z", "b:zz")],
    )
    assert len(found) == 1
    assert "as mapUsers[0].username does (and 1 more entry)" in found[0]


# -- no false alarms --------------------------------------------------------------------------


def test_unique_ids_shared_groups_and_distinct_prefixes_are_quiet() -> None:
    roles = [
        role("A", "{{PrincipalID}}", "['devs']"),
        role("B", "{{PrincipalID}}", "['devs']"),
        role("C", "c:{{SessionName}}"),
        role("D", "d:{{SessionName}}"),
    ]
    users = [
        user("k", "k:{{AccessKeyID}}", "['devs']"),
        user("l", "k:{{AccessKeyID}}"),
        user("p", "p:{{PrincipalID}}"),
    ]
    assert warnings(roles, users) == []


def test_folding_at_within_one_entry_is_not_a_warning() -> None:
    """Documented decision: the caller picks the session name, so the fold reaches nothing new."""
    text = "mapRoles:\n" + role("Admin", "admin:{{SessionName}}")
    mapping = parse_mapping(text, SRC)
    assert mapping.warnings == ()
    one, other = (resolve(mapping, session("Admin", s)).user for s in ("bob@corp", "bob-corp"))
    assert one is not None and other is not None
    assert one.username == other.username == "admin:bob-corp"
    assert one.extra["sessionName"] == ["bob@corp"]  # the raw name stays for the audit log


def test_the_example_mapping_has_no_warnings() -> None:
    assert load_mapping(REPO / "rbac" / "mapping.yaml").warnings == ()


# -- data and logging -------------------------------------------------------------------------


def test_warnings_are_data_outside_equality() -> None:
    noisy = "mapRoles:\n" + role("Dev", "{{SessionName}}")
    mapping = parse_mapping(noisy, SRC)
    assert len(mapping.warnings) == 1 and mapping.warnings[0].startswith(f"{SRC}: mapRoles[0]")
    assert mapping == parse_mapping(noisy, SRC)


def test_the_holder_logs_warnings_once_per_new_mapping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("mapRoles:\n" + role("Dev", "{{SessionName}}"))
    caplog.set_level(logging.INFO, logger="test.collisions")
    now = [0.0]
    holder = MappingHolder(
        path, check_interval=1.0, clock=lambda: now[0], log=logging.getLogger("test.collisions")
    )
    for _ in range(3):
        now[0] += 2
        holder.current()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert logged == [f"mapping warning: {w}" for w in holder.current().warnings]
    assert len(logged) == 1 and "starts with the caller's session name" in logged[0]


# -- properties -------------------------------------------------------------------------------

PIECES = ["a", "b", ":", "-", "@", ".", "{{SessionName}}", "{{SessionNameRaw}}", "{{AccountID}}"]
# At most three pieces: two templates with several session names each take a while to walk.
templates_ = st.lists(st.sampled_from(PIECES), min_size=1, max_size=3).map("".join)
session_names = st.from_regex(re.compile(r"[ab@.:-]{2,6}"), fullmatch=True).filter(
    lambda s: ":" not in s
)


@settings(max_examples=100)
@given(templates_, session_names)
def test_a_rendered_collision_is_always_reported(template: str, name: str) -> None:
    """Soundness against the real renderer: if a session renders another entry's username,
    a warning names that entry."""
    if "{{" not in template:
        return
    rendered = resolve(
        parse_mapping("mapRoles:\n" + role("Dev", template, "[]"), SRC), session("Dev", name)
    ).user
    if rendered is None or rendered.username.lower().startswith(("system:", "aws:", "iam:")):
        return
    text = "mapRoles:\n" + role("Dev", template) + "mapUsers:\n" + user("u", rendered.username)
    assert any("mapUsers[0].username" in w for w in parse_mapping(text, SRC).warnings), (
        rendered.username
    )


@settings(max_examples=60)
@given(templates_, templates_)
def test_every_example_name_is_rendered_by_both_templates(one: str, two: str) -> None:
    build = c._Builder()
    a = build.name("r0", "r0.username", one, "mapRoles", f"arn:aws:iam::{ACCOUNT}:role/A")
    b = build.name("r1", "r1.username", two, "mapRoles", f"arn:aws:iam::{ACCOUNT}:role/B")
    example = c._meet(a.items, b.items)
    both = [re.compile(a.regex), re.compile(b.regex)]
    if example:  # "" when too long to walk (never with three pieces)
        assert all(r.fullmatch(example) for r in both), (one, two, example)
