"""The test issuer's interactive authorize endpoint (tests/oidc_issuer.py), over real https.

Covers, with urllib over TLS trusting the issuer's own CA and following no
redirect (so each 303's Location is read as the browser would get it): a good
request shows the sign-in page (title, "Signed in at Test IdP as alice", the
form's hidden fields, Continue and Cancel, no script, no external resource)
and is recorded in ``authorize_requests``; a hostile state and a hostile
persona name come back HTML-escaped and the state round-trips unchanged; an
unknown client, an unregistered redirect URI (also one that only starts like
a registered one), none registered, a missing or repeated client_id or
redirect_uri get a 400 page and no redirect; each protocol fault (missing or
malformed PKCE challenge, plain method, another response_type, no openid
scope, no nonce, no state, a repeated parameter) a 303 with
``error=invalid_request`` and the state; Continue gives a code the token
endpoint redeems (PKCE verifier) once for an ID token with the persona and the
nonce; Cancel gives ``access_denied`` and no code; a redirect URI with a query
keeps it; a replaced persona is the one signed in; the form's own faults (bad
client, unknown decision, not form-encoded) get a 400 page. Hypothesis: any
query gives a page, a 303 or a 400, never another exception.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oidc_issuer import TestIssuer, running_issuer

CLIENT = "authbridge-signin"
REDIRECT = "https://auth.example.test/login/upstream/callback"
NONCE = "nonce-0123456789abcdef0123456789abcdef"
STATE = "state-0123456789abcdef0123456789abcdef"


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TestIssuer]:
    with running_issuer(tmp_path) as running:
        running.clients = {CLIENT: None}
        running.redirect_uris = {REDIRECT}
        yield running


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


VERIFIER, CHALLENGE = _pkce()


def _request(**changes: str | None) -> dict[str, str]:
    """A good authorization request as authbridge sends it; a None change drops the field."""
    query = {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "openid profile email groups",
        "state": STATE,
        "nonce": NONCE,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    query.update({k: v for k, v in changes.items() if v is not None})
    return {k: v for k, v in query.items() if changes.get(k, "") is not None}


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: str

    @property
    def location(self) -> str | None:
        return self.headers.get("Location")

    def redirected(self) -> dict[str, list[str]]:
        """The query the redirect hands the relying party's callback."""
        assert self.status == 303 and self.location is not None
        parts = urllib.parse.urlsplit(self.location)
        base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        assert base == REDIRECT
        return urllib.parse.parse_qs(parts.query, keep_blank_values=True)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand a 3xx back as it is (urllib raises it as an HTTPError we read)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _call(
    issuer: TestIssuer,
    method: str,
    path: str,
    *,
    query: str = "",
    form: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    trust = ssl.create_default_context(cadata=issuer.ca_pem)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=trust), _NoRedirect())
    url = f"{issuer.url}{path}" + (f"?{query}" if query else "")
    data = None if form is None else form.encode()
    sent = dict(headers or {})
    if form is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    # S310: the URL is always this test issuer's own https:// address.
    request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
    try:
        with opener.open(request, timeout=10) as answer:
            return Reply(answer.status, answer.headers, answer.read().decode())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read().decode())


def _authorize(issuer: TestIssuer, pairs: Mapping[str, str] | list[tuple[str, str]]) -> Reply:
    return _call(issuer, "GET", "/authorize", query=urllib.parse.urlencode(pairs))


class _Form(HTMLParser):
    """The page's form as a browser reads it: action, hidden fields, buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.hidden: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        got = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = got.get("action"), got.get("method")
        elif tag == "input" and got.get("type") == "hidden":
            self.hidden[got["name"]] = got.get("value", "")
        elif tag == "button":
            self.buttons.append((got["name"], got["value"]))


def _form(page: str) -> _Form:
    parser = _Form()
    parser.feed(page)
    parser.close()
    return parser


def _decide(issuer: TestIssuer, fields: Mapping[str, str], decision: str) -> Reply:
    form = urllib.parse.urlencode({**fields, "decision": decision})
    return _call(issuer, "POST", "/authorize", form=form)


def _page_fields(issuer: TestIssuer, **changes: str | None) -> dict[str, str]:
    reply = _authorize(issuer, _request(**changes))
    assert reply.status == 200, reply.body
    return _form(reply.body).hidden


def _redeem(issuer: TestIssuer, code: str, verifier: str = VERIFIER) -> tuple[int, dict[str, Any]]:
    form = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": CLIENT,
            "code_verifier": verifier,
        }
    )
    reply = _call(issuer, "POST", "/token", form=form)
    return reply.status, json.loads(reply.body)


def _claims(issuer: TestIssuer, id_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        id_token,
        issuer.key.private.public_key(),
        algorithms=["RS256"],
        audience=CLIENT,
        issuer=issuer.url,
    )
    return claims


# -- the page ---------------------------------------------------------------------------


def test_a_good_request_shows_the_sign_in_page(issuer: TestIssuer) -> None:
    reply = _authorize(issuer, _request())
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert reply.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in reply.headers["Content-Security-Policy"]
    assert "<title>Sign in to Test IdP</title>" in reply.body
    assert "Signed in at Test IdP as alice" in reply.body
    assert '<button name="decision" value="continue">Continue as alice</button>' in reply.body
    assert '<button name="decision" value="cancel">Cancel</button>' in reply.body
    form = _form(reply.body)
    assert (form.method, form.action) == ("post", "/authorize")
    assert form.hidden == {
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "state": STATE,
        "nonce": NONCE,
        "code_challenge": CHALLENGE,
    }
    assert form.buttons == [("decision", "continue"), ("decision", "cancel")]
    assert not form.tags & {"script", "link", "img", "iframe", "style"}
    assert "src=" not in reply.body and "http://" not in reply.body
    assert issuer.authorize_requests == [_request()]


def test_the_form_action_carries_the_issuer_path(tmp_path: Path) -> None:
    with running_issuer(tmp_path, path="/tenant/a") as running:
        running.clients, running.redirect_uris = {CLIENT: None}, {REDIRECT}
        reply = _call(running, "GET", "/authorize", query=urllib.parse.urlencode(_request()))
        assert reply.status == 200
        assert _form(reply.body).action == "/tenant/a/authorize"
        assert running.discovery()["authorization_endpoint"] == f"{running.url}/authorize"


def test_a_hostile_state_comes_back_escaped_and_unchanged(issuer: TestIssuer) -> None:
    hostile = '"><script>alert(1)</script>&amp;'
    reply = _authorize(issuer, _request(state=hostile))
    assert reply.status == 200
    assert "<script>" not in reply.body
    assert "&lt;script&gt;" in reply.body and "&quot;&gt;" in reply.body
    fields = _form(reply.body).hidden
    assert fields["state"] == hostile
    assert _decide(issuer, fields, "continue").redirected()["state"] == [hostile]


def test_a_hostile_persona_name_is_escaped(issuer: TestIssuer) -> None:
    issuer.persona = {**issuer.persona, "preferred_username": "<b onmouseover=x>eve</b>"}
    reply = _authorize(issuer, _request())
    assert reply.status == 200
    assert "<b " not in reply.body
    assert "Continue as &lt;b onmouseover=x&gt;eve&lt;/b&gt;</button>" in reply.body


# -- refused without a redirect -----------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(list(_request(client_id="someone-else").items()), id="unknown-client"),
        pytest.param(list(_request(client_id=None).items()), id="no-client"),
        pytest.param(
            list(_request(redirect_uri="https://evil.example/callback").items()),
            id="unregistered-redirect",
        ),
        pytest.param(
            list(_request(redirect_uri=REDIRECT + "/../../evil").items()), id="prefix-redirect"
        ),
        pytest.param(
            list(_request(redirect_uri=REDIRECT + "?next=https://evil.example").items()),
            id="redirect-with-extra-query",
        ),
        pytest.param(list(_request(redirect_uri=None).items()), id="no-redirect"),
        pytest.param(
            [*_request().items(), ("redirect_uri", "https://evil.example/callback")],
            id="repeated-redirect",
        ),
        pytest.param([*_request().items(), ("client_id", CLIENT)], id="repeated-client"),
    ],
)
def test_a_bad_client_or_redirect_uri_gets_a_400_page_and_no_redirect(
    issuer: TestIssuer, pairs: list[tuple[str, str]]
) -> None:
    reply = _authorize(issuer, pairs)
    assert reply.status == 400
    assert reply.location is None
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "request refused" in reply.body
    assert "evil.example" not in reply.body


def test_no_registered_redirect_uri_refuses_every_request(issuer: TestIssuer) -> None:
    issuer.redirect_uris = set()
    reply = _authorize(issuer, _request())
    assert reply.status == 400 and reply.location is None
    assert "redirect_uri is not registered" in reply.body


# -- refused by redirect (RFC 6749 §4.1.2.1) -----------------------------------------------


@pytest.mark.parametrize(
    ("changes", "described"),
    [
        ({"code_challenge": None}, "code_challenge is missing"),
        ({"code_challenge": "too-short"}, "code_challenge must be"),
        ({"code_challenge_method": "plain"}, "code_challenge_method must be S256"),
        ({"code_challenge_method": None}, "code_challenge_method must be S256"),
        ({"response_type": "token"}, "response_type must be code"),
        ({"response_type": None}, "response_type must be code"),
        ({"scope": "profile email"}, "scope must contain openid"),
        ({"scope": "openidx"}, "scope must contain openid"),
        ({"nonce": None}, "nonce is missing"),
    ],
)
def test_a_protocol_fault_redirects_with_invalid_request_and_the_state(
    issuer: TestIssuer, changes: dict[str, str | None], described: str
) -> None:
    back = _authorize(issuer, _request(**changes)).redirected()
    assert back["error"] == ["invalid_request"] and back["state"] == [STATE]
    assert back["error_description"][0].startswith(described)
    assert "code" not in back


def test_no_state_redirects_with_invalid_request_and_no_state(issuer: TestIssuer) -> None:
    back = _authorize(issuer, _request(state=None)).redirected()
    assert back["error"] == ["invalid_request"] and "state" not in back


@pytest.mark.parametrize("name", ["state", "nonce", "code_challenge", "scope", "response_type"])
def test_a_repeated_parameter_is_refused(issuer: TestIssuer, name: str) -> None:
    pairs = [*_request().items(), (name, "second-value-0123456789012345678901234567890")]
    reply = _authorize(issuer, pairs)
    back = reply.redirected()
    assert back["error"] == ["invalid_request"]
    assert back["error_description"] == [f"{name} is given more than once"]
    assert "Continue as" not in reply.body
    assert back.get("state") == (None if name == "state" else [STATE])


# -- Continue and Cancel --------------------------------------------------------------------


def test_continue_gives_a_code_the_token_endpoint_redeems_once(issuer: TestIssuer) -> None:
    fields = _page_fields(issuer)
    back = _decide(issuer, fields, "continue").redirected()
    assert back["state"] == [STATE] and set(back) == {"code", "state"}
    (code,) = back["code"]
    status, answer = _redeem(issuer, code)
    assert status == 200, answer
    claims = _claims(issuer, answer["id_token"])
    assert claims["sub"] == "00u-alice" and claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com" and claims["groups"] == ["platform", "dev"]
    assert claims["nonce"] == NONCE and claims["aud"] == CLIENT
    again, refused = _redeem(issuer, code)
    assert (again, refused["error"]) == (400, "invalid_grant")


def test_a_code_needs_the_pkce_verifier_of_the_challenge(issuer: TestIssuer) -> None:
    (code,) = _decide(issuer, _page_fields(issuer), "continue").redirected()["code"]
    other_verifier, _ = _pkce()
    status, answer = _redeem(issuer, code, verifier=other_verifier)
    assert (status, answer.get("error_description")) == (400, "pkce")


def test_cancel_redirects_with_access_denied_and_no_code(issuer: TestIssuer) -> None:
    back = _decide(issuer, _page_fields(issuer), "cancel").redirected()
    assert back == {"error": ["access_denied"], "state": [STATE]}
    assert issuer.codes == {}


def test_a_redirect_uri_with_a_query_keeps_it(issuer: TestIssuer) -> None:
    registered = REDIRECT + "?tenant=a%20b"
    issuer.redirect_uris = {registered}
    fields = _page_fields(issuer, redirect_uri=registered)
    location = _decide(issuer, fields, "continue").location
    assert location is not None and location.startswith(registered + "&code=")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)["tenant"] == ["a b"]


def test_a_replaced_persona_is_the_one_signed_in(issuer: TestIssuer) -> None:
    issuer.persona = {"sub": "00u-bob", "preferred_username": "bob", "groups": ["ops"]}
    reply = _authorize(issuer, _request())
    assert '<button name="decision" value="continue">Continue as bob</button>' in reply.body
    (code,) = _decide(issuer, _form(reply.body).hidden, "continue").redirected()["code"]
    status, answer = _redeem(issuer, code)
    assert status == 200, answer
    claims = _claims(issuer, answer["id_token"])
    assert (claims["sub"], claims["preferred_username"], claims["groups"]) == (
        "00u-bob",
        "bob",
        ["ops"],
    )
    assert "email" not in claims  # the persona's fields, not alice's leftovers


@pytest.mark.parametrize(
    ("changes", "decision", "named"),
    [
        ({"client_id": "someone-else"}, "continue", "client_id is not registered"),
        ({"redirect_uri": "https://evil.example/cb"}, "continue", "redirect_uri is not registered"),
        ({"redirect_uri": "https://evil.example/cb"}, "cancel", "redirect_uri is not registered"),
        ({}, "allow", "decision must be continue or cancel"),
    ],
)
def test_a_bad_form_gets_a_400_page_and_no_redirect(
    issuer: TestIssuer, changes: dict[str, str], decision: str, named: str
) -> None:
    fields = {**_page_fields(issuer), **changes}
    reply = _decide(issuer, fields, decision)
    assert reply.status == 400 and reply.location is None
    assert named in reply.body
    assert issuer.codes == {}


def test_a_form_that_is_not_form_encoded_is_refused(issuer: TestIssuer) -> None:
    form = urllib.parse.urlencode({**_page_fields(issuer), "decision": "continue"})
    reply = _call(issuer, "POST", "/authorize", form=form, headers={"Content-Type": "text/plain"})
    assert reply.status == 400 and "Content-Type must be" in reply.body
    assert issuer.codes == {}


def test_continue_without_the_challenge_redirects_with_invalid_request(issuer: TestIssuer) -> None:
    fields = {k: v for k, v in _page_fields(issuer).items() if k != "code_challenge"}
    back = _decide(issuer, fields, "continue").redirected()
    assert back["error"] == ["invalid_request"] and back["state"] == [STATE]
    assert issuer.codes == {}


def test_the_token_endpoint_misbehaving_by_redirect_leaves_the_page_alone(
    issuer: TestIssuer,
) -> None:
    issuer.misbehave = {"redirect"}
    (code,) = _decide(issuer, _page_fields(issuer), "continue").redirected()["code"]
    token = _call(issuer, "POST", "/token", form=urllib.parse.urlencode({"code": code}))
    assert token.status == 302 and token.location == f"{issuer.url}/elsewhere"


# -- any query ------------------------------------------------------------------------------


@functools.cache
def _pure_issuer() -> TestIssuer:
    """One issuer, never started: authorize_page is pure (its CA and key are made once)."""
    issuer = TestIssuer()
    issuer.clients, issuer.redirect_uris = {CLIENT: None}, {REDIRECT}
    return issuer


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*_request(), "prompt", "x"]),
            st.text(max_size=60),
        ),
        max_size=12,
    )
)
def test_any_query_gives_a_page_a_redirect_or_a_400(pairs: list[tuple[str, str]]) -> None:
    answer = _pure_issuer().authorize_page(urllib.parse.urlencode([*_request().items(), *pairs]))
    assert answer.status in (200, 303, 400)
    if answer.status == 303:
        assert answer.location is not None and answer.location.startswith(REDIRECT + "?")
    else:
        assert answer.location is None and answer.body.startswith(b"<!doctype html>")
