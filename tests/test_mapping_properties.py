"""Property tests: arbitrary YAML into the mapping parsers; only MappingError comes out.

Covers, with Hypothesis (bounded examples, the suite's profile):
* ``parse_mapping`` on YAML documents shaped like a mapping file (known and
  unknown keys, block and flow style, nesting) whose scalars are drawn from
  the ones PyYAML resolves to other types (invalid dates, leap seconds,
  4 000-digit hex numbers, 4 400-digit integers, ``0b_``, floats), tags,
  anchors, ``=``, ``<<`` and arbitrary text: the result is a Mapping whose
  values are strings, booleans and tuples only, or a MappingError whose
  every problem names the source;
* the same for free-form text over YAML's syntax characters, and for bytes;
* ``convert_aws_auth`` on ConfigMaps whose embedded YAML strings are drawn
  the same way.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from authbridge.mapping import Mapping, MappingError, convert_aws_auth, parse_mapping
from authbridge.mapping.parse import (
    BINDING_KEYS,
    GROUP_KEYS,
    ROLE_KEYS,
    SERVICE_ACCOUNT_KEYS,
    TOP_KEYS,
    USER_KEYS,
)

SRC = "prop.yaml"
ROLE = "arn:aws:iam::111122223333:role/Admin"
USER = "arn:aws:iam::111122223333:user/alice"

# Plain scalars that PyYAML resolves to something other than a string, the ones
# its constructors raise on first.
HOSTILE = [
    "2001-02-30",
    "9999-12-31 23:59:60",
    "2001-12-14t21:59:43.10-05:00",
    "2024-01-02",
    "0x" + "f" * 4000,
    "1" * 4400,
    "-" + "9" * 4301,
    "0b_",
    "0x_",
    "0_",
    "190:20:30",
    "1_000",
    "012345670123",
    "111122223333",
    "1.5",
    ".inf",
    "-.Inf",
    ".NaN",
    "1e1000",
    "._",
    "=",
    "<<",
    "~",
    "null",
    "yes",
    "Off",
    "!!binary aGVsbG8=",
    "!!timestamp 2001-02-30",
    "!!int 0xzz",
    "!!bool maybe",
    "!!float x",
    "!!set {a}",
    "!!python/object/apply:os.system ['true']",
    "!custom x",
    "! x",
    "!!str 1",
    "&a x",
    "*a",
    ROLE,
    USER,
    "admin:{{SessionName}}",
    "{{SessionNameRaw}}",
    "'{{AccessKeyID}}'",
    "system:masters",
]
NETS = ("cannot read this value (", "not valid YAML (")
KEYS = sorted(
    set(TOP_KEYS + ROLE_KEYS + USER_KEYS + GROUP_KEYS + BINDING_KEYS + SERVICE_ACCOUNT_KEYS)
)

scalars = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=20),
    st.text(max_size=20).map(json.dumps),  # a double-quoted scalar
    st.integers().map(str),
)
keys = st.one_of(st.sampled_from(KEYS), scalars)


def _tree(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(st.tuples(keys, children), max_size=4),
    )


trees = st.recursive(scalars, _tree, max_leaves=20)


def flow(node: Any) -> str:
    if isinstance(node, str):
        return node
    if node and isinstance(node[0], tuple):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in node) + "}"
    return "[" + ", ".join(flow(v) for v in node) + "]"


def block(node: Any, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(node, str) or not node:
        return flow(node)
    lines = []
    for item in node:
        if isinstance(item, tuple):
            key, value = item
            head = f"{pad}{flow(key)}:"
        else:
            value = item
            head = f"{pad}-"
        if isinstance(value, list) and value:
            lines.append(head + "\n" + block(value, indent + 2))
        else:
            lines.append(f"{head} {flow(value)}")
    return "\n".join(lines)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A mapping-file-like YAML document: known sections holding arbitrary trees."""
    sections = draw(
        st.lists(st.tuples(st.sampled_from(TOP_KEYS) | keys, trees), min_size=1, max_size=4)
    )
    style = draw(st.sampled_from(["block", "flow"]))
    if style == "flow":
        return flow(sections) + "\n"
    return block(sections) + "\n"


def check_outcome(parse: Any, text: str | bytes) -> Any:
    """Run ``parse``; anything but a result or a MappingError fails the test."""
    try:
        return parse(text)
    except MappingError as e:
        assert e.problems, "a MappingError with no problem"
        assert all(p.startswith(SRC) for p in e.problems), e.problems
        # yamlsafe's net for unforeseen loader exceptions is never what answers.
        assert not any(NET in p for p in e.problems for NET in NETS), e.problems
        return None


def only_format_types(value: Any) -> None:
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            only_format_types(getattr(value, f.name))
    elif isinstance(value, tuple):
        for item in value:
            only_format_types(item)
    else:
        assert value is None or isinstance(value, str | bool), repr(value)


def parse(text: str | bytes) -> Mapping:
    return parse_mapping(text, SRC)


@given(documents())
def test_mapping_shaped_documents_give_a_mapping_or_a_mapping_error(text: str) -> None:
    result = check_outcome(parse, text)
    if result is not None:
        only_format_types(result)
        assert all(w.startswith(f"{SRC}: ") for w in result.warnings)


@given(
    st.text(
        alphabet=st.sampled_from(list("-:[]{}!&*#|>'\"%@`,?.~=<0123456789abxe \t\n"))
        | st.characters(),
        max_size=200,
    )
)
def test_free_form_text_gives_a_mapping_or_a_mapping_error(text: str) -> None:
    result = check_outcome(parse, text)
    if result is not None:
        only_format_types(result)
        assert all(w.startswith(f"{SRC}: ") for w in result.warnings)


@settings(max_examples=100)
@given(st.binary(max_size=200))
def test_bytes_give_a_mapping_or_a_mapping_error(data: bytes) -> None:
    check_outcome(parse, data)


@st.composite
def config_maps(draw: st.DrawFn) -> str:
    data = {
        key: draw(documents() | scalars)
        for key in draw(st.lists(st.sampled_from(["mapRoles", "mapUsers", "mapAccounts"])))
    }
    return json.dumps({"kind": "ConfigMap", "data": data})


@settings(max_examples=100)
@given(config_maps() | documents())
def test_aws_auth_configmaps_give_an_import_or_a_mapping_error(text: str) -> None:
    result = check_outcome(lambda t: convert_aws_auth(t, SRC, skip_unsupported=True), text)
    if result is not None:
        only_format_types(result.mapping)
