"""The TokenReview wire format (``authentication.k8s.io/v1`` and ``v1beta1``): types and parsing.

What the kube-apiserver sends (``WebhookTokenAuthenticator.AuthenticateToken``
in k8s.io/apiserver ``plugin/pkg/authenticator/token/webhook/webhook.go``)::

    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
     "metadata": {"creationTimestamp": null},
     "spec": {"token": "<bearer token>", "audiences": ["https://kubernetes.default.svc"]},
     "status": {"user": {}}}

and what it reads back: ``status.authenticated``, ``status.user`` (``username``,
``uid``, ``groups``, ``extra`` as map of string to list of strings),
``status.audiences`` and ``status.error``. Both versions have the same shape;
the answer carries the ``apiVersion`` and ``kind`` of the request.

:func:`parse_request` is as lenient as the Kubernetes JSON decoder where that is
harmless (unknown fields, ``metadata``, ``status`` and ``audiences: null`` are
ignored) and strict where it matters: the body must be a JSON object of a
known ``apiVersion`` and ``kind: TokenReview`` whose ``spec.token`` is a
string. Anything else is a :class:`BadTokenReview` (HTTP 400): a request that
is not a TokenReview is a wiring error, not a verdict. Messages name the
field, never its value. The token's content is not judged here: an empty one,
or one over :data:`MAX_TOKEN_CHARS`, is a well-formed TokenReview whose answer
is a denial (:mod:`authbridge.web.webhook`).
"""

from __future__ import annotations

import json
from typing import Final, Literal, NotRequired, TypedDict, cast, get_args

__all__ = [
    "API_VERSIONS",
    "MAX_AUDIENCES",
    "MAX_AUDIENCE_LENGTH",
    "MAX_TOKEN_CHARS",
    "ApiVersion",
    "BadTokenReview",
    "ReviewRequest",
    "TokenReview",
    "TokenReviewRequest",
    "TokenReviewStatus",
    "UserInfo",
    "answer",
    "parse_request",
]

ApiVersion = Literal["authentication.k8s.io/v1", "authentication.k8s.io/v1beta1"]
API_VERSIONS: Final[tuple[ApiVersion, ...]] = get_args(ApiVersion)
KIND: Final = "TokenReview"
MAX_TOKEN_CHARS: Final = 16 * 1024  # a spec.token longer than this is denied unread
MAX_AUDIENCES: Final = 64  # spec.audiences entries
MAX_AUDIENCE_LENGTH: Final = 1024  # characters per audience


class BadTokenReview(ValueError):
    """The request body is not a TokenReview this webhook can answer (HTTP 400)."""


class TokenReviewSpec(TypedDict):
    token: str
    audiences: NotRequired[list[str] | None]


class TokenReviewRequest(TypedDict):
    """The request body, as the kube-apiserver sends it (fields authbridge reads)."""

    apiVersion: ApiVersion
    kind: Literal["TokenReview"]
    spec: TokenReviewSpec


class UserInfo(TypedDict):
    username: str
    uid: str
    groups: list[str]
    extra: dict[str, list[str]]


class TokenReviewStatus(TypedDict):
    """``status``: ``user`` only when authenticated; ``audiences`` only when not empty."""

    authenticated: bool
    user: NotRequired[UserInfo]
    audiences: NotRequired[list[str]]
    error: NotRequired[str]


class TokenReview(TypedDict):
    """The answer: the request's apiVersion and kind, and the verdict."""

    apiVersion: ApiVersion
    kind: Literal["TokenReview"]
    status: TokenReviewStatus


class ReviewRequest:
    """A parsed request: the version to answer in, the token, and ``spec.audiences``."""

    __slots__ = ("api_version", "audiences", "token")

    def __init__(self, api_version: ApiVersion, token: str, audiences: tuple[str, ...]) -> None:
        self.api_version = api_version
        self.token = token
        self.audiences = audiences

    def __repr__(self) -> str:  # never the token
        return f"ReviewRequest({self.api_version!r}, audiences={self.audiences!r})"


def parse_request(body: bytes) -> ReviewRequest:
    """The TokenReview in ``body``, or :class:`BadTokenReview` saying what is wrong."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise BadTokenReview("the body is not JSON") from e
    if not isinstance(doc, dict):
        raise BadTokenReview("the body is not a JSON object")
    api_version = doc.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise BadTokenReview("apiVersion must be " + " or ".join(API_VERSIONS))
    if doc.get("kind") != KIND:
        raise BadTokenReview("kind must be TokenReview")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise BadTokenReview("spec must be an object")
    token = spec.get("token")
    if not isinstance(token, str):
        raise BadTokenReview("spec.token must be a string")
    audiences = spec.get("audiences")
    if audiences is None:
        audiences = []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise BadTokenReview("spec.audiences must be a list of strings")
    if len(audiences) > MAX_AUDIENCES:
        raise BadTokenReview(f"spec.audiences has more than {MAX_AUDIENCES} entries")
    if any(len(a) > MAX_AUDIENCE_LENGTH for a in audiences):
        raise BadTokenReview(f"an entry of spec.audiences is over {MAX_AUDIENCE_LENGTH} characters")
    return ReviewRequest(cast(ApiVersion, api_version), token, tuple(audiences))


def answer(api_version: ApiVersion, status: TokenReviewStatus) -> TokenReview:
    return {"apiVersion": api_version, "kind": KIND, "status": status}
