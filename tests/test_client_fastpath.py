"""The stdlib-only fast path of ``authbridge token``: the click command's bytes, or nothing.

Covers, against the click command run in-process on the same cache, files and
environment: byte-identical stdout for every cache hit in a table (v1 by
default, v1beta1 and ``interactive`` from ``KUBERNETES_EXEC_INFO``,
``--token-only``, ``--role`` with and without ``--session-name``,
``--duration``, ``--cluster-id`` and every other option in both spellings,
env over profile, ``AUTHBRIDGE_PROFILE`` and ``--profile``, the credentials
file's comments, CRLF and relative ``ca_file``, ``AUTHBRIDGE_CREDENTIALS_FILE``,
a config file in ``keys/``), and for a signed-in profile (no key, a session:
the user's own token, the login's role, ``--role`` over it; a session gone or
replaced by a new sign-in serves nothing); that each case it does not answer falls back
(``None``): expired, inside the 60 s refresh window, an untrusted or corrupt
entry, another request's entry, ``--no-cache``, ``--local``, ``--help``,
unknown, repeated or option-like arguments, a global option, a garbled
``KUBERNETES_EXEC_INFO``, every credentials or value problem the click command
reports, and the inputs it leaves to the click command though that one would
answer from the cache (shown by running it). Then: the copied checks accept
only what the originals accept, with the same result (tables and seeded
random strings); the shared constants and the option table match the click
command's; the real console script answers a hit with the same bytes as
``authbridge.cli.main`` and imports only the standard library modules it
needs (no click, dataclasses, pathlib, typing, urllib; ``re`` only through
``json``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from authbridge.cli import entry
from authbridge.cli.context import OUTPUT_FORMATS
from authbridge.cli.main import CONFIG_ENV, CONFIG_FILE_NAME, main
from authbridge.client import config, credentials, fastpath
from authbridge.client.cache import CachedToken, TokenCache, cache_key
from authbridge.client.exec_credential import API_VERSIONS
from authbridge.errors import AuthbridgeError
from authbridge.tokens import MAX_TOKEN_SIZE
from tests.test_cli import AUTHBRIDGE, TIMEOUT, python_prints

KEY_ID = "AKIAALICEALICEALICE2"
OTHER_KEY_ID = "AKIABOBBOBBOBBOBBOB2"
SECRET = "s3cret:with+plus/slash=eq%pct~tilde"
ENDPOINT = "https://127.0.0.1:9"  # never contacted: a hit makes no request
ROLE_ARN = "arn:aws:iam::111122223333:role/platform/Admin"
V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
ENV_CREDS = {
    "AUTHBRIDGE_ACCESS_KEY_ID": KEY_ID,
    "AUTHBRIDGE_SECRET_ACCESS_KEY": SECRET,
    "AUTHBRIDGE_ENDPOINT": ENDPOINT,
    "AUTHBRIDGE_CLUSTER_ID": "prod",
}
PROFILE = f"""\
[default]
endpoint = {ENDPOINT}
access_key_id = {KEY_ID}
secret_access_key = {SECRET}
cluster_id = prod
"""


def exec_info(version: str, **spec: Any) -> str:
    doc: dict[str, Any] = {"kind": "ExecCredential", "apiVersion": version}
    if spec:
        doc["spec"] = spec
    return json.dumps(doc)


class World:
    """A home, a working directory, the environment and the cache both paths see."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.home = root / "home"
        self.cwd = root / "cwd"
        self.home.mkdir()
        self.cwd.mkdir()
        self.monkeypatch = monkeypatch
        for name in list(os.environ):
            if name.startswith(("AUTHBRIDGE_", "KUBERNETES_")) or name.endswith("_COMPLETE"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("HOME", str(self.home))
        monkeypatch.chdir(self.cwd)
        self.cache = TokenCache.default(os.environ)

    def setenv(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)

    def credentials(self, text: str, mode: int = 0o600, path: Path | None = None) -> Path:
        path = path or self.home / ".authbridge" / "credentials"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8", "surrogateescape"))  # "\udcff": a stray byte
        os.chmod(path, mode)
        return path

    def plant(self, token: str, expires_in: int = 3600, **request: Any) -> Path:
        """A cache entry for the request ``request`` names (defaults: the env's)."""
        request = {
            "endpoint": ENDPOINT,
            "profile": "default",
            "access_key_id": KEY_ID,
            "cluster_id": "prod",
            "role": None,
            "session_name": None,
            "duration": None,
            **request,
        }
        key = cache_key(**request)
        self.cache.put(key, CachedToken(token, int(time.time()) + expires_in))
        return self.cache.directory / f"{key}.json"

    def fast(self, args: list[str]) -> str | None:
        return entry.cached_answer(["token", *args], dict(os.environ), time.time())

    def slow(self, args: list[str]) -> click.testing.Result:
        return CliRunner().invoke(main, ["token", *args])


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


@dataclass(frozen=True)
class Case:
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(ENV_CREDS))
    credentials: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # the cache key's inputs
    setup: Callable[[World], None] | None = None


def _config_in_keys(w: World) -> None:
    (w.cwd / "keys").mkdir()
    (w.cwd / "keys" / CONFIG_FILE_NAME).write_text("store: sqlite:///x.db\n")


def _credentials_elsewhere(w: World) -> None:
    path = w.credentials(PROFILE.replace("prod", "elsewhere"), path=w.cwd / "creds" / "file")
    w.setenv({"AUTHBRIDGE_CREDENTIALS_FILE": str(path)})


HITS: dict[str, Case] = {
    "environment only, v1 by default": Case(),
    "v1beta1 asked for": Case(env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": exec_info(V1BETA1)}),
    "v1beta1 interactive false": Case(
        env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": exec_info(V1BETA1, interactive=False)}
    ),
    "v1 interactive true": Case(
        env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": exec_info(V1, interactive=True)}
    ),
    "v1 interactive not a bool": Case(
        env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": exec_info(V1, interactive="yes")}
    ),
    "blank exec info": Case(env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": " \n"}),
    "--token-only": Case(args=["--token-only"]),
    "--token-only ignores a garbled exec info": Case(
        args=["--token-only"], env={**ENV_CREDS, "KUBERNETES_EXEC_INFO": "{not json"}
    ),
    "--cluster-id over the environment": Case(
        args=["--cluster-id", "dev"], request={"cluster_id": "dev"}
    ),
    "--cluster-id=": Case(args=["--cluster-id=dev.eu_1"], request={"cluster_id": "dev.eu_1"}),
    "--role, session name defaults to the key id": Case(
        args=["--role", ROLE_ARN], request={"role": ROLE_ARN, "session_name": KEY_ID}
    ),
    "--role and --session-name": Case(
        args=["--session-name", "alice@ops", f"--role={ROLE_ARN}"],
        request={"role": ROLE_ARN, "session_name": "alice@ops"},
    ),
    "--role in another partition, no path": Case(
        args=["--role", "arn:aws-cn:iam::000000000000:role/R+=,.@_-"],
        request={"role": "arn:aws-cn:iam::000000000000:role/R+=,.@_-", "session_name": KEY_ID},
    ),
    "--duration": Case(args=["--duration", "3600"], request={"duration": 3600}),
    "--duration with a leading zero, as int() reads it": Case(
        args=["--duration=0900"], request={"duration": 900}
    ),
    "--duration at the top of the range": Case(
        args=["--duration", "43200", "--token-only"], request={"duration": 43200}
    ),
    "--endpoint, trailing slashes dropped": Case(
        args=["--endpoint", "https://authbridge.example.com:8443/base//"],
        request={"endpoint": "https://authbridge.example.com:8443/base"},
    ),
    "--ca-file and -o json": Case(args=["--ca-file", "/etc/ca.pem", "-o", "json"]),
    "--output=text and --token-only": Case(args=["--output=text", "--token-only"]),
    "the default profile from the credentials file": Case(
        env={}, credentials=PROFILE + "ca_file = ca.pem\n"
    ),
    "AUTHBRIDGE_PROFILE picks the profile": Case(
        env={"AUTHBRIDGE_PROFILE": "team"},
        credentials=PROFILE + PROFILE.replace("[default]", "[team]").replace(KEY_ID, OTHER_KEY_ID),
        request={"profile": "team", "access_key_id": OTHER_KEY_ID},
    ),
    "--profile over AUTHBRIDGE_PROFILE": Case(
        args=["--profile", "team"],
        env={"AUTHBRIDGE_PROFILE": "default"},
        credentials=PROFILE + PROFILE.replace("[default]", "[team]").replace("prod", "dev"),
        request={"profile": "team", "cluster_id": "dev"},
    ),
    "the environment's key pair over the profile's": Case(
        env={
            "AUTHBRIDGE_ACCESS_KEY_ID": OTHER_KEY_ID,
            "AUTHBRIDGE_SECRET_ACCESS_KEY": "another-secret-of-ours",
        },
        credentials=PROFILE,
        request={"access_key_id": OTHER_KEY_ID},
    ),
    "an empty profile value the flag overrides is never read": Case(
        args=["--ca-file", "ca.pem"], env={}, credentials=PROFILE + "ca_file =\n"
    ),
    "comments, CRLF, tabs, upper-case keys, other profiles": Case(
        env={"AUTHBRIDGE_CLUSTER_ID": "dev"},
        credentials=(
            "# written by hand\r\n; another comment\r\n\r\n[other]\r\nendpoint = https://x\r\n"
            + PROFILE.replace("\n", "\r\n").replace("endpoint =", "\tEndpoint\t=")
            + "extra_key = kept\r\n"
        ),
        request={"cluster_id": "dev"},
    ),
    "AUTHBRIDGE_CREDENTIALS_FILE": Case(
        env={}, setup=_credentials_elsewhere, request={"cluster_id": "elsewhere"}
    ),
    "a config file in keys/": Case(setup=_config_in_keys),
    "AUTHBRIDGE_KEYS_DIR that does not exist": Case(
        env={**ENV_CREDS, "AUTHBRIDGE_KEYS_DIR": "/nonexistent/keys"}
    ),
}


def _arrange(w: World, case: Case, token: str) -> None:
    w.setenv(case.env)
    if case.credentials is not None:
        w.credentials(case.credentials)
    if case.setup is not None:
        case.setup(w)
    w.plant(token, **case.request)


@pytest.mark.parametrize("name", list(HITS))
def test_a_cache_hit_prints_the_same_bytes_as_the_click_command(world: World, name: str) -> None:
    case = HITS[name]
    token = f"eyJhbGciOiJSUzI1NiJ9.{abs(hash(name))}.c2ln"
    _arrange(world, case, token)
    fast = world.fast(case.args)
    slow = world.slow(case.args)
    assert slow.exit_code == 0 and slow.stderr == "", slow.output
    assert token in slow.stdout  # the click command answered from the cache too
    assert fast is not None, "the fast path fell back"
    assert fast.encode() == slow.stdout_bytes


def _expired(w: World) -> None:
    w.plant("eyJ.expired.x", expires_in=-10)


def _refresh_window(w: World) -> None:
    w.plant("eyJ.refresh.x", expires_in=60)  # usable until exp - 60: now is not before that


def _world_readable(w: World) -> None:
    os.chmod(w.plant("eyJ.readable.x"), 0o644)


def _group_writable_dir(w: World) -> None:
    w.plant("eyJ.dir.x")
    os.chmod(w.cache.directory, 0o770)  # noqa: S103 - the unsafe mode under test


def _corrupt(w: World) -> None:
    w.plant("eyJ.corrupt.x").write_text('{"token": "forged", "expiresAt": 9999999999')


def _symlink(w: World) -> None:
    path = w.plant("eyJ.link.x")
    target = w.home / "planted.json"
    path.rename(target)
    path.symlink_to(target)


def _other_request(w: World) -> None:
    w.plant("eyJ.dev.x", cluster_id="dev")


def _planted(w: World) -> None:
    w.plant("eyJ.planted.x")


def _setenv(**env: str) -> Callable[[World], None]:
    def setup(w: World) -> None:
        w.setenv(env)
        w.plant("eyJ.planted.x")

    return setup


def _credentials(text: str, mode: int = 0o600) -> Callable[[World], None]:
    def setup(w: World) -> None:
        for name in ENV_CREDS:
            w.monkeypatch.delenv(name)
        w.credentials(text, mode)
        w.plant("eyJ.planted.x")

    return setup


FALLBACKS: dict[str, tuple[list[str], Callable[[World], None]]] = {
    "expired": ([], _expired),
    "inside the refresh window": ([], _refresh_window),
    "world-readable entry": ([], _world_readable),
    "cache directory others may write": ([], _group_writable_dir),
    "corrupt entry": ([], _corrupt),
    "entry is a symlink": ([], _symlink),
    "only another request's entry": ([], _other_request),
    "no cache at all": ([], lambda w: None),
    "--no-cache": (["--no-cache"], _planted),
    "--local": (["--local", "--principal", "arn:aws:iam::111122223333:user/a"], _planted),
    "--help": (["--help"], _planted),
    "-h": (["-h"], _planted),
    "unknown option": (["--foo"], _planted),
    "unknown option with a value": (["--foo=bar"], _planted),
    "a flag given a value": (["--token-only=yes"], _planted),
    "repeated option": (["--cluster-id", "prod", "--cluster-id", "prod"], _planted),
    "-o and --output both": (["-o", "json", "--output", "json"], _planted),
    "value that looks like an option": (["--cluster-id", "--token-only"], _planted),
    "missing value": (["--cluster-id"], _planted),
    "empty value": (["--cluster-id="], _planted),
    "positional argument": (["prod"], _planted),
    "--": (["--", "--token-only"], _planted),
    "short option glued to its value": (["-ojson"], _planted),
    "--duration below the range": (["--duration", "899"], _planted),
    "--duration above the range": (["--duration", "43201"], _planted),
    "--duration not decimal digits": (["--duration", "1_000"], _planted),
    "--duration in other digits": (["--duration", "٩٠٠"], _planted),
    "-o not a format": (["-o", "yaml"], _planted),
    "--session-name without --role": (["--session-name", "alice"], _planted),
    "invalid --session-name": (["--role", ROLE_ARN, "--session-name", "a b"], _planted),
    "invalid --role": (["--role", "arn:aws:iam::111122223333:user/alice"], _planted),
    "invalid --cluster-id": (["--cluster-id", "_prod"], _planted),
    "--endpoint over http": (["--endpoint", "http://127.0.0.1:9"], _planted),
    "--endpoint with user info": (["--endpoint", "https://u@127.0.0.1:9"], _planted),
    "not UTF-8": (["--cluster-id", "prod\udcff"], _planted),
    "exec info not JSON": ([], _setenv(KUBERNETES_EXEC_INFO="{")),
    "exec info of another version": ([], _setenv(KUBERNETES_EXEC_INFO=exec_info("v1alpha1"))),
    "exec info not an object": ([], _setenv(KUBERNETES_EXEC_INFO="[]")),
    "AUTHBRIDGE_CONFIG set": ([], _setenv(AUTHBRIDGE_CONFIG="/nonexistent.yaml")),
    "shell completion asked for": ([], _setenv(_AUTHBRIDGE_COMPLETE="bash_complete")),
    "only the key id in the environment": ([], _setenv(AUTHBRIDGE_SECRET_ACCESS_KEY="")),
    "secret too short": ([], _setenv(AUTHBRIDGE_SECRET_ACCESS_KEY="short")),
    "access key id malformed": ([], _setenv(AUTHBRIDGE_ACCESS_KEY_ID="AKIAalicealicealice2")),
    "no cluster id anywhere": ([], _setenv(AUTHBRIDGE_CLUSTER_ID="")),
    "AUTHBRIDGE_PROFILE names no profile": ([], _setenv(AUTHBRIDGE_PROFILE="nope")),
    "AUTHBRIDGE_PROFILE invalid": ([], _setenv(AUTHBRIDGE_PROFILE="-x")),
    "credentials file others may read": ([], _credentials(PROFILE, 0o644)),
    "credentials key given twice": ([], _credentials(PROFILE + f"access_key_id = {KEY_ID}\n")),
    "credentials key before any profile": ([], _credentials("endpoint = x\n" + PROFILE)),
    "credentials control character": ([], _credentials(PROFILE + "# \x0b\n")),
    "credentials line that is not key = value": ([], _credentials(PROFILE + "junk\n")),
    "credentials profile given twice": ([], _credentials(PROFILE + PROFILE)),
    "credentials not UTF-8": ([], _credentials(PROFILE + "# \udcff\n")),
    "credentials empty value that is needed": (
        [],
        _credentials(PROFILE.replace(f"endpoint = {ENDPOINT}", "endpoint =")),
    ),
    "credentials without a secret": (
        [],
        _credentials(PROFILE.replace(f"secret_access_key = {SECRET}\n", "")),
    ),
    "credentials ca_file that expanduser cannot resolve": (
        [],
        _credentials(PROFILE + "ca_file = ./~no-such-user-here/ca.pem\n"),
    ),
}


@pytest.mark.parametrize("name", list(FALLBACKS))
def test_everything_else_falls_back_to_the_click_command(world: World, name: str) -> None:
    args, setup = FALLBACKS[name]
    world.setenv(ENV_CREDS)
    setup(world)
    assert world.fast(args) is None


# Answered from the cache by the click command, left to it by the fast path: inputs
# outside the plain forms the copied checks know.
CONSERVATIVE: dict[str, Case] = {
    "upper-case scheme": Case(
        args=["--endpoint", "HTTPS://127.0.0.1:9"], request={"endpoint": "HTTPS://127.0.0.1:9"}
    ),
    "a query mark with nothing after it": Case(
        args=["--endpoint", "https://h.example?"], request={"endpoint": "https://h.example?"}
    ),
    "credentials file with a non-ASCII comment": Case(env={}, credentials="# café\n" + PROFILE),
    "ca_file in the profile under ~": Case(env={}, credentials=PROFILE + "ca_file = ~/ca.pem\n"),
}


@pytest.mark.parametrize("name", list(CONSERVATIVE))
def test_unusual_inputs_are_left_to_the_click_command(world: World, name: str) -> None:
    case = CONSERVATIVE[name]
    _arrange(world, case, "eyJ.conservative.x")
    slow = world.slow(case.args)
    assert slow.exit_code == 0 and "eyJ.conservative.x" in slow.stdout, slow.output
    assert world.fast(case.args) is None


# -- the copied checks ------------------------------------------------------------------------

_ALPHABET = (
    "aAzZ09_-.@+=,:/~%?#[]! \t\r\n\x00\x0b\x7f\x85\xa0é\u2028KIAR"
    "arn:iam::role/ 111122223333 https:// AKIA 8443"
)


def _rng(seed: str) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test inputs, not secrets


def _random_strings(seed: str, count: int = 4000, longest: int = 30) -> Iterator[str]:
    rng = _rng(seed)
    pieces = [*_ALPHABET, "arn:aws:iam::", "111122223333", ":role/", "https://", "AKIA"]
    for _ in range(count):
        yield "".join(rng.choice(pieces) for _ in range(rng.randrange(longest)))


def _accepts(check: Callable[[str], str], value: str) -> bool:
    try:
        check(value)
    except AuthbridgeError:
        return False
    return True


EXACT: dict[str, tuple[Callable[[str], bool], Callable[[str], str], list[str]]] = {
    "cluster id": (
        fastpath.is_cluster_id,
        config.check_cluster_id,
        ["prod", "a", "0.-_", "-a", "", "a" * 100, "a" * 101, "prod\n", "prod é"],
    ),
    "access key id": (
        fastpath.is_access_key_id,
        config.check_access_key_id,
        [KEY_ID, "AKIA" + "A" * 15, "AKIA" + "A" * 17, "AKIA" + "1" * 16, "akia" + "A" * 16],
    ),
    "secret": (
        fastpath.is_secret,
        config.check_secret,
        [SECRET, "x" * 15, "x" * 16, "x" * 256, "x" * 257, "x" * 15 + " ", "x" * 15 + "é"],
    ),
    "session name": (
        fastpath.is_session_name,
        config.check_session_name,
        ["ab", "a", "a" * 64, "a" * 65, "a b", "a/b", "a+=,.@_-"],
    ),
    "profile name": (
        fastpath.is_profile_name,
        config.check_profile_name,
        ["default", "a", "a" * 64, "a" * 65, "_a", "a=b", "a.b@c+d-e_f"],
    ),
    "role ARN": (
        fastpath.is_role_arn,
        config.check_role_arn,
        [
            ROLE_ARN,
            "arn:aws:iam::111122223333:role/Admin",
            "arn:aws:iam::111122223333:role//Admin",
            "arn:aws:iam::111122223333:role/a:b/c/Admin",
            "arn:aws:iam::111122223333:role/",
            "arn:aws:iam::111122223333:role/p/",
            "arn:aws:iam::11112222333:role/Admin",
            "arn:Aws:iam::111122223333:role/Admin",
            "arn:a" + "b" * 31 + ":iam::111122223333:role/Admin",
            "arn:a" + "b" * 32 + ":iam::111122223333:role/Admin",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::111122223333:role/" + "a" * 65,
            "arn:aws:iam::111122223333:role/pa th/Admin",
        ],
    ),
    "CA file": (
        fastpath.is_ca_file,
        config.check_ca_file,
        ["/etc/ca.pem", "", "a\x00b", "a" * 4096, "a" * 4097, "~/x", " "],
    ),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_copied_value_checks_agree_with_the_originals(name: str) -> None:
    fast, original, examples = EXACT[name]
    for value in [*examples, *_random_strings(name)]:
        assert fast(value) == _accepts(original, value), repr(value)
    assert any(fast(value) for value in examples)


ENDPOINTS_ACCEPTED = [
    "https://127.0.0.1:8443",
    "https://authbridge.example.com",
    "https://authbridge.example.com/",
    "https://a-b.example.com:443/base/path_1.2~x/",
    "https://h:0",
    "https://h:65535",
]
ENDPOINTS_LEFT = [
    "https://h:65536",
    "https://h:",
    "https://:443",
    "https://h:12a",
    "https://[::1]:443",
    "https://h/a%20b",
    "https://u:p@h",
    "https://h?q",
    "https://h#f",
    "http://h",
    "HTTPS://h",
    " https://h",
    "https://",
    "https://h/" + "a" * 2040,
]


def test_copied_endpoint_check_is_a_subset_of_the_original() -> None:
    for value in ENDPOINTS_ACCEPTED:
        assert fastpath.plain_endpoint(value) == config.check_endpoint(value), value
    for value in ENDPOINTS_LEFT:
        assert fastpath.plain_endpoint(value) is None, value
    rng = _rng("endpoints")
    parts = ["https://", "h", "a.b", "-", ":", "443", "99999", "/", "x", "~", "@", "?", "%", "é"]
    for _ in range(5000):
        value = "".join(rng.choice(parts) for _ in range(rng.randrange(8)))
        got = fastpath.plain_endpoint(value)
        if got is not None:
            assert got == config.check_endpoint(value), repr(value)


def _original_profiles(text: str) -> dict[str, dict[str, str]] | None:
    try:
        parsed = credentials.parse_credentials(text, "f")
    except AuthbridgeError:
        return None
    return {name: dict(p.values) for name, p in parsed.items()}


def test_copied_credentials_parser_is_a_subset_of_the_original() -> None:
    texts = [
        PROFILE,
        "",
        "\n\n# only comments\n; and these\n",
        PROFILE.replace("\n", "\r\n"),
        "[ spaced ]\n a = b = c \n",
        "[a]\nKEY = v\n",
        "[a]\nkey=\n",
        "[a]\n[b]\nx=1\n[a]\n",
        "[a]\nx=1\nx=2\n",
        "x=1\n[a]\n",
        "[a\n",
        "[a]\n9x = 1\n",
        "[a]\nx = \x0b\n",
        "[a]\nx = é\n",
        "[a]\nx = 1\u2028y = 2\n",
    ]
    rng = _rng("credentials")
    lines = ["[a]", "[b]", " [ a ] ", "[", "[a", "x = 1", "X=2", " y\t=\t3 = 4 ", "x =", "z=", ""]
    lines += ["# c", "; c", "junk", "=1", "_x = 1", "9x = 1", "a" * 64 + " = 1", "b" * 65 + "=1"]
    odd = ["é", "\x0b", "\xa0", "\x85", "\u2028", "\r", "\t", "\x00", "["]
    for _ in range(5000):
        chosen = [rng.choice(lines) for _ in range(rng.randrange(8))]
        if chosen and rng.random() < 0.2:
            at = rng.randrange(len(chosen))
            chosen[at] += rng.choice(odd)
        texts.append(rng.choice(["\n", "\r\n"]).join(chosen))
    answered = 0
    for text in texts:
        got = fastpath.parse_profiles(text)
        if got is not None:
            answered += 1
            assert got == _original_profiles(text), repr(text)
    assert answered > 500  # the random texts exercise the accepting side too


# -- what the copies and the option table stand for -------------------------------------------


def test_constants_match_the_modules_they_copy() -> None:
    assert fastpath._CREDENTIALS_ENV == credentials.CREDENTIALS_ENV
    assert fastpath._DEFAULT_PROFILE == credentials.DEFAULT_PROFILE
    assert fastpath._MAX_CREDENTIALS_BYTES == credentials.MAX_CREDENTIALS_BYTES
    assert fastpath._MAX_TOKEN == MAX_TOKEN_SIZE
    assert (fastpath.API_V1, fastpath.API_V1BETA1) == API_VERSIONS
    assert config.ENV is fastpath.ENV
    assert entry.OUTPUT_FORMATS == OUTPUT_FORMATS
    assert (entry._CONFIG_ENV, entry._CONFIG_FILE_NAME) == (CONFIG_ENV, CONFIG_FILE_NAME)


def test_option_table_matches_the_token_command() -> None:
    from authbridge.cli.token import token

    options = {opt: p for p in token.params if isinstance(p, click.Option) for opt in p.opts}
    for opt, name in entry.VALUE_OPTIONS.items():
        assert not options[opt].is_flag and options[opt].name == name, opt
        assert not options[opt].multiple and options[opt].nargs == 1, opt
    for opt, name in entry.FLAG_OPTIONS.items():
        assert options[opt].is_flag and options[opt].name == name, opt
    duration = options["--duration"].type
    assert isinstance(duration, click.IntRange)
    assert (duration.min, duration.max) == entry.DURATION_RANGE
    assert not duration.min_open and not duration.max_open and not duration.clamp
    output = options["--output"].type
    assert isinstance(output, click.Choice) and tuple(output.choices) == entry.OUTPUT_FORMATS


def test_fast_path_flags_and_the_token_command_agree_on_argv() -> None:
    from authbridge.cli.token import token

    argv = ["--role", ROLE_ARN, "--duration=0900", "-o", "text", "--token-only"]
    flags = entry.token_flags(["token", *argv])
    assert flags == {"role": ROLE_ARN, "duration": "0900", "token_only": ""}
    ctx = token.make_context("token", list(argv))
    assert ctx.params["role"] == ROLE_ARN and ctx.params["duration"] == 900
    assert ctx.params["token_only"] is True


# -- the real console script -----------------------------------------------------------------

_SLOW = "import sys; from authbridge.cli.main import main; sys.argv[0] = 'authbridge'; main()"


def _script_env(w: World) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(w.home / "pycache")
    return env


def test_console_script_answers_a_hit_like_the_click_command(world: World) -> None:
    world.setenv({**ENV_CREDS, "KUBERNETES_EXEC_INFO": exec_info(V1BETA1, interactive=False)})
    world.plant("eyJ.script.x", role=ROLE_ARN, session_name=KEY_ID)
    runs = {}
    for how, argv in {
        "fast": [str(AUTHBRIDGE), "token", "--role", ROLE_ARN],
        "slow": [sys.executable, "-c", _SLOW, "token", "--role", ROLE_ARN],
    }.items():
        runs[how] = subprocess.run(
            argv,
            env=_script_env(world),
            cwd=world.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert runs["fast"].returncode == runs["slow"].returncode == 0, runs
    assert runs["fast"].stderr == runs["slow"].stderr == b""
    assert runs["fast"].stdout == runs["slow"].stdout
    assert json.loads(runs["fast"].stdout)["status"]["token"] == "eyJ.script.x"


def test_console_script_falls_back_with_the_click_commands_error(world: World) -> None:
    world.setenv(ENV_CREDS)
    world.plant("eyJ.script.x", expires_in=30)  # inside the refresh window: a mint is tried
    results = [
        subprocess.run(
            argv,
            env=_script_env(world),
            cwd=world.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        for argv in ([str(AUTHBRIDGE), "token"], [sys.executable, "-c", _SLOW, "token"])
    ]
    fast, slow = results
    assert fast.returncode == slow.returncode == 1
    assert fast.stdout == slow.stdout == b""
    assert fast.stderr == slow.stderr and b"127.0.0.1:9" in fast.stderr


# The cached path's own imports (python -S: no site, so nothing is imported beforehand
# by the venv's editable-install finder, which loads pathlib and re on its own).
ALLOWED_DIRECT = {"__future__", "os", "sys", "time", "json", "hashlib", "stat", "errno"}
AUTHBRIDGE_MODULES = {
    "authbridge",
    "authbridge.cli",
    "authbridge.cli.entry",
    "authbridge.client",
    "authbridge.client.fastpath",
}
NEVER = ("click", "dataclasses", "inspect", "pathlib", "typing", "urllib", "ipaddress", "fnmatch")


def _import_tree(stderr: str) -> dict[str, list[str]]:
    """module -> the modules whose import imported it, innermost first (``-X importtime``)."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            name = line.rsplit("|", 1)[1]
            depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
            rows.append((depth, name.strip()))
    ancestors: dict[str, list[str]] = {}
    for i, (depth, name) in enumerate(rows):  # children are listed before their parent
        chain, want = [], depth - 1
        for later_depth, later in rows[i + 1 :]:
            if later_depth == want:
                chain.append(later)
                want -= 1
        ancestors[name] = chain
    return ancestors


def test_cached_path_imports_only_the_standard_library_it_needs(world: World) -> None:
    world.setenv(ENV_CREDS)
    world.plant("eyJ.imports.x")
    env = _script_env(world)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run(
        [sys.executable, "-S", "-X", "importtime", str(AUTHBRIDGE), "token"],
        env=env,
        cwd=world.cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["status"]["token"] == "eyJ.imports.x"
    tree = _import_tree(proc.stderr)
    ours = {m for m in tree if m.split(".")[0] == "authbridge"}
    assert ours == AUTHBRIDGE_MODULES
    direct = {m for m, chain in tree.items() if chain and chain[0] in AUTHBRIDGE_MODULES}
    assert direct - AUTHBRIDGE_MODULES <= ALLOWED_DIRECT, direct
    never = sorted(m for m in tree if m.split(".")[0] in NEVER)
    assert never == [], f"the cached path imported {never}"
    # re (and enum, functools, collections) come with json, which compiles patterns on import.
    assert all(
        any(a.split(".")[0] == "json" for a in tree[m]) for m in tree if m.split(".")[0] == "re"
    )


def test_the_fast_path_modules_import_no_click() -> None:
    code = (
        "import sys, authbridge.cli.entry, authbridge.client.fastpath\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {NEVER!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    assert python_prints(code, "-S", env=env) == "[]"


# -- a signed-in profile (authbridge login): no key, a session beside the cache ----------

SIGNED_IN = f"""\
[dev]
endpoint = {ENDPOINT}
cluster_id = prod
"""


def _sign_in(w: World, role: str | None = None) -> Any:
    from authbridge.client.session import Session, SessionFiles

    files = SessionFiles.of(os.environ, ENDPOINT, "dev")
    session = Session(
        endpoint=ENDPOINT,
        profile="dev",
        issuer=ENDPOINT,
        key="fedcba9876543210" * 2,
        user="arn:aws:iam::111122223333:user/alice",
        refresh_token="r" * 43,
        refresh_expires_at=int(time.time()) + 7200,
        access_token="eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
        access_expires_at=int(time.time()) + 900,
        role=role,
        session_name="alice",
        signed_in_at=int(time.time()),
    )
    files.save(session)
    return files, session


def _plant_for_session(w: World, files: Any, session: Any, token: str, **request: Any) -> None:
    request = {
        "endpoint": ENDPOINT,
        "profile": "dev",
        "access_key_id": f"session:{session.key}",
        "cluster_id": "prod",
        "role": None,
        "session_name": None,
        "duration": None,
        **request,
    }
    files.tokens.put(cache_key(**request), CachedToken(token, int(time.time()) + 3600))


@pytest.mark.parametrize(
    ("login_role", "args", "request_"),
    [
        (None, [], {}),
        (None, ["--role", ROLE_ARN], {"role": ROLE_ARN, "session_name": "alice"}),
        (ROLE_ARN, [], {"role": ROLE_ARN, "session_name": "alice"}),
        (
            ROLE_ARN,
            ["--role", ROLE_ARN, "--session-name", "ops"],
            {"role": ROLE_ARN, "session_name": "ops"},
        ),
    ],
)
def test_a_signed_in_profiles_cache_hit_prints_the_same_bytes(
    world: World, login_role: str | None, args: list[str], request_: dict[str, Any]
) -> None:
    world.credentials(SIGNED_IN)
    files, session = _sign_in(world, login_role)
    token = "eyJhbGciOiJFUzI1NiJ9.c2Vzc2lvbg.c2ln"
    _plant_for_session(world, files, session, token, **request_)
    argv = ["--profile", "dev", *args]
    fast = world.fast(argv)
    slow = world.slow(argv)
    assert slow.exit_code == 0 and slow.stderr == "", slow.output
    assert token in slow.stdout
    assert fast is not None, "the fast path fell back"
    assert fast.encode() == slow.stdout_bytes


def test_a_signed_out_profile_falls_back_to_the_click_command(world: World) -> None:
    world.credentials(SIGNED_IN)
    files, session = _sign_in(world)
    _plant_for_session(world, files, session, "eyJhbGciOiJFUzI1NiJ9.c2Vzc2lvbg.c2ln")
    files.path.unlink()  # the session is gone: its tokens are not served
    assert world.fast(["--profile", "dev"]) is None
    slow = world.slow(["--profile", "dev"])
    assert slow.exit_code == 1
    assert "run `authbridge login --profile dev`" in slow.stderr


def test_a_token_of_an_earlier_sign_in_is_never_served(world: World) -> None:
    world.credentials(SIGNED_IN)
    files, session = _sign_in(world)
    _plant_for_session(world, files, session, "eyJhbGciOiJFUzI1NiJ9.b2xk.c2ln")
    from dataclasses import replace

    files.save(replace(session, key="0" * 32))  # signed in again: a new key
    assert world.fast(["--profile", "dev"]) is None
