"""The sign-in configuration of OIDC providers: people sign in through an upstream IdP.

Two admin actions beside the other OIDC provider actions
(:mod:`authbridge.admin.iam`), acting on the provider's ARN:

* ``UpdateOpenIDConnectProviderSignIn`` (``iam update-open-id-connect-provider-sign-in``):
  make the provider a sign-in provider, or replace its configuration whole:
  ``DisplayName``, ``ClientID`` (in the provider's ClientIDList), ``Scopes``,
  optional ``ClientSecret``. The secret is sealed with the key-encryption key
  (the provider ARN as associated data) before the store sees it; without a
  KEK configured a secret is refused with what to do (configure one, or use a
  public client: PKCE without a secret, the default);
* ``DeleteOpenIDConnectProviderSignIn``: the provider stays, its button goes.

``GetOpenIDConnectProvider`` shows ``SignIn`` (:func:`authbridge.admin.iam.sign_in_document`):
display name, client id, ``ClientSecretSet`` (never the secret), scopes and
the ``RedirectUri`` to register at the IdP (``<issuer>/login/upstream/callback``).
The checks are :mod:`authbridge.iam.oidc_signin`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from authbridge.admin.actions import Action, Document, Target
from authbridge.admin.iam import PROVIDER_ARN, provider_resource
from authbridge.admin.params import Param
from authbridge.errors import InputError
from authbridge.iam import oidc_signin

NO_KEK_HINT: Final = (
    "configure a key-encryption key (kekFile / AUTHBRIDGE_KEK) to store a client secret,"
    " or register a public client at the IdP (PKCE without a secret) and give no secret"
)


def update_sign_in(target: Target, args: Mapping[str, Any]) -> Document:
    arn = args["arn"]
    provider = target.store.get_open_id_connect_provider(target.account_id, arn)
    display_name = oidc_signin.parse_display_name(args["display_name"])
    client_id = oidc_signin.check_client_id(provider, args["client_id"])
    scopes = oidc_signin.parse_scopes(list(args["scopes"]))
    sealed: str | None = None
    kek_id: str | None = None
    if args["client_secret"] is not None:
        secret = oidc_signin.parse_client_secret(args["client_secret"])
        kek = target.kek()
        if kek is None:
            raise InputError(
                "ClientSecret", "cannot be stored: no key-encryption key", hint=NO_KEK_HINT
            )
        sealed = kek.seal(secret.reveal().encode("ascii"), oidc_signin.secret_aad(provider.arn))
        kek_id = kek.kek_id
    config = target.store.put_open_id_connect_provider_sign_in(
        target.account_id,
        provider.arn,
        display_name=display_name,
        client_id=client_id,
        scopes=scopes,
        sealed_secret=sealed,
        kek_id=kek_id,
        now=target.now(),
    )
    return {"SignIn": config.to_aws(oidc_signin.redirect_uri(target.issuer))}


def delete_sign_in(target: Target, args: Mapping[str, Any]) -> None:
    target.store.delete_open_id_connect_provider_sign_in(target.account_id, args["arn"])


ACTIONS: Final[tuple[Action, ...]] = (
    Action(
        "UpdateOpenIDConnectProviderSignIn",
        "iam",
        "iam",
        "iam update-open-id-connect-provider-sign-in",
        (
            PROVIDER_ARN,
            Param("DisplayName", "display_name", required=True),
            Param("ClientID", "client_id", required=True),
            Param("ClientSecret", "client_secret", doc="never shown again; sealed with the KEK"),
            Param("Scopes", "scopes", kind="strings", default=()),
        ),
        update_sign_in,
        provider_resource,
        mutating=True,
        doc="Make the provider a sign-in provider (the login page offers it), or replace"
        " its sign-in configuration.",
    ),
    Action(
        "DeleteOpenIDConnectProviderSignIn",
        "iam",
        "iam",
        "iam delete-open-id-connect-provider-sign-in",
        (PROVIDER_ARN,),
        delete_sign_in,
        provider_resource,
        mutating=True,
        doc="Stop offering the provider on the login page (the provider stays).",
    ),
)
