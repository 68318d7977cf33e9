"""Fetching a registered OIDC provider's discovery document and JWKS, cached and bounded.

What AssumeRoleWithWebIdentity needs to verify an upstream token: the
provider's signing keys. :class:`UpstreamKeys` gets them as OpenID Connect
Discovery 1.0 says (§4: ``<issuer>/.well-known/openid-configuration``, whose
``issuer`` must equal the registered URL exactly, §4.3; then its
``jwks_uri``, RFC 7517), with these rules:

* https only, to the issuer and to its ``jwks_uri``; redirects are refused
  (a redirect could leave https or the provider); the provider's own CA
  bundle when it has one (``--ca-file``), else the system's CAs;
* every request has a connect/read timeout and an overall deadline
  (``timeout``), and a response over ``max_bytes`` is refused unread;
* a JWKS holds at most :data:`MAX_KEYS` keys. Only asymmetric keys are kept
  (``RSA`` of at least 2048 bits, ``EC`` P-256/P-384), each with its
  algorithm from :data:`ALLOWED_ALGS` (the key's ``alg``, else RS256/ES256/
  ES384 by its type): an ``oct`` key or ``alg: none``/``HS256`` never
  becomes a key, so no token can be checked with an HMAC of public data;
  keys with ``use`` other than ``sig`` or without a ``kid`` are skipped;
* the keys are cached per provider for the JWKS response's ``Cache-Control:
  max-age`` (``no-store``/``no-cache``: the minimum), clamped to
  ``[min_ttl, max_ttl]``, ``default_ttl`` when it says nothing;
* a ``kid`` not in the cached set refetches at most once per
  ``refresh_interval`` (a minute) per provider; otherwise it is
  :class:`UnknownKeyId` at once, so tokens with made-up ``kid`` values
  cannot make authbridge hammer the provider;
* a provider that cannot be reached (or answers nonsense) fails only its
  own lookups, with :class:`ProviderUnavailable` whose ``reason`` is a short
  code (``unreachable``, ``timeout``, ``tls``, ``http_status``, ``too_large``,
  ``not_json``, ``bad_discovery``, ``issuer_mismatch``, ``bad_jwks``) for a
  metric label, and a message saying what to check; the failure is remembered
  for ``retry_after`` seconds so a dead provider does not cost every login
  a timeout. Keys whose cache time has run out are not used past it, even
  when the provider is down (a key the provider withdrew must stop working).

Nothing here is Flask's; the web layer passes ``observe(provider_arn, outcome)``
to count fetches (:mod:`authbridge.web.metrics`). Lookups of different
providers never wait for each other; concurrent lookups of one provider
fetch once.

Exceptions::

    UpstreamError               (AuthbridgeError)
    ├── ProviderUnavailable     discovery/JWKS could not be had (.reason)
    └── UnknownKeyId            the token's kid is not in the provider's JWKS
"""

from __future__ import annotations

import json
import math
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge.errors import AuthbridgeError
from authbridge.iam.oidc_provider import OidcProvider

DISCOVERY_SUFFIX: Final = "/.well-known/openid-configuration"
MAX_KEYS: Final = 100
MIN_RSA_BITS: Final = 2048
ALLOWED_ALGS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}
)
_EC_ALGS: Final = {"P-256": "ES256", "P-384": "ES384"}
_MAX_AGE: Final = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?([0-9]{1,10})\"?\s*(?:,|$)", re.I)
_NO_CACHE: Final = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$|=)", re.I)

Observer = Callable[[str, str], None]
# What ``observe(provider_arn, outcome)`` is told: ``ok``, or a ProviderUnavailable reason
# (``other`` is the metric's label for anything else, which never happens).
FETCH_OUTCOMES: Final = frozenset(
    {
        "ok",
        "unreachable",
        "timeout",
        "tls",
        "http_status",
        "too_large",
        "not_json",
        "bad_discovery",
        "issuer_mismatch",
        "bad_jwks",
        "other",
    }
)


class UpstreamError(AuthbridgeError):
    code = "IDPCommunicationError"


class ProviderUnavailable(UpstreamError):
    """The provider's discovery document or JWKS could not be had; ``reason`` says why."""

    def __init__(self, provider: str, reason: str, message: str, *, hint: str | None = None):
        super().__init__(f"OIDC provider {provider}: {message}", hint=hint)
        self.provider = provider
        self.reason = reason


class UnknownKeyId(UpstreamError):
    code = "InvalidIdentityToken"

    def __init__(self, provider: str, kid: str) -> None:
        shown = kid if len(kid) <= 64 and kid.isascii() and kid.isprintable() else "(not shown)"
        super().__init__(
            f"OIDC provider {provider} has no signing key with kid {shown!r}",
            hint="the token is not signed by a key of this provider",
        )
        self.provider = provider


@dataclass(frozen=True)
class UpstreamKey:
    kid: str
    alg: str
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = field(repr=False)


@dataclass(frozen=True)
class ProviderKeys:
    """A provider's keys as fetched: ``fetched_at``/``expires_at`` on the fetcher's clock."""

    issuer: str
    jwks_uri: str
    keys: Mapping[str, UpstreamKey]
    fetched_at: float
    expires_at: float
    algorithms: tuple[str, ...] = ()


def cache_seconds(header: str | None, *, default: int, minimum: int, maximum: int) -> int:
    """How long a response may be kept, by its ``Cache-Control``, clamped to the bounds."""
    if header is None:
        return max(minimum, min(default, maximum))
    if _NO_CACHE.search(header):
        return minimum
    match = _MAX_AGE.search(header)
    if match is None:
        return max(minimum, min(default, maximum))
    return max(minimum, min(int(match.group(1)), maximum))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx then surfaces as an HTTPError (http_status)


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: ProviderKeys | None = None
    last_fetch: float = -math.inf  # when a fetch was last tried (refresh_interval)
    failure: ProviderUnavailable | None = None
    failed_at: float = -math.inf


class UpstreamKeys:
    """Per-provider cached signing keys (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_bytes: int = 256 * 1024,
        min_ttl: int = 60,
        max_ttl: int = 24 * 3600,
        default_ttl: int = 300,
        refresh_interval: float = 60.0,
        retry_after: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        observe: Observer | None = None,
    ) -> None:
        if not 0 < min_ttl <= default_ttl <= max_ttl:
            raise ValueError("need 0 < min_ttl <= default_ttl <= max_ttl")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.min_ttl, self.max_ttl, self.default_ttl = min_ttl, max_ttl, default_ttl
        self.refresh_interval = refresh_interval
        self.retry_after = retry_after
        self._clock = clock
        self._observe = observe
        self._entries: dict[str, _Entry] = {}
        self._entries_lock = threading.Lock()

    def _entry(self, provider: OidcProvider) -> _Entry:
        with self._entries_lock:
            return self._entries.setdefault(provider.arn, _Entry())

    def forget(self, provider_arn: str) -> None:
        """Drop what is cached for a provider (deleted or re-registered)."""
        with self._entries_lock:
            self._entries.pop(provider_arn, None)

    # -- lookups -----------------------------------------------------------------------
    def keys(self, provider: OidcProvider) -> ProviderKeys:
        """The provider's current keys: cached while fresh, else fetched."""
        entry = self._entry(provider)
        with entry.lock:
            now = self._clock()
            if entry.keys is not None and now < entry.keys.expires_at:
                return entry.keys
            return self._refresh(provider, entry, now)

    def key_for(self, provider: OidcProvider, kid: str) -> UpstreamKey:
        """The key ``kid`` of the provider; one refetch (rate-limited) when it is unknown."""
        keys = self.keys(provider)
        found = keys.keys.get(kid)
        if found is not None:
            return found
        entry = self._entry(provider)
        with entry.lock:
            now = self._clock()
            current = entry.keys
            if current is not None and kid in current.keys and now < current.expires_at:
                return current.keys[kid]  # another thread refreshed meanwhile
            if now - entry.last_fetch < self.refresh_interval:
                raise UnknownKeyId(provider.arn, kid)
            fresh = self._refresh(provider, entry, now)
        found = fresh.keys.get(kid)
        if found is None:
            raise UnknownKeyId(provider.arn, kid)
        return found

    def _refresh(self, provider: OidcProvider, entry: _Entry, now: float) -> ProviderKeys:
        if entry.failure is not None and now - entry.failed_at < self.retry_after:
            raise entry.failure
        entry.last_fetch = now
        try:
            keys = self._fetch(provider, now)
        except ProviderUnavailable as failure:
            entry.failure, entry.failed_at = failure, now
            entry.keys = None  # expired keys are not used past their time
            self._note(provider, failure.reason)
            raise
        entry.keys, entry.failure = keys, None
        self._note(provider, "ok")
        return keys

    def _note(self, provider: OidcProvider, outcome: str) -> None:
        if self._observe is not None:
            self._observe(provider.arn, outcome)

    # -- fetching ----------------------------------------------------------------------
    def _context(self, provider: OidcProvider) -> ssl.SSLContext:
        if provider.ca_bundle:
            context = ssl.create_default_context(cadata=provider.ca_bundle)
        else:
            context = ssl.create_default_context()
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _get(self, provider: OidcProvider, url: str, what: str) -> tuple[Any, str | None]:
        """GET ``url``: its JSON and its Cache-Control header, or ProviderUnavailable."""
        arn = provider.arn

        def fail(reason: str, message: str, hint: str | None = None) -> ProviderUnavailable:
            return ProviderUnavailable(arn, reason, f"{what}: {message}", hint=hint)

        if not url.startswith("https://"):
            raise fail("bad_discovery", "is not an https URL", "the provider must serve https")
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._context(provider)), _NoRedirect()
        )
        request = urllib.request.Request(  # noqa: S310 - https only, checked above
            url, headers={"Accept": "application/json", "User-Agent": "authbridge"}
        )
        deadline = time.monotonic() + self.timeout
        try:
            with opener.open(request, timeout=self.timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                    raise fail("too_large", f"the answer is over {self.max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                while True:
                    if time.monotonic() > deadline:
                        raise fail("timeout", f"no complete answer within {self.timeout:g} s")
                    chunk = response.read(16384)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise fail("too_large", f"the answer is over {self.max_bytes} bytes")
                    chunks.append(chunk)
                cache_control = response.headers.get("Cache-Control")
        except ProviderUnavailable:
            raise
        except urllib.error.HTTPError as e:
            e.close()  # it holds the connection
            raise fail("http_status", f"answered HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise self._network_failure(fail, e.reason) from None
        except TimeoutError:
            raise fail("timeout", f"no answer within {self.timeout:g} s") from None
        except (ssl.SSLError, ssl.CertificateError) as e:
            raise self._network_failure(fail, e) from None
        except OSError as e:
            raise self._network_failure(fail, e) from None
        try:
            return json.loads(b"".join(chunks)), cache_control
        except (ValueError, RecursionError):
            raise fail("not_json", "the answer is not JSON") from None

    @staticmethod
    def _network_failure(
        fail: Callable[[str, str, str | None], ProviderUnavailable], reason: object
    ) -> ProviderUnavailable:
        if isinstance(reason, ssl.SSLCertVerificationError | ssl.CertificateError):
            return fail(
                "tls",
                "its certificate does not verify",
                "give the CA that signed it with --ca-file when registering the provider",
            )
        if isinstance(reason, ssl.SSLError):
            return fail("tls", "the TLS handshake failed", None)
        if isinstance(reason, TimeoutError):
            return fail("timeout", "no answer in time", None)
        return fail("unreachable", "cannot be reached", "check the provider's URL and network")

    def _fetch(self, provider: OidcProvider, now: float) -> ProviderKeys:
        arn = provider.arn
        discovery, _ = self._get(provider, provider.url.rstrip("/") + DISCOVERY_SUFFIX, "discovery")
        if not isinstance(discovery, dict):
            raise ProviderUnavailable(arn, "bad_discovery", "discovery is not a JSON object")
        if discovery.get("issuer") != provider.url:
            raise ProviderUnavailable(
                arn,
                "issuer_mismatch",
                f"discovery names another issuer than {provider.url}",
                hint="register the provider with exactly the issuer URL its tokens carry",
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or len(jwks_uri) > 2048:
            raise ProviderUnavailable(arn, "bad_discovery", "discovery has no jwks_uri")
        algs = discovery.get("id_token_signing_alg_values_supported")
        algorithms = (
            tuple(a for a in algs if isinstance(a, str) and a in ALLOWED_ALGS)
            if isinstance(algs, list)
            else ()
        )
        jwks, cache_control = self._get(provider, jwks_uri, "JWKS")
        keys = parse_jwks(jwks, provider=arn)
        ttl = cache_seconds(
            cache_control, default=self.default_ttl, minimum=self.min_ttl, maximum=self.max_ttl
        )
        return ProviderKeys(provider.url, jwks_uri, keys, now, now + ttl, algorithms)


def _key(jwk: Mapping[str, Any]) -> UpstreamKey | None:
    kid, kty, use, alg = jwk.get("kid"), jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    if not isinstance(kid, str) or not 1 <= len(kid) <= 256:
        return None
    if use is not None and use != "sig":
        return None
    text = json.dumps(dict(jwk))
    try:
        if kty == "RSA":
            public = jwt.algorithms.RSAAlgorithm.from_jwk(text)
            if not isinstance(public, rsa.RSAPublicKey) or public.key_size < MIN_RSA_BITS:
                return None
            chosen = alg if alg is not None else "RS256"
            if chosen not in ALLOWED_ALGS or not chosen.startswith(("RS", "PS")):
                return None
            return UpstreamKey(kid, chosen, public)
        if kty == "EC":
            ec_public = jwt.algorithms.ECAlgorithm.from_jwk(text)
            if not isinstance(ec_public, ec.EllipticCurvePublicKey):
                return None
            curve = _EC_ALGS.get(str(jwk.get("crv")))
            chosen = alg if alg is not None else curve
            if chosen is None or chosen != curve:
                return None
            return UpstreamKey(kid, chosen, ec_public)
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        return None
    return None  # oct (HMAC), OKP and anything else: never a key for upstream tokens


def parse_jwks(document: Any, *, provider: str) -> dict[str, UpstreamKey]:
    """The usable signing keys of a JWKS by ``kid`` (ProviderUnavailable ``bad_jwks``)."""
    raw = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(raw, list):
        raise ProviderUnavailable(provider, "bad_jwks", 'JWKS is not {"keys": [...]}')
    if len(raw) > MAX_KEYS:
        raise ProviderUnavailable(
            provider, "bad_jwks", f"JWKS has {len(raw)} keys, more than {MAX_KEYS}"
        )
    out: dict[str, UpstreamKey] = {}
    for item in raw:
        if isinstance(item, dict):
            key = _key(item)
            if key is not None and key.kid not in out:
                out[key.kid] = key
    return out
