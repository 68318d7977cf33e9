"""``authbridge serve``: run the issuer (and, later, the webhook) under gunicorn over TLS."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from authbridge.cli.context import App, pass_app

if TYPE_CHECKING:
    from authbridge.iam.model import BootstrapAdmin
    from authbridge.settings import Settings
    from authbridge.store.base import Store


@click.command()
@click.option("--bind", metavar="HOST:PORT", help="Listen address (default 127.0.0.1:8443).")
@click.option("--workers", type=int, metavar="N", help="Worker processes (default 2).")
@click.option("--issuer", metavar="URL", help="OIDC issuer URL, exactly as tokens carry it.")
@click.option(
    "--cluster-id",
    "cluster_ids",
    multiple=True,
    metavar="ID",
    help="A cluster id (token audience) this server issues for; repeatable.",
)
@click.option("--tls-cert", type=click.Path(path_type=Path), help="Serving certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path), help="Its private key (PEM).")
@click.option(
    "--mapping",
    "mapping_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Mapping file (overrides the config's mappingFile; default rbac/mapping.yaml).",
)
@click.option(
    "--allow-insecure-http",
    is_flag=True,
    default=None,
    help="Development only: allow an http:// issuer and serve without TLS.",
)
@click.option(
    "--bootstrap-credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="On a store with no account: make it and an administrator, and write its one-time"
    " credential to FILE (0600, never overwritten). Also bootstrapCredentialsFile.",
)
@pass_app
def serve(
    app: App,
    bind: str | None,
    workers: int | None,
    issuer: str | None,
    cluster_ids: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    mapping_file: Path | None,
    allow_insecure_http: bool | None,
    credentials_file: Path | None,
) -> None:
    """Serve OIDC discovery, JWKS and the token endpoint over HTTPS (gunicorn).

    Settings come from flags, AUTHBRIDGE_* variables, then the config file
    (default keys/authbridge.yaml when it exists). Ctrl-C stops it gracefully.

    The first start of a new deployment, on a store with no account, makes
    the account and an administrator with AdministratorAccess when told where
    its one-time credential goes: --bootstrap-credentials FILE
    (bootstrapCredentialsFile) and/or bootstrapSecret (a Kubernetes Secret
    the manifests made empty, filled through the in-cluster API). Of several
    replicas starting at once exactly one makes it; it is never logged.

    \b
    Example:
      authbridge serve --bind 127.0.0.1:8443 --cluster-id prod
      authbridge serve --config keys/authbridge.yaml --mapping rbac/mapping.yaml
      curl --cacert keys/tls/ca.crt https://127.0.0.1:8443/.well-known/openid-configuration
    """
    app.add_flags(
        bind=bind,
        workers=workers,
        issuer=issuer,
        cluster_ids=list(cluster_ids) or None,
        tls_cert_file=str(tls_cert) if tls_cert else None,
        tls_key_file=str(tls_key) if tls_key else None,
        mapping_file=str(mapping_file) if mapping_file else None,
        allow_insecure_http=allow_insecure_http,
        bootstrap_credentials_file=str(credentials_file) if credentials_file else None,
    )
    from authbridge.web.server import serve as run

    settings = app.settings
    app.close()  # the master keeps no store connection across the workers' fork
    first_start = _first_start(settings, app.new_account_id())
    run(settings, first_start=first_start, service_accounts=LazyServiceAccounts)


class LazyServiceAccounts:
    """``/mutate/pods``'s ServiceAccount lookup: the kube client made at the first pod.

    In a pod, in-cluster credentials (the ServiceAccount of authbridge, which
    needs ``get serviceaccounts``); elsewhere ``$KUBECONFIG`` or ``~/.kube/config``.
    Where there is none, every lookup fails and pods are admitted unchanged with a
    warning (:mod:`authbridge.web.mutate`).
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._lookup: Any = None

    def annotations(self, namespace: str, name: str) -> Mapping[str, str] | None:
        with self._lock:
            if self._lookup is None:
                from authbridge.kube import KubeAdapter, ServiceAccountAnnotations

                self._lookup = ServiceAccountAnnotations(KubeAdapter.auto())
            lookup = self._lookup
        result: Mapping[str, str] | None = lookup.annotations(namespace, name)
        return result


def _first_start(settings: Settings, random_account: str) -> Callable[[Store], None] | None:
    """The first administrator, for `serve` to make once its checks pass (None: not asked)."""
    if settings.bootstrap_credentials_file is None and settings.bootstrap_secret is None:
        return None

    def first_start(store: Store) -> None:
        import logging

        from authbridge import first_admin

        log = logging.getLogger("authbridge.bootstrap")
        if store.list_accounts():
            # Every start after the first: no Kubernetes client, no file looked at (the
            # token may be unmounted by now). bootstrap_admin decides again, under its lock.
            log.info("the store has an account: no first administrator to make")
            return
        file = None
        if settings.bootstrap_credentials_file is not None:
            file = first_admin.CredentialsFile(
                settings.bootstrap_credentials_file, endpoint=settings.issuer
            )
        slot = None
        if settings.bootstrap_secret is not None:
            from authbridge.kube import SecretSlot

            slot = SecretSlot.auto(settings.bootstrap_secret)
        where = [str(w) for w in (slot, file and file.path) if w]

        def deliver(made: BootstrapAdmin) -> None:
            if slot is not None:
                slot.fill(first_admin.credential_document(made, endpoint=settings.issuer))
            if file is not None:
                file.write(made)

        try:
            made = first_admin.bootstrap(
                store,
                account_id=settings.account_id or random_account,
                deliver=deliver,
                undo=file.undo if file is not None else None,
            )
        finally:
            if slot is not None:
                slot.close()
        if made is None:
            log.info("the store has an account: no first administrator to make")
            return
        log.info(
            "first administrator %s (%s, access key %s) made; its one-time credential is in %s",
            made.user.arn,
            made.policy_arn,
            made.key.key.access_key_id,
            " and ".join(where),
        )
        from authbridge import audit

        trail = audit.AuditLog(settings.audit_log)
        try:
            trail.write(
                audit.record(
                    "admin_bootstrap",
                    request_id=audit.new_request_id(),
                    client=None,
                    outcome="allowed",
                    reason="ok",
                    caller="authbridge serve (first start, empty store)",
                    action="BootstrapAdmin",
                    targets=[made.user.arn, made.policy_arn],
                    detail=f"access key {made.key.key.access_key_id} delivered to"
                    f" {' and '.join(where)}",
                )
            )
        finally:
            trail.close()

    return first_start
