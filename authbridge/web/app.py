"""The Flask app factory: ``create_app(settings, *, store, keys, clock, mapping)``.

Blueprints, one per surface: ``oidc`` (discovery, JWKS), ``oauth`` (token,
introspection, revocation), ``api`` (the admin API, ``/api/…``), ``webhook``
(``/authenticate``, TokenReview), ``verify`` (``/verify``), ``health`` (probes),
``metrics`` (``/metrics``), ``signin`` (the sign-in pages: ``/login``, ``/device``,
``/oauth2/authorize``; :mod:`authbridge.web.signin`), ``mutate`` (``/mutate/pods``, the
pod admission webhook). Every store, key and mapping access goes through the injected
objects; there are no module globals (the Prometheus metrics excepted:
:mod:`authbridge.web.metrics`). The store is wrapped in a
:class:`~authbridge.web.metrics.TimedStore`; audit lines go to the injected
:class:`~authbridge.audit.AuditLog`, by default one for ``settings.audit_log``. Each
request takes the current key set from the :class:`~authbridge.keys.KeyRing`, which
looks at ``keys/`` at most once a second and reloads it when it changed (with
``keySource: store``, a thread of the worker reloads it from the store every
``keyRefreshSeconds`` instead), so every worker of every replica picks up a rotation by
itself; the mapping file is followed the same way by a
:class:`~authbridge.mapping.holder.MappingHolder`.

When the issuer URL has a path (``https://host/auth``) the OIDC and OAuth
endpoints are served under that path, as the discovery document names them,
and also at the root (for a proxy that strips the prefix); discovery is
additionally served at the RFC 8414 §3.1 form
``/.well-known/openid-configuration/auth``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from authbridge.admin.authorize import Authorizer, StorePolicies
from authbridge.audit import EXTENSION as AUDIT_EXTENSION
from authbridge.audit import AuditLog
from authbridge.errors import ConfigError
from authbridge.keys import KeyRing
from authbridge.mapping.holder import MappingHolder
from authbridge.oidc_upstream import UpstreamKeys
from authbridge.settings import Settings
from authbridge.store.base import Store
from authbridge.sts import IssuerPolicy
from authbridge.web import (
    api,
    context,
    errors,
    health,
    limits,
    metrics,
    mutate,
    oauth,
    oidc,
    signin,
    verify,
    webhook,
)


def create_app(
    settings: Settings,
    *,
    store: Store,
    keys: KeyRing,
    clock: Callable[[], float] = time.time,
    mapping: MappingHolder | None = None,
    audit: AuditLog | None = None,
    authorizer: Authorizer | None = None,
    upstream: UpstreamKeys | None = None,
    service_accounts: mutate.ServiceAccounts | None = None,
) -> Flask:
    """Build the issuer's Flask app over an open store, a key ring and the mapping.

    Without ``mapping``, the app follows ``settings.mapping_file`` itself;
    without ``authorizer``, the admin API evaluates the callers' IAM policies
    from the store (:class:`~authbridge.admin.authorize.StorePolicies`); without
    ``upstream``, registered OIDC providers' keys are fetched by an
    :class:`~authbridge.oidc_upstream.UpstreamKeys` of its own, counted in
    :func:`~authbridge.web.metrics.observe_oidc_fetch`; ``service_accounts`` is what
    ``POST /mutate/pods`` reads ServiceAccount annotations with (without it, pods are
    admitted unchanged with a warning).
    """
    try:
        prefix = context.issuer_path(settings.issuer)
    except ValueError as e:
        raise ConfigError(f"issuer {settings.issuer}: {e}") from e

    app = Flask("authbridge")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it
    svc = context.Services(
        settings=settings,
        policy=IssuerPolicy.from_settings(settings),
        store=metrics.instrument_store(store),
        keyring=keys,
        clock=clock,
        mapping=mapping if mapping is not None else MappingHolder(settings.mapping_file),
        upstream=upstream
        if upstream is not None
        else UpstreamKeys(observe=metrics.observe_oidc_fetch),
    )
    context.install(app, svc)
    metrics.initialize_series()
    metrics.observe_mapping(svc.mapping)  # counts the load at start
    app.extensions[AUDIT_EXTENSION] = audit if audit is not None else AuditLog(settings.audit_log)
    limits.install(app, settings)  # body cap (maxRequestBytes), failed-authentication limits
    oauth.install(app, svc)
    webhook.install(app, svc)
    api.install(app, authorizer if authorizer is not None else StorePolicies(svc.store))
    errors.register(app)

    for bp in (oidc.bp, oauth.bp, api.bp, signin.bp):
        app.register_blueprint(bp)
        if prefix:
            app.register_blueprint(bp, url_prefix=prefix, name=f"{bp.name}_under_issuer_path")
    if prefix:
        app.add_url_rule(
            oidc.DISCOVERY_PATH + prefix,
            endpoint="oidc_discovery_rfc8414",
            view_func=oidc.discovery,
        )
    app.register_blueprint(webhook.bp)
    app.extensions[mutate.EXTENSION] = service_accounts
    app.register_blueprint(mutate.bp)
    app.register_blueprint(verify.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    webhook.install_fast_path(app)  # POST /authenticate without Flask's request machinery
    return app
