"""``authbridge serve``: run the issuer (and, later, the webhook) under gunicorn over TLS."""

from __future__ import annotations

from pathlib import Path

import click

from authbridge.cli.context import App, pass_app


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
) -> None:
    """Serve OIDC discovery, JWKS and the token endpoint over HTTPS (gunicorn).

    Settings come from flags, AUTHBRIDGE_* variables, then the config file
    (default keys/authbridge.yaml when it exists). Ctrl-C stops it gracefully.

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
    )
    from authbridge.web.server import serve as run

    settings = app.settings
    app.close()  # the master keeps no store connection across the workers' fork
    run(settings)
