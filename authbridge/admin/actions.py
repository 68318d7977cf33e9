"""What an admin action is: an AWS name, a parameter schema, a handler and what it acts on.

One :class:`Action` per ``authbridge iam|access|keys`` verb. Its handler
takes a :class:`Target` (the store, the caller's account, the signing keys)
and the parsed arguments, and returns exactly the document ``authbridge -o
json`` prints for that verb (the CLI calls the same functions,
:mod:`authbridge.admin.iam`, :mod:`~authbridge.admin.access`,
:mod:`~authbridge.admin.keys`, so both answer alike by construction).
``iam_action`` is the IAM action string a policy names (``iam:CreateUser``)
and ``resources`` the ARNs it acts on: the first is the one authorization
is evaluated against, all of them go to the audit line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from authbridge.admin.params import Param

if TYPE_CHECKING:
    from authbridge.admin.keys import KeyPlace
    from authbridge.keys import Kek
    from authbridge.store.base import Store

Service = Literal["iam", "eks", "authbridge"]
Surface = Literal["iam", "access", "keys"]
Document = dict[str, Any]


class Target(Protocol):
    """What a handler acts on: the store, the caller's account and the signing keys."""

    @property
    def store(self) -> Store: ...

    @property
    def account_id(self) -> str: ...

    @property
    def partition(self) -> str: ...

    def key_place(self) -> KeyPlace: ...

    def kek(self) -> Kek | None:
        """The key-encryption key, when one is configured (secrets sealed in the store)."""

    @property
    def issuer(self) -> str: ...

    def now(self) -> float: ...


Handler = Callable[[Target, Mapping[str, Any]], Document | None]
Resources = Callable[[Target, Mapping[str, Any]], tuple[str, ...]]


@dataclass(frozen=True)
class Action:
    """One admin action (see the module docstring)."""

    name: str  # AWS name: CreateUser
    service: Service  # the prefix of its IAM action string
    surface: Surface  # the endpoint it is served on: /api/<surface>
    cli: str  # the CLI verb it is: "iam create-user"
    params: tuple[Param, ...]
    run: Handler
    resources: Resources
    mutating: bool
    doc: str = ""

    @property
    def iam_action(self) -> str:
        return f"{self.service}:{self.name}"


def iam_action(
    name: str,
    verb: str,
    params: tuple[Param, ...],
    run: Handler,
    resources: Resources,
    *,
    mutating: bool,
    doc: str = "",
) -> Action:
    """An action of the IAM service: ``iam:<name>`` on ``/api/iam``, the CLI's ``iam <verb>``."""
    return Action(name, "iam", "iam", f"iam {verb}", params, run, resources, mutating, doc)


def registry(actions: Sequence[Action]) -> dict[str, Action]:
    """Actions by name; a name given twice is a programming error."""
    by_name: dict[str, Action] = {}
    for action in actions:
        if action.name in by_name:
            raise ValueError(f"action {action.name} is defined twice")
        by_name[action.name] = action
    return by_name


STAR = "*"


def anywhere(_target: Target, _args: Mapping[str, Any]) -> tuple[str, ...]:
    """For actions with no resource type (List*): IAM evaluates them against ``*``."""
    return (STAR,)
