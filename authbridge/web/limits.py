"""Abuse limits of the web app: failed authentication (429) and request sizes (413, 431).

Failed client authentication and failed token exchanges
    ``/oauth2/token``, ``/oauth2/introspect`` and ``/oauth2/revoke`` authenticate
    access keys as OAuth clients (RFC 6749 §2.3). Every failed attempt is charged
    to three buckets:

    * the (access key id, client address) pair: ``failedAuthPerKeyPerMinute``
      (default 10), the ceiling a person with a typo meets;
    * the client address, whatever ids it names: ``failedAuthPerAddressPerMinute``
      (default 30), so that one address cannot guess across many ids;
    * the access key id from all addresses together:
      ``failedAuthPerKeyAllAddressesPerMinute`` (default 1000), much higher, so
      that one address (or a few) hammering an id cannot lock its owner out.

    A key id is counted only when it is well-formed (``AKIA`` + 16 base32
    characters; no other id can ever authenticate), whether or not it exists. A
    token exchange (RFC 8693, AssumeRole) that is refused with ``invalid_grant``
    (its subject token does not verify, the role does not exist or does not trust
    the caller, …) is a failure too, charged to the client address only: a
    ``client_id`` without a secret proves nothing (charging it would let anyone
    lock out someone else's key), and the key of a client that did
    authenticate has just proved itself (its success clears its pair's bucket
    anyway). So roles cannot be probed faster from one address than secrets
    guessed.

    While any bucket that applies to a request is empty, the request is answered
    HTTP 429 with ``Retry-After: <seconds>`` and ``{"error":
    "too_many_requests", "error_description": …}`` **before any secret is looked
    at** (and, for an exchange, before its subject token is): the right secret
    is refused too until the wait is over, so sending guesses faster gains
    nothing. A legitimate client waits ``Retry-After`` and tries again.

    What that means for an attacker who knows an access key id (it is in ARNs of
    audit records, CI logs, tokens): from one address they can spend that
    address's 10 attempts a minute on the id, and lock the id out *from that
    address only*; its owner, from any other address, is not affected. To lock
    the id out everywhere they must fail it 1000 times a minute, which at 10 per
    address takes 100 addresses (an IPv6 /64 counts as one); then
    ``failedAuthPerKeyAllAddressesPerMinute: 0`` turns that ceiling off (a
    240-bit secret is out of reach of guessing either way), and a new access
    key has a new id. An address shared by many clients (a NAT, a proxy that is
    not in ``trustedProxies``) is one address: its clients' failures add up in
    its 30, and while one of them keeps that bucket empty the others are
    refused with 429 too (set ``trustedProxies``, or raise the limit, for such
    an address).

    Each limit is a token bucket (the GCRA form: one timestamp per key) of ``N``
    attempts that refills at ``N`` a minute: a burst of ``N`` failures, then one
    more every ``60/N`` seconds; a minute without failures fills it again. Only
    failures are charged, when they are known, so any number of concurrent
    successful requests from one address (CI runners behind one NAT) pass; the
    price is that failures already in flight when a bucket empties are still
    checked, so a burst can overshoot ``N`` by the requests in flight (bounded by
    the worker's threads). A success clears the bucket of its (access key id,
    address) pair (its holder is not held to earlier typos), but neither the
    address's nor the key id's over all addresses: an attacker holding one valid
    key must not be able to refill their address's bucket while guessing
    others, nor an owner's success refill the budget of someone hammering the id
    from elsewhere.

    The buckets live in each worker. So that an instance allows about ``N`` in
    total whichever worker a connection lands on, each worker allows
    ``max(1, N // workers)``; every replica counts on its own (``R`` replicas:
    ``R × N``). Each worker tracks at most :data:`MAX_TRACKED` entries per
    bucket kind (about 14 MB at most), least recently charged dropped first: an
    attacker must fail that many other ids (or pairs) within a minute to make
    one forgotten, which buys ``N`` more guesses.

Client address
    The TCP peer (``REMOTE_ADDR``); an IPv6 peer counts as its /64 (one host
    usually holds a whole /64) and an IPv4-mapped IPv6 address as the IPv4
    address. ``X-Forwarded-For`` is read only when the peer is in
    ``trustedProxies`` (default: none); then the client is the right-most hop
    that is not itself a trusted proxy. Behind an ingress controller or a
    load balancer that hides client addresses, every client shares one
    address: set ``trustedProxies`` to the proxies' CIDRs (if they send
    ``X-Forwarded-For``), or ``failedAuthPerAddressPerMinute: 0``. Whoever
    holds many addresses (an IPv6 /48 holds 65536 /64s) is held back by the
    per-key limit over all addresses, not this one. (The connection cap,
    ``maxConnectionsPerAddress``, counts TCP peers before any HTTP is read, so
    it never looks at ``X-Forwarded-For``: :mod:`authbridge.web.worker`.)

Request sizes
    A body over ``maxRequestBytes`` (default 64 KiB) is refused with 413 on
    every endpoint, before the view runs: a declared ``Content-Length`` at
    once, a chunked body once the cap is read (:func:`read_body`). An
    ``Authorization`` header over :data:`MAX_AUTHORIZATION_CHARS` is refused
    with 431 (RFC 6585 §5, what gunicorn answers for its own header limits).
    The webhook and ``/verify`` check both themselves (:func:`oversized`,
    :func:`read_body`), so that the refusal gets their audit line and JSON
    form. gunicorn refuses earlier what never reaches the app: a request line
    over 8190 bytes (414), more than 64 header fields or one over 16384 bytes
    (431), each with gunicorn's own ``text/html`` body.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flask import Flask, Request, current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from authbridge.iam.credentials import looks_like_access_key_id
from authbridge.settings import Settings

log = logging.getLogger(__name__)

EXTENSION: Final = "authbridge.limits"
WINDOW_SECONDS: Final = 60.0  # the "minute" of failedAuthPer…PerMinute
MAX_TRACKED: Final = 20_000  # entries per bucket kind (pairs, addresses, key ids), per worker
# The longest bearer token /verify and the webhook look at (web.review.MAX_TOKEN_CHARS;
# authbridge's own are at most 8 KiB). Under gunicorn, limit_request_field_size (16384
# bytes for the whole header line) refuses a little earlier, with the same 431.
MAX_AUTHORIZATION_CHARS: Final = 16 * 1024
MAX_FORWARDED_HOPS: Final = 16  # X-Forwarded-For entries looked at, right to left
# Blueprints whose views check body and header sizes themselves (see the module docstring).
SELF_CHECKING_BLUEPRINTS: Final = frozenset({"webhook", "verify"})
# Float slack: N charges of 60/N s must fit in 60 s, with epoch seconds (ulp ~ 2e-7).
_SLACK = 1e-3

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TooManyFailedAttempts(Exception):
    """429: this client address or access key id is out of failed attempts for now."""

    def __init__(self, retry_after: int, what: str = "client authentications") -> None:
        super().__init__(
            f"too many failed {what} from this address or for this access key;"
            f" retry after {retry_after} s"
        )
        self.retry_after = retry_after


# --------------------------------------------------------------------------- the buckets


class FailureLimiter:
    """Token buckets of ``per_minute`` attempts, one per key, at most ``max_entries`` kept.

    GCRA: a key's state is the time its bucket is full again; a charge moves
    it ``window / per_minute`` later, and is refused when that would be more
    than ``window`` ahead of now. A key whose bucket is full is
    not stored. ``per_minute == 0`` allows everything.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        window: float = WINDOW_SECONDS,
        max_entries: int = MAX_TRACKED,
    ) -> None:
        self.per_minute = per_minute
        self.window = window
        self.max_entries = max_entries
        self.interval = window / per_minute if per_minute > 0 else 0.0
        self._full_at: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def _full_at_now(self, key: Hashable, now: float) -> float:
        """When the bucket of ``key`` is full (≥ now); the lock is held."""
        full_at = self._full_at.get(key)
        if full_at is None:
            return now
        if full_at <= now:
            del self._full_at[key]
            return now
        # A wall clock that stepped back must not stretch a wait beyond one window.
        return min(full_at, now + self.window)

    def _wait(self, full_at: float, now: float) -> float:
        over = full_at + self.interval - now - self.window
        return over if over > _SLACK else 0.0

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` may be charged again (0.0: now)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            return self._wait(self._full_at_now(key, now), now)

    def charge(self, key: Hashable, now: float) -> float:
        """Take one attempt: 0.0 when taken, else the seconds to wait (nothing taken)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            full_at = self._full_at_now(key, now)
            wait = self._wait(full_at, now)
            if wait:
                return wait
            self._full_at[key] = full_at + self.interval
            self._full_at.move_to_end(key)
            while len(self._full_at) > self.max_entries:
                self._full_at.popitem(last=False)
        return 0.0

    def refund(self, key: Hashable, now: float) -> None:
        """Give back one attempt taken by :meth:`charge`."""
        with self._lock:
            full_at = self._full_at.get(key)
            if full_at is None:
                return
            if full_at - self.interval <= now:
                del self._full_at[key]
            else:
                self._full_at[key] = full_at - self.interval

    def reset(self, key: Hashable) -> None:
        """Fill the bucket of ``key``."""
        with self._lock:
            self._full_at.pop(key, None)

    def __len__(self) -> int:
        return len(self._full_at)


def per_worker(per_instance: int, workers: int) -> int:
    """A worker's share of an instance-wide limit: at least 1, 0 only when off."""
    if per_instance <= 0:
        return 0
    return max(1, per_instance // max(1, workers))


@dataclass
class Attempt:
    """One client authentication or token exchange, allowed to start; charged only if it fails."""

    limits: ClientAuthLimits
    address: str | None
    key_id: str | None
    now: float

    def failed(self) -> None:
        """Refused: charge the address, and the key id (from this address, and in all)."""
        limits, address, key_id, now = self.limits, self.address, self.key_id, self.now
        pair = (key_id, address) if key_id is not None and address is not None else None
        if address is not None:
            limits.by_address.charge(address, now)
        if key_id is not None:
            limits.by_key.charge(key_id, now)
        if pair is not None:
            limits.by_pair.charge(pair, now)
        if pair is not None and limits.by_pair.wait(pair, now):
            log.warning(
                "access key %s is out of failed client authentications from %s for now: further"
                " attempts for it from there are refused with 429 (failedAuthPerKeyPerMinute)",
                key_id,
                address,
            )
        if key_id is not None and limits.by_key.wait(key_id, now):
            log.warning(
                "access key %s is out of failed client authentications from all addresses for"
                " now: further attempts for it are refused with 429, from every address"
                " (failedAuthPerKeyAllAddressesPerMinute)",
                key_id,
            )
        if address is not None and limits.by_address.wait(address, now):
            log.warning(
                "client address %s is out of failed client authentications for now: further"
                " attempts are refused with 429 (failedAuthPerAddressPerMinute)",
                address,
            )

    def succeeded(self) -> None:
        """The client authenticated: its key id starts afresh from this address (only)."""
        if self.key_id is not None and self.address is not None:
            self.limits.by_pair.reset((self.key_id, self.address))

    def abandoned(self) -> None:
        """Neither failed nor succeeded (e.g. the store was unavailable): nothing is charged."""


class ClientAuthLimits:
    """The three limits of one worker: per (key id, address), per address, per key id."""

    def __init__(
        self,
        per_key: int,
        per_address: int,
        *,
        per_key_all_addresses: int = 0,
        workers: int = 1,
        trusted_proxies: tuple[Network, ...] = (),
        max_entries: int = MAX_TRACKED,
    ) -> None:
        self.trusted_proxies = trusted_proxies
        self.by_pair = FailureLimiter(per_worker(per_key, workers), max_entries=max_entries)
        self.by_address = FailureLimiter(per_worker(per_address, workers), max_entries=max_entries)
        self.by_key = FailureLimiter(
            per_worker(per_key_all_addresses, workers), max_entries=max_entries
        )
        self.device_authorizations = FailureLimiter(
            per_worker(per_address, workers), max_entries=max_entries
        )

    def device_authorization(self, address: str | None, now: float) -> None:
        """Charge one device authorization (RFC 8628 §3.1) to ``address``, or raise 429.

        Every request counts, not only failures: each one makes a row in the store
        and a user code, so one address may start ``failedAuthPerAddressPerMinute``
        of them a minute (RFC 8628 §5.2 leaves the limit to the server).
        """
        if address is None:
            return
        wait = self.device_authorizations.wait(address, now)
        if wait:
            raise TooManyFailedAttempts(retry_after_seconds(wait), "device authorizations")
        self.device_authorizations.charge(address, now)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientAuthLimits:
        return cls(
            settings.failed_auth_per_key_per_minute,
            settings.failed_auth_per_address_per_minute,
            per_key_all_addresses=settings.failed_auth_per_key_all_addresses_per_minute,
            workers=settings.workers,
            trusted_proxies=settings.trusted_proxies,
        )

    def begin(
        self,
        address: str | None,
        client_id: str | None,
        now: float,
        *,
        what: str = "client authentications",
    ) -> Attempt:
        """Let an attempt start, or raise :class:`TooManyFailedAttempts` before any secret is read.

        ``client_id`` is the id the request names, unchecked; only a well-formed
        access key id is counted per key. ``what`` names the attempts in the 429's message.
        """
        key_id = client_id if client_id and looks_like_access_key_id(client_id) else None
        waits = [self.by_address.wait(address, now) if address is not None else 0.0]
        if key_id is not None:
            waits.append(self.by_key.wait(key_id, now))
            if address is not None:
                waits.append(self.by_pair.wait((key_id, address), now))
        longest = max(waits)
        if longest:
            raise TooManyFailedAttempts(retry_after_seconds(longest), what)
        return Attempt(self, address, key_id, now)


def retry_after_seconds(wait: float) -> int:
    """``Retry-After`` (RFC 9110 §10.2.3): whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait - _SLACK))


# --------------------------------------------------------------------------- addresses


def _address(text: str) -> Address | None:
    """An address from REMOTE_ADDR or an X-Forwarded-For hop (``[v6]:port``, ``v4:port`` too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: Address, proxies: Iterable[Network]) -> bool:
    return any(addr.version == net.version and addr in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: tuple[Network, ...]
) -> str | None:
    """The address the per-address limit counts (see the module docstring); None if unknown.

    ``forwarded_for``: the values of every ``X-Forwarded-For`` header, in order.
    """
    addr = _origin(peer, forwarded_for, trusted_proxies)
    if addr is None:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def connection_address(peer: str | None, trusted_proxies: tuple[Network, ...]) -> str | None:
    """The address a TCP peer's connections are counted under (``maxConnectionsPerAddress``):
    as :func:`client_address` buckets it, never through ``X-Forwarded-For`` (nothing of
    HTTP is read yet); None when not counted: unknown (a Unix socket) or a trusted proxy."""
    addr = _address(peer) if peer else None
    if addr is None or _trusted(addr, trusted_proxies):
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


def audit_client(environ: Mapping[str, Any], trusted_proxies: tuple[Network, ...]) -> str | None:
    """The client address an audit line names: the peer, or through ``trustedProxies``
    the client they forwarded for (as :func:`client_address` finds it, not bucketed)."""
    peer = environ.get("REMOTE_ADDR")
    forwarded = environ.get("HTTP_X_FORWARDED_FOR")
    addr = _origin(peer, [forwarded] if forwarded else [], trusted_proxies)
    return str(addr) if addr is not None else peer


def _origin(
    peer: str | None, forwarded_for: Iterable[str], trusted_proxies: tuple[Network, ...]
) -> Address | None:
    addr = _address(peer) if peer else None
    if addr is None:
        return None
    if trusted_proxies and _trusted(addr, trusted_proxies):
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
            previous = _address(hop)
            if previous is None:
                break  # garbage from further left: the last trusted hop is the client
            addr = previous
            if not _trusted(addr, trusted_proxies):
                break
    return addr


# --------------------------------------------------------------------------- the app


def install(app: Flask, settings: Settings) -> ClientAuthLimits:
    """Set the body cap, refuse oversized requests early, and keep this worker's limits."""
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    limits = ClientAuthLimits.from_settings(settings)
    app.extensions[EXTENSION] = limits
    app.before_request(check_request_size)
    return limits


def oversized(req: Request) -> HTTPException | None:
    """413 for a declared body over the cap, 431 for an oversized Authorization header."""
    limit = req.max_content_length
    if limit is not None and req.content_length is not None and req.content_length > limit:
        return RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")
    authorization = req.headers.get("Authorization")
    if authorization is not None and len(authorization) > MAX_AUTHORIZATION_CHARS:
        return RequestHeaderFieldsTooLarge(
            f"the Authorization header is over the limit of {MAX_AUTHORIZATION_CHARS} characters"
        )
    return None


def read_body(req: Request) -> bytes:
    """The body (kept for form parsing); :exc:`RequestEntityTooLarge` when it is over the cap.

    Werkzeug refuses a declared ``Content-Length`` over the cap, but reads a
    chunked body only up to the cap and silently drops the rest; one byte more
    from the server's stream tells the two apart.
    """
    data = req.get_data(cache=True)
    limit = req.max_content_length
    if limit is not None and len(data) >= limit and req.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")
    return data


def read_wsgi_body(environ: Mapping[str, Any], limit: int | None) -> bytes:
    """:func:`read_body` for a bare WSGI environ (no Flask request), read as werkzeug would.

    A declared ``Content-Length`` over ``limit`` is refused before reading; a
    body without one is read only when the server marks the input terminated
    (chunked), one byte past the cap telling an oversized body apart.
    """
    stream = environ.get("wsgi.input")
    declared = environ.get("CONTENT_LENGTH")
    length = int(declared) if declared and declared.isdigit() else None
    too_large = RequestEntityTooLarge(f"the request body is over the limit of {limit} bytes")
    if stream is None:
        return b""
    if length is not None:
        if limit is not None and length > limit:
            raise too_large
        return bytes(stream.read(length))
    if not environ.get("wsgi.input_terminated"):
        return b""  # no length and no end: werkzeug reads nothing either
    data = bytes(stream.read(limit + 1 if limit is not None else -1))
    if limit is not None and len(data) > limit:
        raise too_large
    return data


def check_request_size() -> None:
    """Before every view but the self-checking ones: refuse what :func:`oversized` finds,
    and a chunked body over the cap (read here, so the view parses what was checked)."""
    if request.blueprint in SELF_CHECKING_BLUEPRINTS:
        return
    problem = oversized(request)
    if problem is not None:
        raise problem
    if request.content_length is None and request.environ.get("wsgi.input_terminated"):
        read_body(request)


def _current() -> tuple[ClientAuthLimits, str | None]:
    limits = current_app.extensions.get(EXTENSION)
    if not isinstance(limits, ClientAuthLimits):
        raise RuntimeError("the app was not built by authbridge.web.create_app")
    address = client_address(
        request.remote_addr, request.headers.getlist("X-Forwarded-For"), limits.trusted_proxies
    )
    return limits, address


def begin_client_authentication(client_id: str | None, now: float) -> Attempt:
    """For the current request: charge an attempt or raise :class:`TooManyFailedAttempts`."""
    limits, address = _current()
    return limits.begin(address, client_id, now)


def charge_device_authorization(now: float) -> None:
    """For the current device authorization request: charge its address, or raise
    :class:`TooManyFailedAttempts` when the address has started too many this minute."""
    limits, address = _current()
    limits.device_authorization(address, now)


def begin_token_exchange(now: float) -> Attempt:
    """For the current token exchange, before its subject token is looked at: an attempt
    charged to the client address if the grant is refused, or :class:`TooManyFailedAttempts`."""
    limits, address = _current()
    return limits.begin(address, None, now, what="client authentications or token exchanges")
