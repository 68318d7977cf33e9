"""The command line: the only place that reads argv and the environment and wires the parts.

Modules:

* :mod:`.entry` - the console script: answers a cached ``authbridge token``
  (through :mod:`authbridge.client.fastpath`) before click is imported, else
  runs :mod:`.main`;
* :mod:`.main` - the ``authbridge`` group, global options, error handling;
  each subcommand's module is imported only when that command is used;
* :mod:`.context` - the per-invocation :class:`~.context.App` (settings, store,
  output format), all built on first use so ``--help`` never touches disk;
* :mod:`.output` - JSON (AWS CLI shapes) and aligned text rendering;
* :mod:`.iam` - ``authbridge iam …`` in the AWS CLI grammar;
* :mod:`.keys` - ``authbridge keys …`` (signing keys).

Nothing here decides anything: rules live in the store, keys and settings.
Heavy or optional modules (the store, database drivers, cryptography) are
imported inside the commands that need them, so startup stays fast.
"""
