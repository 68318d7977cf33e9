"""The headers every sign-in page carries, and how its cookies are set.

* ``Content-Security-Policy``: nothing but this origin's own script, style
  and images (``data:`` images too, for a QR code), no inline script or
  style, no plugins, no ``<base>``, never framed; forms may post only here,
  and the consent page also to the one loopback ``redirect_uri`` it sends
  the browser to (Chromium applies ``form-action`` to the redirect that
  follows a form's POST).
* ``X-Frame-Options: DENY`` for browsers without ``frame-ancestors``;
  ``Referrer-Policy: no-referrer`` (no page's URL leaks to another site);
  ``Cache-Control: no-store``; ``X-Content-Type-Options: nosniff``;
  ``Cross-Origin-Opener-Policy: same-origin``;
  ``Strict-Transport-Security`` (the issuer is https only).
* Cookies: ``__Host-`` names (the browser then insists on ``Secure``,
  ``Path=/`` and no ``Domain``, so no sibling host can set or shadow them),
  ``HttpOnly``, ``SameSite=Lax``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from flask import Response

CSP_BASE: Final = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
)
HEADERS: Final = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
}


def form_target(redirect_uri: str) -> str:
    """The ``form-action`` source for a loopback redirect URI (already validated).

    CSP host sources cannot name an IPv6 literal, so ``http://[::1]:PORT`` is
    allowed as the scheme ``http:`` on that one page (the consent form itself
    still posts only here).
    """
    parts = urlsplit(redirect_uri)
    if parts.hostname == "127.0.0.1" and parts.port is not None:
        return f"http://127.0.0.1:{parts.port}{parts.path}"
    return "http:"


def content_security_policy(form_targets: Iterable[str] = ()) -> str:
    form_action = " ".join(("form-action 'self'", *form_targets))
    return "; ".join((*CSP_BASE, form_action))


def secure(response: Response, form_targets: Iterable[str] = ()) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(form_targets)
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def set_cookie(response: Response, name: str, value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="Lax"
    )


def clear_cookie(response: Response, name: str) -> None:
    response.delete_cookie(name, path="/", secure=True, httponly=True, samesite="Lax")
