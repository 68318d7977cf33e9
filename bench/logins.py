"""Sign-in speed with the default argon2 parameters: ``python -m bench.logins [--seconds S]``.

In-process, no server. Prints:

* one argon2id verification with the default parameters (64 MiB, t=3,
  p=1), in ms, and verifications/s on one thread;
* ``verify_login`` end to end (facts read, verification, success recorded)
  against a SQLite store in a temporary directory, logins/s on one thread,
  and with 1, cores and 4 x cores threads through the shared bounded hasher
  (the semaphore caps how many run at once: more threads wait, the rate
  does not grow);
* the rate of other CPU work (HMAC-SHA-256 of 1 KiB, a stand-in for the
  webhook's token checks) on one thread alone, then while 4 x cores threads
  flood logins: how much the flood takes from the rest.

Figures vary with the machine and its load (the load average is printed).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from authbridge.iam import login
from authbridge.iam.credentials import Pepper
from authbridge.iam.passwords import PasswordHasher
from authbridge.store import open_store

ACCOUNT = "111122223333"
PASSWORD = "Correct-Horse-9-battery"  # noqa: S105 - a throwaway password for the benchmark


def _rate(call: Callable[[], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or done == 0:
        call()
        done += 1
    return done / elapsed


def _threads_rate(call: Callable[[], object], threads: int, seconds: float) -> float:
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        while time.perf_counter() < stop:
            call()
            counts[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def _other_work() -> None:
    key = b"k" * 32
    data = b"x" * 1024
    for _ in range(100):
        hmac.new(key, data, hashlib.sha256).digest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logins")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args(argv)
    if not 0.5 <= args.seconds <= 60:
        parser.error("--seconds must be between 0.5 and 60")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    hasher = PasswordHasher()
    print(
        f"sign-in, argon2id {hasher.params.memory_kib // 1024} MiB t={hasher.params.time_cost}"
        f" p={hasher.params.parallelism}, {hasher.slots} hashing slots"
        f" (load average {load:.2f} on {cores} cores)"
    )
    digest = hasher.hash(PASSWORD)
    rate = _rate(lambda: hasher.verify(digest, PASSWORD), args.seconds)
    print(f"  argon2id verify, one thread          {rate:8.1f}/s  {1000 / rate:7.1f} ms each")

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'a.db'}", pepper=Pepper.generate())
        store.create_account(ACCOUNT)
        store.create_user(ACCOUNT, "alice")
        store.create_login_profile(ACCOUNT, "alice", PASSWORD, hasher=hasher)

        def one_login() -> None:
            result = login.verify_login(
                store,
                hasher,
                account_id=ACCOUNT,
                user_name="alice",
                password=PASSWORD,
                address="192.0.2.1",
                now=time.time(),
            )
            if result.outcome != "ok":
                raise SystemExit(f"login failed: {result}")

        one_login()
        rate = _rate(one_login, args.seconds)
        print(f"  verify_login (SQLite), one thread    {rate:8.1f}/s  {1000 / rate:7.1f} ms each")
        for threads in sorted({1, cores, 4 * cores}):
            rate = _threads_rate(one_login, threads, args.seconds)
            print(f"  verify_login, {threads:2} threads             {rate:8.1f}/s")

        alone = _rate(_other_work, args.seconds)
        flooding = threading.Event()
        stop = threading.Event()

        def flood() -> None:
            flooding.set()
            while not stop.is_set():
                one_login()

        pool = [threading.Thread(target=flood) for _ in range(4 * cores)]
        for t in pool:
            t.start()
        flooding.wait()
        during = _rate(_other_work, args.seconds)
        stop.set()
        for t in pool:
            t.join()
        store.close()
    print(
        f"  other work (100 x HMAC 1 KiB) alone  {alone:8.1f}/s;"
        f" during a {4 * cores}-thread login flood {during:8.1f}/s ({100 * during / alone:.0f}%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
