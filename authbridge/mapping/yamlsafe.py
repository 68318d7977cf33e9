"""Reading YAML that strangers may have written: bounded in size, depth and expansion.

Everything the mapping reads (the mapping file, an EKS ``aws-auth`` ConfigMap
and the YAML strings embedded in it) goes through :func:`load` here. It is
``yaml.safe_load`` (no Python objects, ever) with these limits on top:

* **Size**: at most :data:`MAX_BYTES` (1 MiB). A real mapping is a few KB.
* **Encoding**: UTF-8 only (a leading BOM is allowed); anything else is refused
  with the offset of the first bad byte, instead of PyYAML guessing UTF-16.
* **No anchors or aliases** (``&name`` / ``*name``), and so no merge keys
  (``<<: *name``). PyYAML shares aliased objects, so an alias bomb ("billion
  laughs") costs little to *construct*, but every walk over the result (our
  validation, ``json.dumps``, a log line) expands it exponentially. Nothing
  in a mapping needs them; refusing them is simpler and safer than counting
  expansions. ``<<`` is refused even with an inline mapping.
* **Depth**: at most :data:`MAX_DEPTH` nested collections. PyYAML's composer
  recurses, so ``[[[[…]]]]`` 100 000 deep would otherwise end in RecursionError.
* **Duplicate keys** are refused, naming both lines. PyYAML silently keeps the
  last one, so a second ``mapRoles:`` further down would quietly replace the first.

Every failure is a :class:`~authbridge.mapping.model.MappingError` whose one
problem reads ``<source>: line L, column C: <what>``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from authbridge.mapping.model import MappingError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "compose", "decode", "digest", "load"]

MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32

_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_BOM: Final = b"\xef\xbb\xbf"


class _Refused(yaml.MarkedYAMLError):
    """A document this loader will not read (alias, merge key, depth, duplicate key)."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases or merge keys, depth-capped, refusing duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # types-PyYAML leaves peek_event unannotated; it returns the next parser event.
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="YAML anchors and aliases (&name, *name) are not allowed here;"
                " write each value out",
                problem_mark=event.start_mark,
            )
        nested = isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    problem=f"nested more than {MAX_DEPTH} levels deep",
                    problem_mark=event.start_mark,
                )
        try:
            return super().compose_node(parent, index)
        finally:
            if nested:
                self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _value in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _Refused(
                    problem="merge keys (<<) are not allowed here; write each key out",
                    problem_mark=key_node.start_mark,
                )
            if not isinstance(key_node, ScalarNode):
                continue  # SafeConstructor refuses unhashable keys itself
            key = self.construct_object(key_node, deep=True)
            first = seen.get(key)
            if first is not None:
                raise _Refused(
                    problem=f"duplicate key {_show(key)} (first given on line"
                    f" {first.start_mark.line + 1}); YAML would silently keep only the last",
                    problem_mark=key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:64]) if len(text) <= 64 else ascii(text[:64]) + "..."


def digest(data: str | bytes) -> str:
    """sha256 hex of the bytes (text is taken as its UTF-8 encoding)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def decode(data: str | bytes, source: str) -> str:
    """The text of ``data``: at most MAX_BYTES, strict UTF-8 (BOM allowed)."""
    if isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise MappingError(
                [f"{source}: is not valid text (character {e.start} is a lone surrogate)"]
            ) from e
    else:
        raw = bytes(data)
    if len(raw) > MAX_BYTES:
        raise MappingError(
            [
                f"{source}: is {len(raw)} bytes; the limit is {MAX_BYTES} (1 MiB)."
                " A mapping that large is almost certainly not what you meant"
            ]
        )
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return raw.removeprefix(_BOM).decode("utf-8")
    except UnicodeDecodeError as e:
        offset = e.start + (len(_BOM) if raw.startswith(_BOM) else 0)
        raise MappingError(
            [
                f"{source}: is not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset});"
                " save it as UTF-8"
            ]
        ) from e


def _where(source: str, e: yaml.YAMLError, text: str) -> str:
    if isinstance(e, yaml.reader.ReaderError):
        pos = e.position
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = e.character if isinstance(e.character, int) else ord(e.character)
        return (
            f"{source}: line {line}, column {column}: character {char:#06x} is not allowed"
            " in YAML; remove it"
        )
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        what = "; ".join(p for p in (e.context, e.problem) if p) or "not valid YAML"
        if mark is not None:
            return f"{source}: line {mark.line + 1}, column {mark.column + 1}: {what}"
        return f"{source}: {what}"
    return f"{source}: not valid YAML ({type(e).__name__})"


def load(text: str, source: str) -> Any:
    """One YAML document from ``text`` (already decoded) as plain Python values."""
    try:
        loader = _Loader(text)  # the reader checks every character here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise MappingError([_where(source, e, text)]) from e


def compose(text: str, source: str) -> Node | None:
    """The node tree of one YAML document: scalars keep their text exactly as written."""
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise MappingError([_where(source, e, text)]) from e
