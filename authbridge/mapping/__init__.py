"""The mapping: IAM principals → Kubernetes username, uid, groups, extra (pure).

INTERFACE (filled in by the mapping implementation; the webhook codes against it):

    parse_mapping(text, source) -> Mapping            every problem at once: MappingError
    load_mapping(path) -> Mapping                     size cap, YAML, then parse_mapping
    resolve(mapping, identity, iam_group_arns) -> Resolution   (mapped or the reason not)
    MappingHolder(path).current() -> Mapping          hot reload, last good kept
    import_aws_auth(text, source) -> str              EKS aws-auth ConfigMap -> mapping YAML

Modules: ``model`` (the values), ``yamlsafe`` (bounded YAML reading), ``parse``
(the file format and its validation), ``templates`` (``{{Variable}}``
rendering and reserved prefixes), ``resolve`` (rule precedence), ``holder``
(hot reload), ``aws_auth`` (the EKS import), ``collisions`` (warnings about
names two entries can share). Each module's docstring states
its rules; ``resolve`` documents the precedence when several rules match.
"""

from __future__ import annotations

from authbridge.mapping.aws_auth import AwsAuthImport, convert_aws_auth, import_aws_auth
from authbridge.mapping.holder import MappingHolder
from authbridge.mapping.model import (
    Binding,
    GroupRule,
    Identity,
    KubeIdentity,
    Mapping,
    MappingError,
    MatchedRule,
    Resolution,
    RoleRule,
    ServiceAccountRule,
    UserRule,
)
from authbridge.mapping.parse import load_mapping, parse_mapping
from authbridge.mapping.resolve import resolve
from authbridge.mapping.templates import RESERVED_PREFIXES

__all__ = [
    "RESERVED_PREFIXES",
    "AwsAuthImport",
    "Binding",
    "GroupRule",
    "Identity",
    "KubeIdentity",
    "Mapping",
    "MappingError",
    "MappingHolder",
    "MatchedRule",
    "Resolution",
    "RoleRule",
    "ServiceAccountRule",
    "UserRule",
    "convert_aws_auth",
    "import_aws_auth",
    "load_mapping",
    "parse_mapping",
    "resolve",
]
