"""``authbridge quickstart``: a working demo on the embedded defaults, idempotently.

It makes (or reuses) signing keys, the SQLite store, and a demo account with a
user, a group, a role trusting the group and an access key, then says what
exists and what to run next. Run twice, it changes nothing the second time;
the access key's secret is shown only by the run that created the key.
"""

from __future__ import annotations

import click

from authbridge.cli.context import App, output_option, pass_app
from authbridge.errors import NoSuchEntity

DEMO_ACCOUNT = "111122223333"
DEMO_USER = "alice"
DEMO_GROUP = "admins"
DEMO_ROLE = "Admin"


@click.command()
@output_option
@pass_app
def quickstart(app: App) -> None:
    """Set up a demo on the embedded defaults (keys/ and SQLite under data/), idempotently.

    Creates signing keys, account 111122223333 (or --account-id), user alice,
    group admins (alice in it), role Admin trusting the group, and an access
    key for alice whose secret is printed once. A second run reuses them.

    \b
    Example:
      authbridge quickstart
      authbridge iam get-role --role-name Admin
    """
    import time

    from authbridge.keys import KeyDirectory

    settings = app.settings
    made: list[str] = []
    directory = KeyDirectory(
        settings.keys_dir,
        prepublication_delay=settings.prepublication_delay,
        max_token_lifetime=settings.max_token_lifetime,
    )
    if not directory.exists():
        directory.init(settings.key_algorithm)
        made.append(f"signing key in {settings.keys_dir}")
    active = directory.load().signing_key(time.time())

    store = app.store
    account = settings.account_id or DEMO_ACCOUNT
    try:
        store.get_account(account)
    except NoSuchEntity:
        store.create_account(account, alias="demo")
        made.append(f"account {account}")
    try:
        user = store.get_user(account, DEMO_USER)
    except NoSuchEntity:
        user = store.create_user(account, DEMO_USER)
        made.append(f"user {DEMO_USER}")
    try:
        group = store.get_group(account, DEMO_GROUP)
    except NoSuchEntity:
        group = store.create_group(account, DEMO_GROUP)
        made.append(f"group {DEMO_GROUP}")
    if DEMO_GROUP not in {g.name for g in store.list_groups_for_user(account, DEMO_USER)}:
        store.add_user_to_group(account, DEMO_GROUP, DEMO_USER)
        made.append(f"membership of {DEMO_USER} in {DEMO_GROUP}")
    try:
        role = store.get_role(account, DEMO_ROLE)
    except NoSuchEntity:
        role = store.create_role(account, DEMO_ROLE, trust=[group.arn], path="/platform/")
        made.append(f"role {DEMO_ROLE} trusting {DEMO_GROUP}")
    keys = store.list_access_keys(account, DEMO_USER)
    secret = None
    if not keys:
        new = store.create_access_key(account, DEMO_USER)
        keys, secret = [new.key], new.secret_access_key
        made.append(f"access key {new.key.access_key_id}")

    doc = {
        "Made": made,
        "SigningKey": {"kid": active.kid, "alg": active.alg},
        "Account": store.get_account(account).to_aws(),
        "User": user.to_aws(),
        "Group": group.to_aws(),
        "Role": role.to_aws(),
        "AccessKeys": [k.to_aws() for k in keys],
    }
    if secret is not None:
        doc["SecretAccessKey"] = secret

    def text() -> str:
        lines = [
            "authbridge quickstart: " + ("made " + ", ".join(made) if made else "all in place"),
            "",
            f"  store         {_store_label(settings.store)}",
            f"  signing key   {active.kid} ({active.alg}, active)",
            f"  account       {account}",
            f"  user          {user.arn}  ({user.user_id})",
            f"  group         {group.arn}",
            f"  role          {role.arn}  trusts {', '.join(t.arn for t in role.trust)}",
        ]
        lines += [f"  access key    {k.access_key_id} ({k.status})" for k in keys]
        if secret is not None:
            lines += [
                f"  secret        {secret}",
                "",
                "The secret above is shown only now; authbridge keeps only a keyed hash of it.",
            ]
        lines += [
            "",
            "Next:",
            "  authbridge iam list-users",
            f"  authbridge iam get-role --role-name {DEMO_ROLE}",
            "  authbridge keys list",
        ]
        return "\n".join(lines)

    app.emit(doc, text)


def _store_label(dsn: str) -> str:
    from authbridge.settings import redact_dsn

    return redact_dsn(dsn)
