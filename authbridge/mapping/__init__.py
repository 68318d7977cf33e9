"""The mapping: IAM principals → Kubernetes username, uid, groups, extra (pure).

INTERFACE (filled in by the mapping implementation; the webhook codes against it):

    parse_mapping(text, source) -> Mapping            every problem at once: MappingError
    load_mapping(path) -> Mapping                     size cap, YAML, then parse_mapping
    resolve(mapping, identity, iam_group_arns) -> Resolution   (mapped or the reason not)
    MappingHolder(path).current() -> Mapping          hot reload, last good kept
    import_aws_auth(text, source) -> str              EKS aws-auth ConfigMap -> mapping YAML
"""

from __future__ import annotations

from authbridge.mapping.model import (
    Identity,
    KubeIdentity,
    Mapping,
    MappingError,
    MatchedRule,
    Resolution,
)

__all__ = [
    "Identity",
    "KubeIdentity",
    "Mapping",
    "MappingError",
    "MatchedRule",
    "Resolution",
]
