"""What ``authbridge token`` talks to and with which key: flags > environment > profile.

=====================  ===========================  ==========================
value                  environment                  profile key
=====================  ===========================  ==========================
``--profile``          ``AUTHBRIDGE_PROFILE``       (section name; ``default``)
``--endpoint``         ``AUTHBRIDGE_ENDPOINT``      ``endpoint``
(never a flag)         ``AUTHBRIDGE_ACCESS_KEY_ID``  ``access_key_id``
(never a flag)         ``AUTHBRIDGE_SECRET_ACCESS_KEY``  ``secret_access_key``
``--ca-file``          ``AUTHBRIDGE_CA_FILE``       ``ca_file``
``--cluster-id``       ``AUTHBRIDGE_CLUSTER_ID``    ``cluster_id``
=====================  ===========================  ==========================

The secret is never a command-line flag: argv is visible to every user in
``ps``. The access key id and secret travel as a pair, both from the
environment or both from the profile, so a key id is never sent with another
key's secret. Every value is checked here, before any request, and a bad one is
reported with where it came from (the flag, the variable, or the file, profile
and key).

Also the local checks on what a token request names (cluster id, role ARN,
session name): the server decides, but a typo is cheaper to catch here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from authbridge.client.credentials import (
    DEFAULT_PROFILE,
    PROFILE_NAME,
    Profile,
    credentials_path,
    read_credentials,
)
from authbridge.client.errors import CredentialsError

# Shared with `authbridge token`'s stdlib-only fast path, which copies this module's checks.
from authbridge.client.fastpath import ENV
from authbridge.errors import InputError

__all__ = [
    "ENV",
    "ClientConfig",
    "SignInTarget",
    "check_access_key_id",
    "check_ca_file",
    "check_cluster_id",
    "check_endpoint",
    "check_profile_name",
    "check_role_arn",
    "check_secret",
    "check_session_name",
    "resolve",
    "resolve_target",
]

# authbridge.iam.credentials: "AKIA" + 16 characters of the RFC 4648 base32 alphabet.
_ACCESS_KEY_ID = re.compile(r"AKIA[A-Z2-7]{16}", re.ASCII)
# The same rule as authbridge.settings._CLUSTER_ID (not imported: it is not cheap).
_CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)
# AWS IAM RoleSessionName: 2-64 of [\w+=,.@-] (ASCII).
_SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}", re.ASCII)
# arn:<partition>:iam::<12 digits>:role/<path/>Name, as authbridge.arn builds them.
_ROLE_ARN = re.compile(
    r"arn:[a-z][a-z0-9-]{0,31}:iam::[0-9]{12}:role/(?:[\x21-\x7e]*/)?[A-Za-z0-9_+=,.@-]{1,64}",
    re.ASCII,
)
_SECRET = re.compile(r"[\x21-\x7e]{16,256}", re.ASCII)
_MAX_URL = 2048
_MAX_PATH = 4096


def _short(value: str, limit: int = 60) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(shown)


def check_endpoint(value: str, source: str = "--endpoint") -> str:
    """An ``https://host[:port][/path]`` URL, without a trailing ``/``."""
    if not value.isascii() or not value.isprintable() or len(value) > _MAX_URL:
        raise InputError(source, "must be a printable ASCII URL of at most 2048 characters")
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port  # .port raises ValueError when out of range
    except ValueError as e:
        raise InputError(source, f"{_short(value)} is not a valid URL") from e
    if parts.scheme == "http":
        raise InputError(
            source,
            f"{_short(value)} is plain http; the access key secret and tokens need https",
            hint="use the https:// URL of the authbridge server",
        )
    if parts.scheme != "https" or not host:
        raise InputError(
            source,
            f"{_short(value)} is not an https:// URL",
            hint="e.g. https://authbridge.example.com:8443",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InputError(
            source, "must not carry user info, a query or a fragment; give the server's base URL"
        )
    return value.rstrip("/")


def check_access_key_id(value: str, source: str = "--access-key-id") -> str:
    if not _ACCESS_KEY_ID.fullmatch(value):
        raise InputError(
            source,
            "is not an access key id (AKIA followed by 16 of A-Z, 2-7)",
            hint="copy it from `authbridge iam create-access-key`",
        )
    return value


def check_secret(value: str, source: str = "secret access key") -> str:
    # Never quote the value: it is (perhaps mistyped) secret material.
    if not _SECRET.fullmatch(value):
        raise InputError(
            source,
            "must be 16 to 256 printable ASCII characters without spaces",
            hint="copy it from the output of `authbridge iam create-access-key`",
        )
    return value


def check_cluster_id(value: str, source: str = "--cluster-id") -> str:
    if not _CLUSTER_ID.fullmatch(value):
        raise InputError(
            source,
            f"{_short(value)} is not a cluster id (1-100 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit)",
        )
    return value


def check_session_name(value: str, source: str = "--session-name") -> str:
    if not _SESSION_NAME.fullmatch(value):
        raise InputError(
            source,
            f"{_short(value)} is not a role session name (2-64 letters, digits or + = , . @ _ -)",
        )
    return value


def check_role_arn(value: str, source: str = "--role") -> str:
    if not _ROLE_ARN.fullmatch(value):
        raise InputError(
            source,
            f"{_short(value)} is not a role ARN",
            hint="e.g. arn:aws:iam::111122223333:role/platform/Admin",
        )
    return value


def check_profile_name(value: str, source: str = "--profile") -> str:
    if not PROFILE_NAME.fullmatch(value):
        raise InputError(
            source,
            f"{_short(value)} is not a profile name (1-64 letters, digits or . _ - @ +,"
            " starting with a letter or digit)",
        )
    return value


def check_ca_file(value: str, source: str = "--ca-file") -> str:
    if not value or "\x00" in value or len(value) > _MAX_PATH:
        raise InputError(source, "must be the path of a PEM CA bundle")
    return value


@dataclass(frozen=True)
class ClientConfig:
    """Everything needed to ask the issuer for a token. The secret is never in ``repr``."""

    endpoint: str
    profile: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    ca_file: str | None
    cluster_id: str | None
    credentials_file: Path


@dataclass(frozen=True)
class SignInTarget:
    """A profile without an access key: ``authbridge login`` signs it in (a session)."""

    endpoint: str
    profile: str
    ca_file: str | None
    cluster_id: str | None
    credentials_file: Path
    profile_exists: bool  # whether the credentials file has the profile's section


def resolve(
    env: Mapping[str, str],
    *,
    profile: str | None = None,
    endpoint: str | None = None,
    ca_file: str | None = None,
    cluster_id: str | None = None,
) -> ClientConfig:
    """Merge flags (the keyword arguments), ``env`` and the credentials file, and check all."""
    got = _resolve(
        env, profile=profile, endpoint=endpoint, ca_file=ca_file, cluster_id=cluster_id,
        keyless=False,
    )  # fmt: skip
    if not isinstance(got, ClientConfig):  # keyless=False: a key, or CredentialsError
        raise AssertionError("resolve without a key")
    return got


def resolve_target(
    env: Mapping[str, str],
    *,
    profile: str | None = None,
    endpoint: str | None = None,
    ca_file: str | None = None,
    cluster_id: str | None = None,
    new_profile: bool = False,
) -> ClientConfig | SignInTarget:
    """As :func:`resolve`, but a profile with no access key at all (and none in the
    environment) is a :class:`SignInTarget` rather than an error. A profile with a key
    always uses it: a session is only for profiles without one. With ``new_profile``
    (``authbridge login``, which writes it) a ``--profile`` not in the file is no error."""
    return _resolve(
        env, profile=profile, endpoint=endpoint, ca_file=ca_file, cluster_id=cluster_id,
        keyless=True, new_profile=new_profile,
    )  # fmt: skip


def _resolve(
    env: Mapping[str, str],
    *,
    profile: str | None,
    endpoint: str | None,
    ca_file: str | None,
    cluster_id: str | None,
    keyless: bool,
    new_profile: bool = False,
) -> ClientConfig | SignInTarget:
    # Flags first: a mistyped flag is reported before any file is read.
    if endpoint is not None:
        check_endpoint(endpoint)
    if ca_file is not None:
        check_ca_file(ca_file)
    if cluster_id is not None:
        check_cluster_id(cluster_id)
    path = credentials_path(env)
    explicit = profile is not None or bool(env.get(ENV["profile"]))
    if profile is not None:
        name = check_profile_name(profile)
    elif env.get(ENV["profile"]):
        name = check_profile_name(env[ENV["profile"]], ENV["profile"])
    else:
        name = DEFAULT_PROFILE

    profiles = read_credentials(path)
    section: Profile | None = profiles.get(name) if profiles else None
    missing_file = " (no such file)" if profiles is None else ""
    if explicit and section is None and not new_profile:
        raise CredentialsError(
            f"profile {name} is not in {path}{missing_file}",
            hint=f"create it with `authbridge configure --profile {name} --endpoint URL"
            " --access-key-id AKIA…`"
            + (
                f", or sign in with `authbridge login --profile {name} --endpoint URL`"
                if keyless
                else ""
            ),
        )

    def from_profile(key: str) -> tuple[str, str] | None:
        if section is None or key not in section.values:
            return None
        value = section.values[key]
        source = f"credentials file {path}, profile {name}, key {key}"
        if not value:
            raise CredentialsError(f"{source} is empty", hint=f"set it, or remove the {key} line")
        return value, source

    def pick(key: str, flag: str | None, flag_name: str) -> tuple[str, str] | None:
        if flag is not None:
            return flag, flag_name
        if env.get(ENV[key]):
            return env[ENV[key]], ENV[key]
        return from_profile(key)

    def from_profile_required(key: str) -> tuple[str, str]:
        got = from_profile(key)
        if got is not None:
            return got
        if section is None:
            raise CredentialsError(
                f"no credentials: profile {name} is not in {path}{missing_file}",
                hint="run `authbridge configure --endpoint URL --access-key-id AKIA…`, or set"
                f" {ENV['access_key_id']} and {ENV['secret_access_key']}",
            )
        raise CredentialsError(
            f"credentials file {path}, profile {name} has no {key}",
            hint=f"run `authbridge configure --profile {name} …` to write it",
        )

    # The key pair: both from the environment, or both from the profile.
    env_id, env_secret = env.get(ENV["access_key_id"]), env.get(ENV["secret_access_key"])
    if bool(env_id) != bool(env_secret):
        missing = ENV["secret_access_key"] if env_id else ENV["access_key_id"]
        raise CredentialsError(
            f"{missing} is not set but its partner is",
            hint="set both, or neither to use the credentials file",
        )
    no_key = not env_id and (
        section is None
        or ("access_key_id" not in section.values and "secret_access_key" not in section.values)
    )
    key_id: tuple[str, str] | None = None
    secret: tuple[str, str] | None = None
    if env_id and env_secret:
        key_id, secret = (env_id, ENV["access_key_id"]), (env_secret, ENV["secret_access_key"])
    elif not (keyless and no_key):
        key_id = from_profile_required("access_key_id")
        secret = from_profile_required("secret_access_key")

    url = pick("endpoint", endpoint, "--endpoint")
    if url is None:
        raise CredentialsError(
            "no issuer endpoint",
            hint=f"pass --endpoint URL, set {ENV['endpoint']}, or add endpoint to profile"
            f" {name} with `authbridge configure`"
            + (" (or `authbridge login --endpoint URL`, which records it)" if keyless else ""),
        )
    ca = pick("ca_file", ca_file, "--ca-file")
    cluster = pick("cluster_id", cluster_id, "--cluster-id")

    ca_path: str | None = None
    if ca is not None:
        ca_path = check_ca_file(*ca)
        if ca[1].startswith("credentials file"):
            # Relative paths in the file resolve against its directory, as kubeconfig does.
            ca_path = str(path.parent / Path(ca_path).expanduser())
    if key_id is None or secret is None:
        return SignInTarget(
            endpoint=check_endpoint(*url),
            profile=name,
            ca_file=ca_path,
            cluster_id=check_cluster_id(*cluster) if cluster is not None else None,
            credentials_file=path,
            profile_exists=section is not None,
        )
    return ClientConfig(
        endpoint=check_endpoint(*url),
        profile=name,
        access_key_id=check_access_key_id(*key_id),
        secret_access_key=check_secret(*secret),
        ca_file=ca_path,
        cluster_id=check_cluster_id(*cluster) if cluster is not None else None,
        credentials_file=path,
    )
