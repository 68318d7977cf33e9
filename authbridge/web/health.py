"""Liveness and readiness probes.

``GET /healthz`` answers 200 ``ok`` while the process serves requests.
``GET /readyz`` answers 200 only when the store answers a cheap query, a
signing key is active and a mapping file has been loaded (or there is none at
all: the mapping ConfigMap is optional, and access entries alone then decide;
``"absent": true``), else 503; the JSON body lists each check. Failures name
the error class only (details go to the log), as the probe is unauthenticated.
A mapping file that became invalid after a good one was loaded keeps the
replica ready on the last good mapping (see :mod:`authbridge.mapping.holder`)
and is flagged ``last_reload_failed``.
"""

from __future__ import annotations

import logging
from typing import NotRequired, TypedDict

from flask import Blueprint, Response, json

from authbridge.errors import AuthbridgeError
from authbridge.web.context import Services, services

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


class Check(TypedDict):
    ok: bool
    error: NotRequired[str]  # the error's code or class, never its details
    schema_version: NotRequired[int]
    active_kid: NotRequired[str]
    published_keys: NotRequired[int]
    last_reload_failed: NotRequired[bool]  # serving the last good key set / mapping
    absent: NotRequired[bool]  # no mapping file: access entries alone decide
    version: NotRequired[int]  # of the mapping: bumps on every reload
    digest: NotRequired[str]  # sha256 of the mapping file in force


class Readiness(TypedDict):
    ready: bool
    checks: dict[str, Check]


def _error_name(e: Exception) -> str:
    return e.code if isinstance(e, AuthbridgeError) else type(e).__name__


def check_store(svc: Services) -> Check:
    try:
        version = svc.store.schema_version()
    except Exception as e:  # any failure means "not ready"; the log has the details
        log.warning("readiness: the store does not answer: %s", _error_name(e), exc_info=e)
        return {"ok": False, "error": _error_name(e)}
    return {"ok": True, "schema_version": version}


def check_keys(svc: Services) -> Check:
    try:
        keys = svc.keys()
        now = svc.clock()
        active = keys.signing_key(now)
        published = len(keys.published(now))
    except Exception as e:  # any failure means "not ready"; the log has the details
        log.warning("readiness: no usable signing key: %s", _error_name(e), exc_info=e)
        return {"ok": False, "error": _error_name(e)}
    check: Check = {"ok": True, "active_kid": active.kid, "published_keys": published}
    if svc.keyring.last_error:
        check["last_reload_failed"] = True
    return check


def check_mapping(svc: Services) -> Check:
    holder = svc.mapping
    mapping = holder.current()  # looks at the file again when its check interval has passed
    if not holder.ready:
        if not holder.path.exists():
            # No mapping file at all (the ConfigMap is optional): access entries alone let
            # anybody in, and the empty mapping refuses the rest. Ready, and it says so.
            return {"ok": True, "absent": True}
        return {"ok": False, "error": "MappingNotLoaded"}
    check: Check = {"ok": True, "version": holder.version, "digest": mapping.digest}
    if holder.last_error:
        check["last_reload_failed"] = True
    return check


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks = {"store": check_store(svc), "keys": check_keys(svc), "mapping": check_mapping(svc)}
    body: Readiness = {"ready": all(c["ok"] for c in checks.values()), "checks": checks}
    response = Response(
        json.dumps(body), status=200 if body["ready"] else 503, mimetype="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response
