"""The sign-in pages: server-rendered HTML for people, on the issuer.

========================  ==========================================================
``GET|POST /login``       account (id or alias), user name, password; then
                          ``/login/mfa`` (the TOTP code, when the user has an enabled
                          MFA device) and ``/login/password`` (a new password, when
                          the login profile requires a reset or the password aged
                          past the policy's ``MaxPasswordAge``). Signed in, ``/login``
                          says who you are.
``GET|POST /logout``      a confirmation form; signing out ends the browser session
                          and leads to ``/signed-out``.
``GET|POST /device``      RFC 8628 §3.3: the user code (typed, or from
                          ``verification_uri_complete``, read once and then dropped
                          from the URL by a redirect), then a consent screen naming
                          the client, the roles and the clusters; approve or deny
                          (``POST /device/decision``).
``/login/upstream…``      "Sign in with <IdP>": the authorization code flow with PKCE
                          against a sign-in provider, then a role picker
                          (:mod:`.upstream`); the session is that role's session.
``/account``              your password and MFA devices (:mod:`.account`).
``/console``              IAM administration, the access explorer and the audit view,
                          as the signed-in person (:mod:`.console`).
``GET|POST                RFC 6749 §4.1 with PKCE (RFC 7636): the request is checked
/oauth2/authorize``       first (a bad client or redirect URI gets an error page,
                          never a redirect), kept in the flow, then sign-in if
                          needed, a consent screen, and a 302 to the loopback
                          ``redirect_uri`` with ``code`` and ``state`` (or
                          ``error=access_denied``).
========================  ==========================================================

Security: see :mod:`~authbridge.web.signin.security` (headers, cookies) and
:mod:`~authbridge.web.signin.flows` (CSRF, server-side state). Refusals never
say whether a user exists (:data:`authbridge.iam.login.REFUSED_MESSAGE`); a
URL never carries a secret, a password or a code of ours (the only code in a
URL is the authorization code in the redirect to the user's own machine, as
RFC 6749 §4.1.2 requires). The consent screens list the roles whose trust
policy lets the user assume them now (decided as the token endpoint decides
it, with the session's MFA state: :func:`authbridge.sts.trust_decision`) and
every cluster this issuer serves: what the session can reach, whatever the
mapping then makes of it on each cluster.

The browser session is a sign-in session of :mod:`authbridge.signin` (kind
``browser``): ``iam revoke-sessions`` and disabling the user end it too.
"""

from __future__ import annotations

from authbridge.web.signin import account as _account  # noqa: F401 - registers its views
from authbridge.web.signin import console as _console  # noqa: F401 - registers its views
from authbridge.web.signin import upstream as _upstream  # noqa: F401 - registers its views
from authbridge.web.signin.pages import bp

__all__ = ["bp"]
