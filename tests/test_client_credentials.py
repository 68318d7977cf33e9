"""The credentials file and where ``authbridge token`` gets its endpoint and key.

Covers :mod:`authbridge.client.credentials` (parsing: comments, CRLF, every
malformed shape named by file and line and never quoting the content; reading:
missing file, group/world permissions refused with ``chmod 600``, FIFO,
directory, oversized, not UTF-8; updating one profile while keeping the others
and the comments; the atomic 0600 write in a 0700 directory) and
:mod:`authbridge.client.config` (flags > environment > profile, the key pair
kept together, missing and bad values named with their source, relative
``ca_file`` against the file's directory, http refused).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from authbridge.client import config
from authbridge.client.credentials import (
    MAX_CREDENTIALS_BYTES,
    credentials_path,
    parse_credentials,
    read_credentials,
    read_credentials_text,
    update_profile,
    write_credentials,
)
from authbridge.client.errors import CredentialsError
from authbridge.errors import AuthbridgeError, InputError

KEY_ID = "AKIAABCDEFGHIJKLMNOP"
OTHER_KEY_ID = "AKIAZZZZZZZZZZZZZZZZ"
SECRET = "s3cr3t-Value_that-is-long-enough-0123456"
OTHER_SECRET = "another-secret-value-long-enough-98765432"

GOOD = f"""# my profiles
[default]
endpoint = https://authbridge.example.com:8443
access_key_id = {KEY_ID}
secret_access_key = {SECRET}

; the CI one
[ci]
Endpoint=https://ci.example.com/
access_key_id = {OTHER_KEY_ID}
secret_access_key = {OTHER_SECRET}
ca_file = ca.crt
cluster_id = prod
"""


def write(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    os.chmod(path, mode)
    return path


# -- parsing ------------------------------------------------------------------------------


def test_parses_profiles_comments_blank_lines_and_crlf() -> None:
    profiles = parse_credentials(GOOD.replace("\n", "\r\n"), "f")
    assert list(profiles) == ["default", "ci"]
    assert profiles["default"].values == {
        "endpoint": "https://authbridge.example.com:8443",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    # Keys are case-insensitive, values stripped and otherwise as written.
    assert profiles["ci"].values["endpoint"] == "https://ci.example.com/"
    assert profiles["ci"].line == 8


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (f"secret_access_key = {SECRET}\n", "line 1 sets secret_access_key before any [profile]"),
        (f"[default]\n{SECRET}\n", "line 2 is not `key = value`"),
        (f"[default]\nsecret {SECRET}\n", "line 2 is not `key = value`"),
        (f"[default\nsecret_access_key = {SECRET}\n", "line 1 is not a [profile-name] header"),
        ("[]\n", "line 1 is not a [profile-name] header"),
        ("[a b]\n", "line 1 is not a [profile-name] header"),
        ("[default]\n[default]\n", "profile default appears twice (lines 1 and 2)"),
        (
            f"[default]\nsecret_access_key = {SECRET}\nSECRET_ACCESS_KEY = {SECRET}\n",
            "profile default, key secret_access_key is set twice (line 3)",
        ),
        (f"[default]\nsecret_access_key = {SECRET}\x1b[2J\n", "line 2 holds a control character"),
        (f"[default]\nsecret_access_key = {SECRET}\x00\n", "line 2 holds a control character"),
        (f"[default]\nsecret_access_key = {SECRET}\u2028x\n", "line 2 holds a control character"),
        ("[default]\n" + "k" * 100 + " = v\n", "line 2 is not `key = value`"),
    ],
)
def test_malformed_file_is_named_by_line_without_quoting_it(text: str, says: str) -> None:
    with pytest.raises(CredentialsError) as e:
        parse_credentials(text, "/home/me/.authbridge/credentials")
    message = str(e.value)
    assert message.startswith("credentials file /home/me/.authbridge/credentials: ")
    assert says in message
    assert SECRET not in message and "\n" not in message


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert read_credentials(tmp_path / "nope") is None


def test_private_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "credentials", GOOD)
    profiles = read_credentials(path)
    assert profiles is not None and set(profiles) == {"default", "ci"}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_file_others_may_use_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = write(tmp_path / "credentials", GOOD, mode)
    with pytest.raises(CredentialsError) as e:
        read_credentials(path)
    assert str(path) in str(e.value)
    assert f"`chmod 600 {path}`" in str(e.value)
    assert f"{mode:04o}" in str(e.value)
    # configure reads it anyway, to replace it with a private file.
    got = read_credentials_text(path, private=False)
    assert got is not None and got[1] == mode


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    os.mkfifo(path, 0o600)
    with pytest.raises(CredentialsError, match="is not a regular file"):
        read_credentials(path)


def test_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.mkdir(mode=0o700)
    with pytest.raises(CredentialsError, match="is not a regular file"):
        read_credentials(path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "credentials", "#" * (MAX_CREDENTIALS_BYTES + 1))
    with pytest.raises(CredentialsError, match="is larger than 64 KiB"):
        read_credentials(path)
    write(path, "#" * MAX_CREDENTIALS_BYTES)
    assert read_credentials(path) == {}


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "credentials", b"[default]\nsecret_access_key = \xff\xfe\n")
    with pytest.raises(CredentialsError, match="is not UTF-8 text"):
        read_credentials(path)


def test_credentials_path_respects_home_and_override(tmp_path: Path) -> None:
    assert credentials_path({"HOME": str(tmp_path)}) == tmp_path / ".authbridge" / "credentials"
    other = tmp_path / "elsewhere" / "creds"
    env = {"HOME": "/nonexistent", "AUTHBRIDGE_CREDENTIALS_FILE": str(other)}
    assert credentials_path(env) == other


# -- updating -----------------------------------------------------------------------------


def test_update_keeps_other_profiles_and_comments_and_merges_values() -> None:
    text = update_profile(GOOD, "default", {"endpoint": "https://new.example.com"}, "f")
    profiles = parse_credentials(text, "f")
    assert profiles["default"].values == {
        "endpoint": "https://new.example.com",
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
    }
    assert profiles["ci"].values == parse_credentials(GOOD, "f")["ci"].values
    assert text.startswith("# my profiles\n[default]\n")
    assert "; the CI one\n[ci]\n" in text


def test_update_appends_a_new_profile() -> None:
    text = update_profile(GOOD, "dev", {"endpoint": "https://dev.example.com"}, "f")
    assert text.startswith(GOOD.rstrip("\n"))
    assert text.endswith("\n\n[dev]\nendpoint = https://dev.example.com\n")
    assert update_profile("", "x", {"cluster_id": "a"}, "f") == "[x]\ncluster_id = a\n"


def test_update_refuses_a_malformed_file() -> None:
    with pytest.raises(CredentialsError, match="line 1"):
        update_profile("garbage\n", "default", {"endpoint": "https://x"}, "f")


def test_write_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".authbridge" / "credentials"
    write_credentials(path, GOOD)
    assert path.read_text() == GOOD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path.parent, 0o755)  # noqa: S103 - the unsafe state under test
    os.chmod(path, 0o644)
    write_credentials(path, GOOD + "# again\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials"]


# -- resolving: flags > environment > profile ---------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write(tmp_path / ".authbridge" / "credentials", GOOD)
    return tmp_path


def test_default_profile_from_the_file(home: Path) -> None:
    cfg = config.resolve({"HOME": str(home)})
    assert (cfg.profile, cfg.endpoint, cfg.access_key_id) == (
        "default",
        "https://authbridge.example.com:8443",
        KEY_ID,
    )
    assert cfg.secret_access_key == SECRET and SECRET not in repr(cfg)
    assert cfg.ca_file is None and cfg.cluster_id is None


def test_named_profile_trailing_slash_and_relative_ca_file(home: Path) -> None:
    cfg = config.resolve({"HOME": str(home), "AUTHBRIDGE_PROFILE": "ci"})
    assert cfg.endpoint == "https://ci.example.com"
    assert cfg.ca_file == str(home / ".authbridge" / "ca.crt")
    assert cfg.cluster_id == "prod"


def test_flags_beat_environment_beat_profile(home: Path) -> None:
    env = {
        "HOME": str(home),
        "AUTHBRIDGE_PROFILE": "ci",
        "AUTHBRIDGE_ENDPOINT": "https://env.example.com",
        "AUTHBRIDGE_CLUSTER_ID": "env-cluster",
        "AUTHBRIDGE_CA_FILE": "/env/ca.pem",
    }
    cfg = config.resolve(env)
    assert (cfg.endpoint, cfg.cluster_id, cfg.ca_file) == (
        "https://env.example.com",
        "env-cluster",
        "/env/ca.pem",
    )
    cfg = config.resolve(
        env,
        profile="default",
        endpoint="https://flag.example.com",
        cluster_id="flag-cluster",
        ca_file="flag-ca.pem",
    )
    assert (cfg.profile, cfg.endpoint, cfg.cluster_id, cfg.ca_file) == (
        "default",
        "https://flag.example.com",
        "flag-cluster",
        "flag-ca.pem",
    )
    assert cfg.access_key_id == KEY_ID  # the profile the flag named


def test_environment_key_pair_wins_as_a_pair(home: Path) -> None:
    env = {
        "HOME": str(home),
        "AUTHBRIDGE_ACCESS_KEY_ID": OTHER_KEY_ID,
        "AUTHBRIDGE_SECRET_ACCESS_KEY": OTHER_SECRET,
    }
    cfg = config.resolve(env)
    assert (cfg.access_key_id, cfg.secret_access_key) == (OTHER_KEY_ID, OTHER_SECRET)
    assert cfg.endpoint == "https://authbridge.example.com:8443"  # still from the profile
    del env["AUTHBRIDGE_SECRET_ACCESS_KEY"]
    with pytest.raises(CredentialsError, match="AUTHBRIDGE_SECRET_ACCESS_KEY is not set"):
        config.resolve(env)


def test_environment_alone_needs_no_file(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "AUTHBRIDGE_ACCESS_KEY_ID": KEY_ID,
        "AUTHBRIDGE_SECRET_ACCESS_KEY": SECRET,
        "AUTHBRIDGE_ENDPOINT": "https://env.example.com",
    }
    assert config.resolve(env).endpoint == "https://env.example.com"
    del env["AUTHBRIDGE_ENDPOINT"]
    with pytest.raises(CredentialsError, match="no issuer endpoint; pass --endpoint URL"):
        config.resolve(env)


def test_no_credentials_at_all_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as e:
        config.resolve({"HOME": str(tmp_path)})
    assert "(no such file)" in str(e.value) and "authbridge configure" in str(e.value)


def test_explicit_profile_must_exist(home: Path) -> None:
    with pytest.raises(CredentialsError, match="profile nope is not in .*configure --profile nope"):
        config.resolve({"HOME": str(home)}, profile="nope")


@pytest.mark.parametrize(
    ("profile_text", "says"),
    [
        ("endpoint = https://x.example.com\n", "profile p has no access_key_id"),
        (
            f"endpoint = https://x.example.com\naccess_key_id = {KEY_ID}\n",
            "profile p has no secret_access_key",
        ),
        (
            f"access_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\n",
            "no issuer endpoint",
        ),
        (
            f"endpoint =\naccess_key_id = {KEY_ID}\nsecret_access_key = {SECRET}\n",
            "profile p, key endpoint is empty",
        ),
        (
            f"endpoint = http://x.example.com\naccess_key_id = {KEY_ID}\n"
            f"secret_access_key = {SECRET}\n",
            "profile p, key endpoint: 'http://x.example.com' is plain http",
        ),
        (
            f"endpoint = https://x.example.com\naccess_key_id = akia{KEY_ID[4:]}\n"
            f"secret_access_key = {SECRET}\n",
            "profile p, key access_key_id: is not an access key id",
        ),
        (
            f"endpoint = https://x.example.com\naccess_key_id = {KEY_ID}\n"
            "secret_access_key = short\n",
            "profile p, key secret_access_key: must be 16 to 256",
        ),
        (
            f"endpoint = https://x.example.com\naccess_key_id = {KEY_ID}\n"
            f"secret_access_key = {SECRET}\ncluster_id = -bad\n",
            "profile p, key cluster_id: '-bad' is not a cluster id",
        ),
    ],
)
def test_bad_or_missing_profile_values_name_file_profile_and_key(
    tmp_path: Path, profile_text: str, says: str
) -> None:
    path = write(tmp_path / ".authbridge" / "credentials", "[p]\n" + profile_text)
    with pytest.raises(AuthbridgeError) as e:
        config.resolve({"HOME": str(tmp_path)}, profile="p")
    assert says in str(e.value)
    if "no issuer endpoint" not in says:
        assert str(path) in str(e.value)
    assert "short" not in str(e.value) or "secret" not in says


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://a.example.com", "plain http"),
        ("ftp://a.example.com", "is not an https:// URL"),
        ("https://", "is not an https:// URL"),
        ("https://u:p@a.example.com", "must not carry user info"),
        ("https://a.example.com/?x=1", "must not carry user info, a query"),
        ("https://a.example.com:99999", "is not a valid URL"),
        ("https://a.example.com/\n", "printable ASCII"),
        ("https://ä.example.com", "printable ASCII"),
    ],
)
def test_endpoint_rules(url: str, says: str) -> None:
    with pytest.raises(InputError, match="--endpoint: .*" + says.replace("?", r"\?")):
        config.check_endpoint(url)


def test_local_checks_on_names() -> None:
    assert (
        config.check_endpoint("https://a.example.com:8443/ab/") == "https://a.example.com:8443/ab"
    )
    assert config.check_session_name("alice@example.com") == "alice@example.com"
    for bad in ("a", "x" * 65, "has space", "semi;colon"):
        with pytest.raises(InputError, match="--session-name"):
            config.check_session_name(bad)
    assert config.check_role_arn("arn:aws:iam::111122223333:role/platform/Admin")
    for bad in (
        "arn:aws:iam::111122223333:user/alice",
        "arn:aws:iam::1111:role/Admin",
        "Admin",
        "arn:aws:sts::111122223333:assumed-role/Admin/s",
    ):
        with pytest.raises(InputError, match="--role"):
            config.check_role_arn(bad)
    with pytest.raises(InputError, match="--profile"):
        config.check_profile_name("../etc")
