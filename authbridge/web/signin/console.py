"""``/console``: IAM administration and the access explorer for people, in the browser.

Server-rendered pages on the sign-in blueprint (so they carry its headers:
strict CSP with no inline script or style, ``frame-ancestors 'none'``,
``Cache-Control: no-store``; and its CSRF token, a digest of the flow
cookie, checked on every POST). The console is a client of the admin action
layer only:

* who acts is the signed-in person: the browser session becomes the same
  :class:`~authbridge.admin.authorize.Caller` an admin-audience token of that
  user would (principal, unique id, MFA), and every read and change is an
  admin action (:data:`authbridge.admin.SURFACES`) authorized by the admin
  API's authorizer, their IAM policies, default deny; each change writes an
  ``admin_call`` audit line (``detail: console``);
* a page is linked only when its list action is allowed, and a form is shown
  only when its action is (decided by the same authorizer before rendering);
  a refused action, a crafted POST included, answers the page with AWS's
  ``AccessDenied`` message, never a stack trace;
* without a session, a console URL leads to ``/login`` and back to the same
  page afterwards (the path is kept in the flow, server-side, never in a URL);
* re-authentication: deleting a user, deleting an access key, deactivating
  an MFA device and retiring or revoking a signing key need the person's
  password typed again in the same form (checked as a sign-in is, with its
  backoff), and their MFA code too when they have a device;
* a new access key's secret is on the answer to its POST only (no-store,
  never in a redirect, the flow or a log).

Forms post to ``POST /console/do``: the ``Action`` field names one of
:data:`FORM_ACTIONS`, the other fields are the action's parameters as text
(:func:`form_args`: booleans ``true``/``false``, lists one item a line, a
policy document as JSON text), then 303 back to the page it came from
(``back``, a checked ``/console`` path) with a one-time message.

The explorer (``/console/explain``) answers with :mod:`authbridge.explain`
over the store and the served mapping, RBAC rendered from them (the console
does not read clusters); ``?format=json`` gives the same document as
``authbridge access explain -o json``. The audit view reads the tail of the
configured JSON audit log (:mod:`authbridge.web.signin.console_audit`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from flask import Response, current_app, redirect, request

from authbridge import audit
from authbridge.admin import ALL_ACTIONS
from authbridge.admin.actions import Action, Document
from authbridge.admin.authorize import Authorizer, Caller, authorize, request_context
from authbridge.admin.params import Param, parse_args
from authbridge.errors import AuthbridgeError, InputError, NoSuchEntity
from authbridge.iam import login, passwords
from authbridge.signin import BrowserSession
from authbridge.web import api, limits
from authbridge.web.api import ApiTarget
from authbridge.web.signin import console_audit
from authbridge.web.signin.flows import BACK
from authbridge.web.signin.pages import (
    PageError,
    bp,
    check_mfa_code,
    checked_form,
    clock_now,
    current_flow,
    current_services,
    current_session,
    form_field,
    render_page,
    request_address,
    save_flow,
    see_other,
)
from authbridge.web.webhook import audit_writer

log = logging.getLogger(__name__)

ACTIONS: Final[dict[str, Action]] = {a.name: a for a in ALL_ACTIONS}
FORM_ACTIONS: Final = frozenset(
    {
        "CreateUser",
        "UpdateUser",
        "DeleteUser",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "CreateAccessKey",
        "UpdateAccessKey",
        "DeleteAccessKey",
        "CreateGroup",
        "AddUserToGroup",
        "RemoveUserFromGroup",
        "CreateRole",
        "UpdateAssumeRolePolicy",
        "AttachUserPolicy",
        "DetachUserPolicy",
        "AttachGroupPolicy",
        "DetachGroupPolicy",
        "AttachRolePolicy",
        "DetachRolePolicy",
        "DeactivateMFADevice",
        "CreateAccessEntry",
        "AssociateAccessPolicy",
        "RotateSigningKey",
        "RevokeSigningKey",
        "RetireSigningKey",
        "SimulatePrincipalPolicy",
    }
)
REAUTH_ACTIONS: Final = frozenset(
    {"DeleteUser", "DeleteAccessKey", "RevokeSigningKey", "RetireSigningKey", "DeactivateMFADevice"}
)
REAUTH_FIELDS: Final = ("reauth_password", "reauth_code")
FORM_FIELDS: Final = frozenset({"csrf_token", "Action", "back", *REAUTH_FIELDS})
MAX_FORM_FIELDS: Final = 20
PLACEHOLDER: Final = "placeholder"
MAX_DOCUMENT_CHARS: Final = 64 * 1024
REAUTH_REFUSED: Final = "Re-authentication failed: type your current password (and MFA code)."
REAUTH_FEDERATED: Final = (
    "Not done: this change asks for a password again, and a sign-in through an identity"
    " provider has none here. Make it as an IAM user, or with the CLI or the admin API."
)
NAV: Final = (
    ("console_users", "Users", "iam:ListUsers"),
    ("console_groups", "Groups", "iam:ListGroups"),
    ("console_roles", "Roles", "iam:ListRoles"),
    ("console_policies", "Policies", "iam:ListPolicies"),
    ("console_access", "Access entries", "eks:ListAccessEntries"),
    ("console_keys", "Signing keys", "authbridge:ListSigningKeys"),
    ("console_oidc", "OIDC providers", "iam:ListOpenIDConnectProviders"),
    ("console_explain", "Explorer", "iam:SimulatePrincipalPolicy"),
    ("console_audit_page", "Audit", console_audit.READ_ACTION),
)


class Denied(Exception):
    """An action the console refused; its message is shown on the page."""


# --------------------------------------------------------------------------- the caller


def caller_of(session: BrowserSession) -> Caller:
    """The admin caller a browser session is: the user, as an admin token of theirs is;
    a sign-in through an identity provider is its role session (the role's policies)."""
    subject = session.federated
    if subject is not None:
        return Caller(
            arn=subject.assumed_role_arn,
            canonical_arn=subject.role_arn,
            account_id=subject.account_id,
            principal_id=subject.principal_id,
            user_name=None,
            source_identity=subject.source_identity,
            method="token",
            session_name=subject.session_name,
        )
    return Caller(
        arn=session.user_arn,
        canonical_arn=session.user_arn,
        account_id=session.account_id,
        principal_id=session.user_id,
        user_name=session.user_name,
        source_identity=session.user_id,
        method="token",
        mfa=session.mfa,
    )


def _authorizer() -> Authorizer:
    found: Authorizer = current_app.extensions[api.EXTENSION]
    return found


def _target(caller: Caller) -> ApiTarget:
    svc = current_services()
    return ApiTarget(svc.store, caller.account_id, svc.store.partition, svc)


def _source_ip() -> str | None:
    svc = current_services()
    return limits.audit_client(request.environ, svc.settings.trusted_proxies)


def may(session: BrowserSession, iam_action: str, resource: str = "*") -> bool:
    """Whether the person's policies allow ``iam_action`` on ``resource`` (nothing is done)."""
    caller = caller_of(session)
    authorizer = _authorizer()
    context = request_context(
        caller, source_ip=_source_ip(), now=clock_now(), tags=authorizer.principal_tags(caller)
    )
    return authorizer.decide(caller, iam_action, resource, context).decision == "allowed"


def may_act(session: BrowserSession, action_name: str, **params: Any) -> bool:
    """Whether the action with these parameters (AWS names) would be allowed on its resource."""
    action = ACTIONS[action_name]
    # A required parameter the page has no value for yet (the user to add to a group)
    # does not name the resource; a placeholder lets its ARN be computed.
    full = {
        p.arg: params.get(p.name, PLACEHOLDER if p.required and p.kind == "string" else p.default)
        for p in action.params
    }
    try:
        resource = action.resources(_target(caller_of(session)), full)[0]
    except AuthbridgeError:
        return False
    return may(session, action.iam_action, resource)


def perform(session: BrowserSession, name: str, body: Mapping[str, Any]) -> Document:
    """Run the admin action ``name`` as the signed-in person; :class:`Denied` when refused.

    The admin API's steps: parameters, authorization, the handler; one
    ``admin_call`` audit line for mutating actions, answered or refused.
    """
    action = ACTIONS[name]
    caller = caller_of(session)
    svc = current_services()
    request_id = audit.new_request_id()
    targets: tuple[str, ...] = ()
    error: str | None = None
    detail = "console"
    try:
        args = parse_args(action.params, body)
        target = _target(caller)
        targets = action.resources(target, args)
        authorize(
            _authorizer(),
            caller,
            action.iam_action,
            targets[0],
            source_ip=_source_ip(),
            now=svc.clock(),
        )
        doc = action.run(target, args)
    except AuthbridgeError as e:
        answer = api.to_api_error(e)
        error, message = answer.code, _message(answer.message)
        detail = f"console: {message}"
        raise Denied(message) from None
    finally:
        if action.mutating or error == "AccessDenied":
            _audit(caller, action, targets, request_id, error, detail)
    return doc if doc is not None else {}


def _message(text: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in audit.redact(text))
    return clean[:500]


def _audit(
    caller: Caller,
    action: Action,
    targets: tuple[str, ...],
    request_id: str,
    error: str | None,
    detail: str,
) -> None:
    svc = current_services()
    outcome: audit.Outcome = "allowed" if error is None else "denied"
    audit_writer().write(
        audit.record(
            "admin_call",
            request_id=request_id,
            client=_source_ip(),
            outcome=outcome,
            reason=error or "ok",
            now=svc.clock(),
            caller=caller.arn,
            arn=caller.arn,
            canonical_arn=caller.canonical_arn,
            principal_id=caller.principal_id,
            source_identity=caller.source_identity,
            action=action.iam_action,
            targets=targets,
            detail=detail,
        )
    )


def read(session: BrowserSession, name: str, **body: Any) -> Document | None:
    """A read action's answer, or None when it is refused or names nothing."""
    try:
        return perform(session, name, body)
    except Denied:
        return None


# --------------------------------------------------------------------------- forms


def _param_value(param: Param, text: str) -> Any:
    """One form field as the parameter's JSON value; InputError naming the field."""
    text = text.strip()
    if text == "":
        return None
    if param.kind == "boolean":
        if text not in ("true", "false"):
            raise InputError(param.name, "must be true or false")
        return text == "true"
    if param.kind == "integer":
        if not console_audit.DIGITS.fullmatch(text):
            raise InputError(param.name, "must be a whole number")
        return int(text)
    if param.kind == "strings":
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    if param.kind in ("document", "object", "objects", "tags"):
        if len(text) > MAX_DOCUMENT_CHARS:
            raise InputError(param.name, f"must be at most {MAX_DOCUMENT_CHARS} characters")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise InputError(
                param.name, "must be JSON", hint="check its brackets and quotes"
            ) from None
        return text if param.kind == "document" else value
    return text


def form_args(action: Action, form: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body a console form gives for ``action``; InputError naming the field.

    Fields other than the action's parameters (and the form's own: CSRF,
    ``Action``, ``back``, the re-authentication) are refused, as the API refuses them.
    """
    if len(form) > MAX_FORM_FIELDS:
        raise InputError("form", f"has more than {MAX_FORM_FIELDS} fields")
    by_name = {p.name: p for p in action.params}
    body: dict[str, Any] = {}
    for name, text in form.items():
        if name in FORM_FIELDS:
            continue
        param = by_name.get(name)
        if param is None:
            raise InputError("form", "has a field that is not a parameter of this action")
        value = _param_value(param, text)
        if value is not None:
            body[name] = value
    return body


def _back(text: str) -> str:
    return text if BACK.fullmatch(text) else "/console"


def _reauthenticated(session: BrowserSession) -> bool:
    """The person typed their password again (and their MFA code when they have a device).

    A sign-in through an identity provider has no password here: never.
    """
    if session.federated is not None:
        return False
    svc, now = current_services(), clock_now()
    result = login.verify_login(
        svc.store,
        passwords.shared_hasher(),
        account_id=session.account_id,
        user_name=session.user_name,
        password=form_field("reauth_password"),
        address=request_address(),
        now=now,
    )
    if result.outcome in ("refused", "throttled") or result.user_id != session.user_id:
        return False
    if result.outcome != "mfa_required":
        return True
    pending = {
        "account": session.account_id,
        "user_name": session.user_name,
        "user_id": session.user_id,
    }
    return check_mfa_code(pending, form_field("reauth_code"), request_address(), now) in (
        "ok",
        "change",
    )


def _notice(text: str, back: str) -> Response:
    flow = current_flow()
    flow.notice = text
    save_flow(flow)
    return redirect(back, code=303)  # type: ignore[return-value]  # a Response


def _done_message(name: str, doc: Document) -> str:
    return f"Done: {name}."


@bp.post("/console/do")
def console_do() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    checked_form()
    name = form_field("Action")
    back = _back(form_field("back"))
    if name not in FORM_ACTIONS:
        raise PageError(400, "The form was refused", "the form names no console action")
    action = ACTIONS[name]
    try:
        body = form_args(action, {k: form_field(k) for k in request.form})
    except InputError as e:
        return _notice(f"Not done: {_message(str(e))}", back)
    if name in REAUTH_ACTIONS and session.federated is not None:
        return _notice(REAUTH_FEDERATED, back)
    if name in REAUTH_ACTIONS and not _reauthenticated(session):
        return _notice(REAUTH_REFUSED, back)
    try:
        doc = perform(session, name, body)
    except Denied as e:
        return _notice(f"Not done: {e}", back)
    except Exception:  # noqa: BLE001 - a page with a message, never a stack trace
        log.exception("console action %s failed", name)
        return _notice(f"Not done: {name} failed; the server log has the details.", back)
    if name == "CreateAccessKey":
        # The secret is on this answer only (no redirect, nothing kept).
        return _page("console_secret.html", "New access key", key=doc.get("AccessKey", {}))
    if name == "SimulatePrincipalPolicy":
        return _page("console_simulate.html", "Simulation", result=doc)
    return _notice(_done_message(name, doc), back)


# --------------------------------------------------------------------------- pages


def _session_or_login() -> BrowserSession | Response:
    session = current_session()
    if session is not None:
        return session
    flow = current_flow()
    flow.next = "console"
    flow.back = _back(request.path) if request.method == "GET" else "/console"
    save_flow(flow)
    return see_other("login_page")


def _page(template: str, title: str, *, status: int = 200, **context: Any) -> Response:
    session = current_session()
    assert session is not None  # noqa: S101 - every view checks it first
    flow = current_flow()
    notice = flow.notice
    if notice is not None:
        flow.notice = None
        save_flow(flow)
    nav = [(endpoint, label) for endpoint, label, action in NAV if may(session, action)]
    return render_page(
        f"console/{template}",
        status=status,
        title=title,
        nav=nav,
        notice=notice,
        here=request.path,
        can=lambda action_name, **params: may_act(session, action_name, **params),
        **context,
    )


def _refused(title: str) -> Response:
    return _page(
        "console_refused.html",
        title,
        status=403,
        message="Your policies do not allow you to read this page.",
    )


@bp.get("/console/resume")
def console_resume() -> Response:
    flow = current_flow()
    back = flow.back or "/console"
    flow.back = None
    save_flow(flow)
    return redirect(back, code=303)  # type: ignore[return-value]  # a Response


@bp.get("/console")
def console_home() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    return _page("console_home.html", "Console", caller=caller_of(session))


@bp.get("/console/users")
def console_users() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListUsers")
    if doc is None:
        return _refused("Users")
    return _page("console_users.html", "Users", users=doc.get("Users", []))


@bp.get("/console/users/<name>")
def console_user(name: str) -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "GetUser", UserName=name)
    if doc is None:
        return _refused("User")
    groups = read(session, "ListGroupsForUser", UserName=name) or {}
    keys = read(session, "ListAccessKeys", UserName=name) or {}
    attached = read(session, "ListAttachedUserPolicies", UserName=name) or {}
    profile = read(session, "GetLoginProfile", UserName=name)
    mfa = read(session, "ListMFADevices", UserName=name) or {}
    policies = read(session, "ListPolicies") or {}
    return _page(
        "console_user.html",
        f"User {name}",
        user=doc.get("User", {}),
        name=name,
        groups=groups.get("Groups", []),
        keys=keys.get("AccessKeyMetadata", []),
        attached=attached.get("AttachedPolicies", []),
        profile=profile,
        mfa=mfa.get("MFADevices", []),
        policies=policies.get("Policies", []),
    )


@bp.get("/console/groups")
def console_groups() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListGroups")
    if doc is None:
        return _refused("Groups")
    groups = []
    for g in doc.get("Groups", []):
        members = read(session, "GetGroup", GroupName=g["GroupName"]) or {}
        attached = read(session, "ListAttachedGroupPolicies", GroupName=g["GroupName"]) or {}
        groups.append(
            {
                **g,
                "members": [u["UserName"] for u in members.get("Users", [])],
                "attached": attached.get("AttachedPolicies", []),
            }
        )
    users = read(session, "ListUsers") or {}
    policies = read(session, "ListPolicies") or {}
    return _page(
        "console_groups.html",
        "Groups",
        groups=groups,
        users=users.get("Users", []),
        policies=policies.get("Policies", []),
    )


def trust_sentences(document: Any) -> list[str]:
    """A readable rendering of a trust policy: one sentence per statement."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return ["(the trust policy is not JSON)"]
    if not isinstance(document, dict):
        return []
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for st in statements if isinstance(statements, list) else []:
        if not isinstance(st, dict):
            continue
        effect = "Allows" if st.get("Effect") == "Allow" else "Denies"
        principal = st.get("Principal", {})
        who: list[str] = []
        if isinstance(principal, dict):
            for kind, value in principal.items():
                values = value if isinstance(value, list) else [value]
                who.extend(f"{kind} {v}" for v in values)
        else:
            who.append(str(principal))
        action = st.get("Action", "")
        actions = ", ".join(action) if isinstance(action, list) else str(action)
        sentence = f"{effect} {' or '.join(who) or 'anyone'} to {actions}"
        if st.get("Condition"):
            sentence += " when " + json.dumps(st["Condition"], sort_keys=True)
        out.append(sentence)
    return out


@bp.get("/console/roles")
def console_roles() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListRoles")
    if doc is None:
        return _refused("Roles")
    roles = []
    for r in doc.get("Roles", []):
        trust = r.get("AssumeRolePolicyDocument")
        attached = read(session, "ListAttachedRolePolicies", RoleName=r["RoleName"]) or {}
        roles.append(
            {
                **r,
                "sentences": trust_sentences(trust),
                "trust_json": json.dumps(
                    json.loads(trust) if isinstance(trust, str) else trust, indent=2
                ),
                "attached": attached.get("AttachedPolicies", []),
            }
        )
    policies = read(session, "ListPolicies") or {}
    return _page("console_roles.html", "Roles", roles=roles, policies=policies.get("Policies", []))


@bp.get("/console/policies")
def console_policies() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListPolicies")
    if doc is None:
        return _refused("Policies")
    return _page("console_policies.html", "Policies", policies=doc.get("Policies", []))


@bp.get("/console/access")
def console_access() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    clusters = []
    for cluster in current_services().settings.cluster_ids:
        doc = read(session, "ListAccessEntries", clusterName=cluster)
        if doc is None:
            continue
        entries = []
        for arn in doc.get("accessEntries", []):
            assoc = read(
                session, "ListAssociatedAccessPolicies", clusterName=cluster, principalArn=arn
            )
            entries.append(
                {
                    "arn": arn,
                    "policies": [
                        p.get("policyArn", "")
                        for p in (assoc or {}).get("associatedAccessPolicies", [])
                    ],
                }
            )
        clusters.append({"name": cluster, "entries": entries})
    if not clusters:
        return _refused("Access entries")
    policies = read(session, "ListAccessPolicies") or {}
    return _page(
        "console_access.html",
        "Access entries",
        clusters=clusters,
        access_policies=[p.get("arn", "") for p in policies.get("accessPolicies", [])],
    )


@bp.get("/console/keys")
def console_keys() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListSigningKeys")
    if doc is None:
        return _refused("Signing keys")
    return _page(
        "console_keys.html",
        "Signing keys",
        keys=doc.get("Keys", []),
        in_store=current_services().settings.key_source == "store",
    )


@bp.get("/console/oidc")
def console_oidc() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    doc = read(session, "ListOpenIDConnectProviders")
    if doc is None:
        return _refused("OIDC providers")
    providers = doc.get("OpenIDConnectProviderList", [])
    return _page("console_oidc.html", "OIDC providers", providers=providers)


# --------------------------------------------------------------------------- explorer


def _snapshot() -> Any:
    from authbridge.explain import load

    svc = current_services()

    def rendered(mapping: Any, access: Any, cluster: str) -> Any:
        why = (
            f"the console does not read cluster {cluster}: these are the bindings authbridge"
            " renders (authbridge access explain --kubeconfig reads a live cluster)"
        )
        return load.rendered_for(mapping, access, cluster, why=why)

    return load.from_store(
        svc.store,
        partition=svc.settings.partition,
        mapping=svc.mapping.current(),
        clusters=list(svc.settings.cluster_ids),
        rbac_of=rendered,
    )


def _json(doc: Any, filename: str) -> Response:
    response = Response(json.dumps(doc, indent=2), mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/console/explain")
def console_explain() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    if not may(session, "iam:SimulatePrincipalPolicy"):
        return _refused("Explorer")
    from authbridge.explain import explain_permission, explain_principal, permission_request

    q = request.args
    principal = q.get("principal", "")[:2048]
    verb, resource = q.get("verb", "")[:64], q.get("resource", "")[:256]
    group, namespace = q.get("api_group", "")[:256], q.get("namespace", "")[:256]
    answer: dict[str, Any] | None = None
    kind = ""
    error = ""
    try:
        if principal:
            kind = "principal"
            answer = explain_principal(_snapshot(), principal).to_json()
        elif verb or resource:
            kind = "permission"
            req = permission_request(verb, resource, api_group=group, namespace=namespace or None)
            answer = explain_permission(_snapshot(), req).to_json()
    except (AuthbridgeError, NoSuchEntity) as e:
        error = _message(str(e))
        answer = None
    if answer is not None and q.get("format") == "json":
        return _json(answer, f"explain-{kind}.json")
    return _page(
        "console_explain.html",
        "Access explorer",
        principal=principal,
        verb=verb,
        resource=resource,
        api_group=group,
        namespace=namespace,
        kind=kind,
        answer=answer,
        answer_json=json.dumps(answer, indent=2) if answer is not None else "",
        json_query=request.query_string.decode("ascii", "replace"),
        error=error,
    )


# --------------------------------------------------------------------------- audit


@bp.get("/console/audit")
def console_audit_page() -> Response:
    session = _session_or_login()
    if isinstance(session, Response):
        return session
    if not may(session, console_audit.READ_ACTION):
        return _refused("Audit")
    try:
        filters = console_audit.Filters.from_query(request.args, now=clock_now())
    except InputError as e:
        filters, error = console_audit.Filters(), _message(str(e))
    else:
        error = ""
    source = current_services().settings.audit_log
    records, note = console_audit.recent(source, filters)
    return _page(
        "console_audit.html",
        "Audit",
        records=records,
        filters=filters,
        source_note=note,
        error=error,
    )
