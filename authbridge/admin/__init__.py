"""The admin actions: every ``authbridge iam|access|keys`` verb as data, free of Flask and click.

:data:`SURFACES` maps each admin API endpoint (``/api/iam``, ``/api/access``,
``/api/keys``) to its actions by AWS name. The CLI's ``iam``, ``access`` and
``keys`` verbs run the same actions (:mod:`authbridge.cli.admin_call`): here
on the store (break-glass), or over the admin API as the caller, so both
print and answer the same JSON by construction; tests compare the two. The
sign-in verbs (:mod:`authbridge.cli.iam_signin`) call
:mod:`~authbridge.admin.signin`'s handlers on the store.
"""

from __future__ import annotations

from typing import Final

from authbridge.admin import access, iam, keys, oidc_signin, policies, signin
from authbridge.admin.actions import Action, Surface, registry

SURFACES: Final[dict[Surface, dict[str, Action]]] = {
    "iam": registry((*iam.ACTIONS, *oidc_signin.ACTIONS, *policies.ACTIONS, *signin.ACTIONS)),
    "access": registry(access.ACTIONS),
    "keys": registry(keys.ACTIONS),
}
ALL_ACTIONS: Final[tuple[Action, ...]] = (
    *iam.ACTIONS,
    *oidc_signin.ACTIONS,
    *policies.ACTIONS,
    *signin.ACTIONS,
    *access.ACTIONS,
    *keys.ACTIONS,
)
