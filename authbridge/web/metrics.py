"""Prometheus metrics of the webhook and ``/verify`` (served at ``/metrics`` in a later step).

Every metric lives in :data:`REGISTRY`, a registry of this module, not the
process-wide default one, so nothing a library registers leaks into what
authbridge exposes. Label values come from small fixed sets: ``outcome`` is
one of :data:`OUTCOMES`; ``reason`` is a token error code
(:mod:`authbridge.errors`, e.g. ``expired``), a mapping refusal
(``not_mapped``), ``ok``, or one of the request-level reasons below. Never a
principal, a cluster name from a request or anything else a caller controls.

==========================================  ===========================================
metric                                      labels
==========================================  ===========================================
authbridge_tokenreview_duration_seconds     outcome (histogram, one sample per request)
authbridge_tokenreview_total                outcome, reason
authbridge_tokenreview_cache_total          result = hit | miss
authbridge_verify_total                     outcome, reason
==========================================  ===========================================
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = [
    "CACHE",
    "OUTCOMES",
    "REGISTRY",
    "REQUESTS",
    "REVIEW_SECONDS",
    "VERIFY_REQUESTS",
    "Outcome",
    "observe_review",
    "observe_verify",
]

Outcome = Literal["allowed", "denied", "error"]
OUTCOMES: Final[tuple[Outcome, ...]] = ("allowed", "denied", "error")

# Request-level reasons (besides token error codes and "not_mapped"/"ok").
BAD_REQUEST: Final = "bad_request"  # the body is not a TokenReview (400)
BODY_TOO_LARGE: Final = "body_too_large"  # 413
CLIENT_CERT_REQUIRED: Final = "client_cert_required"  # 401
CLUSTER_NOT_SERVED: Final = "cluster_not_served"  # 403 (webhook) / 400 (/verify)
NO_TOKEN: Final = "no_token"  # noqa: S105 - a label: /verify without a token (400)
STORE_UNAVAILABLE: Final = "store_unavailable"  # 503
INTERNAL: Final = "internal"  # 500

REGISTRY: Final = CollectorRegistry(auto_describe=True)

# A TokenReview is a few store reads and one signature check: milliseconds.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REVIEW_SECONDS: Final = Histogram(
    "authbridge_tokenreview_duration_seconds",
    "Time to answer a TokenReview on /authenticate, by outcome.",
    ["outcome"],
    buckets=_BUCKETS,
    registry=REGISTRY,
)
REQUESTS: Final = Counter(
    "authbridge_tokenreview_total",
    "TokenReview requests on /authenticate, by outcome and reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
CACHE: Final = Counter(
    "authbridge_tokenreview_cache_total",
    "Lookups in the per-worker TokenReview verdict cache.",
    ["result"],
    registry=REGISTRY,
)
VERIFY_REQUESTS: Final = Counter(
    "authbridge_verify_total",
    "Requests to /verify, by outcome and reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)


def observe_review(outcome: Outcome, reason: str, seconds: float) -> None:
    """Count one answered TokenReview and record how long it took."""
    REQUESTS.labels(outcome=outcome, reason=reason).inc()
    REVIEW_SECONDS.labels(outcome=outcome).observe(seconds)


def observe_verify(outcome: Outcome, reason: str) -> None:
    VERIFY_REQUESTS.labels(outcome=outcome, reason=reason).inc()
