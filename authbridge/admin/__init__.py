"""The admin actions: every ``authbridge iam|access|keys`` verb as data, free of Flask and click.

:data:`SURFACES` maps each admin API endpoint (``/api/iam``, ``/api/access``,
``/api/keys``) to its actions by AWS name. The CLI calls the same handler
functions (:mod:`authbridge.admin.iam`, :mod:`~authbridge.admin.access`,
:mod:`~authbridge.admin.keys`), so both print and answer the same JSON.
"""

from __future__ import annotations

from typing import Final

from authbridge.admin import access, iam, keys
from authbridge.admin.actions import Action, Surface, registry

SURFACES: Final[dict[Surface, dict[str, Action]]] = {
    "iam": registry(iam.ACTIONS),
    "access": registry(access.ACTIONS),
    "keys": registry(keys.ACTIONS),
}
ALL_ACTIONS: Final[tuple[Action, ...]] = (*iam.ACTIONS, *access.ACTIONS, *keys.ACTIONS)
