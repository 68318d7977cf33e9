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
* **No tags** (``!!binary``, ``!!timestamp``, ``!!set``, ``!!python/…``,
  ``!custom``): PyYAML's constructors for them raise ``ValueError`` or
  ``KeyError`` on bad text (``!!int 0xzz``, ``!!bool maybe``) and hand out
  ``bytes``/``set``/``datetime``. Only ``!!str`` (a way to quote) and the
  non-specific ``!`` are let through.
* **Scalars** are resolved as YAML 1.1 does (so ``on`` is a boolean and
  ``2024-01-02`` is not a string, as every other YAML tool reads them), but
  only the types the mapping format uses are *built*: strings, booleans,
  null, and integers written in at most :data:`MAX_INT_CHARS` characters.
  Every other plain scalar (a date, a timestamp, a number with a point, an
  integer longer than that or not convertible, ``0b_``) stays as written, as
  a :class:`Foreign` value that the checks refuse with its text and line
  ("got a date (2001-02-30, line 3)"). PyYAML would build them and raise
  ``ValueError`` on ``2001-02-30``, ``23:59:60`` or a 5 000-digit integer
  (Python's int/str digit limit), outside ``yaml.YAMLError``.
* ``=`` (YAML 1.1's "value" key) and ``!``/``&``/``*`` alone are strings:
  PyYAML resolves them to tags it has no constructor for.

Every failure is a :class:`~authbridge.mapping.model.MappingError` whose one
problem reads ``<source>: line L, column C: <what>``. Whatever else the
loader raises on input nobody foresaw (``ValueError``, ``RecursionError``, …)
is turned into one too, naming the line of the value when it is known: a
hostile file is a refused file, never a crash of the server that reads it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from authbridge.mapping.model import MappingError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_CHARS",
    "Foreign",
    "compose",
    "decode",
    "digest",
    "load",
]

MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 32
# An account id has 12 digits; 64 characters leave room for signs, "0x" and "_" while
# keeping every integer far below Python's 4 300-digit int/str conversion limit.
MAX_INT_CHARS: Final = 64

_YAML: Final = "tag:yaml.org,2002:"
_MERGE_TAG: Final = _YAML + "merge"
_STR_TAG: Final = _YAML + "str"
_BOM: Final = b"\xef\xbb\xbf"
# Resolvers whose tags SafeConstructor cannot build ("=", and "!", "&", "*" alone).
_UNBUILDABLE: Final = frozenset({_YAML + "value", _YAML + "yaml"})
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}", re.ASCII)


@dataclass(frozen=True)
class Foreign:
    """A plain scalar of a YAML type the mapping format does not use, kept as written.

    ``kind`` says what YAML reads it as ("a date", "a number", "an integer"),
    ``text`` is the scalar as written and ``line`` (1-based) where. Equal when
    kind and text are (so a duplicate key is still one).
    """

    kind: str
    text: str
    line: int = field(default=0, compare=False)

    def describe(self, limit: int = 64) -> str:
        """``a date (2001-02-30, line 3)``: for messages, shortened and escaped."""
        shown = ascii(self.text[:limit])[1:-1] + ("..." if len(self.text) > limit else "")
        return f"{self.kind} ({shown}, line {self.line})"


class _Refused(yaml.MarkedYAMLError):
    """A document this loader will not read (alias, merge key, tag, depth, duplicate key)."""


def _tag_shown(tag: str) -> str:
    short = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
    return ascii(short[:64])[1:-1] + ("..." if len(short) > 64 else "")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases, merge keys or tags, depth-capped, refusing
    duplicate keys, building only the scalar types the mapping format uses."""

    # The class's own copy: SafeLoader's resolvers minus those it cannot build.
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _UNBUILDABLE]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

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
        tag = getattr(event, "tag", None)
        if (
            tag is not None
            and tag != "!"
            and not (tag == _STR_TAG and isinstance(event, yaml.ScalarEvent))
        ):
            raise _Refused(
                problem=f"YAML tags ({_tag_shown(tag)}) are not allowed here; write the value"
                " without one (quote it to make it a string)",
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

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
            # Every constructor left in reach is total; this is the net under them.
            raise _Refused(
                problem=f"cannot read this value ({type(e).__name__})",
                problem_mark=node.start_mark,
            ) from e


def _foreign(kind: str) -> Any:
    def construct(loader: _Loader, node: ScalarNode) -> Foreign:
        return Foreign(kind, node.value, node.start_mark.line + 1)

    return construct


def _timestamp(loader: _Loader, node: ScalarNode) -> Foreign:
    kind = "a date" if _DATE.fullmatch(node.value) else "a timestamp"
    return Foreign(kind, node.value, node.start_mark.line + 1)


def _int(loader: _Loader, node: ScalarNode) -> int | Foreign:
    if len(node.value) <= MAX_INT_CHARS:
        try:
            return int(loader.construct_yaml_int(node))
        except ValueError:  # "0b_", "0x_": the resolver's pattern allows them
            pass
    return Foreign("an integer", node.value, node.start_mark.line + 1)


_Loader.add_constructor(_YAML + "int", _int)
_Loader.add_constructor(_YAML + "float", _foreign("a number"))
_Loader.add_constructor(_YAML + "timestamp", _timestamp)


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


# What PyYAML may raise besides yaml.YAMLError on input nobody foresaw (never seen since
# the constructors above; caught so that a hostile file stays a refused file).
_UNFORESEEN = (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError)


def load(text: str, source: str) -> Any:
    """One YAML document from ``text`` (already decoded) as plain Python values.

    The values are ``dict``, ``list``, ``str``, ``bool``, ``int`` (short),
    ``None`` and :class:`Foreign`; nothing else.
    """
    try:
        loader = _Loader(text)  # the reader checks every character here
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise MappingError([_where(source, e, text)]) from e
    except _UNFORESEEN as e:
        raise MappingError([f"{source}: not valid YAML ({type(e).__name__})"]) from e


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
    except _UNFORESEEN as e:
        raise MappingError([f"{source}: not valid YAML ({type(e).__name__})"]) from e
