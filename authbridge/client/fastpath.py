"""The cached ``authbridge token`` on the standard library alone, and the rules both paths share.

kubectl runs ``authbridge token`` before every request, and nearly every run
finds a usable token in the cache. :func:`cached_output` answers that case
before click is imported (:mod:`authbridge.cli.entry` calls it), loading only
``os``, ``json``, ``time``, ``hashlib`` and ``stat``: no click,
``dataclasses``, ``typing``, ``pathlib`` or ``urllib`` at run time
(annotations are never evaluated), and ``re`` only because ``json`` compiles
its own patterns on import. It resolves flags > environment > profile as
:func:`authbridge.client.config.resolve` does, derives the cache key, reads
the entry under :class:`~authbridge.client.cache.TokenCache`'s checks and
renders what the click command would print, byte for byte.

It answers only that case. A miss, an entry inside the refresh window, a value
the click command would refuse or warn about, anything outside the plain forms
it knows: :func:`cached_output` returns ``None`` and the click CLI runs as if
it had never been asked, so every error and warning still comes from one
place. It never reports anything itself.

Shared with the click path, so the two cannot drift (:mod:`.cache`,
:mod:`.exec_credential` and :mod:`.config` import them from here): the cache
key and directory, the cache file's checks and decoding, the refresh rule,
``KUBERNETES_EXEC_INFO`` parsing, the ExecCredential document and the
environment variable names. Copied, because the originals need ``re``,
``urllib.parse`` or ``pathlib``: the value checks of :mod:`.config` and the
reader of :mod:`.credentials`. The copies accept a subset of what the
originals accept (ASCII-only credentials files, plain
``https://host[:port][/path]`` endpoints) and give the same values on it;
``tests/test_client_fastpath.py`` holds them to that and compares the bytes
both paths print.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time

# typing.TYPE_CHECKING without importing typing (mypy reads this name the same way).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final, TypeGuard

    from authbridge.client.exec_credential import ApiVersion, ExecCredential, ExecCredentialSpec

__all__ = [
    "API_V1",
    "DEFAULT_WEB_IDENTITY_SESSION",
    "ROLE_ENV",
    "TOKEN_FILE_ENV",
    "API_V1BETA1",
    "CACHE_DIR_FLAGS",
    "ENV",
    "EXEC_INFO_ENV",
    "KIND",
    "MAX_ENTRY_BYTES",
    "REFRESH_MARGIN",
    "SESSION_FILE",
    "SESSION_VERSION",
    "cache_directory",
    "cache_key",
    "cached_output",
    "exec_credential_document",
    "expiration",
    "is_access_key_id",
    "is_ca_file",
    "is_cluster_id",
    "is_profile_name",
    "is_role_arn",
    "is_secret",
    "is_session_name",
    "parse_entry",
    "parse_profiles",
    "plain_endpoint",
    "read_entry",
    "read_exec_info",
    "rfc3339",
    "session_directory",
    "session_summary",
    "usable",
    "web_identity_cache_key",
]

# -- shared with the click path -----------------------------------------------------------

API_V1: Final = "client.authentication.k8s.io/v1"
API_V1BETA1: Final = "client.authentication.k8s.io/v1beta1"
KIND: Final = "ExecCredential"
EXEC_INFO_ENV: Final = "KUBERNETES_EXEC_INFO"
REFRESH_MARGIN: Final = 60  # seconds before the token's exp that kubectl is told to refresh
MAX_ENTRY_BYTES: Final = 16 * 1024
# What the plugin reads from the environment (the table in authbridge.client.config).
ENV: Final = {
    "profile": "AUTHBRIDGE_PROFILE",
    "endpoint": "AUTHBRIDGE_ENDPOINT",
    "access_key_id": "AUTHBRIDGE_ACCESS_KEY_ID",
    "secret_access_key": "AUTHBRIDGE_SECRET_ACCESS_KEY",
    "ca_file": "AUTHBRIDGE_CA_FILE",
    "cluster_id": "AUTHBRIDGE_CLUSTER_ID",
}
# authbridge.client.web_identity's names (the fast path reads them too).
TOKEN_FILE_ENV: Final = "AUTHBRIDGE_WEB_IDENTITY_TOKEN_FILE"  # noqa: S105 - a variable name
ROLE_ENV: Final = "AUTHBRIDGE_ROLE_ARN"
DEFAULT_WEB_IDENTITY_SESSION: Final = "authbridge-web-identity"
# The cache directory is opened with these: a symlink in its place is refused.
CACHE_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_TOKEN = 8192  # authbridge.tokens.MAX_TOKEN_SIZE
# spec.cluster may carry the cluster's CA bundle; far more than that is not client-go.
_MAX_EXEC_INFO = 1024 * 1024


def rfc3339(ts: int) -> str:
    """Epoch seconds as RFC 3339 UTC with a ``Z``, the form metav1.Time marshals to."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def expiration(expires_at: int, now: float) -> int:
    """When kubectl should refresh: :data:`REFRESH_MARGIN` before ``exp``, never in the past."""
    return max(expires_at - REFRESH_MARGIN, min(int(now) + 1, expires_at))


def usable(expires_at: int, now: float) -> bool:
    """Whether a cached token is handed out at ``now``: until :data:`REFRESH_MARGIN` before exp."""
    return now < expires_at - REFRESH_MARGIN


def cache_key(
    *,
    endpoint: str,
    profile: str,
    access_key_id: str,
    cluster_id: str,
    role: str | None,
    session_name: str | None,
    duration: int | None,
) -> str:
    """The cache file's name (hex SHA-256) for a token request."""
    material = json.dumps(
        [
            "authbridge-token-v1",
            endpoint,
            profile,
            access_key_id,
            cluster_id,
            role or "",
            session_name or "",
            duration or 0,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def web_identity_cache_key(
    *,
    endpoint: str,
    token_file: str,
    cluster_id: str,
    role: str,
    session_name: str,
    duration: int | None,
) -> str:
    """The cache file's name for a web identity token request (no profile, no access key).

    The token file's absolute path stands for the profile: never a profile name
    (those have no ``:`` or ``/``), so the two kinds of entries cannot collide.
    """
    return cache_key(
        endpoint=endpoint,
        profile="web-identity:" + os.path.abspath(token_file),
        access_key_id="",
        cluster_id=cluster_id,
        role=role,
        session_name=session_name,
        duration=duration,
    )


def cache_directory(env: Mapping[str, str]) -> str:
    """``$HOME/.kube/cache/authbridge``."""
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".kube", "cache", "authbridge")


# The sign-in session of a profile without an access key (authbridge.client.session):
# session.json in its own 0700 directory, beside the token cache, with that session's
# cluster tokens (named as cache entries are) so `authbridge logout` can delete them all.
SESSION_FILE: Final = "session"  # read_entry's key: the file is session.json
SESSION_VERSION: Final = 1
_SESSION_KEY_LENGTH = 32  # hex characters of the random id naming one sign-in


def session_directory(env: Mapping[str, str], endpoint: str, profile: str) -> str:
    """``<cache>/session-<sha256(endpoint, profile)[:32]>``: one per profile and endpoint."""
    material = json.dumps(["authbridge-session-v1", endpoint, profile], separators=(",", ":"))
    digest = hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]
    return os.path.join(cache_directory(env), f"session-{digest}")


def session_summary(data: bytes) -> tuple[str, str | None, str | None] | None:
    """``(key, role, session name)`` of a session file: what names its cached tokens.

    ``None`` for anything :mod:`authbridge.client.session` would not have written
    (it checks the rest of the file; this reads only what the cache key needs).
    """
    if len(data) > MAX_ENTRY_BYTES:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != SESSION_VERSION:
        return None
    key, role, name = doc.get("key"), doc.get("role"), doc.get("sessionName")
    if not (
        isinstance(key, str)
        and len(key) == _SESSION_KEY_LENGTH
        and set(key) <= _HEX
        and (role is None or (isinstance(role, str) and is_role_arn(role)))
        and (name is None or (isinstance(name, str) and is_session_name(name)))
    ):
        return None
    return key, role, name


def read_entry(directory: str | os.PathLike[str], key: str) -> bytes | None:
    """The bytes of ``key``'s cache file, or ``None`` unless directory and file are ours alone.

    The directory must be ours and not writable by others; the file a regular
    file (not a symlink: ``O_NOFOLLOW``; not a FIFO: ``O_NONBLOCK`` cannot hang)
    owned by us, with no group/other permission, and small. It is opened
    relative to the directory's descriptor, so what is checked is what is read.
    """
    try:
        dir_fd = os.open(directory, CACHE_DIR_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(dir_fd)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
        try:
            fd = os.open(
                f"{key}.json",
                os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                dir_fd=dir_fd,
            )
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if (
                not stat.S_ISREG(st.st_mode)
                or st.st_uid != os.getuid()
                or st.st_mode & 0o077
                or st.st_size > MAX_ENTRY_BYTES
            ):
                return None
            return os.read(fd, MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def read_at_most(fd: int, limit: int) -> bytes:
    """What ``fd`` holds, read up to ``limit + 1`` bytes: longer than ``limit`` means too big."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = os.read(fd, limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def is_token(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a bearer token: ASCII, printable, no space, 1-8192 chars."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_TOKEN
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def parse_entry(data: bytes) -> tuple[str, int] | None:
    """``(token, exp)`` from a cache file, or ``None`` for anything we would not have written."""
    if len(data) > MAX_ENTRY_BYTES:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(doc, dict) or set(doc) != {"token", "expiresAt", "expirationTimestamp"}:
        return None
    token, expires_at, shown = doc["token"], doc["expiresAt"], doc["expirationTimestamp"]
    if not is_token(token) or isinstance(expires_at, bool) or not isinstance(expires_at, int):
        return None
    if not 0 < expires_at < 2**40 or shown != rfc3339(expires_at - REFRESH_MARGIN):
        return None
    return token, expires_at


def read_exec_info(raw: str | None) -> tuple[ApiVersion, bool | None, str | None]:
    """``KUBERNETES_EXEC_INFO`` as (apiVersion to answer in, spec.interactive, warning).

    The version client-go sent, else v1: absent (run by hand, or by an old
    client) without a warning, garbled or unknown with one saying why.
    """
    if raw is None or not raw.strip():
        return API_V1, None, None
    fallback = f"answering in {API_V1}"
    if len(raw) > _MAX_EXEC_INFO:
        return API_V1, None, f"{EXEC_INFO_ENV} is too large to be client-go's; {fallback}"
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return API_V1, None, f"{EXEC_INFO_ENV} is not JSON; {fallback}"
    if not isinstance(doc, dict):
        return API_V1, None, f"{EXEC_INFO_ENV} is not a JSON object; {fallback}"
    version = doc.get("apiVersion")
    if version not in (API_V1, API_V1BETA1):
        shown = repr(version)[:80] if isinstance(version, str) else "missing"
        return (
            API_V1,
            None,
            f"{EXEC_INFO_ENV} asks for apiVersion {shown}, which authbridge does not"
            f" speak; {fallback} (set exec.apiVersion to {API_V1} in the kubeconfig)",
        )
    spec = doc.get("spec")
    interactive = spec.get("interactive") if isinstance(spec, dict) else None
    return (
        API_V1 if version == API_V1 else API_V1BETA1,
        interactive if isinstance(interactive, bool) else None,
        None,
    )


def exec_credential_document(
    api_version: ApiVersion, interactive: bool | None, token: str, expires_at: int, now: float
) -> ExecCredential:
    """The ``ExecCredential`` for ``token`` (``exp`` = ``expires_at``) in ``api_version``."""
    spec: ExecCredentialSpec = {}
    if interactive is not None:
        spec["interactive"] = interactive
    return {
        "apiVersion": api_version,
        "kind": KIND,
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(expiration(expires_at, now))},
    }


# -- copies of checks whose originals need re, urllib.parse or pathlib ---------------------
# Each accepts only values the original accepts, and returns what it returns.

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
_DIGITS = frozenset("0123456789")
_ALNUM = frozenset(_UPPER + _LOWER) | _DIGITS
_BASE32 = frozenset(_UPPER + "234567")
_HEX = frozenset("0123456789abcdef")
_VISIBLE = frozenset(map(chr, range(0x21, 0x7F)))  # [\x21-\x7e]
_CLUSTER_ID = _ALNUM | frozenset("._-")
_PROFILE_NAME = _ALNUM | frozenset("_.@+-")
_SESSION_NAME = _ALNUM | frozenset("_+=,.@-")
_PARTITION = frozenset(_LOWER) | _DIGITS | {"-"}
_INI_KEY = frozenset(_LOWER + "_") | _DIGITS
_HOST = _ALNUM | frozenset(".-")
_URL_PATH = _ALNUM | frozenset("-._~/")
# The credentials files read here: printable ASCII, tabs and line ends (the parser
# refuses control characters; other text only ever falls back).
_INI_TEXT = frozenset(map(chr, range(0x20, 0x7F))) | {"\t", "\r", "\n"}

_CREDENTIALS_ENV = "AUTHBRIDGE_CREDENTIALS_FILE"  # authbridge.client.credentials.CREDENTIALS_ENV
_DEFAULT_PROFILE = "default"  # authbridge.client.credentials.DEFAULT_PROFILE
_MAX_CREDENTIALS_BYTES = 64 * 1024  # authbridge.client.credentials.MAX_CREDENTIALS_BYTES
_MAX_URL = 2048
_MAX_PATH = 4096


def is_cluster_id(value: str) -> bool:
    """``config.check_cluster_id``: 1-100 of ``[A-Za-z0-9._-]``, starting alphanumeric."""
    return 0 < len(value) <= 100 and value[0] in _ALNUM and set(value) <= _CLUSTER_ID


def is_profile_name(value: str) -> bool:
    """``credentials.PROFILE_NAME``: 1-64 of ``[A-Za-z0-9_.@+-]``, starting alphanumeric."""
    return 0 < len(value) <= 64 and value[0] in _ALNUM and set(value) <= _PROFILE_NAME


def is_access_key_id(value: str) -> bool:
    """``config.check_access_key_id``: ``AKIA`` and 16 of the base32 alphabet."""
    return len(value) == 20 and value.startswith("AKIA") and set(value[4:]) <= _BASE32


def is_secret(value: str) -> bool:
    """``config.check_secret``: 16-256 visible ASCII characters."""
    return 16 <= len(value) <= 256 and set(value) <= _VISIBLE


def is_session_name(value: str) -> bool:
    """``config.check_session_name``: 2-64 of ``[A-Za-z0-9_+=,.@-]``."""
    return 2 <= len(value) <= 64 and set(value) <= _SESSION_NAME


def is_role_arn(value: str) -> bool:
    """``config.check_role_arn``: ``arn:<partition>:iam::<12 digits>:role/[<path>/]<name>``."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2:4] != ["iam", ""]:
        return False
    partition, account, resource = parts[1], parts[4], parts[5]
    if not (0 < len(partition) <= 32 and partition[0] in _LOWER and set(partition) <= _PARTITION):
        return False
    if len(account) != 12 or not set(account) <= _DIGITS or not resource.startswith("role/"):
        return False
    path, _, name = resource[5:].rpartition("/")
    return set(path) <= _VISIBLE and 0 < len(name) <= 64 and set(name) <= _SESSION_NAME


def is_ca_file(value: str) -> bool:
    """``config.check_ca_file``: a path, not empty, no NUL, at most 4096 characters."""
    return bool(value) and "\x00" not in value and len(value) <= _MAX_PATH


def plain_endpoint(value: str) -> str | None:
    """``config.check_endpoint``'s answer for a plain ``https://host[:port][/path]`` URL, else None.

    Host of letters, digits, ``.`` and ``-``; a port of 1-5 digits up to 65535;
    a path of letters, digits and ``-._~/``. Anything else (user info, a query,
    IPv6 brackets, percent-escapes, upper-case scheme, …) is left to the original.
    """
    if len(value) > _MAX_URL or not value.startswith("https://"):
        return None
    netloc, _, path = value[len("https://") :].partition("/")
    host, colon, port = netloc.partition(":")
    if not host or not set(host) <= _HOST or not set(path) <= _URL_PATH:
        return None
    if colon and not (0 < len(port) <= 5 and set(port) <= _DIGITS and int(port) <= 65535):
        return None
    return value.rstrip("/")


def parse_profiles(text: str) -> dict[str, dict[str, str]] | None:
    """``credentials.parse_credentials`` (each profile's values) for ASCII text, else None.

    ``None`` for every text the original refuses, and for any character
    outside printable ASCII, tab, CR and LF (the original's control-character
    and Unicode-whitespace rules are then its own to apply).
    """
    if not set(text) <= _INI_TEXT:
        return None
    profiles: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            name = line[1:-1].strip() if line.endswith("]") else ""
            if not is_profile_name(name) or name in profiles:
                return None
            current = profiles[name] = {}
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if not sep or not _is_ini_key(key) or current is None or key in current:
            return None
        current[key] = value.strip()
    return profiles


def _is_ini_key(value: str) -> bool:
    # credentials._KEY: [a-z][a-z0-9_]{0,63}
    return 0 < len(value) <= 64 and value[0] in _LOWER and set(value) <= _INI_KEY


# -- the fast path -------------------------------------------------------------------------


class _Fallback(Exception):
    """Not the plain cache hit answered here: the click CLI decides (and says why)."""


def cached_output(
    env: Mapping[str, str],
    now: float,
    *,
    cluster_id: str | None = None,
    role: str | None = None,
    session_name: str | None = None,
    profile: str | None = None,
    endpoint: str | None = None,
    duration: int | None = None,
    ca_file: str | None = None,
    token_only: bool = False,
    web_identity_token_file: str | None = None,
) -> str | None:
    """What ``authbridge token`` with these flags prints for a usable cached token, else ``None``.

    The keyword arguments are the command's options as click parsed them (not
    given: ``None``); ``duration`` is already within the option's range.
    """
    try:
        token_file = web_identity_token_file or env.get(TOKEN_FILE_ENV) or None
        if token_file is not None:
            # authbridge.cli.token._web_identity, up to the cache lookup.
            if profile is not None:
                raise _Fallback
            role = role or env.get(ROLE_ENV) or None
            session_name = session_name or DEFAULT_WEB_IDENTITY_SESSION
            wi_url = plain_endpoint(endpoint or env.get(ENV["endpoint"]) or "")
            wi_cluster = cluster_id or env.get(ENV["cluster_id"]) or ""
            wi_ca = ca_file or env.get(ENV["ca_file"]) or None
            if (
                role is None
                or not is_role_arn(role)
                or not is_session_name(session_name)
                or wi_url is None
                or not is_cluster_id(wi_cluster)
                or (wi_ca is not None and not is_ca_file(wi_ca))
            ):
                raise _Fallback
            key = web_identity_cache_key(
                endpoint=wi_url,
                token_file=token_file,
                cluster_id=wi_cluster,
                role=role,
                session_name=session_name,
                duration=duration,
            )
            data = read_entry(cache_directory(env), key)
            return _render(data, env, now, token_only)
        # authbridge.cli.token.token, up to the cache lookup.
        if session_name is not None and role is None:
            raise _Fallback
        url, name, key_id, cluster = _resolve(env, profile, endpoint, ca_file, cluster_id)
        if cluster is None:
            raise _Fallback
        directory = cache_directory(env)
        default_name = key_id
        if key_id is None:
            # No access key: the profile's sign-in session (authbridge.cli.token._session_target).
            directory = session_directory(env, url, name)
            raw = read_entry(directory, SESSION_FILE)
            summary = session_summary(raw) if raw is not None else None
            if summary is None:
                raise _Fallback
            session_key, session_role, default_name = summary
            key_id = "session:" + session_key
            if role is None and session_role is not None:
                if session_name is not None:
                    raise _Fallback
                role, session_name = session_role, default_name
        if role is not None:
            if session_name and not is_session_name(session_name):
                raise _Fallback
            # The default session name is the access key id (or the signed-in user's
            # name), as the click command has it.
            session_name = session_name or default_name
            if not session_name or not is_role_arn(role):
                raise _Fallback
        key = cache_key(
            endpoint=url,
            profile=name,
            access_key_id=key_id,
            cluster_id=cluster,
            role=role,
            session_name=session_name,
            duration=duration,
        )
        data = read_entry(directory, key)
    except Exception:  # _Fallback, or anything unforeseen: the click CLI will meet it too
        return None
    return _render(data, env, now, token_only)


def _render(data: bytes | None, env: Mapping[str, str], now: float, token_only: bool) -> str | None:
    """What the click command prints for the cache entry ``data``, or None to fall back."""
    entry = parse_entry(data) if data is not None else None
    if entry is None or not usable(entry[1], now):
        return None
    token, expires_at = entry

    # authbridge.cli.token._emit.
    if token_only:
        return token + "\n"
    api_version, interactive, warning = read_exec_info(env.get(EXEC_INFO_ENV))
    if warning is not None:
        return None  # the click command prints it
    doc = exec_credential_document(api_version, interactive, token, expires_at, now)
    return json.dumps(doc, separators=(",", ":")) + "\n"


def _resolve(
    env: Mapping[str, str],
    profile: str | None,
    endpoint: str | None,
    ca_file: str | None,
    cluster_id: str | None,
) -> tuple[str, str, str | None, str | None]:
    """``config.resolve``'s (endpoint, profile, access key id, cluster id); _Fallback where it
    would raise, and wherever a copied check is unsure. The key id is ``None`` for a profile
    without a key, which :func:`authbridge.client.config.resolve_target` resolves the same."""
    if endpoint is not None and plain_endpoint(endpoint) is None:
        raise _Fallback
    if ca_file is not None and not is_ca_file(ca_file):
        raise _Fallback
    if cluster_id is not None and not is_cluster_id(cluster_id):
        raise _Fallback
    path = _credentials_path(env)
    explicit = profile is not None or bool(env.get(ENV["profile"]))
    if profile is not None:
        name = profile
    elif env.get(ENV["profile"]):
        name = env[ENV["profile"]]
    else:
        name = _DEFAULT_PROFILE
    if not is_profile_name(name):
        raise _Fallback

    profiles = _read_profiles(path)
    section = profiles.get(name) if profiles else None
    if explicit and section is None:
        raise _Fallback

    def from_profile(key: str) -> str | None:
        if section is None or key not in section:
            return None
        if not section[key]:
            raise _Fallback
        return section[key]

    def pick(key: str, flag: str | None) -> tuple[str, bool] | None:
        """(value, whether it came from the profile)."""
        if flag is not None:
            return flag, False
        if env.get(ENV[key]):
            return env[ENV[key]], False
        value = from_profile(key)
        return None if value is None else (value, True)

    env_id, env_secret = env.get(ENV["access_key_id"]), env.get(ENV["secret_access_key"])
    if bool(env_id) != bool(env_secret):
        raise _Fallback
    key_id: str | None
    secret: str | None
    if env_id and env_secret:
        key_id, secret = env_id, env_secret
    else:
        key_id, secret = from_profile("access_key_id"), from_profile("secret_access_key")
        if (key_id is None) != (secret is None):
            raise _Fallback

    url = pick("endpoint", endpoint)
    ca = pick("ca_file", ca_file)
    cluster = pick("cluster_id", cluster_id)
    if url is None:
        raise _Fallback
    if ca is not None:
        # From the profile it is resolved against the file's directory with
        # Path.expanduser, which may look up a user's home (or fail): "./~x" too.
        if not is_ca_file(ca[0]) or (ca[1] and "~" in ca[0]):
            raise _Fallback
    checked_url = plain_endpoint(url[0])
    if checked_url is None:
        raise _Fallback
    # No key at all: a profile that signs in (authbridge login); the caller reads the session.
    if key_id is not None and not (
        is_access_key_id(key_id) and secret is not None and is_secret(secret)
    ):
        raise _Fallback
    if cluster is not None and not is_cluster_id(cluster[0]):
        raise _Fallback
    return checked_url, name, key_id, None if cluster is None else cluster[0]


def _credentials_path(env: Mapping[str, str]) -> str:
    """``credentials.credentials_path``, as a string naming the same file."""
    override = env.get(_CREDENTIALS_ENV)
    if override:
        if "~" in override:
            raise _Fallback  # Path.expanduser: a user's home, or none at all ("./~x" too)
        return override
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".authbridge", "credentials")


def _read_profiles(path: str) -> dict[str, dict[str, str]] | None:
    """``credentials.read_credentials``: None when there is no such file; _Fallback where it
    would raise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077:
            raise _Fallback
        data = read_at_most(fd, _MAX_CREDENTIALS_BYTES)
    finally:
        os.close(fd)
    if len(data) > _MAX_CREDENTIALS_BYTES:
        raise _Fallback
    profiles = parse_profiles(data.decode("utf-8"))
    if profiles is None:
        raise _Fallback
    return profiles
