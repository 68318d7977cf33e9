"""What a kube-apiserver needs to accept authbridge tokens, in either mode (pure).

Two ways to wire a cluster (``authbridge apiserver-config --mode webhook|jwt``):

**webhook** (``--authentication-token-webhook-config-file``): the kube-apiserver
sends every bearer token to ``POST /authenticate`` (a TokenReview), and
authbridge verifies it and maps it *now*. :func:`webhook_mode_text` shows the
flags and the webhook kubeconfig of each kube-apiserver ``authbridge init``
made a client certificate for.

**jwt** (``--authentication-config``, structured authentication configuration):
the kube-apiserver verifies authbridge tokens itself, from the issuer's OIDC
discovery and JWKS, and reads the user from claims the issuer put in the token
at mint time (``embedKubernetesClaims``: ``k8s_username``, ``k8s_groups``,
``k8s_uid``, computed by the same mapping code the webhook runs).
:func:`authentication_configuration` is that ``AuthenticationConfiguration``.
A token without those claims (the setting off, or a user the mapping does not
map: such a user still gets a token, the ``subject_token`` of AssumeRole; an
unmapped role session is refused at the token endpoint) is refused by its
``claimValidationRules``, with a message saying why, as the webhook would.

================================  =====================  ==============================
                                  webhook                jwt
================================  =====================  ==============================
revocation, disabled user,        within the cache TTLs  no: the token works until it
inactive key                      (15 s by default)      expires (15 min by default)
mapping change                    next request           tokens minted after it
IAM group membership              read per request       frozen at mint time
authbridge down                   new requests fail      tokens keep working until exp
                                  (after the cache)
kube-apiserver needs              a kubeconfig + mTLS    https reach to the issuer
                                  client certificate     (discovery + JWKS) and its CA
Kubernetes                        any                    v1: 1.34+, v1beta1: 1.30+
================================  =====================  ==============================

The document's fields and rules come from k8s.io/apiserver
``pkg/apis/apiserver/{v1,v1beta1}/types.go`` (``AuthenticationConfiguration``,
``JWTAuthenticator``, ``Issuer``, ``ClaimValidationRule``, ``ClaimMappings``,
``PrefixedClaimOrExpression``, ``ClaimOrExpression``, ``ExtraMapping``,
``UserValidationRule``) and ``pkg/apis/apiserver/validation/validation.go``:

* ``issuer.url`` https, no user info, query or fragment; not the kube-apiserver's
  ``--service-account-issuer`` (``DisallowedIssuers``; not checkable from here);
* ``issuer.audiences`` non-empty, no empty or repeated entry; ``audienceMatchPolicy``
  ``MatchAny`` (required with several audiences, allowed with one);
* ``issuer.certificateAuthority``: PEM certificates, inline (not a path);
* ``claimMappings.username`` / ``groups``: with ``claim``, ``prefix`` must be
  present (``""`` allowed) and ``expression`` absent; ``uid`` has no prefix;
* ``extra[].key``: a lowercase domain-prefixed path (``IsDomainPrefixedPath``),
  not under ``kubernetes.io`` / ``k8s.io``, unique; ``valueExpression`` required.
  A value that is ``""``, ``[]`` or null leaves the key out, so optional claims
  map through ``has(claims.x) ? claims.x : ''``;
* ``claimValidationRules[].expression`` must give a bool; ``message`` only with
  an expression. CEL sees the token's claims as ``claims`` (a map).

The apiserver validates nothing beyond this about usernames: the ``system:``
prefix is kept out by the mapping (reserved prefixes need
``allowReservedPrefixes``), and optionally by ``userValidationRules``
(``forbid_system_prefix``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from authbridge.bootstrap import (
    RECOMMENDED_WEBHOOK_CACHE_TTL,
    WEBHOOK_KUBECONFIG,
    ApiserverClient,
    InitReport,
)
from authbridge.errors import InputError
from authbridge.mapping.model import KubeIdentity

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_VERSION",
    "EXTRA_MAPPINGS",
    "GROUPS_CLAIM",
    "KIND",
    "KUBE_CLAIMS",
    "MIN_KUBERNETES",
    "UID_CLAIM",
    "USERNAME_CLAIM",
    "authentication_configuration",
    "client_from_kubeconfig",
    "jwt_mode_notes",
    "kube_claims",
    "render_yaml",
    "webhook_mode_doc",
    "webhook_mode_text",
]

KIND: Final = "AuthenticationConfiguration"
API_VERSIONS: Final[dict[str, str]] = {
    "v1": "apiserver.config.k8s.io/v1",
    "v1beta1": "apiserver.config.k8s.io/v1beta1",
}
DEFAULT_API_VERSION: Final = API_VERSIONS["v1"]
# The first Kubernetes release whose kube-apiserver reads each version (v1: the
# feature's GA; v1beta1: its beta, on by default). 1.29 had only v1alpha1 behind a gate.
MIN_KUBERNETES: Final[dict[str, str]] = {
    API_VERSIONS["v1"]: "1.34",
    API_VERSIONS["v1beta1"]: "1.30",
}

# The claims the issuer adds with embedKubernetesClaims, and the mappings that read them.
USERNAME_CLAIM: Final = "k8s_username"
GROUPS_CLAIM: Final = "k8s_groups"
UID_CLAIM: Final = "k8s_uid"
KUBE_CLAIMS: Final = (USERNAME_CLAIM, GROUPS_CLAIM, UID_CLAIM)
EXTRA_DOMAIN: Final = "authbridge.dev"
# extra key -> CEL: the webhook's five extra values (arn, canonicalArn, principalId,
# sessionName, accessKeyId) under domain-prefixed keys, as the apiserver requires.
EXTRA_MAPPINGS: Final[tuple[tuple[str, str], ...]] = (
    (f"{EXTRA_DOMAIN}/arn", "claims.arn"),
    (f"{EXTRA_DOMAIN}/canonical-arn", "claims.sub"),
    (f"{EXTRA_DOMAIN}/principal-id", "claims.principal_id"),
    (
        f"{EXTRA_DOMAIN}/session-name",
        "has(claims.session_name) ? claims.session_name : ''",
    ),
    (
        f"{EXTRA_DOMAIN}/access-key-id",
        "has(claims.access_key_id) ? claims.access_key_id : ''",
    ),
)
MATCH_ANY: Final = "MatchAny"
NO_CLAIMS_MESSAGE: Final = (
    "the authbridge token names no Kubernetes user (no k8s_username claim): the server runs"
    " without embedKubernetesClaims: true, or its mapping maps no user for this principal"
    " and cluster (authbridge verify says why)"
)
SYSTEM_PREFIX_RULES: Final[tuple[tuple[str, str], ...]] = (
    ("!user.username.startsWith('system:')", "authbridge usernames may not start with system:"),
    (
        "user.groups.all(g, !g.startsWith('system:'))",
        "authbridge groups may not start with system:",
    ),
)
MAX_CA_BYTES: Final = 1024 * 1024


# --------------------------------------------------------------------------- claims


def kube_claims(user: KubeIdentity) -> dict[str, object]:
    """The claims naming ``user`` in a token, for the kube-apiserver's ``claimMappings``."""
    return {
        USERNAME_CLAIM: user.username,
        GROUPS_CLAIM: list(user.groups),
        UID_CLAIM: user.uid,
    }


# --------------------------------------------------------------------------- jwt mode


def _check_issuer(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        raise InputError(
            "issuer",
            f"{issuer[:200]} is not an https:// URL; the kube-apiserver only accepts https issuers",
            hint="serve authbridge over TLS and set issuer to its https:// URL",
        )
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise InputError("issuer", "must have no user info, query or fragment")


def _check_audiences(audiences: Sequence[str]) -> list[str]:
    if isinstance(audiences, str) or not audiences:
        raise InputError("audiences", "at least one cluster id is required")
    out: list[str] = []
    for audience in audiences:
        if not isinstance(audience, str) or not audience:
            raise InputError("audiences", "every cluster id must be a non-empty string")
        if audience in out:
            raise InputError("audiences", f"{audience[:100]} is given twice")
        out.append(audience)
    return out


def _ca_text(ca_pem: bytes) -> str:
    """The CA bundle as the PEM text ``certificateAuthority`` holds; refused unless it parses."""
    if len(ca_pem) > MAX_CA_BYTES:
        raise InputError("certificateAuthority", f"the CA bundle is over {MAX_CA_BYTES} bytes")
    try:
        text = ca_pem.decode("ascii")
        certificates = x509.load_pem_x509_certificates(ca_pem)
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(
            "certificateAuthority",
            "the CA file is not PEM certificates",
            hint="pass the CA that signed the issuer's serving certificate (keys/tls/ca.crt)",
        ) from e
    if not certificates:
        raise InputError("certificateAuthority", "the CA file holds no certificate")
    return text


def authentication_configuration(
    *,
    issuer: str,
    ca_pem: bytes,
    audiences: Sequence[str],
    api_version: str = DEFAULT_API_VERSION,
    forbid_system_prefix: bool = False,
) -> dict[str, Any]:
    """The ``AuthenticationConfiguration`` that makes a kube-apiserver accept authbridge tokens.

    One JWT authenticator: ``issuer`` (byte for byte the ``iss`` of every
    token), the issuer's TLS CA inline, ``audiences`` = the cluster ids whose
    tokens this kube-apiserver accepts. Usernames, groups and uid come from
    the ``k8s_*`` claims unprefixed (the mapping already chose them); extra
    carries the identity under ``authbridge.dev/`` keys. A token without
    ``k8s_username`` (minted with ``embedKubernetesClaims`` off) is refused
    with a message saying so. Raises InputError for a value the kube-apiserver
    would refuse.
    """
    if api_version not in MIN_KUBERNETES:
        raise InputError(
            "api-version", f"must be one of {', '.join(MIN_KUBERNETES)}, got {api_version[:100]}"
        )
    _check_issuer(issuer)
    authenticator: dict[str, Any] = {
        "issuer": {
            "url": issuer,
            "certificateAuthority": _ca_text(ca_pem),
            "audiences": _check_audiences(audiences),
            "audienceMatchPolicy": MATCH_ANY,
        },
        "claimValidationRules": [
            {"expression": f"has(claims.{USERNAME_CLAIM})", "message": NO_CLAIMS_MESSAGE},
        ],
        "claimMappings": {
            "username": {"claim": USERNAME_CLAIM, "prefix": ""},
            "groups": {"claim": GROUPS_CLAIM, "prefix": ""},
            "uid": {"claim": UID_CLAIM},
            "extra": [{"key": key, "valueExpression": cel} for key, cel in EXTRA_MAPPINGS],
        },
    }
    if forbid_system_prefix:
        authenticator["userValidationRules"] = [
            {"expression": cel, "message": message} for cel, message in SYSTEM_PREFIX_RULES
        ]
    return {"apiVersion": api_version, "kind": KIND, "jwt": [authenticator]}


def jwt_mode_notes(
    *,
    api_version: str,
    default_lifetime: int,
    max_user_lifetime: int,
    config_path: str = "/etc/kubernetes/authbridge/authentication-config.yaml",
) -> list[str]:
    """What to do with the document and what JWT mode cannot do, one line each (for comments)."""
    minimum = MIN_KUBERNETES.get(api_version, "?")
    return [
        "AuthenticationConfiguration for authbridge tokens (JWT mode):"
        " `authbridge apiserver-config --mode jwt`.",
        f"kube-apiserver flag: --authentication-config={config_path}",
        f"  {api_version} needs Kubernetes {minimum}+ (--api-version v1beta1: 1.30+).",
        "  Not together with any --oidc-* flag; the issuer URL must differ from",
        "  --service-account-issuer. The kube-apiserver re-reads the file when it changes.",
        "The kube-apiserver fetches the issuer's /.well-known/openid-configuration and JWKS",
        "  itself: the issuer must be reachable from every control plane over https.",
        "The authbridge server must run with embedKubernetesClaims: true",
        "  (AUTHBRIDGE_EMBED_KUBERNETES_CLAIMS=1): tokens then carry the mapped user in k8s_*",
        "  claims. A token without them (setting off, or a user the mapping does not map) is",
        "  refused, as the webhook would refuse it.",
        "What JWT mode cannot do (webhook mode can):",
        "  - revocation: a revoked token, a disabled user or an inactive access key works",
        f"    until the token expires: its lifetime, by default {default_lifetime // 60} min"
        f" (users may ask for up",
        f"    to {max_user_lifetime // 60} min, roles up to their maximum session duration);",
        "  - mapping changes apply only to tokens minted after them;",
        "  - IAM group membership is frozen in the token when it is minted.",
    ]


class _Dumper(yaml.SafeDumper):
    """safe_dump with multi-line strings (the PEM CA) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_yaml(doc: Mapping[str, Any], notes: Sequence[str] = ()) -> str:
    """``doc`` as block YAML, ``notes`` as ``#`` comment lines before it."""
    header = "".join(f"# {line}".rstrip() + "\n" for line in notes)
    body = yaml.dump(dict(doc), Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return header + body


# --------------------------------------------------------------------------- webhook mode

_KUBECONFIG_NAME = re.compile(r"webhook(?:-([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))?\.kubeconfig")


def client_from_kubeconfig(file_name: str, text: str | bytes) -> ApiserverClient:
    """The kube-apiserver a webhook kubeconfig written by ``authbridge init`` is for.

    ``file_name`` is ``webhook.kubeconfig`` or ``webhook-<name>.kubeconfig``;
    the client certificate inside names the kube-apiserver (CN) and its
    cluster id (O), as ``init`` made it.
    """
    named = _KUBECONFIG_NAME.fullmatch(file_name)
    problem = InputError(
        "kubeconfig",
        f"{file_name[:200]} is not a webhook kubeconfig written by authbridge init",
        hint="remake it with `authbridge init --force`",
    )
    if named is None:
        raise problem
    try:
        doc = yaml.safe_load(text)
        user = doc["users"][0]["user"]
        cert = x509.load_pem_x509_certificate(
            base64.b64decode(user["client-certificate-data"], validate=True)
        )
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError, binascii.Error) as e:
        raise problem from e
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not names or not orgs:
        raise problem
    name = str(names[0].value)
    stem = "apiserver-client" if file_name == WEBHOOK_KUBECONFIG else f"apiserver-{named[1]}"
    return ApiserverClient(name, str(orgs[0].value), stem, file_name)


def webhook_mode_doc(report: InitReport) -> dict[str, Any]:
    """Webhook mode as JSON: each kube-apiserver, its kubeconfig and its flags."""
    return {
        "Mode": "webhook",
        "Issuer": report.issuer,
        "ApiserverClients": [
            {
                "Name": c.name,
                "ClusterId": c.cluster_id,
                "Kubeconfig": str(report.directory / c.kubeconfig_name),
                "ControlPlanePath": c.control_plane_path,
                "ApiserverFlags": report.apiserver_flags(c),
            }
            for c in report.clients
        ],
    }


def webhook_mode_text(report: InitReport) -> str:
    """Webhook mode for people: what it does, then each kube-apiserver's kubeconfig and flags."""
    lines = [
        "Webhook mode: the kube-apiserver asks authbridge about every token (POST /authenticate,"
        " mutual TLS), so revocation, disabled users and mapping changes apply within the cache"
        f" TTLs (webhookCacheTTLSeconds + the kube-apiserver's {RECOMMENDED_WEBHOOK_CACHE_TTL}).",
        "",
    ]
    for c in report.clients:
        lines += [
            f"Cluster {c.cluster_id}, kube-apiserver {c.name}: copy"
            f" {report.directory / c.kubeconfig_name} (here) to {c.control_plane_path} on its"
            " control plane (a read-only hostPath mount) and add:",
            *(f"  {flag}" for flag in report.apiserver_flags(c)),
            "",
        ]
    return "\n".join(lines).rstrip("\n")
