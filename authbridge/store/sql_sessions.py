"""Sign-in sessions over SQL: device codes, authorization codes, refresh tokens, browser sessions.

Mixed into :class:`authbridge.store.sql.SqlStore`, so both backends share it
and ``tests/test_store_sessions.py`` runs it on each. Values and rules are
:mod:`authbridge.iam.sessions`'; the service that drives them (and mints
the tokens) is :mod:`authbridge.signin`. Only digests of secrets
(:func:`authbridge.iam.sessions.secret_digest`) reach these methods.

Every redemption is one write transaction that locks the row it redeems
(``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` is the write
lock), so of two requests presenting the same code or refresh token at once
exactly one is the first: a device code, an authorization code and a
refresh token each give a session (or its next refresh token) once. The
second presentation of a redeemed authorization code, or of a rotated
refresh token, ends the session the first one made (RFC 6749 §4.1.2,
OAuth 2.0 Security BCP §4.14.2) in that same transaction.

A session ends by getting ``ended_at`` (and a reason); its row stays until
it would have expired anyway, so ``Store.review_facts`` tells an ended
session from a live one in the review's one statement; a session whose row
is gone (its user deleted, or purged) is ended too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

from authbridge.errors import InputError
from authbridge.iam import sessions
from authbridge.iam.sessions import (
    AuthorizationCodeRecord,
    BrowserRecord,
    DecideOutcome,
    DeviceRecord,
    EndReason,
    FederatedSubject,
    GrantResult,
    SessionKind,
    SessionLifetimes,
    SessionRecord,
)

if TYPE_CHECKING:
    from authbridge.iam.model import Account
    from authbridge.store.sql import Cursor, Driver, Row

_SESSION_COLS: Final = (
    "s.session_id, s.user_id, s.kind, s.client_id, s.mfa, s.created_at, s.last_used_at,"
    " s.expires_at, s.idle_seconds, s.federated_id"
)
_N_SESSION_COLS: Final = 10
# A session still in force at ? (twice the same instant), and its user enabled (a
# federated subject's session: its role and trust are checked at every grant instead).
_LIVE: Final = (
    "s.ended_at IS NULL AND s.expires_at > ? AND s.last_used_at + s.idle_seconds > ?"
    " AND (u.enabled = 1 OR s.federated_id IS NOT NULL)"
)
_SUBJECT_COLS: Final = (
    "f.subject_id, f.account_id, f.provider_arn, f.sub, f.role_arn, f.role_id,"
    " f.session_name, f.claims"
)


def _subject(r: Row) -> FederatedSubject:
    subject_id, account_id, provider_arn, sub, role_arn, role_id, name, claims = r[:8]
    return FederatedSubject(
        subject_id=subject_id,
        account_id=account_id,
        provider_arn=provider_arn,
        sub=sub,
        role_arn=role_arn,
        role_id=role_id,
        session_name=name,
        claims=json.loads(claims),
    )


def _session(r: Row) -> SessionRecord:
    sid, user_id, kind, client_id, mfa, created, last, expires, idle, federated = r[
        :_N_SESSION_COLS
    ]
    return SessionRecord(
        session_id=sid,
        user_id=user_id,
        kind=kind,
        client_id=client_id,
        mfa=bool(mfa),
        created_at=int(created),
        last_used_at=int(last),
        expires_at=int(expires),
        idle_seconds=int(idle),
        federated_id=federated,
    )


class SqlSessions:
    """The sign-in-session half of the store protocol, over SqlStore."""

    if TYPE_CHECKING:
        _db: Driver
        partition: str

        def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]: ...
        def _account(self, cur: Cursor, account_id: str) -> Account: ...
        def _user_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...
        def _role_row(
            self, cur: Cursor, account_id: str, name: str, *, lock: bool = False
        ) -> Row: ...

    # -- sessions -----------------------------------------------------------------------
    def _insert_session(
        self,
        cur: Cursor,
        *,
        session_id: str,
        user_id: str | None,
        kind: SessionKind,
        client_id: str,
        mfa: bool,
        now: int,
        lifetimes: SessionLifetimes,
        secret_hash: str | None = None,
        address: str | None = None,
        federated_id: str | None = None,
    ) -> SessionRecord:
        cur.execute(
            "INSERT INTO signin_sessions (session_id, user_id, federated_id, kind, client_id, mfa,"
            " secret_hash, address, created_at, last_used_at, expires_at, idle_seconds)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                user_id,
                federated_id,
                kind,
                client_id,
                int(mfa),
                secret_hash,
                address,
                now,
                now,
                now + lifetimes.max_seconds,
                lifetimes.idle_seconds,
            ),
        )
        return SessionRecord(
            session_id,
            user_id,
            kind,
            client_id,
            mfa,
            now,
            now,
            now + lifetimes.max_seconds,
            lifetimes.idle_seconds,
            federated_id,
        )

    @staticmethod
    def _end(cur: Cursor, session_id: str, reason: EndReason, now: int) -> bool:
        cur.execute(
            "UPDATE signin_sessions SET ended_at = ?, end_reason = ?"
            " WHERE session_id = ? AND ended_at IS NULL",
            (now, reason, session_id),
        )
        return cur.rowcount == 1

    @staticmethod
    def _subject_exists(cur: Cursor, subject_id: str) -> bool:
        return bool(
            cur.execute(
                "SELECT 1 FROM signin_federated_subjects WHERE subject_id = ?", (subject_id,)
            )
        )

    def _subject_ok(self, cur: Cursor, user_id: str | None, federated_id: str | None) -> bool:
        """Whether a code's subject may still get a session: its user enabled, or its
        federated subject there (whose role and trust the grant then checks)."""
        if federated_id is not None:
            return user_id is None and self._subject_exists(cur, federated_id)
        return user_id is not None and self._user_enabled(cur, user_id)

    def _user_enabled(self, cur: Cursor, user_id: str) -> bool:
        rows = cur.execute("SELECT enabled FROM iam_users WHERE user_id = ?", (user_id,))
        return bool(rows and rows[0][0])

    def _purge_expired(self, cur: Cursor, now: int) -> None:
        """Forget codes long expired and sessions long over (called by the inserts)."""
        forget = now - sessions.FORGET_EXPIRED_SECONDS
        cur.execute("DELETE FROM signin_device_codes WHERE expires_at < ?", (forget,))
        cur.execute("DELETE FROM signin_authorization_codes WHERE expires_at < ?", (forget,))
        cur.execute(
            "DELETE FROM signin_refresh_tokens WHERE session_id IN (SELECT session_id FROM"
            " signin_sessions WHERE expires_at < ?)",
            (forget,),
        )
        cur.execute("DELETE FROM signin_sessions WHERE expires_at < ?", (forget,))
        # A federated subject no session and no code names any more (a sign-in's own
        # subject is made in the transaction that names it).
        cur.execute(
            "DELETE FROM signin_federated_subjects WHERE created_at < ? AND NOT EXISTS"
            " (SELECT 1 FROM signin_sessions s WHERE s.federated_id = subject_id)"
            " AND NOT EXISTS (SELECT 1 FROM signin_authorization_codes c"
            " WHERE c.federated_id = subject_id)"
            " AND NOT EXISTS (SELECT 1 FROM signin_device_codes d"
            " WHERE d.federated_id = subject_id)",
            (forget,),
        )

    def get_signin_session(self, session_id: str) -> SessionRecord | None:
        """The session if it exists and has not been ended (it may have expired)."""
        with self._tx() as cur:
            rows = cur.execute(
                f"SELECT {_SESSION_COLS} FROM signin_sessions s"
                " WHERE s.session_id = ? AND s.ended_at IS NULL",
                (session_id,),
            )
        return _session(rows[0]) if rows else None

    def end_signin_session(self, session_id: str, reason: EndReason, now: float) -> bool:
        """End the session; False if there is none, or it had ended already."""
        with self._tx(write=True) as cur:
            return self._end(cur, session_id, reason, int(now))

    def end_user_signin_sessions(
        self, account_id: str, user_name: str, reason: EndReason, now: float
    ) -> int:
        """End every session of the user (CLI and browser); how many were still open."""
        with self._tx(write=True) as cur:
            user = self._user_row(cur, account_id, user_name, lock=True)
            return self._end_all(cur, user[0], reason, int(now))

    def end_role_signin_sessions(
        self, account_id: str, role_name: str, reason: EndReason, now: float
    ) -> int:
        """End every federated sign-in session of the role; how many were still open."""
        with self._tx(write=True) as cur:
            role_id = self._role_row(cur, account_id, role_name)[0]
            cur.execute(
                "UPDATE signin_sessions SET ended_at = ?, end_reason = ?"
                " WHERE ended_at IS NULL AND federated_id IN"
                " (SELECT subject_id FROM signin_federated_subjects WHERE role_id = ?)",
                (int(now), reason, role_id),
            )
            return cur.rowcount

    # -- federated subjects (sign-in through an upstream IdP) ---------------------------
    @staticmethod
    def _insert_subject(cur: Cursor, subject: FederatedSubject, now: int) -> None:
        claims = json.dumps(subject.claims, separators=(",", ":"), sort_keys=True)
        if len(claims) > sessions.MAX_FEDERATED_CLAIMS:
            raise InputError(
                "claims",
                f"the ID token's claims are over {sessions.MAX_FEDERATED_CLAIMS} characters",
                hint="ask the IdP to send fewer claims to this client",
            )
        cur.execute(
            "INSERT INTO signin_federated_subjects (subject_id, account_id, provider_arn, sub,"
            " role_arn, role_id, session_name, claims, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                subject.subject_id,
                subject.account_id,
                subject.provider_arn,
                subject.sub,
                subject.role_arn,
                subject.role_id,
                subject.session_name,
                claims,
                now,
            ),
        )

    def get_federated_subject(self, subject_id: str) -> FederatedSubject | None:
        with self._tx() as cur:
            rows = cur.execute(
                f"SELECT {_SUBJECT_COLS} FROM signin_federated_subjects f WHERE f.subject_id = ?",
                (subject_id,),
            )
        return _subject(rows[0]) if rows else None

    @staticmethod
    def _end_all(cur: Cursor, user_id: str, reason: EndReason, now: int) -> int:
        cur.execute(
            "UPDATE signin_sessions SET ended_at = ?, end_reason = ?"
            " WHERE user_id = ? AND ended_at IS NULL",
            (now, reason, user_id),
        )
        return cur.rowcount

    @staticmethod
    def _drop_sessions(cur: Cursor, user_id: str) -> None:
        """A deleted user's sessions, codes and refresh tokens (tokens with their sid die)."""
        cur.execute(
            "DELETE FROM signin_refresh_tokens WHERE session_id IN"
            " (SELECT session_id FROM signin_sessions WHERE user_id = ?)",
            (user_id,),
        )
        cur.execute("DELETE FROM signin_sessions WHERE user_id = ?", (user_id,))
        cur.execute("DELETE FROM signin_device_codes WHERE user_id = ?", (user_id,))
        cur.execute("DELETE FROM signin_authorization_codes WHERE user_id = ?", (user_id,))

    # -- device authorization (RFC 8628) ------------------------------------------------
    def create_device_authorization(
        self,
        *,
        device_hash: str,
        user_code: str,
        client_id: str,
        scope: str,
        now: float,
        expires_in: int,
        interval: int,
    ) -> bool:
        """Record a new device authorization; False if the user code is taken (try another)."""
        stamp = int(now)
        with self._tx(write=True) as cur:
            self._purge_expired(cur, stamp)
            if cur.execute("SELECT 1 FROM signin_device_codes WHERE user_code = ?", (user_code,)):
                return False
            cur.execute(
                "INSERT INTO signin_device_codes (device_hash, user_code, client_id, scope,"
                " created_at, expires_at, interval_seconds, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
                (device_hash, user_code, client_id, scope, stamp, stamp + expires_in, interval),
            )
        return True

    def device_request(self, user_code: str, now: float) -> DeviceRecord | None:
        """The device authorization a (normalised) user code names; None if none or expired."""
        with self._tx() as cur:
            rows = cur.execute(
                "SELECT user_code, client_id, scope, expires_at, status FROM signin_device_codes"
                " WHERE user_code = ? AND expires_at > ?",
                (user_code, int(now)),
            )
        if not rows:
            return None
        code, client_id, scope, expires, status = rows[0]
        return DeviceRecord(code, client_id, scope, int(expires), status)

    def decide_device(
        self,
        user_code: str,
        *,
        approve: bool,
        user_id: str | None,
        mfa: bool,
        now: float,
        federated_id: str | None = None,
    ) -> DecideOutcome:
        """Approve (for ``user_id``, or the federated subject) or deny a pending one, once."""
        stamp = int(now)
        with self._tx(write=True) as cur:
            rows = cur.execute(
                "SELECT status, expires_at FROM signin_device_codes WHERE user_code = ?"
                + self._db.lock_suffix,
                (user_code,),
            )
            if not rows:
                return "unknown"
            status, expires = rows[0]
            if int(expires) <= stamp:
                return "expired"
            if status != "pending":
                return "decided"
            if approve and federated_id is not None:
                if user_id is not None or not self._subject_exists(cur, federated_id):
                    return "unknown"
            elif approve and (user_id is None or not self._user_enabled(cur, user_id)):
                return "unknown"
            cur.execute(
                "UPDATE signin_device_codes SET status = ?, user_id = ?, federated_id = ?,"
                " mfa = ?, decided_at = ? WHERE user_code = ? AND status = 'pending'",
                (
                    "approved" if approve else "denied",
                    user_id if approve else None,
                    federated_id if approve else None,
                    int(mfa and approve),
                    stamp,
                    user_code,
                ),
            )
        return "ok"

    def poll_device(
        self,
        device_hash: str,
        *,
        client_id: str,
        now: float,
        session_id: str,
        refresh_hash: str,
        lifetimes: SessionLifetimes,
    ) -> GrantResult:
        """RFC 8628 §3.4/3.5: one poll of a device code, redeeming it once it is approved.

        ``slow_down`` when a pending code is polled sooner than its interval
        after the last poll (the interval then grows by 5 s, for good); an
        approved code makes the session ``session_id`` with its first refresh
        token, once; later polls of it are ``invalid``.
        """
        stamp = int(now)
        with self._tx(write=True) as cur:
            rows = cur.execute(
                "SELECT client_id, expires_at, interval_seconds, last_poll_at, status, user_id,"
                " mfa, federated_id FROM signin_device_codes WHERE device_hash = ?"
                + self._db.lock_suffix,
                (device_hash,),
            )
            if not rows or rows[0][0] != client_id or rows[0][4] == "redeemed":
                return GrantResult("invalid")
            _, expires, interval, last_poll, status, user_id, mfa, federated_id = rows[0]
            interval = int(interval)
            if int(expires) <= stamp:
                return GrantResult("expired", interval=interval)
            if status == "pending":
                too_soon = last_poll is not None and stamp - int(last_poll) < interval
                if too_soon:
                    interval += sessions.SLOW_DOWN_STEP
                cur.execute(
                    "UPDATE signin_device_codes SET last_poll_at = ?, interval_seconds = ?"
                    " WHERE device_hash = ?",
                    (stamp, interval, device_hash),
                )
                return GrantResult("slow_down" if too_soon else "pending", interval=interval)
            if status == "denied":
                return GrantResult("denied", interval=interval)
            # approved: the one redemption.
            cur.execute(
                "UPDATE signin_device_codes SET status = 'redeemed', session_id = ?,"
                " last_poll_at = ? WHERE device_hash = ?",
                (session_id, stamp, device_hash),
            )
            if not self._subject_ok(cur, user_id, federated_id):
                return GrantResult("invalid")
            session = self._insert_session(
                cur,
                session_id=session_id,
                user_id=user_id,
                kind="cli",
                client_id=client_id,
                mfa=bool(mfa),
                now=stamp,
                lifetimes=lifetimes,
                federated_id=federated_id,
            )
            self._insert_refresh(cur, refresh_hash, session_id, stamp)
        return GrantResult("issued", session, interval)

    # -- authorization codes (RFC 6749 §4.1, RFC 7636) -----------------------------------
    def create_authorization_code(
        self, code_hash: str, code: AuthorizationCodeRecord, now: float
    ) -> None:
        stamp = int(now)
        with self._tx(write=True) as cur:
            self._purge_expired(cur, stamp)
            cur.execute(
                "INSERT INTO signin_authorization_codes (code_hash, client_id, redirect_uri,"
                " code_challenge, scope, user_id, federated_id, mfa, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    code_hash,
                    code.client_id,
                    code.redirect_uri,
                    code.code_challenge,
                    code.scope,
                    code.user_id,
                    code.federated_id,
                    int(code.mfa),
                    stamp,
                    code.expires_at,
                ),
            )

    def redeem_authorization_code(
        self,
        code_hash: str,
        *,
        accept: Callable[[AuthorizationCodeRecord], bool],
        now: float,
        session_id: str,
        refresh_hash: str,
        lifetimes: SessionLifetimes,
    ) -> GrantResult:
        """Redeem a code once: ``accept`` checks the request (client, redirect URI, PKCE).

        A code already redeemed is ``reused`` and ends the session its first
        redemption made; an unknown or expired code, or one ``accept`` refuses
        (which leaves it unredeemed), is ``invalid``.
        """
        stamp = int(now)
        with self._tx(write=True) as cur:
            rows = cur.execute(
                "SELECT client_id, redirect_uri, code_challenge, scope, user_id, mfa,"
                " expires_at, redeemed_at, session_id, federated_id FROM signin_authorization_codes"
                " WHERE code_hash = ?" + self._db.lock_suffix,
                (code_hash,),
            )
            if not rows:
                return GrantResult("invalid")
            (client_id, redirect, challenge, scope, user_id, mfa, expires, redeemed, first) = rows[
                0
            ][:9]
            federated_id = rows[0][9]
            if redeemed is not None:
                if first is not None:
                    self._end(cur, first, "code_reused", stamp)
                return GrantResult("reused")
            record = AuthorizationCodeRecord(
                client_id,
                redirect,
                challenge,
                scope,
                user_id,
                bool(mfa),
                int(expires),
                federated_id,
            )
            if int(expires) <= stamp or not accept(record):
                return GrantResult("invalid")
            cur.execute(
                "UPDATE signin_authorization_codes SET redeemed_at = ?, session_id = ?"
                " WHERE code_hash = ?",
                (stamp, session_id, code_hash),
            )
            if not self._subject_ok(cur, user_id, federated_id):
                return GrantResult("invalid")
            session = self._insert_session(
                cur,
                session_id=session_id,
                user_id=user_id,
                kind="cli",
                client_id=client_id,
                mfa=bool(mfa),
                now=stamp,
                lifetimes=lifetimes,
                federated_id=federated_id,
            )
            self._insert_refresh(cur, refresh_hash, session_id, stamp)
        return GrantResult("issued", session)

    # -- refresh tokens (RFC 6749 §6) --------------------------------------------------------
    @staticmethod
    def _insert_refresh(cur: Cursor, token_hash: str, session_id: str, now: int) -> None:
        cur.execute(
            "INSERT INTO signin_refresh_tokens (token_hash, session_id, issued_at)"
            " VALUES (?, ?, ?)",
            (token_hash, session_id, now),
        )

    def rotate_refresh_token(
        self, token_hash: str, *, client_id: str, new_hash: str, now: float
    ) -> GrantResult:
        """Spend a refresh token for the next one; a rotated one presented again ends its family.

        ``invalid``: unknown (or another client's); ``reused``: already rotated
        (the session is ended now, every token of it refused); ``ended``: the
        session is over (ended, idle, past its absolute end, the user
        disabled); ``issued``: the session, its last use moved to ``now``.
        """
        stamp = int(now)
        with self._tx(write=True) as cur:
            rows = cur.execute(
                f"SELECT r.rotated_at, {_SESSION_COLS}, s.ended_at, u.enabled"
                " FROM signin_refresh_tokens r"
                " JOIN signin_sessions s ON s.session_id = r.session_id"
                " LEFT JOIN iam_users u ON u.user_id = s.user_id"
                " WHERE r.token_hash = ?"
                # PostgreSQL locks no row of an outer join's nullable side: the token's and
                # the session's rows are the ones two presentations race for.
                + (f"{self._db.lock_suffix} OF r, s" if self._db.lock_suffix else ""),
                (token_hash,),
            )
            if not rows:
                return GrantResult("invalid")
            rotated, *cols = rows[0]
            session = _session(tuple(cols))
            ended, enabled = cols[_N_SESSION_COLS], cols[_N_SESSION_COLS + 1]
            enabled = enabled if session.federated_id is None else True
            if session.client_id != client_id:
                return GrantResult("invalid")
            if rotated is not None:
                self._end(cur, session.session_id, "refresh_token_reused", stamp)
                return GrantResult("reused", session)
            if ended is not None or not enabled or not session.live(stamp):
                return GrantResult("ended", session)
            cur.execute(
                "UPDATE signin_refresh_tokens SET rotated_at = ? WHERE token_hash = ?",
                (stamp, token_hash),
            )
            self._insert_refresh(cur, new_hash, session.session_id, stamp)
            cur.execute(
                "UPDATE signin_sessions SET last_used_at = ? WHERE session_id = ?",
                (stamp, session.session_id),
            )
        return GrantResult("issued", dataclasses.replace(session, last_used_at=stamp))

    def end_session_by_refresh_token(
        self, token_hash: str, reason: EndReason, now: float
    ) -> str | None:
        """RFC 7009 for a refresh token (current or rotated): end its session; its id."""
        with self._tx(write=True) as cur:
            rows = cur.execute(
                "SELECT session_id FROM signin_refresh_tokens WHERE token_hash = ?",
                (token_hash,),
            )
            if not rows:
                return None
            self._end(cur, rows[0][0], reason, int(now))
            return str(rows[0][0])

    # -- browser sessions ---------------------------------------------------------------
    def create_browser_session(
        self,
        *,
        session_id: str,
        secret_hash: str,
        user_id: str | None,
        client_id: str,
        mfa: bool,
        address: str | None,
        now: float,
        lifetimes: SessionLifetimes,
        federated: FederatedSubject | None = None,
    ) -> SessionRecord:
        """A browser session of a user, or of a federated subject (recorded with it, at once)."""
        stamp = int(now)
        with self._tx(write=True) as cur:
            self._purge_expired(cur, stamp)
            if federated is not None:
                self._insert_subject(cur, federated, stamp)
            return self._insert_session(
                cur,
                session_id=session_id,
                user_id=None if federated is not None else user_id,
                federated_id=None if federated is None else federated.subject_id,
                kind="browser",
                client_id=client_id,
                mfa=mfa,
                now=stamp,
                lifetimes=lifetimes,
                secret_hash=secret_hash,
                address=address,
            )

    def browser_session(self, secret_hash: str, now: float) -> BrowserRecord | None:
        """The live browser session a cookie's digest names, its last use moved to ``now``."""
        stamp = int(now)
        with self._tx() as cur:
            rows = cur.execute(
                f"SELECT {_SESSION_COLS}, u.name, u.account_id, u.path, {_SUBJECT_COLS}"
                " FROM signin_sessions s"
                " LEFT JOIN iam_users u ON u.user_id = s.user_id"
                " LEFT JOIN signin_federated_subjects f ON f.subject_id = s.federated_id"
                f" WHERE s.secret_hash = ? AND s.kind = 'browser' AND {_LIVE}",
                (secret_hash, stamp, stamp),
            )
        if not rows:
            return None
        session = _session(rows[0])
        name, account_id, path = rows[0][_N_SESSION_COLS : _N_SESSION_COLS + 3]
        subject = _subject(rows[0][_N_SESSION_COLS + 3 :]) if session.federated_id else None
        if stamp - session.last_used_at >= sessions.LAST_USE_GRANULARITY:
            with self._tx(write=True) as cur:
                cur.execute(
                    "UPDATE signin_sessions SET last_used_at = ?"
                    " WHERE session_id = ? AND last_used_at < ?",
                    (stamp, session.session_id, stamp),
                )
        if subject is not None:
            return BrowserRecord(
                session_id=session.session_id,
                user_id=subject.principal_id,
                user_name=subject.session_name,
                account_id=subject.account_id,
                user_arn=subject.assumed_role_arn,
                mfa=False,
                expires_at=session.expires_at,
                federated=subject,
            )
        from authbridge import arn as arns

        return BrowserRecord(
            session_id=session.session_id,
            user_id=str(session.user_id),
            user_name=name,
            account_id=account_id,
            user_arn=arns.user_arn(self.partition, account_id, name, path),
            mfa=session.mfa,
            expires_at=session.expires_at,
        )
