"""Sign-in through an upstream IdP: "Sign in with <name>" on ``/login``, and the way back.

==============================  ======================================================
``POST /login/upstream``        the login page's button for one sign-in provider (a
                                form with the flow's CSRF token): a new attempt
                                (``state``, ``nonce``, PKCE verifier; kept in the
                                flow, server-side) and a 303 to the IdP's
                                ``authorization_endpoint`` (response_type=code, S256).
``GET /login/upstream/callback``  the IdP's answer (the redirect URI to register):
                                the state must be this browser's attempt's
                                (constant time), the attempt at most
                                :data:`ATTEMPT_SECONDS` old and used once; the code is
                                exchanged at the token endpoint (PKCE verifier, the
                                client secret when one is configured) and the ID
                                token checked (:func:`authbridge.web_identity.
                                verify_sign_in_id_token`: signature, iss, aud, azp,
                                exp, nonce).
``GET|POST /login/upstream/role``  the roles whose trust policy allows these claims
                                (:func:`authbridge.signin.federated.roles_for`); the
                                one picked is checked again and becomes the browser
                                session's role session.
==============================  ======================================================

Every refusal is an error page naming what failed (the IdP's own ``error``, a
check of the ID token by its reason, no role trusting the person), never a
redirect, and one ``signin`` audit line ``signin:FederatedLogin`` (denied, with
the reason); a sign-in that ends in a session writes it allowed, with the
source identity. The login page's CSP ``form-action`` names the origin of each
offered provider's authorization endpoint, since the browser applies it to the
redirect that follows the form's POST.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flask import Response, redirect, request

from authbridge import web_identity
from authbridge.errors import InputError, NoSuchEntity
from authbridge.iam import oidc_signin
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.iam.oidc_signin import SignInConfig
from authbridge.iam.sessions import MAX_FEDERATED_CLAIMS
from authbridge.oidc_upstream import ProviderUnavailable, SignInEndpoints
from authbridge.signin import federated, upstream
from authbridge.web.signin.flows import Flow
from authbridge.web.signin.pages import (
    PageError,
    bp,
    checked_form,
    clock_now,
    current_flow,
    current_services,
    finish_sign_in,
    form_field,
    note,
    render_page,
    save_flow,
    see_other,
)

ATTEMPT_SECONDS: Final = 600  # an upstream sign-in must come back within 10 minutes
PICK_SECONDS: Final = 300  # and a role be picked within 5 more
ACTION: Final = "FederatedLogin"
START_AGAIN: Final = "Start again from the sign-in page."


@dataclass(frozen=True)
class Offered:
    """A "Sign in with …" button: the provider, its label, and whether it can be used now."""

    arn: str
    name: str
    origin: str | None  # the authorization endpoint's origin, for form-action
    problem: str | None = None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def offered() -> list[Offered]:
    """The login page's sign-in providers; one that cannot be reached now says so.

    Discovery is cached per provider (and a failure for a few seconds), so a
    login page asks an IdP at most once per cache lifetime.
    """
    svc = current_services()
    found: list[Offered] = []
    for provider, config in svc.store.list_sign_in_providers():
        try:
            endpoints = svc.upstream.sign_in_endpoints(provider)
        except ProviderUnavailable as e:
            found.append(Offered(provider.arn, config.display_name, None, e.reason))
            continue
        found.append(
            Offered(provider.arn, config.display_name, _origin(endpoints.authorization_endpoint))
        )
    return found


def _refuse(status: int, reason: str, title: str, message: str, **audit: Any) -> PageError:
    note(ACTION, outcome="denied", reason=reason, **audit)
    return PageError(status, title, message)


def _sign_in_provider(arn: str) -> tuple[OidcProvider, SignInConfig]:
    for provider, config in current_services().store.list_sign_in_providers():
        if provider.arn == arn:
            return provider, config
    raise _refuse(
        400,
        "unknown_provider",
        "That sign-in is not offered",
        "This identity provider is not (or no longer) offered for sign-in. " + START_AGAIN,
    )


def _endpoints(provider: OidcProvider, config: SignInConfig) -> SignInEndpoints:
    try:
        return current_services().upstream.sign_in_endpoints(provider)
    except ProviderUnavailable as e:
        raise _refuse(
            503,
            "provider_unavailable",
            f"{config.display_name} cannot be reached",
            f"{config.display_name} cannot be reached right now ({e.reason}). Try again in a"
            " minute, or sign in with your authbridge user.",
        ) from e


@bp.post("/login/upstream")
def upstream_start() -> Response:
    flow = checked_form()
    provider, config = _sign_in_provider(form_field("provider"))
    endpoints = _endpoints(provider, config)
    attempt = upstream.new_attempt(provider.arn, now=clock_now())
    flow.pending = {
        "stage": "upstream",
        "provider": provider.arn,
        "state": attempt.state,
        "nonce": attempt.nonce,
        "verifier": attempt.code_verifier,
        "at": attempt.started_at,
    }
    save_flow(flow)
    target = upstream.authorization_url(
        endpoints.authorization_endpoint,
        attempt,
        client_id=config.client_id,
        redirect_uri=oidc_signin.redirect_uri(current_services().settings.issuer),
        scopes=config.scopes,
    )
    return redirect(target, code=303)  # type: ignore[return-value]  # a Response


def _attempt(flow: Flow, now: float) -> upstream.Attempt | None:
    p = flow.pending
    if not p or p.get("stage") != "upstream":
        return None
    at = p.get("at")
    if not isinstance(at, int) or not 0 <= now - at <= ATTEMPT_SECONDS:
        return None
    fields = (p.get("provider"), p.get("state"), p.get("nonce"), p.get("verifier"))
    if not all(isinstance(v, str) for v in fields):
        return None
    provider, state, nonce, verifier = (str(v) for v in fields)
    return upstream.Attempt(provider, state, nonce, verifier, at)


def _client_secret(provider: OidcProvider, config: SignInConfig) -> str | None:
    if config.sealed_secret is None:
        return None
    from authbridge.admin.keys import configured_kek

    kek = configured_kek(current_services().settings)
    if kek is None or kek.kek_id != config.kek_id:
        raise _refuse(
            503,
            "no_kek",
            "Sign-in is misconfigured",
            "The client secret for this identity provider cannot be opened here (no or another"
            " key-encryption key). An administrator must configure the same kekFile on every"
            " replica, or set the secret again.",
        )
    return kek.open(config.sealed_secret, oidc_signin.secret_aad(provider.arn)).decode("ascii")


@bp.get("/login/upstream/callback")
def upstream_callback() -> Response:
    flow, now = current_flow(), clock_now()
    try:
        callback = upstream.parse_callback(request.args.to_dict(flat=False))
    except upstream.CallbackInvalid as e:
        raise _refuse(
            400, "callback_invalid", "The sign-in answer is not valid", f"{e} {START_AGAIN}"
        ) from e
    attempt = _attempt(flow, now)
    if attempt is not None and not upstream.state_matches(attempt, callback.state):
        flow.pending = None  # an answer for another attempt spends this one too
        save_flow(flow)
        attempt = None
    if attempt is None:
        raise _refuse(
            400,
            "state_mismatch",
            "No sign-in is waiting here",
            "This answer does not belong to a sign-in started in this browser in the last 10"
            " minutes (or it was used already). " + START_AGAIN,
        )
    flow.pending = None  # one use, whatever comes next
    save_flow(flow)
    provider, config = _sign_in_provider(attempt.provider_arn)
    if callback.error is not None:
        raise _refuse(
            403,
            "idp_refused",
            f"{config.display_name} did not sign you in",
            f"{config.display_name} answered {callback.error}"
            + (f": {callback.error_description}" if callback.error_description else "")
            + ". "
            + START_AGAIN,
        )
    endpoints = _endpoints(provider, config)
    svc = current_services()
    try:
        answer = svc.upstream.exchange_code(
            provider,
            endpoints,
            client_id=config.client_id,
            client_secret=_client_secret(provider, config),
            code=str(callback.code),
            code_verifier=attempt.code_verifier,
            redirect_uri=oidc_signin.redirect_uri(svc.settings.issuer),
        )
        claims = web_identity.verify_sign_in_id_token(
            svc.upstream,
            provider,
            answer.get("id_token"),
            client_id=config.client_id,
            nonce=attempt.nonce,
            now=now,
        )
    except ProviderUnavailable as e:
        raise _refuse(
            502,
            "code_exchange_failed",
            f"{config.display_name} did not complete the sign-in",
            f"Exchanging the code at {config.display_name} failed ({e.reason}). " + START_AGAIN,
        ) from e
    except web_identity.WebIdentityRefused as e:
        raise _refuse(
            403,
            e.reason,
            "The sign-in was refused",
            f"The ID token from {config.display_name} was refused: {e} {START_AGAIN}",
        ) from e
    if len(json.dumps(claims, separators=(",", ":"))) > MAX_FEDERATED_CLAIMS:
        raise _refuse(
            400,
            "claims_too_large",
            "The sign-in was refused",
            f"The ID token from {config.display_name} carries more than"
            f" {MAX_FEDERATED_CLAIMS} characters of claims; ask the IdP's administrator to"
            " send fewer claims to this client.",
        )
    source = f"{provider.arn}:{claims['sub']}"
    if not federated.roles_for(svc.store, provider, claims, now=now):
        raise _refuse(
            403,
            "no_role",
            "No role for you here",
            f"{config.display_name} signed you in, but no role's trust policy allows your"
            " identity. Ask an administrator for a role whose trust names this provider"
            " (and, for example, one of your groups).",
            user_arn=source,
        )
    flow.pending = {"stage": "pick", "provider": provider.arn, "claims": claims, "at": int(now)}
    save_flow(flow)
    return see_other("upstream_role_page")


def _picking(flow: Flow, now: float) -> tuple[OidcProvider, SignInConfig, Mapping[str, Any]]:
    p = flow.pending
    at = p.get("at") if p else None
    claims = p.get("claims") if p else None
    fresh = isinstance(at, int) and 0 <= now - at <= PICK_SECONDS
    if not p or p.get("stage") != "pick" or not fresh or not isinstance(claims, dict):
        raise PageError(
            400, "No sign-in is waiting here", "Nothing to pick a role for. " + START_AGAIN
        )
    provider, config = _sign_in_provider(str(p.get("provider")))
    return provider, config, claims


@bp.get("/login/upstream/role")
def upstream_role_page() -> Response:
    provider, config, claims = _picking(current_flow(), clock_now())
    roles = federated.roles_for(current_services().store, provider, claims, now=clock_now())
    return render_page(
        "upstream_role.html",
        title="Pick a role",
        provider_name=config.display_name,
        who=federated.session_name_for(claims),
        roles=federated.role_choices(roles),
    )


@bp.post("/login/upstream/role")
def upstream_role_submit() -> Response:
    flow = checked_form()
    now = clock_now()
    provider, config, claims = _picking(flow, now)
    wanted = form_field("role")
    roles = {
        r.arn: r for r in federated.roles_for(current_services().store, provider, claims, now=now)
    }
    role = roles.get(wanted)
    source = f"{provider.arn}:{claims['sub']}"
    if role is None:
        raise _refuse(
            403,
            "not_trusted",
            "That role is not yours to pick",
            "The role does not (or no longer) trust your identity. " + START_AGAIN,
            user_arn=source,
        )
    subject = federated.new_subject(provider, role, claims, federated.session_name_for(claims))
    try:
        return finish_sign_in(
            flow,
            user_id=None,
            user_arn=subject.assumed_role_arn,
            mfa=False,
            federated=subject,
            action=ACTION,
            detail=f"{config.display_name}: {subject.source_identity}",
        )
    except (InputError, NoSuchEntity) as e:
        raise _refuse(400, "invalid", "The sign-in was refused", f"{e} {START_AGAIN}") from e
