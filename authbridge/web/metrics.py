"""Prometheus metrics, and ``GET /metrics`` that serves them.

Every metric lives in :data:`REGISTRY`, a registry of this module, not the
process-wide default one, so nothing a library registers leaks into what
authbridge exposes. Label values come from small fixed sets: ``outcome`` is
one of :data:`OUTCOMES`; ``reason`` is a token error code
(:mod:`authbridge.errors`, e.g. ``expired``), a mapping refusal
(``not_mapped``), ``ok``, or one of the request-level reasons below; ``error``
an RFC 6749 §5.2 code; ``operation`` a method of the store protocol; ``kid``
one of the few published signing keys; ``provider`` the ARN of an OIDC provider an
administrator registered (at most 100 per account). Never a principal, a cluster name from
a request or anything else a caller controls.

=============================================  ==============================================
metric                                         labels
=============================================  ==============================================
authbridge_tokenreview_total                   outcome, reason
authbridge_tokenreview_duration_seconds        outcome (histogram, one sample per request)
authbridge_tokenreview_cache_total             result = hit | miss
authbridge_verify_total                        outcome, reason
authbridge_verify_duration_seconds             outcome (histogram)
authbridge_tokens_issued_total                 grant = client_credentials | token_exchange
authbridge_token_endpoint_failures_total       grant (… | other), error (RFC 6749 §5.2 code)
authbridge_introspection_total                 result = active | inactive | refused | error
authbridge_revocation_total                    result = revoked | not_revocable | refused
                                               | error
authbridge_mapping_reloads_total               result = success | failure
authbridge_store_operation_duration_seconds    operation (histogram)
authbridge_store_errors_total                  operation
authbridge_oidc_provider_fetches_total         provider (a registered provider's ARN),
                                               outcome = ok | a ProviderUnavailable reason
authbridge_mapping_info                        digest (gauge, 1: the mapping in force)
authbridge_mapping_age_seconds                 (gauge)
authbridge_mapping_last_reload_failed          (gauge, 1 while serving the last good mapping)
authbridge_signing_keys                        state = pending | active | retiring | retired
authbridge_signing_key_age_seconds             kid, state (published keys only)
=============================================  ==============================================

Histograms take no ``reason``: a latency does not depend on why a token was
refused, and a reason label would multiply every bucket series by twenty.

Several workers (``authbridge serve``)
    gunicorn runs each request in one of several processes, so the counters
    and histograms above live in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
    multiprocess mode, set up by :mod:`authbridge.web.server`) and a scrape
    answered by any worker sums every worker's files, the files of workers
    that have exited included (their counts happened). The last five rows are
    not stored: they are computed when scraped, by :class:`StateCollector`,
    from the scraping worker's own mapping holder and key ring. Every worker
    follows the same mapping file and ``keys/`` directory within a second, so
    any worker's view is the replica's view; computed this way they need no
    ``multiprocess_mode`` and never leave a stale series behind (a gauge of
    digests set on reload would keep an old digest per worker forever, as
    multiprocess mode cannot remove a label set). There are no stored gauges.

Mapping reloads are counted per worker (each worker reloads the file itself):
with two workers, one edit of the mapping counts two successes. The count
starts with the load at a worker's start.

Store metrics come from :class:`TimedStore`, which ``create_app`` wraps around
the store it is given: every call of a store-protocol method is timed; an
error is a call that raised anything but a regular answer (not found, wrong
credentials, a conflict, invalid input), e.g. ``StoreUnavailable``.

``/metrics`` needs no credentials: it holds counts, durations, the mapping's
hash and key ids, nothing secret; deploy/networkpolicy.yaml lets only
Prometheus (and the kube-apiserver) reach the port.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from authbridge.errors import (
    InputError,
    InvalidCredentials,
    SchemaTooNew,
    StoreError,
    StoreUnavailable,
)
from authbridge.keys import KeyState
from authbridge.mapping.holder import MappingHolder
from authbridge.oidc_upstream import FETCH_OUTCOMES
from authbridge.store.base import Store
from authbridge.web.context import Services, services

__all__ = [
    "CACHE",
    "METRICS_PATH",
    "MULTIPROC_ENV",
    "OUTCOMES",
    "REGISTRY",
    "REQUESTS",
    "REVIEW_SECONDS",
    "VERIFY_REQUESTS",
    "Outcome",
    "StateCollector",
    "TimedStore",
    "bp",
    "enable_multiprocess",
    "initialize_series",
    "instrument_store",
    "observe_mapping",
    "observe_review",
    "observe_verify",
]

Outcome = Literal["allowed", "denied", "error"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("allowed", "denied", "error")
Grant = Literal[
    "client_credentials",
    "token_exchange",
    "device_code",
    "authorization_code",
    "refresh_token",
    "web_identity",
    "other",
]

# Request-level reasons (besides token error codes and "not_mapped"/"ok").
BAD_REQUEST: Final = "bad_request"  # the body is not a TokenReview (400)
BODY_TOO_LARGE: Final = "body_too_large"  # 413
CLIENT_CERT_REQUIRED: Final = "client_cert_required"  # 401
CLUSTER_NOT_SERVED: Final = "cluster_not_served"  # 403 (webhook) / 400 (/verify)
NO_TOKEN: Final = "no_token"  # noqa: S105 - a label: no token (/verify: 400; webhook: a denial)
STORE_UNAVAILABLE: Final = "store_unavailable"  # 503
INTERNAL: Final = "internal"  # 500

METRICS_PATH: Final = "/metrics"
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# A TokenReview is a few store reads and one signature check: milliseconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One store call: a fraction of a millisecond on SQLite, a round trip on PostgreSQL.
_STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5)


def _counter(name: str, documentation: str, labels: list[str]) -> Counter:
    """A counter in :data:`REGISTRY`, never prometheus_client's process-wide default registry."""
    return Counter(name, documentation, labels, registry=REGISTRY)


def _histogram(
    name: str, documentation: str, labels: list[str], buckets: tuple[float, ...]
) -> Histogram:
    """A histogram in :data:`REGISTRY`, with the buckets its durations fall in."""
    return Histogram(name, documentation, labels, buckets=buckets, registry=REGISTRY)


REVIEW_SECONDS: Final = _histogram(
    "authbridge_tokenreview_duration_seconds",
    "Time to answer a TokenReview on /authenticate, by outcome.",
    ["outcome"],
    _BUCKETS,
)
REQUESTS: Final = _counter(
    "authbridge_tokenreview_total",
    "TokenReview requests on /authenticate, by outcome and reason.",
    ["outcome", "reason"],
)
CACHE: Final = _counter(
    "authbridge_tokenreview_cache_total",
    "Lookups in the per-worker TokenReview verdict cache.",
    ["result"],
)
VERIFY_REQUESTS: Final = _counter(
    "authbridge_verify_total",
    "Requests to /verify, by outcome and reason.",
    ["outcome", "reason"],
)
VERIFY_SECONDS: Final = _histogram(
    "authbridge_verify_duration_seconds",
    "Time to answer a request to /verify, by outcome.",
    ["outcome"],
    _BUCKETS,
)
TOKENS_ISSUED: Final = _counter(
    "authbridge_tokens_issued_total",
    "Tokens issued by /oauth2/token, by grant.",
    ["grant"],
)
TOKEN_FAILURES: Final = _counter(
    "authbridge_token_endpoint_failures_total",
    "Requests to /oauth2/token answered with an error, by grant and RFC 6749 error code.",
    ["grant", "error"],
)
INTROSPECTIONS: Final = _counter(
    "authbridge_introspection_total",
    "Requests to /oauth2/introspect: active or inactive token, refused request, or error.",
    ["result"],
)
REVOCATIONS: Final = _counter(
    "authbridge_revocation_total",
    "Requests to /oauth2/revoke: token revoked, nothing to revoke, refused request, or error.",
    ["result"],
)
MAPPING_RELOADS: Final = _counter(
    "authbridge_mapping_reloads_total",
    "Mapping file loads (a new mapping in force) and failures (refused, unreadable,"
    " missing), counted by each worker.",
    ["result"],
)
STORE_SECONDS: Final = _histogram(
    "authbridge_store_operation_duration_seconds",
    "Time of each call to the IAM store, by operation.",
    ["operation"],
    _STORE_BUCKETS,
)
STORE_ERRORS: Final = _counter(
    "authbridge_store_errors_total",
    "Calls to the IAM store that failed (unavailable, or an unexpected error), by operation.",
    ["operation"],
)
OIDC_PROVIDER_FETCHES: Final = _counter(
    "authbridge_oidc_provider_fetches_total",
    "Fetches of a registered OIDC provider's discovery and JWKS, by provider ARN and outcome"
    " (ok, or why the provider could not be used: unreachable, timeout, tls, …).",
    ["provider", "outcome"],
)


_CHILDREN: dict[tuple[int, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, kept: the label sets on the request path are few and fixed."""
    key = (id(metric), values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*values)
    return found


def observe_review(outcome: Outcome, reason: str, seconds: float) -> None:
    """Count one answered TokenReview and record how long it took."""
    child(REQUESTS, outcome, reason).inc()
    child(REVIEW_SECONDS, outcome).observe(seconds)


def observe_verify(outcome: Outcome, reason: str, seconds: float | None = None) -> None:
    child(VERIFY_REQUESTS, outcome, reason).inc()
    if seconds is not None:
        child(VERIFY_SECONDS, outcome).observe(seconds)


def observe_oidc_fetch(provider_arn: str, outcome: str) -> None:
    """The ``observe`` hook of :class:`authbridge.oidc_upstream.UpstreamKeys`."""
    if outcome not in FETCH_OUTCOMES:
        outcome = "other"  # never a label value outside the documented set
    child(OIDC_PROVIDER_FETCHES, provider_arn, outcome).inc()


def initialize_series() -> None:
    """Create the series of small known label sets at 0, so they show before their first event.

    ``rate()`` needs a series to exist before it moves, and in multiprocess mode
    a family nobody has touched is not shown at all. Called by ``create_app``
    (in each worker: values must not exist in the master before it forks).
    """
    for result in ("hit", "miss"):
        CACHE.labels(result=result)
    for grant in (
        "client_credentials",
        "token_exchange",
        "device_code",
        "authorization_code",
        "refresh_token",
        "web_identity",
    ):
        TOKENS_ISSUED.labels(grant=grant)
    for result in ("active", "inactive", "refused", "error"):
        INTROSPECTIONS.labels(result=result)
    for result in ("revoked", "not_revocable", "refused", "error"):
        REVOCATIONS.labels(result=result)
    for result in ("success", "failure"):
        MAPPING_RELOADS.labels(result=result)
    for operation in sorted(_OPERATIONS):
        STORE_ERRORS.labels(operation=operation)


# --------------------------------------------------------------------------- mapping reloads


@dataclass
class _Seen:
    version: int = 0
    error: str | None = None


_SEEN: weakref.WeakKeyDictionary[MappingHolder, _Seen] = weakref.WeakKeyDictionary()
_SEEN_LOCK = threading.Lock()


def observe_mapping(holder: MappingHolder) -> None:
    """Count what ``holder`` did since it was last observed (call after ``holder.current()``).

    The holder changes only inside ``current()``/``refresh()``; comparing its
    public state (``version`` bumps on every new mapping, ``last_error`` is set
    on a failure and cleared by a good read) after each call sees every
    reload. The first observation counts the load at start.
    """
    with _SEEN_LOCK:
        seen = _SEEN.get(holder)
        if seen is None:
            seen = _SEEN[holder] = _Seen()
        version, error = holder.version, holder.last_error
        if version > seen.version:
            MAPPING_RELOADS.labels(result="success").inc(version - seen.version)
        elif seen.error is not None and error is None:
            MAPPING_RELOADS.labels(result="success").inc()  # the same good file, read again
        if error is not None and error != seen.error:
            MAPPING_RELOADS.labels(result="failure").inc()
        seen.version, seen.error = version, error


# --------------------------------------------------------------------------- the store


_OPERATIONS: Final = frozenset(n for n in dir(Store) if not n.startswith("_"))
# Regular answers of the store, not failures of it.
_ANSWERS: Final = (InvalidCredentials, InputError, StoreError)
_FAILURES: Final = (StoreUnavailable, SchemaTooNew)


def _is_failure(e: Exception) -> bool:
    return isinstance(e, _FAILURES) or not isinstance(e, _ANSWERS)


class TimedStore:
    """A store that times every call of a :class:`~authbridge.store.base.Store` method.

    Anything else (``partition``, helpers outside the protocol) passes through
    untouched, so ``operation`` is one of the protocol's method names.
    """

    def __init__(self, store: Store) -> None:
        self.inner = store

    def __repr__(self) -> str:
        return f"TimedStore({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in _OPERATIONS or not callable(attr):
            return attr
        method: Callable[..., Any] = attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            except Exception as e:
                if _is_failure(e):
                    STORE_ERRORS.labels(operation=name).inc()
                raise
            finally:
                child(STORE_SECONDS, name).observe(time.perf_counter() - started)

        return timed


def instrument_store(store: Store) -> Store:
    """``store`` behind a :class:`TimedStore` (once: a timed store is returned as is)."""
    if isinstance(store, TimedStore):
        return cast(Store, store)
    return cast(Store, TimedStore(store))


# --------------------------------------------------------------------------- at scrape time


class StateCollector:
    """The mapping in force and the signing keys, as the scraping worker sees them now."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        yield from self._mapping()
        yield from self._keys()

    def _mapping(self) -> Iterator[Metric]:
        holder = self.svc.mapping
        mapping = holder.current()
        observe_mapping(holder)
        info = GaugeMetricFamily(
            "authbridge_mapping_info",
            "The mapping file in force (value 1), by its sha256; absent before one loaded.",
            labels=["digest"],
        )
        if holder.ready:
            info.add_metric([mapping.digest], 1)
        yield info
        age = GaugeMetricFamily(
            "authbridge_mapping_age_seconds",
            "Seconds since the mapping in force was last read from a valid file.",
        )
        if holder.loaded_at is not None:
            # loaded_at comes from the holder's wall clock, time.time by default.
            age.add_metric([], max(0.0, time.time() - holder.loaded_at))
        yield age
        yield GaugeMetricFamily(
            "authbridge_mapping_last_reload_failed",
            "1 while the mapping file cannot be used and the last good mapping serves.",
            value=1 if holder.last_error else 0,
        )

    def _keys(self) -> Iterator[Metric]:
        now = self.svc.clock()
        keys = self.svc.keys()
        states = keys.states(now)
        count = GaugeMetricFamily(
            "authbridge_signing_keys", "Signing keys in keys/, by state.", labels=["state"]
        )
        for state in get_args(KeyState):
            count.add_metric([state], sum(1 for s in states.values() if s == state))
        yield count
        age = GaugeMetricFamily(
            "authbridge_signing_key_age_seconds",
            "Seconds since each published signing key was created, by kid and state.",
            labels=["kid", "state"],
        )
        for key in keys.keys:
            if states[key.kid] != "retired":
                age.add_metric([key.kid, states[key.kid]], max(0.0, now - key.created_at))
        yield age


class _Stored:
    """The counters and histograms of this process (one process: no multiprocess mode)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def enable_multiprocess() -> None:
    """Store metric values in ``$PROMETHEUS_MULTIPROC_DIR`` from now on (before forking workers).

    prometheus_client chooses where values live when it is first imported;
    ``authbridge serve`` has imported it (through :mod:`authbridge.web`) before
    it sets the variable, so the choice is made again here. A value is
    created per label set at its first use, in a worker; none may exist yet.
    """
    from prometheus_client import values

    if not os.environ.get(MULTIPROC_ENV):
        raise RuntimeError(f"{MULTIPROC_ENV} is not set")
    if any(family.samples for family in REGISTRY.collect()):
        raise RuntimeError("metric values were recorded before multiprocess mode was enabled")
    # prometheus_client's values module has no annotations.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def exposition(svc: Services) -> bytes:
    """Everything ``/metrics`` shows, in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        # prometheus_client leaves the collector's __init__ unannotated.
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Stored())
    registry.register(StateCollector(svc))
    return generate_latest(registry)


bp = Blueprint("metrics", __name__)


@bp.get(METRICS_PATH)
def scrape() -> Response:
    response = Response(exposition(services()), status=200, content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response
