"""`authbridge serve`: the Flask app under gunicorn, over TLS, several workers.

The master process checks the settings, migrates the store once and loads the
keys once (so a broken setup fails before any worker starts, with one clear
line); then each worker, after the fork, opens its own store connection and
its own :class:`~authbridge.keys.KeyRing`, which reloads ``keys/`` when it
changes on disk — that is how a rotation reaches every worker. With
``keySource: store`` the master first reads the KEK and opens every key in
the store (a missing or wrong KEK stops it with one line naming the setting);
each worker's ring then refreshes from the store in a daemon thread every
``keyRefreshSeconds`` and runs automatic rotation from there
(:meth:`~authbridge.keys.StoreKeys.maybe_rotate`), so no request waits for a
key load.

Workers are :class:`authbridge.web.worker.EventLoopWorker`: one event loop
per process, HTTP keep-alive (the kube-apiserver keeps its webhook connections
open), gunicorn's HTTP/1.1 parsing, no thread hand-off per request; each
worker answers one request at a time in its loop, so ``workers`` is the
concurrency (see that module for why, and for its limits), except for the
pages (sign-in, ``/console``, the admin API), which run in a pool of
``threads`` niced threads so a password hash never stops a worker's
TokenReviews; each worker may run ``cores // workers`` argon2 hashes at once
(:func:`hashing_slots`). TLS is 1.2 or newer. With a client
CA configured, client certificates are requested (and verified against it)
but optional at the TLS layer, because
people and ``curl`` reach ``/verify`` and ``/oauth2/token`` without one; the
routes that need one (``/authenticate``) check it themselves.

Metrics of several workers: before forking, the master points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh private directory (0700, removed at
exit; an operator's own directory is emptied instead) and switches
prometheus_client to storing values there (:func:`authbridge.web.metrics.enable_multiprocess`),
so ``/metrics``, answered by any worker, sums all of them. gunicorn's
``child_exit`` hook marks an exited worker dead (prometheus_client then drops
its live gauges; its counts stay summed).

Logs: the application log (stderr, the root logger's handler) and gunicorn's
error log (stderr too) each go through :class:`authbridge.audit.RedactingFilter`
on their handlers, gunicorn's through :class:`RedactingLogger` (its
``logger_class``), so no secret-shaped value reaches either, whichever logger
or message carried it (the audit log has its own :func:`~authbridge.audit.scrub`).

Audit log: the master opens ``auditLog`` once to fail early when it cannot be
written; each worker appends with its own ``O_APPEND`` descriptor. The
``authbridge.audit`` logger does not propagate to the root logger, so an
audit line is not printed a second time, as a log record, on stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from authbridge import audit
from authbridge.errors import ConfigError
from authbridge.settings import Settings
from authbridge.web import metrics

if TYPE_CHECKING:
    from authbridge.keys import Kek, StoreKeys
    from authbridge.store.base import Store
    from authbridge.web.mutate import ServiceAccounts

log = logging.getLogger("authbridge.serve")

THREADS_PER_WORKER = 4  # used only when WORKER_CLASS is "gthread" (bench experiments)
WORKER_CLASS = "authbridge.web.worker.EventLoopWorker"
CONNECTIONS_PER_WORKER = 512  # beyond this a worker stops accepting (the others take them)
KEEPALIVE_SECONDS = 75  # longer than the kube-apiserver's idle connection reuse
REQUEST_TIMEOUT_SECONDS = 30
INSECURE_BANNER = (
    "INSECURE: serving plain HTTP because allowInsecureHTTP is set. Tokens and access key"
    " secrets cross the network in clear text. Use this for local development only."
)


def _child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master: a worker exited; its live gauges go (its counts stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # unannotated


def _ssl_context(config: Any, default_ssl_context_factory: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def redact_handlers(logger: logging.Logger) -> None:
    """Put :class:`~authbridge.audit.RedactingFilter` on each of ``logger``'s handlers, once."""
    for handler in logger.handlers:
        if not any(isinstance(f, audit.RedactingFilter) for f in handler.filters):
            handler.addFilter(audit.RedactingFilter())


class RedactingLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger, its error (and access) log handlers redacted (see the module doc).

    ``setup`` runs at start and on every reload (SIGHUP), each time with new
    handlers: the filter goes on after each.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        redact_handlers(self.error_log)
        redact_handlers(self.access_log)


class AuthbridgeServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    def __init__(
        self,
        settings: Settings,
        *,
        tls: bool,
        service_accounts: Callable[[], ServiceAccounts] | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.service_accounts = service_accounts  # made in each worker (after the fork)
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [s.bind],
            "workers": s.workers,
            "worker_class": WORKER_CLASS,
            "threads": THREADS_PER_WORKER,
            "worker_connections": CONNECTIONS_PER_WORKER,
            "keepalive": KEEPALIVE_SECONDS,
            "timeout": REQUEST_TIMEOUT_SECONDS,
            "graceful_timeout": 10,
            "accesslog": None,
            "errorlog": "-",
            "logger_class": RedactingLogger,
            "loglevel": "info",
            "proc_name": "authbridge",
            # Header caps: gunicorn answers 414 (request line) or 431 (header fields).
            "limit_request_line": 8190,
            "limit_request_fields": 64,
            "limit_request_field_size": 16384,
            # authbridge terminates TLS itself and reads X-Forwarded-For only from its
            # own trustedProxies: gunicorn need not look at forwarded headers at all.
            "forwarded_allow_ips": "",
            "preload_app": False,
            "child_exit": _child_exit,
        }
        if self.tls:
            options.update(
                certfile=str(s.tls_cert_file),
                keyfile=str(s.tls_key_file),
                ssl_context=_ssl_context,
            )
            if s.client_ca_file is not None:
                options.update(ca_certs=str(s.client_ca_file), cert_reqs=ssl.CERT_OPTIONAL)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25.1 opens a control socket under $HOME by default: two servers
            # would share it, and a read-only root filesystem has no place for it.
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Runs in each worker after the fork: nothing opened here is shared.
        from authbridge.iam import passwords
        from authbridge.iam.credentials import load_or_create_pepper
        from authbridge.keys import KeyDirectory, KeyRing
        from authbridge.store import open_store
        from authbridge.web.app import create_app

        s = self.settings
        # This worker's share of the cores for argon2 (see hashing_slots).
        passwords.share_slots(hashing_slots(os.cpu_count() or 1, s.workers))
        store = open_store(
            s.store,
            pepper=lambda: load_or_create_pepper(s.pepper_file, create=False),
            partition=s.partition,
            migrate=False,
        )
        if s.key_source == "store":
            source = store_keys(s, store)
            keys = KeyRing(source)
            # A daemon thread of this worker (started here, after the fork) reloads the
            # key set and rotates when due; requests only read the current reference.
            keys.start_refresher(s.key_refresh_seconds, after_refresh=source.maybe_rotate)
        else:
            keys = KeyRing(
                KeyDirectory(
                    s.keys_dir,
                    prepublication_delay=s.prepublication_delay,
                    max_token_lifetime=s.max_token_lifetime,
                )
            )
        if not self.tls:
            log.warning(INSECURE_BANNER)
        lookup = self.service_accounts() if self.service_accounts is not None else None
        return create_app(s, store=store, keys=keys, service_accounts=lookup)


def hashing_slots(cores: int, workers: int) -> int:
    """argon2 hashes one worker may run at once: its share of the cores, at least one.

    Each worker process has its own semaphore (:mod:`authbridge.iam.passwords`);
    were each sized to the cores, ``workers`` x ``cores`` hashes would run at once
    (4 on this 2-core, 2-worker default), 64 MiB each, and every core would be
    hashing. With ``cores // workers`` per worker they are ``cores`` together
    (more only when there are more workers than cores: one each). A hash holds
    one core for ~100-200 ms; the pool threads that run it are niced, so the
    loops (TokenReviews) still get the cores first when they need them
    (bench/RESULTS.md, "Sign-in under load").
    """
    return max(1, cores // max(1, workers))


def store_keys(settings: Settings, store: Store, kek: Kek | None = None) -> StoreKeys:
    """The signing keys in ``store``, as the settings configure them (KEK read if not given)."""
    from authbridge.keys import StoreKeys, load_kek
    from authbridge.settings import redact_dsn

    return StoreKeys(
        store,
        kek if kek is not None else load_kek(settings.kek_file, settings.kek),
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
        rotation_period=settings.rotation_period,
        location=f"store: {redact_dsn(settings.store)}",
    )


def check_startup(settings: Settings) -> bool:
    """Everything a worker needs, checked once in the master. Returns whether to use TLS."""
    from authbridge.iam.credentials import load_or_create_pepper
    from authbridge.keys import KeyDirectory, load_kek
    from authbridge.store import open_store

    tls_files = [settings.tls_cert_file, settings.tls_key_file]
    missing = [str(p) for p in tls_files if not p.is_file()]
    if settings.issuer.startswith("http://"):
        if not settings.allow_insecure_http:  # settings already refuse this; belt and braces
            raise ConfigError("an http:// issuer needs allowInsecureHTTP")
        tls = False
    elif missing:
        raise ConfigError(
            f"TLS files not found: {', '.join(missing)}",
            hint="run `authbridge init` to create a CA and serving certificate, or set"
            " tlsCertFile/tlsKeyFile (AUTHBRIDGE_TLS_CERT_FILE/AUTHBRIDGE_TLS_KEY_FILE)",
        )
    else:
        tls = True
        _check_tls_files(settings)
    if settings.key_source == "store":
        # The KEK first: a missing or wrong one is its own one-line error, naming the
        # setting; there is never a fallback to the keys/ files.
        kek = load_kek(settings.kek_file, settings.kek)
        with contextlib.closing(
            open_store(
                settings.store,
                pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False),
            )
        ) as key_store:
            keys = store_keys(settings, key_store, kek).load()
    else:
        keys = KeyDirectory(
            settings.keys_dir,
            prepublication_delay=settings.prepublication_delay,
            max_token_lifetime=settings.max_token_lifetime,
        ).load()
    keys.signing_key(time.time())  # refuses to start with nothing to sign with
    # The server never creates the pepper (its keys/ may be a read-only Secret); it
    # refuses one that others can read, and warns when there is none yet.
    if settings.pepper_file.exists():
        load_or_create_pepper(settings.pepper_file, create=False)
    else:
        log.warning(
            "no access-key pepper at %s: access keys cannot be checked until one exists"
            " (`authbridge init` makes it)",
            settings.pepper_file,
        )
    store = open_store(
        settings.store, pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False)
    )
    store.close()
    return tls


def _check_tls_files(settings: Settings) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(
            f"cannot use the TLS certificate {settings.tls_cert_file} with key"
            f" {settings.tls_key_file}: {getattr(e, 'reason', None) or e}",
            hint="re-run `authbridge init --force` or point tlsCertFile/tlsKeyFile at a"
            " matching PEM pair",
        ) from e
    if settings.client_ca_file is not None:
        try:
            context.load_verify_locations(str(settings.client_ca_file))
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(
                f"cannot use the client CA {settings.client_ca_file}: {e}",
                hint="point clientCAFile at a PEM CA certificate",
            ) from e


def metrics_directory() -> Path | None:
    """Set up ``$PROMETHEUS_MULTIPROC_DIR`` for the workers; return it if made here (to remove).

    An operator's directory is created if missing and emptied of a previous
    run's files (stale counts would otherwise be summed in).
    """
    given = os.environ.get(metrics.MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        made = None
    else:
        directory = made = Path(tempfile.mkdtemp(prefix="authbridge-metrics-"))  # 0700
        os.environ[metrics.MULTIPROC_ENV] = str(directory)
    metrics.enable_multiprocess()
    return made


def check_audit_log(settings: Settings) -> None:
    """The audit log file can be appended to (created 0600 if missing)."""
    if settings.audit_log is None:
        return
    try:
        audit.AuditLog(settings.audit_log).close()
    except OSError as e:
        raise ConfigError(
            f"cannot open the audit log {settings.audit_log}: {e.strerror}",
            hint='point auditLog (AUTHBRIDGE_AUDIT_LOG) at a writable file, or "-" for stdout',
        ) from e


def serve(
    settings: Settings,
    *,
    first_start: Callable[[Store], None] | None = None,
    service_accounts: Callable[[], ServiceAccounts] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (gunicorn handles both: graceful stop).

    ``service_accounts`` makes, in each worker, the ServiceAccount lookup of
    ``POST /mutate/pods`` (:mod:`authbridge.web.mutate`).

    ``first_start`` runs once in the master, after every check passed and
    before any worker starts, on a store connection of its own: the first
    administrator of a new deployment (:mod:`authbridge.first_admin`). What it
    raises stops the server like a failed check.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    redact_handlers(logging.getLogger())
    audit_logger = logging.getLogger(audit.LOGGER)
    audit_logger.propagate = False  # the AuditLog writes each line itself
    audit_logger.addHandler(logging.NullHandler())
    tls = check_startup(settings)
    check_audit_log(settings)
    if first_start is not None:
        from authbridge.iam.credentials import load_or_create_pepper
        from authbridge.store import open_store

        with contextlib.closing(
            open_store(
                settings.store,
                pepper=lambda: load_or_create_pepper(settings.pepper_file, create=False),
                partition=settings.partition,
            )
        ) as store:
            first_start(store)
    if not tls:
        log.warning(INSECURE_BANNER)
    scheme = "https" if tls else "http"
    log.info(
        "authbridge serving %s://%s (issuer %s, clusters %s, %d workers)",
        scheme,
        settings.bind,
        settings.issuer,
        ", ".join(settings.cluster_ids),
        settings.workers,
    )
    made = metrics_directory()
    master = os.getpid()
    try:
        AuthbridgeServer(settings, tls=tls, service_accounts=service_accounts).run()
    finally:
        # Workers leave run() through SystemExit too (gunicorn forks inside it): only
        # the master removes the directory, once every worker is gone.
        if made is not None and os.getpid() == master:
            shutil.rmtree(made, ignore_errors=True)
