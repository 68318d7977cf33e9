"""`authbridge configure` against a real `authbridge serve` (subprocesses, tests/serving.py).

Covers: the key is checked against the endpoint before anything is saved (one
client-authenticated introspection); a wrong secret exits 1 saying what to do
and saves nothing, and costs one failed attempt only, so the right secret
right after works and the saved profile mints tokens (no lockout); an
unreachable endpoint or an untrusted certificate saves nothing and names
--no-verify; --no-verify saves without any request (offline set-up);
--secret-access-key on argv is a usage error (exit 2) that never repeats the
value and saves nothing; any answer (status, body) is either accepted or one
IssuerError that never repeats the body (Hypothesis).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authbridge.cli.configure import check_answer
from authbridge.client.errors import IssuerError
from tests.serving import AUTHBRIDGE, LiveServer, clean_env, free_port, start_server

WRONG = "wrong-secret-but-long-enough-0123456789"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(tmp_path_factory.mktemp("configure"), workers=1)
    server = next(served)
    try:
        yield server
    finally:
        served.close()


def configure(
    home: Path, args: list[str], secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTHBRIDGE, "configure", *args],
        cwd=home,
        env=clean_env(HOME=str(home)),
        input=None if secret is None else secret + "\n",
        stdin=subprocess.DEVNULL if secret is None else None,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def key_args(live: LiveServer, *extra: str) -> list[str]:
    return [
        "--endpoint",
        live.url,
        "--access-key-id",
        live.access_key_id,
        "--ca-file",
        str(live.ca_file),
        "--cluster-id",
        "prod",
        *extra,
    ]


def credentials(home: Path) -> Path:
    return home / ".authbridge" / "credentials"


def test_wrong_secret_saves_nothing_and_does_not_lock_the_key_out(
    live: LiveServer, tmp_path: Path
) -> None:
    out = configure(tmp_path, key_args(live), WRONG)
    assert out.returncode == 1, out
    assert out.stdout == "" and out.stderr.count("\n") == 1
    assert f"refused access key {live.access_key_id} (invalid_client)" in out.stderr
    assert "nothing was saved" in out.stderr and "run configure again" in out.stderr
    assert WRONG not in out.stderr
    assert not credentials(tmp_path).exists()

    out = configure(tmp_path, key_args(live), live.secret)
    assert out.returncode == 0, out.stderr
    assert "checked against the endpoint" in out.stdout
    token = subprocess.run(
        [AUTHBRIDGE, "token", "--token-only", "--no-cache"],
        cwd=tmp_path,
        env=clean_env(HOME=str(tmp_path)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert token.returncode == 0, token.stderr
    assert token.stdout.count(".") == 2  # a JWT


def test_unreachable_or_untrusted_saves_nothing_and_names_no_verify(
    live: LiveServer, tmp_path: Path
) -> None:
    down = f"https://127.0.0.1:{free_port()}"
    args = ["--endpoint", down, "--access-key-id", live.access_key_id]
    out = configure(tmp_path, args, live.secret)
    assert out.returncode == 1, out
    assert f"cannot reach {down}" in out.stderr and "--no-verify" in out.stderr
    assert not credentials(tmp_path).exists()

    # The system trust store does not know the test CA.
    out = configure(
        tmp_path, ["--endpoint", live.url, "--access-key-id", live.access_key_id], live.secret
    )
    assert out.returncode == 1, out
    assert "TLS verification" in out.stderr and "--ca-file" in out.stderr
    assert not credentials(tmp_path).exists()

    # Offline set-up: saved as given, no request made.
    out = configure(tmp_path, [*args, "--no-verify"], WRONG)
    assert out.returncode == 0, out.stderr
    assert "not checked (--no-verify)" in out.stdout
    assert f"endpoint = {down}" in credentials(tmp_path).read_text()


@pytest.mark.parametrize("form", ["separate", "equals"])
def test_secret_on_argv_is_a_usage_error(live: LiveServer, tmp_path: Path, form: str) -> None:
    flag = (
        ["--secret-access-key", WRONG] if form == "separate" else [f"--secret-access-key={WRONG}"]
    )
    out = configure(tmp_path, [*key_args(live), *flag], live.secret)
    assert out.returncode == 2, out
    assert "secrets come from stdin or the prompt, never argv" in out.stderr
    assert WRONG not in out.stdout + out.stderr
    assert not credentials(tmp_path).exists()


# ------------------------------------------------------------------- the answer, as a parser

_BODIES = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda doc: json.dumps(doc).encode(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=40),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["active", "error", "error_description", "x"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        ),
    ),
)


@given(status=st.integers(100, 599), raw=_BODIES)
def test_any_answer_is_accepted_or_one_issuer_error(status: int, raw: bytes) -> None:
    try:
        check_answer(status, raw, "https://authbridge.example.com", "AKIAIOSFODNN7EXAMPLE")
    except IssuerError as e:
        assert "nothing was saved" in e.message
        assert e.hint
    else:
        doc = json.loads(raw)
        assert status == 200 and isinstance(doc["active"], bool)


def test_the_answer_never_repeats_the_body() -> None:
    body = json.dumps({"error": "nope", "error_description": "SECRET-LOOKING-TEXT"}).encode()
    with pytest.raises(IssuerError) as caught:
        check_answer(401, body, "https://a.example.com", "AKIAIOSFODNN7EXAMPLE")
    assert "SECRET-LOOKING-TEXT" not in str(caught.value)
    with pytest.raises(IssuerError, match="invalid_client"):
        check_answer(401, b'{"error": "invalid_client"}', "https://a.example.com", "AKIA")
    check_answer(200, b'{"active": false}', "https://a.example.com", "AKIA")
