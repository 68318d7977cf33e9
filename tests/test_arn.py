"""Tests for authbridge.arn: ARN parsing, building and aws-iam-authenticator canonicalization.

Covers:
* the upstream Canonicalize table, ported case by case from
  kubernetes-sigs/aws-iam-authenticator pkg/arn/arn_test.go
  (commit b5102389e266132ded3d4e6eea1a470e7828c708), and the non-IAM-lookup cases
  of the older table (commit 17d4ae803a77682c09648207ed5288caec930e0f);
* other upstream rules read from pkg/arn/arn.go: every known partition, the
  SDK-style split (colons stay in the resource), the assumed-role part count,
  iam group refused, and leniency about the account id and empty segments;
* strip_role_path (upstream StripPath) and how it matches canonicalized sessions;
* generic parse and Arn round-trip;
* parse_principal for every kind, its extra strictness, and round-trips of
  every builder through parse_principal;
* each kind of error: message, field and code;
* hostile input: oversized, control characters, non-ASCII, empty parts, long
  pieces shortened in messages;
* the partitions keyword.
"""

from __future__ import annotations

import pytest

from authbridge import arn
from authbridge.errors import InputError, MalformedArn

ACCT = "123456789012"

# pkg/arn/arn_test.go arnTests at b5102389: (input, canonical ARN or None for error).
UPSTREAM_TABLE = [
    ("NOT AN ARN", None),
    ("arn:aws:iam::123456789012:user/Alice", "arn:aws:iam::123456789012:user/Alice"),
    ("arn:aws:iam::123456789012:role/Users", "arn:aws:iam::123456789012:role/Users"),
    (
        "arn:aws:sts::123456789012:assumed-role/Admin/Session",
        "arn:aws:iam::123456789012:role/Admin",
    ),
    (
        "arn:aws:sts::123456789012:federated-user/Bob",
        "arn:aws:sts::123456789012:federated-user/Bob",
    ),
    ("arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"),
    (
        "arn:aws:sts::123456789012:assumed-role/Org/Team/Admin/Session",
        "arn:aws:iam::123456789012:role/Org/Team/Admin",
    ),
    ("arn:aws-iso:iam::123456789012:user/Chris", "arn:aws-iso:iam::123456789012:user/Chris"),
    ("arn:aws-iso-b:iam::123456789012:user/Chris", "arn:aws-iso-b:iam::123456789012:user/Chris"),
]

# The table at 17d4ae80 resolved roles through an IAM lookup (an assumed-role
# WithPath case and an unknown-role error). Upstream no longer calls IAM, so only
# the lookup-free cases carry over, and they are already in the table above.
# These cases follow the same rules, read from arn.go at 711e4729.
UPSTREAM_RULES = [
    # Upstream's doc comment examples.
    (
        "arn:aws:sts::123456789012:assumed-role/Accounting-Role/Mary",
        "arn:aws:iam::123456789012:role/Accounting-Role",
    ),
    ("arn:aws:iam::123456789012:role/S3Access", "arn:aws:iam::123456789012:role/S3Access"),
    # Paths on users and roles are kept.
    (
        "arn:aws:iam::123456789012:role/a/b/Name",
        "arn:aws:iam::123456789012:role/a/b/Name",
    ),
    ("arn:aws:iam::123456789012:user/dev/Al", "arn:aws:iam::123456789012:user/dev/Al"),
    # SDK split: only the first five colons split, so the session keeps "a:b".
    ("arn:aws:sts::123456789012:assumed-role/R/a:b", "arn:aws:iam::123456789012:role/R"),
    # The region is dropped when a session becomes its role.
    (
        "arn:aws:sts:us-east-1:123456789012:assumed-role/R/s",
        "arn:aws:iam::123456789012:role/R",
    ),
    # Upstream's leniency, kept: the account id, region and empty segments are not checked.
    ("arn:aws:iam:::root", "arn:aws:iam:::root"),
    ("arn:aws:iam::1:role", "arn:aws:iam::1:role"),
    ("arn:aws:iam::123456789012:root/extra", "arn:aws:iam::123456789012:root/extra"),
    ("arn:aws:sts::1:assumed-role//s", "arn:aws:iam::1:role/"),
    # Case matters: upstream compares service and resource type exactly.
    ("arn:aws:IAM::123456789012:user/A", None),
    ("arn:aws:iam::123456789012:User/A", None),
    ("arn:AWS:iam::123456789012:user/A", None),
    # Errors.
    ("arn:aws:iam::123456789012:group/Devs", None),  # group is not an identity
    ("arn:aws:iam::123456789012:policy/P", None),
    ("arn:aws:sts::123456789012:assumed-role/Admin", None),  # fewer than 3 parts
    ("arn:aws:sts::123456789012:assumed-role", None),
    ("arn:aws:sts::123456789012:federated", None),
    ("arn:aws:ec2:us-east-1:123456789012:instance/i-1", None),
    ("arn:aws:s3:::bucket", None),
    ("arn:foo:iam::123456789012:user/A", None),
    ("arn:aws:iam::123456789012", None),  # five parts
    ("arn:aws:iam:123456789012:user/A", None),
    ("", None),
    ("arn:", None),
    ("arn::::::", None),
    ("ARN:aws:iam::123456789012:user/A", None),
]


@pytest.mark.parametrize(("given", "expected"), UPSTREAM_TABLE)
def test_upstream_canonicalize_table(given: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(MalformedArn):
            arn.canonicalize(given)
    else:
        assert arn.canonicalize(given) == expected


@pytest.mark.parametrize(("given", "expected"), UPSTREAM_RULES)
def test_upstream_canonicalize_rules(given: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(MalformedArn):
            arn.canonicalize(given)
    else:
        assert arn.canonicalize(given) == expected


def test_known_partitions_match_upstream() -> None:
    # pkg/endpoints/partitions.go PARTITIONS.
    assert arn.KNOWN_PARTITIONS == {
        "aws",
        "aws-cn",
        "aws-us-gov",
        "aws-iso",
        "aws-iso-b",
        "aws-iso-e",
        "aws-iso-f",
        "aws-eusc",
    }


@pytest.mark.parametrize("partition", sorted(arn.KNOWN_PARTITIONS))
def test_every_known_partition_canonicalizes(partition: str) -> None:
    session = f"arn:{partition}:sts::{ACCT}:assumed-role/Admin/s"
    assert arn.canonicalize(session) == f"arn:{partition}:iam::{ACCT}:role/Admin"


def test_canonicalize_is_idempotent() -> None:
    for _given, expected in UPSTREAM_TABLE + UPSTREAM_RULES:
        if expected is not None:
            assert arn.canonicalize(expected) == expected


# --- strip_role_path (upstream StripPath) --------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (f"arn:aws:iam::{ACCT}:role/a/b/Name", f"arn:aws:iam::{ACCT}:role/Name"),
        (f"arn:aws:iam::{ACCT}:role/path/Name", f"arn:aws:iam::{ACCT}:role/Name"),
        (f"arn:aws:iam::{ACCT}:role/Name", f"arn:aws:iam::{ACCT}:role/Name"),
        (f"arn:aws-cn:iam:x:{ACCT}:role/p/N", f"arn:aws-cn:iam::{ACCT}:role/N"),
        (f"arn:aws:iam::{ACCT}:user/a/b/Name", f"arn:aws:iam::{ACCT}:user/a/b/Name"),
        (f"arn:aws:iam::{ACCT}:root", f"arn:aws:iam::{ACCT}:root"),
        (
            f"arn:aws:sts::{ACCT}:assumed-role/R/s",
            f"arn:aws:sts::{ACCT}:assumed-role/R/s",
        ),
        # Deviation: upstream strips any "role/..." resource; only iam has role ARNs.
        (f"arn:aws:sts::{ACCT}:role/a/b", f"arn:aws:sts::{ACCT}:role/a/b"),
    ],
)
def test_strip_role_path(given: str, expected: str) -> None:
    assert arn.strip_role_path(given) == expected


def test_pathed_rolearn_matches_its_sessions() -> None:
    rolearn = f"arn:aws:iam::{ACCT}:role/team/ci/Deployer"
    session = arn.assumed_role_arn("aws", ACCT, "Deployer", "build-42")
    assert arn.canonicalize(session) == arn.strip_role_path(rolearn)


@pytest.mark.parametrize("bad", ["NOT AN ARN", f"arn:foo:iam::{ACCT}:role/a/b", "arn:aws:iam"])
def test_strip_role_path_rejects_what_upstream_rejects(bad: str) -> None:
    with pytest.raises(MalformedArn):
        arn.strip_role_path(bad)


# --- generic parse ---------------------------------------------------------------


def test_parse_fields_and_round_trip() -> None:
    text = "arn:aws:s3:::my-bucket/key:with:colons"
    parsed = arn.parse(text)
    assert parsed == arn.Arn("aws", "s3", "", "", "my-bucket/key:with:colons")
    assert str(parsed) == text


@pytest.mark.parametrize(
    "text",
    [
        f"arn:aws:iam::{ACCT}:user/Alice",
        f"arn:aws-us-gov:sts:us-gov-west-1:{ACCT}:assumed-role/R/s",
        "arn:aws:lambda:us-east-1:123456789012:function:my-fn:alias",
        "arn:aws:s3:::bucket",
    ],
)
def test_parse_round_trips(text: str) -> None:
    assert str(arn.parse(text)) == text


def test_arn_is_frozen() -> None:
    parsed = arn.parse(f"arn:aws:iam::{ACCT}:root")
    with pytest.raises(AttributeError):
        parsed.partition = "aws-cn"  # type: ignore[misc]


# --- parse_principal ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"arn:aws:iam::{ACCT}:user/Alice",
            arn.PrincipalArn("user", "aws", ACCT, "/", "Alice", None),
        ),
        (
            f"arn:aws:iam::{ACCT}:user/division_abc/subdivision_xyz/JaneDoe",
            arn.PrincipalArn(
                "user", "aws", ACCT, "/division_abc/subdivision_xyz/", "JaneDoe", None
            ),
        ),
        (
            f"arn:aws:iam::{ACCT}:role/aws-service-role/access-analyzer.amazonaws.com/R",
            arn.PrincipalArn(
                "role", "aws", ACCT, "/aws-service-role/access-analyzer.amazonaws.com/", "R", None
            ),
        ),
        (
            f"arn:aws-cn:iam::{ACCT}:group/Developers",
            arn.PrincipalArn("group", "aws-cn", ACCT, "/", "Developers", None),
        ),
        (f"arn:aws:iam::{ACCT}:root", arn.PrincipalArn("root", "aws", ACCT, "/", "", None)),
        (
            f"arn:aws:sts::{ACCT}:assumed-role/Accounting-Role/Mary",
            arn.PrincipalArn("assumed-role", "aws", ACCT, "/", "Accounting-Role", "Mary"),
        ),
        (
            f"arn:aws:sts::{ACCT}:federated-user/Bob",
            arn.PrincipalArn("federated-user", "aws", ACCT, "/", "Bob", None),
        ),
        (
            f"arn:aws:iam::{ACCT}:user/a+b=c,d.e@f_g-h",
            arn.PrincipalArn("user", "aws", ACCT, "/", "a+b=c,d.e@f_g-h", None),
        ),
    ],
)
def test_parse_principal(text: str, expected: arn.PrincipalArn) -> None:
    parsed = arn.parse_principal(text)
    assert parsed == expected
    assert str(parsed) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        # Stricter than canonicalize: every one of these canonicalizes upstream.
        ("arn:aws:iam:::root", "account id '' is not 12 digits"),
        ("arn:aws:iam::12345:user/A", "account id '12345' is not 12 digits"),
        ("arn:aws:iam::12345678901a:user/A", "is not 12 digits"),
        (f"arn:aws:iam:us-east-1:{ACCT}:user/A", "region must be empty"),
        (f"arn:aws:iam::{ACCT}:role", "does not name a role"),
        (f"arn:aws:iam::{ACCT}:role/", "role name '' must be 1 to 64 characters"),
        (f"arn:aws:iam::{ACCT}:root/extra", "has text after 'root'"),
        (f"arn:aws:iam::{ACCT}:user/a//B", "no empty segment"),
        (f"arn:aws:iam::{ACCT}:user/A B", "has characters IAM does not allow"),
        (f"arn:aws:iam::{ACCT}:user/A:B", "has characters IAM does not allow"),
        (f"arn:aws:iam::{ACCT}:user/" + "u" * 65, "must be 1 to 64 characters, got 65"),
        (f"arn:aws:iam::{ACCT}:group/" + "g" * 129, "must be 1 to 128 characters, got 129"),
        (f"arn:aws:iam::{ACCT}:user/" + "p/" * 257 + "N", "path is 515 characters"),
        (f"arn:aws:sts::{ACCT}:assumed-role/Org/Team/Admin/Session", "has characters"),
        (f"arn:aws:sts::{ACCT}:assumed-role/R/a:b", "session name 'a:b' has characters"),
        (f"arn:aws:sts::{ACCT}:assumed-role/R/s", "session name 's' must be 2 to 64"),
        (f"arn:aws:sts::{ACCT}:assumed-role//ss", "role name '' must be 1 to 64"),
        (f"arn:aws:sts::{ACCT}:assumed-role/R", "does not name a role and a session"),
        (f"arn:aws:sts::{ACCT}:assumed-role", "does not name a role and a session"),
        (f"arn:aws:sts::{ACCT}:federated-user", "does not name a user"),
        (f"arn:aws:sts::{ACCT}:federated-user/B", "federated-user name 'B' must be 2 to 32"),
        (f"arn:aws:sts::{ACCT}:federated-user/" + "b" * 33, "must be 2 to 32"),
        # The same refusals as canonicalize.
        (f"arn:aws:iam::{ACCT}:policy/P", "resource type 'policy' is not supported"),
        (f"arn:aws:sts::{ACCT}:role/R", "resource type 'role' is not supported for service sts"),
        (f"arn:aws:ec2::{ACCT}:instance/i", "service 'ec2' is not iam or sts"),
        (f"arn:nope:iam::{ACCT}:user/A", "unrecognized partition 'nope'"),
    ],
)
def test_parse_principal_refuses(text: str, fragment: str) -> None:
    with pytest.raises(MalformedArn) as err:
        arn.parse_principal(text)
    assert fragment in str(err.value)


# --- builders --------------------------------------------------------------------


@pytest.mark.parametrize("partition", sorted(arn.KNOWN_PARTITIONS))
@pytest.mark.parametrize("path", ["/", "/team/", "/a/b.c/d-e/"])
def test_pathed_builders_round_trip(partition: str, path: str) -> None:
    for kind, build in (("user", arn.user_arn), ("group", arn.group_arn), ("role", arn.role_arn)):
        text = build(partition, ACCT, "Name_1", path)
        assert text == f"arn:{partition}:iam::{ACCT}:{kind}{path}Name_1"
        parsed = arn.parse_principal(text)
        assert (parsed.kind, parsed.partition, parsed.account_id) == (kind, partition, ACCT)
        assert (parsed.path, parsed.name, parsed.session_name) == (path, "Name_1", None)
        assert str(parsed) == text


def test_builder_defaults_and_root_and_session_round_trip() -> None:
    assert arn.user_arn("aws", ACCT, "Alice") == f"arn:aws:iam::{ACCT}:user/Alice"
    assert arn.role_arn("aws", ACCT, "Admin") == f"arn:aws:iam::{ACCT}:role/Admin"
    assert arn.group_arn("aws", ACCT, "Devs") == f"arn:aws:iam::{ACCT}:group/Devs"

    root = arn.root_arn("aws", ACCT)
    assert root == f"arn:aws:iam::{ACCT}:root"
    assert arn.parse_principal(root) == arn.PrincipalArn("root", "aws", ACCT, "/", "", None)

    session = arn.assumed_role_arn("aws-us-gov", ACCT, "Admin", "alice@example.com")
    assert session == f"arn:aws-us-gov:sts::{ACCT}:assumed-role/Admin/alice@example.com"
    parsed = arn.parse_principal(session)
    assert parsed == arn.PrincipalArn(
        "assumed-role", "aws-us-gov", ACCT, "/", "Admin", "alice@example.com"
    )
    assert str(parsed) == session
    assert arn.canonicalize(session) == arn.role_arn("aws-us-gov", ACCT, "Admin")


def test_every_builder_output_canonicalizes() -> None:
    for text in (
        arn.user_arn("aws", ACCT, "u", "/p/"),
        arn.role_arn("aws", ACCT, "r", "/p/"),
        arn.root_arn("aws", ACCT),
    ):
        assert arn.canonicalize(text) == text


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: arn.user_arn("aws", "12345", "A"), "account id '12345' is not 12 digits"),
        (lambda: arn.user_arn("aws", ACCT, ""), "user name '' must be 1 to 64"),
        (lambda: arn.user_arn("aws", ACCT, "a/b"), "has characters IAM does not allow"),
        (lambda: arn.user_arn("aws", ACCT, "A", "team"), "path 'team' must be /"),
        (lambda: arn.user_arn("aws", ACCT, "A", "/t//"), "no empty segment"),
        (lambda: arn.user_arn("aws", ACCT, "A", ""), "path is required"),
        (lambda: arn.role_arn("aws", ACCT, "r" * 65), "must be 1 to 64 characters, got 65"),
        (lambda: arn.group_arn("aws", ACCT, "g" * 129), "must be 1 to 128 characters"),
        (lambda: arn.root_arn("AWS", ACCT), "partition 'AWS' is not lowercase"),
        (lambda: arn.root_arn("aws:iam", ACCT), "partition 'aws:iam' is not lowercase"),
        (lambda: arn.assumed_role_arn("aws", ACCT, "R", "x"), "session name 'x' must be 2"),
        (lambda: arn.assumed_role_arn("aws", ACCT, "R", "a/b"), "has characters"),
        (lambda: arn.assumed_role_arn("aws", ACCT, "a/R", "ss"), "role name 'a/R' has"),
    ],
)
def test_builders_refuse_bad_pieces(call: object, fragment: str) -> None:
    assert callable(call)
    with pytest.raises(MalformedArn) as err:
        call()
    assert fragment in str(err.value)


def test_builders_accept_a_configured_partition() -> None:
    # Builders check the partition's shape; settings decide which partition is in use.
    text = arn.user_arn("corp", ACCT, "A")
    assert arn.parse_principal(text, partitions={"corp"}).partition == "corp"
    with pytest.raises(MalformedArn, match="unrecognized partition 'corp'"):
        arn.parse_principal(text)


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("NOT AN ARN", "'NOT AN ARN' does not start with 'arn:'"),
        ("arn:aws:iam::123", "has 5 colon-separated parts; an ARN has 6"),
        (f"arn:foo:iam::{ACCT}:user/A", "unrecognized partition 'foo'"),
        (f"arn:aws:ec2::{ACCT}:instance/i", "service 'ec2' is not iam or sts"),
        (f"arn:aws:iam::{ACCT}:instance/i", "resource type 'instance' is not supported"),
        (f"arn:aws:sts::{ACCT}:session/x", "resource type 'session' is not supported"),
        (f"arn:aws:sts::{ACCT}:assumed-role/R", "does not name a role and a session"),
        ("arn:aws::::user/A", "has an empty service"),
        (f"arn:aws:iam::{ACCT}:", "has an empty resource"),
    ],
)
def test_error_messages(text: str, fragment: str) -> None:
    with pytest.raises(MalformedArn) as err:
        arn.canonicalize(text)
    assert fragment in str(err.value)
    assert isinstance(err.value, InputError)
    assert err.value.field == "arn"
    assert err.value.code == "MalformedArn"
    assert str(err.value).startswith("arn: ")


def test_unknown_partition_hint_lists_partitions() -> None:
    with pytest.raises(MalformedArn) as err:
        arn.canonicalize(f"arn:foo:iam::{ACCT}:root", partitions={"aws", "corp"})
    assert err.value.hint == "known partitions: aws, corp"


# --- hostile input -------------------------------------------------------------------


def test_oversized_input_is_refused_without_echo() -> None:
    huge = f"arn:aws:iam::{ACCT}:user/" + "A" * 10_000
    for func in (arn.parse, arn.canonicalize, arn.parse_principal, arn.strip_role_path):
        with pytest.raises(MalformedArn) as err:
            func(huge)
        assert "the limit is 2048" in str(err.value)
        assert len(str(err.value)) < 200


def test_length_limit_is_inclusive() -> None:
    prefix = f"arn:aws:iam::{ACCT}:user/"
    at_limit = prefix + "p/" * ((arn.MAX_ARN_LENGTH - len(prefix)) // 2)
    at_limit += "x" * (arn.MAX_ARN_LENGTH - len(at_limit))
    assert len(at_limit) == arn.MAX_ARN_LENGTH
    assert arn.canonicalize(at_limit) == at_limit
    with pytest.raises(MalformedArn):
        arn.canonicalize(at_limit + "x")


@pytest.mark.parametrize(
    "text",
    [
        f"arn:aws:iam::{ACCT}:user/Alice\n",
        f"arn:aws:iam::{ACCT}:user/Al\nice",
        f"arn:aws:iam::{ACCT}:user/Al\rice",
        f"arn:aws:iam::{ACCT}:user/Al\x00ice",
        f"arn:aws:iam::{ACCT}:user/Al\tice",
        f"arn:aws:iam::{ACCT}:user/Al\x7fice",
        f"arn:aws:iam::{ACCT}:user/Alicé",
        f"arn:aws:iam::{ACCT}:user/Al\u200bice",  # zero-width space
        f"arn:aws:iam::{ACCT}:user/\u0410lice",  # Cyrillic A homoglyph
        f"arn:aws:iam::{ACCT}:user/Alice\U0001f600",
        f"arn:aws:iam::{ACCT}:user/Alice\udc80",  # lone surrogate
        f"\ufeffarn:aws:iam::{ACCT}:user/Alice",  # byte-order mark
        f"arn:aws:sts::{ACCT}:assumed-role/R/s\n",
    ],
)
def test_control_and_non_ascii_characters_are_refused(text: str) -> None:
    for func in (arn.parse, arn.canonicalize, arn.parse_principal, arn.strip_role_path):
        with pytest.raises(MalformedArn, match="not printable ASCII") as err:
            func(text)
        assert str(err.value).isascii()
        assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text",
    ["", ":", "arn", "arn:", "arn::", "arn:::::", "arn::::::", ":::::", "arn:aws:iam::"],
)
def test_empty_and_truncated_parts_are_refused(text: str) -> None:
    with pytest.raises(MalformedArn):
        arn.canonicalize(text)
    with pytest.raises(MalformedArn):
        arn.parse_principal(text)


def test_long_pieces_are_shortened_in_messages() -> None:
    partition = "p" * 1_000
    with pytest.raises(MalformedArn) as err:
        arn.canonicalize(f"arn:{partition}:iam::{ACCT}:root", partitions={"aws"})
    assert len(err.value.message) <= 200
    assert "'" + "p" * 64 + "'..." in err.value.message

    service = "s" * 1_000
    with pytest.raises(MalformedArn) as err:
        arn.canonicalize(f"arn:aws:{service}::{ACCT}:root")
    assert len(err.value.message) <= 200


def test_many_colons_and_slashes_are_handled_linearly() -> None:
    # Resources are split once by colon (SDK rule) and by slash; nothing backtracks.
    text = f"arn:aws:sts::{ACCT}:assumed-role/R/" + ":" * 1_900
    assert arn.canonicalize(text) == f"arn:aws:iam::{ACCT}:role/R"
    with pytest.raises(MalformedArn):
        arn.parse_principal(text)
    slashes = f"arn:aws:sts::{ACCT}:assumed-role" + "/" * 1_900 + "s"
    assert arn.canonicalize(slashes) == f"arn:aws:iam::{ACCT}:role/" + "/" * 1_898


def test_non_string_input_is_refused() -> None:
    with pytest.raises(MalformedArn, match="expected a string, got bytes"):
        arn.canonicalize(b"arn:aws:iam::123456789012:root")  # type: ignore[arg-type]
    with pytest.raises(MalformedArn, match="expected a string, got NoneType"):
        arn.parse_principal(None)  # type: ignore[arg-type]


# --- partitions keyword -----------------------------------------------------------


def test_partitions_keyword_adds_a_deployment_partition() -> None:
    custom = {"aws", "corp"}
    session = f"arn:corp:sts::{ACCT}:assumed-role/Admin/s1"
    with pytest.raises(MalformedArn, match="unrecognized partition 'corp'"):
        arn.canonicalize(session)
    assert arn.canonicalize(session, partitions=custom) == f"arn:corp:iam::{ACCT}:role/Admin"
    assert arn.parse(session, partitions=custom).partition == "corp"
    assert arn.parse_principal(session, partitions=custom).name == "Admin"
    role = f"arn:corp:iam::{ACCT}:role/p/Admin"
    assert arn.strip_role_path(role, partitions=custom) == f"arn:corp:iam::{ACCT}:role/Admin"
    with pytest.raises(MalformedArn):
        arn.strip_role_path(role)


def test_partitions_keyword_can_narrow() -> None:
    with pytest.raises(MalformedArn, match="unrecognized partition 'aws-cn'"):
        arn.canonicalize(f"arn:aws-cn:iam::{ACCT}:root", partitions=frozenset({"aws"}))


def test_partitions_keyword_refuses_a_bare_string() -> None:
    # "aws" in "aws-cn" is True for strings; a typo here must not widen the check.
    with pytest.raises(TypeError):
        arn.canonicalize(f"arn:aws:iam::{ACCT}:root", partitions="aws-cn")
