"""``authbridge init``: CA, certificates, first signing key, config and webhook kubeconfig."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from authbridge.cli.context import App, output_option, pass_app

if TYPE_CHECKING:
    from authbridge.bootstrap import InitReport


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
@click.option(
    "--admin-user",
    default="admin",
    show_default=True,
    metavar="NAME",
    help="On a store with no account yet: the administrator made with the account.",
)
@click.option(
    "--no-admin",
    is_flag=True,
    help="Make no account and no administrator (accounts made by hand, break-glass).",
)
@click.option(
    "--bootstrap-credentials",
    "credentials_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the administrator's one-time credential to FILE (0600, never overwritten)"
    " instead of printing it.",
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
    admin_user: str,
    no_admin: bool,
    credentials_file: Path | None,
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

    On a store with no account yet it also makes the account (--account-id,
    else a random 12-digit id) and an administrator (--admin-user, default
    admin) with AdministratorAccess and one access key, whose secret is
    shown this once (or written to --bootstrap-credentials FILE, 0600, and
    not shown). A store that has an account gets no new administrator.

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
    if not no_admin:
        from authbridge.iam import names

        names.user_name(admin_user)  # refused before anything is written
    if no_admin and credentials_file is not None:
        raise click.UsageError("--bootstrap-credentials makes no sense with --no-admin")
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
    doc: dict[str, object] = {
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
    admin = None if no_admin else _bootstrap_admin(app, report, admin_user, credentials_file)
    if admin is not None:
        doc["Admin"] = admin.doc

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
        if admin is not None:
            lines += ["", *admin.lines]
        return "\n".join(lines)

    app.emit(doc, text)


class _Admin:
    """What init says about the first administrator: a JSON object and text lines."""

    def __init__(self, doc: dict[str, object], lines: list[str]) -> None:
        self.doc = doc
        self.lines = lines


def _bootstrap_admin(
    app: App, report: InitReport, user_name: str, credentials_file: Path | None
) -> _Admin:
    """The account and its administrator on a store that has none (authbridge.first_admin)."""
    from authbridge import first_admin
    from authbridge.cli.admin_call import BreakGlassLog, audit_line, break_glass_destination
    from authbridge.settings import redact_dsn

    app.use_config_file(report.config_file)
    store = app.store
    account_id = app.settings.account_id or app.new_account_id()
    ca_file = str(report.directory / "tls" / "ca.crt")
    target = None
    if credentials_file is not None:
        # An existing file is refused inside the transaction, only if there is an admin to make.
        target = first_admin.CredentialsFile(credentials_file.absolute(), endpoint=report.issuer)
    # Audited like every store-mode change: the file is opened before the store is
    # touched (an administrator that cannot be audited is not made), the line written
    # once the commit says whether one was made.
    trail = BreakGlassLog.open(break_glass_destination(app))
    started = time.perf_counter()
    try:
        made = first_admin.bootstrap(
            store,
            account_id=account_id,
            user_name=user_name,
            deliver=target.write if target is not None else None,
            undo=target.undo if target is not None else None,
        )
        if made is not None:
            delivered = str(target.path) if target is not None else "stdout"
            line = audit_line(
                "authbridge:BootstrapAdmin",
                (made.user.arn, made.policy_arn),
                "allowed",
                "ok",
                f"access key {made.key.key.access_key_id} delivered to {delivered}",
                started,
                event="admin_bootstrap",
            )
            trail.write(line)
    finally:
        trail.close()
    if made is None:
        accounts = ", ".join(a.account_id for a in store.list_accounts()[:10])
        where = redact_dsn(app.settings.store)
        return _Admin(
            {"Made": False, "Store": where, "Accounts": accounts},
            [
                f"Administrator: none made, the store ({where}) already has an account"
                f" ({accounts}).",
                "  Administer it with an existing profile; a lost administrator key is"
                " replaced break-glass: authbridge iam create-access-key --user-name admin",
            ],
        )
    command = first_admin.configure_command(
        report.issuer, made.key.key.access_key_id, ca_file=ca_file
    )
    doc: dict[str, object] = {"Made": True, **first_admin.summary(made)}
    doc["ConfigureCommand"] = command
    lines = [
        f"Administrator: {made.user.arn} ({first_admin.ADMIN_POLICY}), account"
        f" {made.account.account_id}.",
    ]
    if target is not None:
        doc["CredentialsFile"] = str(target.path)
        lines += [
            f"  Its one-time credential is in {target.path} (0600), not shown here.",
            "  Once `authbridge serve` runs, save it as a profile (the secret from stdin):",
            f"    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))"
            f'["SecretAccessKey"])\' {target.path} | {command}',
        ]
    else:
        doc["SecretAccessKey"] = made.key.secret_access_key
        lines += [
            "  Its one-time credential, shown this once (it is stored only as a hash):",
            "",
            f"    AccessKeyId:     {made.key.key.access_key_id}",
            f"    SecretAccessKey: {made.key.secret_access_key}",
            "",
            "  Once `authbridge serve` runs, save it as a profile; paste the secret at the"
            " prompt (or pipe it in):",
            f"    {command}",
        ]
    lines.append(f"  Then: authbridge --profile {first_admin.ADMIN_PROFILE} iam list-users")
    return _Admin(doc, lines)
