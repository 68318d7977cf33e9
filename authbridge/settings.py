"""One validated, frozen settings object; precedence flags > AUTHBRIDGE_* env > file > defaults.

Every problem is collected and reported at once (a config with three mistakes
is one error listing three lines), each naming the setting, where it came
from and what is expected. Relative paths in a config file resolve against
the file's directory, as kubeconfig paths do; relative paths from flags or the
environment resolve against the working directory.

Abuse limits (config key, env var, unit, default, range; 0 turns a limit off):

=========================================  ============  =======  =============
setting                                    unit          default  range
=========================================  ============  =======  =============
``failedAuthPerKeyPerMinute``              attempts/min  10       0-10000
``failedAuthPerAddressPerMinute``          attempts/min  30       0-100000
``failedAuthPerKeyAllAddressesPerMinute``  attempts/min  1000     0-1000000
``maxConnectionsPerAddress``               connections   128      0-1000000
``handshakeTimeoutSeconds``                seconds       5        1-30
=========================================  ============  =======  =============

The first three count failed client authentications and refused token
exchanges (:mod:`authbridge.web.limits`): for one access key id from one
client address, for one client address, and for one access key id from all
addresses together. There the client address is the TCP peer, or the client
a peer in ``trustedProxies`` names in ``X-Forwarded-For``.

``maxConnectionsPerAddress`` caps the open connections of one TCP peer
address (an IPv6 peer: its /64) (:mod:`authbridge.web.worker`). It is
decided when a connection is accepted, before any HTTP is read, so it never
looks at ``X-Forwarded-For``; connections from ``trustedProxies`` are not
capped per address (a proxy's cap would be all its clients' together: it
must limit connections per client itself). Behind a TCP load balancer that
hides client addresses, set it to 0 (the balancer must not be listed in
``trustedProxies``, or its clients could choose their address in
``X-Forwarded-For``). ``handshakeTimeoutSeconds`` is how long a new
connection may take for its TLS handshake and the first byte of its first
request, together; the request timeout (30 s) then runs from that byte, and
an idle kept-alive connection closes after 75 s as before.

Each of these is summed over the workers: each worker allows ``max(1, N //
workers)``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from authbridge.errors import ConfigError

DEFAULT_STORE = "sqlite:///data/authbridge.db"
DEFAULT_KEYS_DIR = "keys"
DEFAULT_ISSUER = "https://127.0.0.1:8443"
CONFIG_FILE_NAME = "authbridge.yaml"  # in the keys directory, where `authbridge init` writes it
ENV_PREFIX = "AUTHBRIDGE_"
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """What authbridge runs with. Units are in the field names' comments."""

    store: str  # DSN: sqlite:///path or postgresql://…
    keys_dir: Path  # signing keys and the access-key pepper
    account_id: str | None  # account new principals belong to (12 digits)
    partition: str  # ARN partition, e.g. aws
    key_algorithm: Literal["RS256", "ES256"]
    prepublication_delay: int  # seconds a new key is published before it signs
    max_token_lifetime: int  # seconds; retiring keys stay published this long
    # Where the signing keys live: "files" (keys_dir, as always) or "store" (sealed under
    # the KEK). Default: "store" when a KEK is configured (kek_file or AUTHBRIDGE_KEK).
    key_source: Literal["files", "store"]
    kek_file: Path | None  # the key-encryption key: 32 bytes (or their base64), 0600
    kek: str | None = field(repr=False)  # AUTHBRIDGE_KEK only (base64): never from a file
    rotation_period: int  # seconds between automatic rotations of keys in the store (0: off)
    key_refresh_seconds: int  # seconds between two looks at the store's keys, per worker
    issuer: str  # OIDC issuer URL, byte-identical in discovery and every token's iss
    cluster_ids: tuple[str, ...]  # audiences (cluster ids) this authbridge issues for
    bind: str  # HOST:PORT the server listens on
    workers: int  # gunicorn worker processes
    tls_cert_file: Path  # serving certificate (PEM chain)
    tls_key_file: Path  # its private key
    client_ca_file: Path | None  # when set, only clients with a cert from it may call
    allow_insecure_http: bool  # development only: plain HTTP, loudly logged
    default_token_lifetime: int  # seconds, when a token request names no duration
    max_user_token_lifetime: int  # seconds, cap for tokens minted from access keys
    # Sign-in sessions (authbridge.iam.sessions): the absolute lifetime of a session
    # (CLI refresh-token family or browser), and how long it may go unused
    session_max_seconds: int  # seconds
    session_idle_seconds: int  # seconds
    mapping_file: Path  # rbac/mapping.yaml: IAM principals -> Kubernetes users and groups
    webhook_cache_ttl: int  # seconds a TokenReview verdict is reused (0: never)
    webhook_cache_size: int  # verdicts kept per worker
    # /oauth2/token puts the mapped k8s_username/k8s_groups/k8s_uid in tokens (JWT mode:
    # `authbridge apiserver-config --mode jwt`); refuses role sessions the mapping does not map
    embed_kubernetes_claims: bool
    # Abuse limits (authbridge.web.limits): failed client authentications and token
    # exchanges allowed per minute, summed over the workers (0: off): for one access key
    # id from one client address, for everything from one client address, and for one
    # access key id from all addresses together (much higher: see authbridge.web.limits)
    failed_auth_per_key_per_minute: int
    failed_auth_per_address_per_minute: int
    failed_auth_per_key_all_addresses_per_minute: int
    # Connection limits (authbridge.web.worker): open connections from one TCP peer
    # address (an IPv6 peer: its /64), summed over the workers (0: no cap); peers in
    # trustedProxies are not capped per address. At the cap, the address's connection
    # that has waited longest is closed for the new one.
    max_connections_per_address: int
    # seconds a new connection has for its TLS handshake and the first byte of its first
    # request together (then the request timeout, 30 s, runs from that byte)
    handshake_timeout: int
    max_request_bytes: int  # bytes of request body; more is refused with 413
    # peers whose X-Forwarded-For names the client (e.g. an ingress controller); none by default
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    audit_log: Path | None  # file the audit log is appended to (0600); None: stdout ("-")
    # First start of a new deployment (authbridge.first_admin): on a store with no account,
    # `serve` makes the account and an administrator and writes its one-time credential to
    # this file (0600, never overwritten) and/or into this Kubernetes Secret
    # ("NAME" in the pod's namespace, or "NAMESPACE/NAME"); neither: serve makes none
    bootstrap_credentials_file: Path | None
    bootstrap_secret: str | None

    @property
    def pepper_file(self) -> Path:
        return self.keys_dir / "access-key-pepper"

    @property
    def jwks_max_age(self) -> int:
        """Seconds a JWKS may be cached: never longer than a new key waits to sign."""
        return max(0, min(300, self.prepublication_delay))

    def __repr__(self) -> str:
        # A PostgreSQL DSN may carry a password: never print it.
        return f"Settings(store={redact_dsn(self.store)!r}, keys_dir={str(self.keys_dir)!r}, …)"


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ***."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password=)[^&\s]*", r"\1***", dsn, flags=re.IGNORECASE)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return str(value)


def _int_in(lo: int, hi: int, unit: str = "seconds") -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number of {unit}")
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return value

    return check


def _account(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:012d}"
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{12}", value, re.ASCII):
        raise ValueError("must be exactly 12 digits, e.g. 111122223333")
    return value


def _partition(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", value, re.ASCII):
        raise ValueError("must be lowercase letters, digits and dashes, e.g. aws")
    return value


def _algorithm(value: Any) -> str:
    if value not in ("RS256", "ES256"):
        raise ValueError("must be RS256 or ES256")
    return str(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _issuer(value: Any) -> str:
    url = _str(value)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL with a host, e.g. https://authbridge.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must have no query, fragment or user info (OIDC Discovery §2)")
    return url


_CLUSTER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", re.ASCII)


def _cluster_ids(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError("must be a non-empty list of cluster ids")
    out: list[str] = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if not isinstance(item, str) or not _CLUSTER_ID.fullmatch(item):
            raise ValueError(
                "each cluster id must be 1-100 letters, digits, '.', '_' or '-'"
                " starting with a letter or digit"
            )
        if item not in out:
            out.append(item)
    return tuple(out)


def _bind(value: Any) -> str:
    text = _str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8443 or [::]:8443")
    return text


def _optional_path(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return _str(value)


def _networks(value: Any) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("must be a list of CIDRs, e.g. [10.0.0.0/8, fd00::/8]")
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if text == "":
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except (TypeError, ValueError):
            raise ValueError(
                f"{str(text)[:50]!r} is not a CIDR or IP address, e.g. 10.0.0.0/8"
            ) from None
    return tuple(out)


def _audit_log(value: Any) -> str | None:
    """A file path, or None for "-" (stdout)."""
    path = _str(value)
    return None if path == "-" else path


def _key_source(value: Any) -> str:
    if value not in ("files", "store"):
        raise ValueError("must be files or store")
    return str(value)


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _secret_ref(value: Any) -> str:
    """``NAME`` or ``NAMESPACE/NAME`` of a Kubernetes Secret, as the API server accepts them."""
    text = _str(value)
    namespace, _, name = text.rpartition("/")
    if namespace and (len(namespace) > 63 or not _DNS_LABEL.fullmatch(namespace)):
        raise ValueError("the namespace must be a DNS label (a-z, 0-9, '-'; at most 63)")
    if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
        raise ValueError(
            "must be NAME or NAMESPACE/NAME, NAME a DNS subdomain (a-z, 0-9, '-', '.')"
        )
    return text


def _store(value: Any) -> str:
    dsn = _str(value)
    if not dsn.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must start with sqlite:/// or postgresql://")
    return dsn


# field -> (config-file key, parser, default)
_FIELDS: dict[str, tuple[str, Callable[[Any], Any], Any]] = {
    "store": ("store", _store, DEFAULT_STORE),
    "keys_dir": ("keysDir", _str, DEFAULT_KEYS_DIR),
    "account_id": ("accountID", _account, None),
    "partition": ("partition", _partition, "aws"),
    "key_algorithm": ("keyAlgorithm", _algorithm, "RS256"),
    "prepublication_delay": ("prepublicationDelaySeconds", _int_in(0, 7 * 86400), 600),
    "max_token_lifetime": ("maxTokenLifetimeSeconds", _int_in(900, 43200), 43200),
    "key_source": ("keySource", _key_source, None),
    "kek_file": ("kekFile", _optional_path, None),
    "kek": ("kek", _str, None),
    "rotation_period": ("rotationPeriodSeconds", _int_in(0, 366 * 86400), 30 * 86400),
    "key_refresh_seconds": ("keyRefreshSeconds", _int_in(1, 300), 10),
    "issuer": ("issuer", _issuer, DEFAULT_ISSUER),
    "cluster_ids": ("clusters", _cluster_ids, ("default",)),
    "bind": ("bind", _bind, "127.0.0.1:8443"),
    "workers": ("workers", _int_in(1, 64), 2),
    "tls_cert_file": ("tlsCertFile", _str, None),
    "tls_key_file": ("tlsKeyFile", _str, None),
    "client_ca_file": ("clientCAFile", _optional_path, None),
    "allow_insecure_http": ("allowInsecureHTTP", _bool, False),
    "default_token_lifetime": ("defaultTokenLifetimeSeconds", _int_in(900, 43200), 900),
    "max_user_token_lifetime": ("maxUserTokenLifetimeSeconds", _int_in(900, 43200), 3600),
    "session_max_seconds": ("sessionMaxSeconds", _int_in(900, 7 * 86400), 43200),
    "session_idle_seconds": ("sessionIdleSeconds", _int_in(300, 7 * 86400), 7200),
    "mapping_file": ("mappingFile", _str, "rbac/mapping.yaml"),
    "webhook_cache_ttl": ("webhookCacheTTLSeconds", _int_in(0, 300), 5),
    "webhook_cache_size": ("webhookCacheSize", _int_in(0, 1_000_000), 10_000),
    "embed_kubernetes_claims": ("embedKubernetesClaims", _bool, False),
    "failed_auth_per_key_per_minute": (
        "failedAuthPerKeyPerMinute",
        _int_in(0, 10_000, "attempts"),
        10,
    ),
    "failed_auth_per_address_per_minute": (
        "failedAuthPerAddressPerMinute",
        _int_in(0, 100_000, "attempts"),
        30,
    ),
    "failed_auth_per_key_all_addresses_per_minute": (
        "failedAuthPerKeyAllAddressesPerMinute",
        _int_in(0, 1_000_000, "attempts"),
        1000,
    ),
    "max_connections_per_address": (
        "maxConnectionsPerAddress",
        _int_in(0, 1_000_000, "connections"),
        128,
    ),
    "handshake_timeout": ("handshakeTimeoutSeconds", _int_in(1, 30), 5),
    "max_request_bytes": ("maxRequestBytes", _int_in(16 * 1024, 16 * 1024 * 1024, "bytes"), 65536),
    "trusted_proxies": ("trustedProxies", _networks, ()),
    "audit_log": ("auditLog", _audit_log, None),
    "bootstrap_credentials_file": ("bootstrapCredentialsFile", _optional_path, None),
    "bootstrap_secret": ("bootstrapSecret", _secret_ref, None),
}
_PATH_FIELDS = {
    "keys_dir",
    "kek_file",
    "tls_cert_file",
    "tls_key_file",
    "client_ca_file",
    "mapping_file",
    "audit_log",
    "bootstrap_credentials_file",
}
# Secrets read only from the environment, never from the config file (which is not a Secret).
_ENV_ONLY = {"kek"}
# Files that live in the keys directory unless configured elsewhere.
_KEYS_DIR_DEFAULTS = {"tls_cert_file": "tls/server.crt", "tls_key_file": "tls/server.key"}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    cwd: Path | None = None,
) -> Settings:
    """Build settings from flags, environment and an optional YAML config file."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    problems: list[str] = []
    file_values: dict[str, Any] = {}
    file_dir = cwd
    if config_file is not None:
        file_values, file_dir = _read_config_file(config_file, problems)
        known = {spec[0] for name, spec in _FIELDS.items() if name not in _ENV_ONLY}
        for key in sorted(set(file_values) - known):
            problems.append(
                f"{config_file}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            )

    values: dict[str, Any] = {}
    for name, (file_key, parse, default) in _FIELDS.items():
        base = cwd
        if name in flags:
            raw, source = flags[name], f"--{name.replace('_', '-')}"
        elif env_name(name) in env:
            raw, source = env[env_name(name)], env_name(name)
        elif file_key in file_values and name not in _ENV_ONLY:
            raw, source, base = file_values[file_key], f"{config_file}: {file_key}", file_dir
        else:
            values[name] = _resolve(name, default, cwd) if default is not None else None
            continue
        try:
            parsed = parse(raw)
            values[name] = None if parsed is None else _resolve(name, parsed, base)
        except ValueError as e:
            shown = "…" if name in _ENV_ONLY else _show(raw)
            problems.append(f"{source} {e} (got {shown})")
    keys_dir = values.get("keys_dir")
    for name, rel in _KEYS_DIR_DEFAULTS.items():
        if values.get(name) is None and isinstance(keys_dir, Path):
            values[name] = keys_dir / rel
    problems += _cross_checks(values)
    if problems:
        raise ConfigError(problems)
    return Settings(**{f.name: values[f.name] for f in fields(Settings)})


def _cross_checks(values: dict[str, Any]) -> list[str]:
    """Rules between settings, checked once every setting parsed."""
    problems: list[str] = []
    if values.get("key_source") is None:
        configured = values.get("kek_file") is not None or values.get("kek") is not None
        values["key_source"] = "store" if configured else "files"
    elif values["key_source"] == "store" and values.get("kek_file") is values.get("kek") is None:
        problems.append(
            "keySource is store but no key-encryption key (KEK) is configured: set kekFile"
            " (AUTHBRIDGE_KEK_FILE) or AUTHBRIDGE_KEK"
        )
    period, delay = values.get("rotation_period"), values.get("prepublication_delay")
    if isinstance(period, int) and isinstance(delay, int) and 0 < period <= delay:
        problems.append(
            f"rotationPeriodSeconds ({period}) must be longer than prepublicationDelaySeconds"
            f" ({delay}), or 0 to turn automatic rotation off"
        )
    issuer = values.get("issuer")
    if (
        isinstance(issuer, str)
        and issuer.startswith("http://")
        and values.get("allow_insecure_http") is False
    ):
        problems.append(
            f"issuer {issuer} is plain HTTP; OIDC needs https (set allowInsecureHTTP"
            " / AUTHBRIDGE_ALLOW_INSECURE_HTTP=1 only for local development)"
        )
    default, cap, most = (
        values.get("default_token_lifetime"),
        values.get("max_user_token_lifetime"),
        values.get("max_token_lifetime"),
    )
    if isinstance(default, int) and isinstance(cap, int) and default > cap:
        problems.append(
            f"defaultTokenLifetimeSeconds ({default}) is longer than"
            f" maxUserTokenLifetimeSeconds ({cap})"
        )
    session_max, session_idle = (
        values.get("session_max_seconds"),
        values.get("session_idle_seconds"),
    )
    if (
        isinstance(session_max, int)
        and isinstance(session_idle, int)
        and session_idle > session_max
    ):
        problems.append(
            f"sessionIdleSeconds ({session_idle}) is longer than sessionMaxSeconds"
            f" ({session_max}); a session never idles longer than it lives"
        )
    if isinstance(cap, int) and isinstance(most, int) and cap > most:
        problems.append(
            f"maxUserTokenLifetimeSeconds ({cap}) is longer than maxTokenLifetimeSeconds ({most})"
        )
    return problems


def _resolve(name: str, value: Any, base: Path) -> Any:
    if name in _PATH_FIELDS:
        return _absolute(base / Path(value).expanduser())
    if name == "store" and isinstance(value, str) and value.startswith("sqlite:///"):
        path = Path(value.removeprefix("sqlite:///")).expanduser()
        return "sqlite:///" + str(_absolute(base / path))
    return value


def _absolute(path: Path) -> Path:
    """An absolute, normalized path that keeps symlinks as given.

    Not ``Path.resolve()``: a Kubernetes Secret or ConfigMap volume reaches its
    files through ``..data`` links that the kubelet swaps on every update, and a
    resolved path would point into the old, deleted directory.
    """
    return Path(os.path.normpath(os.path.abspath(path)))


def _show(raw: Any) -> str:
    text = redact_dsn(str(raw)) if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 80 else text[:77] + "..."


def _read_config_file(path: Path, problems: list[str]) -> tuple[dict[str, Any], Path]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read config file {path}: {e.strerror}",
            hint="pass --config with an existing file, or run `authbridge init`",
        ) from e
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    import yaml  # only when a config file is read: keeps `authbridge token` fast

    try:
        loaded = yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from e
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        problems.append(f"{path}: must be a mapping of settings, got {type(loaded).__name__}")
        loaded = {}
    return loaded, _absolute(path.parent)
