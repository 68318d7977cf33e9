"""Settings: precedence (flags > env > file > defaults), path resolution, and every
kind of bad input (malformed YAML, wrong types, unknown keys, oversized file)
reported at once with the setting's name and source; DSN passwords never shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from authbridge.errors import ConfigError
from authbridge.settings import MAX_CONFIG_BYTES, load_settings, redact_dsn


def test_defaults_resolve_against_the_working_directory(tmp_path: Path) -> None:
    s = load_settings({}, {}, None, cwd=tmp_path)
    assert s.store == f"sqlite:///{tmp_path}/data/authbridge.db"
    assert s.keys_dir == tmp_path / "keys"
    assert s.pepper_file == tmp_path / "keys" / "access-key-pepper"
    assert s.account_id is None and s.partition == "aws" and s.key_algorithm == "RS256"


def test_precedence_flags_env_file(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "authbridge.yaml"
    conf.parent.mkdir()
    conf.write_text("accountID: '111122223333'\npartition: aws-cn\nkeysDir: ../secrets\n")
    s = load_settings({}, {}, conf, cwd=tmp_path)
    assert s.account_id == "111122223333" and s.partition == "aws-cn"
    assert s.keys_dir == tmp_path / "secrets"  # relative to the file, like kubeconfig
    s = load_settings({}, {"AUTHBRIDGE_PARTITION": "aws-us-gov"}, conf, cwd=tmp_path)
    assert s.partition == "aws-us-gov" and s.account_id == "111122223333"
    s = load_settings(
        {"partition": "aws"}, {"AUTHBRIDGE_PARTITION": "aws-us-gov"}, conf, cwd=tmp_path
    )
    assert s.partition == "aws"
    s = load_settings({"keys_dir": "k"}, {}, conf, cwd=tmp_path)
    assert s.keys_dir == tmp_path / "k"  # flags resolve against the working directory


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        "accountID: '12'\nkeyAlgorithm: HS256\nbogus: 1\nprepublicationDelaySeconds: x\n"
    )
    with pytest.raises(ConfigError) as e:
        load_settings({"store": "mysql://x"}, {}, conf, cwd=tmp_path)
    text = str(e.value)
    assert len(e.value.problems) == 5
    for needle in (
        "unknown setting 'bogus'",
        "accountID must be exactly 12 digits",
        "keyAlgorithm must be RS256 or ES256",
        "--store must start with sqlite",
        "prepublicationDelaySeconds must be a whole number",
    ):
        assert needle in text


@pytest.mark.parametrize(
    "content",
    ["a: [unclosed", "- just\n- a list\n", "!!python/object:os.system 'true'", "\x00\x01"],
)
def test_malformed_config_files(tmp_path: Path, content: str) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_settings({}, {}, conf, cwd=tmp_path)
    assert str(conf) in str(e.value)


def test_oversized_and_missing_config(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_settings({}, {}, conf, cwd=tmp_path)
    with pytest.raises(ConfigError, match="authbridge init"):
        load_settings({}, {}, tmp_path / "absent.yaml", cwd=tmp_path)


def test_bool_is_not_a_number(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text("maxTokenLifetimeSeconds: true\n")
    with pytest.raises(ConfigError, match="maxTokenLifetimeSeconds"):
        load_settings({}, {}, conf, cwd=tmp_path)


def test_dsn_password_never_shown(tmp_path: Path) -> None:
    dsn = "postgresql://app:s3cr3t-pw@db:5432/iam?password=s3cr3t-pw"
    assert "s3cr3t" not in redact_dsn(dsn)
    s = load_settings({"store": dsn}, {}, None, cwd=tmp_path)
    assert "s3cr3t" not in repr(s)
    with pytest.raises(ConfigError) as e:
        load_settings({"store": "mysql://app:s3cr3t-pw@db/x"}, {}, None, cwd=tmp_path)
    assert "s3cr3t" not in str(e.value)


def test_abuse_limit_settings_defaults_env_file_and_validation(tmp_path: Path) -> None:
    s = load_settings({}, {}, None, cwd=tmp_path)
    assert s.failed_auth_per_key_all_addresses_per_minute == 1000
    assert (s.max_connections_per_address, s.handshake_timeout) == (128, 5)

    env = {
        "AUTHBRIDGE_FAILED_AUTH_PER_KEY_ALL_ADDRESSES_PER_MINUTE": "0",
        "AUTHBRIDGE_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "AUTHBRIDGE_HANDSHAKE_TIMEOUT": "2",
    }
    s = load_settings({}, env, None, cwd=tmp_path)
    assert s.failed_auth_per_key_all_addresses_per_minute == 0
    assert (s.max_connections_per_address, s.handshake_timeout) == (0, 2)

    conf = tmp_path / "authbridge.yaml"
    conf.write_text(
        "failedAuthPerKeyAllAddressesPerMinute: 5000\nmaxConnectionsPerAddress: 16\n"
        "handshakeTimeoutSeconds: 10\n"
    )
    s = load_settings({}, {}, conf, cwd=tmp_path)
    assert s.failed_auth_per_key_all_addresses_per_minute == 5000
    assert (s.max_connections_per_address, s.handshake_timeout) == (16, 10)

    conf.write_text(
        "failedAuthPerKeyAllAddressesPerMinute: -1\nmaxConnectionsPerAddress: many\n"
        "handshakeTimeoutSeconds: 0\n"
    )
    with pytest.raises(ConfigError) as e:
        load_settings({}, {}, conf, cwd=tmp_path)
    text = str(e.value)
    assert len(e.value.problems) == 3
    assert "failedAuthPerKeyAllAddressesPerMinute must be between 0 and 1000000" in text
    assert "maxConnectionsPerAddress must be a whole number of connections" in text
    assert "handshakeTimeoutSeconds must be between 1 and 30" in text


# -- signing keys in the store --------------------------------------------------------------


def test_key_source_is_files_unless_a_kek_is_configured(tmp_path: Path) -> None:
    plain = load_settings({}, {}, cwd=tmp_path)
    assert plain.key_source == "files" and plain.kek_file is None and plain.kek is None
    assert plain.rotation_period == 30 * 86400 and plain.key_refresh_seconds == 10
    by_file = load_settings({}, {"AUTHBRIDGE_KEK_FILE": "keys/kek"}, cwd=tmp_path)
    assert by_file.key_source == "store" and by_file.kek_file == tmp_path / "keys" / "kek"
    by_env = load_settings({}, {"AUTHBRIDGE_KEK": "c2VjcmV0"}, cwd=tmp_path)
    assert by_env.key_source == "store" and by_env.kek == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(by_env)
    forced = load_settings(
        {}, {"AUTHBRIDGE_KEK": "x", "AUTHBRIDGE_KEY_SOURCE": "files"}, cwd=tmp_path
    )
    assert forced.key_source == "files"


def test_key_source_store_without_a_kek_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"keySource is store but no key-encryption key.*kekFile"):
        load_settings({}, {"AUTHBRIDGE_KEY_SOURCE": "store"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="AUTHBRIDGE_KEY_SOURCE must be files or store"):
        load_settings({}, {"AUTHBRIDGE_KEY_SOURCE": "vault"}, cwd=tmp_path)


def test_kek_is_never_read_from_the_config_file(tmp_path: Path) -> None:
    """The config file is not a Secret: a KEK there is refused, and never echoed."""
    conf = tmp_path / "authbridge.yaml"
    conf.write_text("kek: c2VjcmV0c2VjcmV0c2VjcmV0\nkekFile: kek\n")
    with pytest.raises(ConfigError, match="unknown setting 'kek'") as e:
        load_settings({}, {}, conf, cwd=tmp_path)
    assert "c2VjcmV0c2VjcmV0c2VjcmV0" not in str(e.value)
    conf.write_text("kekFile: kek\nkeyRefreshSeconds: 2\nrotationPeriodSeconds: 0\n")
    s = load_settings({}, {}, conf, cwd=tmp_path)
    assert s.kek_file == tmp_path / "kek" and s.key_source == "store"
    assert s.key_refresh_seconds == 2 and s.rotation_period == 0


def test_rotation_period_must_outlast_the_prepublication_delay(tmp_path: Path) -> None:
    env = {"AUTHBRIDGE_ROTATION_PERIOD": "600", "AUTHBRIDGE_PREPUBLICATION_DELAY": "600"}
    with pytest.raises(ConfigError, match=r"rotationPeriodSeconds \(600\) must be longer"):
        load_settings({}, env, cwd=tmp_path)
    with pytest.raises(ConfigError, match="AUTHBRIDGE_KEY_REFRESH_SECONDS must be between 1"):
        load_settings({}, {"AUTHBRIDGE_KEY_REFRESH_SECONDS": "0"}, cwd=tmp_path)


# -- sign-in sessions ---------------------------------------------------------------------


def test_session_lifetime_settings_defaults_env_file_and_validation(tmp_path: Path) -> None:
    s = load_settings({}, {}, None, cwd=tmp_path)
    assert (s.session_max_seconds, s.session_idle_seconds) == (43200, 7200)
    env = {"AUTHBRIDGE_SESSION_MAX_SECONDS": "3600", "AUTHBRIDGE_SESSION_IDLE_SECONDS": "900"}
    s = load_settings({}, env, None, cwd=tmp_path)
    assert (s.session_max_seconds, s.session_idle_seconds) == (3600, 900)
    conf = tmp_path / "authbridge.yaml"
    conf.write_text("sessionMaxSeconds: 86400\nsessionIdleSeconds: 600\n")
    s = load_settings({}, {}, conf, cwd=tmp_path)
    assert (s.session_max_seconds, s.session_idle_seconds) == (86400, 600)

    conf.write_text("sessionMaxSeconds: 60\nsessionIdleSeconds: forever\n")
    with pytest.raises(ConfigError) as e:
        load_settings({}, {}, conf, cwd=tmp_path)
    assert len(e.value.problems) == 2
    assert "sessionMaxSeconds must be between 900 and 604800" in str(e.value)
    assert "sessionIdleSeconds must be a whole number of seconds" in str(e.value)

    conf.write_text("sessionMaxSeconds: 3600\nsessionIdleSeconds: 7200\n")
    with pytest.raises(ConfigError, match=r"sessionIdleSeconds \(7200\) is longer than"):
        load_settings({}, {}, conf, cwd=tmp_path)
