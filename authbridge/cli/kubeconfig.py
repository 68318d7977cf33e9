"""``authbridge kubeconfig``: a kubeconfig whose user runs ``authbridge token`` (exec plugin).

Like ``aws eks update-kubeconfig``, but printed rather than merged: redirect it
to a file, or merge it with ``KUBECONFIG=a:b kubectl config view --flatten``.
The exec entry uses ``client.authentication.k8s.io/v1``, ``interactiveMode:
Never`` (the plugin never prompts) and ``provideClusterInfo: false`` (it needs
nothing from the cluster entry). With ``--login`` the user is a signed-in
profile (``authbridge login``, no access key) and ``interactiveMode:
IfAvailable``: when the session is over and kubectl runs in a terminal, the
plugin signs in again with a device code on it; elsewhere it fails saying to
run ``authbridge login``. Not on kubectl's hot path, so YAML is fine here.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

import click

from authbridge.cli.context import App, output_option, pass_app

_MAX_CA_BYTES = 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,252}", re.ASCII)
# How the README installs authbridge (a clone, scripts/bootstrap, .venv/bin), not a package.
_INSTALL_HINT = (
    "authbridge is needed to get tokens for this cluster: clone the authbridge repository,"
    " run scripts/bootstrap in it, put its .venv/bin on PATH (the command is"
    " .venv/bin/authbridge), then run `authbridge configure` with your access key."
)
_LOGIN_INSTALL_HINT = (
    "authbridge is needed to get tokens for this cluster: clone the authbridge repository,"
    " run scripts/bootstrap in it, put its .venv/bin on PATH (the command is"
    " .venv/bin/authbridge), then run `authbridge login` to sign in."
)


def _ca_data(path: str) -> str:
    from authbridge.errors import InputError

    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_CA_BYTES + 1)
    except OSError as e:
        raise InputError("--ca-file", f"cannot read {path}: {e.strerror}") from e
    if len(data) > _MAX_CA_BYTES or b"-----BEGIN CERTIFICATE-----" not in data:
        raise InputError(
            "--ca-file",
            f"{path} is not a PEM CA bundle",
            hint="pass the CA certificate of the Kubernetes API server",
        )
    return base64.b64encode(data).decode("ascii")


def build_kubeconfig(
    *,
    name: str,
    server: str,
    cluster_id: str,
    ca_data: str | None,
    role: str | None,
    profile: str | None,
    endpoint: str | None,
    login: bool = False,
) -> dict[str, Any]:
    """The kubeconfig document (apiVersion v1, kind Config) with one cluster, user, context."""
    args = ["token", "--cluster-id", cluster_id]
    for flag, value in (("--role", role), ("--profile", profile), ("--endpoint", endpoint)):
        if value is not None:
            args += [flag, value]
    cluster: dict[str, Any] = {"server": server}
    if ca_data is not None:
        cluster["certificate-authority-data"] = ca_data
    user = f"authbridge@{name}" if role is None else f"authbridge-{role.rsplit('/', 1)[-1]}@{name}"
    if login:
        user = f"{user.partition('@')[0]}-login@{name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [
            {
                "name": user,
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "authbridge",
                        "args": args,
                        "interactiveMode": "IfAvailable" if login else "Never",
                        "provideClusterInfo": False,
                        "installHint": _LOGIN_INSTALL_HINT if login else _INSTALL_HINT,
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }


@click.command("kubeconfig")
@click.option("--cluster-id", required=True, metavar="ID", help="The cluster (token audience).")
@click.option(
    "--server", required=True, metavar="URL", help="The Kubernetes API server, https://…."
)
@click.option(
    "--ca-file",
    metavar="FILE",
    help="CA bundle of the Kubernetes API server (embedded as certificate-authority-data).",
)
@click.option("--role", metavar="ARN", help="Role the plugin assumes (authbridge token --role).")
@click.option("--profile", metavar="NAME", help="Credentials profile the plugin uses.")
@click.option("--endpoint", metavar="URL", help="authbridge server, if not the profile's.")
@click.option(
    "--name", metavar="NAME", help="Name of the cluster and context (default: the cluster id)."
)
@click.option(
    "--login",
    is_flag=True,
    help="The user signs in (`authbridge login`, no access key); kubectl may let the plugin"
    " sign in again on the terminal (interactiveMode: IfAvailable).",
)
@output_option
@pass_app
def kubeconfig(
    app: App,
    cluster_id: str,
    server: str,
    ca_file: str | None,
    role: str | None,
    profile: str | None,
    endpoint: str | None,
    name: str | None,
    login: bool,
) -> None:
    """Print a kubeconfig whose user gets tokens from `authbridge token`.

    YAML by default; -o json prints the same document as JSON (kubectl reads both).

    \b
    Example:
      authbridge kubeconfig --cluster-id prod --server https://10.0.0.1:6443 \\
          --ca-file /etc/kubernetes/pki/ca.crt > ~/.kube/prod.yaml
      KUBECONFIG=~/.kube/prod.yaml kubectl get nodes
      authbridge login --profile dev --endpoint https://authbridge.example.com:8443
      authbridge kubeconfig --login --profile dev --cluster-id prod \\
          --server https://10.0.0.1:6443 > ~/.kube/prod.yaml
    """
    import yaml

    from authbridge.client.config import (
        check_cluster_id,
        check_endpoint,
        check_profile_name,
        check_role_arn,
    )
    from authbridge.errors import InputError

    if name is not None and not _NAME.fullmatch(name):
        raise InputError("--name", "must be 1-253 letters, digits or . _ @ : -")
    doc = build_kubeconfig(
        name=name or check_cluster_id(cluster_id),
        server=check_endpoint(server, "--server"),
        cluster_id=check_cluster_id(cluster_id),
        ca_data=_ca_data(os.path.expanduser(ca_file)) if ca_file is not None else None,
        role=check_role_arn(role) if role is not None else None,
        profile=check_profile_name(profile) if profile is not None else None,
        endpoint=check_endpoint(endpoint) if endpoint is not None else None,
        login=login,
    )
    if app.output == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False), nl=False)
