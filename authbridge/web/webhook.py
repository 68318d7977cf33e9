"""``POST /authenticate``: the kube-apiserver's token webhook (TokenReview in, TokenReview out).

Who may call
    With a client CA configured (``clientCAFile``), only a client presenting a
    certificate from it (see :mod:`authbridge.web.peer`); its O
    (organizationName) values name the clusters it speaks for, and only
    tokens whose ``aud`` names one of those clusters are accepted, so a token
    for one cluster never works on another. No certificate: 401; a
    certificate for no cluster this server serves: 403. Without a client CA
    (development), anyone may call and every configured cluster is served; a
    warning says so once per worker.

What it answers (every verdict is HTTP 200, as aws-iam-authenticator's
``tokenReviewDenyJSON`` and STYLE.md §5)
    ``authenticated: true`` with ``user`` = ``username``, ``uid``
    (``authbridge:<account>:<unique id>``), ``groups`` and ``extra`` (``arn``,
    ``canonicalArn``, ``sessionName``, ``accessKeyId``, ``principalId``, as
    aws-iam-authenticator sets them); or ``authenticated: false`` with the
    short, generic ``error`` :data:`REFUSED`. The precise reason goes to the
    audit log, the ``reason`` metric label and ``/verify``, never to the
    caller. The answer has the ``apiVersion`` and ``kind`` of the request
    (``authentication.k8s.io/v1`` or ``v1beta1``). Every TokenReview that
    parses gets a verdict, an empty or oversized ``spec.token`` included
    (``authenticated: false``, reason ``no_token`` or ``malformed``): the
    kube-apiserver caches a 200 denial, not an error, and nothing a token
    holds can turn a verdict into an error. Only a body that is not a
    TokenReview is 400, a body over ``maxRequestBytes`` (64 KiB) 413, and an
    internal failure (store down) 503 with ``Retry-After``, which the
    kube-apiserver retries (k8s.io/apiserver ``util/webhook.DefaultShouldRetry``
    retries a 5xx that suggests a delay). Answers are ASCII JSON (non-ASCII
    as ``\\u`` escapes), so encoding one cannot fail, whatever a value holds;
    an error's message is :func:`~authbridge.audit.redact`-ed (a client
    certificate's CN is the only value it quotes).

Audiences
    The token's ``aud`` must name a cluster the caller speaks for, whatever
    ``spec.audiences`` says: that binds a token to a cluster, as EKS's
    ``x-k8s-aws-id`` does. ``status.audiences`` is ``spec.audiences`` ∩ the
    token's ``aud``, and left out when that is empty. The kube-apiserver puts
    its own API audiences in ``spec.audiences`` on every request, and then
    (``WebhookTokenAuthenticator.AuthenticateToken`` in k8s.io/apiserver
    ``plugin/pkg/authenticator/token/webhook/webhook.go``)::

        gotAuds := w.implicitAuds
        if len(result.Status.Audiences) > 0 {
            gotAuds = result.Status.Audiences
        }
        auds = wantAuds.Intersect(gotAuds)
        if len(auds) == 0 {
            return nil, false, nil
        }

    so an empty answer means "valid for the API server itself" (its implicit
    audiences), while a request for another audience (which the token does not
    name) finds no intersection and is refused. Refusing tokens whose ``aud``
    is not in ``spec.audiences`` would lock every user out of a real cluster.

Cache
    Per worker, at most ``webhookCacheSize`` positive verdicts, least recently
    used first out, keyed by SHA-256(token) + ``spec.audiences`` + the caller's
    clusters. An entry lives until the token's ``exp`` or ``webhookCacheTTLSeconds``
    (default 5), whichever comes first, and every entry is dropped when the
    mapping is reloaded, the key set changes, or a review of this worker reads a
    new access version (``ReviewFacts.access_version``, read in the same
    statement as the token's facts: any access-entry or authenticationMode
    change bumps it). Refusals are never cached: they are cheap to
    recompute and must not pin a stale "no". ``webhookCacheTTLSeconds: 0``
    turns the cache off. Revocation bound of the webhook path: a revoked
    token, a disabled user, an inactive key or an access-entry change stops
    working (or takes effect) within
    ``webhookCacheTTLSeconds`` here plus the kube-apiserver's own
    ``--authentication-token-webhook-cache-ttl`` (``authbridge init``
    recommends 10 s).

Serving
    :func:`answer_review` is the whole request, Flask-free. ``create_app``
    puts :class:`FastPath` in front of the Flask app, which answers ``POST
    /authenticate`` with it directly (Flask's request machinery was a fifth of
    a review's CPU); the Flask view calls the same function, and a test holds
    the two answers equal.

Audit
    One JSON line per decision through the app's :class:`~authbridge.audit.AuditLog`
    (the ``auditLog`` setting; also on the ``authbridge.audit`` logger): time,
    event, request id, client address, caller certificate CN, clusters, audience,
    principal (ARN, canonical ARN, id, session, access key id), username, groups, outcome,
    reason and detail, cache hit. Never the token or any part of it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Mapping as Mapping_
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, NamedTuple

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from authbridge import audit as audit_trail
from authbridge.errors import StoreUnavailable, TokenMalformed
from authbridge.mapping.model import Mapping
from authbridge.review import REASON_OK, Review, review_token
from authbridge.web import errors, metrics
from authbridge.web.context import EXTENSION as CONTEXT_EXTENSION
from authbridge.web.context import Services, services
from authbridge.web.limits import audit_client, read_wsgi_body
from authbridge.web.peer import PeerCert, client_certificate
from authbridge.web.review import (
    KIND,
    MAX_TOKEN_CHARS,
    BadTokenReview,
    ReviewRequest,
    TokenReviewStatus,
    parse_request,
)

log = logging.getLogger(__name__)

bp = Blueprint("webhook", __name__)

AUTHENTICATE_PATH: Final = "/authenticate"
EXTENSION: Final = "authbridge.webhook"
REFUSED: Final = "token refused"  # status.error of every refusal: the reason is in the log
RETRY_AFTER_SECONDS: Final = 1
NO_MAPPING_NOTE: Final = "no mapping file is loaded yet (the server log says why)"
NO_CLIENT_CA_WARNING: Final = (
    "no client CA is configured (clientCAFile): any client may call /authenticate and"
    " tokens for every configured cluster are accepted; configure one outside development"
)


class RequestFailed(Exception):
    """A request answered with an error instead of a verdict; ``status`` is the HTTP code.

    ``message`` is answered, audited and logged: it is redacted here, once, for all three.
    """

    def __init__(self, status: int, message: str, reason: str) -> None:
        message = audit_trail.redact(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


# --------------------------------------------------------------------------- cache


class ReviewFields(NamedTuple):
    """What the audit line says about a reviewed token (never the token)."""

    arn: str | None = None
    canonical_arn: str | None = None
    principal_id: str | None = None
    session: str | None = None
    access_key_id: str | None = None
    username: str | None = None
    groups: tuple[str, ...] | None = None
    clusters: tuple[str, ...] = ()  # the token's audiences among the clusters asked about
    detail: str | None = None

    @classmethod
    def of(cls, review: Review) -> ReviewFields:
        ident, user = review.identity, review.user
        return cls(
            arn=ident.arn if ident else None,
            canonical_arn=ident.canonical_arn if ident else None,
            principal_id=ident.principal_id if ident else None,
            session=ident.session_name if ident else None,
            access_key_id=ident.access_key_id if ident else None,
            username=user.username if user else None,
            groups=tuple(user.groups) if user else None,
            clusters=tuple(review.clusters),
            detail=review.detail,
        )


class Verdict(NamedTuple):
    """The answer to one TokenReview: its ``status`` as JSON text, and what to audit."""

    authenticated: bool
    reason: str
    status_json: str
    fields: ReviewFields
    cache_hit: bool


# A cached verdict is a plain tuple (expiry, status JSON, fields as a plain tuple of
# strings): CPython's collector stops tracking tuples that hold only strings and
# numbers, so thousands of cached verdicts add nothing to a full collection. Cached
# as objects (dataclasses, dicts, lists), 10,000 of them made every full collection
# a 30-80 ms pause of the whole worker (bench/RESULTS.md).
_Entry = tuple[float, str, tuple[Any, ...]]
_Key = tuple[bytes, tuple[str, ...], tuple[str, ...]]
_Version = tuple[int, int, int | None]  # (mapping version, key set reloads, access version)


class VerdictCache:
    """A bounded LRU of positive verdicts that forgets everything when the mapping, the
    key set (a revoked or retired signing key ends its tokens' cached verdicts) or the
    access entries (the access version a review read) change.

    Expired entries leave as new ones come in (from the least recently used
    end), so the cache holds about ``rate × ttl`` verdicts, not ``size``.
    """

    def __init__(self, size: int, ttl: int) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[_Key, _Entry] = OrderedDict()
        self._version: _Version | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.size > 0 and self.ttl > 0

    @staticmethod
    def key(token: str, audiences: tuple[str, ...], clusters: tuple[str, ...]) -> _Key:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        return digest, tuple(sorted(set(audiences))), tuple(sorted(set(clusters)))

    def _sync(self, version: _Version) -> None:
        if self._version != version:
            self._entries.clear()
            self._version = version

    def get(self, key: _Key, *, now: float, version: _Version) -> Verdict | None:
        with self._lock:
            self._sync(version)
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, status_json, fields = entry
            if now >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
        return Verdict(True, REASON_OK, status_json, ReviewFields(*fields), True)

    def put(
        self,
        key: _Key,
        verdict: Verdict,
        *,
        expires_at: int | None,
        now: float,
        version: _Version,
    ) -> None:
        if not self.enabled or expires_at is None or not verdict.authenticated:
            return
        until = min(float(expires_at), now + self.ttl)
        if until <= now:
            return
        with self._lock:
            self._sync(version)
            self._entries[key] = (until, verdict.status_json, tuple(verdict.fields))
            self._entries.move_to_end(key)
            entries = self._entries
            while entries:
                oldest = next(iter(entries.values()))
                if len(entries) <= self.size and oldest[0] > now:
                    break
                entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class WebhookState:
    """What the webhook keeps per app (= per worker): the cache and the one-time warning."""

    cache: VerdictCache
    warned_no_client_ca: bool = False
    access_version: int | None = None  # the newest Store.access_version a review saw

    def note_access_version(self, seen: int) -> None:
        # Versions only grow; an older one (a slower thread) never winds it back.
        if self.access_version is None or seen > self.access_version:
            self.access_version = seen


def install(app: Flask, svc: Services) -> WebhookState:
    state = WebhookState(
        VerdictCache(svc.settings.webhook_cache_size, svc.settings.webhook_cache_ttl)
    )
    app.extensions[EXTENSION] = state
    return state


# --------------------------------------------------------------------------- helpers


def dumps(body: Any) -> str:
    """JSON text in ASCII: a lone surrogate in a value is an escape, not a UnicodeEncodeError."""
    return json.dumps(body, ensure_ascii=True)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def json_text_response(text: str, status: int = 200) -> Response:
    response = Response(text, status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def answer_json(api_version: str, status_json: str) -> str:
    """``json.dumps(answer(api_version, status))``, from the status already serialized."""
    head = json.dumps({"apiVersion": api_version, "kind": KIND})
    return f'{head[:-1]}, "status": {status_json}}}'


def error_response(failure: RequestFailed) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if failure.status == 503 else None
    return json_response({"error": failure.message}, failure.status, headers)


def current_mapping(svc: Services) -> tuple[Mapping, int, str | None]:
    """The mapping in force, its version, and a note when no mapping file was ever loaded.

    The holder then serves an empty mapping, which refuses everyone; the note
    says why in the refusal's reason (the holder logs the details).
    """
    holder = svc.mapping
    mapping = holder.current()
    metrics.observe_mapping(holder)
    note = None if holder.ready else NO_MAPPING_NOTE
    return mapping, holder.version, note


def audit_writer() -> audit_trail.AuditLog:
    """The audit log of the app handling the current request."""
    writer = current_app.extensions.get(audit_trail.EXTENSION)
    if not isinstance(writer, audit_trail.AuditLog):
        raise RuntimeError("the app was not built by authbridge.web.create_app")
    return writer


def audit(
    event: audit_trail.Event,
    *,
    request_id: str,
    outcome: metrics.Outcome,
    reason: str,
    caller: PeerCert | None = None,
    clusters: tuple[str, ...] = (),
    review: Review | None = None,
    fields: ReviewFields | None = None,
    detail: str | None = None,
    cache_hit: bool | None = None,
    started: float | None = None,
    environ: Mapping_[str, Any] | None = None,
    writer: audit_trail.AuditLog | None = None,
    svc: Services | None = None,
) -> None:
    """Write one audit line. Only values derived from a review, never the token.

    Outside a Flask request, ``environ`` (the WSGI environ: the client address),
    ``writer`` (the app's audit log) and ``svc`` say what the request context would.
    """
    if fields is None:
        fields = ReviewFields.of(review) if review is not None else ReviewFields()
    trusted = (svc if svc is not None else services()).settings.trusted_proxies
    client = audit_client(environ if environ is not None else request.environ, trusted)
    (writer if writer is not None else audit_writer()).write(
        audit_trail.record(
            event,
            request_id=request_id,
            client=client,
            outcome=outcome,
            reason=reason,
            caller=caller.common_name if caller is not None else None,
            clusters=fields.clusters or clusters,
            audience=fields.clusters or None,
            arn=fields.arn,
            canonical_arn=fields.canonical_arn,
            principal_id=fields.principal_id,
            session=fields.session,
            access_key_id=fields.access_key_id,
            username=fields.username,
            groups=fields.groups,
            detail=detail if detail is not None else fields.detail,
            cache_hit=cache_hit,
            started=started,
        )
    )


def served_clusters(
    svc: Services, caller: PeerCert | None, webhook: WebhookState
) -> tuple[str, ...]:
    """The clusters the caller may speak for (see the module docstring)."""
    configured = svc.settings.cluster_ids
    if svc.settings.client_ca_file is None:
        if not webhook.warned_no_client_ca:
            webhook.warned_no_client_ca = True
            log.warning(NO_CLIENT_CA_WARNING)
        return configured
    if caller is None:
        raise RequestFailed(401, "client certificate required", metrics.CLIENT_CERT_REQUIRED)
    clusters = tuple(c for c in configured if c in caller.organizations)
    if not clusters:
        name = "".join(c if c.isprintable() else "?" for c in caller.common_name)[:100]
        raise RequestFailed(
            403,
            f"client certificate {name!r} is not for a cluster this server serves",
            metrics.CLUSTER_NOT_SERVED,
        )
    return clusters


_REFUSED_JSON: Final = dumps({"authenticated": False, "error": REFUSED})


def _unreviewable(token: str) -> tuple[str, str] | None:
    """(reason, detail) for a ``spec.token`` refused before any review: empty, or too long.

    A denial like any other (HTTP 200), not a 400: the TokenReview itself is fine.
    """
    if not token:
        return metrics.NO_TOKEN, "spec.token is empty"
    if len(token) > MAX_TOKEN_CHARS:
        return TokenMalformed.code, f"spec.token is longer than {MAX_TOKEN_CHARS} characters"
    return None


def _status(review: Review, spec_audiences: tuple[str, ...]) -> TokenReviewStatus:
    if not review.authenticated or review.user is None or review.token is None:
        return {"authenticated": False, "error": REFUSED}
    user = review.user
    status: TokenReviewStatus = {
        "authenticated": True,
        "user": {
            "username": user.username,
            "uid": user.uid,
            "groups": list(user.groups),
            "extra": {k: list(v) for k, v in user.extra.items()},
        },
    }
    token_auds = set(review.token.aud)
    audiences = [a for a in dict.fromkeys(spec_audiences) if a in token_auds]
    if audiences:
        status["audiences"] = audiences
    return status


# --------------------------------------------------------------------------- view


def conclude(
    event: audit_trail.Event,
    observe: Callable[[metrics.Outcome, str, float], None],
    *,
    request_id: str,
    started: float,
    outcome: metrics.Outcome,
    reason: str,
    **fields: Any,
) -> None:
    """The last step of ``/authenticate`` and ``/verify``: count the answer, audit it."""
    observe(outcome, reason, time.perf_counter() - started)
    audit(event, request_id=request_id, outcome=outcome, reason=reason, started=started, **fields)


def store_unavailable(request_id: str) -> RequestFailed:
    """The 503 for a store that cannot be asked (logged here, with its cause)."""
    log.warning("request %s: the IAM store is unavailable", request_id, exc_info=True)
    return RequestFailed(
        503, "the IAM store is unavailable; retry shortly", metrics.STORE_UNAVAILABLE
    )


@dataclass(frozen=True)
class Webhook:
    """What answering a TokenReview needs from the app, read once when it is built."""

    svc: Services
    state: WebhookState
    audit: audit_trail.AuditLog
    max_body: int | None

    @classmethod
    def of(cls, app: Flask) -> Webhook:
        svc, webhook = app.extensions.get(CONTEXT_EXTENSION), app.extensions.get(EXTENSION)
        writer = app.extensions.get(audit_trail.EXTENSION)
        if (
            not isinstance(svc, Services)
            or not isinstance(webhook, WebhookState)
            or not isinstance(writer, audit_trail.AuditLog)
        ):
            raise RuntimeError("the app was not built by authbridge.web.create_app")
        return cls(svc, webhook, writer, app.config.get("MAX_CONTENT_LENGTH"))


Answer = tuple[int, str, list[tuple[str, str]]]  # status, JSON body, extra headers


def answer_review(hook: Webhook, environ: Mapping_[str, Any]) -> Answer:
    """``POST /authenticate``, Flask-free: the answer to the TokenReview in ``environ``.

    Both entry points call this: the WSGI fast path (:class:`FastPath`, which
    skips Flask's request machinery on the hottest route) and the Flask view.
    """
    started = time.perf_counter()
    request_id = audit_trail.new_request_id()
    svc, webhook = hook.svc, hook.state
    caller = client_certificate(environ)
    clusters: tuple[str, ...] = ()
    where = {"environ": environ, "writer": hook.audit, "svc": svc}
    try:
        clusters = served_clusters(svc, caller, webhook)
        try:
            review_request: ReviewRequest = parse_request(read_wsgi_body(environ, hook.max_body))
        except RequestEntityTooLarge:
            raise RequestFailed(
                413, f"the body is over the limit of {hook.max_body} bytes", metrics.BODY_TOO_LARGE
            ) from None
        except BadTokenReview as e:
            raise RequestFailed(400, f"not a TokenReview: {e}", metrics.BAD_REQUEST) from None
        mapping, version, note = current_mapping(svc)
        try:
            verdict = _decide(svc, webhook, review_request, clusters, mapping, version, note)
        except StoreUnavailable:
            raise store_unavailable(request_id) from None
    except RequestFailed as failure:
        conclude(
            "tokenreview",
            metrics.observe_review,
            request_id=request_id,
            started=started,
            outcome="error",
            reason=failure.reason,
            caller=caller,
            clusters=clusters,
            detail=failure.message if failure.status != 503 else None,
            **where,
        )
        headers = [("Retry-After", str(RETRY_AFTER_SECONDS))] if failure.status == 503 else []
        return failure.status, dumps({"error": failure.message}), headers
    except Exception:
        conclude(
            "tokenreview",
            metrics.observe_review,
            request_id=request_id,
            started=started,
            outcome="error",
            reason=metrics.INTERNAL,
            caller=caller,
            clusters=clusters,
            **where,
        )
        raise

    conclude(
        "tokenreview",
        metrics.observe_review,
        request_id=request_id,
        started=started,
        outcome="allowed" if verdict.authenticated else "denied",
        reason=verdict.reason,
        caller=caller,
        clusters=clusters,
        fields=verdict.fields,
        cache_hit=verdict.cache_hit,
        **where,
    )
    return 200, answer_json(review_request.api_version, verdict.status_json), []


@bp.post(AUTHENTICATE_PATH)
def authenticate() -> Response:
    """The Flask view: reached only in an app without :class:`FastPath` (create_app installs it)."""
    status, body, headers = answer_review(Webhook.of(current_app), request.environ)
    response = json_text_response(body, status)
    for name, value in headers:
        response.headers[name] = value
    return response


class FastPath:
    """WSGI middleware: ``POST /authenticate`` answered without Flask's request machinery.

    The webhook is the hottest route by far (every kubectl request whose token
    the kube-apiserver has not cached). Flask's request context, URL routing,
    before/after-request hooks and response object were about a fifth of a
    review's CPU in the server (bench/RESULTS.md), and the route needs none of
    them: the webhook checks its own caller and body size
    (``limits.SELF_CHECKING_BLUEPRINTS``). Everything else, including other
    methods on ``/authenticate`` (405 from Flask), goes to the Flask app. An
    unexpected exception is logged and answered as the app's error handler
    would (500, ``server_error``).
    """

    def __init__(self, app: Flask) -> None:
        self.hook = Webhook.of(app)
        self.next = app.wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != AUTHENTICATE_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.next(environ, start_response)
        try:
            status, body, extra = answer_review(self.hook, environ)
            data = body.encode("utf-8")
        except Exception as exc:
            log.error("request failed: %s", type(exc).__name__, exc_info=exc)
            response = errors.error_response(errors.to_wire(exc))
            return response(environ, start_response)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *extra,
        ]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [data]


def install_fast_path(app: Flask) -> None:
    app.wsgi_app = FastPath(app)  # type: ignore[method-assign]  # Flask's documented pattern


def _decide(
    svc: Services,
    webhook: WebhookState,
    req: ReviewRequest,
    clusters: tuple[str, ...],
    mapping: Mapping,
    version: int,
    note: str | None,
) -> Verdict:
    """The verdict: from the cache, or reviewed now (and cached when positive)."""
    unreviewable = _unreviewable(req.token)
    if unreviewable is not None:
        reason, detail = unreviewable
        return Verdict(False, reason, _REFUSED_JSON, ReviewFields(detail=detail), False)
    cache = webhook.cache
    now = svc.clock()
    keys = svc.keys()  # first: a reload it makes must reach the cache's version below
    # The access version is the newest a review of this worker saw (one rides along
    # with every review's store read): an access-entry change seen by one miss drops
    # every cached verdict, and without any miss a verdict lives at most the ttl.
    cached_under = (version, svc.keyring.reloads, webhook.access_version)
    key = VerdictCache.key(req.token, req.audiences, clusters) if cache.enabled else None
    if key is not None:
        hit = cache.get(key, now=now, version=cached_under)
        metrics.child(metrics.CACHE, "hit" if hit else "miss").inc()
        if hit is not None:
            return hit
    review = review_token(
        req.token,
        store=svc.store,
        keys=keys,
        policy=svc.policy,
        mapping=mapping,
        clusters=clusters,
        now=now,
        mapping_note=note,
    )
    verdict = Verdict(
        review.authenticated,
        review.reason,
        dumps(_status(review, req.audiences)),
        ReviewFields.of(review),
        False,
    )
    if review.access_version is not None:
        webhook.note_access_version(review.access_version)
    if key is not None:
        reviewed_under = (version, cached_under[1], review.access_version)
        cache.put(key, verdict, expires_at=review.expires_at, now=now, version=reviewed_under)
    return verdict
