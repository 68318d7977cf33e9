"""IAM policy evaluation speed: ``python -m bench.policy_eval [--seconds S]``.

The admin API evaluates the caller's policies on every call, so
:func:`authbridge.iam.policy.evaluate` must cost microseconds, not
milliseconds. Pure CPU, one process pinned to one core; nothing else runs.
Each scenario's decision is checked before it is timed, then it runs in
rounds of about ``S`` seconds (default 1) and the best round is printed:

* ``AdministratorAccess``: one statement, ``*`` on ``*``;
* ``10x10 conditions``: 10 customer policies of 10 statements each, with
  wildcard actions, ARN patterns with ``${aws:username}``, and conditions
  (tags, ``aws:SourceIp``, MFA, ``aws:CurrentTime``), as a team's policies
  look; a request one statement allows, and one nothing allows (every
  statement scanned, implicit deny);
* ``deny-heavy``: ``AdministratorAccess`` plus 5 guard policies of 10 Deny
  statements (``NotIpAddress``, ``BoolIfExists`` MFA, ABAC
  ``StringNotEquals`` with variables, ``NotResource``), once denied and once
  allowed;
* parsing: ``parse_policy`` of a managed policy near its 6,144-character limit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from authbridge.iam.policy import (
    AWS_MANAGED_POLICIES,
    Request,
    SourcePolicy,
    aws_managed_arn,
    evaluate,
    parse_policy,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/team/alice"
ADMIN = SourcePolicy(
    aws_managed_arn("aws", "AdministratorAccess"),
    "aws-managed",
    AWS_MANAGED_POLICIES["AdministratorAccess"],
)
CONTEXT: dict[str, Any] = {
    "aws:username": "alice",
    "aws:userid": "AIDAEXAMPLEALICE",
    "aws:PrincipalArn": ALICE,
    "aws:SourceIp": "192.0.2.44",
    "aws:MultiFactorAuthPresent": True,
    "aws:CurrentTime": datetime(2026, 12, 3, 12, tzinfo=UTC),
    "aws:PrincipalTag/team": "platform",
    "aws:ResourceTag/team": "platform",
}
VERBS = ["Get", "List", "Create", "Update", "Delete", "Tag", "Attach", "Put", "Describe", "Put"]


def _team_statement(policy: int, index: int) -> dict[str, Any]:
    verb = VERBS[index]
    return {
        "Sid": f"P{policy}S{index}",
        "Effect": "Allow",
        "Action": [f"iam:{verb}User*", f"iam:{verb}Group*", f"eks:{verb}AccessEntr*"],
        "Resource": [
            f"arn:aws:iam::{ACCOUNT}:user/team{policy}/*",
            f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}-{index}",
        ],
        "Condition": {
            "StringEquals": {"aws:PrincipalTag/team": [f"team{policy}", "platform"]},
            "IpAddress": {"aws:SourceIp": ["192.0.2.0/24", "2001:db8::/32"]},
            "Bool": {"aws:MultiFactorAuthPresent": "true"},
            "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
        },
    }


def _guard_statement(policy: int, index: int) -> dict[str, Any]:
    kinds: list[dict[str, Any]] = [
        {"Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", f"203.0.113.{index}"]}}},
        {"Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
        {"Condition": {"StringNotEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}},
        {"NotResource": [f"arn:aws:iam::{ACCOUNT}:user/team/*"], "Resource": None},
    ]
    body: dict[str, Any] = {
        "Sid": f"G{policy}S{index}",
        "Effect": "Deny",
        "Action": [f"iam:{VERBS[index]}*", "iam:Delete*"],
        "Resource": "*",
    }
    body.update(kinds[index % len(kinds)])
    return {k: v for k, v in body.items() if v is not None}


def _policies(
    kind: str, count: int, statement: Callable[[int, int], dict[str, Any]]
) -> list[SourcePolicy]:
    return [
        SourcePolicy(
            f"arn:aws:iam::{ACCOUNT}:policy/{kind}{p}",
            "managed",
            parse_policy(
                {"Version": "2012-10-17", "Statement": [statement(p, i) for i in range(10)]}
            ),
        )
        for p in range(count)
    ]


def _near_limit_document() -> str:
    statements = []
    while True:
        candidate = [*statements, _team_statement(len(statements), len(statements) % 10)]
        text = json.dumps({"Version": "2012-10-17", "Statement": candidate}, indent=2)
        if len(text.translate(str.maketrans("", "", " \t\r\n"))) > 6144:
            return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)
        statements = candidate


def _rate(call: Callable[[], object], seconds: float, rounds: int = 3) -> float:
    """Best calls per second over ``rounds`` rounds of about ``seconds`` each."""
    batch = 1
    while True:  # calibrate a batch of about 20 ms
        start = time.perf_counter()
        for _ in range(batch):
            call()
        elapsed = time.perf_counter() - start
        if elapsed > 0.02:
            break
        batch *= 2
    best = 0.0
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(batch):
                call()
            done += batch
        best = max(best, done / elapsed)
    return best


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy_eval")
    parser.add_argument("--seconds", type=float, default=1.0, help="per round (3 rounds)")
    args = parser.parse_args(argv)
    if not 0.05 <= args.seconds <= 30:
        parser.error("--seconds must be between 0.05 and 30")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    team = _policies("Team", 10, _team_statement)
    guards = _policies("Guard", 5, _guard_statement)
    own = f"arn:aws:iam::{ACCOUNT}:user/alice-7"
    scenarios: list[tuple[str, list[SourcePolicy], Request, str]] = [
        ("AdministratorAccess", [ADMIN], Request("iam:CreateUser", ALICE, CONTEXT), "allowed"),
        ("10x10 conditions, allowed", team, Request("iam:PutUserPolicy", own, CONTEXT), "allowed"),
        (
            "10x10 conditions, nothing allows",
            team,
            Request("iam:SimulatePrincipalPolicy", ALICE, CONTEXT),
            "implicitDeny",
        ),
        (
            "deny-heavy (admin + 5x10 Deny), denied",
            [ADMIN, *guards],
            Request("iam:DeleteUser", f"arn:aws:iam::{ACCOUNT}:user/ops/bob", CONTEXT),
            "explicitDeny",
        ),
        (
            "deny-heavy (admin + 5x10 Deny), allowed",
            [ADMIN, *guards],
            Request("iam:ListUsers", ALICE, CONTEXT),
            "allowed",
        ),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"policy evaluation, one core, best of 3 rounds of {args.seconds:g} s"
        f" (load average {load:.2f} on {os.cpu_count()} cores: above 1, others share the core)"
    )
    for name, policies, request, expected in scenarios:
        decision = evaluate(policies, request)
        if decision.decision != expected:
            print(f"  {name}: got {decision.decision}, expected {expected}", file=sys.stderr)
            return 1
        statements = sum(len(p.document.statements) for p in policies)
        rate = _rate(lambda p=policies, r=request: evaluate(p, r), args.seconds)
        print(
            f"  {name:42} {statements:3} statements  {rate:10,.0f} evaluations/s"
            f"  {1e6 / rate:7.1f} µs each  ({decision.decision})"
        )
    document = _near_limit_document()
    size = len(document.translate(str.maketrans("", "", " \t\r\n")))
    statements = len(parse_policy(document).statements)
    rate = _rate(lambda: parse_policy(document), args.seconds)
    print(
        f"  {'parse_policy, managed policy near its limit':42} {statements:3} statements"
        f"  {rate:10,.0f} parses/s       {1e6 / rate:7.1f} µs each  ({size} chars)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
