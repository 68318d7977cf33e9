"""The kube-apiserver configuration authbridge writes (authbridge.apiserver_config), field by field.

The reference is k8s.io/apiserver, not our own code:

- field names (JSON tags) of ``AuthenticationConfiguration`` and everything
  under it, from ``staging/src/k8s.io/apiserver/pkg/apis/apiserver/v1/types.go``
  and ``…/v1beta1/types.go`` (the same fields in both): :data:`FIELDS`. A key
  not listed there is an unknown field, which the kube-apiserver refuses;
- the rules of ``…/pkg/apis/apiserver/validation/validation.go``
  (``validateIssuerURL``, ``validateAudiences``, ``validateCertificateAuthority``,
  ``validateClaimValidationRules``, ``validatePrefixClaimOrExpression``,
  ``validateClaimMappings`` with ``IsDomainPrefixedPath`` and
  ``isKubernetesDomainPrefix``, ``validateUserValidationRules``), re-implemented
  independently in :func:`check_authentication_configuration`;
- the semantics of the JWT authenticator (``plugin/pkg/authenticator/token/oidc``):
  ``prefix + claim`` for username and groups, extra values ``""`` left out,
  claim validation rules must hold. :func:`apiserver_user` plays that part for
  the expressions authbridge writes (there is no CEL library here, so
  :func:`cel_problems` checks the expressions' syntax and that they only read
  claims an authbridge token carries, and the evaluator knows exactly the
  forms authbridge uses and fails on any other).

Covers: v1 and v1beta1 documents; prefix present and ``""``; the CA inline,
byte for byte the CA file; audiences and ``MatchAny``; extra keys valid and
unreserved; optional claims guarded by ``has()``; the user a kube-apiserver
would see equals the mapping's (the webhook's) user for a user token and a role
session; a token without k8s claims refused with the message saying why;
``userValidationRules`` only on request; every value the kube-apiserver would
refuse is refused here first; the YAML round-trips with its notes as comments;
the notes name the flag and the limits of JWT mode; webhook kubeconfigs are
read back to their kube-apiserver and cluster; the webhook-mode text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from authbridge import pki
from authbridge.apiserver_config import (
    API_VERSIONS,
    EXTRA_MAPPINGS,
    KUBE_CLAIMS,
    authentication_configuration,
    client_from_kubeconfig,
    jwt_mode_notes,
    kube_claims,
    render_yaml,
    webhook_mode_doc,
    webhook_mode_text,
)
from authbridge.bootstrap import InitReport, webhook_kubeconfig
from authbridge.errors import InputError
from authbridge.keys import KeySet, generate_signing_key
from authbridge.mapping import Identity, parse_mapping, resolve
from authbridge.tokens import REGISTERED_CLAIMS, Principal, mint

ISSUER = "https://authbridge.example.com"
NOW = 1_700_000_000
ACCOUNT = "111122223333"

# JSON field names per type, from pkg/apis/apiserver/{v1,v1beta1}/types.go.
FIELDS: dict[str, frozenset[str]] = {
    "AuthenticationConfiguration": frozenset({"apiVersion", "kind", "jwt", "anonymous"}),
    "JWTAuthenticator": frozenset(
        {"issuer", "claimValidationRules", "claimMappings", "userValidationRules"}
    ),
    "Issuer": frozenset(
        {
            "url",
            "discoveryURL",
            "certificateAuthority",
            "audiences",
            "audienceMatchPolicy",
            "egressSelectorType",
        }
    ),
    "ClaimValidationRule": frozenset({"claim", "requiredValue", "expression", "message"}),
    "ClaimMappings": frozenset({"username", "groups", "uid", "extra"}),
    "PrefixedClaimOrExpression": frozenset({"claim", "prefix", "expression"}),
    "ClaimOrExpression": frozenset({"claim", "expression"}),
    "ExtraMapping": frozenset({"key", "valueExpression"}),
    "UserValidationRule": frozenset({"expression", "message"}),
}
# Fields without omitempty / required by validation.go.
REQUIRED: dict[str, frozenset[str]] = {
    "AuthenticationConfiguration": frozenset({"apiVersion", "kind", "jwt"}),
    "JWTAuthenticator": frozenset({"issuer", "claimMappings"}),
    "Issuer": frozenset({"url", "audiences"}),
    "ClaimMappings": frozenset({"username"}),
    "ExtraMapping": frozenset({"key", "valueExpression"}),
    "UserValidationRule": frozenset({"expression"}),
}
# utilvalidation.IsDNS1123Subdomain and the HTTP path of IsDomainPrefixedPath.
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
HTTP_PATH = re.compile(r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+")

# Claims an authbridge token carries (tokens.mint), and which of them only sometimes.
TOKEN_CLAIMS = frozenset(REGISTERED_CLAIMS) | frozenset(KUBE_CLAIMS)
OPTIONAL_CLAIMS = frozenset({"session_name", "access_key_id"})

MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/team/alice
    username: alice
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: arn:aws:iam::{ACCOUNT}:group/devs
    groups: ["authbridge:oncall"]
"""
USER = Principal(
    arn=f"arn:aws:iam::{ACCOUNT}:user/team/alice",
    canonical_arn=f"arn:aws:iam::{ACCOUNT}:user/team/alice",
    account_id=ACCOUNT,
    principal_id="AIDAEXAMPLEALICE00001",
    access_key_id="AKIAEXAMPLEKEY000001",
)
ROLE_SESSION = Principal(
    arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice@example.com",
    canonical_arn=f"arn:aws:iam::{ACCOUNT}:role/platform/Admin",
    account_id=ACCOUNT,
    principal_id="AROAEXAMPLEADMIN00001:alice@example.com",
    session_name="alice@example.com",
    source_identity="AIDAEXAMPLEALICE00001",  # every role session names its source
)
# The webhook's extra keys (mapping.resolve) and the JWT mode's for the same values.
WEBHOOK_EXTRA_KEYS = {
    "authbridge.dev/arn": "arn",
    "authbridge.dev/canonical-arn": "canonicalArn",
    "authbridge.dev/principal-id": "principalId",
    "authbridge.dev/session-name": "sessionName",
    "authbridge.dev/access-key-id": "accessKeyId",
}


# --------------------------------------------------------------------------- the reference checker


def _fields(obj: Any, kind: str, path: str) -> dict[str, Any]:
    assert isinstance(obj, dict), f"{path}: {kind} must be an object"
    unknown = set(obj) - FIELDS[kind]
    assert not unknown, f"{path}: unknown {kind} field(s) {sorted(unknown)}"
    missing = REQUIRED.get(kind, frozenset()) - set(obj)
    assert not missing, f"{path}: {kind} lacks required {sorted(missing)}"
    return obj


def _prefixed(obj: Any, path: str, *, required: bool) -> None:
    m = _fields(obj, "PrefixedClaimOrExpression", path)
    claim, expression = m.get("claim", ""), m.get("expression", "")
    assert not (claim and expression), f"{path}: claim and expression can't both be set"
    if required:
        assert claim or expression, f"{path}: claim or expression is required"
    if expression:
        assert "prefix" not in m, f"{path}.prefix: may not be specified when expression is set"
        assert not cel_problems(expression, "claims"), cel_problems(expression, "claims")
    if claim:
        assert "prefix" in m, f"{path}.prefix: required when claim is set (may be '')"
        assert isinstance(m["prefix"], str)


def check_authentication_configuration(doc: Any, *, api_version: str) -> None:
    """Every rule validation.go applies to what authbridge writes (asserts; see module doc)."""
    _fields(doc, "AuthenticationConfiguration", "")
    assert doc["apiVersion"] == api_version
    assert doc["kind"] == "AuthenticationConfiguration"
    assert isinstance(doc["jwt"], list) and 1 <= len(doc["jwt"]) <= 64
    for i, jwt in enumerate(doc["jwt"]):
        path = f"jwt[{i}]"
        _fields(jwt, "JWTAuthenticator", path)
        issuer = _fields(jwt["issuer"], "Issuer", f"{path}.issuer")
        url = issuer["url"]
        assert re.fullmatch(r"https://[^/?#@\s]+(/[^?#\s]*)?", url), f"{path}.issuer.url {url}"
        auds = issuer["audiences"]
        assert isinstance(auds, list) and auds, "audiences: at least one is required"
        assert all(isinstance(a, str) and a for a in auds)
        assert len(set(auds)) == len(auds), "audiences: duplicate"
        policy = issuer.get("audienceMatchPolicy", "")
        if len(auds) > 1:
            assert policy == "MatchAny", "audienceMatchPolicy must be MatchAny for several"
        else:
            assert policy in ("", "MatchAny")
        ca = issuer.get("certificateAuthority", "")
        assert isinstance(ca, str)
        if ca:  # validateCertificateAuthority: PEM, not a path
            try:
                assert x509.load_pem_x509_certificates(ca.encode())
            except ValueError as e:
                raise AssertionError(f"{path}.issuer.certificateAuthority: {e}") from e
        for j, rule in enumerate(jwt.get("claimValidationRules", [])):
            rpath = f"{path}.claimValidationRules[{j}]"
            _fields(rule, "ClaimValidationRule", rpath)
            claim, expression = rule.get("claim", ""), rule.get("expression", "")
            assert bool(claim) != bool(expression), f"{rpath}: exactly one of claim/expression"
            if claim:
                assert "message" not in rule
            else:
                assert "requiredValue" not in rule
                assert not cel_problems(expression, "claims"), cel_problems(expression, "claims")
        mappings = _fields(jwt["claimMappings"], "ClaimMappings", f"{path}.claimMappings")
        _prefixed(mappings["username"], f"{path}.claimMappings.username", required=True)
        if "groups" in mappings:
            _prefixed(mappings["groups"], f"{path}.claimMappings.groups", required=False)
        if "uid" in mappings:
            uid = _fields(mappings["uid"], "ClaimOrExpression", f"{path}.claimMappings.uid")
            assert not (uid.get("claim") and uid.get("expression"))
        seen: set[str] = set()
        for j, extra in enumerate(mappings.get("extra", [])):
            epath = f"{path}.claimMappings.extra[{j}]"
            _fields(extra, "ExtraMapping", epath)
            key = extra["key"]
            assert valid_extra_key(key), f"{epath}.key {key!r}"
            assert key not in seen, f"{epath}.key duplicate"
            seen.add(key)
            assert extra["valueExpression"], f"{epath}.valueExpression required"
            problems = cel_problems(extra["valueExpression"], "claims")
            assert not problems, (epath, problems)
        for j, rule in enumerate(jwt.get("userValidationRules", [])):
            upath = f"{path}.userValidationRules[{j}]"
            _fields(rule, "UserValidationRule", upath)
            assert not cel_problems(rule["expression"], "user"), upath


def valid_extra_key(key: str) -> bool:
    """IsDomainPrefixedPath, lowercase, and not under kubernetes.io / k8s.io."""
    host, sep, rest = key.partition("/")
    if not sep or not host or not rest or key != key.lower():
        return False
    if len(host) > 253 or not DNS1123_SUBDOMAIN.fullmatch(host) or not HTTP_PATH.fullmatch(rest):
        return False
    return not any(host == d or host.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))


_CEL_TOKEN = re.compile(
    r"\s+|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[A-Za-z_][A-Za-z0-9_]*"
    r"|&&|\|\||==|!=|[()\[\],.?:!]"
)
_CEL_FUNCTIONS = {"has", "startsWith", "all", "exists", "size", "true", "false", "null"}


def cel_problems(expression: str, variable: str) -> list[str]:
    """Syntax we can check without CEL: tokens, balanced brackets, known names, known claims."""
    problems: list[str] = []
    tokens: list[str] = []
    pos = 0
    while pos < len(expression):
        m = _CEL_TOKEN.match(expression, pos)
        if m is None:
            return [f"unexpected character {expression[pos]!r} at {pos}"]
        if not m.group().isspace():
            tokens.append(m.group())
        pos = m.end()
    depth = 0
    for tok in tokens:
        if tok in ("(", "["):
            depth += 1
        elif tok in (")", "]"):
            depth -= 1
        if depth < 0:
            problems.append("unbalanced brackets")
            break
    if depth > 0:
        problems.append("unbalanced brackets")
    if tokens.count("?") != tokens.count(":"):
        problems.append("a ? without its : (or the other way round)")
    bound: set[str] = set()
    for i, tok in enumerate(tokens):
        if not re.fullmatch(r"[A-Za-z_]\w*", tok):
            continue
        after_dot = i > 0 and tokens[i - 1] == "."
        if after_dot:
            if tokens[i - 2] == "claims" and tok not in TOKEN_CLAIMS:
                problems.append(f"claims.{tok}: authbridge tokens have no such claim")
            continue
        if 0 < i < len(tokens) - 1 and tokens[i + 1] == "," and tokens[i - 1] == "(":
            bound.add(tok)  # a comprehension variable: all(g, …)
        if tok not in {variable, *_CEL_FUNCTIONS, *bound}:
            problems.append(f"unknown name {tok}")
    if variable == "claims":
        for name in OPTIONAL_CLAIMS:
            if f"claims.{name}" in expression and f"has(claims.{name})" not in expression:
                problems.append(f"claims.{name} is not always there: guard it with has()")
    return problems


# --------------------------------------------------------------------------- a JWT authenticator


def _eval_claims(expression: str, claims: Mapping[str, Any]) -> Any:
    """The claim expressions authbridge writes, evaluated as CEL would (others: fail)."""
    if m := re.fullmatch(r"claims\.(\w+)", expression):
        if m[1] not in claims:
            raise LookupError(f"no such key: {m[1]}")  # CEL: an evaluation error
        return claims[m[1]]
    if m := re.fullmatch(r"has\(claims\.(\w+)\)", expression):
        return m[1] in claims
    if m := re.fullmatch(r"has\(claims\.(\w+)\) \? claims\.(\w+) : ''", expression):
        assert m[1] == m[2]
        return claims.get(m[1], "")
    raise AssertionError(f"teach _eval_claims this expression: {expression}")


def _eval_user(expression: str, user: Mapping[str, Any]) -> bool:
    if m := re.fullmatch(r"!user\.username\.startsWith\('([^']*)'\)", expression):
        return not str(user["username"]).startswith(m[1])
    if m := re.fullmatch(r"user\.groups\.all\((\w+), !\1\.startsWith\('([^']*)'\)\)", expression):
        return all(not g.startswith(m[2]) for g in user["groups"])
    raise AssertionError(f"teach _eval_user this expression: {expression}")


def apiserver_user(doc: Mapping[str, Any], claims: Mapping[str, Any]) -> dict[str, Any] | None:
    """The user a kube-apiserver with ``doc`` makes of a token with ``claims``; None: refused.

    Signature and lifetime are the JWT library's business and assumed good here.
    """
    for jwt in doc["jwt"]:
        issuer = jwt["issuer"]
        if claims.get("iss") != issuer["url"]:
            continue
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not set(auds) & set(issuer["audiences"]):
            return None
        try:
            for rule in jwt.get("claimValidationRules", []):
                if "claim" in rule:
                    if claims.get(rule["claim"]) != rule.get("requiredValue", ""):
                        return None
                elif _eval_claims(rule["expression"], claims) is not True:
                    return None
            m = jwt["claimMappings"]
            username = claims.get(m["username"]["claim"])
            if not isinstance(username, str) or not username:
                return None
            user: dict[str, Any] = {"username": m["username"]["prefix"] + username}
            groups = claims.get(m["groups"]["claim"], []) if "groups" in m else []
            groups = [groups] if isinstance(groups, str) else groups
            assert all(isinstance(g, str) for g in groups)
            user["groups"] = [m["groups"]["prefix"] + g for g in groups if g]
            user["uid"] = claims.get(m["uid"]["claim"], "") if "uid" in m else ""
            extra: dict[str, list[str]] = {}
            for mapping in m.get("extra", []):
                value = _eval_claims(mapping["valueExpression"], claims)
                values = [value] if isinstance(value, str) else list(value or [])
                values = [v for v in values if v]
                if values:
                    extra[mapping["key"]] = values
            user["extra"] = extra
        except LookupError:
            return None
        for rule in jwt.get("userValidationRules", []):
            if not _eval_user(rule["expression"], user):
                return None
        return user
    return None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ca_pem() -> bytes:
    return pki.new_ca().cert_pem


@pytest.fixture(scope="module")
def keys() -> KeySet:
    key = generate_signing_key("ES256", now=NOW - 1000, activates_at=NOW - 1000)
    return KeySet((key,), max_token_lifetime=43200)


def config(ca_pem: bytes, **kw: Any) -> dict[str, Any]:
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("audiences", ["prod", "staging"])
    return authentication_configuration(ca_pem=ca_pem, **kw)


# --------------------------------------------------------------------------- structure


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
def test_structure_field_by_field(ca_pem: bytes, version: str) -> None:
    api_version = API_VERSIONS[version]
    doc = config(ca_pem, api_version=api_version)
    check_authentication_configuration(doc, api_version=api_version)
    assert api_version == f"apiserver.config.k8s.io/{version}"
    assert list(doc) == ["apiVersion", "kind", "jwt"]
    (jwt,) = doc["jwt"]
    assert list(jwt) == ["issuer", "claimValidationRules", "claimMappings"]
    assert list(jwt["issuer"]) == [
        "url",
        "certificateAuthority",
        "audiences",
        "audienceMatchPolicy",
    ]
    assert jwt["issuer"]["url"] == ISSUER
    assert jwt["claimValidationRules"] == [
        {
            "expression": "has(claims.k8s_username)",
            "message": jwt["claimValidationRules"][0]["message"],
        }
    ]
    assert "embedKubernetesClaims" in jwt["claimValidationRules"][0]["message"]
    m = jwt["claimMappings"]
    assert list(m) == ["username", "groups", "uid", "extra"]
    assert m["username"] == {"claim": "k8s_username", "prefix": ""}
    assert m["groups"] == {"claim": "k8s_groups", "prefix": ""}
    assert m["uid"] == {"claim": "k8s_uid"}
    assert m["extra"] == [
        {"key": "authbridge.dev/arn", "valueExpression": "claims.arn"},
        {"key": "authbridge.dev/canonical-arn", "valueExpression": "claims.sub"},
        {"key": "authbridge.dev/principal-id", "valueExpression": "claims.principal_id"},
        {
            "key": "authbridge.dev/session-name",
            "valueExpression": "has(claims.session_name) ? claims.session_name : ''",
        },
        {
            "key": "authbridge.dev/access-key-id",
            "valueExpression": "has(claims.access_key_id) ? claims.access_key_id : ''",
        },
    ]


def test_the_checker_catches_what_the_kube_apiserver_refuses(ca_pem: bytes) -> None:
    """The reference checker is not a rubber stamp: each broken rule trips it."""
    api_version = API_VERSIONS["v1"]

    def broken(change: Any) -> None:
        doc = config(ca_pem)
        change(doc["jwt"][0])
        with pytest.raises(AssertionError):
            check_authentication_configuration(doc, api_version=api_version)

    broken(lambda j: j["claimMappings"]["username"].pop("prefix"))
    broken(lambda j: j["claimMappings"]["groups"].pop("prefix"))
    broken(lambda j: j["claimMappings"]["username"].update(expression="claims.sub"))
    broken(lambda j: j["issuer"].update(audienceMatchPolicy=""))
    broken(lambda j: j["issuer"].update(audiences=[]))
    broken(lambda j: j["issuer"].update(url="http://authbridge.example.com"))
    broken(lambda j: j["issuer"].update(certificateAuthority="/etc/ca.crt"))
    broken(lambda j: j["issuer"].update(caFile="x"))
    broken(lambda j: j["claimMappings"]["extra"][0].update(key="arn"))
    broken(lambda j: j["claimMappings"]["extra"][0].update(key="kubernetes.io/arn"))
    broken(lambda j: j["claimMappings"]["extra"][0].update(key="authbridge.dev/ARN"))
    broken(lambda j: j["claimMappings"]["extra"][1].update(key="authbridge.dev/arn"))
    broken(lambda j: j["claimMappings"]["extra"][0].update(valueExpression="claims.nope"))
    broken(lambda j: j["claimMappings"]["extra"][3].update(valueExpression="claims.session_name"))
    broken(lambda j: j["claimValidationRules"][0].update(expression="has(claims.arn"))
    broken(lambda j: j["claimValidationRules"][0].update(claim="sub"))


def test_prefix_is_present_and_empty_for_claims(ca_pem: bytes) -> None:
    m = config(ca_pem)["jwt"][0]["claimMappings"]
    for name in ("username", "groups"):
        assert "prefix" in m[name] and m[name]["prefix"] == ""
        assert "expression" not in m[name]
    assert "prefix" not in m["uid"]  # ClaimOrExpression has no prefix


def test_ca_is_inline_and_byte_for_byte_the_ca_file(ca_pem: bytes, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_pem + pki.new_ca("other").cert_pem)  # a bundle of two
    doc = config(ca_file.read_bytes())
    assert doc["jwt"][0]["issuer"]["certificateAuthority"] == ca_file.read_text()


@pytest.mark.parametrize("audiences", [["prod"], ["prod", "staging", "dev"]])
def test_audiences_and_match_any(ca_pem: bytes, audiences: list[str]) -> None:
    issuer = config(ca_pem, audiences=audiences)["jwt"][0]["issuer"]
    assert issuer["audiences"] == audiences
    assert issuer["audienceMatchPolicy"] == "MatchAny"  # required with several, valid with one


def test_extra_keys_are_valid_domain_prefixed_paths(ca_pem: bytes) -> None:
    keys = [e["key"] for e in config(ca_pem)["jwt"][0]["claimMappings"]["extra"]]
    assert keys == [k for k, _ in EXTRA_MAPPINGS]
    assert all(valid_extra_key(k) for k in keys)
    assert len(set(keys)) == len(keys)
    for bad in ("arn", "/arn", "authbridge.dev/", "Authbridge.dev/arn", "k8s.io/x", "a.k8s.io/x"):
        assert not valid_extra_key(bad), bad


def test_cel_expressions_parse_and_read_only_claims_tokens_carry(ca_pem: bytes) -> None:
    jwt = config(ca_pem, forbid_system_prefix=True)["jwt"][0]
    expressions = [r["expression"] for r in jwt["claimValidationRules"]]
    expressions += [e["valueExpression"] for e in jwt["claimMappings"]["extra"]]
    for expression in expressions:
        assert cel_problems(expression, "claims") == [], expression
    for rule in jwt["userValidationRules"]:
        assert cel_problems(rule["expression"], "user") == [], rule
    assert cel_problems("claims.nope", "claims") == [
        "claims.nope: authbridge tokens have no such claim"
    ]
    assert cel_problems("(claims.arn", "claims") == ["unbalanced brackets"]
    assert cel_problems("request.user", "claims") == ["unknown name request"]


# --------------------------------------------------------------------------- semantics


@pytest.mark.parametrize("principal", [USER, ROLE_SESSION], ids=["user", "role-session"])
def test_the_kube_apiserver_sees_the_webhooks_user(
    ca_pem: bytes, keys: KeySet, principal: Principal
) -> None:
    mapping = parse_mapping(MAPPING, "mapping.yaml")
    identity = Identity(
        arn=principal.arn,
        canonical_arn=principal.canonical_arn,
        account_id=principal.account_id,
        principal_id=principal.principal_id,
        session_name=principal.session_name,
        access_key_id=principal.access_key_id,
    )
    groups = [f"arn:aws:iam::{ACCOUNT}:group/devs"] if principal is USER else []
    webhook_user = resolve(mapping, identity, groups).user
    assert webhook_user is not None
    minted = mint(
        principal,
        keys=keys,
        issuer=ISSUER,
        audience="prod",
        now=NOW,
        extra_claims=kube_claims(webhook_user),
    )
    seen = apiserver_user(config(ca_pem), minted.claims)
    assert seen is not None
    assert seen["username"] == webhook_user.username
    assert seen["uid"] == webhook_user.uid
    assert seen["groups"] == list(webhook_user.groups)
    expected_extra = {
        key: webhook_user.extra[name]
        for key, name in WEBHOOK_EXTRA_KEYS.items()
        if webhook_user.extra[name] != [""]  # the kube-apiserver leaves empty values out
    }
    assert seen["extra"] == expected_extra
    if principal is USER:
        assert "authbridge.dev/session-name" not in seen["extra"]
        assert seen["groups"] == ["authbridge:devs", "authbridge:oncall"]
    else:
        assert "authbridge.dev/access-key-id" not in seen["extra"]
        assert seen["username"] == "admin:alice-example.com"


def test_a_token_without_k8s_claims_is_refused(ca_pem: bytes, keys: KeySet) -> None:
    minted = mint(USER, keys=keys, issuer=ISSUER, audience="prod", now=NOW)
    doc = config(ca_pem)
    assert apiserver_user(doc, minted.claims) is None
    rule = doc["jwt"][0]["claimValidationRules"][0]
    assert _eval_claims(rule["expression"], minted.claims) is False
    assert "embedKubernetesClaims" in rule["message"]


def test_a_token_for_another_audience_or_issuer_is_not_taken(ca_pem: bytes, keys: KeySet) -> None:
    claims = {"k8s_username": "alice", "k8s_groups": [], "k8s_uid": "u"}
    doc = config(ca_pem, audiences=["prod"])
    other = mint(USER, keys=keys, issuer=ISSUER, audience="staging", now=NOW, extra_claims=claims)
    assert apiserver_user(doc, other.claims) is None
    foreign = mint(USER, keys=keys, issuer=ISSUER + "/x", audience="prod", extra_claims=claims)
    assert apiserver_user(doc, foreign.claims) is None


def test_system_prefix_rules_only_on_request(ca_pem: bytes, keys: KeySet) -> None:
    assert "userValidationRules" not in config(ca_pem)["jwt"][0]
    doc = config(ca_pem, forbid_system_prefix=True)
    check_authentication_configuration(doc, api_version=API_VERSIONS["v1"])
    for claims, accepted in [
        ({"k8s_username": "alice", "k8s_groups": ["devs"], "k8s_uid": "u"}, True),
        ({"k8s_username": "system:admin", "k8s_groups": [], "k8s_uid": "u"}, False),
        ({"k8s_username": "alice", "k8s_groups": ["system:masters"], "k8s_uid": "u"}, False),
    ]:
        minted = mint(USER, keys=keys, issuer=ISSUER, audience="prod", extra_claims=claims)
        assert (apiserver_user(doc, minted.claims) is not None) is accepted, claims


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"issuer": "http://authbridge.example.com"}, "not an https:// URL"),
        ({"issuer": "https://"}, "not an https:// URL"),
        ({"issuer": "https://authbridge.example.com?x=1"}, "query"),
        ({"issuer": "https://authbridge.example.com#f"}, "fragment"),
        ({"issuer": "https://u:p@authbridge.example.com"}, "user info"),
        ({"audiences": []}, "at least one"),
        ({"audiences": ["prod", "prod"]}, "given twice"),
        ({"audiences": [""]}, "non-empty"),
        ({"audiences": "prod"}, "at least one"),
        ({"ca_pem": b"not a certificate"}, "not PEM certificates"),
        ({"ca_pem": b""}, "not PEM certificates"),
        ({"ca_pem": "é".encode()}, "not PEM certificates"),
        ({"api_version": "apiserver.config.k8s.io/v1alpha1"}, "must be one of"),
    ],
)
def test_refuses_what_the_kube_apiserver_would(
    ca_pem: bytes, kw: dict[str, Any], fragment: str
) -> None:
    kw.setdefault("ca_pem", ca_pem)
    kw.setdefault("issuer", ISSUER)
    kw.setdefault("audiences", ["prod"])
    with pytest.raises(InputError, match=re.escape(fragment)):
        authentication_configuration(**kw)


# --------------------------------------------------------------------------- rendering


def test_yaml_round_trips_with_the_notes_as_comments(ca_pem: bytes) -> None:
    doc = config(ca_pem)
    notes = jwt_mode_notes(
        api_version=doc["apiVersion"], default_lifetime=900, max_user_lifetime=3600
    )
    text = render_yaml(doc, notes)
    assert yaml.safe_load(text) == doc
    head = text.split("apiVersion:")[0].splitlines()
    assert len(head) == len(notes) and all(line.startswith("#") for line in head)
    assert "certificateAuthority: |" in text  # the PEM as a literal block, readable


def test_notes_name_the_flag_the_versions_and_the_limits() -> None:
    text = "\n".join(
        jwt_mode_notes(api_version=API_VERSIONS["v1"], default_lifetime=900, max_user_lifetime=3600)
    )
    for fragment in (
        "--authentication-config=",
        "--oidc-*",
        "--service-account-issuer",
        "1.34+",
        "v1beta1: 1.30+",
        "/.well-known/openid-configuration",
        "embedKubernetesClaims: true",
        "revocation",
        "by default 15 min",
        "60 min",
        "mapping changes apply only to tokens minted after them",
        "frozen",
    ):
        assert fragment in text, fragment
    assert "1.30+" in "\n".join(
        jwt_mode_notes(
            api_version=API_VERSIONS["v1beta1"], default_lifetime=900, max_user_lifetime=3600
        )
    )


# --------------------------------------------------------------------------- webhook mode


def _kubeconfig(name: str, cluster: str) -> str:
    ca = pki.new_ca()
    cert = pki.issue_client_cert(ca, common_name=name, organization=cluster)
    return webhook_kubeconfig(
        "https://authbridge.example.com:8443/authenticate",
        ca.cert_pem,
        cert.cert_pem,
        cert.key_pem,
        user=name,
    )


def test_webhook_kubeconfigs_name_their_kube_apiserver_and_cluster() -> None:
    client = client_from_kubeconfig("webhook-prod-cp.kubeconfig", _kubeconfig("prod-cp", "prod"))
    assert (client.name, client.cluster_id, client.stem, client.kubeconfig_name) == (
        "prod-cp",
        "prod",
        "apiserver-prod-cp",
        "webhook-prod-cp.kubeconfig",
    )
    default = client_from_kubeconfig("webhook.kubeconfig", _kubeconfig("kube-apiserver", "dev"))
    assert (default.name, default.cluster_id, default.stem) == (
        "kube-apiserver",
        "dev",
        "apiserver-client",
    )


@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        ("other.kubeconfig", None),
        ("webhook-Prod.kubeconfig", None),
        ("webhook.kubeconfig", "{}"),
        ("webhook.kubeconfig", "users: [{user: {client-certificate-data: bm90IGEgY2VydA==}}]"),
        ("webhook.kubeconfig", "users: [{user: {client-certificate-data: '!!'}}]"),
        ("webhook.kubeconfig", ": : :"),
    ],
)
def test_other_files_are_not_taken_for_webhook_kubeconfigs(
    file_name: str, text: str | None
) -> None:
    with pytest.raises(InputError, match="not a webhook kubeconfig written by authbridge init"):
        client_from_kubeconfig(file_name, text if text is not None else _kubeconfig("a", "b"))


def test_webhook_mode_text_and_doc_list_each_kube_apiserver(tmp_path: Path) -> None:
    report = InitReport(tmp_path, ISSUER, "")
    report.clients = [
        client_from_kubeconfig("webhook-prod-cp.kubeconfig", _kubeconfig("prod-cp", "prod")),
        client_from_kubeconfig("webhook-stg-cp.kubeconfig", _kubeconfig("stg-cp", "staging")),
    ]
    text = webhook_mode_text(report)
    assert text.startswith("Webhook mode:") and "revocation" in text
    for name, cluster in (("prod-cp", "prod"), ("stg-cp", "staging")):
        path = tmp_path / f"webhook-{name}.kubeconfig"
        target = f"/etc/kubernetes/authbridge/webhook-{name}.kubeconfig"
        assert f"Cluster {cluster}, kube-apiserver {name}: copy {path} (here) to {target}" in text
        assert f"  --authentication-token-webhook-config-file={target}" in text
    assert text.count("--authentication-token-webhook-version=v1") == 2
    assert text.count("--authentication-token-webhook-cache-ttl=10s") == 2
    doc = webhook_mode_doc(report)
    assert doc["Mode"] == "webhook"
    assert [c["ClusterId"] for c in doc["ApiserverClients"]] == ["prod", "staging"]
    assert doc["ApiserverClients"][0]["ApiserverFlags"] == report.apiserver_flags(report.clients[0])
