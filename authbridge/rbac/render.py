"""Objects as multi-document YAML that ``kubectl apply -f -`` accepts.

Each object is one document (``---`` first), keys in the conventional order:
``apiVersion``, ``kind``, ``metadata`` (``name``, ``namespace``, ``labels``,
``annotations``), then the rest as the object has them (``roleRef``,
``subjects``). Fields the server owns are left out: ``status`` and every
metadata field but those four (``resourceVersion``, ``uid``,
``creationTimestamp``, ``managedFields`` …), so observed objects render as
cleanly as desired ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import yaml

from authbridge.rbac.model import KubeObject

__all__ = ["apply_manifest", "render_yaml"]

_FIRST: Final = ("apiVersion", "kind", "metadata")
_METADATA: Final = ("name", "namespace", "labels", "annotations")
_SERVER_OWNED: Final = frozenset({"status"})


def apply_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with only the fields a client sets, in the conventional key order."""
    out: dict[str, Any] = {k: manifest[k] for k in _FIRST if k in manifest}
    meta = manifest.get("metadata") or {}
    out["metadata"] = {k: meta[k] for k in _METADATA if meta.get(k) not in (None, "", {})}
    for key, value in manifest.items():
        if key not in _FIRST and key not in _SERVER_OWNED:
            out[key] = value
    return out


def render_yaml(objects: Iterable[KubeObject]) -> str:
    """The objects as YAML documents, each starting with ``---``; "" when there are none."""
    docs = [apply_manifest(o.manifest) for o in objects]
    if not docs:
        return ""
    return yaml.safe_dump_all(
        docs, explicit_start=True, sort_keys=False, default_flow_style=False, width=1 << 16
    )
