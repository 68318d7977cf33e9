"""Client side of authbridge: credentials profiles, the token cache, HTTP to the issuer.

Modules, cheapest first (``authbridge token`` runs before every kubectl request):

* :mod:`.fastpath` - the rules of a cached token (cache key and file checks,
  ``KUBERNETES_EXEC_INFO``, the ExecCredential), standard library only: the
  console script answers a plain cache hit with it before click loads;
* :mod:`.errors` - CredentialsError, IssuerError, IssuerRefused;
* :mod:`.exec_credential` - the kubectl ExecCredential and ``KUBERNETES_EXEC_INFO``;
* :mod:`.credentials` - the ``~/.authbridge/credentials`` file (strict INI profiles);
* :mod:`.config` - flags > environment > profile, and the local checks on values;
* :mod:`.cache` - ``~/.kube/cache/authbridge/``, trusted only when it is exactly ours;
* :mod:`.session` - a signed-in profile's session file beside the cache, its refresh lock;
* :mod:`.loopback` - ``authbridge login``'s one-shot receiver on 127.0.0.1 (RFC 8252);
* :mod:`.issuer` - ``POST /oauth2/token`` over verified TLS (urllib, ssl: minting only);
* :mod:`.signin` - the public client ``authbridge-cli``: device code, authorization
  code + PKCE, refresh, revocation (over :mod:`.issuer`);
* :mod:`.break_glass` - ``token --local``: sign with ``keys/`` (store, keys, tokens).

The first eight import only the standard library; nothing here imports click.
"""
