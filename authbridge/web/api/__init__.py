"""The admin API: ``POST /api/iam``, ``/api/access``, ``/api/keys`` with AWS-style JSON actions.

A call is ``{"Action": "CreateUser", "UserName": "alice"}``
(:mod:`authbridge.web.api.body`); its answer is the JSON ``authbridge -o json``
prints for the same verb (``{}`` where the CLI prints nothing), by
construction: both run the handlers of :mod:`authbridge.admin`. In order:

1. authentication (:mod:`authbridge.web.api.auth`): an admin-audience token
   or an access key; 401 otherwise, 429 while the address or key is out of
   failed attempts;
2. the body and the action's parameters, strictly (400 ``ValidationError``
   naming the field, ``InvalidAction`` for an action the endpoint does not
   have, 413 over the size cap);
3. authorization (:mod:`authbridge.admin.authorize`): the caller's IAM
   policies against the action's IAM action string and resource ARN, with
   the caller's condition keys; anything but ``allowed`` is 403
   ``AccessDenied`` (default deny);
4. the handler, in the caller's account.

Errors are ``{"Error": {"Code": …, "Message": …}}``:

=================================================  ======  =========================
raised                                             status  Code
=================================================  ======  =========================
InputError (params, body, names, ARNs)             400     ValidationError
body.UnknownAction                                 400     InvalidAction
MalformedPolicyDocument, InvalidTrust (a trust)     400     MalformedPolicyDocument
PasswordPolicyViolation, InvalidAuthenticationCode  400     its code
NotAuthenticated                                   401     MissingAuthenticationToken,
                                                           InvalidClientTokenId,
                                                           ExpiredToken
AccessDenied                                       403     AccessDenied
NoSuchEntity                                       404     NoSuchEntity
non-POST                                           405     MethodNotAllowed
EntityAlreadyExists / DeleteConflict /             409     its code
LimitExceeded / KeyStoreError
body too large (413), Authorization too long (431) its     ValidationError
TooManyFailedAttempts                              429     Throttling (+ Retry-After)
Throttled (no password-hashing slot freed)         429     Throttling (+ Retry-After)
StoreUnavailable                                   503     ServiceUnavailable
anything else                                      500     InternalFailure (logged)
=================================================  ======  =========================

Every answer carries ``Cache-Control: no-store``, ``Pragma: no-cache`` and
``x-amzn-RequestId`` (the request id of its audit line). Messages are
redacted (:func:`authbridge.audit.redact`) and bounded; an unexpected error
is logged with its traceback and answered with a generic message.

Audit: every call, answered or refused, writes one ``admin_call`` line
(:mod:`authbridge.audit`): the caller's ARN, unique id and source
identity, the IAM action, the target ARNs, the request id, the client
address and the outcome. Never a secret: CreateAccessKey's secret is in
its answer only (tests/test_audit_canary.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Final

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from authbridge import audit
from authbridge.admin import SURFACES
from authbridge.admin.actions import Action, Document
from authbridge.admin.authorize import AccessDenied, Authorizer, Caller, authorize
from authbridge.admin.keys import KeyPlace, configured_kek, key_place
from authbridge.admin.params import parse_args
from authbridge.errors import (
    AuthbridgeError,
    DeleteConflict,
    EntityAlreadyExists,
    InputError,
    InvalidAuthenticationCode,
    InvalidTrust,
    KeyStoreError,
    LimitExceeded,
    MalformedPolicyDocument,
    NoSuchEntity,
    PasswordPolicyViolation,
    StoreUnavailable,
    Throttled,
)
from authbridge.keys import Kek
from authbridge.store.base import Store
from authbridge.web import limits
from authbridge.web.api.auth import NotAuthenticated, authenticate
from authbridge.web.api.body import (
    ACTION_FIELD,
    MAX_BODY_BYTES,
    BodyTooLarge,
    UnknownAction,
    parse_body,
)
from authbridge.web.context import Services, services
from authbridge.web.errors import NO_STORE_HEADERS
from authbridge.web.webhook import audit_writer

log = logging.getLogger(__name__)

EXTENSION: Final = "authbridge.api"
API_PATH: Final = "/api/<any(iam, access, keys):surface>"
REQUEST_ID_HEADER: Final = "x-amzn-RequestId"
MAX_MESSAGE: Final = 1000  # characters of an error message
_NOTE: Final = "authbridge_api_note"

bp = Blueprint("api", __name__)


# --------------------------------------------------------------------------- parts


@dataclass(frozen=True)
class ApiTarget:
    """What a handler acts on for one call: the store and the caller's account."""

    store: Store
    account_id: str
    partition: str
    _svc: Services = field(repr=False)

    def key_place(self) -> KeyPlace:
        return key_place(self._svc.settings, lambda: self.store)

    def kek(self) -> Kek | None:
        return configured_kek(self._svc.settings)

    @property
    def issuer(self) -> str:
        return self._svc.settings.issuer

    def now(self) -> float:
        return self._svc.clock()


@dataclass
class _Note:
    """What this call did, for its audit line (kept in ``flask.g``)."""

    request_id: str = field(default_factory=audit.new_request_id)
    started: float = field(default_factory=time.perf_counter)
    caller: Caller | None = None
    action: str | None = None  # the IAM action string, once known
    targets: tuple[str, ...] = ()
    error: str | None = None  # the error code answered
    detail: str | None = None


def _note() -> _Note:
    note = g.get(_NOTE)
    if not isinstance(note, _Note):
        note = _Note()
        setattr(g, _NOTE, note)
    return note


def _authorizer() -> Authorizer:
    found: Authorizer = current_app.extensions[EXTENSION]
    return found


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An answer that is not a success: status, AWS error code, message, extra headers."""

    def __init__(
        self, status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _message(text: str) -> str:
    """``text`` redacted, one printable line, bounded."""
    clean = "".join(c if c.isprintable() else "?" for c in audit.redact(text))
    return clean if len(clean) <= MAX_MESSAGE else clean[: MAX_MESSAGE - 3] + "..."


_CONFLICTS: Final = (EntityAlreadyExists, DeleteConflict, LimitExceeded, KeyStoreError)


def to_api_error(exc: BaseException) -> ApiError:
    """How ``exc`` is answered (the table in the module docstring)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, NotAuthenticated):
        return ApiError(
            401, exc.code, str(exc), (("WWW-Authenticate", 'Bearer realm="authbridge"'),)
        )
    if isinstance(exc, limits.TooManyFailedAttempts):
        return ApiError(429, "Throttling", str(exc), (("Retry-After", str(exc.retry_after)),))
    if isinstance(exc, AccessDenied):
        return ApiError(403, "AccessDenied", str(exc))
    if isinstance(exc, UnknownAction):
        return ApiError(400, "InvalidAction", str(exc))
    if isinstance(exc, MalformedPolicyDocument | InvalidTrust):
        return ApiError(400, "MalformedPolicyDocument", str(exc))
    if isinstance(exc, PasswordPolicyViolation | InvalidAuthenticationCode):
        return ApiError(400, exc.code, str(exc))
    if isinstance(exc, InputError):
        return ApiError(400, "ValidationError", str(exc))
    if isinstance(exc, Throttled):
        return ApiError(429, "Throttling", str(exc), (("Retry-After", "1"),))
    if isinstance(exc, NoSuchEntity):
        return ApiError(404, "NoSuchEntity", str(exc))
    if isinstance(exc, _CONFLICTS):
        return ApiError(409, exc.code, str(exc))
    if isinstance(exc, StoreUnavailable):
        return ApiError(503, "ServiceUnavailable", "the IAM store is unavailable; retry shortly")
    if isinstance(exc, BodyTooLarge):
        return ApiError(413, "ValidationError", f"body: {exc}")
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
        if exc.code == 413:
            limit = min(
                MAX_BODY_BYTES, current_app.config.get("MAX_CONTENT_LENGTH") or MAX_BODY_BYTES
            )
            return ApiError(
                413, "ValidationError", f"body: the request body is over the limit of {limit} bytes"
            )
        if exc.code == 431:
            return ApiError(431, "ValidationError", f"Authorization: {exc.description}")
        return ApiError(exc.code, (exc.name or "Error").replace(" ", ""), str(exc.description))
    return ApiError(500, "InternalFailure", "internal error; the server log has the details")


def _respond(status: int, body: Document, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=True), status=status, mimetype="application/json"
    )
    for name, value in (*NO_STORE_HEADERS, *headers):
        response.headers[name] = value
    response.headers[REQUEST_ID_HEADER] = _note().request_id
    return response


@bp.errorhandler(Exception)
def _handle(exc: Exception) -> Response:
    error = to_api_error(exc)
    note = _note()
    note.error = error.code
    if error.status >= 500:
        log.error("admin API call %s failed: %s", note.request_id, type(exc).__name__, exc_info=exc)
        note.detail = type(exc).__name__
    else:
        note.detail = _message(error.message)
        if isinstance(exc, AuthbridgeError):
            log.info("admin API call %s refused: %s: %s", note.request_id, error.code, note.detail)
    body = {"Error": {"Code": error.code, "Message": _message(error.message)}}
    return _respond(error.status, body, error.headers)


# --------------------------------------------------------------------------- the view


def _action(surface: str, name: str) -> Action:
    actions = SURFACES[surface]  # type: ignore[index]  # the route allows only the three
    found = actions.get(name)
    if found is None:
        # The name is not repeated: it is whatever the caller sent.
        raise UnknownAction(
            ACTION_FIELD,
            f"names no action of /api/{surface}",
            hint="its actions: " + ", ".join(actions),
        )
    return found


@bp.route(API_PATH, methods=["POST", "GET", "PUT", "PATCH", "DELETE"])
def call(surface: str) -> Response:
    if request.method != "POST":
        raise ApiError(
            405, "MethodNotAllowed", "the admin API takes POST only", (("Allow", "POST"),)
        )
    svc = services()
    note = _note()
    caller = note.caller = authenticate(svc, request.headers.get("Authorization"))
    limit = min(MAX_BODY_BYTES, current_app.config.get("MAX_CONTENT_LENGTH") or MAX_BODY_BYTES)
    raw = limits.read_body(request)
    body = parse_body(raw, request.headers.get("Content-Type"), limit=limit)
    action = _action(surface, body[ACTION_FIELD])
    note.action = action.iam_action
    args = parse_args(action.params, body, ignore=frozenset({ACTION_FIELD}))
    target = ApiTarget(svc.store, caller.account_id, svc.store.partition, svc)
    note.targets = action.resources(target, args)
    authorize(
        _authorizer(),
        caller,
        action.iam_action,
        note.targets[0],
        source_ip=limits.audit_client(request.environ, svc.settings.trusted_proxies),
        now=svc.clock(),
    )
    doc = action.run(target, args)
    return _respond(200, doc if doc is not None else {})


# --------------------------------------------------------------------------- audit


def _account(response: Response) -> Response:
    """After every answer of the API: one audit line, success or refusal."""
    note = _note()
    svc = services()
    status = response.status_code
    outcome: audit.Outcome = "allowed" if status < 400 else "error" if status >= 500 else "denied"
    caller = note.caller
    audit_writer().write(
        audit.record(
            "admin_call",
            request_id=note.request_id,
            client=limits.audit_client(request.environ, svc.settings.trusted_proxies),
            outcome=outcome,
            reason=note.error or "ok",
            caller=caller.arn if caller is not None else None,
            arn=caller.arn if caller is not None else None,
            canonical_arn=caller.canonical_arn if caller is not None else None,
            principal_id=caller.principal_id if caller is not None else None,
            session=caller.session_name if caller is not None else None,
            access_key_id=caller.access_key_id if caller is not None else None,
            source_identity=caller.source_identity if caller is not None else None,
            action=note.action,
            targets=note.targets,
            jti=caller.jti if caller is not None else None,
            detail=note.detail,
            started=note.started,
        )
    )
    return response


def _start() -> None:
    _note()  # starts the clock and draws the request id


bp.before_request(_start)
bp.after_request(_account)


def install(app: Flask, authorizer: Authorizer) -> None:
    app.extensions[EXTENSION] = authorizer
