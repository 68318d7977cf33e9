"""``GET|POST /verify``: what Kubernetes would see for a token, or precisely why it is refused.

For people and curl; no client certificate needed. The token comes in
``Authorization: Bearer <token>``, or in a JSON body ``{"token": "…",
"clusterID": "…"}`` (POST); ``clusterID`` may also be a query parameter. The
token is never accepted in the URL (URLs end up in access logs and shell
history) and never echoed back.

Without ``clusterID`` the token may be for any cluster this server serves;
with one, it must be for that cluster, which must be served (else 400).

The answer is the :class:`~authbridge.review.VerifyAnswer` JSON, HTTP 200 for
a valid and for a refused token alike: ``authenticated``, and when refused
``reason`` (e.g. "token expired at 2026-11-22T00:15:00Z", "user alice is
disabled", "no mapping rule matched arn:…") and ``reasonCode`` (the metric
label); the identity once the token verified; the Kubernetes ``username``,
``uid``, ``groups`` and ``extra`` and the mapping rule that matched when
authenticated; and what the token says (``iss``, ``aud``, ``exp``, ``kid``,
with ``verified: false`` when it did not verify). 400 without a token, 503
when the store is unavailable. Nothing is cached: this is the
tool to check a revocation or a mapping change right now.

Nothing secret-shaped is quoted back: every string of the answer, and of an
error, goes out :func:`~authbridge.audit.redact`-ed, so a value that looks
like a JWT or an access-key secret (a claim of a forged token, a session
name, a ``clusterID``) reads ``[redacted]``, as in the audit log. A token
with a claim no authbridge token can hold (a lone surrogate, a nested
object, an absurd number) is refused with the reason, never a 500
(:mod:`authbridge.tokens`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from authbridge import audit as audit_trail
from authbridge.errors import StoreUnavailable
from authbridge.review import describe_clusters, review_token, verify_answer
from authbridge.web import metrics
from authbridge.web.context import Services, services
from authbridge.web.limits import oversized, read_body
from authbridge.web.review import MAX_TOKEN_CHARS
from authbridge.web.webhook import (
    RequestFailed,
    conclude,
    current_mapping,
    error_response,
    json_response,
    store_unavailable,
)

bp = Blueprint("verify", __name__)

VERIFY_PATH: Final = "/verify"
HOW_TO_SEND: Final = (
    'no token: send "Authorization: Bearer <token>" or a JSON body {"token": "<token>"}'
)


def _bad(message: str, reason: str = metrics.BAD_REQUEST) -> RequestFailed:
    return RequestFailed(400, message, reason)


def _json_body() -> dict[str, Any]:
    """The JSON object in the body, {} when there is no body."""
    try:
        raw = read_body(request)
    except RequestEntityTooLarge:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        raise RequestFailed(
            413, f"the body is over the limit of {limit} bytes", metrics.BODY_TOO_LARGE
        ) from None
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad('the body must be JSON: {"token": "…", "clusterID": "…"}') from None
    if not isinstance(doc, dict):
        raise _bad('the body must be a JSON object: {"token": "…", "clusterID": "…"}')
    return doc


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _bad('the Authorization header must be "Bearer <token>"')
    return value.strip()


def _token_and_cluster(svc: Services) -> tuple[str, str | None]:
    problem = oversized(request)  # 413 / 431, here rather than before the view: audited
    if problem is not None and problem.code is not None:
        reason = metrics.BODY_TOO_LARGE if problem.code == 413 else metrics.BAD_REQUEST
        raise RequestFailed(problem.code, str(problem.description), reason)
    if "token" in request.args:
        raise _bad("do not put the token in the URL; send it in the Authorization header")
    body = _json_body() if request.method == "POST" else {}
    header_token = _bearer()
    body_token = body.get("token")
    if header_token is not None and body_token is not None:
        raise _bad("give the token once: in the Authorization header or in the body")
    token = header_token if header_token is not None else body_token
    if token is None or token == "":
        raise _bad(HOW_TO_SEND, metrics.NO_TOKEN)
    if not isinstance(token, str):
        raise _bad('"token" must be a string')
    if len(token) > MAX_TOKEN_CHARS:
        raise _bad(f"the token is longer than {MAX_TOKEN_CHARS} characters")

    cluster = body.get("clusterID", request.args.get("clusterID"))
    if cluster is None or cluster == "":
        return token, None
    if not isinstance(cluster, str):
        raise _bad('"clusterID" must be a string')
    if cluster not in svc.settings.cluster_ids:
        shown = "".join(c if c.isprintable() else "?" for c in cluster)[:100]
        raise _bad(
            f"cluster {shown!r} is not served here (served:"
            f" {describe_clusters(svc.settings.cluster_ids)})",
            metrics.CLUSTER_NOT_SERVED,
        )
    return token, cluster


def _redacted(value: Any) -> Any:
    """``value`` (the answer's JSON) with every string :func:`~authbridge.audit.redact`-ed."""
    if isinstance(value, str):
        return audit_trail.redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


@bp.route(VERIFY_PATH, methods=["GET", "POST"])
def verify() -> Response:
    started = time.perf_counter()
    request_id = audit_trail.new_request_id()
    svc = services()
    try:
        token, cluster = _token_and_cluster(svc)
        clusters = (cluster,) if cluster is not None else svc.settings.cluster_ids
        mapping, _version, note = current_mapping(svc)
        try:
            review = review_token(
                token,
                store=svc.store,
                keys=svc.keys(),
                policy=svc.policy,
                mapping=mapping,
                clusters=clusters,
                now=svc.clock(),
                mapping_note=note,
            )
        except StoreUnavailable:
            raise store_unavailable(request_id) from None
    except RequestFailed as failure:
        conclude(
            "verify",
            metrics.observe_verify,
            request_id=request_id,
            started=started,
            outcome="error",
            reason=failure.reason,
            detail=failure.message if failure.status != 503 else None,
        )
        return error_response(failure)
    conclude(
        "verify",
        metrics.observe_verify,
        request_id=request_id,
        started=started,
        outcome="allowed" if review.authenticated else "denied",
        reason=review.reason,
        clusters=clusters,
        review=review,
    )
    return json_response(_redacted(verify_answer(review)))
