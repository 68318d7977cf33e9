"""The sign-in pages' flow state: one row per browser sign-in flow, keyed by a digest.

A *flow* is what the pages must remember between two requests of one browser
before (and while) it is signed in: a pending ``/oauth2/authorize`` request, a
sign-in that still needs its MFA code or a new password, a device code being
approved. It lives here, not in a cookie, so every worker and replica
sees the same state and nothing of it travels through the browser; the
cookie carries only a random id, and the table only that id's SHA-256, so a
copy of the database does not let anyone resume a flow. Rows end
``expires_at``; every save purges the expired ones (an indexed range
delete), so the table holds at most the flows of the last few minutes.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

from authbridge.errors import InputError

if TYPE_CHECKING:
    from authbridge.store.sql import Cursor

MAX_STATE_CHARS: Final = 16 * 1024  # a flow's JSON; far above what the pages store
MAX_FLOW_ID_CHARS: Final = 128


def flow_hash(flow_id: str) -> str:
    digest = hashlib.sha256(b"authbridge signin flow\0" + flow_id.encode("utf-8", "replace"))
    return digest.hexdigest()


class SqlFlows:
    """The flow half of the store protocol (:mod:`authbridge.store.base`), over SqlStore."""

    if TYPE_CHECKING:

        def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]: ...

    def save_signin_flow(self, flow_id: str, state: str, *, expires_at: float, now: float) -> None:
        """Create or replace the flow ``flow_id`` with ``state`` until ``expires_at``."""
        if not flow_id or len(flow_id) > MAX_FLOW_ID_CHARS:
            raise InputError("flow_id", f"must be 1 to {MAX_FLOW_ID_CHARS} characters")
        if len(state) > MAX_STATE_CHARS:
            raise InputError("state", f"is longer than {MAX_STATE_CHARS} characters")
        key = flow_hash(flow_id)
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM signin_flows WHERE expires_at <= ?", (int(now),))
            # One statement, so two tabs saving the same flow at once cannot collide.
            cur.execute(
                "INSERT INTO signin_flows (flow_hash, state, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (flow_hash) DO UPDATE SET state = excluded.state,"
                " expires_at = excluded.expires_at",
                (key, state, int(expires_at)),
            )

    def load_signin_flow(self, flow_id: str, now: float) -> str | None:
        """The state of a live flow; None for an unknown, expired or malformed id."""
        if not flow_id or len(flow_id) > MAX_FLOW_ID_CHARS:
            return None
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT state FROM signin_flows WHERE flow_hash = ? AND expires_at > ?",
                (flow_hash(flow_id), int(now)),
            )
        return str(rows[0][0]) if rows else None

    def delete_signin_flow(self, flow_id: str) -> None:
        """Forget a flow (idempotent)."""
        if not flow_id or len(flow_id) > MAX_FLOW_ID_CHARS:
            return
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM signin_flows WHERE flow_hash = ?", (flow_hash(flow_id),))
