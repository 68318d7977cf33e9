"""The views of the sign-in pages (see :mod:`authbridge.web.signin` for the tour).

Each view reads the browser's flow (:mod:`~authbridge.web.signin.flows`) and
its browser session (the ``__Host-authbridge-session`` cookie, a sign-in
session of :mod:`authbridge.signin`), and answers a page or a redirect
(303 after every POST, so a reload never resubmits). The service calls
(sessions, authorize requests, codes, device approval) are
:mod:`authbridge.signin`'s; the checks of a password and an MFA code are
:mod:`authbridge.iam.login`'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, NoReturn
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, url_for

from authbridge import audit, signin, sts
from authbridge.errors import (
    InputError,
    NoSuchEntity,
    PasswordPolicyViolation,
    StoreUnavailable,
    Throttled,
)
from authbridge.iam import login, passwords, totp
from authbridge.iam.sessions import FederatedSubject
from authbridge.signin import federated as federated_signin
from authbridge.web import limits
from authbridge.web.context import Services, services
from authbridge.web.signin import flows, security
from authbridge.web.signin.flows import FLOW_COOKIE, MAX_CODE_ATTEMPTS, Flow
from authbridge.web.webhook import audit_writer

SESSION_COOKIE: Final = "__Host-authbridge-session"
CLIENT_NAMES: Final = {"authbridge-cli": "The authbridge command line (authbridge-cli)"}
MAX_FIELD_CHARS: Final = 1024  # any form field; longer is refused before any work
AUTHORIZE_PARAMS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
)
WRONG_CODE: Final = "the MFA code is not valid; enter the current code from your device"
BAD_FORM: Final = (
    "This form has expired or did not come from this site. Go back, reload the page and try again."
)

bp = Blueprint(
    "signin",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/signin/static",
)


class PageError(Exception):
    """A request the pages refuse with an error page (never a redirect)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def _refuse_form() -> NoReturn:
    raise PageError(403, "The form was refused", BAD_FORM)


# --------------------------------------------------------------------------- request state


def current_services() -> Services:
    return services()


def clock_now() -> float:
    return current_services().clock()


def current_flow() -> Flow:
    """The browser's flow, or a new (unsaved) one; one per request."""
    flow = g.get("signin_flow")
    if not isinstance(flow, Flow):
        flow = flows.load(current_services().store, request.cookies.get(FLOW_COOKIE), clock_now())
        g.signin_flow = flow
    return flow


def _replace_flow(flow: Flow) -> None:
    """Make ``flow`` the browser's flow from now on (its cookie set after the view)."""
    old = current_flow()
    if old.stored and old.flow_id != flow.flow_id:
        current_services().store.delete_signin_flow(old.flow_id)
    g.signin_flow = flow


def save_flow(flow: Flow) -> None:
    flows.save(current_services().store, flow, clock_now())


def current_session() -> signin.BrowserSession | None:
    """The browser's live session, or None (ended, idle, expired, its user disabled)."""
    if "signin_session" not in g:
        secret = request.cookies.get(SESSION_COOKIE)
        found = None
        if secret and len(secret) <= MAX_FIELD_CHARS:
            found = signin.browser_session(current_services().store, secret, clock_now())
        g.signin_session = found
    session = g.signin_session
    return session if isinstance(session, signin.BrowserSession) else None


def request_address() -> str:
    lim = current_app.extensions.get(limits.EXTENSION)
    proxies = lim.trusted_proxies if isinstance(lim, limits.ClientAuthLimits) else ()
    found = limits.client_address(
        request.remote_addr, request.headers.getlist("X-Forwarded-For"), proxies
    )
    return found or "unknown"


def form_field(name: str) -> str:
    value = request.form.get(name, "")
    if len(value) > MAX_FIELD_CHARS:
        raise PageError(400, "The form was refused", f"the field {name} is too long")
    return value


def checked_form() -> Flow:
    """The flow of a POST whose CSRF token is right; refuses the request otherwise."""
    flow = current_flow()
    if not flows.csrf_ok(flow, form_field("csrf_token")):
        _refuse_form()
    return flow


def _url(endpoint: str, **values: Any) -> str:
    """A page's URL, under the issuer path when the request came that way."""
    return url_for(f".{endpoint}", **values)


def see_other(endpoint: str) -> Response:
    return redirect(_url(endpoint), code=303)  # type: ignore[return-value]  # a Response


def render_page(
    template: str,
    *,
    status: int = 200,
    form_targets: Iterable[str] = (),
    **context: Any,
) -> Response:
    """A rendered page with the flow's CSRF token for its forms."""
    flow = current_flow()
    session = current_session()
    body = render_template(
        f"signin/{template}",
        csrf_token=flow.csrf,
        session=session,
        url=_url,
        **context,
    )
    response = Response(body, status=status, mimetype="text/html")
    g.signin_form_targets = tuple(form_targets)
    return response


@bp.after_request
def _finish(response: Response) -> Response:
    flow = g.get("signin_flow")
    if isinstance(flow, Flow) and request.cookies.get(FLOW_COOKIE) != flow.flow_id:
        security.set_cookie(response, FLOW_COOKIE, flow.flow_id)
    new_secret = g.get("signin_new_session")
    if isinstance(new_secret, str):
        security.set_cookie(response, SESSION_COOKIE, new_secret)
    elif g.get("signin_end_session"):
        security.clear_cookie(response, SESSION_COOKIE)
    return security.secure(response, g.get("signin_form_targets", ()))


@bp.errorhandler(PageError)
def _page_error(e: PageError) -> Response:
    return render_page("error.html", status=e.status, title=e.title, message=e.message)


@bp.errorhandler(StoreUnavailable)
def _store_unavailable(e: StoreUnavailable) -> Response:
    """A page that needs nothing of the store (no flow, no session: it is the store that failed)."""
    body = render_template(
        "signin/error.html",
        title="Sign-in is unavailable",
        message="The server cannot reach its database right now. Try again in a minute.",
        csrf_token="",
        session=None,
        url=_url,
    )
    response = Response(body, status=503, mimetype="text/html")
    response.headers["Retry-After"] = "30"
    g.signin_flow = None  # nothing to save or set
    return response


@bp.errorhandler(Throttled)
def _throttled(e: Throttled) -> Response:
    return render_page(
        "error.html",
        status=503,
        title="Too many sign-ins at once",
        message="The server is checking too many sign-ins right now. Try again in a few seconds.",
    )


def note(
    action: str,
    *,
    outcome: audit.Outcome = "allowed",
    reason: str = "ok",
    user_id: str | None = None,
    user_arn: str | None = None,
    sid: str | None = None,
    detail: str | None = None,
) -> None:
    """One ``signin`` audit line for what this request did (see :mod:`authbridge.audit`)."""
    session = current_session()
    if session is not None and user_id is None:
        user_id, user_arn, sid = session.user_id, session.user_arn, sid or session.session_id
    svc = current_services()
    audit_writer().write(
        audit.record(
            "signin",
            request_id=audit.new_request_id(),
            client=limits.audit_client(request.environ, svc.settings.trusted_proxies),
            outcome=outcome,
            reason=reason,
            now=svc.clock(),
            action=f"signin:{action}",
            arn=user_arn,
            canonical_arn=user_arn,
            principal_id=user_id,
            sid=sid,
            detail=detail,
        )
    )


# --------------------------------------------------------------------------- signing in


def _resolve_account(text: str) -> str:
    """An account id from what was typed (an id or an alias); the text itself otherwise."""
    text = text.strip()
    if text.isdigit():
        return text
    for account in current_services().store.list_accounts():
        if account.alias is not None and account.alias.lower() == text.lower():
            return account.account_id
    return text


def _default_account() -> str:
    accounts = current_services().store.list_accounts()
    if len(accounts) != 1:
        return ""
    return accounts[0].alias or accounts[0].account_id


def _after_sign_in(flow: Flow) -> str:
    """The endpoint a signed-in browser goes on to."""
    if flow.next == "authorize" and flow.authorize:
        return "authorize_page"
    if flow.next == "device":
        return "device_page"
    if flow.next == "account":
        return "account_page"
    if flow.next == "console":
        return "console_resume"
    return "login_page"


def finish_sign_in(
    flow: Flow,
    *,
    user_id: str | None,
    user_arn: str | None,
    mfa: bool,
    federated: FederatedSubject | None = None,
    action: str = "Login",
    detail: str | None = None,
) -> Response:
    """Start a browser session (a user's, or a federated subject's); a fresh flow (new id,
    new CSRF token) carries on."""
    svc = current_services()
    old = current_session()
    if old is not None:
        signin.end_session(svc.store, old.session_id, clock_now())
    session_id, secret = signin.start_browser_session(
        svc.store,
        user_id=user_id,
        mfa=mfa,
        address=request_address(),
        now=clock_now(),
        lifetimes=signin.session_lifetimes(svc.settings),
        federated=federated,
    )
    g.signin_new_session = secret
    note(
        action,
        user_id=user_id if federated is None else federated.principal_id,
        user_arn=user_arn,
        sid=session_id,
        detail=detail or ("with MFA" if mfa else "password only"),
    )
    fresh = flow.renewed()
    target = _after_sign_in(fresh)
    fresh.next = None
    _replace_flow(fresh)
    save_flow(fresh)
    return see_other(target)


def _signed_in_home() -> Response:
    return render_page("home.html", title="Signed in")


def _login_form(
    *, error: str = "", status: int = 200, account: str = "", user: str = ""
) -> Response:
    from authbridge.web.signin.upstream import offered

    providers = offered()
    return render_page(
        "login.html",
        status=status,
        title="Sign in",
        error=error,
        account=account or _default_account(),
        user_name=user,
        providers=providers,
        form_targets=sorted({p.origin for p in providers if p.origin is not None}),
    )


@bp.get("/login")
def login_page() -> Response:
    if current_session() is not None:
        flow = current_flow()
        target = _after_sign_in(flow)
        if target != "login_page":
            return see_other(target)
        return _signed_in_home()
    return _login_form()


@bp.post("/login")
def login_submit() -> Response:
    flow = checked_form()
    account_text, user_name = form_field("account"), form_field("user_name")
    password = form_field("password")
    account_id = _resolve_account(account_text)
    svc, now = current_services(), clock_now()
    result = login.verify_login(
        svc.store,
        passwords.shared_hasher(),
        account_id=account_id,
        user_name=user_name,
        password=password,
        address=request_address(),
        now=now,
    )
    if result.outcome in ("refused", "throttled"):
        note("Login", outcome="denied", reason=result.reason or result.outcome)
        status = 429 if result.outcome == "throttled" else 401
        return _login_form(
            error=result.message, status=status, account=account_text, user=user_name
        )
    assert result.user_id is not None  # noqa: S101 - every other outcome names the user
    pending = {
        "account": account_id,
        "user_name": user_name,
        "user_id": result.user_id,
        "user_arn": result.user_arn,
        "mfa": result.mfa_present,
        "at": now,
        "attempts": 0,
    }
    if result.outcome == "mfa_required":
        flow.pending = {**pending, "stage": "mfa"}
        save_flow(flow)
        return see_other("mfa_page")
    if result.outcome == "password_reset_required":
        flow.pending = {**pending, "stage": "change"}
        save_flow(flow)
        return see_other("password_page")
    return finish_sign_in(
        flow, user_id=result.user_id, user_arn=result.user_arn, mfa=result.mfa_present
    )


def _arn(pending: dict[str, Any]) -> str | None:
    arn = pending.get("user_arn")
    return arn if isinstance(arn, str) else None


def _mfa_form(error: str = "", status: int = 200) -> Response:
    return render_page("mfa.html", status=status, title="Enter your MFA code", error=error)


@bp.get("/login/mfa")
def mfa_page() -> Response:
    if current_flow().pending_stage("mfa", clock_now()) is None:
        return see_other("login_page")
    return _mfa_form()


def check_mfa_code(pending: dict[str, Any], code_text: str, address: str, now: float) -> str:
    """The second step of a sign-in whose password was right: ``ok``, ``wrong``,
    ``throttled``, ``expired`` (the password expired, hard) or ``change`` (a new
    password is due). The backoff counters of :mod:`authbridge.iam.login` apply,
    and a wrong code counts as a failed sign-in, as in :func:`~authbridge.iam.login.verify_login`.
    """
    store = current_services().store
    account, user_name = str(pending["account"]), str(pending["user_name"])
    facts = store.login_facts(account, user_name, address, now)
    if login.wait_seconds(facts, now) > 0:
        return "throttled"
    user_id = facts.user_id
    if user_id is None or user_id != pending["user_id"] or not facts.enabled or not facts.mfa:
        return "wrong"
    try:
        code = totp.parse_code(code_text)
    except InputError:
        code = None
    matched = False
    if code is not None:
        for device in facts.mfa:
            step = totp.match(
                device.secret,
                code,
                now,
                last_used_step=device.last_used_step,
                drift=device.drift_steps,
            )
            if step is not None and store.use_mfa_step(device.serial_number, step):
                matched = True
                break
    if not matched:
        store.record_login_failure(account, user_name, address, now)
        note(
            "Login",
            outcome="denied",
            reason="invalid_mfa_code",
            user_id=user_id,
            user_arn=facts.user_arn,
        )
        return "wrong"
    expired = facts.password_changed_at is not None and passwords.is_expired(
        facts.policy, facts.password_changed_at, now
    )
    if expired and facts.policy.hard_expiry:
        store.record_login_failure(account, user_name, address, now)
        note(
            "Login",
            outcome="denied",
            reason="password_expired",
            user_id=user_id,
            user_arn=facts.user_arn,
        )
        return "expired"
    store.record_login_success(account, user_name, address, now, user_id=user_id)
    return "change" if expired or facts.password_reset_required else "ok"


@bp.post("/login/mfa")
def mfa_submit() -> Response:
    flow = checked_form()
    now = clock_now()
    pending = flow.pending_stage("mfa", now)
    if pending is None:
        return _login_form(error="The sign-in took too long; start again.", status=401)
    outcome = check_mfa_code(pending, form_field("code"), request_address(), now)
    if outcome == "ok":
        return finish_sign_in(
            flow, user_id=str(pending["user_id"]), user_arn=_arn(pending), mfa=True
        )
    if outcome == "change":
        flow.pending = {**pending, "stage": "change", "mfa": True, "at": now}
        save_flow(flow)
        return see_other("password_page")
    if outcome == "expired":
        flow.pending = None
        save_flow(flow)
        return _login_form(
            error=login.LoginResult("refused", "password_expired").message, status=401
        )
    if outcome == "throttled":
        return _mfa_form(error="too many failed sign-ins; try again later", status=429)
    attempts = int(pending.get("attempts", 0)) + 1
    if attempts >= MAX_CODE_ATTEMPTS:
        flow.pending = None
        save_flow(flow)
        return _login_form(error=login.REFUSED_MESSAGE, status=401)
    flow.pending = {**pending, "attempts": attempts}
    save_flow(flow)
    return _mfa_form(error=WRONG_CODE, status=401)


def _password_form(error: str = "", problems: Iterable[str] = (), status: int = 200) -> Response:
    pending = current_flow().pending or {}
    try:
        policy = current_services().store.get_account_password_policy(
            str(pending.get("account", ""))
        )
    except NoSuchEntity:  # no policy set: the default one applies
        policy = passwords.DEFAULT_POLICY
    return render_page(
        "password.html",
        status=status,
        title="Choose a new password",
        error=error,
        problems=list(problems),
        rules=policy_rules(policy),
        user_name=pending.get("user_name", ""),
    )


def policy_rules(policy: passwords.PasswordPolicy) -> list[str]:
    rules = [f"at least {policy.minimum_length} characters"]
    for flag, text in (
        (policy.require_uppercase, "an upper-case letter"),
        (policy.require_lowercase, "a lower-case letter"),
        (policy.require_numbers, "a digit"),
        (policy.require_symbols, "a symbol (" + "".join(sorted(passwords.SYMBOLS)) + ")"),
    ):
        if flag:
            rules.append(text)
    if policy.reuse_prevention:
        rules.append(f"not one of your last {policy.reuse_prevention} passwords")
    return rules


@bp.get("/login/password")
def password_page() -> Response:
    if current_flow().pending_stage("change", clock_now()) is None:
        return see_other("login_page")
    return _password_form()


@bp.post("/login/password")
def password_submit() -> Response:
    flow = checked_form()
    now = clock_now()
    pending = flow.pending_stage("change", now)
    if pending is None:
        return _login_form(error="The sign-in took too long; start again.", status=401)
    new, again = form_field("new_password"), form_field("confirm_password")
    if new != again:
        return _password_form(
            error="The two passwords differ; type the same one twice.", status=400
        )
    try:
        current_services().store.update_login_profile(
            str(pending["account"]),
            str(pending["user_name"]),
            password=new,
            password_reset_required=False,
        )
    except PasswordPolicyViolation as e:
        return _password_form(
            error="The password does not meet the account's password policy:",
            problems=e.problems,
            status=400,
        )
    except InputError:
        return _password_form(error="That password cannot be used; choose another.", status=400)
    except NoSuchEntity:
        flow.pending = None
        save_flow(flow)
        return _login_form(error=login.REFUSED_MESSAGE, status=401)
    user_id, user_arn = str(pending["user_id"]), _arn(pending)
    note("ChangePassword", user_id=user_id, user_arn=user_arn, detail="required at sign-in")
    return finish_sign_in(flow, user_id=user_id, user_arn=user_arn, mfa=bool(pending.get("mfa")))


# --------------------------------------------------------------------------- signing out


@bp.get("/logout")
def logout_page() -> Response:
    if current_session() is None:
        return see_other("signed_out")
    return render_page("logout.html", title="Sign out")


@bp.post("/logout")
def logout_submit() -> Response:
    flow = checked_form()
    session = current_session()
    if session is not None:
        note("Logout")
        signin.end_session(current_services().store, session.session_id, clock_now())
    g.signin_end_session = True
    if flow.stored:
        current_services().store.delete_signin_flow(flow.flow_id)
    g.signin_flow = Flow()
    return see_other("signed_out")


@bp.get("/signed-out")
def signed_out() -> Response:
    return render_page("signed_out.html", title="Signed out")


# --------------------------------------------------------------------------- what a session reaches


@dataclass(frozen=True)
class Reach:
    """What a consent screen lists: the roles the user's trust names and the clusters served."""

    user_arn: str
    roles: tuple[str, ...]
    clusters: tuple[str, ...]


def reach(session: signin.BrowserSession) -> Reach:
    """The roles whose trust policy lets the user assume them now (with this session's MFA
    state, as the token endpoint decides it: :func:`authbridge.sts.trust_decision`), in
    every account, and the clusters this issuer serves."""
    svc = current_services()
    store = svc.store
    if session.federated is not None:
        return _federated_reach(session.federated)
    user = store.get_user(session.account_id, session.user_name)
    groups = {grp.group_id for grp in store.list_groups_for_user(user.account_id, user.name)}
    now = svc.clock()
    roles = [
        role.arn
        for account in store.list_accounts()
        for role in store.list_roles(account.account_id)
        if sts.trust_decision(role.trust_policy, user, groups, mfa=session.mfa, now=now).allowed
    ]
    return Reach(user.arn, tuple(sorted(roles)), tuple(current_services().settings.cluster_ids))


def _federated_reach(subject: FederatedSubject) -> Reach:
    """A federated session acts as its role; it may switch to the others that trust it."""
    svc = current_services()
    roles: list[str] = []
    try:
        provider = svc.store.get_open_id_connect_provider(subject.account_id, subject.provider_arn)
    except NoSuchEntity:
        provider = None
    if provider is not None:
        roles = [
            role.arn
            for role in federated_signin.roles_for(
                svc.store, provider, subject.claims, now=svc.clock()
            )
        ]
    return Reach(subject.assumed_role_arn, tuple(sorted(roles)), tuple(svc.settings.cluster_ids))


# --------------------------------------------------------------------------- device


def _device_entry(error: str = "", status: int = 200, code: str = "") -> Response:
    return render_page(
        "device.html", status=status, title="Connect a device", error=error, code=code
    )


@bp.get("/device")
def device_page() -> Response:
    flow = current_flow()
    typed = request.args.get("user_code")
    if typed is not None:
        # verification_uri_complete: remember the code, then drop it from the URL at once.
        flow.user_code = typed[:64]
        flow.next = "device"
        save_flow(flow)
        return see_other("device_page")
    session = current_session()
    if session is None:
        flow.next = "device"
        save_flow(flow)
        return see_other("login_page")
    if flow.next == "device":  # arrived: /login no longer leads here
        flow.next = None
        save_flow(flow)
    if flow.user_code is None:
        return _device_entry()
    found = signin.find_device_request(current_services().store, flow.user_code, clock_now())
    if found is None or found.status != "pending":
        code = flow.user_code
        flow.user_code = None
        save_flow(flow)
        return _device_entry(
            error="That code is not valid, has expired or was already used; check it on your"
            " device.",
            status=400,
            code=code,
        )
    return render_page(
        "device_consent.html",
        title="Approve this sign-in?",
        code=_display_code(flow.user_code),
        client=CLIENT_NAMES.get(found.client_id, found.client_id),
        reach=reach(session),
    )


def _display_code(code: str) -> str:
    letters = "".join(c for c in code.upper() if c.isalnum())
    return f"{letters[:4]}-{letters[4:]}" if len(letters) == 8 else letters


@bp.post("/device")
def device_submit() -> Response:
    flow = checked_form()
    if current_session() is None:
        flow.next = "device"
        save_flow(flow)
        return see_other("login_page")
    code = form_field("user_code").strip()
    if not code:
        return _device_entry(error="Enter the code your device shows.", status=400)
    flow.user_code = code[:64]
    flow.next = None
    save_flow(flow)
    return see_other("device_page")


@bp.post("/device/decision")
def device_decision() -> Response:
    flow = checked_form()
    session = current_session()
    if session is None:
        flow.next = "device"
        save_flow(flow)
        return see_other("login_page")
    code, decision = flow.user_code, form_field("decision")
    if code is None or decision not in ("approve", "deny"):
        return see_other("device_page")
    flow.user_code = None
    save_flow(flow)
    store, now = current_services().store, clock_now()
    try:
        if decision == "approve":
            signin.approve_device(
                store,
                code,
                user_id=None if session.federated else session.user_id,
                mfa=session.mfa,
                now=now,
                federated_id=session.federated.subject_id if session.federated else None,
            )
        else:
            signin.deny_device(store, code, now)
    except signin.DeviceCodeError as e:
        action = "ApproveDevice" if decision == "approve" else "DenyDevice"
        note(action, outcome="denied", reason=e.reason)
        return _device_entry(
            error="That code is not valid, has expired or was already used.", status=400
        )
    note("ApproveDevice" if decision == "approve" else "DenyDevice")
    return render_page(
        "device_done.html",
        title="Device approved" if decision == "approve" else "Device denied",
        approved=decision == "approve",
    )


# --------------------------------------------------------------------------- authorize


def _authorize_params(values: Any) -> dict[str, str]:
    return {k: str(values[k]) for k in AUTHORIZE_PARAMS if k in values}


def _redirect_with(redirect_uri: str, params: dict[str, str]) -> Response:
    sep = "&" if "?" in redirect_uri else "?"
    response = Response(status=302)
    response.headers["Location"] = redirect_uri + sep + urlencode(params)
    return response


def _invalid_request(e: Any) -> Response:
    return render_page(
        "error.html",
        status=400,
        title="This sign-in request is not valid",
        message=f"{e.error}: {e.description}",
    )


@bp.get("/oauth2/authorize")
def authorize_page() -> Response:
    flow = current_flow()
    if request.args:
        params = _authorize_params(request.args)
        try:
            req = signin.validate_authorize_request(request.args)  # repeats refused too
        except signin.AuthorizeError as e:
            if not e.redirectable:
                return _invalid_request(e)
            answer = {"error": e.error, "error_description": e.description}
            if params.get("state"):
                answer["state"] = params["state"]
            return _redirect_with(params["redirect_uri"], answer)
        del req
        flow.authorize = params
        flow.next = "authorize"
        save_flow(flow)
        return see_other("authorize_page")
    if not flow.authorize:
        raise PageError(
            400,
            "No sign-in is waiting",
            "There is no sign-in request to approve here. Start again from your terminal"
            " (authbridge login).",
        )
    session = current_session()
    if session is None:
        return see_other("login_page")
    req = signin.validate_authorize_request(flow.authorize)
    return render_page(
        "authorize_consent.html",
        title="Approve this sign-in?",
        client=CLIENT_NAMES.get(req.client_id, req.client_id),
        reach=reach(session),
        form_targets=(security.form_target(req.redirect_uri),),
    )


@bp.post("/oauth2/authorize")
def authorize_decision() -> Response:
    flow = checked_form()
    session = current_session()
    if not flow.authorize:
        return see_other("authorize_page")
    if session is None:
        flow.next = "authorize"
        save_flow(flow)
        return see_other("login_page")
    try:
        req = signin.validate_authorize_request(flow.authorize)
    except signin.AuthorizeError as e:
        flow.authorize = None
        save_flow(flow)
        return _invalid_request(e)
    flow.authorize, flow.next = None, None
    save_flow(flow)
    state = {"state": req.state} if req.state else {}
    if form_field("decision") != "approve":
        note("DenyAuthorize")
        return _redirect_with(req.redirect_uri, {"error": "access_denied", **state})
    note("Authorize", detail=req.client_id)
    code = signin.issue_authorization_code(
        current_services().store,
        req,
        user_id=None if session.federated else session.user_id,
        mfa=session.mfa,
        now=clock_now(),
        federated_id=session.federated.subject_id if session.federated else None,
    )
    return _redirect_with(req.redirect_uri, {"code": code, **state})
