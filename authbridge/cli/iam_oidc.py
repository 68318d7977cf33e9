"""``authbridge iam …-open-id-connect-provider``: OIDC identity providers, as ``aws iam``.

A provider registered here is an issuer (a kube-apiserver, GitHub Actions,
GitLab, a company IdP) whose tokens a role's trust policy may accept
(``Principal: {"Federated": <provider ARN>}``). Each verb is one admin action
(:mod:`authbridge.admin.iam`), over the admin API or the store like every
``iam`` verb; the URL, client ids and CA file are checked by
:mod:`authbridge.iam.oidc_provider`, which names the field at fault.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from authbridge.cli import output as out
from authbridge.cli.context import App, output_option, pass_app
from authbridge.cli.iam import iam
from authbridge.errors import InputError
from authbridge.iam import oidc_provider, oidc_signin

_arn_option = click.option(
    "--open-id-connect-provider-arn",
    "arn",
    required=True,
    metavar="ARN",
    help="The provider: arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH].",
)
_client_id_option = click.option(
    "--client-id", required=True, metavar="AUD", help="A client id (token audience)."
)


def _doc(doc: dict[str, Any] | None) -> dict[str, Any]:
    if doc is None:
        raise AssertionError("the action answered no document")  # pragma: no cover
    return doc


def _read_ca_file(path: str) -> str:
    """The PEM text of --ca-file, read with a cap and checked before the store is opened."""
    where = Path(path).expanduser()
    try:
        with where.open("rb") as f:
            raw = f.read(oidc_provider.MAX_CA_BUNDLE + 1)
    except OSError as e:
        raise InputError(
            "CaBundle",
            f"cannot read {where}: {e.strerror or type(e).__name__}",
            hint="give the path of a PEM file",
        ) from None
    if len(raw) > oidc_provider.MAX_CA_BUNDLE:
        raise InputError("CaBundle", f"{where} holds more than {oidc_provider.MAX_CA_BUNDLE} bytes")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InputError("CaBundle", f"{where} is not ASCII PEM text") from None
    return oidc_provider.parse_ca_bundle(text)


def _split_client_ids(values: tuple[str, ...]) -> list[str]:
    """``--client-id-list a b`` or ``a,b`` (as the AWS CLI takes a list)."""
    return [part for value in values for part in value.split(",") if part]


@iam.command("create-open-id-connect-provider")
@click.option("--url", required=True, metavar="https://ISSUER", help="The issuer URL (iss).")
@click.option(
    "--client-id-list",
    "client_ids",
    multiple=True,
    metavar="AUD",
    help="A client id (audience) its tokens carry; repeatable, or comma-separated.",
)
@click.option(
    "--ca-file",
    metavar="FILE",
    help="PEM of the CA that signs the issuer's TLS certificate (default: the system CAs).",
)
@click.option("--tags", "tags", multiple=True, metavar="KEY=VALUE", help="A tag; repeatable.")
@output_option
@pass_app
def create_open_id_connect_provider(
    app: App, url: str, client_ids: tuple[str, ...], ca_file: str | None, tags: tuple[str, ...]
) -> None:
    """Register an OIDC identity provider whose tokens roles may trust.

    Its discovery document and keys are fetched over https from the URL
    (with --ca-file's CA when given). A token is accepted only when its
    aud is one of the client ids.

    \b
    Example:
      authbridge iam create-open-id-connect-provider \\
          --url https://token.actions.githubusercontent.com --client-id-list sts.amazonaws.com
      authbridge iam create-open-id-connect-provider --url https://kube.prod.example:6443 \\
          --client-id-list authbridge --ca-file kube-ca.pem
    """
    oidc_provider.parse_url(url)
    ids = _split_client_ids(client_ids)
    oidc_provider.parse_client_ids(ids)
    tag_map: dict[str, str] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE", param_hint="--tags")
        tag_map[key] = value
    params: dict[str, Any] = {
        "Url": url,
        "ClientIDList": ids,
        "Tags": [{"Key": k, "Value": v} for k, v in tag_map.items()],
    }
    if ca_file is not None:
        params["CaBundle"] = _read_ca_file(ca_file)
    result = _doc(app.admin("CreateOpenIDConnectProvider", params))
    app.emit(result, lambda: f"Created OIDC provider {result['OpenIDConnectProviderArn']}.")


@iam.command("get-open-id-connect-provider")
@_arn_option
@output_option
@pass_app
def get_open_id_connect_provider(app: App, arn: str) -> None:
    """Show a provider: its URL, client ids and CA certificates' fingerprints.

    \b
    Example:
      authbridge iam get-open-id-connect-provider \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/gitlab.com
    """
    result = _doc(app.admin("GetOpenIDConnectProvider", {"OpenIDConnectProviderArn": arn}))
    app.emit(
        result,
        lambda: out.fields(
            result,
            ("Url", "ClientIDList", "CaCertificateFingerprints", "CreateDate", "Tags", "SignIn"),
        ),
    )


@iam.command("list-open-id-connect-providers")
@output_option
@pass_app
def list_open_id_connect_providers(app: App) -> None:
    """List the account's OIDC providers by ARN.

    \b
    Example:
      authbridge -o json iam list-open-id-connect-providers
    """
    result = _doc(app.admin("ListOpenIDConnectProviders", {}))
    app.emit(
        result,
        lambda: out.table(result["OpenIDConnectProviderList"], ("Arn",), "No OIDC providers."),
    )


@iam.command("delete-open-id-connect-provider")
@_arn_option
@output_option
@pass_app
def delete_open_id_connect_provider(app: App, arn: str) -> None:
    """Delete a provider. Trust policies naming it then trust none of its tokens.

    \b
    Example:
      authbridge iam delete-open-id-connect-provider \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/gitlab.com
    """
    app.admin("DeleteOpenIDConnectProvider", {"OpenIDConnectProviderArn": arn})
    app.emit(None, lambda: f"Deleted OIDC provider {arn}.")


@iam.command("add-client-id-to-open-id-connect-provider")
@_arn_option
@_client_id_option
@output_option
@pass_app
def add_client_id(app: App, arn: str, client_id: str) -> None:
    """Accept tokens for one more audience (adding one already there changes nothing).

    \b
    Example:
      authbridge iam add-client-id-to-open-id-connect-provider \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/gitlab.com \\
          --client-id authbridge
    """
    _change_client_ids(app, "AddClientIDToOpenIDConnectProvider", arn, client_id, "accepts")


@iam.command("remove-client-id-from-open-id-connect-provider")
@_arn_option
@_client_id_option
@output_option
@pass_app
def remove_client_id(app: App, arn: str, client_id: str) -> None:
    """Stop accepting tokens for an audience (removing one not there changes nothing).

    \b
    Example:
      authbridge iam remove-client-id-from-open-id-connect-provider \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/gitlab.com \\
          --client-id authbridge
    """
    _change_client_ids(
        app, "RemoveClientIDFromOpenIDConnectProvider", arn, client_id, "no longer accepts"
    )


def _change_client_ids(app: App, action: str, arn: str, client_id: str, now: str) -> None:
    """One client id added to or removed from a provider's list; says what it ``now`` does."""
    app.admin(action, {"OpenIDConnectProviderArn": arn, "ClientID": client_id})
    app.emit(None, lambda: f"OIDC provider {arn} {now} client id {client_id}.")


@iam.command("update-open-id-connect-provider-sign-in")
@_arn_option
@click.option("--display-name", required=True, metavar="TEXT", help="The sign-in button's label.")
@click.option(
    "--client-id",
    required=True,
    metavar="ID",
    help="authbridge's client id at the IdP; must be in the provider's ClientIDList.",
)
@click.option(
    "--client-secret-stdin",
    is_flag=True,
    help="Read the client secret from stdin (first line), or a hidden prompt on a terminal."
    " Without it authbridge is a public client (PKCE, no secret).",
)
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    metavar="SCOPE",
    help="A scope to request; repeatable (default: openid profile email; openid is added).",
)
@output_option
@pass_app
def update_sign_in(
    app: App,
    arn: str,
    display_name: str,
    client_id: str,
    client_secret_stdin: bool,
    scopes: tuple[str, ...],
) -> None:
    """Offer "Sign in with DISPLAY NAME" on the login page for this provider.

    Register the RedirectUri this prints (<issuer>/login/upstream/callback)
    at the IdP. The person then picks one of the roles whose trust policy
    their ID token's claims satisfy. A client secret is sealed with the
    key-encryption key and never shown again; it is never an argument.

    \b
    Example:
      authbridge iam update-open-id-connect-provider-sign-in \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/idp.example.com \\
          --display-name "Example SSO" --client-id authbridge-signin --scope groups
      printf '%s\\n' "$SECRET" | authbridge iam update-open-id-connect-provider-sign-in \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/idp.example.com \\
          --display-name "Example SSO" --client-id authbridge-signin --client-secret-stdin
    """
    from authbridge.cli.iam_signin import read_secret

    oidc_signin.parse_display_name(display_name)
    oidc_signin.parse_scopes(list(scopes))
    params: dict[str, Any] = {
        "OpenIDConnectProviderArn": arn,
        "DisplayName": display_name,
        "ClientID": client_id,
        "Scopes": list(scopes),
    }
    if client_secret_stdin:
        secret = read_secret(
            "Client secret",
            field="ClientSecret",
            limit=oidc_signin.MAX_CLIENT_SECRET,
            what="client secret",
        )
        params["ClientSecret"] = oidc_signin.parse_client_secret(secret).reveal()
    result = _doc(app.admin("UpdateOpenIDConnectProviderSignIn", params))
    sign_in = result["SignIn"]
    app.emit(
        result,
        lambda: (
            f"OIDC provider {arn} is a sign-in provider ({sign_in['DisplayName']}).\n"
            f"Register this redirect URI at the IdP: {sign_in['RedirectUri']}"
        ),
    )


@iam.command("delete-open-id-connect-provider-sign-in")
@_arn_option
@output_option
@pass_app
def delete_sign_in(app: App, arn: str) -> None:
    """Stop offering the provider on the login page (the provider itself stays).

    \b
    Example:
      authbridge iam delete-open-id-connect-provider-sign-in \\
          --open-id-connect-provider-arn arn:aws:iam::111122223333:oidc-provider/idp.example.com
    """
    app.admin("DeleteOpenIDConnectProviderSignIn", {"OpenIDConnectProviderArn": arn})
    app.emit(None, lambda: f"OIDC provider {arn} is no longer a sign-in provider.")
