"""``POST /mutate/pods``: the mutating admission webhook that gives pods a web identity (IRSA).

The kube-apiserver sends an ``admission.k8s.io/v1`` AdmissionReview for each
pod it creates. When the pod's ServiceAccount carries ``authbridge.dev/role-arn``
(or EKS's ``eks.amazonaws.com/role-arn``), the answer patches the pod
(JSONPatch, RFC 6902) with:

* the volume ``authbridge-token``: a projected service-account token with
  audience ``authbridge`` (the SA annotation ``authbridge.dev/audience`` or
  ``eks.amazonaws.com/audience`` overrides it) and ``expirationSeconds``
  86400 (``authbridge.dev/token-expiration`` or
  ``eks.amazonaws.com/token-expiration``, 600 to 2^31-1), path ``token``;
* in every container and init container, its mount at
  :data:`MOUNT_PATH` (read-only), and the environment
  ``AUTHBRIDGE_ROLE_ARN``, ``AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE`` and
  ``AUTHBRIDGE_ENDPOINT`` (this issuer), which ``authbridge token`` reads.

Idempotent: a pod that already has a volume named ``authbridge-token`` keeps
it as it is; a container that already mounts something at that name or path,
or already sets one of the variables, keeps its own; a pod with nothing left
to add gets no patch. Every other pod (no annotation, another operation or
resource) is ``allowed: true`` with no patch. A ServiceAccount that cannot be
read (the API server down, no permission) admits the pod unchanged with a
warning, so a broken lookup never blocks pod creation; with
``failurePolicy: Fail`` on the webhook configuration, only authbridge itself
being unreachable blocks pods (deploy/README.md weighs the two). ``dryRun``
needs no care: the webhook has no side effects (``sideEffects: None``).

Strict parsing: the body (at most ``maxRequestBytes``) must be one JSON object
``{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
"request": {"uid": …, "object": {…}, …}}`` with no member twice; anything
else is a 400 naming the field and what it must be (the kube-apiserver then
applies the failurePolicy). The ServiceAccount lookup is injected
(:class:`ServiceAccounts`; :class:`authbridge.kube.ServiceAccountAnnotations`
in a cluster), so this module never imports the kube client.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

from flask import Blueprint, Response, current_app, request

from authbridge.web.context import services
from authbridge.web.limits import oversized, read_body

log = logging.getLogger(__name__)

bp = Blueprint("mutate", __name__)

MUTATE_PATH: Final = "/mutate/pods"
EXTENSION: Final = "authbridge.mutate"
API_VERSION: Final = "admission.k8s.io/v1"
VOLUME_NAME: Final = "authbridge-token"
MOUNT_PATH: Final = "/var/run/secrets/authbridge/serviceaccount"
TOKEN_PATH: Final = "token"  # noqa: S105 - a file name
DEFAULT_AUDIENCE: Final = "authbridge"
DEFAULT_EXPIRATION: Final = 86400
MIN_EXPIRATION: Final = 600  # the kube-apiserver's minimum for a projected token
MAX_EXPIRATION: Final = 2**31 - 1
ROLE_ANNOTATIONS: Final = ("authbridge.dev/role-arn", "eks.amazonaws.com/role-arn")
AUDIENCE_ANNOTATIONS: Final = ("authbridge.dev/audience", "eks.amazonaws.com/audience")
EXPIRATION_ANNOTATIONS: Final = (
    "authbridge.dev/token-expiration",
    "eks.amazonaws.com/token-expiration",
)
_ROLE_ARN: Final = re.compile(
    r"arn:[a-z][a-z0-9-]{0,31}:iam::[0-9]{12}:role/(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}",
    re.ASCII,
)
_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", re.ASCII)
_AUDIENCE: Final = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)
_MAX_UID: Final = 128


class ServiceAccounts(Protocol):
    """Reads a ServiceAccount's annotations: None when there is no such ServiceAccount."""

    def annotations(self, namespace: str, name: str) -> Mapping[str, str] | None: ...


class BadReview(ValueError):
    """The body is not an AdmissionReview v1 this webhook can answer (400)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise BadReview(f"member {name[:40]!r} appears twice; send each member once")
        out[name] = value
    return out


def parse_review(body: bytes) -> dict[str, Any]:
    """The ``request`` of an AdmissionReview v1, checked (BadReview names what is wrong)."""
    try:
        doc = json.loads(body, object_pairs_hook=_no_duplicates)
    except BadReview:
        raise
    except (ValueError, RecursionError):
        raise BadReview("the body must be a JSON AdmissionReview") from None
    if not isinstance(doc, dict):
        raise BadReview("the body must be a JSON object (an AdmissionReview)")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        raise BadReview(
            f"apiVersion must be {API_VERSION} and kind AdmissionReview"
            " (admissionReviewVersions: [v1] in the webhook configuration)"
        )
    req = doc.get("request")
    if not isinstance(req, dict):
        raise BadReview("request must be an object")
    uid = req.get("uid")
    if not isinstance(uid, str) or not 1 <= len(uid) <= _MAX_UID or not uid.isprintable():
        raise BadReview(f"request.uid must be a string of 1 to {_MAX_UID} printable characters")
    for name in ("namespace", "operation"):
        if name in req and not isinstance(req[name], str):
            raise BadReview(f"request.{name} must be a string")
    if "object" in req and req["object"] is not None and not isinstance(req["object"], dict):
        raise BadReview("request.object must be an object")
    if "dryRun" in req and not isinstance(req["dryRun"], bool):
        raise BadReview("request.dryRun must be true or false")
    return req


def _first(annotations: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = annotations.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _expiration(raw: str | None, warnings: list[str]) -> int:
    if raw is None:
        return DEFAULT_EXPIRATION
    if raw.isascii() and raw.isdigit() and len(raw) <= 10:
        value = int(raw)
        if MIN_EXPIRATION <= value <= MAX_EXPIRATION:
            return value
    warnings.append(
        f"authbridge: token-expiration annotation must be {MIN_EXPIRATION} to {MAX_EXPIRATION}"
        f" seconds; using {DEFAULT_EXPIRATION}"
    )
    return DEFAULT_EXPIRATION


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def _container_patch(
    kind: str, index: int, container: Mapping[str, Any], env: list[dict[str, str]]
) -> list[dict[str, Any]]:
    where = f"/spec/{kind}/{index}"
    ops: list[dict[str, Any]] = []
    mounts = container.get("volumeMounts")
    mount_list = mounts if isinstance(mounts, list) else []
    has_mount = any(
        isinstance(m, dict) and (m.get("name") == VOLUME_NAME or m.get("mountPath") == MOUNT_PATH)
        for m in mount_list
    )
    if not has_mount:
        mount = {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True}
        if isinstance(mounts, list):
            ops.append({"op": "add", "path": f"{where}/volumeMounts/-", "value": mount})
        else:
            ops.append({"op": "add", "path": f"{where}/volumeMounts", "value": [mount]})
    present = container.get("env")
    present_list = present if isinstance(present, list) else []
    names = {e.get("name") for e in present_list if isinstance(e, dict)}
    missing = [e for e in env if e["name"] not in names]
    if missing and isinstance(present, list):
        ops.extend({"op": "add", "path": f"{where}/env/-", "value": e} for e in missing)
    elif missing:
        ops.append({"op": "add", "path": f"{where}/env", "value": missing})
    return ops


def pod_patch(
    pod: Mapping[str, Any], annotations: Mapping[str, str], *, endpoint: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSONPatch for ``pod`` whose ServiceAccount has ``annotations``, and warnings."""
    warnings: list[str] = []
    role = _first(annotations, ROLE_ANNOTATIONS)
    if role is None:
        return [], warnings
    if not _ROLE_ARN.fullmatch(role):
        warnings.append(
            "authbridge: the ServiceAccount's role-arn annotation is not a role ARN"
            " (arn:<partition>:iam::<account>:role/<name>); the pod gets no web identity"
        )
        return [], warnings
    audience = _first(annotations, AUDIENCE_ANNOTATIONS) or DEFAULT_AUDIENCE
    if not _AUDIENCE.fullmatch(audience):
        warnings.append(
            f"authbridge: the audience annotation is not valid; using {DEFAULT_AUDIENCE}"
        )
        audience = DEFAULT_AUDIENCE
    expiration = _expiration(_first(annotations, EXPIRATION_ANNOTATIONS), warnings)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [], warnings
    ops: list[dict[str, Any]] = []
    volumes = spec.get("volumes")
    volume_list = volumes if isinstance(volumes, list) else []
    if not any(isinstance(v, dict) and v.get("name") == VOLUME_NAME for v in volume_list):
        volume = {
            "name": VOLUME_NAME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": audience,
                            "expirationSeconds": expiration,
                            "path": TOKEN_PATH,
                        }
                    }
                ]
            },
        }
        if isinstance(volumes, list):
            ops.append({"op": "add", "path": "/spec/volumes/-", "value": volume})
        else:
            ops.append({"op": "add", "path": "/spec/volumes", "value": [volume]})
    env = [
        {"name": "AUTHBRIDGE_ROLE_ARN", "value": role},
        {"name": "AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE", "value": f"{MOUNT_PATH}/{TOKEN_PATH}"},
        {"name": "AUTHBRIDGE_ENDPOINT", "value": endpoint},
    ]
    for kind in ("initContainers", "containers"):
        containers = spec.get(kind)
        if not isinstance(containers, list):
            continue
        for index, container in enumerate(containers):
            if isinstance(container, dict):
                ops.extend(_container_patch(_escape(kind), index, container, env))
    return ops, warnings


def review_pod(
    req: Mapping[str, Any], lookup: ServiceAccounts | None, *, endpoint: str
) -> dict[str, Any]:
    """The AdmissionReview ``response`` for a parsed ``request`` (always ``allowed``)."""
    response: dict[str, Any] = {"uid": req["uid"], "allowed": True}
    kind = req.get("kind")
    resource = req.get("resource")
    is_pod = (isinstance(kind, dict) and kind.get("kind") == "Pod" and kind.get("group") == "") or (
        isinstance(resource, dict) and resource.get("resource") == "pods"
    )
    pod = req.get("object")
    if not is_pod or req.get("operation", "CREATE") != "CREATE" or not isinstance(pod, dict):
        return response
    if req.get("subResource"):
        return response
    spec = pod.get("spec")
    metadata = pod.get("metadata")
    namespace = req.get("namespace") or (
        metadata.get("namespace") if isinstance(metadata, dict) else None
    )
    account = spec.get("serviceAccountName") if isinstance(spec, dict) else None
    account = account or "default"
    if not (
        isinstance(namespace, str)
        and _NAME.fullmatch(namespace)
        and isinstance(account, str)
        and _NAME.fullmatch(account)
    ):
        return response
    if lookup is None:
        response["warnings"] = [
            "authbridge: no ServiceAccount lookup is configured; pods get no web identity"
        ]
        return response
    try:
        annotations = lookup.annotations(namespace, account)
    except Exception as e:  # noqa: BLE001 - any failure of the lookup admits the pod unchanged
        log.warning("mutate: ServiceAccount %s/%s could not be read: %s", namespace, account, e)
        response["warnings"] = [
            f"authbridge: ServiceAccount {namespace}/{account} could not be read; the pod is"
            " admitted without web identity"
        ]
        return response
    if annotations is None:
        return response
    ops, warnings = pod_patch(pod, annotations, endpoint=endpoint)
    if warnings:
        response["warnings"] = warnings
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode("ascii")
    return response


def _answer(status: int, doc: Mapping[str, Any]) -> Response:
    return Response(json.dumps(doc), status=status, mimetype="application/json")


@bp.post(MUTATE_PATH)
def mutate_pods() -> Response:
    too_large = oversized(request)
    if too_large is not None:
        raise too_large
    if request.mimetype != "application/json":
        return _answer(415, {"error": "the body must be application/json (an AdmissionReview)"})
    try:
        req = parse_review(read_body(request))
    except BadReview as e:
        return _answer(400, {"error": str(e)})
    lookup = current_app.extensions.get(EXTENSION)
    response = review_pod(req, lookup, endpoint=services().issuer_base)
    return _answer(
        200, {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
    )
