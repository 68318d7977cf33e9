"""``authbridge iam …-open-id-connect-provider-sign-in`` as real subprocesses.

Covers, in store mode on each backend: update (public client, default scopes;
then with a client secret from stdin under a KEK and extra scopes), get showing
``SignIn`` (DisplayName, ClientID, ClientSecretSet, Scopes, RedirectUri under
the issuer) in JSON and text, delete, and deleting the provider deletes its
sign-in configuration. The client secret is never in any output, nor in the
store in the clear (the database file is searched for it), and opens with the
KEK only for its own provider (associated data). Refusals, one line naming the
field and the fix: a client id not in the ClientIDList, a secret without a
KEK, a hostile scope, an empty display name, the secret as an argument (no such
option), an unknown provider; ``--help`` has an example.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import time
from pathlib import Path

import pytest

from authbridge.iam import oidc_signin
from authbridge.keys import Kek
from tests.test_cli import ACCOUNT, Cli, clean_env
from tests.test_cli_signin import with_stdin

ARN = f"arn:aws:iam::{ACCOUNT}:oidc-provider/idp.example.com"
SECRET = "Sup3r-S3cret-Client-Value_0123456789"
ISSUER = "https://auth.example.test"


@pytest.fixture
def kek_value() -> bytes:
    return os.urandom(32)


@pytest.fixture
def cli(tmp_path: Path, kek_value: bytes) -> Cli:
    env = clean_env(
        AUTHBRIDGE_STORE=f"sqlite:///{tmp_path}/data/a.db",
        AUTHBRIDGE_ISSUER=ISSUER,
        AUTHBRIDGE_KEK=base64.b64encode(kek_value).decode(),
    )
    cli = Cli(tmp_path, env)
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok(
        "iam create-open-id-connect-provider --url https://idp.example.com"
        " --client-id-list authbridge-signin"
    )
    return cli


def _update(extra: str = "") -> str:
    return (
        f"iam update-open-id-connect-provider-sign-in --open-id-connect-provider-arn {ARN}"
        f" --display-name 'Example SSO' --client-id authbridge-signin {extra}"
    )


def test_sign_in_verbs_public_client_then_with_a_secret(
    cli: Cli, tmp_path: Path, kek_value: bytes
) -> None:
    made = cli.ok(_update())
    assert made.out == (
        f"OIDC provider {ARN} is a sign-in provider (Example SSO).\n"
        f"Register this redirect URI at the IdP: {ISSUER}/login/upstream/callback\n"
    )
    shown = cli.json(f"iam get-open-id-connect-provider --open-id-connect-provider-arn {ARN}")
    assert shown["SignIn"] == {
        "DisplayName": "Example SSO",
        "ClientID": "authbridge-signin",
        "ClientSecretSet": False,
        "Scopes": ["openid", "profile", "email"],
        "RedirectUri": f"{ISSUER}/login/upstream/callback",
    }

    argv = [*_argv_secret(), "--scope", "groups", "--scope", "profile", "-o", "json"]
    with_secret = with_stdin(cli, argv, SECRET + "\n")
    assert with_secret.rc == 0 and with_secret.err == "", with_secret
    assert SECRET not in with_secret.out
    assert with_secret.json()["SignIn"]["ClientSecretSet"] is True
    assert with_secret.json()["SignIn"]["Scopes"] == ["openid", "groups", "profile"]
    text = cli.ok(f"iam get-open-id-connect-provider --open-id-connect-provider-arn {ARN}")
    assert "Example SSO" in text.out and "ClientSecretSet" in text.out

    # The secret: in no output, not in the database file in the clear, sealed for its ARN.
    for result in cli.history:
        assert SECRET not in result.out and SECRET not in result.err
    db = tmp_path / "data" / "a.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
        (sealed,) = conn.execute("SELECT sealed_secret FROM iam_oidc_signin").fetchone()
    for path in db.parent.iterdir():
        assert SECRET.encode() not in path.read_bytes(), path
    kek = Kek(kek_value, "test")
    assert kek.open(sealed, oidc_signin.secret_aad(ARN)) == SECRET.encode()
    with pytest.raises(ValueError):
        kek.open(sealed, oidc_signin.secret_aad(ARN.replace("idp.", "other.")))

    cli.ok(f"iam delete-open-id-connect-provider-sign-in --open-id-connect-provider-arn {ARN}")
    shown = cli.json(f"iam get-open-id-connect-provider --open-id-connect-provider-arn {ARN}")
    assert "SignIn" not in shown
    cli.fails(
        f"iam delete-open-id-connect-provider-sign-in --open-id-connect-provider-arn {ARN}",
        "not a sign-in provider",
    )


def test_deleting_the_provider_deletes_its_sign_in(cli: Cli) -> None:
    cli.ok(_update())
    cli.ok(f"iam delete-open-id-connect-provider --open-id-connect-provider-arn {ARN}")
    cli.ok(
        "iam create-open-id-connect-provider --url https://idp.example.com"
        " --client-id-list authbridge-signin"
    )
    shown = cli.json(f"iam get-open-id-connect-provider --open-id-connect-provider-arn {ARN}")
    assert "SignIn" not in shown


def test_bad_sign_in_configuration_is_refused_naming_the_field(cli: Cli, tmp_path: Path) -> None:
    cli.fails(
        _update().replace("authbridge-signin", "stranger"),
        "ClientID",
        "not in the ClientIDList",
        "add-client-id-to-open-id-connect-provider",
    )
    cli.fails(_update("--scope 'bad\"scope'"), "Scopes[0]", "scope token")
    cli.fails(_update().replace("'Example SSO'", "''"), "DisplayName", "1 to 64")
    cli.fails(_update().replace("idp.example.com", "nope.example.com"), "does not exist")
    cli.usage_error(_update(f"--client-secret {SECRET}"), "No such option")


def test_a_client_secret_without_a_kek_is_refused_with_the_way_out(
    cli: Cli, tmp_path: Path
) -> None:
    env = dict(cli.env)
    env.pop("AUTHBRIDGE_KEK")
    no_kek = Cli(tmp_path, env)
    r = with_stdin(no_kek, [*_argv_secret()], SECRET + "\n")
    assert r.rc == 1 and r.out == "", r
    assert "ClientSecret" in r.err and "kekFile / AUTHBRIDGE_KEK" in r.err, r
    assert "PKCE without a secret" in r.err and SECRET not in r.err, r
    # The public client still works without a KEK.
    no_kek.ok(_update())


def _argv_secret() -> list[str]:
    return [
        "iam",
        "update-open-id-connect-provider-sign-in",
        "--open-id-connect-provider-arn",
        ARN,
        "--display-name",
        "Example SSO",
        "--client-id",
        "authbridge-signin",
        "--client-secret-stdin",
    ]


def test_sign_in_verbs_have_help_with_an_example(cli: Cli) -> None:
    for verb in (
        "update-open-id-connect-provider-sign-in",
        "delete-open-id-connect-provider-sign-in",
    ):
        r = cli.ok(f"iam {verb} --help")
        assert "Example:" in r.out and f"authbridge iam {verb}" in r.out


def test_revoke_sessions_of_a_role_ends_the_federated_sign_ins_working_as_it(cli: Cli) -> None:
    """`iam revoke-sessions --role-name` ends the sessions of people who picked the role."""
    from authbridge import signin
    from authbridge.iam.credentials import Pepper
    from authbridge.iam.sessions import FederatedSubject
    from authbridge.store import open_store

    role = cli.json(f"iam create-role --role-name Platform --trust arn:aws:iam::{ACCOUNT}:root")[
        "Role"
    ]
    store = open_store(cli.env["AUTHBRIDGE_STORE"], pepper=Pepper.generate())
    try:
        subject = FederatedSubject(
            subject_id="fed-cli",
            account_id=ACCOUNT,
            provider_arn=ARN,
            sub="00u-alice",
            role_arn=role["Arn"],
            role_id=role["RoleId"],
            session_name="alice",
            claims={"sub": "00u-alice"},
        )
        _, cookie = signin.start_browser_session(
            store, user_id=None, mfa=False, address=None, now=time.time(), federated=subject
        )
        assert signin.browser_session(store, cookie, time.time()) is not None
        got = cli.json("iam revoke-sessions --role-name Platform -o json")
        assert got == {"RoleName": "Platform", "SessionsRevoked": 1}
        assert signin.browser_session(store, cookie, time.time()) is None
    finally:
        store.close()
    assert cli.ok("iam revoke-sessions --role-name Platform").out.strip() == (
        "Ended 0 sign-in sessions of role Platform."
    )
    cli.usage_error("iam revoke-sessions", "exactly one of --user-name and --role-name")
    cli.usage_error(
        "iam revoke-sessions --user-name a --role-name Platform",
        "exactly one of --user-name and --role-name",
    )
    cli.fails("iam revoke-sessions --role-name Nobody", "Nobody", "does not exist")
