"""``authbridge quickstart``: a working demo on the embedded defaults, idempotently.

It makes (or reuses) signing keys, the SQLite store, and a demo account with a
user, a group, a role trusting the group and an access key, then says what
exists and what to run next. Run twice, it changes nothing the second time;
the access key's secret is shown only by the run that created the key.
"""

from __future__ import annotations

import click

from authbridge.cli.context import App, pass_app
from authbridge.errors import NoSuchEntity

DEMO_ACCOUNT = "111122223333"
DEMO_USER = "alice"
DEMO_GROUP = "admins"
DEMO_ROLE = "Admin"


@click.command()
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

    echo = click.echo
    echo("authbridge quickstart: " + ("made " + ", ".join(made) if made else "all in place"))
    echo("")
    echo(f"  store         {_store_label(settings.store)}")
    echo(f"  signing key   {active.kid} ({active.alg}, active)")
    echo(f"  account       {account}")
    echo(f"  user          {user.arn}  ({user.user_id})")
    echo(f"  group         {group.arn}")
    echo(f"  role          {role.arn}  trusts {', '.join(t.arn for t in role.trust)}")
    for key in keys:
        echo(f"  access key    {key.access_key_id} ({key.status})")
    if secret is not None:
        echo(f"  secret        {secret}")
        echo("")
        echo("The secret above is shown only now; authbridge keeps only a keyed hash of it.")
    echo("")
    echo("Next:")
    echo("  authbridge iam list-users")
    echo(f"  authbridge iam get-role --role-name {DEMO_ROLE}")
    echo("  authbridge keys list")


def _store_label(dsn: str) -> str:
    from authbridge.settings import redact_dsn

    return redact_dsn(dsn)
