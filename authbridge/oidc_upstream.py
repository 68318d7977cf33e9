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
  ``not_json``, ``bad_discovery``, ``issuer_mismatch``, ``bad_jwks``,
  ``no_sign_in``) for a
  metric label, and a message saying what to check; the failure is remembered
  for ``retry_after`` seconds so a dead provider does not cost every login
  a timeout. Keys whose cache time has run out are not used past it, even
  when the provider is down (a key the provider withdrew must stop working).

For sign-in (:mod:`authbridge.iam.oidc_signin`) the discovery document also
gives ``authorization_endpoint`` and ``token_endpoint`` (https), checked against
``code_challenge_methods_supported`` (present without ``S256``: refused) and
``token_endpoint_auth_methods_supported`` (:func:`token_auth_method`); they are
required only for sign-in, never for web identity. :meth:`UpstreamKeys.exchange_code`
POSTs the authorization code under the same rules as the fetches.

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

import base64
import json
import math
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
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
        "no_sign_in",
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
    sign_in: SignInEndpoints | None = None
    sign_in_problem: str = "discovery has no authorization_endpoint"  # when sign_in is None


@dataclass(frozen=True)
class SignInEndpoints:
    """What the authorization code flow needs from discovery (OpenID Connect Discovery §3)."""

    authorization_endpoint: str
    token_endpoint: str
    token_auth_methods: tuple[str, ...]  # token_endpoint_auth_methods_supported, as offered


def parse_sign_in_endpoints(discovery: Mapping[str, Any]) -> SignInEndpoints | str:
    """The sign-in endpoints of a discovery document, or why it cannot be used for sign-in.

    ``authorization_endpoint`` and ``token_endpoint`` must be https URLs (at most
    2048 characters, no fragment); ``code_challenge_methods_supported``, when
    present, must hold ``S256`` (RFC 8414 §2: absent means not advertised, and the
    code flow is tried with S256 anyway; present without it means PKCE S256 would
    be ignored, so sign-in is refused). Never a reason to refuse web identity.
    """
    out: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint"):
        value = discovery.get(name)
        if not isinstance(value, str):
            return f"discovery has no {name}"
        if not value.startswith("https://") or len(value) > 2048 or "#" in value:
            return f"discovery's {name} is not an https URL"
        if not value.isascii() or not value.isprintable():
            return f"discovery's {name} is not an https URL"
        out[name] = value
    methods = discovery.get("code_challenge_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
        return "the provider does not offer PKCE with S256 (code_challenge_methods_supported)"
    auth = discovery.get("token_endpoint_auth_methods_supported")
    offered = (
        tuple(m for m in auth if isinstance(m, str))[:20]
        if isinstance(auth, list)
        else ("client_secret_basic",)  # the default, OpenID Connect Discovery §3
    )
    return SignInEndpoints(out["authorization_endpoint"], out["token_endpoint"], offered)


def token_auth_method(offered: tuple[str, ...], *, has_secret: bool) -> str:
    """How authbridge authenticates at the token endpoint (RFC 6749 §2.3.1).

    ``none`` for a public client (PKCE alone); with a secret ``client_secret_basic``,
    unless the provider offers only ``client_secret_post``.
    """
    if not has_secret:
        return "none"
    if "client_secret_post" in offered and "client_secret_basic" not in offered:
        return "client_secret_post"
    return "client_secret_basic"


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
        return self._request(provider, url, what)

    def _request(
        self,
        provider: OidcProvider,
        url: str,
        what: str,
        *,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, str | None]:
        """GET (or POST ``form``) ``url``: its JSON and Cache-Control, or ProviderUnavailable.

        Error messages name ``what`` and the failure, never the form or the headers
        (they may hold a code, a verifier or a client secret).
        """
        arn = provider.arn

        def fail(reason: str, message: str, hint: str | None = None) -> ProviderUnavailable:
            return ProviderUnavailable(arn, reason, f"{what}: {message}", hint=hint)

        if not url.startswith("https://"):
            raise fail("bad_discovery", "is not an https URL", "the provider must serve https")
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._context(provider)), _NoRedirect()
        )
        sent = {"Accept": "application/json", "User-Agent": "authbridge", **(headers or {})}
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode("ascii")
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(  # noqa: S310 - https only, checked above
            url, data=data, headers=sent, method="POST" if form is not None else "GET"
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
        sign_in = parse_sign_in_endpoints(discovery)
        if isinstance(sign_in, str):
            return ProviderKeys(
                provider.url, jwks_uri, keys, now, now + ttl, algorithms, sign_in_problem=sign_in
            )
        return ProviderKeys(provider.url, jwks_uri, keys, now, now + ttl, algorithms, sign_in)

    # -- sign-in (the authorization code flow, OpenID Connect Core §3.1) -----------------
    def sign_in_endpoints(self, provider: OidcProvider) -> SignInEndpoints:
        """The provider's authorization and token endpoints (cached with its keys).

        ProviderUnavailable when discovery cannot be had, or (reason ``no_sign_in``)
        when it does not support the code flow with PKCE S256.
        """
        keys = self.keys(provider)
        if keys.sign_in is None:
            raise ProviderUnavailable(
                provider.arn,
                "no_sign_in",
                f"cannot be used for sign-in: {keys.sign_in_problem}",
                hint="the IdP must publish authorization_endpoint and token_endpoint (https)"
                " and support PKCE S256",
            )
        return keys.sign_in

    def exchange_code(
        self,
        provider: OidcProvider,
        endpoints: SignInEndpoints,
        *,
        client_id: str,
        client_secret: str | None,
        code: str,
        code_verifier: str,
        redirect_uri: str,
    ) -> Mapping[str, Any]:
        """RFC 6749 §4.1.3 with RFC 7636 §4.5: the token endpoint's JSON object answer.

        The same rules as the fetches (the provider's CA, timeouts, size cap, no
        redirects, JSON); the code, the verifier, the secret and the answer's tokens
        are in no message and no log. An error answer (HTTP 400 with ``error``) is
        ProviderUnavailable ``http_status``.
        """
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers: dict[str, str] = {}
        method = token_auth_method(
            endpoints.token_auth_methods, has_secret=client_secret is not None
        )
        if method == "client_secret_basic" and client_secret is not None:
            # RFC 6749 §2.3.1: both form-urlencoded before the Basic encoding.
            quote = urllib.parse.quote_plus
            pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form["client_id"] = client_id
            if method == "client_secret_post" and client_secret is not None:
                form["client_secret"] = client_secret
        answer, _ = self._request(
            provider, endpoints.token_endpoint, "token endpoint", form=form, headers=headers
        )
        if not isinstance(answer, dict):
            raise ProviderUnavailable(
                provider.arn, "not_json", "token endpoint: the answer is not a JSON object"
            )
        return answer


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
