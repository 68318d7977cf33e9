"""Names of the objects authbridge makes: deterministic, valid, and stable across runs.

A binding's name is ``authbridge-<clusterRole>-<subject>-<hash>``:

* ``<clusterRole>-<subject>`` is the readable part, lowercased, with every run of
  characters outside ``[a-z0-9]`` turned into one ``-``
  (``authbridge:admins`` → ``authbridge-admins``; a ServiceAccount subject is
  ``<namespace>-<name>``);
* ``<hash>`` is always there: the first 8 hex digits of the sha256 of the
  binding's identity (its kind, the ClusterRole, the subject's kind and name, as
  written), so two inputs that read the same once lowercased (``Devs`` and
  ``devs``, a group and a user of the same name, ``a:b`` and ``a.b``) still get
  different names;
* the readable part is cut so the whole name is at most 253 characters.

The result is a DNS-1123 subdomain (in fact a run of DNS-1123 label
characters: it starts with ``authbridge-`` and ends with the hash), valid for
every kind. The namespace is not part of a RoleBinding's name (it is part of
its ref), so one ``bindings`` entry gets the same name in every namespace.

These names are a contract with the objects already in clusters: change the
scheme and every binding is deleted and created again on the next apply.
ServiceAccounts keep the name the mapping gives them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

__all__ = ["MAX_NAME_LENGTH", "binding_name", "identity_hash", "sanitize"]

MAX_NAME_LENGTH: Final = 253
PREFIX: Final = "authbridge"
HASH_LENGTH: Final = 8

_NOT_NAME = re.compile(r"[^a-z0-9]+")


def sanitize(text: str) -> str:
    """``text`` lowercased, each run of other characters than ``[a-z0-9]`` one ``-``, trimmed."""
    return _NOT_NAME.sub("-", text.lower()).strip("-")


def identity_hash(*fields: str) -> str:
    """8 hex digits of the sha256 of ``fields`` (NUL-separated: fields are printable text)."""
    return hashlib.sha256("\0".join(fields).encode()).hexdigest()[:HASH_LENGTH]


def binding_name(kind: str, cluster_role: str, subject_kind: str, subject_name: str) -> str:
    """The name of a ``kind`` (ClusterRoleBinding or RoleBinding) binding a subject to a role.

    ``subject_name`` is ``<namespace>/<name>`` for a ServiceAccount subject.
    """
    suffix = "-" + identity_hash(kind, cluster_role, subject_kind, subject_name)
    readable = sanitize(f"{PREFIX}-{cluster_role}-{subject_name}")
    readable = readable[: MAX_NAME_LENGTH - len(suffix)].rstrip("-")
    return readable + suffix
