"""The IAM store interface: one protocol, implemented by SQLite and PostgreSQL.

Semantics follow AWS IAM where it has an opinion:

* names of users, groups and roles are unique per account, case-insensitively;
* every entity gets an immutable unique id that is never reused, so a user
  deleted and re-created under the same ARN is a different principal;
* a role's trust list is stored by unique id: when a trusted user or group is
  deleted the entry stays, shown as the bare id, and trusts nobody new;
* deleting a user with access keys or group memberships, or a group with
  members, is a ``DeleteConflict`` unless ``force=True``;
* a user holds at most two access keys (``LimitExceeded``);
* IAM policies (:mod:`authbridge.iam.managed`): at most five versions per
  managed policy and ten attached policies per principal (``LimitExceeded``);
  the default version, a policy still attached, and a user, group or role
  still holding inline or attached policies cannot be deleted
  (``DeleteConflict``; ``force=True`` removes a principal's policies with
  it); inline policies and attachments are bound to the unique id;
* an access entry (:mod:`authbridge.iam.access`) is bound to its principal's
  unique id; every change to entries, their policies or a cluster's
  authentication mode bumps :meth:`Store.access_version` in the same
  transaction;
* sign-in (:mod:`authbridge.store.sql_signin`): one login profile per user,
  passwords checked by the account password policy (reuse included); virtual
  MFA devices enabled for one user with two consecutive codes; a user with a
  login profile or an MFA device cannot be deleted (``DeleteConflict``, unless
  ``force=True``);
* OIDC identity providers (:mod:`authbridge.store.sql_oidc`): one per URL per
  account; a role's trust policy (:mod:`authbridge.iam.trust`) is stored with
  its AWS principals as unique ids, and may name only registered providers.
* sign-in sessions (:mod:`authbridge.store.sql_sessions`): codes and refresh
  tokens are redeemed once (a second presentation of a redeemed code or a
  rotated refresh token ends the session); disabling a user ends its
  sessions, deleting it deletes them.

Every method is one transaction: it either happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from authbridge.iam.model import (
    AccessKey,
    AccessKeyStatus,
    Account,
    BootstrapAdmin,
    Group,
    NewAccessKey,
    Role,
    User,
)

if TYPE_CHECKING:
    from authbridge.iam.access import (
        AccessEntry,
        AccessImport,
        AccessSnapshot,
        AuthenticationMode,
        EntrySpec,
        PolicyAssociation,
    )
    from authbridge.iam.login import LoginFacts
    from authbridge.iam.managed import (
        AttachedPolicy,
        InlinePolicy,
        ManagedPolicy,
        PolicyVersion,
    )
    from authbridge.iam.oidc_provider import OidcProvider
    from authbridge.iam.oidc_signin import SignInConfig
    from authbridge.iam.passwords import PasswordHasher, PasswordPolicy
    from authbridge.iam.policy import SourcePolicy
    from authbridge.iam.sessions import (
        AuthorizationCodeRecord,
        BrowserRecord,
        DecideOutcome,
        DeviceRecord,
        EndReason,
        FederatedSubject,
        GrantResult,
        SessionLifetimes,
        SessionRecord,
    )
    from authbridge.iam.signin import LoginProfile, MfaDevice, NewVirtualMfaDevice
    from authbridge.keys import KeyEdit, KeyRecord

MAX_ACCESS_KEYS_PER_USER = 2

PrincipalRefusal = Literal[
    "principal_deleted",
    "user_disabled",
    "access_key_deleted",
    "access_key_inactive",
    "source_user_disabled",
    "source_deleted",
]


@dataclass(frozen=True)
class ReviewFacts:
    """Everything reviewing one verified token asks the store, read at one instant.

    ``revoked`` is :meth:`Store.is_token_revoked` of the token's ``jti`` and
    ``refusal`` is :meth:`Store.check_principal`'s answer, then the source's
    (:meth:`Store.review_facts`). When the principal id is the unique id of an
    existing IAM user, ``user_name`` is its name and ``group_arns`` the ARNs
    of its groups, in :meth:`Store.list_groups_for_user` order (by name,
    case-insensitively); otherwise ``None`` and ``()``. ``source_revoked``
    says whether the ``source_jti`` asked about is revoked, and
    ``source_user_name`` is the source user's name when it exists and is not
    the principal itself. ``access_version`` is :meth:`Store.access_version`.
    ``session_ended`` says whether the sign-in session asked about (a token's
    ``sid``) has ended: logged out, revoked, its user disabled or deleted.
    """

    revoked: bool
    refusal: PrincipalRefusal | None
    user_name: str | None = None
    group_arns: tuple[str, ...] = ()
    source_revoked: bool = False
    source_user_name: str | None = None
    # Store.access_version, read in the same statement: a cache tag, not a fact
    # about the principal, so equality leaves it out.
    access_version: int | None = field(default=None, compare=False)
    # The token names a sign-in session (``sid``) that has ended, or no longer exists.
    session_ended: bool = False


class Store(Protocol):
    """What the rest of authbridge may ask of the IAM store."""

    partition: str

    # -- lifecycle ---------------------------------------------------------------
    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version now in force."""
        ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...

    # -- accounts ----------------------------------------------------------------
    def create_account(self, account_id: str, alias: str | None = None) -> Account: ...

    def get_account(self, account_id: str) -> Account: ...

    def list_accounts(self) -> list[Account]: ...

    def bootstrap_admin(
        self,
        account_id: str,
        user_name: str,
        policy_arn: str,
        *,
        deliver: Callable[[BootstrapAdmin], None] | None = None,
    ) -> BootstrapAdmin | None:
        """On a store with no account: the account, a user with ``policy_arn`` attached
        and one access key, in one transaction; ``None`` (nothing written) otherwise.

        The check and the inserts run under a lock on the accounts table, so of
        several callers at once (replicas starting together) exactly one makes
        them and the others get ``None``. ``deliver`` runs before the commit,
        still under that lock: if it raises, nothing is written, and a caller
        can run the whole bootstrap again.
        """
        ...

    # -- users ---------------------------------------------------------------------
    def create_user(
        self,
        account_id: str,
        name: str,
        path: str = "/",
        tags: dict[str, str] | None = None,
    ) -> User: ...

    def get_user(self, account_id: str, name: str) -> User: ...

    def get_user_by_id(self, user_id: str) -> User: ...

    def list_users(self, account_id: str, path_prefix: str = "/") -> list[User]: ...

    def set_user_enabled(self, account_id: str, name: str, enabled: bool) -> User: ...

    def delete_user(self, account_id: str, name: str, *, force: bool = False) -> None: ...

    # -- groups --------------------------------------------------------------------
    def create_group(self, account_id: str, name: str, path: str = "/") -> Group: ...

    def get_group(self, account_id: str, name: str) -> Group: ...

    def list_groups(self, account_id: str, path_prefix: str = "/") -> list[Group]: ...

    def delete_group(self, account_id: str, name: str, *, force: bool = False) -> None: ...

    def add_user_to_group(self, account_id: str, group_name: str, user_name: str) -> None: ...

    def remove_user_from_group(self, account_id: str, group_name: str, user_name: str) -> None: ...

    def list_group_members(self, account_id: str, group_name: str) -> list[User]: ...

    def list_groups_for_user(self, account_id: str, user_name: str) -> list[Group]: ...

    # -- roles ---------------------------------------------------------------------
    def create_role(
        self,
        account_id: str,
        name: str,
        *,
        trust: Sequence[str] = (),
        trust_policy: str | Mapping[str, Any] | None = None,
        path: str = "/",
        max_session_duration: int = 3600,
        description: str = "",
    ) -> Role:
        """Create a role with a trust policy document, or trusting the principal ARNs given.

        ``trust`` (users, groups, account roots) is shorthand for the document
        :func:`authbridge.iam.trust.shorthand_document` writes; give one or the
        other. Each AWS principal must name an existing principal and each
        Federated one a provider registered in the account (``InvalidTrust``);
        the document is stored with the AWS principals as unique ids.
        """
        ...

    def get_role(self, account_id: str, name: str) -> Role: ...

    def get_role_by_id(self, role_id: str) -> Role: ...

    def list_roles(self, account_id: str, path_prefix: str = "/") -> list[Role]: ...

    def update_role_trust(self, account_id: str, name: str, trust: Sequence[str]) -> Role:
        """``update_assume_role_policy`` with the shorthand document of ``trust``."""
        ...

    def update_assume_role_policy(
        self, account_id: str, name: str, document: str | Mapping[str, Any]
    ) -> Role: ...

    def delete_role(self, account_id: str, name: str, *, force: bool = False) -> None: ...

    # -- access keys ---------------------------------------------------------------
    def create_access_key(self, account_id: str, user_name: str) -> NewAccessKey:
        """A new Active key; its secret exists only on the returned value."""
        ...

    def get_access_key(self, access_key_id: str) -> AccessKey: ...

    def list_access_keys(self, account_id: str, user_name: str) -> list[AccessKey]: ...

    def update_access_key(self, access_key_id: str, status: AccessKeyStatus) -> AccessKey: ...

    def delete_access_key(self, access_key_id: str) -> None: ...

    def authenticate_access_key(self, access_key_id: str, secret: str) -> tuple[AccessKey, User]:
        """Check a key id/secret pair in constant time and record its use.

        Raises ``InvalidCredentials`` for an unknown id, a wrong secret, an
        inactive key or a disabled user, with the same message for all four.
        """
        ...

    # -- token checks (the hook tokens.verify calls) --------------------------------
    def check_principal(
        self, principal_id: str, access_key_id: str | None = None
    ) -> PrincipalRefusal | None:
        """Why a token for this principal must be refused now, or None if it may pass.

        ``principal_id`` is a user id (``AIDA…``) or a role session
        (``AROA…:session``); a principal that no longer exists is refused.
        """
        ...

    def review_facts(
        self,
        jti: str,
        principal_id: str,
        access_key_id: str | None = None,
        *,
        source_identity: str | None = None,
        source_jti: str | None = None,
        session_id: str | None = None,
    ) -> ReviewFacts:
        """Revocation, principal and source status and the user's groups in one read.

        The same answers as ``is_token_revoked(jti)``, ``check_principal(
        principal_id, access_key_id)``, ``get_user_by_id(principal_id)`` and
        ``list_groups_for_user`` of that user, taken from one snapshot of the
        store (one statement; on PostgreSQL, one round trip), and the token's
        source (DESIGN.md, "Audiences"): ``source_identity`` (default: the
        principal itself) must be an enabled user (``source_user_disabled``,
        ``source_deleted``), or the role of a role session itself (a
        break-glass session, which has no other source); ``access_key_id``
        must be an active key of the source user (a role session with no user
        as its source has no key to check); ``source_jti`` revoked
        sets ``source_revoked``; ``session_id`` (a token's ``sid``) not naming a
        live sign-in session of the source user sets ``session_ended``. The
        principal's own refusal comes first.
        """
        ...

    # -- revocation ---------------------------------------------------------------
    def revoke_token(self, jti: str, expires_at: datetime) -> None: ...

    def is_token_revoked(self, jti: str) -> bool: ...

    def purge_revoked_tokens(self, now: datetime | None = None) -> int:
        """Forget revocations of tokens that have expired anyway; return how many."""
        ...

    # -- signing keys (rows for authbridge.keys.StoreKeys; sealed, opaque here) ------
    def list_signing_keys(self) -> list[KeyRecord]: ...

    def signing_keys_version(self) -> Hashable:
        """Changes whenever a key is added, retired or revoked; one cheap read."""
        ...

    def edit_signing_keys(
        self, edit: Callable[[list[KeyRecord]], KeyEdit], *, wait: bool = True
    ) -> KeyEdit | None:
        """Run ``edit`` on the rows read under the key lock; write its answer, or nothing.

        One transaction, so a crash leaves the whole change or none of it; with
        ``wait=False``, ``None`` at once when another process holds the lock.
        """
        ...

    # -- access entries (authbridge.iam.access) ------------------------------------
    def access_version(self) -> int:
        """Bumped by every change to access entries, policies and modes; one cheap read."""
        ...

    def access_snapshot(self, version: int | None = None) -> AccessSnapshot:
        """Every mode and entry; cached per store object while ``version`` is current."""
        ...

    def get_authentication_mode(self, cluster_id: str) -> AuthenticationMode:
        """The cluster's mode; ``API_AND_CONFIG_MAP`` when never set."""
        ...

    def set_authentication_mode(self, cluster_id: str, mode: str) -> AuthenticationMode: ...

    def create_access_entry(
        self,
        cluster_id: str,
        principal_arn: str,
        *,
        username: str | None = None,
        groups: Sequence[str] = (),
        entry_type: str = "STANDARD",
    ) -> AccessEntry:
        """An entry bound to the unique id of the existing user or role ``principal_arn``.

        The username and group templates must have been checked by the caller
        (:func:`authbridge.mapping.templates.template_problems`).
        """
        ...

    def get_access_entry(self, cluster_id: str, principal_arn: str) -> AccessEntry: ...

    def list_access_entries(self, cluster_id: str | None = None) -> list[AccessEntry]: ...

    def delete_access_entry(self, cluster_id: str, principal_arn: str) -> None:
        """Delete the entry and its policy associations."""
        ...

    def associate_access_policy(
        self,
        cluster_id: str,
        principal_arn: str,
        policy: str,
        *,
        scope: str,
        namespaces: Sequence[str] = (),
    ) -> PolicyAssociation: ...

    def disassociate_access_policy(
        self, cluster_id: str, principal_arn: str, policy: str
    ) -> None: ...

    def list_associated_access_policies(
        self, cluster_id: str | None = None, principal_arn: str | None = None
    ) -> list[PolicyAssociation]: ...

    def import_access_entries(
        self,
        cluster_id: str,
        entries: Sequence[EntrySpec],
        *,
        prune: bool = False,
        dry_run: bool = False,
    ) -> AccessImport:
        """Make the cluster's entries and their policies those of ``entries``, at once.

        One transaction: every entry is created, updated (username, groups,
        policies) or left as it is; with ``prune`` the cluster's other entries
        are deleted, else listed as kept. ``dry_run`` (and a change of nothing)
        rolls back, so the access version moves only on a real change. The
        names must have been checked by the caller, as for create_access_entry.
        """
        ...

    # -- IAM policies (authbridge.iam.managed; documents: authbridge.iam.policy) ----------
    # ``kind`` is "user", "group" or "role" (tags: "user" or "role"); ``document`` is
    # JSON text or its parsed object, checked by parse_policy before anything is written.
    def create_policy(
        self,
        account_id: str,
        name: str,
        document: str | Mapping[str, Any],
        *,
        path: str = "/",
        description: str = "",
    ) -> ManagedPolicy: ...

    def get_policy(self, account_id: str, policy_arn: str) -> ManagedPolicy:
        """The account's policy, or a shipped AWS managed one (``arn:…:iam::aws:policy/…``)."""
        ...

    def list_policies(
        self,
        account_id: str,
        *,
        scope: str = "All",
        only_attached: bool = False,
        path_prefix: str = "/",
    ) -> list[ManagedPolicy]: ...

    def delete_policy(self, account_id: str, policy_arn: str) -> None: ...

    def create_policy_version(
        self,
        account_id: str,
        policy_arn: str,
        document: str | Mapping[str, Any],
        *,
        set_as_default: bool = False,
    ) -> PolicyVersion: ...

    def get_policy_version(
        self, account_id: str, policy_arn: str, version_id: str
    ) -> PolicyVersion: ...

    def list_policy_versions(self, account_id: str, policy_arn: str) -> list[PolicyVersion]: ...

    def set_default_policy_version(
        self, account_id: str, policy_arn: str, version_id: str
    ) -> None: ...

    def delete_policy_version(self, account_id: str, policy_arn: str, version_id: str) -> None: ...

    def put_inline_policy(
        self,
        account_id: str,
        kind: str,
        principal_name: str,
        policy_name: str,
        document: str | Mapping[str, Any],
    ) -> InlinePolicy: ...

    def get_inline_policy(
        self, account_id: str, kind: str, principal_name: str, policy_name: str
    ) -> InlinePolicy: ...

    def list_inline_policies(
        self, account_id: str, kind: str, principal_name: str
    ) -> list[str]: ...

    def delete_inline_policy(
        self, account_id: str, kind: str, principal_name: str, policy_name: str
    ) -> None: ...

    def attach_policy(
        self, account_id: str, kind: str, principal_name: str, policy_arn: str
    ) -> None: ...

    def detach_policy(
        self, account_id: str, kind: str, principal_name: str, policy_arn: str
    ) -> None: ...

    def list_attached_policies(
        self, account_id: str, kind: str, principal_name: str, *, path_prefix: str = "/"
    ) -> list[AttachedPolicy]: ...

    def tag_principal(
        self, account_id: str, kind: str, principal_name: str, tags: Mapping[str, str]
    ) -> dict[str, str]:
        """Add or replace tags; returns all of the principal's tags."""
        ...

    def untag_principal(
        self, account_id: str, kind: str, principal_name: str, keys: Sequence[str]
    ) -> dict[str, str]: ...

    def list_principal_tags(
        self, account_id: str, kind: str, principal_name: str
    ) -> dict[str, str]: ...

    def principal_tags(self, account_id: str, principal_arn: str) -> dict[str, str]:
        """The tags of a user, or of a role (also given its session's ARN); a group's: ``{}``."""
        ...

    def principal_policies(self, account_id: str, principal_arn: str) -> list[SourcePolicy]:
        """Every policy that applies to a user (its groups' too), group, role or role session.

        One statement, one round trip.
        """
        ...

    # -- sign-in (authbridge.store.sql_signin; checks: authbridge.iam.login) ----------------
    def get_account_password_policy(self, account_id: str) -> PasswordPolicy: ...

    def update_account_password_policy(
        self, account_id: str, policy: PasswordPolicy
    ) -> PasswordPolicy: ...

    def delete_account_password_policy(self, account_id: str) -> None: ...

    def create_login_profile(
        self,
        account_id: str,
        user_name: str,
        password: str,
        *,
        password_reset_required: bool = False,
        hasher: PasswordHasher | None = None,
    ) -> LoginProfile: ...

    def get_login_profile(self, account_id: str, user_name: str) -> LoginProfile: ...

    def update_login_profile(
        self,
        account_id: str,
        user_name: str,
        *,
        password: str | None = None,
        password_reset_required: bool | None = None,
        hasher: PasswordHasher | None = None,
    ) -> LoginProfile: ...

    def delete_login_profile(self, account_id: str, user_name: str) -> None: ...

    def create_virtual_mfa_device(self, account_id: str, name: str) -> NewVirtualMfaDevice:
        """A new unassigned device; its secret exists only on the returned value."""
        ...

    def list_virtual_mfa_devices(
        self, account_id: str, assignment_status: str = "Any"
    ) -> list[MfaDevice]: ...

    def list_mfa_devices(self, account_id: str, user_name: str) -> list[MfaDevice]: ...

    def enable_mfa_device(
        self,
        account_id: str,
        user_name: str,
        serial_number: str,
        code1: str,
        code2: str,
        *,
        now: float | None = None,
    ) -> MfaDevice: ...

    def resync_mfa_device(
        self,
        account_id: str,
        user_name: str,
        serial_number: str,
        code1: str,
        code2: str,
        *,
        now: float | None = None,
    ) -> None: ...

    def deactivate_mfa_device(
        self, account_id: str, user_name: str, serial_number: str
    ) -> None: ...

    def delete_virtual_mfa_device(self, account_id: str, serial_number: str) -> None: ...

    def login_facts(
        self, account_id: str, user_name: str, address: str, now: float
    ) -> LoginFacts: ...

    def record_login_failure(
        self, account_id: str, user_name: str, address: str, now: float
    ) -> None: ...

    def record_login_success(
        self,
        account_id: str,
        user_name: str,
        address: str,
        now: float,
        *,
        user_id: str,
        new_hash: str | None = None,
    ) -> None: ...

    def use_mfa_step(self, serial_number: str, step: int) -> bool: ...

    # -- OIDC identity providers (authbridge.store.sql_oidc; values: authbridge.iam.oidc_provider)
    def create_open_id_connect_provider(
        self,
        account_id: str,
        url: str,
        client_ids: Sequence[str],
        *,
        ca_bundle: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> OidcProvider: ...

    def get_open_id_connect_provider(self, account_id: str, arn: str) -> OidcProvider: ...

    def list_open_id_connect_providers(self, account_id: str) -> list[OidcProvider]: ...

    def delete_open_id_connect_provider(self, account_id: str, arn: str) -> None: ...

    def add_client_id_to_open_id_connect_provider(
        self, account_id: str, arn: str, client_id: str
    ) -> OidcProvider: ...

    def remove_client_id_from_open_id_connect_provider(
        self, account_id: str, arn: str, client_id: str
    ) -> OidcProvider: ...

    # Sign-in configuration of a provider (authbridge.iam.oidc_signin); the secret arrives sealed.
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
    ) -> SignInConfig: ...

    def get_open_id_connect_provider_sign_in(
        self, account_id: str, arn: str
    ) -> SignInConfig | None: ...

    def delete_open_id_connect_provider_sign_in(self, account_id: str, arn: str) -> None: ...

    def list_sign_in_providers(self) -> list[tuple[OidcProvider, SignInConfig]]: ...
    # -- sign-in sessions (authbridge.store.sql_sessions; service: authbridge.signin) ---------
    # Only digests of codes, refresh tokens and cookies reach these
    # (authbridge.iam.sessions.secret_digest); each redemption is one transaction.
    def get_signin_session(self, session_id: str) -> SessionRecord | None: ...

    def end_signin_session(self, session_id: str, reason: EndReason, now: float) -> bool: ...

    def end_user_signin_sessions(
        self, account_id: str, user_name: str, reason: EndReason, now: float
    ) -> int: ...

    def end_role_signin_sessions(
        self, account_id: str, role_name: str, reason: EndReason, now: float
    ) -> int: ...

    def get_federated_subject(self, subject_id: str) -> FederatedSubject | None: ...

    def create_device_authorization(
        self,
        *,
        device_hash: str,
        user_code: str,
        client_id: str,
        scope: str,
        now: float,
        expires_in: int,
        interval: int,
    ) -> bool: ...

    def device_request(self, user_code: str, now: float) -> DeviceRecord | None: ...

    def decide_device(
        self,
        user_code: str,
        *,
        approve: bool,
        user_id: str | None,
        mfa: bool,
        now: float,
        federated_id: str | None = None,
    ) -> DecideOutcome: ...

    def poll_device(
        self,
        device_hash: str,
        *,
        client_id: str,
        now: float,
        session_id: str,
        refresh_hash: str,
        lifetimes: SessionLifetimes,
    ) -> GrantResult: ...

    def create_authorization_code(
        self, code_hash: str, code: AuthorizationCodeRecord, now: float
    ) -> None: ...

    def redeem_authorization_code(
        self,
        code_hash: str,
        *,
        accept: Callable[[AuthorizationCodeRecord], bool],
        now: float,
        session_id: str,
        refresh_hash: str,
        lifetimes: SessionLifetimes,
    ) -> GrantResult: ...

    def rotate_refresh_token(
        self, token_hash: str, *, client_id: str, new_hash: str, now: float
    ) -> GrantResult: ...

    def end_session_by_refresh_token(
        self, token_hash: str, reason: EndReason, now: float
    ) -> str | None: ...

    def create_browser_session(
        self,
        *,
        session_id: str,
        secret_hash: str,
        user_id: str | None,
        client_id: str,
        mfa: bool,
        address: str | None,
        now: float,
        lifetimes: SessionLifetimes,
        federated: FederatedSubject | None = None,
    ) -> SessionRecord: ...

    def browser_session(self, secret_hash: str, now: float) -> BrowserRecord | None: ...

    # -- sign-in pages' flows (authbridge.store.sql_flows) ----------------------------------
    def save_signin_flow(self, flow_id: str, state: str, *, expires_at: float, now: float) -> None:
        """Create or replace a flow's state (the id is stored only as a digest)."""
        ...

    def load_signin_flow(self, flow_id: str, now: float) -> str | None: ...

    def delete_signin_flow(self, flow_id: str) -> None: ...
