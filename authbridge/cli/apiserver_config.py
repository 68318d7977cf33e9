"""``authbridge apiserver-config``: what to give a kube-apiserver, webhook or JWT mode.

``--mode webhook`` reads the webhook kubeconfigs ``authbridge init`` wrote in
the keys directory (``webhook.kubeconfig``, ``webhook-<name>.kubeconfig``)
and prints each kube-apiserver's flags. ``--mode jwt`` prints the
``AuthenticationConfiguration`` (:mod:`authbridge.apiserver_config`) for the
configured issuer and clusters, with the issuer's CA inline, preceded by
comments saying where it goes and what JWT mode cannot do.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from authbridge.cli.context import App, pass_app

if TYPE_CHECKING:
    from authbridge.bootstrap import InitReport
    from authbridge.settings import Settings

_MAX_FILE_BYTES = 1024 * 1024
_JWT_ONLY = ("--api-version", "--ca-file", "--forbid-system-prefix")


def _read(path: Path, option: str, hint: str) -> bytes:
    from authbridge.errors import InputError

    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InputError(option, f"cannot read {path}: {e.strerror}", hint=hint) from e
    if len(data) > _MAX_FILE_BYTES:
        raise InputError(option, f"{path} is over {_MAX_FILE_BYTES} bytes", hint=hint)
    return data


def _audiences(settings: Settings, cluster_ids: tuple[str, ...]) -> list[str]:
    from authbridge.errors import InputError

    served = settings.cluster_ids
    for cluster in cluster_ids:
        if cluster not in served:
            raise InputError(
                "--cluster-id",
                f"{cluster[:100]} is not a cluster this authbridge issues for"
                f" ({', '.join(served)})",
                hint="add it to clusters in the config, or pick one of those",
            )
    return list(dict.fromkeys(cluster_ids)) or list(served)


def _webhook_report(settings: Settings, cluster_ids: tuple[str, ...]) -> InitReport:
    """The kube-apiserver clients whose webhook kubeconfigs are in the keys directory."""
    from authbridge.apiserver_config import client_from_kubeconfig
    from authbridge.bootstrap import InitReport
    from authbridge.errors import ConfigError

    directory = settings.keys_dir
    files = sorted(directory.glob("webhook*.kubeconfig"))
    if not files:
        raise ConfigError(
            f"no webhook kubeconfig in {directory}",
            hint="run `authbridge init` (it writes webhook.kubeconfig), or pass --keys-dir",
        )
    hint = "remake it with `authbridge init --force`"
    clients = [
        client_from_kubeconfig(f.name, _read(f, "kubeconfig", hint)) for f in files if f.is_file()
    ]
    if cluster_ids:
        clients = [c for c in clients if c.cluster_id in cluster_ids]
        if not clients:
            raise ConfigError(
                f"no webhook kubeconfig in {directory} is for {', '.join(cluster_ids)}",
                hint="add a client with `authbridge init --apiserver-client NAME=CLUSTER_ID`",
            )
    report = InitReport(directory, settings.issuer, "")
    report.clients = clients
    return report


def _jwt_document(
    settings: Settings,
    *,
    api_version: str,
    cluster_ids: tuple[str, ...],
    ca_file: Path | None,
    forbid_system_prefix: bool,
) -> dict[str, Any]:
    from authbridge.apiserver_config import API_VERSIONS, authentication_configuration

    ca_path = ca_file or settings.tls_cert_file.parent / "ca.crt"
    ca_pem = _read(
        ca_path,
        "--ca-file",
        "pass --ca-file with the CA that signed the issuer's serving certificate"
        " (`authbridge init` writes keys/tls/ca.crt)",
    )
    return authentication_configuration(
        issuer=settings.issuer,
        ca_pem=ca_pem,
        audiences=_audiences(settings, cluster_ids),
        api_version=API_VERSIONS[api_version],
        forbid_system_prefix=forbid_system_prefix,
    )


@click.command("apiserver-config")
@click.option(
    "--mode",
    type=click.Choice(["webhook", "jwt"]),
    required=True,
    help="webhook: the TokenReview webhook flags and kubeconfigs (revocation works);"
    " jwt: an AuthenticationConfiguration, the kube-apiserver verifies tokens itself.",
)
@click.option(
    "--api-version",
    type=click.Choice(["v1", "v1beta1"]),
    default=None,
    help="jwt: apiserver.config.k8s.io/v1 (Kubernetes 1.34+, default) or v1beta1 (1.30+).",
)
@click.option(
    "--cluster-id",
    "cluster_ids",
    multiple=True,
    metavar="ID",
    help="Cluster id(s) the kube-apiserver accepts tokens for; repeatable"
    " (default: every configured cluster).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="jwt: CA bundle verifying the issuer's TLS certificate (default: tls/ca.crt next"
    " to the serving certificate, as init writes it).",
)
@click.option(
    "--forbid-system-prefix",
    is_flag=True,
    help="jwt: add userValidationRules refusing usernames and groups starting with system:.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json", "text"]),
    default=None,
    help="jwt: yaml (default, with comments) or json; webhook: text (default), json or yaml.",
)
@pass_app
def apiserver_config(
    app: App,
    mode: str,
    api_version: str | None,
    cluster_ids: tuple[str, ...],
    ca_file: Path | None,
    forbid_system_prefix: bool,
    output: str | None,
) -> None:
    """Print what a kube-apiserver needs to accept authbridge tokens.

    --mode webhook prints, for each kube-apiserver `authbridge init` made a
    client certificate for, the path of its webhook kubeconfig and the flags
    to add. --mode jwt prints an AuthenticationConfiguration for
    --authentication-config: the kube-apiserver then verifies tokens itself,
    without the webhook, reading the user from the k8s_* claims that the
    server adds with embedKubernetesClaims: true. JWT mode has no
    revocation: a revoked token or disabled user works until the token
    expires, and mapping or group changes apply to new tokens only.

    \b
    Example:
      authbridge apiserver-config --mode webhook
      authbridge apiserver-config --mode jwt --cluster-id prod > authentication-config.yaml
    """
    from authbridge.errors import InputError

    fmt = output or ("json" if app.output == "json" else None)
    settings = app.settings
    if mode == "webhook":
        given = [
            flag
            for flag, value in zip(
                _JWT_ONLY, (api_version, ca_file, forbid_system_prefix or None), strict=True
            )
            if value is not None
        ]
        if given:
            raise InputError(given[0], "applies to --mode jwt only")
        _print_webhook(_webhook_report(settings, cluster_ids), fmt or "text")
        return

    from authbridge import apiserver_config as ac

    doc = _jwt_document(
        settings,
        api_version=api_version or "v1",
        cluster_ids=cluster_ids,
        ca_file=ca_file,
        forbid_system_prefix=forbid_system_prefix,
    )
    if not settings.embed_kubernetes_claims:
        click.echo(
            "authbridge: warning: embedKubernetesClaims is off in the loaded settings: tokens"
            " carry no k8s_username and this configuration refuses them; set"
            " embedKubernetesClaims: true (or AUTHBRIDGE_EMBED_KUBERNETES_CLAIMS=1) on the server",
            err=True,
        )
    if fmt == "json":
        click.echo(_json(doc))
        return
    notes = ac.jwt_mode_notes(
        api_version=doc["apiVersion"],
        default_lifetime=settings.default_token_lifetime,
        max_user_lifetime=settings.max_user_token_lifetime,
    )
    click.echo(ac.render_yaml(doc, notes), nl=False)


def _json(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc, indent=4, ensure_ascii=True)


def _print_webhook(report: InitReport, fmt: str) -> None:
    from authbridge import apiserver_config as ac

    if fmt == "json":
        click.echo(_json(ac.webhook_mode_doc(report)))
    elif fmt == "yaml":
        click.echo(ac.render_yaml(ac.webhook_mode_doc(report)), nl=False)
    else:
        click.echo(ac.webhook_mode_text(report))
