"""OIDC identity providers over SQL (IAM ``…OpenIDConnectProvider`` actions).

Mixed into :class:`authbridge.store.sql.SqlStore`, so both backends share it
and ``tests/test_store_oidc.py`` runs it on each. Values and the rules of URLs,
client ids and CA bundles are :mod:`authbridge.iam.oidc_provider`'s, checked
before a transaction starts. As IAM:

* a provider is identified by its URL (``host[:port]/path``), unique per
  account (``EntityAlreadyExists``), at most
  :data:`~authbridge.iam.oidc_provider.MAX_PROVIDERS_PER_ACCOUNT` per account
  (``LimitExceeded``);
* adding a client id that is already there, or removing one that is not,
  changes nothing and is no error;
* deleting a provider leaves the trust policies that name it as they are:
  they trust nobody until a provider of that URL is registered again;
* a provider's sign-in configuration (:mod:`authbridge.iam.oidc_signin`,
  migration 9) is one row beside it, deleted with it (a foreign key with
  ``ON DELETE CASCADE``); its client secret arrives sealed (the KEK never
  reaches the store) and is returned sealed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from authbridge.errors import DeleteConflict, EntityAlreadyExists, LimitExceeded, NoSuchEntity
from authbridge.iam import names, oidc_provider
from authbridge.iam.oidc_provider import OidcProvider
from authbridge.iam.oidc_signin import SignInConfig

if TYPE_CHECKING:
    from authbridge.iam.model import Account
    from authbridge.store.sql import Cursor, Driver, Row

_COLS: Final = "account_id, provider_key, url, client_ids, ca_bundle, tags, created_at"
_SIGNIN_COLS: Final = (
    "account_id, provider_key, display_name, client_id, scopes, sealed_secret, kek_id, updated_at"
)


class SqlOidc:
    """The OIDC-provider part of the store protocol (:mod:`authbridge.store.base`)."""

    if TYPE_CHECKING:
        _db: Driver
        partition: str

        def _tx(self, write: bool = False) -> AbstractContextManager[Cursor]: ...
        def _account(self, cur: Cursor, account_id: str) -> Account: ...
        def _insert(
            self, cur: Cursor, sql: str, params: Sequence[object], conflict: str
        ) -> None: ...

    def _provider(self, r: Row) -> OidcProvider:
        account_id, key, url, client_ids, ca_bundle, tags, created = r
        return OidcProvider(
            arn=oidc_provider.provider_arn(self.partition, account_id, key),
            account_id=account_id,
            url=url,
            key=key,
            client_ids=tuple(json.loads(client_ids)),
            created_at=datetime.fromtimestamp(created, UTC),
            ca_bundle=ca_bundle,
            tags=dict(json.loads(tags)),
        )

    def _provider_key(self, account_id: str, arn: str) -> str:
        """The key of ``arn``, which must be of this partition and account (else not found)."""
        parsed = oidc_provider.parse_provider_arn(arn)
        if parsed.partition != self.partition or parsed.account_id != account_id:
            raise NoSuchEntity(
                f"OIDC provider {parsed.arn} does not exist in account {account_id}",
                hint="list them with `authbridge iam list-open-id-connect-providers`",
            )
        return parsed.key

    def _provider_row(self, cur: Cursor, account_id: str, key: str, *, lock: bool = False) -> Row:
        self._account(cur, account_id)
        rows = cur.execute(
            f"SELECT {_COLS} FROM iam_oidc_providers WHERE account_id = ? AND provider_key = ?"
            + (self._db.lock_suffix if lock else ""),
            (account_id, key),
        )
        if not rows:
            raise NoSuchEntity(
                f"OIDC provider {oidc_provider.provider_arn(self.partition, account_id, key)}"
                f" does not exist in account {account_id}",
                hint="list them with `authbridge iam list-open-id-connect-providers`",
            )
        return rows[0]

    def create_open_id_connect_provider(
        self,
        account_id: str,
        url: str,
        client_ids: Sequence[str],
        *,
        ca_bundle: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> OidcProvider:
        parsed = oidc_provider.parse_url(url)
        ids = oidc_provider.parse_client_ids(client_ids)
        bundle = oidc_provider.parse_ca_bundle(ca_bundle) if ca_bundle is not None else None
        tag_map = dict(tags or {})
        names.tags(tag_map)
        arn = oidc_provider.provider_arn(self.partition, account_id, parsed.key)
        taken = f"OIDC provider {arn} already exists"
        with self._tx(write=True) as cur:
            self._account(cur, account_id)
            if cur.execute(
                "SELECT 1 FROM iam_oidc_providers WHERE account_id = ? AND provider_key = ?",
                (account_id, parsed.key),
            ):
                raise EntityAlreadyExists(
                    taken,
                    hint="add client ids with `iam add-client-id-to-open-id-connect-provider`",
                )
            count = cur.execute(
                "SELECT COUNT(*) FROM iam_oidc_providers WHERE account_id = ?", (account_id,)
            )[0][0]
            if int(count) >= oidc_provider.MAX_PROVIDERS_PER_ACCOUNT:
                raise LimitExceeded(
                    f"account {account_id} already has {count} OIDC providers, the most"
                    f" allowed is {oidc_provider.MAX_PROVIDERS_PER_ACCOUNT}",
                    hint="delete one you no longer use",
                )
            row = (
                account_id,
                parsed.key,
                parsed.url,
                json.dumps(list(ids)),
                bundle,
                json.dumps(tag_map, sort_keys=True),
                int(time.time()),
            )
            self._insert(
                cur,
                f"INSERT INTO iam_oidc_providers ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
                taken,
            )
            return self._provider(row)

    def get_open_id_connect_provider(self, account_id: str, arn: str) -> OidcProvider:
        key = self._provider_key(account_id, arn)
        with self._tx() as cur:
            return self._provider(self._provider_row(cur, account_id, key))

    def list_open_id_connect_providers(self, account_id: str) -> list[OidcProvider]:
        with self._tx() as cur:
            self._account(cur, account_id)
            rows = cur.execute(
                f"SELECT {_COLS} FROM iam_oidc_providers WHERE account_id = ?"
                " ORDER BY provider_key",
                (account_id,),
            )
            return [self._provider(r) for r in rows]

    def delete_open_id_connect_provider(self, account_id: str, arn: str) -> None:
        key = self._provider_key(account_id, arn)
        with self._tx(write=True) as cur:
            self._provider_row(cur, account_id, key, lock=True)
            cur.execute(
                "DELETE FROM iam_oidc_providers WHERE account_id = ? AND provider_key = ?",
                (account_id, key),
            )

    def _edit_client_ids(
        self, account_id: str, arn: str, client_id: str, *, add: bool
    ) -> OidcProvider:
        key = self._provider_key(account_id, arn)
        wanted = oidc_provider.parse_client_id(client_id)
        with self._tx(write=True) as cur:
            row = self._provider_row(cur, account_id, key, lock=True)
            ids = list(json.loads(row[3]))
            if add and wanted not in ids:
                if len(ids) >= oidc_provider.MAX_CLIENT_IDS:
                    raise LimitExceeded(
                        f"OIDC provider {arn} already has {len(ids)} client ids, the most"
                        f" allowed is {oidc_provider.MAX_CLIENT_IDS}",
                        hint="remove one with `iam remove-client-id-from-open-id-connect-provider`",
                    )
                ids.append(wanted)
            elif not add and wanted in ids:
                signin = cur.execute(
                    "SELECT 1 FROM iam_oidc_signin WHERE account_id = ? AND provider_key = ?"
                    " AND client_id = ?",
                    (account_id, key, wanted),
                )
                if signin:
                    raise DeleteConflict(
                        f"OIDC provider {arn} signs people in as client id {wanted}: the ID"
                        " tokens of its sign-in would all be refused without it",
                        hint="delete or change the sign-in first"
                        " (`iam delete-open-id-connect-provider-sign-in`)",
                    )
                ids.remove(wanted)
            else:
                return self._provider(row)
            cur.execute(
                "UPDATE iam_oidc_providers SET client_ids = ?"
                " WHERE account_id = ? AND provider_key = ?",
                (json.dumps(ids), account_id, key),
            )
            return self._provider((*row[:3], json.dumps(ids), *row[4:]))

    def add_client_id_to_open_id_connect_provider(
        self, account_id: str, arn: str, client_id: str
    ) -> OidcProvider:
        return self._edit_client_ids(account_id, arn, client_id, add=True)

    def remove_client_id_from_open_id_connect_provider(
        self, account_id: str, arn: str, client_id: str
    ) -> OidcProvider:
        return self._edit_client_ids(account_id, arn, client_id, add=False)

    def _provider_registered(self, cur: Cursor, account_id: str, key: str) -> bool:
        return bool(
            cur.execute(
                "SELECT 1 FROM iam_oidc_providers WHERE account_id = ? AND provider_key = ?",
                (account_id, key),
            )
        )

    # -- sign-in configuration (migration 9) ---------------------------------------------
    def _signin(self, r: Row) -> SignInConfig:
        account_id, key, display_name, client_id, scopes, sealed, kek_id, updated = r
        return SignInConfig(
            provider_arn=oidc_provider.provider_arn(self.partition, account_id, key),
            account_id=account_id,
            display_name=display_name,
            client_id=client_id,
            scopes=tuple(json.loads(scopes)),
            updated_at=int(updated),
            sealed_secret=sealed,
            kek_id=kek_id,
        )

    def put_open_id_connect_provider_sign_in(
        self,
        account_id: str,
        arn: str,
        *,
        display_name: str,
        client_id: str,
        scopes: Sequence[str],
        sealed_secret: str | None,
        kek_id: str | None,
        now: float,
    ) -> SignInConfig:
        """Create or replace the provider's sign-in configuration (values already checked)."""
        if (sealed_secret is None) != (kek_id is None):
            raise ValueError("a sealed secret comes with the id of the KEK that sealed it")
        key = self._provider_key(account_id, arn)
        with self._tx(write=True) as cur:
            self._provider_row(cur, account_id, key, lock=True)
            row = (
                account_id,
                key,
                display_name,
                client_id,
                json.dumps(list(scopes)),
                sealed_secret,
                kek_id,
                int(now),
            )
            cur.execute(
                "DELETE FROM iam_oidc_signin WHERE account_id = ? AND provider_key = ?",
                (account_id, key),
            )
            cur.execute(
                f"INSERT INTO iam_oidc_signin ({_SIGNIN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return self._signin(row)

    def get_open_id_connect_provider_sign_in(
        self, account_id: str, arn: str
    ) -> SignInConfig | None:
        """The provider's sign-in configuration, None if it has none; NoSuchEntity: no provider."""
        key = self._provider_key(account_id, arn)
        with self._tx() as cur:
            self._provider_row(cur, account_id, key)
            rows = cur.execute(
                f"SELECT {_SIGNIN_COLS} FROM iam_oidc_signin"
                " WHERE account_id = ? AND provider_key = ?",
                (account_id, key),
            )
            return self._signin(rows[0]) if rows else None

    def delete_open_id_connect_provider_sign_in(self, account_id: str, arn: str) -> None:
        key = self._provider_key(account_id, arn)
        with self._tx(write=True) as cur:
            self._provider_row(cur, account_id, key, lock=True)
            cur.execute(
                "DELETE FROM iam_oidc_signin WHERE account_id = ? AND provider_key = ?",
                (account_id, key),
            )
            if cur.rowcount != 1:
                raise NoSuchEntity(
                    f"OIDC provider {oidc_provider.provider_arn(self.partition, account_id, key)}"
                    " is not a sign-in provider",
                    hint="configure it: `authbridge iam update-open-id-connect-provider-sign-in`",
                )

    def list_sign_in_providers(self) -> list[tuple[OidcProvider, SignInConfig]]:
        """Every sign-in provider of every account (the login page's buttons), by account, key."""
        cols = ", ".join(f"p.{c.strip()}" for c in _COLS.split(","))
        scols = ", ".join(f"c.{c.strip()}" for c in _SIGNIN_COLS.split(","))
        with self._tx() as cur:
            rows = cur.execute(
                f"SELECT {cols}, {scols} FROM iam_oidc_signin c JOIN iam_oidc_providers p"
                " ON p.account_id = c.account_id AND p.provider_key = c.provider_key"
                " ORDER BY c.account_id, c.provider_key"
            )
            width = len(_COLS.split(","))
            return [(self._provider(r[:width]), self._signin(r[width:])) for r in rows]
