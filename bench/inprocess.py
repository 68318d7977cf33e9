"""In-process limits: minting the benchmark's tokens, and verifying them on one core.

:func:`mint_tokens` signs tokens with the server's own key directory through
:func:`authbridge.tokens.mint`, for principals that exist in the store (user
id, ARN and an active access key), so every check the webhook makes passes.

:func:`verify_rates` runs in a child process pinned to one CPU and reports,
for the same key and tokens, how many verifications per second one core does at
three depths, so the webhook's figure can be read against them:

* ``pyjwt``: ``jwt.decode`` with the loaded public key (signature, exp, iss, aud);
* ``tokens.verify``: authbridge's full token check, without store callbacks;
* ``review_token``: the webhook's whole decision (store reads of revocation,
  principal status and groups, and the mapping), without HTTP, TLS or logging.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._setup import ACCOUNT, CLUSTER, AccessKey

_CHUNK = 500


def _keyset(keys_dir: Path) -> Any:
    from authbridge.keys import KeyDirectory

    return KeyDirectory(keys_dir).load()


# What the minting processes need; set before the fork, so nothing is pickled.
_MINT: dict[str, Any] = {}


def _child_signals() -> None:
    """In a forked child: default SIGTERM (the parent's turns it into KeyboardInterrupt)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _mint_chunk(start: int) -> list[str]:
    from authbridge.tokens import mint

    keyset, principals, issuer, count, audience = (
        _MINT["keyset"],
        _MINT["principals"],
        _MINT["issuer"],
        _MINT["count"],
        _MINT["audience"],
    )
    return [
        mint(principals[i % len(principals)], keys=keyset, issuer=issuer, audience=audience).token
        for i in range(start, min(start + _CHUNK, count))
    ]


def mint_tokens(
    keys_dir: Path,
    issuer: str,
    access_keys: list[AccessKey],
    count: int,
    processes: int = 2,
    audience: str = CLUSTER,
) -> list[str]:
    """``count`` distinct valid tokens, spread over ``access_keys`` round-robin.

    ``audience`` is the cluster, or the sts audience (issuer + ``/sts``) for
    AssumeRole's subject tokens: a cluster token is never one.
    """
    from authbridge.tokens import Principal

    _MINT.update(
        keyset=_keyset(keys_dir),
        issuer=issuer,
        count=count,
        audience=audience,
        principals=[
            Principal(
                arn=k.user_arn,
                canonical_arn=k.user_arn,
                account_id=ACCOUNT,
                principal_id=k.user_id,
                access_key_id=k.access_key_id,
            )
            for k in access_keys
        ],
    )
    starts = list(range(0, count, _CHUNK))
    if processes <= 1 or count <= _CHUNK:
        return [t for s in starts for t in _mint_chunk(s)]
    with mp.get_context("fork").Pool(processes, initializer=_child_signals) as pool:
        parts = pool.map(_mint_chunk, starts)
    return [t for part in parts for t in part]


def _rate(fn: Callable[[str], object], tokens: list[str], seconds: float) -> float:
    """Calls per second of ``fn`` over ``tokens`` (cycled), for about ``seconds``."""
    n = 0
    batch = 100
    source = itertools.cycle(tokens)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        for tok in itertools.islice(source, batch):
            fn(tok)
        n += batch
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - t0)


def _measure(root: Path, issuer: str, tokens: list[str], seconds: float) -> dict[str, Any]:
    import jwt

    from authbridge.tokens import verify

    keys_dir = root / "keys"
    keyset = _keyset(keys_dir)
    key = keyset.signing_key(time.time())
    out: dict[str, Any] = {"alg": key.alg, "kid": key.kid}

    def pyjwt(tok: str) -> object:
        return jwt.decode(
            tok, key.public_key, algorithms=[key.alg], audience=CLUSTER, issuer=issuer
        )

    def ab_verify(tok: str) -> object:
        return verify(tok, keys=keyset, issuer=issuer, audiences={CLUSTER})

    out["pyjwt"] = _rate(pyjwt, tokens, seconds)
    out["tokens_verify"] = _rate(ab_verify, tokens, seconds)
    try:
        out["review_token"] = _review_rate(root, keyset, tokens, seconds)
    except Exception as e:  # a diagnostic figure: report, do not fail the run
        out["review_token_error"] = f"{type(e).__name__}: {e}"
    return out


def _review_rate(root: Path, keyset: Any, tokens: list[str], seconds: float) -> float:
    from authbridge.iam.credentials import load_or_create_pepper
    from authbridge.mapping.parse import load_mapping
    from authbridge.review import review_token
    from authbridge.settings import load_settings
    from authbridge.store import open_store
    from authbridge.sts import IssuerPolicy

    settings = load_settings(env={}, config_file=root / "keys" / "authbridge.yaml", cwd=root)
    store = open_store(
        settings.store,
        pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False),
        partition=settings.partition,
        migrate=False,
    )
    mapping = load_mapping(settings.mapping_file)
    policy = IssuerPolicy.from_settings(settings)

    def review(tok: str) -> object:
        r = review_token(
            tok,
            store=store,
            keys=keyset,
            policy=policy,
            mapping=mapping,
            clusters=(CLUSTER,),
            now=time.time(),
        )
        if not r.authenticated:
            raise RuntimeError(f"in-process review refused a benchmark token: {r.reason}")
        return r

    try:
        return _rate(review, tokens, seconds)
    finally:
        store.close()


def verify_rates(root: Path, issuer: str, tokens: list[str], seconds: float) -> dict[str, Any]:
    """:func:`_measure` in a child process pinned to one CPU (the server is idle meanwhile)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)

    def run() -> None:
        _child_signals()
        try:
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            child.send(_measure(root, issuer, tokens, seconds))
        except BaseException as e:
            child.send({"error": f"{type(e).__name__}: {e}"})
        finally:
            child.close()

    proc = ctx.Process(target=run, daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(seconds * 4 + 60):
            raise TimeoutError("the in-process measurement did not finish")
        result: dict[str, Any] = parent.recv()
    finally:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()
    if "error" in result:
        raise RuntimeError(f"in-process measurement failed: {result['error']}")
    return result
