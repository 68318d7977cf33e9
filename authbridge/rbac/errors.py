"""The refusals of the RBAC step.

AuthbridgeError
└── RbacError                    the RBAC step cannot go on
    ├── PlanConflict             an object authbridge wants exists but is not managed by it
    ├── LockoutRefused           the plan would leave no mapped identity with cluster-admin
    └── NameCollision            two different desired objects got the same name
"""

from __future__ import annotations

from authbridge.errors import AuthbridgeError
from authbridge.rbac.model import MANAGED_BY_LABEL, MANAGED_BY_VALUE, ObjectRef

__all__ = ["LockoutRefused", "NameCollision", "PlanConflict", "RbacError"]


class RbacError(AuthbridgeError):
    code = "RbacError"


class PlanConflict(RbacError):
    """Objects with the names authbridge wants already exist without its managed-by label.

    authbridge never updates or deletes such an object; ``refs`` lists every one.
    """

    code = "PlanConflict"

    def __init__(self, refs: list[ObjectRef]) -> None:
        self.refs = sorted(set(refs))
        one = len(self.refs) == 1
        shown = ", ".join(str(r) for r in self.refs)
        it = "it" if one else "them"
        super().__init__(
            f"{shown} {'exists' if one else 'exist'} but {'is' if one else 'are'} not managed"
            f" by authbridge (no label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE})",
            hint=(
                f"delete {it}, label {it} {MANAGED_BY_LABEL}={MANAGED_BY_VALUE} to hand"
                f" {it} over to authbridge, or choose another name in the mapping"
            ),
        )


class LockoutRefused(RbacError):
    """Applying would leave no identity from the mapping bound to a cluster-admin role."""

    code = "LockoutRefused"


class NameCollision(RbacError):
    """Two different desired objects were given the same name (a truncated-hash collision)."""

    code = "NameCollision"
