"""A browser's sign-in flow: its CSRF token and what it is in the middle of, kept in the store.

The browser holds one cookie, ``__Host-authbridge-flow``: a random id
(32 bytes, URL-safe base64). Everything else is a row of the store
(:mod:`authbridge.store.sql_flows`) keyed by that id's digest, so every
worker and replica sees the same flow, and nothing of a pending request or a
half-done sign-in travels through the browser or a URL:

``csrf``
    The token every form of the pages carries (a synchronizer token, checked
    in constant time). A POST whose flow cookie is missing, unknown or expired,
    or whose token differs, is refused: a page of another site can neither
    read the token nor set a ``__Host-`` cookie.
``authorize``
    The parameters of a validated ``/oauth2/authorize`` request, until it is
    consented to or denied.
``pending``
    A sign-in whose password was right and that still needs its MFA code
    (``stage: "mfa"``) or a new password (``stage: "change"``): account,
    user name, user id and whether MFA was used. It lasts
    :data:`PENDING_SECONDS`; the password itself is never kept.
``next`` / ``user_code`` / ``enrol``
    Where to go once signed in (``authorize``, ``device`` or ``account``), the
    device user code being approved, and the serial of the MFA device being
    enrolled on ``/account/mfa`` (its seed is never kept: it is shown once).

A flow lives :data:`FLOW_SECONDS` after its last save. Signing in, or out,
replaces it with a fresh one (a new id and a new CSRF token): an id an
attacker planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from authbridge.store.base import Store

FLOW_COOKIE: Final = "__Host-authbridge-flow"
FLOW_SECONDS: Final = 900
PENDING_SECONDS: Final = 300
MAX_CODE_ATTEMPTS: Final = 5  # wrong MFA codes before the sign-in starts over
NEXT_PAGES: Final = ("authorize", "device", "account")


def new_id() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Flow:
    """One browser's flow (see the module docstring). ``stored`` is False for a new one."""

    flow_id: str = field(default_factory=new_id, repr=False)
    csrf: str = field(default_factory=new_id, repr=False)
    authorize: dict[str, str] | None = None
    pending: dict[str, Any] | None = None
    next: str | None = None
    user_code: str | None = None
    enrol: str | None = None  # the serial of an MFA device being enrolled on /account/mfa
    stored: bool = False

    def state(self) -> str:
        doc = asdict(self)
        del doc["flow_id"], doc["stored"]
        return json.dumps(doc, separators=(",", ":"))

    def renewed(self) -> Flow:
        """The same flow under a fresh id and CSRF token, without its pending sign-in."""
        return Flow(authorize=self.authorize, next=self.next, user_code=self.user_code)

    def pending_stage(self, stage: str, now: float) -> dict[str, Any] | None:
        """The pending sign-in if it is at ``stage`` and still fresh."""
        p = self.pending
        if not p or p.get("stage") != stage:
            return None
        at = p.get("at")
        if not isinstance(at, int | float) or now - at > PENDING_SECONDS:
            return None
        return p


def _str_map(value: object) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)


def parse(flow_id: str, state: str) -> Flow | None:
    """The flow a stored state describes; None when it is not one (never raises)."""
    try:
        doc = json.loads(state)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("csrf"), str):
        return None
    pending = doc.get("pending")
    nxt, code, enrol = doc.get("next"), doc.get("user_code"), doc.get("enrol")
    return Flow(
        flow_id=flow_id,
        csrf=doc["csrf"],
        authorize=_str_map(doc.get("authorize")),
        pending=pending if isinstance(pending, dict) else None,
        next=nxt if nxt in NEXT_PAGES else None,
        user_code=code if isinstance(code, str) else None,
        enrol=enrol if isinstance(enrol, str) else None,
        stored=True,
    )


def load(store: Store, flow_id: str | None, now: float) -> Flow | None:
    if not flow_id:
        return None
    state = store.load_signin_flow(flow_id, now)
    return None if state is None else parse(flow_id, state)


def save(store: Store, flow: Flow, now: float) -> None:
    store.save_signin_flow(flow.flow_id, flow.state(), expires_at=now + FLOW_SECONDS, now=now)
    flow.stored = True


def csrf_ok(flow: Flow | None, token: str | None) -> bool:
    """Whether a form's token is the one of the browser's stored flow (constant time)."""
    if flow is None or not flow.stored or not token:
        return False
    return secrets.compare_digest(flow.csrf.encode(), token.encode("utf-8", "replace"))
