"""``authbridge init``: CA, certificates, first signing key, config and webhook kubeconfig."""

from __future__ import annotations

from pathlib import Path

import click

from authbridge.cli.context import App, output_option, pass_app


@click.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write (default: --keys-dir, i.e. keys/).",
)
@click.option("--hostname", "hostnames", multiple=True, help="DNS name to serve as; repeatable.")
@click.option("--ip", "ips", multiple=True, help="IP address to serve as; repeatable.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port to serve on (default: the existing config's, else 8443).",
)
@click.option(
    "--cluster-id",
    "cluster_ids",
    multiple=True,
    help="Cluster id(s) to issue for; repeatable (default: default). Added to an existing"
    " config's clusters.",
)
@click.option("--issuer", metavar="URL", help="OIDC issuer URL (default https://HOST:PORT).")
@click.option(
    "--algorithm",
    type=click.Choice(["RS256", "ES256"]),
    default="RS256",
    show_default=True,
    help="Algorithm of the first signing key.",
)
@click.option(
    "--apiserver-client",
    "apiserver_clients",
    multiple=True,
    metavar="NAME=CLUSTER_ID",
    help="One client certificate and webhook kubeconfig per kube-apiserver; repeatable"
    " (default: one, kube-apiserver, for the first cluster id).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Remake the CA, TLS files, config and kubeconfigs from these flags alone"
    " (never the signing keys or the pepper).",
)
@output_option
@pass_app
def init(
    app: App,
    directory: Path | None,
    hostnames: tuple[str, ...],
    ips: tuple[str, ...],
    port: int | None,
    cluster_ids: tuple[str, ...],
    issuer: str | None,
    algorithm: str,
    apiserver_clients: tuple[str, ...],
    force: bool,
) -> None:
    """Create a CA, serving and kube-apiserver client certificates, the first
    signing key, the config `serve` reads, and the webhook kubeconfigs.

    Run again, it keeps what exists and adds what the flags add, saying what
    it changed: new --hostname/--ip re-issue the serving certificate from the
    same CA (existing kubeconfigs stay valid), new --cluster-id are added to
    the config's clusters, a new --apiserver-client gets its certificate and
    kubeconfig. Flags that contradict what exists (another issuer, port or
    account, a client certificate for another cluster) are refused, each
    difference named, unless --force, which remakes the CA, TLS files, config
    and kubeconfigs; signing keys and the access-key pepper are never
    overwritten.

    \b
    Example:
      authbridge init --hostname authbridge.example.com --ip 10.0.0.5 --cluster-id prod
      authbridge serve
    """
    from authbridge.bootstrap import InitRequest, init_directory
    from authbridge.settings import load_settings

    # Validate the cluster ids and issuer with the same rules the server will apply.
    flags: dict[str, object] = {"cluster_ids": list(cluster_ids) or None, "issuer": issuer}
    checked = load_settings({k: v for k, v in flags.items() if v is not None}, {}, None)
    pairs: list[tuple[str, str]] = []
    for item in apiserver_clients:
        name, sep, cluster = item.partition("=")
        if not sep or not name or not cluster:
            raise click.BadParameter(
                f"{item!r} is not NAME=CLUSTER_ID", param_hint="--apiserver-client"
            )
        pairs.append((name, cluster))
    target = directory or app.settings.keys_dir
    report = init_directory(
        InitRequest(
            directory=target,
            hostnames=hostnames,
            ips=ips,
            port=port,
            cluster_ids=checked.cluster_ids if cluster_ids else (),
            issuer=issuer,
            account_id=app.settings.account_id,
            key_algorithm="ES256" if algorithm == "ES256" else "RS256",
            force=force,
            apiserver_clients=pairs,
        )
    )
    doc = {
        "Directory": str(report.directory),
        "Issuer": report.issuer,
        "Made": report.made,
        "Updated": report.updated,
        "Kept": report.kept,
        "ConfigFile": str(report.config_file),
        "WebhookKubeconfig": str(report.webhook_kubeconfig),
        "ApiserverFlags": report.apiserver_flags(),
        "ApiserverClients": [
            {
                "Name": c.name,
                "ClusterId": c.cluster_id,
                "Kubeconfig": str(report.directory / c.kubeconfig_name),
                "ControlPlanePath": c.control_plane_path,
                "ApiserverFlags": report.apiserver_flags(c),
            }
            for c in report.clients
        ],
    }

    def text() -> str:
        lines = [f"authbridge init: {report.directory}"]
        if report.made:
            lines.append("  made: " + ", ".join(report.made))
        if report.updated:
            lines.append("  updated: " + "; ".join(report.updated))
        if report.kept:
            lines.append("  kept: " + ", ".join(report.kept))
        lines += [
            "",
            f"Issuer:  {report.issuer}",
            f"Config:  {report.config_file}   (authbridge serve reads it)",
            "",
        ]
        for c in report.clients:
            lines += [
                f"For the kube-apiserver of cluster {c.cluster_id} ({c.name}): copy"
                f" {report.directory / c.kubeconfig_name} (here) to {c.control_plane_path} on"
                " its control plane and add:",
                *(f"  {flag}" for flag in report.apiserver_flags(c)),
                "",
            ]
        if report.updated:
            lines.append(
                "Restart a running `authbridge serve`: it reads the config and the serving"
                " certificate when it starts."
            )
        lines += [
            "Next: authbridge serve",
        ]
        return "\n".join(lines)

    app.emit(doc, text)
