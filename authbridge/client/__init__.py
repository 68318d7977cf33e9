"""Client side of authbridge: credentials profiles, the token cache, HTTP to the issuer.

Modules, cheapest first (``authbridge token`` runs before every kubectl request):

* :mod:`.errors` - CredentialsError, IssuerError, IssuerRefused;
* :mod:`.exec_credential` - the kubectl ExecCredential and ``KUBERNETES_EXEC_INFO``;
* :mod:`.credentials` - the ``~/.authbridge/credentials`` file (strict INI profiles);
* :mod:`.config` - flags > environment > profile, and the local checks on values;
* :mod:`.cache` - ``~/.kube/cache/authbridge/``, trusted only when it is exactly ours;
* :mod:`.issuer` - ``POST /oauth2/token`` over verified TLS (urllib, ssl: minting only);
* :mod:`.break_glass` - ``token --local``: sign with ``keys/`` (store, keys, tokens).

The first five import only the standard library; nothing here imports click.
"""
