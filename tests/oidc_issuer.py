"""A test OIDC issuer: discovery and JWKS over real https, and tokens shaped like real ones.

:class:`TestIssuer` serves ``<issuer>/.well-known/openid-configuration`` and
its JWKS (``<issuer>/openid/v1/jwks``, the kube-apiserver's path) over TLS
with a certificate from its own test CA (:attr:`TestIssuer.ca_pem`, what
``--ca-file`` gets), on a free port the operating system picks. It can
rotate its signing key (:meth:`TestIssuer.rotate`), go unreachable and come
back on the same port (:meth:`TestIssuer.go_down`, :meth:`TestIssuer.come_back`),
answer with an error status, serve a chosen ``Cache-Control``, and counts the
requests per path (:attr:`TestIssuer.hits`).

Tokens (:meth:`TestIssuer.mint`, RS256 or ES256) carry the claims of:

* :func:`kube_service_account_claims` - a kube-apiserver's bound
  service-account token (``kubectl create token`` / a projected volume):
  ``iss``, ``sub`` = ``system:serviceaccount:NS:NAME``, ``aud`` (a list),
  ``exp``/``iat``/``nbf``, ``jti``, ``kubernetes.io: {namespace,
  serviceaccount: {name, uid}, pod: {name, uid}, node: {name, uid}}``;
* :func:`github_actions_claims` - GitHub Actions' OIDC token (``sub`` =
  ``repo:ORG/REPO:ref:refs/heads/BRANCH``, ``aud`` a string, ``repository``,
  ``job_workflow_ref``, ``ref_type``, … every value a string, as GitHub's);
* :func:`gitlab_ci_claims` - GitLab CI's ``id_tokens`` (``sub`` =
  ``project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH``, ``namespace_path``,
  ``project_path``, ``ref_protected``, …).

Hostile tokens for the exchange's named tests: :meth:`TestIssuer.mint_alg_none`,
:meth:`TestIssuer.mint_hs256_with_jwks` (the JWKS text as an HMAC secret),
and ``mint(..., kid=...)`` for a ``kid`` of another provider.

Playing an IdP for the upstream sign-in (:attr:`TestIssuer.clients`, client id
to secret or None for a public client): discovery then also names
``authorization_endpoint`` and ``token_endpoint`` (S256, client_secret_basic,
client_secret_post, none); :meth:`TestIssuer.issue_code` stands for the
person's "Continue" at the IdP; ``POST <issuer>/token`` (RFC 6749 §4.1.3)
authenticates the client as registered (Basic or form, or none for a public
client), redeems each code once, checks ``redirect_uri`` exactly and the PKCE
verifier (RFC 7636 §4.6, S256), and answers an ``id_token`` with the
request's nonce, ``aud`` = the client id, ``groups`` and
``preferred_username``. :attr:`TestIssuer.misbehave` names what the token
endpoint gets wrong on purpose: ``wrong_nonce``, ``other_aud``,
``several_aud_no_azp``, ``alg_none``, ``unknown_kid``, ``expired``,
``oversized``, ``redirect``, ``no_id_token``.

And the IdP's own page for a real browser (OpenID Connect Core §3.1.2): the
person it signs in is :attr:`TestIssuer.persona` (alice: ``sub``,
``preferred_username``, ``email``, ``groups``; tests may replace it), the
redirect URIs it accepts are :attr:`TestIssuer.redirect_uris` (exact match;
empty: every request refused). ``GET <issuer>/authorize`` checks the request
(each parameter once, ``response_type=code``, a registered ``client_id`` and
``redirect_uri``, ``openid`` in ``scope``, an S256 ``code_challenge``,
``state`` and ``nonce``) and shows "Signed in at Test IdP as alice" with the
buttons "Continue as alice" and "Cancel" (no script, nothing external, every
value HTML-escaped); a bad client or redirect URI gets a 400 page and never a
redirect, any other fault a 303 to the redirect URI with
``error=invalid_request`` and the state (RFC 6749 §4.1.2.1). ``POST
<issuer>/authorize`` (the page's form: ``client_id``, ``redirect_uri``,
``state``, ``nonce``, ``code_challenge``, ``decision`` = ``continue`` or
``cancel``) answers a 303 to the redirect URI with a code from
:meth:`TestIssuer.issue_code` and the state, or ``error=access_denied``.
:attr:`TestIssuer.authorize_requests` keeps the query of each ``GET
/authorize`` so tests see what the relying party asked. The person is always
signed in: no IdP session, no CSRF token on the form (a test IdP's page, not
a model of one).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authbridge import pki

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
AUTHORIZE_PATH = "/authorize"
MAX_FORM_BYTES = 65536
MAX_FIELDS = 64
# RFC 7636 §4.2: a code challenge is 43 to 128 unreserved characters (S256: 43).
_CHALLENGE = re.compile(r"[A-Za-z0-9\-._~]{43,128}", re.ASCII)
# The default person the IdP signs in (TestIssuer.persona); issue_code's defaults.
ALICE: dict[str, Any] = {
    "sub": "00u-alice",
    "preferred_username": "alice",
    "email": "alice@example.com",
    "groups": ["platform", "dev"],
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- claim shapes --------------------------------------------------------------------------


def kube_service_account_claims(
    issuer: str,
    *,
    namespace: str = "ci",
    name: str = "deployer",
    audiences: tuple[str, ...] = ("authbridge",),
    pod: str | None = "deployer-7d4b9c-x2x9z",
    now: int | None = None,
    lifetime: int = 3600,
) -> dict[str, Any]:
    """The claims of a bound service-account token as kube-apiserver 1.30+ mints them."""
    iat = int(time.time()) if now is None else now
    kube: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": str(uuid.uuid4())},
    }
    if pod is not None:
        kube["pod"] = {"name": pod, "uid": str(uuid.uuid4())}
        kube["node"] = {"name": "worker-1", "uid": str(uuid.uuid4())}
    return {
        "aud": list(audiences),
        "exp": iat + lifetime,
        "iat": iat,
        "iss": issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": kube,
        "nbf": iat,
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }


def github_actions_claims(
    issuer: str = "https://token.actions.githubusercontent.com",
    *,
    repository: str = "octo-org/octo-repo",
    ref: str = "refs/heads/main",
    audience: str = "sts.amazonaws.com",
    environment: str | None = None,
    event_name: str = "push",
    now: int | None = None,
) -> dict[str, Any]:
    """GitHub Actions' OIDC token claims (docs: "About security hardening with OpenID Connect")."""
    iat = int(time.time()) if now is None else now
    owner = repository.split("/", 1)[0]
    ref_type = "tag" if ref.startswith("refs/tags/") else "branch"
    if environment is not None:
        sub = f"repo:{repository}:environment:{environment}"
    elif event_name == "pull_request":
        sub = f"repo:{repository}:pull_request"
    else:
        sub = f"repo:{repository}:ref:{ref}"
    claims: dict[str, Any] = {
        "jti": str(uuid.uuid4()),
        "sub": sub,
        "aud": audience,
        "ref": ref,
        "sha": "example-sha-" + "0" * 28,
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "65",
        "repository_id": "74",
        "repository_visibility": "private",
        "run_id": "2357",
        "run_number": "5",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "actor_id": "12",
        "workflow": "deploy",
        "workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
        "workflow_sha": "example-sha-" + "0" * 28,
        "head_ref": "",
        "base_ref": "",
        "event_name": event_name,
        "ref_type": ref_type,
        "ref_protected": "true",
        "job_workflow_ref": f"{repository}/.github/workflows/deploy.yml@{ref}",
        "iss": issuer,
        "nbf": iat - 5,
        "exp": iat + 300,
        "iat": iat,
    }
    if environment is not None:
        claims["environment"] = environment
    return claims


def gitlab_ci_claims(
    issuer: str = "https://gitlab.example.com",
    *,
    project_path: str = "my-group/my-project",
    ref: str = "main",
    ref_type: str = "branch",
    audience: str = "authbridge",
    environment: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """GitLab CI ``id_tokens`` claims (GitLab docs: "OIDC Authentication Using ID Tokens")."""
    iat = int(time.time()) if now is None else now
    namespace = project_path.rsplit("/", 1)[0]
    claims: dict[str, Any] = {
        "namespace_id": "72",
        "namespace_path": namespace,
        "project_id": "20",
        "project_path": project_path,
        "user_id": "1",
        "user_login": "sample-user",
        "user_email": "sample-user@example.com",
        "user_access_level": "developer",
        "pipeline_id": "574",
        "pipeline_source": "push",
        "job_id": "302",
        "ref": ref,
        "ref_type": ref_type,
        "ref_path": f"refs/{'heads' if ref_type == 'branch' else 'tags'}/{ref}",
        "ref_protected": "true",
        "runner_id": 27,
        "runner_environment": "gitlab-hosted",
        "sha": "example-sha-" + "0" * 28,
        "project_visibility": "private",
        "ci_config_ref_uri": f"gitlab.example.com/{project_path}//.gitlab-ci.yml@refs/heads/{ref}",
        "ci_config_sha": "example-sha-" + "0" * 28,
        "jti": str(uuid.uuid4()),
        "iss": issuer,
        "iat": iat,
        "nbf": iat - 5,
        "exp": iat + 300,
        "sub": f"project_path:{project_path}:ref_type:{ref_type}:ref:{ref}",
        "aud": audience,
    }
    if environment is not None:
        claims["environment"] = environment
        claims["environment_protected"] = "false"
    return claims


# -- the server ----------------------------------------------------------------------------


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = field(repr=False)

    def jwk(self) -> dict[str, Any]:
        algorithm = (
            jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        )
        out: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        out.update(kid=self.kid, use="sig", alg=self.alg)
        return out


def new_key(alg: str = "RS256") -> SigningKey:
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if alg == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    return SigningKey(kid=_b64(uuid.uuid4().bytes), alg=alg, private=private)


class TestIssuer:
    """An https OIDC issuer on 127.0.0.1 (see the module docstring). Use :func:`running_issuer`."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, path: str = "", alg: str = "RS256") -> None:
        self.path = path
        self.ca = pki.new_ca("authbridge test OIDC issuer CA")
        self._cert = pki.issue_server_cert(self.ca, hostnames=("localhost",), ips=("127.0.0.1",))
        self.keys: list[SigningKey] = [new_key(alg)]
        self.cache_control: str | None = "public, max-age=3600"
        self.status = 200  # answer every request with this status (503: down but reachable)
        self.issuer_override: str | None = None  # a discovery document naming another issuer
        self.jwks_override: bytes | None = None  # serve these bytes as the JWKS
        self.discovery_extra: dict[str, Any] = {}  # merged into the discovery document
        self.redirect_to: str | None = None  # answer every request with a 302 there
        self.hang = threading.Event()  # set: accept requests and never answer them
        self._release = threading.Event()
        self.hits: Counter[str] = Counter()
        self.clients: dict[str, str | None] = {}  # sign-in clients: id -> secret (None: public)
        self.codes: dict[str, dict[str, Any]] = {}  # issued authorization codes, one use each
        self.misbehave: set[str] = set()
        self.token_requests: list[dict[str, str]] = []  # the forms /token got (tests look)
        self.persona: dict[str, Any] = copy.deepcopy(ALICE)  # who the IdP's page signs in
        self.redirect_uris: set[str] = set()  # registered redirect URIs (empty: refuse all)
        self.authorize_requests: list[dict[str, str]] = []  # each GET /authorize's query
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._tmp: Path | None = None

    # -- addresses ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.decode("ascii")

    # -- keys and tokens ---------------------------------------------------------------
    @property
    def key(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def rotate(self, *, keep_old: bool = True, alg: str | None = None) -> SigningKey:
        """A new signing key, published at once; the old one stays in the JWKS if ``keep_old``."""
        fresh = new_key(alg or self.key.alg)
        with self._lock:
            self.keys = [*self.keys, fresh] if keep_old else [fresh]
        return fresh

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        key: SigningKey | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        signer = key or self.key
        head = {"kid": signer.kid if kid is None else kid, **(headers or {})}
        return jwt.encode(dict(claims), signer.private, algorithm=signer.alg, headers=head)

    def kube_token(self, **kw: Any) -> str:
        """A service-account token as the kube-apiserver signs it (header: alg and kid only)."""
        return self.mint(kube_service_account_claims(self.url, **kw), headers={"typ": None})

    def github_token(self, **kw: Any) -> str:
        """A GitHub Actions token (header: typ JWT, alg, kid and x5t, as GitHub's)."""
        x5t = _b64(self.key.kid.encode())[:27]
        return self.mint(github_actions_claims(self.url, **kw), headers={"typ": "JWT", "x5t": x5t})

    def gitlab_token(self, **kw: Any) -> str:
        """A GitLab CI id_token (header: kid, typ JWT, alg)."""
        return self.mint(gitlab_ci_claims(self.url, **kw), headers={"typ": "JWT"})

    def mint_alg_none(self, claims: Mapping[str, Any]) -> str:
        head = _b64(json.dumps({"alg": "none", "kid": self.key.kid}).encode())
        return f"{head}.{_b64(json.dumps(dict(claims)).encode())}."

    def mint_hs256_with_jwks(self, claims: Mapping[str, Any]) -> str:
        """Key confusion: HS256 keyed with the issuer's public JWKS text (signed by hand:
        PyJWT rightly refuses to use a JWK as an HMAC secret)."""
        secret = json.dumps(self.jwks()).encode()
        head = _b64(json.dumps({"alg": "HS256", "kid": self.key.kid, "typ": "JWT"}).encode())
        body = _b64(json.dumps(dict(claims)).encode())
        mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    # -- serving -----------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_override or self.url,
            "jwks_uri": f"{self.url}{JWKS_PATH}",
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "response_types_supported": ["code", "id_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            **self.discovery_extra,
        }

    # -- playing an IdP ----------------------------------------------------------------
    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        nonce: str,
        sub: str | None = None,
        preferred_username: str | None = None,
        groups: Iterable[str] | None = None,
        email: str | None = None,
        **more_claims: Any,
    ) -> str:
        """A one-use authorization code, as the IdP gives one after the person's Continue.

        The ID token's person claims are :attr:`persona`'s (alice unless a test
        replaced it); each one named here replaces its field, ``more_claims``
        are added (so ``issue_code(..., **persona)`` passes every field).
        """
        with self._lock:
            claims: dict[str, Any] = copy.deepcopy(self.persona)
        claims.update(copy.deepcopy(more_claims))
        named = {"sub": sub, "preferred_username": preferred_username, "email": email}
        claims.update({name: value for name, value in named.items() if value is not None})
        if groups is not None:
            claims["groups"] = list(groups)
        code = uuid.uuid4().hex
        with self._lock:
            self.codes[code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "code_challenge": code_challenge,
                "nonce": nonce,
                "claims": claims,
            }
        return code

    def authorize_page(self, query: str) -> Answer:
        """What ``GET /authorize?<query>`` answers (OpenID Connect Core §3.1.2.1)."""
        try:
            params = _parse_form(query)
        except ValueError:
            return _refusal("the query", "has more than 64 parameters; send the request once")
        with self._lock:
            self.authorize_requests.append({k: v[-1] for k, v in params.items()})
        refused = self._refused_client(params)
        if refused is not None:
            return refused
        fault = _repeated(params) or _request_fault(params)
        if fault is not None:
            return self._back(params, error="invalid_request", error_description=fault)
        one = {k: v[0] for k, v in params.items()}
        with self._lock:
            persona = dict(self.persona)
        return Answer(200, _sign_in_page(self.path + AUTHORIZE_PATH, one, persona))

    def authorize_decision(self, body: str, content_type: str | None) -> Answer:
        """What ``POST /authorize`` (the page's Continue or Cancel) answers."""
        if (content_type or "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return _refusal("Content-Type", "must be application/x-www-form-urlencoded")
        try:
            params = _parse_form(body)
        except ValueError:
            return _refusal("the form", "has more than 64 fields; submit the page's form")
        refused = self._refused_client(params)
        if refused is not None:
            return refused
        repeated = _repeated(params)
        if repeated is not None:
            return self._back(params, error="invalid_request", error_description=repeated)
        one = {k: v[0] for k, v in params.items()}
        decision = one.get("decision")
        if decision == "cancel":
            return self._back(params, error="access_denied")
        if decision != "continue":
            return _refusal("decision", "must be continue or cancel (the page's two buttons)")
        fault = _missing(one, ("state", "nonce")) or _challenge_fault(one)
        if fault is not None:
            return self._back(params, error="invalid_request", error_description=fault)
        with self._lock:
            persona = copy.deepcopy(self.persona)
        code = self.issue_code(
            client_id=one["client_id"],
            redirect_uri=one["redirect_uri"],
            code_challenge=one["code_challenge"],
            nonce=one["nonce"],
            **persona,
        )
        return self._back(params, code=code)

    def _refused_client(self, params: Mapping[str, Sequence[str]]) -> Answer | None:
        """A 400 page if client_id or redirect_uri is not one registered (never a redirect)."""
        for name in ("client_id", "redirect_uri"):
            values = params.get(name, [])
            if len(values) != 1 or not values[0]:
                return _refusal(name, "must be given once")
        if params["client_id"][0] not in self.clients:
            return _refusal("client_id", "is not registered: add it to TestIssuer.clients")
        if params["redirect_uri"][0] not in self.redirect_uris:
            return _refusal(
                "redirect_uri",
                "is not registered (exact match): add it to TestIssuer.redirect_uris",
            )
        return None

    def _back(self, params: Mapping[str, Sequence[str]], **answer: str) -> Answer:
        """A 303 to the (checked) redirect URI with ``answer`` and the state, if given once."""
        states = params.get("state", [])
        if len(states) == 1 and states[0]:
            answer["state"] = states[0]
        return Answer(303, b"", location=with_query(params["redirect_uri"][0], answer))

    def _client_ok(self, form: Mapping[str, str], authorization: str | None) -> str | None:
        """The authenticated client id, or None (RFC 6749 §2.3.1)."""
        if authorization is not None and authorization.startswith("Basic "):
            try:
                raw = base64.b64decode(authorization[6:], validate=True).decode()
            except ValueError:
                return None
            user, _, password = raw.partition(":")
            client_id = urllib.parse.unquote_plus(user)
            secret = urllib.parse.unquote_plus(password)
            expected = self.clients.get(client_id)
            return (
                client_id
                if expected is not None and hmac.compare_digest(expected, secret)
                else None
            )
        client_id = form.get("client_id", "")
        if client_id not in self.clients:
            return None
        expected = self.clients[client_id]
        if expected is None:
            return client_id if "client_secret" not in form else None
        given = form.get("client_secret")
        return client_id if given is not None and hmac.compare_digest(expected, given) else None

    def token_answer(self, form: Mapping[str, str], authorization: str | None) -> tuple[int, bytes]:
        """What ``POST /token`` answers (status, JSON body)."""
        self.token_requests.append(dict(form))
        if form.get("grant_type") != "authorization_code":
            return 400, b'{"error":"unsupported_grant_type"}'
        client_id = self._client_ok(form, authorization)
        if client_id is None:
            return 401, b'{"error":"invalid_client"}'
        with self._lock:
            issued = self.codes.pop(form.get("code", ""), None)  # one use
        if issued is None or issued["client_id"] != client_id:
            return 400, b'{"error":"invalid_grant"}'
        if issued["redirect_uri"] != form.get("redirect_uri"):
            return 400, b'{"error":"invalid_grant","error_description":"redirect_uri"}'
        verifier = form.get("code_verifier", "")
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not 43 <= len(verifier) <= 128 or not hmac.compare_digest(
            challenge, issued["code_challenge"]
        ):
            return 400, b'{"error":"invalid_grant","error_description":"pkce"}'
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": issued["nonce"],
            **issued["claims"],
        }
        bad = self.misbehave
        if "wrong_nonce" in bad:
            claims["nonce"] = "not-the-nonce"
        if "other_aud" in bad:
            claims["aud"] = "someone-else"
        if "several_aud_no_azp" in bad:
            claims["aud"] = [client_id, "someone-else"]
        if "expired" in bad:
            claims["iat"], claims["exp"] = now - 7200, now - 3600
        if "alg_none" in bad:
            id_token = self.mint_alg_none(claims)
        elif "unknown_kid" in bad:
            id_token = self.mint(claims, kid="no-such-kid")
        else:
            id_token = self.mint(claims)
        answer: dict[str, Any] = {
            "access_token": "upstream-access-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }
        if "no_id_token" in bad:
            del answer["id_token"]
        if "oversized" in bad:
            answer["padding"] = "x" * (1024 * 1024)
        return 200, json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib's name
                path = self.path
                route, _, query = path.partition("?")
                issuer.hits[path] += 1
                if issuer.hang.is_set():
                    issuer._release.wait(30)
                    return
                if issuer.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", issuer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif issuer.status != 200:
                    self._send(issuer.status, b'{"error":"unavailable"}')
                elif path == f"{issuer.path}{DISCOVERY_PATH}":
                    self._send(200, json.dumps(issuer.discovery()).encode())
                elif path == f"{issuer.path}{JWKS_PATH}":
                    with issuer._lock:
                        body = issuer.jwks_override or json.dumps(issuer.jwks()).encode()
                    self._send(200, body)
                elif route == f"{issuer.path}{AUTHORIZE_PATH}":
                    self._answer(issuer.authorize_page(query))
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:  # noqa: N802 - stdlib's name
                issuer.hits[self.path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, MAX_FORM_BYTES)).decode("ascii", "replace")
                route = self.path.partition("?")[0]
                if issuer.redirect_to is None and route == f"{issuer.path}{AUTHORIZE_PATH}":
                    if length > MAX_FORM_BYTES:
                        self._answer(_refusal("the form", "is over 64 KiB"))
                    else:
                        self._answer(
                            issuer.authorize_decision(body, self.headers.get("Content-Type"))
                        )
                    return
                if issuer.redirect_to is not None or "redirect" in issuer.misbehave:
                    self.send_response(302)
                    self.send_header("Location", issuer.redirect_to or f"{issuer.url}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != f"{issuer.path}/token":
                    self._send(404, b'{"error":"not found"}')
                    return
                form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
                status, answer = issuer.token_answer(form, self.headers.get("Authorization"))
                self._send(status, answer)

            def _answer(self, answer: Answer) -> None:
                """An authorize answer: an HTML page or a 303, never cached or framed."""
                self.send_response(answer.status)
                if answer.location is not None:
                    self.send_header("Location", answer.location)
                else:
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header(
                        "Content-Security-Policy",
                        "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                    )
                    self.send_header("X-Frame-Options", "DENY")
                self.send_header("Content-Length", str(len(answer.body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(answer.body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if issuer.cache_control is not None:
                    self.send_header("Cache-Control", issuer.cache_control)
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def start(self, tmp: Path) -> None:
        self._tmp = tmp
        self._serve()

    def _serve(self) -> None:
        assert self._tmp is not None
        cert, key = self._tmp / "issuer.crt", self._tmp / "issuer.key"
        cert.write_bytes(self._cert.cert_pem + self.ca.cert_pem)
        key.write_bytes(self._cert.key_pem)
        key.chmod(0o600)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def go_down(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`come_back`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def come_back(self) -> None:
        if self._server is None:
            self._serve()

    def stop(self) -> None:
        self._release.set()
        self.go_down()


# -- the authorize endpoint's pure parts ---------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the authorize endpoint answers: an HTML page (``location`` None) or a redirect."""

    status: int
    body: bytes
    location: str | None = None


def with_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` appended to the query it may already have (RFC 6749 §3.1.2)."""
    if not params:
        return uri
    joiner = "&" if urllib.parse.urlsplit(uri).query else ("" if uri.endswith("?") else "?")
    return f"{uri}{joiner}{urllib.parse.urlencode(params)}"


def _parse_form(text: str) -> dict[str, list[str]]:
    """A query or form body; ValueError past MAX_FIELDS fields."""
    return urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)


def _repeated(params: Mapping[str, Sequence[str]]) -> str | None:
    """RFC 6749 §3.1: a parameter sent more than once is an invalid request."""
    for name, values in params.items():
        if len(values) > 1:
            return f"{_field(name)} is given more than once"
    return None


def _field(name: str) -> str:
    """A parameter name fit for an error_description (RFC 6749 §4.1.2.1's characters)."""
    return name if re.fullmatch(r"[A-Za-z0-9_.\-]{1,40}", name) else "a parameter"


def _missing(one: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        if not one.get(name):
            return f"{name} is missing"
    return None


def _challenge_fault(one: Mapping[str, str]) -> str | None:
    challenge = one.get("code_challenge")
    if not challenge:
        return "code_challenge is missing (PKCE is required)"
    if not _CHALLENGE.fullmatch(challenge):
        return "code_challenge must be 43 to 128 base64url characters"
    return None


def _request_fault(params: Mapping[str, Sequence[str]]) -> str | None:
    """The first fault of an authorization request whose client and redirect URI are good."""
    one = {k: v[0] for k, v in params.items()}
    if one.get("response_type") != "code":
        return "response_type must be code"
    if "openid" not in one.get("scope", "").split(" "):
        return "scope must contain openid"
    fault = _challenge_fault(one)
    if fault is not None:
        return fault
    if one.get("code_challenge_method") != "S256":
        return "code_challenge_method must be S256"
    return _missing(one, ("state", "nonce"))


def _html_page(title: str, body: str) -> bytes:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n'
        f'<head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
        f"<body>\n{body}</body>\n"
        "</html>\n"
    ).encode()


def _refusal(name: str, problem: str) -> Answer:
    """The 400 page for a request the IdP cannot answer by redirect."""
    text = html.escape(f"{name} {problem}.")
    return Answer(
        400,
        _html_page(
            "Test IdP: request refused",
            f"<h1>Test IdP: request refused</h1>\n<p>{text}</p>\n",
        ),
    )


_HIDDEN = ("client_id", "redirect_uri", "state", "nonce", "code_challenge")


def _sign_in_page(action: str, one: Mapping[str, str], persona: Mapping[str, Any]) -> bytes:
    """The IdP's page: who is signed in, and Continue or Cancel for this request."""
    name = html.escape(str(persona.get("preferred_username") or persona.get("sub") or "?"))
    hidden = "".join(
        f'<input type="hidden" name="{key}" value="{html.escape(one[key])}">\n' for key in _HIDDEN
    )
    return _html_page(
        "Sign in to Test IdP",
        "<h1>Sign in to Test IdP</h1>\n"
        f"<p>Signed in at Test IdP as {name}</p>\n"
        f"<p>{html.escape(one['client_id'])} asks to sign you in.</p>\n"
        f'<form method="post" action="{html.escape(action)}">\n'
        f"{hidden}"
        f'<button name="decision" value="continue">Continue as {name}</button>\n'
        '<button name="decision" value="cancel">Cancel</button>\n'
        "</form>\n",
    )


@contextmanager
def running_issuer(tmp: Path, *, path: str = "", alg: str = "RS256") -> Iterator[TestIssuer]:
    issuer = TestIssuer(path=path, alg=alg)
    issuer.start(tmp)
    try:
        yield issuer
    finally:
        issuer.stop()


def refused_port() -> int:
    """A port nothing listens on (bound then closed: connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
