"""``authbridge quickstart``: from a fresh clone to a serving issuer, idempotently.

It runs ``init`` in ``keys/`` (CA, serving certificate, signing key, config),
makes (or reuses) a demo account with a user, a group, a role trusting the
group and an access key, saves that key as the ``quickstart`` profile in
``~/.authbridge/credentials``, prints what to paste next, and serves on
https://127.0.0.1:8443 until Ctrl-C. A second run reuses everything; the
access key's secret is printed only by the run that creates it (the profile
keeps it for ``authbridge token``).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import click

from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import NoSuchEntity

DEMO_ACCOUNT = "111122223333"
DEMO_USER = "alice"
DEMO_GROUP = "admins"
DEMO_ROLE = "Admin"
DEMO_CLUSTER = "default"
PROFILE = "quickstart"
# Written to the mapping file only when there is none (a clone ships rbac/mapping.yaml).
DEMO_MAPPING = f"""\
# authbridge mapping written by `authbridge quickstart` for its demo account.
# Format: docs/mapping.md; check with `authbridge mapping check`.
mapRoles:
  - rolearn: arn:aws:iam::{DEMO_ACCOUNT}:role/platform/{DEMO_ROLE}
    username: "admin:{{{{SessionName}}}}"
    groups: ["authbridge:admins"]
mapUsers:
  - userarn: arn:aws:iam::{DEMO_ACCOUNT}:user/{DEMO_USER}
    username: {DEMO_USER}
    groups: ["authbridge:devs"]
mapGroups:
  - grouparn: arn:aws:iam::{DEMO_ACCOUNT}:group/{DEMO_GROUP}
    groups: ["authbridge:oncall"]
"""


@click.command()
@click.option(
    "--no-serve", is_flag=True, help="Set everything up and print it, but do not start serving."
)
@output_option
@pass_app
def quickstart(app: App, no_serve: bool) -> None:
    """Set up a demo on the embedded defaults and serve it on https://127.0.0.1:8443.

    Creates (or reuses) keys/ via `authbridge init`, the SQLite store under
    data/, account 111122223333 with user alice, group admins (alice in it),
    role Admin trusting the group, an access key for alice saved as profile
    "quickstart" in ~/.authbridge/credentials; then serves until Ctrl-C.

    \b
    Example:
      authbridge quickstart
      authbridge token --profile quickstart --cluster-id default
    """
    from authbridge.bootstrap import InitRequest, init_directory
    from authbridge.settings import CONFIG_FILE_NAME

    keys_dir = app.settings.keys_dir
    report = init_directory(InitRequest(directory=keys_dir, cluster_ids=(DEMO_CLUSTER,)))
    app.use_config_file(keys_dir / CONFIG_FILE_NAME)
    settings = app.settings
    made = [f"keys/{name}" for name in report.made]
    if not settings.mapping_file.exists():
        from authbridge.files import PUBLIC, write_atomic

        write_atomic(settings.mapping_file, DEMO_MAPPING.encode(), mode=PUBLIC)
        made.append(f"demo mapping {settings.mapping_file}")

    store = app.store
    account = settings.account_id or DEMO_ACCOUNT
    try:
        store.get_account(account)
    except NoSuchEntity:
        store.create_account(account, alias="demo")
        made.append(f"account {account}")
    try:
        user = store.get_user(account, DEMO_USER)
    except NoSuchEntity:
        user = store.create_user(account, DEMO_USER)
        made.append(f"user {DEMO_USER}")
    try:
        group = store.get_group(account, DEMO_GROUP)
    except NoSuchEntity:
        group = store.create_group(account, DEMO_GROUP)
        made.append(f"group {DEMO_GROUP}")
    if DEMO_GROUP not in {g.name for g in store.list_groups_for_user(account, DEMO_USER)}:
        store.add_user_to_group(account, DEMO_GROUP, DEMO_USER)
        made.append(f"membership of {DEMO_USER} in {DEMO_GROUP}")
    try:
        role = store.get_role(account, DEMO_ROLE)
    except NoSuchEntity:
        role = store.create_role(account, DEMO_ROLE, trust=[group.arn], path="/platform/")
        made.append(f"role {DEMO_ROLE} trusting {DEMO_GROUP}")

    endpoint = _endpoint(settings.bind)
    ca_file = settings.tls_cert_file.parent / "ca.crt"
    keys = {k.access_key_id for k in store.list_access_keys(account, DEMO_USER)}
    profile_key = _profile_key_id()
    secret = None
    if profile_key not in keys:
        # The profile is gone or stale and a secret cannot be read back: make a new
        # key (dropping the oldest if alice already has the two IAM allows).
        existing = store.list_access_keys(account, DEMO_USER)
        if len(existing) >= 2:
            store.delete_access_key(existing[0].access_key_id)
        new = store.create_access_key(account, DEMO_USER)
        profile_key, secret = new.key.access_key_id, new.secret_access_key
        _save_profile(endpoint, profile_key, secret, ca_file)
        made.append(f"access key {profile_key} (profile {PROFILE})")

    token_cmd = f"authbridge token --profile {PROFILE} --cluster-id {DEMO_CLUSTER}"
    kube_user = _kubeconfig_user()
    curl = f"curl --cacert {shlex.quote(str(ca_file))}"
    doc: dict[str, Any] = {
        "Made": made,
        "Endpoint": endpoint,
        "Issuer": settings.issuer,
        "ClusterId": DEMO_CLUSTER,
        "CaFile": str(ca_file),
        "User": user.to_aws(),
        "Group": group.to_aws(),
        "Role": role.to_aws(),
        "AccessKeyId": profile_key,
        "Profile": PROFILE,
        "TokenCommand": token_cmd,
        "KubeconfigUser": kube_user,
        "ApiserverFlags": report.apiserver_flags(),
    }
    if secret is not None:
        doc["SecretAccessKey"] = secret

    def text() -> str:
        lines = [
            "authbridge quickstart: " + ("made " + ", ".join(made) if made else "all in place"),
            "",
            f"  issuer      {settings.issuer}   (cluster id: {DEMO_CLUSTER})",
            f"  user        {user.arn}   in group {group.name}",
            f"  role        {role.arn}   trusts group {group.name}",
            f"  access key  {profile_key}   saved as profile {PROFILE!r}",
        ]
        if secret is not None:
            lines += [
                "",
                "The demo key, shown only now (the profile keeps it for `authbridge token`):",
                f"  export AUTHBRIDGE_ACCESS_KEY_ID={profile_key}",
                f"  export AUTHBRIDGE_SECRET_ACCESS_KEY={secret}",
            ]
        lines += [
            "",
            "Try (in another terminal, in this directory):",
            '  export PATH="$PWD/.venv/bin:$PATH"',
            f"  {token_cmd}",
            f"  {curl} {endpoint}/.well-known/openid-configuration",
            f"  {curl} {endpoint}/openid/v1/jwks",
            f"  TOKEN=$({token_cmd} --token-only)",
            f'  {curl} -H "Authorization: Bearer $TOKEN" {endpoint}/verify',
            "",
            "A kubeconfig user for kubectl (the whole file: `authbridge kubeconfig"
            f" --cluster-id {DEMO_CLUSTER} --server https://YOUR-APISERVER --profile {PROFILE}`):",
            *(f"  {line}" for line in _yaml({"users": [kube_user]}).splitlines()),
            "",
            f"kube-apiserver flags (webhook; copy {report.webhook_kubeconfig} (here) to"
            f" {report.clients[0].control_plane_path} on the control plane):",
            *(f"  {flag}" for flag in report.apiserver_flags()),
        ]
        if not no_serve:
            lines += ["", f"Serving on {endpoint} (Ctrl-C stops)."]
        return "\n".join(lines)

    app.emit(doc, text)
    if no_serve:
        return
    from authbridge.web.server import serve

    app.close()
    serve(settings)


def _kubeconfig_user() -> dict[str, Any]:
    from authbridge.cli.kubeconfig import build_kubeconfig

    doc = build_kubeconfig(
        name=DEMO_CLUSTER,
        server="https://YOUR-APISERVER",
        cluster_id=DEMO_CLUSTER,
        ca_data=None,
        role=None,
        profile=PROFILE,
        endpoint=None,
    )
    user: dict[str, Any] = doc["users"][0]
    return user


def _yaml(doc: dict[str, Any]) -> str:
    import yaml

    return str(yaml.safe_dump(doc, sort_keys=False))


def _endpoint(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]", ""):  # noqa: S104 - mapping a wildcard bind to a URL
        host = "127.0.0.1"
    return f"https://{host}:{port}"


def _profile_key_id() -> str | None:
    from authbridge.client.credentials import credentials_path, read_credentials

    try:
        profiles = read_credentials(credentials_path(os.environ))
    except Exception:  # noqa: BLE001 - an unreadable file is replaced by a fresh profile
        return None
    profile = (profiles or {}).get(PROFILE)
    return profile.values.get("access_key_id") if profile else None


def _save_profile(endpoint: str, key_id: str, secret: str, ca_file: Path) -> None:
    from authbridge.client.credentials import (
        CREDENTIALS_ENV,
        credentials_path,
        read_credentials_text,
        update_profile,
        write_credentials,
    )

    path = credentials_path(os.environ)
    existing = read_credentials_text(path, private=False)
    values = {
        "endpoint": endpoint,
        "access_key_id": key_id,
        "secret_access_key": secret,
        "ca_file": str(ca_file),
        "cluster_id": DEMO_CLUSTER,
    }
    text = update_profile(existing[0] if existing else "", PROFILE, values, path)
    write_credentials(path, text, private_parent=not os.environ.get(CREDENTIALS_ENV))
