"""A browser's sign-in flow: its CSRF token and what it is in the middle of, kept in the store.

The browser holds one cookie, ``__Host-authbridge-flow``: a random id
(32 bytes, URL-safe base64), set on its first page. What the flow is in the
middle of is a row of the store (:mod:`authbridge.store.sql_flows`) keyed by
that id's digest, written only once there is something to remember, so
every worker and replica sees the same flow, nothing of a pending request or
a half-done sign-in travels through the browser or a URL, and an anonymous
visit to ``/login`` writes nothing:

CSRF token
    Every form carries ``csrf_token``, a digest of the flow id (SHA-256 with
    a label). A POST is refused unless it comes with the flow cookie and the
    digest of that cookie, compared in constant time. Another site can
    neither read the cookie or the page, nor set a ``__Host-`` cookie (it must
    be ``Secure``, host-only and ``Path=/``, so no sibling host and no plain-http
    answer can plant one); the token needs no server-side copy.
``authorize``
    The parameters of a validated ``/oauth2/authorize`` request, until it is
    consented to or denied.
``pending``
    A sign-in whose password was right and that still needs its MFA code
    (``stage: "mfa"``) or a new password (``stage: "change"``): account,
    user name, user id and ARN, and whether MFA was used. It lasts
    :data:`PENDING_SECONDS`; the password itself is never kept.
``next`` / ``user_code`` / ``enrol`` / ``back`` / ``notice``
    Where to go once signed in (``authorize``, ``device``, ``account`` or
    ``console``, with ``back`` the console page to resume), the
    device user code being approved, and the serial of the MFA device being
    enrolled on ``/account/mfa`` (its seed is never kept: it is shown once),
    and the console's one-time message for the page after a change.

A row lives :data:`FLOW_SECONDS` after its last save. Signing in, or out,
replaces the flow with a fresh one (a new id, so a new CSRF token): an id an
attacker planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from authbridge.store.base import Store

FLOW_COOKIE: Final = "__Host-authbridge-flow"
FLOW_SECONDS: Final = 900
PENDING_SECONDS: Final = 300
MAX_CODE_ATTEMPTS: Final = 5  # wrong MFA codes before the sign-in starts over
NEXT_PAGES: Final = ("authorize", "device", "account", "console")
# The console page a visit resumes at: /console and up to four segments, none "." or "..".
BACK: Final = re.compile(r"/console(/[A-Za-z0-9_@+=,-][A-Za-z0-9._@+=,-]*){0,4}")
_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")  # what new_id makes


def new_id() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(flow_id: str) -> str:
    digest = hashlib.sha256(b"authbridge signin csrf\0" + flow_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Flow:
    """One browser's flow (see the module docstring).

    ``from_cookie``: the id came with the request (else it is new, and its cookie
    must be set); ``stored``: it has a row in the store.
    """

    flow_id: str = field(default_factory=new_id, repr=False)
    authorize: dict[str, str] | None = None
    pending: dict[str, Any] | None = None
    next: str | None = None
    user_code: str | None = None
    enrol: str | None = None  # the serial of an MFA device being enrolled on /account/mfa
    back: str | None = None  # the console page to return to after sign-in (a checked path)
    notice: str | None = None  # the console's message for the next page (once)
    from_cookie: bool = False
    stored: bool = False

    @property
    def csrf(self) -> str:
        return csrf_token(self.flow_id)

    def state(self) -> str:
        doc = asdict(self)
        del doc["flow_id"], doc["stored"], doc["from_cookie"]
        return json.dumps(doc, separators=(",", ":"))

    def renewed(self) -> Flow:
        """The same flow under a fresh id (so a fresh CSRF token), without its pending sign-in."""
        return Flow(
            authorize=self.authorize, next=self.next, user_code=self.user_code, back=self.back
        )

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
    if not isinstance(doc, dict):
        return None
    pending = doc.get("pending")
    nxt, code, enrol = doc.get("next"), doc.get("user_code"), doc.get("enrol")
    back, notice = doc.get("back"), doc.get("notice")
    return Flow(
        flow_id=flow_id,
        authorize=_str_map(doc.get("authorize")),
        pending=pending if isinstance(pending, dict) else None,
        next=nxt if nxt in NEXT_PAGES else None,
        user_code=code if isinstance(code, str) else None,
        enrol=enrol if isinstance(enrol, str) else None,
        back=back if isinstance(back, str) and BACK.fullmatch(back) else None,
        notice=notice if isinstance(notice, str) else None,
        from_cookie=True,
        stored=True,
    )


def load(store: Store, flow_id: str | None, now: float) -> Flow:
    """The flow of the request's cookie (with its row, if any); a new one without a
    well-formed cookie."""
    if not flow_id or not _ID.fullmatch(flow_id):
        return Flow()
    state = store.load_signin_flow(flow_id, now)
    found = None if state is None else parse(flow_id, state)
    return found if found is not None else Flow(flow_id=flow_id, from_cookie=True)


def save(store: Store, flow: Flow, now: float) -> None:
    store.save_signin_flow(flow.flow_id, flow.state(), expires_at=now + FLOW_SECONDS, now=now)
    flow.stored = True


def csrf_ok(flow: Flow, token: str | None) -> bool:
    """Whether a form's token is the digest of the flow cookie it came with (constant time)."""
    if not flow.from_cookie or not token:
        return False
    return secrets.compare_digest(flow.csrf.encode(), token.encode("utf-8", "replace"))
