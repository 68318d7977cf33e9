"""The parts one app runs with, reachable from any view of that app (never a module global).

``create_app`` puts a :class:`Services` in ``app.extensions``; views reach it
through :func:`services`. Tests build apps with their own store, keys and clock,
and two apps in one process never share anything they were not given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from flask import Flask, current_app

from authbridge.keys import KeyRing, KeySet
from authbridge.mapping.holder import MappingHolder
from authbridge.oidc_upstream import UpstreamKeys
from authbridge.settings import Settings
from authbridge.store.base import Store
from authbridge.sts import IssuerPolicy

EXTENSION = "authbridge"

# Issuer paths become URL rules; keep them to unreserved characters (RFC 3986 §2.3).
_SAFE_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/")


@dataclass(frozen=True)
class Services:
    """Everything a request may need, injected by ``create_app``."""

    settings: Settings
    policy: IssuerPolicy
    store: Store
    keyring: KeyRing
    clock: Callable[[], float]  # wall-clock seconds since the epoch
    mapping: MappingHolder  # rbac/mapping.yaml, reloaded when it changes
    # The registered OIDC providers' keys (AssumeRoleWithWebIdentity), cached per provider.
    upstream: UpstreamKeys = field(default_factory=UpstreamKeys)

    @property
    def issuer_base(self) -> str:
        """The issuer without a trailing slash: endpoint URLs are this plus their path."""
        return self.policy.issuer.rstrip("/")

    def keys(self) -> KeySet:
        """The current key set; the ring reloads it when ``keys/`` changed on disk."""
        return self.keyring.current()

    def url(self, path: str) -> str:
        return self.issuer_base + path


def issuer_path(issuer: str) -> str:
    """The path part of the issuer URL without a trailing slash: ``""`` or e.g. ``/auth``."""
    path = urlsplit(issuer).path.rstrip("/")
    if not set(path) <= _SAFE_PATH_CHARS or "//" in path:
        raise ValueError(
            f"issuer path {path!r} must use only letters, digits and - . _ ~ / without empty"
            " segments"
        )
    return path


def install(app: Flask, svc: Services) -> None:
    app.extensions[EXTENSION] = svc


def services() -> Services:
    """The :class:`Services` of the app handling the current request."""
    svc = current_app.extensions.get(EXTENSION)
    if not isinstance(svc, Services):
        raise RuntimeError("the app was not built by authbridge.web.create_app")
    return svc
