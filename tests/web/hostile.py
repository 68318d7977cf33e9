"""Shared by the property tests of outside input: one app per module, and hostile values.

Hypothesis runs many examples in one test function, so the app (settings,
SQLite store with the usual IAM world, keys, mapping) is built once per
module from ``tmp_path_factory`` rather than from the function-scoped
fixtures. The strategies give JSON values of every kind, with the values
that have broken parsers before mixed in: lone surrogates, NUL and other
control characters, huge and non-finite numbers, deep nesting, long
strings, and secret-shaped strings (a fresh access-key-shaped secret, the
user's real one, a real token).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st

from authbridge.iam.credentials import Pepper, new_secret
from authbridge.keys import KeyDirectory, KeyRing, SigningKey
from authbridge.mapping.holder import MappingHolder
from authbridge.settings import Settings
from authbridge.store import SqlStore, open_store
from authbridge.web import create_app
from tests.conftest import ACCOUNT
from tests.web.conftest import make_settings
from tests.web.helpers import ISSUER, Clock, World, build_world, sts_token, user_token

MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/team/alice
    username: alice
    groups: ["authbridge:devs"]
"""
PROD_CERT = {
    "authbridge.peer_cert": {
        "subject": ((("commonName", "prod-cp"),), (("organizationName", "prod"),))
    }
}


@dataclass
class Env:
    """One app and what a test needs to speak to it."""

    settings: Settings
    store: SqlStore
    world: World
    ring: KeyRing
    clock: Clock
    app: Flask
    client: FlaskClient
    token: str  # a valid token of alice for prod
    spare_token: str  # a valid token of bob for prod, for tests that may revoke it
    sts_token: str  # a valid token of alice for the sts audience: AssumeRole's subject_token

    def signing_key(self) -> SigningKey:
        return self.ring.current().signing_key(self.clock.now)

    def sign(self, claims: Any) -> str:
        """``claims`` signed with the server's real signing key, whatever they hold."""
        return sign(self.signing_key(), claims)

    def good_claims(self) -> dict[str, Any]:
        """The claims of a valid, mapped token of alice (what the token endpoint mints)."""
        now = int(self.clock.now)
        alice = self.world.alice
        return {
            "iss": ISSUER,
            "sub": alice.arn,
            "aud": "prod",
            "exp": now + 900,
            "iat": now,
            "nbf": now,
            "jti": "c3VwZXItcmFuZG9tLWp0aQ",
            "arn": alice.arn,
            "account": ACCOUNT,
            "principal_id": alice.user_id,
            "access_key_id": self.world.alice_key.key.access_key_id,
        }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(key: SigningKey, claims: Any, *, private_key: Any = None) -> str:
    """A compact JWS of ``claims`` (any JSON value) signed with ``key``: a valid signature.

    The JSON is written here, not by PyJWT, which refuses some claim types
    before signing; NaN and Infinity go out as Python's json writes them.
    With ``private_key``, that key signs under ``key``'s kid: a forgery.
    """
    header = {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    signing_input = f"{b64url(dumps(header))}.{b64url(dumps(claims))}".encode("ascii")
    private = private_key if private_key is not None else key.private_key
    if isinstance(private, rsa.RSAPrivateKey):
        signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def build_env(root: Path, **settings: Any) -> Env:
    """The app in ``root``: client CA configured, the mapping above, alice's token minted."""
    config = make_settings(root, client_ca_file="tls/ca.crt", **settings)
    config.mapping_file.write_text(MAPPING)
    clock = Clock(float(int(time.time())))
    store = open_store(f"sqlite:///{root}/authbridge.db", pepper=Pepper.generate())
    store.create_account(ACCOUNT)
    world = build_world(store)
    directory = KeyDirectory(config.keys_dir, prepublication_delay=600)
    directory.init("ES256", now=clock.now - 3600)
    ring = KeyRing(directory, clock=clock)
    app = create_app(
        config, store=store, keys=ring, clock=clock, mapping=MappingHolder(config.mapping_file)
    )
    client = app.test_client()
    return Env(
        config,
        store,
        world,
        ring,
        clock,
        app,
        client,
        user_token(client, world.alice_key),
        user_token(client, world.bob_key),
        sts_token(client, world.alice_key),
    )


# --------------------------------------------------------------------------- strategies

# Every code point, lone surrogates and controls included (st.text() leaves out surrogates).
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
SPECIAL_STRINGS = st.sampled_from(
    ["", "\ud800", "a\udfffb", "\x00", "nul\x00inside", "\x1b[31m", "\u2028", "é", " " * 3]
)
SECRET_SHAPED = st.builds(new_secret)
LONG_STRINGS = st.integers(min_value=1000, max_value=4000).map(lambda n: "x" * n)
SPECIAL_NUMBERS = st.sampled_from(
    [10**400, -(10**400), 2**63, 2**64 + 1, 1e308, -1e308, float("inf"), float("-inf"),
     float("nan"), -1, 0, 0.5, True, False]
)  # fmt: skip
STRINGS = st.one_of(st.text(ANY_CHAR, max_size=40), SPECIAL_STRINGS, SECRET_SHAPED, LONG_STRINGS)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), SPECIAL_NUMBERS, STRINGS)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(ANY_CHAR, max_size=8), inner, max_size=4),
    ),
    max_leaves=8,
)


def deep(depth: int) -> Any:
    """A list nested ``depth`` deep (parsers with recursion limits meet it)."""
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def dumps(value: Any) -> bytes:
    """``value`` as JSON bytes the way a hostile client writes them: surrogates escaped."""
    return json.dumps(value, ensure_ascii=True).encode("ascii")
