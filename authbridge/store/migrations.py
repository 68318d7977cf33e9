"""Versioned schema migrations, one list for both backends.

A migration is (version, name, statements). Statements are written in the SQL
both SQLite and PostgreSQL accept (TEXT, BIGINT, INTEGER, CHECK, foreign keys);
where they must differ, a statement is a mapping of dialect to SQL. Versions
only ever grow; an applied migration is never edited, a change is a new one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Statement = str | Mapping[str, str]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Sequence[Statement]

    def sql_for(self, dialect: str) -> list[str]:
        out: list[str] = []
        for stmt in self.statements:
            if isinstance(stmt, str):
                out.append(stmt)
            elif dialect in stmt:
                out.append(stmt[dialect])
        return out


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "iam entities, access keys, revoked tokens",
        (
            """CREATE TABLE iam_accounts (
                account_id TEXT PRIMARY KEY,
                alias TEXT,
                created_at BIGINT NOT NULL
            )""",
            """CREATE TABLE iam_users (
                user_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                path TEXT NOT NULL,
                enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
                tags TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                UNIQUE (account_id, name_key)
            )""",
            """CREATE TABLE iam_groups (
                group_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                path TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                UNIQUE (account_id, name_key)
            )""",
            """CREATE TABLE iam_group_members (
                group_id TEXT NOT NULL REFERENCES iam_groups(group_id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES iam_users(user_id) ON DELETE CASCADE,
                PRIMARY KEY (group_id, user_id)
            )""",
            "CREATE INDEX iam_group_members_user ON iam_group_members(user_id)",
            """CREATE TABLE iam_roles (
                role_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                path TEXT NOT NULL,
                max_session_duration INTEGER NOT NULL
                    CHECK (max_session_duration BETWEEN 900 AND 43200),
                description TEXT NOT NULL DEFAULT '',
                created_at BIGINT NOT NULL,
                UNIQUE (account_id, name_key)
            )""",
            """CREATE TABLE iam_role_trust (
                role_id TEXT NOT NULL REFERENCES iam_roles(role_id) ON DELETE CASCADE,
                kind TEXT NOT NULL CHECK (kind IN ('user', 'group', 'root')),
                principal_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                PRIMARY KEY (role_id, kind, principal_id)
            )""",
            """CREATE TABLE iam_access_keys (
                access_key_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES iam_users(user_id),
                secret_hash TEXT NOT NULL,
                pepper_id TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
                created_at BIGINT NOT NULL,
                last_used_at BIGINT
            )""",
            "CREATE INDEX iam_access_keys_user ON iam_access_keys(user_id)",
            """CREATE TABLE revoked_tokens (
                jti TEXT PRIMARY KEY,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT NOT NULL
            )""",
            "CREATE INDEX revoked_tokens_expires ON revoked_tokens(expires_at)",
        ),
    ),
    Migration(
        2,
        "signing keys (private keys sealed under a KEK that is never stored)",
        (
            # sealed_private_key: AES-256-GCM of the PKCS#8 DER key, base64url text
            # (authbridge.keys.Kek.seal); kek_id names the KEK, never reveals it.
            """CREATE TABLE signing_keys (
                kid TEXT PRIMARY KEY,
                alg TEXT NOT NULL CHECK (alg IN ('RS256', 'ES256')),
                public_jwk TEXT NOT NULL,
                sealed_private_key TEXT NOT NULL,
                kek_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                activates_at BIGINT NOT NULL,
                retired_at BIGINT,
                revoked_at BIGINT,
                revocation_reason TEXT,
                CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
            )""",
        ),
    ),
    Migration(
        3,
        "access entries, their policy associations, cluster authentication modes",
        (
            # principal_id is the unique id (AIDA.../AROA...) the entry is bound to;
            # arn_key (the lowercased account, kind and name) finds it by ARN, so an
            # entry whose principal was deleted and re-created is still found, and
            # must be deleted before the new principal gets one.
            """CREATE TABLE access_entries (
                cluster_id TEXT NOT NULL,
                principal_id TEXT NOT NULL,
                principal_arn TEXT NOT NULL,
                arn_key TEXT NOT NULL,
                username TEXT,
                groups_json TEXT NOT NULL DEFAULT '[]',
                entry_type TEXT NOT NULL CHECK (entry_type IN ('STANDARD')),
                created_at BIGINT NOT NULL,
                modified_at BIGINT NOT NULL,
                PRIMARY KEY (cluster_id, principal_id),
                UNIQUE (cluster_id, arn_key)
            )""",
            """CREATE TABLE access_policy_associations (
                cluster_id TEXT NOT NULL,
                principal_id TEXT NOT NULL,
                policy TEXT NOT NULL,
                scope TEXT NOT NULL CHECK (scope IN ('cluster', 'namespace')),
                namespaces_json TEXT NOT NULL DEFAULT '[]',
                associated_at BIGINT NOT NULL,
                modified_at BIGINT NOT NULL,
                PRIMARY KEY (cluster_id, principal_id, policy),
                FOREIGN KEY (cluster_id, principal_id)
                    REFERENCES access_entries(cluster_id, principal_id) ON DELETE CASCADE
            )""",
            """CREATE TABLE access_clusters (
                cluster_id TEXT PRIMARY KEY,
                authentication_mode TEXT NOT NULL
                    CHECK (authentication_mode IN ('CONFIG_MAP', 'API_AND_CONFIG_MAP', 'API'))
            )""",
            # One row: bumped in the transaction of every change above, so a reader
            # knows with one cheap read whether what it cached is stale.
            """CREATE TABLE access_version (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                version BIGINT NOT NULL
            )""",
            "INSERT INTO access_version (id, version) VALUES (1, 0)",
        ),
    ),
    Migration(
        4,
        "IAM policies: managed policies and versions, inline policies, attachments, role tags",
        (
            # policy_id is the PolicyId (ANPA...), never reused; names are unique per
            # account case-insensitively, whatever the path. next_version numbers the
            # next version: AWS never reuses a deleted version's id.
            """CREATE TABLE iam_policies (
                policy_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                path TEXT NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                default_version INTEGER NOT NULL,
                next_version INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                UNIQUE (account_id, name_key)
            )""",
            # document: the JSON the caller gave, compacted (key order kept), checked
            # by authbridge.iam.policy.parse_policy before it was written.
            """CREATE TABLE iam_policy_versions (
                policy_id TEXT NOT NULL REFERENCES iam_policies(policy_id) ON DELETE CASCADE,
                version INTEGER NOT NULL CHECK (version >= 1),
                document TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (policy_id, version)
            )""",
            # principal_id is the unique id (AIDA.../AGPA.../AROA...) of the user, group
            # or role: a namesake created after a delete starts with nothing.
            """CREATE TABLE iam_inline_policies (
                principal_id TEXT NOT NULL,
                principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'group', 'role')),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                document TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (principal_id, name_key)
            )""",
            # policy_ref: a customer managed policy's policy_id, or 'aws:<Name>' for a
            # shipped AWS managed policy (authbridge.iam.policy.AWS_MANAGED_POLICIES).
            """CREATE TABLE iam_policy_attachments (
                principal_id TEXT NOT NULL,
                principal_kind TEXT NOT NULL CHECK (principal_kind IN ('user', 'group', 'role')),
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                policy_ref TEXT NOT NULL,
                attached_at BIGINT NOT NULL,
                PRIMARY KEY (principal_id, policy_ref)
            )""",
            "CREATE INDEX iam_policy_attachments_policy ON iam_policy_attachments(policy_ref)",
            "ALTER TABLE iam_roles ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'",
        ),
    ),
    Migration(
        5,
        "sign-in: login profiles, password history and policy, virtual MFA, failure counters",
        (
            # password_hash: an argon2id PHC string (its parameters inside it).
            """CREATE TABLE iam_login_profiles (
                user_id TEXT PRIMARY KEY REFERENCES iam_users(user_id),
                password_hash TEXT NOT NULL,
                password_reset_required INTEGER NOT NULL DEFAULT 0
                    CHECK (password_reset_required IN (0, 1)),
                created_at BIGINT NOT NULL,
                password_changed_at BIGINT NOT NULL
            )""",
            # The hashes of the user's last passwords, newest the highest seq, for
            # PasswordReusePrevention (at most 24 kept).
            """CREATE TABLE iam_password_history (
                user_id TEXT NOT NULL REFERENCES iam_users(user_id),
                seq INTEGER NOT NULL,
                password_hash TEXT NOT NULL,
                changed_at BIGINT NOT NULL,
                PRIMARY KEY (user_id, seq)
            )""",
            # policy: the JSON of the AWS names (authbridge.iam.passwords.PasswordPolicy).
            """CREATE TABLE iam_password_policies (
                account_id TEXT PRIMARY KEY REFERENCES iam_accounts(account_id),
                policy TEXT NOT NULL,
                updated_at BIGINT NOT NULL
            )""",
            # sealed_secret: AES-256-GCM of the TOTP secret under a key derived from the
            # access-key pepper (seal_id names it), the serial as associated data.
            # user_id and enabled_at are set together while the device is enabled;
            # last_used_step makes each code single-use; drift_steps is the device
            # clock's offset found by resync-mfa-device.
            """CREATE TABLE iam_mfa_devices (
                serial_number TEXT PRIMARY KEY,
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                name TEXT NOT NULL,
                name_key TEXT NOT NULL,
                sealed_secret TEXT NOT NULL,
                seal_id TEXT NOT NULL,
                user_id TEXT REFERENCES iam_users(user_id),
                enabled_at BIGINT,
                last_used_step BIGINT,
                drift_steps INTEGER NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                UNIQUE (account_id, name_key),
                CHECK ((user_id IS NULL) = (enabled_at IS NULL))
            )""",
            "CREATE INDEX iam_mfa_devices_user ON iam_mfa_devices(user_id)",
            # Failed sign-ins per (user, address) pair, per user and per address
            # (authbridge.iam.login); subject keys lowercased names, never unique ids.
            """CREATE TABLE signin_failures (
                scope TEXT NOT NULL CHECK (scope IN ('pair', 'user', 'address')),
                subject TEXT NOT NULL,
                failures INTEGER NOT NULL,
                last_failure_at BIGINT NOT NULL,
                PRIMARY KEY (scope, subject)
            )""",
            """CREATE TABLE signin_known_addresses (
                user_id TEXT NOT NULL REFERENCES iam_users(user_id),
                address TEXT NOT NULL,
                last_success_at BIGINT NOT NULL,
                PRIMARY KEY (user_id, address)
            )""",
        ),
    ),
    Migration(
        6,
        "sign-in sessions: device codes, authorization codes, refresh tokens, browser sessions",
        (
            # A sign-in session (authbridge.iam.sessions): kind 'cli' (a refresh token
            # family) or 'browser' (secret_hash: the cookie's digest). expires_at is the
            # absolute end, idle_seconds the idle timeout, both fixed when it starts;
            # ended_at/end_reason once it is ended (logout, revoke-sessions, reuse, ...).
            """CREATE TABLE signin_sessions (
                session_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES iam_users(user_id),
                kind TEXT NOT NULL CHECK (kind IN ('cli', 'browser')),
                client_id TEXT NOT NULL,
                mfa INTEGER NOT NULL CHECK (mfa IN (0, 1)),
                secret_hash TEXT UNIQUE,
                address TEXT,
                created_at BIGINT NOT NULL,
                last_used_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                idle_seconds INTEGER NOT NULL,
                ended_at BIGINT,
                end_reason TEXT,
                CHECK ((ended_at IS NULL) = (end_reason IS NULL)),
                CHECK ((kind = 'browser') = (secret_hash IS NOT NULL))
            )""",
            "CREATE INDEX signin_sessions_user ON signin_sessions(user_id)",
            "CREATE INDEX signin_sessions_expires ON signin_sessions(expires_at)",
            # Every refresh token a session was given (digests); all but the newest have
            # rotated_at set, and presenting one of those ends the session.
            """CREATE TABLE signin_refresh_tokens (
                token_hash TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES signin_sessions(session_id),
                issued_at BIGINT NOT NULL,
                rotated_at BIGINT
            )""",
            "CREATE INDEX signin_refresh_tokens_session ON signin_refresh_tokens(session_id)",
            # session_id: the session its one redemption made (ended if it is presented again).
            """CREATE TABLE signin_authorization_codes (
                code_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                redirect_uri TEXT NOT NULL,
                code_challenge TEXT NOT NULL,
                scope TEXT NOT NULL,
                user_id TEXT NOT NULL REFERENCES iam_users(user_id),
                mfa INTEGER NOT NULL CHECK (mfa IN (0, 1)),
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                redeemed_at BIGINT,
                session_id TEXT
            )""",
            "CREATE INDEX signin_authorization_codes_expires"
            " ON signin_authorization_codes(expires_at)",
            # RFC 8628: user_code normalised (8 letters); user_id once approved.
            """CREATE TABLE signin_device_codes (
                device_hash TEXT PRIMARY KEY,
                user_code TEXT NOT NULL UNIQUE,
                client_id TEXT NOT NULL,
                scope TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                interval_seconds INTEGER NOT NULL,
                last_poll_at BIGINT,
                status TEXT NOT NULL
                    CHECK (status IN ('pending', 'approved', 'denied', 'redeemed')),
                user_id TEXT REFERENCES iam_users(user_id),
                mfa INTEGER NOT NULL DEFAULT 0 CHECK (mfa IN (0, 1)),
                decided_at BIGINT,
                session_id TEXT
            )""",
            "CREATE INDEX signin_device_codes_expires ON signin_device_codes(expires_at)",
        ),
    ),
    Migration(
        7,
        "sign-in pages: the server-side state of a browser's sign-in flow",
        (
            # flow_hash: SHA-256 of the flow cookie's value (the value itself is never
            # stored); state: JSON (authbridge.web.signin.flows), a pending authorize
            # request, a half-done sign-in, a device code being approved; purged once
            # expired.
            """CREATE TABLE signin_flows (
                flow_hash TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                expires_at BIGINT NOT NULL
            )""",
            "CREATE INDEX signin_flows_expiry ON signin_flows(expires_at)",
        ),
    ),
    Migration(
        8,
        "web identity: OIDC providers, role trust policy documents",
        (
            # provider_key: host[:port]/path of the URL (authbridge.iam.oidc_provider),
            # the ARN's resource; url: the issuer exactly as a token's iss must read.
            # client_ids: a JSON list; ca_bundle: PEM certificates (no key), or NULL
            # for the system's CAs.
            """CREATE TABLE iam_oidc_providers (
                account_id TEXT NOT NULL REFERENCES iam_accounts(account_id),
                provider_key TEXT NOT NULL,
                url TEXT NOT NULL,
                client_ids TEXT NOT NULL DEFAULT '[]',
                ca_bundle TEXT,
                tags TEXT NOT NULL DEFAULT '{}',
                created_at BIGINT NOT NULL,
                PRIMARY KEY (account_id, provider_key)
            )""",
            # The role's trust policy (authbridge.iam.trust) with its AWS principals as
            # unique ids, compact JSON; NULL for a role made before: its iam_role_trust
            # rows are its whole trust (read as authbridge.iam.trust.legacy_policy).
            # Either way iam_role_trust holds every AWS principal the trust names.
            "ALTER TABLE iam_roles ADD COLUMN trust_document TEXT",
        ),
    ),
    Migration(
        9,
        "upstream sign-in: sign-in configuration of OIDC providers, federated session subjects",
        (
            # A provider's sign-in configuration (authbridge.iam.oidc_signin); deleted with
            # the provider. scopes: a JSON list; sealed_secret: the client secret sealed
            # with the KEK (kek_id names it), the provider ARN as associated data; both
            # NULL for a public client (PKCE without a secret).
            """CREATE TABLE iam_oidc_signin (
                account_id TEXT NOT NULL,
                provider_key TEXT NOT NULL,
                display_name TEXT NOT NULL,
                client_id TEXT NOT NULL,
                scopes TEXT NOT NULL,
                sealed_secret TEXT,
                kek_id TEXT,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (account_id, provider_key),
                FOREIGN KEY (account_id, provider_key)
                    REFERENCES iam_oidc_providers(account_id, provider_key) ON DELETE CASCADE,
                CHECK ((sealed_secret IS NULL) = (kek_id IS NULL))
            )""",
            # Who a federated sign-in is: the provider, the ID token's sub, the role picked
            # (its unique id too: a namesake made after a delete is another role), the
            # role session name, and the ID token's claims (JSON) the trust is re-checked
            # against at every grant.
            """CREATE TABLE signin_federated_subjects (
                subject_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                provider_arn TEXT NOT NULL,
                sub TEXT NOT NULL,
                role_arn TEXT NOT NULL,
                role_id TEXT NOT NULL,
                session_name TEXT NOT NULL,
                claims TEXT NOT NULL CHECK (length(claims) <= 16384),
                created_at BIGINT NOT NULL
            )""",
            "CREATE INDEX signin_federated_subjects_role ON signin_federated_subjects(role_id)",
            # Sessions, authorization codes and device approvals are a user's or a
            # federated subject's, exactly one of the two (a device code waiting for
            # approval has neither). SQLite cannot change a column's NOT NULL nor add
            # a CHECK: its two tables are rebuilt, rows, indexes and the refresh
            # tokens' foreign key kept (the child is rebuilt first so that no row is
            # ever without its parent).
            {
                "postgresql": "ALTER TABLE signin_sessions ADD COLUMN federated_id TEXT"
                " REFERENCES signin_federated_subjects(subject_id)",
                "sqlite": """CREATE TABLE signin_sessions_v9 (
                session_id TEXT PRIMARY KEY,
                user_id TEXT REFERENCES iam_users(user_id),
                federated_id TEXT REFERENCES signin_federated_subjects(subject_id),
                kind TEXT NOT NULL CHECK (kind IN ('cli', 'browser')),
                client_id TEXT NOT NULL,
                mfa INTEGER NOT NULL CHECK (mfa IN (0, 1)),
                secret_hash TEXT UNIQUE,
                address TEXT,
                created_at BIGINT NOT NULL,
                last_used_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                idle_seconds INTEGER NOT NULL,
                ended_at BIGINT,
                end_reason TEXT,
                CHECK ((ended_at IS NULL) = (end_reason IS NULL)),
                CHECK ((kind = 'browser') = (secret_hash IS NOT NULL)),
                CHECK ((user_id IS NULL) <> (federated_id IS NULL))
            )""",
            },
            {
                "postgresql": "ALTER TABLE signin_sessions ALTER COLUMN user_id DROP NOT NULL",
                "sqlite": "INSERT INTO signin_sessions_v9 (session_id, user_id, kind, client_id,"
                " mfa, secret_hash, address, created_at, last_used_at, expires_at, idle_seconds,"
                " ended_at, end_reason) SELECT session_id, user_id, kind, client_id, mfa,"
                " secret_hash, address, created_at, last_used_at, expires_at, idle_seconds,"
                " ended_at, end_reason FROM signin_sessions",
            },
            {
                "postgresql": "ALTER TABLE signin_sessions ADD CONSTRAINT signin_sessions_subject"
                " CHECK ((user_id IS NULL) <> (federated_id IS NULL))",
                "sqlite": """CREATE TABLE signin_refresh_tokens_v9 (
                token_hash TEXT PRIMARY KEY,
                session_id TEXT NOT NULL REFERENCES signin_sessions_v9(session_id),
                issued_at BIGINT NOT NULL,
                rotated_at BIGINT
            )""",
            },
            {
                "sqlite": "INSERT INTO signin_refresh_tokens_v9 (token_hash, session_id,"
                " issued_at, rotated_at) SELECT token_hash, session_id, issued_at, rotated_at"
                " FROM signin_refresh_tokens",
            },
            {"sqlite": "DROP TABLE signin_refresh_tokens"},
            {"sqlite": "DROP TABLE signin_sessions"},
            # Renaming rewrites the refresh tokens' reference to the new name.
            {"sqlite": "ALTER TABLE signin_sessions_v9 RENAME TO signin_sessions"},
            {"sqlite": "ALTER TABLE signin_refresh_tokens_v9 RENAME TO signin_refresh_tokens"},
            {"sqlite": "CREATE INDEX signin_sessions_user ON signin_sessions(user_id)"},
            {"sqlite": "CREATE INDEX signin_sessions_expires ON signin_sessions(expires_at)"},
            {
                "sqlite": "CREATE INDEX signin_refresh_tokens_session"
                " ON signin_refresh_tokens(session_id)"
            },
            "CREATE INDEX signin_sessions_federated ON signin_sessions(federated_id)",
            {
                "postgresql": "ALTER TABLE signin_authorization_codes ADD COLUMN federated_id"
                " TEXT REFERENCES signin_federated_subjects(subject_id)",
                "sqlite": """CREATE TABLE signin_authorization_codes_v9 (
                code_hash TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                redirect_uri TEXT NOT NULL,
                code_challenge TEXT NOT NULL,
                scope TEXT NOT NULL,
                user_id TEXT REFERENCES iam_users(user_id),
                federated_id TEXT REFERENCES signin_federated_subjects(subject_id),
                mfa INTEGER NOT NULL CHECK (mfa IN (0, 1)),
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                redeemed_at BIGINT,
                session_id TEXT,
                CHECK ((user_id IS NULL) <> (federated_id IS NULL))
            )""",
            },
            {
                "postgresql": "ALTER TABLE signin_authorization_codes"
                " ALTER COLUMN user_id DROP NOT NULL",
                "sqlite": "INSERT INTO signin_authorization_codes_v9 (code_hash, client_id,"
                " redirect_uri, code_challenge, scope, user_id, mfa, created_at, expires_at,"
                " redeemed_at, session_id) SELECT code_hash, client_id, redirect_uri,"
                " code_challenge, scope, user_id, mfa, created_at, expires_at, redeemed_at,"
                " session_id FROM signin_authorization_codes",
            },
            {
                "postgresql": "ALTER TABLE signin_authorization_codes ADD CONSTRAINT"
                " signin_authorization_codes_subject"
                " CHECK ((user_id IS NULL) <> (federated_id IS NULL))",
                "sqlite": "DROP TABLE signin_authorization_codes",
            },
            {
                "sqlite": "ALTER TABLE signin_authorization_codes_v9"
                " RENAME TO signin_authorization_codes"
            },
            {
                "sqlite": "CREATE INDEX signin_authorization_codes_expires"
                " ON signin_authorization_codes(expires_at)"
            },
            # A device code: approved by a user or a federated subject, never both. SQLite
            # can add this column with its reference and CHECK (NULL in every old row).
            {
                "postgresql": "ALTER TABLE signin_device_codes ADD COLUMN federated_id TEXT"
                " REFERENCES signin_federated_subjects(subject_id)",
                "sqlite": "ALTER TABLE signin_device_codes ADD COLUMN federated_id TEXT"
                " REFERENCES signin_federated_subjects(subject_id)"
                " CHECK (user_id IS NULL OR federated_id IS NULL)",
            },
            {
                "postgresql": "ALTER TABLE signin_device_codes ADD CONSTRAINT"
                " signin_device_codes_subject CHECK (user_id IS NULL OR federated_id IS NULL)",
            },
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
