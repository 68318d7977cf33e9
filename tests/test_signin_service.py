"""The sign-in service (authbridge.signin) over the store, on SQLite and PostgreSQL.

Covers: the authorization request's checks in their order (unknown client,
redirect URI, state, response type, PKCE downgrade: plain and absent
challenge method, a malformed challenge, scope; repeated and oversized
parameters, never redirectable); the loopback redirect URI validator
(loopback IPv4 and IPv6 with any port; localhost, https, other hosts and
paths, userinfo, query, fragment, port 0 and over 65535 refused) and the
user-code normaliser, each with a Hypothesis property test; authorization
codes (one redemption, redirect_uri equality, PKCE verifier missing, wrong
or malformed, expiry, reuse refused and ending the session the first
redemption made, so its access token is refused); the device flow
(authorization_pending, slow_down growing the interval for good,
expired_token, access_denied, one redemption, approval binding the code to
one user so a second approval or denial fails, an unknown client); refresh
tokens (rotation, reuse of a rotated one ending the family: the newest
refresh token and the session's access tokens die too, idle and absolute
expiry on an injected clock, a disabled user's session); the session's
access token (sts audience, sid, amr, mfa, source_identity, lifetime cut to
the session); browser sessions (cookie secret only as a digest, a new id
every sign-in, idle/absolute expiry, the user disabled, end_session,
CSRF key per session); revoke-sessions ending CLI and browser sessions and
their tokens; revocation of a refresh token (RFC 7009).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from authbridge import signin
from authbridge.errors import TokenRevoked
from authbridge.iam import sessions
from authbridge.iam.sessions import SessionLifetimes
from authbridge.keys import KeySet, generate_signing_key
from authbridge.signin import (
    AccessDenied,
    AuthorizationPending,
    AuthorizeError,
    DeviceCodeError,
    ExpiredToken,
    SessionEnded,
    SessionGrantRefused,
    SlowDown,
    UnknownClient,
)
from authbridge.store import SqlStore
from authbridge.sts import IssuerPolicy, verify_token
from tests.conftest import ACCOUNT

NOW = 1_800_000_000.0
ISSUER = "https://authbridge.test"
POLICY = IssuerPolicy(
    issuer=ISSUER,
    cluster_ids=frozenset({"prod"}),
    default_lifetime=900,
    max_user_lifetime=3600,
    partition="aws",
)
CLI = "authbridge-cli"
LIFETIMES = SessionLifetimes(max_seconds=43200, idle_seconds=7200)
VERIFIER = "v" * 43 + "-._~abc"
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
)
REDIRECT = "http://127.0.0.1:53817/callback"


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet((generate_signing_key("ES256", now=int(NOW) - 3600),), max_token_lifetime=43200)


@pytest.fixture
def users(store: SqlStore) -> SqlStore:
    store.create_user(ACCOUNT, "alice")
    store.create_user(ACCOUNT, "bob")
    return store


def _uid(store: SqlStore, name: str) -> str:
    return store.get_user(ACCOUNT, name).user_id


def _params(**over: str) -> dict[str, str]:
    base = {
        "client_id": CLI,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "state": "xyz",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v != "<absent>"}


def _sts_ok(store: SqlStore, keys: KeySet, token: str, now: float = NOW) -> None:
    verify_token(store, keys, POLICY, token, audiences=(POLICY.sts_audience,), now=now)


# --------------------------------------------------------------------------- authorize request


def test_a_valid_authorization_request_is_accepted() -> None:
    req = signin.validate_authorize_request(_params(scope="openid"))
    assert req == signin.AuthorizeRequest(CLI, REDIRECT, "xyz", CHALLENGE, "openid")
    ipv6 = signin.validate_authorize_request(_params(redirect_uri="http://[::1]:1/callback"))
    assert ipv6.redirect_uri == "http://[::1]:1/callback"
    assert signin.validate_authorize_request(_params(state="<absent>")).state is None


@pytest.mark.parametrize(
    ("over", "error", "redirectable"),
    [
        ({"client_id": "other"}, "invalid_client", False),
        ({"client_id": "<absent>"}, "invalid_client", False),
        ({"redirect_uri": "<absent>"}, "invalid_request", False),
        ({"redirect_uri": "https://127.0.0.1:1/callback"}, "invalid_request", False),
        ({"state": "a\nb"}, "invalid_request", False),
        ({"state": "s" * 513}, "invalid_request", False),
        ({"response_type": "token"}, "unsupported_response_type", True),
        ({"response_type": "<absent>"}, "invalid_request", True),
        ({"scope": 'bad"scope'}, "invalid_scope", True),
        ({"code_challenge": "short"}, "invalid_request", True),
    ],
)
def test_authorization_request_refusals(
    over: dict[str, str], error: str, redirectable: bool
) -> None:
    with pytest.raises(AuthorizeError) as caught:
        signin.validate_authorize_request(_params(**over))
    assert caught.value.error == error and caught.value.redirectable is redirectable


def test_pkce_downgrade_plain_is_refused() -> None:
    with pytest.raises(AuthorizeError, match="S256") as caught:
        signin.validate_authorize_request(
            _params(code_challenge_method="plain", code_challenge=VERIFIER)
        )
    assert caught.value.error == "invalid_request"


def test_pkce_downgrade_absent_method_is_refused() -> None:
    # RFC 7636 §4.3: no method means plain.
    with pytest.raises(AuthorizeError, match="S256"):
        signin.validate_authorize_request(_params(code_challenge_method="<absent>"))


def test_pkce_downgrade_absent_challenge_is_refused() -> None:
    with pytest.raises(AuthorizeError, match="code_challenge is required"):
        signin.validate_authorize_request(_params(code_challenge="<absent>"))


def test_duplicated_authorize_params_are_refused_without_redirect() -> None:
    query = MultiDict(list(_params().items()) + [("redirect_uri", "http://127.0.0.1:9/callback")])
    with pytest.raises(AuthorizeError, match="repeated") as caught:
        signin.validate_authorize_request(query)
    assert not caught.value.redirectable
    query = MultiDict(list(_params().items()) + [("state", "again")])
    with pytest.raises(AuthorizeError, match="repeated"):
        signin.validate_authorize_request(query)


def test_oversized_authorize_params_are_refused_without_redirect() -> None:
    with pytest.raises(AuthorizeError, match="longer") as caught:
        signin.validate_authorize_request(_params(nonce="n" * 5000))
    assert not caught.value.redirectable
    many = _params() | {f"p{i}": "x" for i in range(40)}
    with pytest.raises(AuthorizeError, match="at most"):
        signin.validate_authorize_request(many)


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:5000/callback",
        "http://127.0.0.1:5000/callback/",
        "http://127.0.0.1:5000/other",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:0/callback",
        "http://127.0.0.1:65536/callback",
        "http://127.0.0.1:05000/callback",
        "http://127.0.0.2:5000/callback",
        "http://user@127.0.0.1:5000/callback",
        "http://evil.example@127.0.0.1:5000/callback",
        "http://127.0.0.1:5000@evil.example/callback",
        "http://127.0.0.1:5000/callback?x=1",
        "http://127.0.0.1:5000/callback#frag",
        "http://127.0.0.1:5000/callback\n",
        "https://127.0.0.1:5000/callback",
        "HTTP://127.0.0.1:5000/callback",
        "http://[::1]/callback",
        "http://[::ffff:127.0.0.1]:5000/callback",
        "http://evil.example/callback",
        "//127.0.0.1:5000/callback",
        "",
    ],
)
def test_redirect_uri_not_loopback_or_wrong_path_is_refused(uri: str) -> None:
    assert signin.redirect_uri_problem(uri) is not None
    with pytest.raises(AuthorizeError) as caught:
        signin.validate_authorize_request(_params(redirect_uri=uri or "<absent>"))
    assert not caught.value.redirectable


_LOOPBACK_MODEL = re.compile(r"http://(127\.0\.0\.1|\[::1\]):([1-9][0-9]*)/callback")


@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda host, port, tail: f"http://{host}:{port}{tail}",
            st.sampled_from(["127.0.0.1", "[::1]", "localhost", "127.0.0.1.", "0.0.0.0"]),  # noqa: S104
            st.integers(min_value=-5, max_value=70000),
            st.sampled_from(["/callback", "/callback/", "/cb", "/callback?a", "", "/callback#"]),
        ),
    )
)
def test_redirect_uri_validator_property(uri: str) -> None:
    problem = signin.redirect_uri_problem(uri)
    model = _LOOPBACK_MODEL.fullmatch(uri)
    accepted = model is not None and 1 <= int(model.group(2)) <= 65535
    assert (problem is None) is accepted
    if problem is None:
        assert signin.validate_authorize_request(_params(redirect_uri=uri)).redirect_uri == uri
    else:
        with pytest.raises(AuthorizeError):
            signin.validate_authorize_request(_params(redirect_uri=uri))


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=80), max_size=12))
def test_validate_authorize_request_raises_only_authorize_error(params: dict[str, str]) -> None:
    try:
        signin.validate_authorize_request(params | {"client_id": CLI, "redirect_uri": REDIRECT})
    except AuthorizeError:
        pass


# --------------------------------------------------------------------------- user codes


def test_user_codes_are_formatted_and_normalised() -> None:
    code = sessions.new_user_code()
    shown = sessions.format_user_code(code)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", shown)
    assert sessions.normalize_user_code(shown) == code
    assert sessions.normalize_user_code(shown.lower()) == code
    assert sessions.normalize_user_code(" " + code[:2] + " - " + code[2:]) == code
    for bad in ("", "BCDF-GHJ", "BCDF-GHJKL", "BCDF-GHJA", "BCDF_GHJK", None, 5, "B" * 100):
        assert sessions.normalize_user_code(bad) is None


@given(st.text(max_size=80))
def test_user_code_normaliser_property(text: str) -> None:
    code = sessions.normalize_user_code(text)
    if code is None:
        return
    assert len(code) == 8 and set(code) <= set(sessions.USER_CODE_ALPHABET)
    assert sessions.normalize_user_code(sessions.format_user_code(code)) == code
    assert sessions.normalize_user_code(code.lower()) == code


@given(st.text(alphabet=sessions.USER_CODE_ALPHABET + "bcdfg- \t", min_size=8, max_size=12))
def test_user_code_normaliser_ignores_case_and_dashes_property(text: str) -> None:
    stripped = re.sub(r"[\s-]", "", text).upper()
    expected = stripped if len(stripped) == 8 else None
    assert sessions.normalize_user_code(text) == expected


# --------------------------------------------------------------------------- authorization code


def _code(store: SqlStore, user: str = "alice", *, mfa: bool = False, now: float = NOW) -> str:
    req = signin.validate_authorize_request(_params())
    return signin.issue_authorization_code(store, req, user_id=_uid(store, user), mfa=mfa, now=now)


def _redeem(store: SqlStore, keys: KeySet, code: str, **over: object) -> signin.SessionTokens:
    args: dict[str, object] = {
        "code": code,
        "client_id": CLI,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
        "lifetimes": LIFETIMES,
        "now": NOW + 5,
    } | over
    return signin.redeem_authorization_code(store, keys, POLICY, **args)  # type: ignore[arg-type]


def test_authorization_code_gives_a_session_once(users: SqlStore, keys: KeySet) -> None:
    code = _code(users, mfa=True)
    got = _redeem(users, keys, code)
    claims = got.access.claims
    assert claims["aud"] == POLICY.sts_audience and claims["sid"] == got.session.session_id
    assert claims["amr"] == ["pwd", "mfa"] and claims["mfa"] is True
    assert claims["source_identity"] == _uid(users, "alice")
    assert got.access.expires_at - got.access.issued_at == 900
    assert got.refresh_token and got.refresh_token not in repr(got)
    wire = got.to_wire()
    assert wire["token_type"] == "Bearer" and wire["refresh_token_expires_in"] == 7200
    _sts_ok(users, keys, got.access.token, NOW + 10)


def test_code_reuse_is_refused_and_revokes_the_session(users: SqlStore, keys: KeySet) -> None:
    code = _code(users)
    first = _redeem(users, keys, code)
    with pytest.raises(SessionGrantRefused, match="already used"):
        _redeem(users, keys, code, now=NOW + 6)
    with pytest.raises(TokenRevoked, match="session"):
        _sts_ok(users, keys, first.access.token, NOW + 7)
    with pytest.raises(SessionGrantRefused):
        signin.refresh_session(
            users, keys, POLICY, refresh_token=first.refresh_token, client_id=CLI, now=NOW + 8
        )


def test_pkce_missing_or_wrong_verifier_is_refused(users: SqlStore, keys: KeySet) -> None:
    code = _code(users)
    with pytest.raises(SessionGrantRefused, match="code_verifier is required"):
        _redeem(users, keys, code, code_verifier="")
    with pytest.raises(SessionGrantRefused, match="43 to 128"):
        _redeem(users, keys, code, code_verifier="short")
    with pytest.raises(SessionGrantRefused, match="does not match"):
        _redeem(users, keys, code, code_verifier="w" * 43)
    with pytest.raises(SessionGrantRefused, match="does not match"):
        _redeem(users, keys, code, code_verifier=CHALLENGE)  # the challenge itself: plain
    # A refused redemption does not spend the code: the right verifier still works.
    assert _redeem(users, keys, code).session.user_id == _uid(users, "alice")


def test_redirect_uri_must_equal_the_requests(users: SqlStore, keys: KeySet) -> None:
    code = _code(users)
    for other in ("http://127.0.0.1:53818/callback", "http://[::1]:53817/callback", ""):
        with pytest.raises(SessionGrantRefused, match="redirect_uri"):
            _redeem(users, keys, code, redirect_uri=other)
    _redeem(users, keys, code)


def test_authorization_code_expires_after_60_seconds(users: SqlStore, keys: KeySet) -> None:
    code = _code(users)
    with pytest.raises(SessionGrantRefused):
        _redeem(users, keys, code, now=NOW + 60)


def test_unknown_client_id_is_refused(users: SqlStore, keys: KeySet) -> None:
    with pytest.raises(UnknownClient) as caught:
        _redeem(users, keys, _code(users), client_id="other")
    assert caught.value.oauth_error == "invalid_client" and caught.value.status == 401
    with pytest.raises(UnknownClient):
        signin.start_device_authorization(users, POLICY, client_id="x", now=NOW)
    with pytest.raises(UnknownClient):
        signin.refresh_session(users, keys, POLICY, refresh_token="r", client_id="", now=NOW)


def test_a_garbage_code_is_invalid_grant(users: SqlStore, keys: KeySet) -> None:
    with pytest.raises(SessionGrantRefused):
        _redeem(users, keys, "not-a-code")
    with pytest.raises(SessionGrantRefused):
        _redeem(users, keys, "")


# --------------------------------------------------------------------------- device flow


def _device(store: SqlStore) -> signin.DeviceAuthorization:
    return signin.start_device_authorization(store, POLICY, client_id=CLI, scope="", now=NOW)


def _poll(store: SqlStore, keys: KeySet, device_code: str, now: float) -> signin.SessionTokens:
    return signin.redeem_device_code(
        store, keys, POLICY, device_code=device_code, client_id=CLI, lifetimes=LIFETIMES, now=now
    )


def test_device_flow_end_to_end(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    assert auth.verification_uri == ISSUER + "/device"
    assert auth.verification_uri_complete == f"{ISSUER}/device?user_code={auth.user_code}"
    assert (auth.expires_in, auth.interval) == (600, 5)
    assert len(base64.urlsafe_b64decode(auth.device_code + "=")) == 32
    assert auth.device_code not in repr(auth)
    with pytest.raises(AuthorizationPending):
        _poll(users, keys, auth.device_code, NOW + 5)
    found = signin.find_device_request(users, auth.user_code.lower().replace("-", ""), NOW + 6)
    assert found is not None and found.status == "pending" and found.client_id == CLI
    signin.approve_device(
        users, auth.user_code, user_id=_uid(users, "alice"), mfa=False, now=NOW + 7
    )
    got = _poll(users, keys, auth.device_code, NOW + 10)
    assert got.access.claims["amr"] == ["pwd"] and got.access.claims["mfa"] is False
    _sts_ok(users, keys, got.access.token, NOW + 11)
    with pytest.raises(SessionGrantRefused):  # one redemption only
        _poll(users, keys, auth.device_code, NOW + 20)
    assert signin.find_device_request(users, auth.user_code, NOW + 21).status == "redeemed"  # type: ignore[union-attr]


def test_device_polling_faster_than_interval_gets_slow_down(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    with pytest.raises(AuthorizationPending):
        _poll(users, keys, auth.device_code, NOW)
    with pytest.raises(SlowDown, match="every 10 seconds"):
        _poll(users, keys, auth.device_code, NOW + 4)
    # The interval grew for good: 5 s after the last poll is now too soon.
    with pytest.raises(SlowDown, match="every 15 seconds"):
        _poll(users, keys, auth.device_code, NOW + 9)
    with pytest.raises(AuthorizationPending):
        _poll(users, keys, auth.device_code, NOW + 24)


def test_device_code_expired_token(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    with pytest.raises(ExpiredToken):
        _poll(users, keys, auth.device_code, NOW + 600)
    assert signin.find_device_request(users, auth.user_code, NOW + 600) is None
    with pytest.raises(DeviceCodeError) as caught:
        signin.approve_device(
            users, auth.user_code, user_id=_uid(users, "alice"), mfa=False, now=NOW + 601
        )
    assert caught.value.reason == "expired"


def test_device_denied_is_access_denied(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    signin.deny_device(users, auth.user_code, NOW + 1)
    with pytest.raises(AccessDenied):
        _poll(users, keys, auth.device_code, NOW + 5)
    assert signin.find_device_request(users, auth.user_code, NOW + 6).status == "denied"  # type: ignore[union-attr]


def test_cross_user_device_approval_is_refused(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    signin.approve_device(
        users, auth.user_code, user_id=_uid(users, "alice"), mfa=True, now=NOW + 1
    )
    with pytest.raises(DeviceCodeError) as caught:
        signin.approve_device(
            users, auth.user_code, user_id=_uid(users, "bob"), mfa=True, now=NOW + 2
        )
    assert caught.value.reason == "decided"
    with pytest.raises(DeviceCodeError):
        signin.deny_device(users, auth.user_code, NOW + 3)
    got = _poll(users, keys, auth.device_code, NOW + 5)
    assert got.session.user_id == _uid(users, "alice") and got.session.mfa


def test_unknown_user_codes_and_device_codes(users: SqlStore, keys: KeySet) -> None:
    assert signin.find_device_request(users, "BCDF-GHJK", NOW) is None
    assert signin.find_device_request(users, "not a code", NOW) is None
    with pytest.raises(DeviceCodeError) as caught:
        signin.approve_device(users, "BCDF-GHJK", user_id=_uid(users, "alice"), mfa=False, now=NOW)
    assert caught.value.reason == "unknown"
    with pytest.raises(SessionGrantRefused):
        _poll(users, keys, "unknown-device-code", NOW)


def test_a_disabled_user_cannot_approve(users: SqlStore, keys: KeySet) -> None:
    auth = _device(users)
    users.set_user_enabled(ACCOUNT, "alice", False)
    with pytest.raises(DeviceCodeError):
        signin.approve_device(
            users, auth.user_code, user_id=_uid(users, "alice"), mfa=False, now=NOW
        )


# --------------------------------------------------------------------------- refresh tokens


def _session(
    store: SqlStore, keys: KeySet, lifetimes: SessionLifetimes = LIFETIMES
) -> signin.SessionTokens:
    return _redeem(store, keys, _code(store), lifetimes=lifetimes, now=NOW)


def _refresh(store: SqlStore, keys: KeySet, token: str, now: float) -> signin.SessionTokens:
    return signin.refresh_session(store, keys, POLICY, refresh_token=token, client_id=CLI, now=now)


def test_refresh_rotates_the_refresh_token(users: SqlStore, keys: KeySet) -> None:
    first = _session(users, keys)
    second = _refresh(users, keys, first.refresh_token, NOW + 600)
    assert second.refresh_token != first.refresh_token
    assert second.session.session_id == first.session.session_id
    assert second.access.claims["sid"] == first.session.session_id
    third = _refresh(users, keys, second.refresh_token, NOW + 1200)
    _sts_ok(users, keys, third.access.token, NOW + 1201)


def test_refresh_token_reuse_revokes_the_family(users: SqlStore, keys: KeySet) -> None:
    first = _session(users, keys)
    second = _refresh(users, keys, first.refresh_token, NOW + 60)
    with pytest.raises(SessionGrantRefused, match="already used"):
        _refresh(users, keys, first.refresh_token, NOW + 61)
    # The newest refresh token and every access token of the session die too.
    with pytest.raises(SessionEnded, match="run authbridge login"):
        _refresh(users, keys, second.refresh_token, NOW + 62)
    for token in (first.access.token, second.access.token):
        with pytest.raises(TokenRevoked):
            _sts_ok(users, keys, token, NOW + 63)


def test_idle_session_ends(users: SqlStore, keys: KeySet) -> None:
    first = _session(users, keys, SessionLifetimes(max_seconds=43200, idle_seconds=600))
    second = _refresh(users, keys, first.refresh_token, NOW + 599)
    assert second.refresh_expires_in == 600
    with pytest.raises(SessionEnded):
        _refresh(users, keys, second.refresh_token, NOW + 599 + 600)


def test_absolute_session_lifetime(users: SqlStore, keys: KeySet) -> None:
    token = _session(users, keys, SessionLifetimes(max_seconds=3000, idle_seconds=1000))
    got = token
    for step in (900, 1800, 2700):
        got = _refresh(users, keys, got.refresh_token, NOW + step)
    # 300 s of the session left: the access token and the refresh token say so.
    assert got.access.expires_at - got.access.issued_at == 300
    assert got.refresh_expires_in == 300
    with pytest.raises(SessionEnded):
        _refresh(users, keys, got.refresh_token, NOW + 3000)


def test_a_disabled_users_sessions_end(users: SqlStore, keys: KeySet) -> None:
    got = _session(users, keys)
    users.set_user_enabled(ACCOUNT, "alice", False)
    users.set_user_enabled(ACCOUNT, "alice", True)  # enabling again brings nothing back
    with pytest.raises(SessionEnded):
        _refresh(users, keys, got.refresh_token, NOW + 60)
    with pytest.raises(TokenRevoked):
        _sts_ok(users, keys, got.access.token, NOW + 61)


def test_a_deleted_users_sessions_end(users: SqlStore, keys: KeySet) -> None:
    got = _session(users, keys)
    users.delete_user(ACCOUNT, "alice")
    with pytest.raises(SessionGrantRefused):
        _refresh(users, keys, got.refresh_token, NOW + 60)
    assert users.get_signin_session(got.session.session_id) is None


def test_revoking_a_refresh_token_ends_its_session(users: SqlStore, keys: KeySet) -> None:
    got = _session(users, keys)
    assert signin.revoke_refresh_token(users, got.refresh_token, NOW + 1) == got.session.session_id
    with pytest.raises(SessionEnded):
        _refresh(users, keys, got.refresh_token, NOW + 2)
    with pytest.raises(TokenRevoked):
        _sts_ok(users, keys, got.access.token, NOW + 3)
    assert signin.revoke_refresh_token(users, "garbage", NOW) is None
    assert signin.revoke_refresh_token(users, "", NOW) is None


def test_an_unknown_refresh_token_is_invalid_grant(users: SqlStore, keys: KeySet) -> None:
    got = _session(users, keys)
    with pytest.raises(SessionGrantRefused, match="not valid"):
        _refresh(users, keys, got.refresh_token + "x", NOW + 1)
    _refresh(users, keys, got.refresh_token, NOW + 2)  # and the real one is untouched


# --------------------------------------------------------------------------- revoke-sessions


def test_revoke_sessions_ends_cli_and_browser_sessions(users: SqlStore, keys: KeySet) -> None:
    cli = _session(users, keys)
    alice = _uid(users, "alice")
    _, secret = signin.start_browser_session(
        users, user_id=alice, mfa=False, address="192.0.2.1", now=NOW
    )
    bob_sid, bob_secret = signin.start_browser_session(
        users, user_id=_uid(users, "bob"), mfa=False, address=None, now=NOW
    )
    assert signin.end_user_sessions(users, ACCOUNT, "alice", NOW + 1) == 2
    assert signin.browser_session(users, secret, NOW + 2) is None
    with pytest.raises(SessionEnded):
        _refresh(users, keys, cli.refresh_token, NOW + 2)
    with pytest.raises(TokenRevoked):
        _sts_ok(users, keys, cli.access.token, NOW + 2)
    bob = signin.browser_session(users, bob_secret, NOW + 2)
    assert bob is not None and bob.session_id == bob_sid
    assert signin.end_user_sessions(users, ACCOUNT, "alice", NOW + 3) == 0


# --------------------------------------------------------------------------- browser sessions


def test_browser_session_lifecycle(users: SqlStore) -> None:
    alice = _uid(users, "alice")
    sid, secret = signin.start_browser_session(
        users, user_id=alice, mfa=True, address="192.0.2.1", now=NOW
    )
    sid2, secret2 = signin.start_browser_session(
        users, user_id=alice, mfa=True, address=None, now=NOW
    )
    assert sid != sid2 and secret != secret2  # a new session every sign-in: no fixation
    got = signin.browser_session(users, secret, NOW + 1)
    assert got is not None
    assert (got.session_id, got.user_id, got.user_name, got.account_id, got.mfa) == (
        sid,
        alice,
        "alice",
        ACCOUNT,
        True,
    )
    assert got.user_arn == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert got.csrf_key not in repr(got).encode() and len(got.csrf_key) == 32
    other = signin.browser_session(users, secret2, NOW + 1)
    assert other is not None and other.csrf_key != got.csrf_key
    assert signin.browser_session(users, secret + "x", NOW + 1) is None
    assert signin.browser_session(users, "", NOW + 1) is None
    assert signin.end_session(users, sid, NOW + 2)
    assert signin.browser_session(users, secret, NOW + 3) is None
    assert not signin.end_session(users, sid, NOW + 4)


def test_browser_session_idle_and_absolute_expiry(users: SqlStore) -> None:
    alice = _uid(users, "alice")
    short = SessionLifetimes(max_seconds=1000, idle_seconds=300)
    _, secret = signin.start_browser_session(
        users, user_id=alice, mfa=False, address=None, now=NOW, lifetimes=short
    )
    assert signin.browser_session(users, secret, NOW + 299) is not None  # use moves the idle clock
    assert signin.browser_session(users, secret, NOW + 598) is not None
    assert signin.browser_session(users, secret, NOW + 897) is not None
    assert signin.browser_session(users, secret, NOW + 1000) is None  # absolute end
    _, idle = signin.start_browser_session(
        users, user_id=alice, mfa=False, address=None, now=NOW, lifetimes=short
    )
    assert signin.browser_session(users, idle, NOW + 300) is None


def test_browser_session_of_a_disabled_user_is_none(users: SqlStore) -> None:
    _, secret = signin.start_browser_session(
        users, user_id=_uid(users, "alice"), mfa=False, address=None, now=NOW
    )
    users.set_user_enabled(ACCOUNT, "alice", False)
    assert signin.browser_session(users, secret, NOW + 1) is None


def test_only_digests_of_secrets_are_stored(users: SqlStore, keys: KeySet) -> None:
    got = _session(users, keys)
    auth = _device(users)
    _, cookie = signin.start_browser_session(
        users, user_id=_uid(users, "alice"), mfa=False, address=None, now=NOW
    )
    dump = []
    with users._tx() as cur:
        for table in (
            "signin_sessions",
            "signin_refresh_tokens",
            "signin_device_codes",
            "signin_authorization_codes",
        ):
            dump.extend(repr(r) for r in cur.execute(f"SELECT * FROM {table}"))  # noqa: S608
    text = "\n".join(dump)
    for secret in (got.refresh_token, auth.device_code, cookie):
        assert secret not in text
    assert sessions.secret_digest("refresh_token", got.refresh_token) in text


def test_session_lifetimes_from_settings() -> None:
    from authbridge.settings import load_settings

    settings = load_settings(
        env={"AUTHBRIDGE_SESSION_MAX_SECONDS": "3600", "AUTHBRIDGE_SESSION_IDLE_SECONDS": "600"}
    )
    assert signin.session_lifetimes(settings) == SessionLifetimes(3600, 600)
    assert replace(LIFETIMES) == SessionLifetimes()
