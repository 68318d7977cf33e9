"""``/account``: a signed-in user's own password and MFA devices.

``GET /account``
    Who you are, your MFA devices, links to the two forms below.
``GET|POST /account/password``
    The current password and a new one twice. Allowed only when the account
    password policy has ``AllowUsersToChangePassword`` (as in AWS; otherwise
    the page says to ask an administrator). The current password is checked
    like a sign-in (:func:`authbridge.iam.login.verify_login`: the same backoff,
    the same generic refusal); the new one must meet the policy.
``POST /account/mfa``, ``POST /account/mfa/enable``
    Enrolling a virtual MFA device: the first POST creates it and answers the
    page with its QR code (an SVG ``data:`` image of the ``otpauth://`` URI, drawn
    by segno) and the base32 seed, shown this once and never stored outside the
    store's sealed column; the second enables it with two consecutive codes.
    Codes that are not accepted delete the half-made device (its seed cannot be
    shown again). A user who already has a device must be signed in with MFA
    to add another, so a stolen password alone cannot add the attacker's phone.
"""

from __future__ import annotations

import secrets

import segno
from flask import Response, request

from authbridge.errors import DeleteConflict, InputError, InvalidAuthenticationCode, NoSuchEntity
from authbridge.errors import PasswordPolicyViolation as PolicyViolation
from authbridge.iam import login, passwords
from authbridge.web.signin.pages import (
    PageError,
    bp,
    checked_form,
    clock_now,
    current_flow,
    current_services,
    current_session,
    form_field,
    note,
    policy_rules,
    render_page,
    request_address,
    save_flow,
    see_other,
)


def _policy(account_id: str) -> passwords.PasswordPolicy:
    try:
        return current_services().store.get_account_password_policy(account_id)
    except NoSuchEntity:
        return passwords.DEFAULT_POLICY


def _signed_in() -> Response | None:
    """A redirect to the sign-in page (coming back here) when no one is signed in.

    A sign-in through an identity provider has no password or MFA device here:
    its IdP keeps them; the account page only says who the session is.
    """
    session = current_session()
    if (
        session is not None
        and session.federated is not None
        and request.endpoint != f"{bp.name}.account_page"
    ):
        raise PageError(
            400,
            "Managed by your identity provider",
            "You signed in through your identity provider: your password and MFA devices are"
            " managed there, not here.",
        )
    if session is not None:
        return None
    flow = current_flow()
    flow.next = "account"
    save_flow(flow)
    return see_other("login_page")


def _account_home(message: str = "", error: str = "", status: int = 200) -> Response:
    session = current_session()
    assert session is not None  # noqa: S101 - the views check it first
    if session.federated is not None:
        return render_page(
            "account_federated.html", status=status, title="Your account", subject=session.federated
        )
    devices = current_services().store.list_mfa_devices(session.account_id, session.user_name)
    return render_page(
        "account.html",
        status=status,
        title="Your account",
        devices=devices,
        message=message,
        error=error,
        may_change=_policy(session.account_id).allow_users_to_change,
    )


@bp.get("/account")
def account_page() -> Response:
    return _signed_in() or _account_home()


def _password_form(
    error: str = "", problems: list[str] | None = None, status: int = 200
) -> Response:
    session = current_session()
    assert session is not None  # noqa: S101 - the views check it first
    policy = _policy(session.account_id)
    return render_page(
        "account_password.html",
        status=status,
        title="Change your password",
        error=error,
        problems=problems or [],
        rules=policy_rules(policy),
        may_change=policy.allow_users_to_change,
    )


@bp.get("/account/password")
def account_password_page() -> Response:
    return _signed_in() or _password_form()


@bp.post("/account/password")
def account_password_submit() -> Response:
    checked_form()
    redirect = _signed_in()
    if redirect is not None:
        return redirect
    session = current_session()
    assert session is not None  # noqa: S101 - checked just above
    if not _policy(session.account_id).allow_users_to_change:
        return _password_form(status=403)
    current, new, again = (
        form_field("current_password"),
        form_field("new_password"),
        form_field("confirm_password"),
    )
    result = login.verify_login(
        current_services().store,
        passwords.shared_hasher(),
        account_id=session.account_id,
        user_name=session.user_name,
        password=current,
        address=request_address(),
        now=clock_now(),
    )
    if result.outcome in ("refused", "throttled") or result.user_id != session.user_id:
        note("ChangePassword", outcome="denied", reason=result.reason or "invalid_credentials")
        return _password_form(error=result.message, status=401)
    if new != again:
        return _password_form(error="The two new passwords differ.", status=400)
    try:
        current_services().store.update_login_profile(
            session.account_id, session.user_name, password=new, password_reset_required=False
        )
    except PolicyViolation as e:
        return _password_form(
            error="The password does not meet the account's password policy:",
            problems=e.problems,
            status=400,
        )
    except InputError:
        return _password_form(error="That password cannot be used; choose another.", status=400)
    note("ChangePassword")
    return _account_home(message="Your password was changed.")


def _drop_enrolment() -> None:
    """Delete the device a previous, unfinished enrolment left (if it is still unassigned)."""
    flow, session = current_flow(), current_session()
    if flow.enrol is None or session is None:
        return
    try:
        current_services().store.delete_virtual_mfa_device(session.account_id, flow.enrol)
    except (NoSuchEntity, DeleteConflict):  # gone, or enabled meanwhile: theirs now
        pass
    flow.enrol = None


@bp.get("/account/mfa")
def account_mfa_page() -> Response:
    """A reload or a bookmark of the enrolment page: back to the account (the seed is gone)."""
    return see_other("account_page")


@bp.post("/account/mfa")
def account_mfa_start() -> Response:
    flow = checked_form()
    redirect = _signed_in()
    if redirect is not None:
        return redirect
    session = current_session()
    assert session is not None  # noqa: S101 - checked just above
    store = current_services().store
    if store.list_mfa_devices(session.account_id, session.user_name) and not session.mfa:
        return _account_home(
            error="Sign in with your MFA device first to add another one.", status=403
        )
    _drop_enrolment()
    name = f"{session.user_name}-{secrets.token_hex(3)}"[:64]
    new = store.create_virtual_mfa_device(session.account_id, name)
    flow.enrol = new.device.serial_number
    save_flow(flow)
    uri = new.otpauth_uri()
    qr = segno.make(uri, error="m").svg_data_uri(scale=5, border=2)
    return render_page(
        "account_mfa.html",
        title="Add an MFA device",
        qr=qr,
        seed=new.to_aws()["Base32StringSeed"],
        serial=new.device.serial_number,
    )


@bp.post("/account/mfa/enable")
def account_mfa_enable() -> Response:
    flow = checked_form()
    redirect = _signed_in()
    if redirect is not None:
        return redirect
    session = current_session()
    assert session is not None  # noqa: S101 - checked just above
    if flow.enrol is None:
        return see_other("account_page")
    serial = flow.enrol
    try:
        current_services().store.enable_mfa_device(
            session.account_id,
            session.user_name,
            serial,
            form_field("code1"),
            form_field("code2"),
            now=clock_now(),
        )
    except (InvalidAuthenticationCode, InputError):
        _drop_enrolment()
        save_flow(flow)
        return _account_home(
            error="Those codes were not accepted; the device was not added. Start again and"
            " type two consecutive codes.",
            status=400,
        )
    flow.enrol = None
    save_flow(flow)
    note("EnableMFADevice", detail=serial)
    return _account_home(message="The MFA device was added; the next sign-in asks for a code.")
