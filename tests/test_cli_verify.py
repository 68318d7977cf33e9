"""`authbridge verify`, as a person runs it (subprocesses, the real CLI).

Covers:
- local (no endpoint known, or --local): init + IAM + a mapping in a temporary
  directory, a break-glass token from `authbridge token --local`; the token
  from the argument, from stdin as a bare token and as an ExecCredential;
  text and -o json output; exit 0 when accepted, 1 with
  `authbridge: token refused: <reason>` on stderr when refused (not mapped,
  another cluster, garbage), 1 for a cluster id that is not configured, 2 for
  usage errors (no token, --local with --endpoint, two words);
- remote against a real `authbridge serve` (tests/serving.py): --endpoint and
  --ca-file, or AUTHBRIDGE_ENDPOINT / AUTHBRIDGE_CA_FILE; the answer is
  the same JSON the local mode computes; a revoked token is refused; an
  untrusted server certificate fails with a hint; the default profile's
  endpoint is used without --profile, and stderr says which mode decided; a
  cluster the server does not serve is named with the served ones;
- with no endpoint and no keys (a laptop without a profile): pass --profile or
  --endpoint, never "keys init".
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.serving import ACCOUNT, AUTHBRIDGE, LiveServer, clean_env, run_cli, start_server

MAPPING = f"""\
mapRoles:
  - rolearn: arn:aws:iam::{ACCOUNT}:role/platform/Admin
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: alice
    groups: ["authbridge:devs"]
"""
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(cwd: Path, args: list[str], *, stdin: str | None = None, **env: str) -> Result:
    proc = subprocess.run(
        [AUTHBRIDGE, *args],
        cwd=cwd,
        env=clean_env(HOME=str(cwd), **env),  # no ~/.authbridge profile of the machine
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write_mapping(root: Path) -> None:
    (root / "rbac").mkdir(parents=True, exist_ok=True)
    (root / "rbac" / "mapping.yaml").write_text(MAPPING)


# --------------------------------------------------------------------------- local


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify-local")
    run_cli(root, "init --no-admin --cluster-id prod --cluster-id staging --algorithm ES256")
    run_cli(root, f"iam create-account --account-id {ACCOUNT}")
    run_cli(root, "iam create-user --user-name alice")
    run_cli(root, "iam create-user --user-name bob")
    write_mapping(root)
    return root


def break_glass(root: Path, principal: str, cluster: str = "prod", *extra: str) -> str:
    out = run(root, ["token", "--local", "--principal", principal, "--cluster-id", cluster, *extra])
    assert out.code == 0, out.stderr
    return out.stdout.strip()


def test_local_accepted_text_and_json(local: Path) -> None:
    token = break_glass(local, ALICE, "prod", "--token-only")
    text = run(local, ["verify", token])
    assert text.code == 0, text.stderr
    assert "authenticated as alice" in text.stdout
    for line in ("Groups", "authbridge:devs", f"mapUsers[0] {ALICE}", "Clusters"):
        assert line in text.stdout
    # Which mode decided, on stderr (no endpoint is known here: the keys decide).
    assert text.stderr == f"authbridge: checked locally with the keys in {local / 'keys'}\n"
    assert token not in text.stdout

    doc = run(local, ["verify", "-o", "json", token]).json()
    assert doc["authenticated"] is True
    assert doc["kubernetes"]["username"] == "alice"
    assert doc["kubernetes"]["groups"] == ["authbridge:devs"]
    assert doc["matchedRule"] == {"section": "mapUsers", "index": 0, "arn": ALICE}
    assert doc["identity"]["arn"] == ALICE
    assert doc["token"]["aud"] == ["prod"] and doc["token"]["verified"] is True


def test_local_token_from_stdin(local: Path) -> None:
    exec_credential = break_glass(local, ALICE)  # the ExecCredential JSON
    assert exec_credential.startswith("{")
    token = json.loads(exec_credential)["status"]["token"]
    for given in (exec_credential, token + "\n", token):
        out = run(local, ["-o", "json", "verify"], stdin=given)
        assert out.code == 0, out.stderr
        assert out.json()["kubernetes"]["username"] == "alice"
    assert run(local, ["verify", "-"], stdin=token).code == 0


def test_local_refusals_exit_1(local: Path) -> None:
    bob = break_glass(local, BOB, "prod", "--token-only")
    out = run(local, ["verify", bob])
    assert out.code == 1
    assert out.stderr.startswith(f"authbridge: token refused: no mapping rule matched {BOB}")
    assert "refused" in out.stdout

    alice = break_glass(local, ALICE, "prod", "--token-only")
    out = run(local, ["verify", "--cluster-id", "staging", "-o", "json", alice])
    assert out.code == 1
    assert out.json()["reasonCode"] == "wrong_audience"
    assert "token refused: audience [prod]" in out.stderr

    out = run(local, ["verify", "not-a-token"])
    assert (out.code, out.stderr.startswith("authbridge: token refused: malformed token")) == (
        1,
        True,
    )

    out = run(local, ["verify", "--cluster-id", "dev", alice])
    assert out.code == 1
    assert "not a cluster of this configuration (prod, staging)" in out.stderr


def test_refusal_names_the_mode_on_its_one_line(local: Path) -> None:
    out = run(local, ["verify", "not-a-token"])
    assert out.code == 1
    assert out.stderr.count("\n") == 1
    assert out.stderr.rstrip().endswith(f"(checked locally with the keys in {local / 'keys'})")


def test_local_without_a_mapping_file_uses_access_entries(tmp_path: Path) -> None:
    """API mode needs no mapping file: --local answers from the entries, as serve does."""
    run_cli(tmp_path, "init --no-admin --cluster-id prod --algorithm ES256")
    run_cli(tmp_path, f"iam create-account --account-id {ACCOUNT}")
    run_cli(tmp_path, "iam create-user --user-name bob")
    (tmp_path / "rbac" / "mapping.yaml").unlink(missing_ok=True)
    token = break_glass(tmp_path, BOB, "prod", "--token-only")
    refused = run(tmp_path, ["verify", "--local", "-o", "json", token])
    assert refused.code == 1 and "no mapping rule matched" in refused.json()["reason"]
    run_cli(tmp_path, f"access create-entry --cluster-id prod --principal-arn {BOB} --username bob")
    run_cli(tmp_path, "access update-cluster-config --cluster-id prod --authentication-mode API")
    out = run(tmp_path, ["verify", "--local", "-o", "json", token])
    assert out.code == 0, out.stderr
    assert out.json()["kubernetes"]["username"] == "bob"
    assert out.json()["matchedRule"]["section"] == "accessEntry"


def test_no_endpoint_and_no_keys_says_pass_profile_or_endpoint(tmp_path: Path) -> None:
    out = run(tmp_path, ["verify", "t.t.t"])  # HOME=tmp_path: no profile; no keys/ here
    assert out.code == 1, out.stderr
    assert "pass --profile NAME or --endpoint URL" in out.stderr
    assert "keys init" not in out.stderr
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (["verify"], "", "stdin is empty"),
        (["verify"], "one two", "more than one word"),
        (["verify", "--local", "--endpoint", "https://x", "t"], None, "cannot be used with"),
        (["verify", "--ca-file", "ca.crt", "t"], None, "--ca-file needs a server"),
        (["verify"], '{"kind": "ExecCredential"}', "status.token"),
    ],
)
def test_usage_errors_exit_2(
    local: Path, args: list[str], stdin: str | None, fragment: str
) -> None:
    out = run(local, args, stdin=stdin)
    assert out.code == 2, (out.stdout, out.stderr)
    assert fragment in out.stderr


# --------------------------------------------------------------------------- remote


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(tmp_path_factory.mktemp("verify-remote"), workers=1, mapping=MAPPING)
    server = next(served)
    try:
        yield server
    finally:
        served.close()


def issued_token(live: LiveServer, *extra: str) -> str:
    out = run(
        live.root,
        [
            "token",
            "--endpoint",
            live.url,
            "--ca-file",
            str(live.ca_file),
            "--cluster-id",
            "prod",
            "--token-only",
            "--no-cache",
            *extra,
        ],
        AUTHBRIDGE_ACCESS_KEY_ID=live.access_key_id,
        AUTHBRIDGE_SECRET_ACCESS_KEY=live.secret,
    )
    assert out.code == 0, out.stderr
    return out.stdout.strip()


def test_remote_is_the_local_answer(live: LiveServer) -> None:
    token = issued_token(live)
    remote = run(
        live.root,
        ["verify", "-o", "json", "--endpoint", live.url, "--ca-file", str(live.ca_file), token],
    )
    assert remote.code == 0, remote.stderr
    local = run(live.root, ["verify", "-o", "json", "--local", token])
    assert local.code == 0, local.stderr
    assert remote.json() == local.json()
    assert remote.json()["kubernetes"]["username"] == "alice"
    assert remote.json()["identity"]["accessKeyId"] == live.access_key_id

    # The endpoint from the environment: remote by default.
    by_env = run(
        live.root,
        ["verify", "--cluster-id", "prod"],
        stdin=token,
        AUTHBRIDGE_ENDPOINT=live.url,
        AUTHBRIDGE_CA_FILE=str(live.ca_file),
    )
    assert by_env.code == 0, by_env.stderr
    assert "authenticated as alice" in by_env.stdout


def test_remote_from_the_default_profile(live: LiveServer, tmp_path: Path) -> None:
    # A laptop: no keys/, no --profile or --endpoint, a default profile with an endpoint.
    home = tmp_path / "laptop"
    (home / ".authbridge").mkdir(parents=True, mode=0o700)
    credentials = home / ".authbridge" / "credentials"
    credentials.write_text(f"[default]\nendpoint = {live.url}\nca_file = {live.ca_file}\n")
    credentials.chmod(0o600)
    out = run(home, ["verify", issued_token(live)])
    assert out.code == 0, out.stderr
    assert "authenticated as alice" in out.stdout
    assert out.stderr == f"authbridge: checked remotely at {live.url}/verify\n"


def test_remote_cluster_not_served_says_which_are(live: LiveServer) -> None:
    token = issued_token(live)
    args = ["verify", "--endpoint", live.url, "--ca-file", str(live.ca_file)]
    out = run(live.root, [*args, "--cluster-id", "dev", token])
    assert out.code == 1
    assert "cluster 'dev' is not served here (served: prod, staging)" in out.stderr
    assert "--cluster-id one of the served clusters" in out.stderr
    assert "see the message" not in out.stderr


def test_remote_role_session(live: LiveServer) -> None:
    token = issued_token(live, "--role", live.role_arn, "--session-name", "ops")
    out = run(
        live.root,
        ["-o", "json", "verify", "--endpoint", live.url, "--ca-file", str(live.ca_file), token],
    )
    assert out.code == 0, out.stderr
    assert out.json()["kubernetes"]["username"] == "admin:ops"


def test_remote_revoked(live: LiveServer) -> None:
    token = issued_token(live)
    status, _, _ = live.request(
        "/oauth2/revoke", data=urllib.parse.urlencode({"token": token}).encode()
    )
    assert status == 200
    out = run(live.root, ["verify", "--endpoint", live.url, "--ca-file", str(live.ca_file), token])
    assert out.code == 1
    assert out.stderr.startswith("authbridge: token refused: token revoked")


def test_remote_untrusted_certificate(live: LiveServer, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    run_cli(other, "init --cluster-id x")
    out = run(
        live.root,
        ["verify", "--endpoint", live.url, "--ca-file", str(other / "keys/tls/ca.crt"), "t.t.t"],
    )
    assert out.code == 1
    assert "TLS verification" in out.stderr and "--ca-file" in out.stderr
