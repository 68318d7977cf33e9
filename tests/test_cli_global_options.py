"""Global options after the subcommand, as kubectl and the AWS CLI take them (real subprocesses).

Covers: --account-id, --store, -o, --keys-dir and --config accepted after the
subcommand (and after a subgroup), where they were "No such option" before;
given before and after, the one after wins, and both beat the environment; a
--keys-dir after the subcommand finds that directory's config; an option a
command defines itself keeps its meaning (`iam create-account --account-id`);
--help says so; the fast path leaves such a `token` call to click; and `serve
--config F --mapping M` from another directory serves with F's keys and M's
mapping (checked through /verify of a real server).
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from authbridge.cli import entry
from tests.test_cli import Cli, clean_env

ACCOUNT = "111122223333"
OTHER = "444455556666"


def _store(path: Path) -> str:
    return f"sqlite:///{path}"


def test_iam_options_after_the_subcommand(tmp_path: Path) -> None:
    cli = Cli(tmp_path, clean_env())
    a, b = _store(tmp_path / "a.db"), _store(tmp_path / "b.db")
    # create-account's own --account-id (the account to make) keeps its meaning.
    cli.ok(f"iam create-account --account-id {ACCOUNT} --store {a}")
    cli.ok(f"iam create-account --account-id {OTHER} --store {a}")
    cli.ok(f"iam create-user --user-name alice --store {a} --account-id {ACCOUNT}")
    cli.fails(f"iam get-user --user-name alice --store {a}", "none was chosen")

    user = cli.ok(f"iam get-user --user-name alice --account-id {ACCOUNT} --store {a} -o json")
    assert user.json()["User"]["Arn"] == f"arn:aws:iam::{ACCOUNT}:user/alice"
    # After a subgroup, before its command, works too.
    assert cli.ok(f"iam --store {a} --account-id {ACCOUNT} -o json list-users").json()["Users"]

    # Given both ways, the one after the subcommand wins; both beat the environment.
    wins = cli.ok(
        f"--store {b} -o text iam get-user --user-name alice --account-id {ACCOUNT}"
        f" --store {a} -o json",
        env=clean_env(AUTHBRIDGE_STORE=b, AUTHBRIDGE_ACCOUNT_ID=OTHER),
    )
    assert wins.json()["User"]["UserName"] == "alice"
    cli.fails(
        f"--store {a} iam get-user --user-name alice --account-id {ACCOUNT} --store {b}",
        f"account {ACCOUNT} does not exist",  # the store after the subcommand: b, empty
    )


def test_keys_dir_and_config_after_the_subcommand(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    Cli(other, clean_env()).ok("init --cluster-id prod --apiserver-client prod-cp=prod")
    here = tmp_path / "here"
    here.mkdir()
    cli = Cli(here, clean_env())
    keys = other / "keys"
    listed = cli.ok(f"keys list --keys-dir {keys} -o json").json()["Keys"]
    assert len(listed) == 1
    # --keys-dir after the subcommand also finds that directory's config (clusters: prod).
    doc = cli.ok(f"apiserver-config --mode webhook --keys-dir {keys} -o json").json()
    assert [c["Name"] for c in doc["ApiserverClients"]] == ["prod-cp"]
    doc = cli.ok(f"apiserver-config --mode webhook --config {keys / 'authbridge.yaml'}").out
    assert "prod-cp" in doc
    # apiserver-config's own -o (yaml too) keeps its meaning.
    assert cli.ok(f"apiserver-config --mode webhook --config {keys}/authbridge.yaml -o yaml").out
    missing = cli.run("apiserver-config --mode webhook --config")
    assert missing.rc == 2 and "'--config' requires an argument" in missing.err, missing


def test_help_says_after_wins() -> None:
    cli = Cli(Path.cwd(), clean_env())
    for argv in ("serve --help", "iam get-user --help", "token --help"):
        out = cli.ok(argv).out
        assert "--config FILE" in out and "--store DSN" in out, argv
        assert "given both ways, this one wins" in " ".join(out.split()), argv
    assert "the one after the subcommand wins" in " ".join(cli.ok("--help").out.split())


def test_fast_path_leaves_global_options_to_click() -> None:
    assert entry.token_flags(["token", "--cluster-id", "prod"]) == {"cluster_id": "prod"}
    for extra in (["--keys-dir", "k"], ["--config", "c.yaml"], ["--store", "sqlite:///x"]):
        assert entry.token_flags(["token", "--cluster-id", "prod", *extra]) is None


MAPPING = f"""\
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: mapped-by-the-flag
    groups: ["authbridge:devs"]
"""


def test_serve_config_and_mapping_after_the_subcommand(tmp_path: Path) -> None:
    from tests.serving import AUTHBRIDGE, free_port

    setup = tmp_path / "setup"
    setup.mkdir()
    port = free_port()
    cli = Cli(setup, clean_env())
    cli.ok(f"init --no-admin --cluster-id prod --port {port}")
    cli.ok(f"iam create-account --account-id {ACCOUNT}")
    cli.ok("iam create-user --user-name alice")
    mapping = tmp_path / "custom-mapping.yaml"
    mapping.write_text(MAPPING)
    keys = setup / "keys"
    config = keys / "authbridge.yaml"

    elsewhere = tmp_path / "elsewhere"  # no keys/, no config: only the flags say where
    elsewhere.mkdir()
    token = Cli(elsewhere, clean_env()).run(
        f"token --local --principal arn:aws:iam::{ACCOUNT}:user/alice --cluster-id prod"
        f" --token-only --keys-dir {keys} --config {config}"
    )
    assert token.rc == 0 and "break-glass" in token.err, token  # signed with keys/ there
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            AUTHBRIDGE,
            "serve",
            "--config",
            str(config),
            "--mapping",
            str(mapping),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=elsewhere,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        context = ssl.create_default_context(cafile=str(keys / "tls" / "ca.crt"))
        request = urllib.request.Request(  # noqa: S310 - this test's own https server
            f"https://127.0.0.1:{port}/verify",
            headers={"Authorization": f"Bearer {token.out.strip()}"},
        )
        answer = None
        for _ in range(300):
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as r:  # noqa: S310
                    answer = json.loads(r.read())
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.1)
        assert answer is not None, (tmp_path / "serve.log").read_text()
        assert answer["authenticated"] is True, answer
        assert answer["kubernetes"]["username"] == "mapped-by-the-flag"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
