"""End to end: a mapping file with a hostile YAML scalar against the real `authbridge serve`.

Scalars PyYAML builds into a date/timestamp and raises ValueError on
(``2001-02-30``, ``9999-12-31 23:59:60``) used to escape as a crash: at start
both workers failed to boot and gunicorn exited 3; after a reload the first
/authenticate in each worker answered 500 while /readyz stayed ready and the
reload-failure metric stayed 0. One server (gunicorn, 2 workers, TLS, the
kube-apiserver's client certificate) goes through:

* start with such a file: the workers boot, /readyz is 503 (no mapping
  loaded), the log names file, line and field, without a traceback, and a
  TokenReview is a 200 refusal;
* a good file: both workers load it, alice is mapped;
* the hostile file again: both workers count a failed reload and keep the
  last good mapping, /readyz stays 200 with ``last_reload_failed``, and every
  TokenReview is a 200 verdict mapping alice as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.serving import ACCOUNT, LiveServer, start_server
from tests.test_e2e_metrics import issue, key, review, scrape

GOOD = f"""\
mapUsers:
  - userarn: arn:aws:iam::{ACCOUNT}:user/alice
    username: alice
mapAccounts: ["444455556666"]
"""
AT_START = GOOD.replace('["444455556666"]', "[2001-02-30]")
ON_RELOAD = GOOD.replace('["444455556666"]', '\n  - "444455556666"\n  - 9999-12-31 23:59:60')
DEADLINE = 60.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    served = start_server(
        tmp_path_factory.mktemp("scalars"),
        mapping=AT_START,
        init_args="--apiserver-client prod-cp=prod",
    )
    server = next(served)
    try:
        yield server
    finally:
        served.close()


def write(live: LiveServer, text: str) -> Path:
    path = live.root / "rbac" / "mapping.yaml"
    tmp = path.with_name("mapping.yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def until(what: str, condition: Callable[[], bool]) -> None:
    """Poll (each poll is a request some worker answers) until ``condition`` holds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        time.sleep(0.05)


def reloads(live: LiveServer, result: str) -> float:
    return scrape(live).get(key("authbridge_mapping_reloads_total", result=result), 0.0)


def test_a_hostile_scalar_at_start_then_on_reload(live: LiveServer) -> None:
    path = live.root / "rbac" / "mapping.yaml"
    alice = (live.access_key_id, live.secret)
    token = issue(live, alice)

    # -- at start: both workers up, not ready, a plain error in the log
    assert live.proc.poll() is None
    status, _, body = live.request("/readyz")
    assert status == 503
    assert json.loads(body)["checks"]["mapping"] == {"ok": False, "error": "MappingNotLoaded"}
    status, answer = review(live, token)
    assert status == 200 and answer["status"]["authenticated"] is False
    until("both workers reported the file", lambda: reloads(live, "failure") >= 2)
    log = live.log.read_text()
    assert (
        f"{path}: mapAccounts[0]: is a date (2001-02-30, line 4), not a 12-digit account id" in log
    )
    assert "Traceback" not in log and "ValueError" not in log

    # -- a good file: every worker loads it
    write(live, GOOD)
    until("both workers loaded the good file", lambda: reloads(live, "success") >= 2)
    until("readyz is 200", lambda: live.request("/readyz")[0] == 200)
    status, answer = review(live, token)
    assert status == 200 and answer["status"]["user"]["username"] == "alice"

    # -- the hostile file again: the last good mapping keeps answering
    failures = reloads(live, "failure")
    write(live, ON_RELOAD)
    until("both workers refused the reload", lambda: reloads(live, "failure") >= failures + 2)
    for _ in range(20):  # both workers answer some of these
        status, answer = review(live, token)
        assert status == 200, answer
        assert answer["status"]["authenticated"] is True
        assert answer["status"]["user"]["username"] == "alice"
        status, _, body = live.request("/readyz")
        assert status == 200
        assert json.loads(body)["checks"]["mapping"]["last_reload_failed"] is True
    assert scrape(live)[key("authbridge_mapping_last_reload_failed")] == 1
    log = live.log.read_text()
    assert (
        f"{path}: mapAccounts[1]: is a timestamp (9999-12-31 23:59:60, line 6), not a 12-digit"
        " account id" in log
    )
    assert "still serving the last good mapping" in log
    assert "Traceback" not in log and "ValueError" not in log
    assert live.proc.poll() is None
