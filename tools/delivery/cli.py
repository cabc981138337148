"""``python -m tools.delivery <command>``: what the workflows run, and what people run by hand.

    plan-diff  --stack dev --base origin/main [--head REV | --head-tree DIR] [--out FILE]
    policy-check [--stack dev ...]                              (offline: the pack on the plan)
    preview    --stack dev --out build/preview [--pr N]          (needs the Pulumi CLI + backend)
               [--image REPO@sha256:D] [--refresh] [--save-plan FILE]   (prod's approved plan)
    ephemeral  up --pr N [--ttl-hours 72] [--comment] [--require-open-label L] | down --pr N
    sweep      [--dry-run | --list-json] [--pr N]
    comment    --key plan-diff:dev --body-file F (--pr N | --pr-file F) [--expect-head-sha SHA]

Standard library only, for privileged jobs: ``python3 -S -E -m tools.delivery.commenter`` (a
fork's plan diff) and ``python3 -S -E -m tools.delivery.gate`` (deploy only what CI passed).
``python -m tools.delivery.oidc`` prints the trust policies; ``python -m tools.delivery.lock``
writes the hash-pinned lock.

Commands that talk to GitHub read ``GITHUB_TOKEN`` and ``GITHUB_REPOSITORY``; commands that talk
to Pulumi use its usual environment (``PULUMI_ACCESS_TOKEN`` or ``PULUMI_BACKEND_URL``);
``ephemeral up`` sets ``clusterStack`` from ``EPHEMERAL_CLUSTER_STACK`` when that is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pulumi import automation as auto

from tools.delivery import plan_diff
from tools.delivery.commenter import post
from tools.delivery.ephemeral import (
    EphemeralStackError,
    deploy,
    destroy_and_remove,
    format_deployed,
    format_failed,
)
from tools.delivery.expiry import ephemeral_stack_name
from tools.delivery.pr_comment import CommentError, GitHub, parse_pr_number
from tools.delivery.preview import (
    LONG_LIVED_STACKS,
    render_preview_comment,
    run_preview,
    write_full_output,
)
from tools.delivery.stacks import Pulumi, describe_error, local_workspace
from tools.delivery.sweeper import sweep


@dataclass
class Env:
    """What commands reach outside the process through; tests replace each part."""

    pulumi: Callable[[], Pulumi] = local_workspace
    github: Callable[[], GitHub] = GitHub.from_environment
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    out: Callable[[str], None] = print
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def _run_url(environ: dict[str, str]) -> str:
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    repository, run_id = environ.get("GITHUB_REPOSITORY"), environ.get("GITHUB_RUN_ID")
    return f"{server}/{repository}/actions/runs/{run_id}" if repository and run_id else ""


def _cmd_preview(args: argparse.Namespace, env: Env) -> int:
    outcome = run_preview(
        env.pulumi(), args.stack, image=args.image, refresh=args.refresh, save_plan=args.save_plan
    )
    full = write_full_output(outcome, args.out)
    env.out(f"preview: full output in {full}")
    run = _run_url(env.environ)
    where = f"Full output: artifact `preview-{args.stack}`" + (
        f" of [this run]({run})" if run else ""
    )
    body = render_preview_comment(outcome, where + ".")
    (args.out / f"preview-{args.stack}.md").write_text(body, encoding="utf-8")
    summary_file = env.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        # The run's summary page is what an environment's reviewer opens before approving.
        with open(summary_file, "a", encoding="utf-8") as summary:
            summary.write(body)
    if args.pr is not None:
        done = env.github().upsert_comment(args.pr, f"preview:{args.stack}", body)
        env.out(f"preview: comment {done}")
    return 0 if outcome.ok else 1


def _cmd_ephemeral(args: argparse.Namespace, env: Env) -> int:
    if args.action == "down":
        return _ephemeral_down(args, env)
    stack = ephemeral_stack_name(args.pr)
    if args.require_open_label is not None:
        # Events describe the PR as it was; act on what it is now (closed since? label gone?).
        pull = env.github().pull_request(args.pr)
        if not pull.open or args.require_open_label not in pull.labels:
            state = "closed" if not pull.open else f"not labelled {args.require_open_label}"
            env.out(f"ephemeral: skipped up of {stack}: PR #{args.pr} is {state}")
            return 0
    cluster_stack = env.environ.get("EPHEMERAL_CLUSTER_STACK", "").strip()
    try:
        deployed = deploy(
            env.pulumi(),
            stack,
            now=env.now(),
            ttl=timedelta(hours=args.ttl_hours),
            extra_config={"clusterStack": cluster_stack} if cluster_stack else None,
        )
    except (EphemeralStackError, auto.CommandError) as exc:
        error = describe_error(exc) if isinstance(exc, auto.CommandError) else str(exc)
        body = format_failed(stack, error, _run_url(env.environ))
        env.out(body)
        if args.comment:
            env.out(f"ephemeral: comment {env.github().upsert_comment(args.pr, 'ephemeral', body)}")
        return 1
    body = format_deployed(deployed)
    env.out(body)
    if "GITHUB_OUTPUT" in env.environ and deployed.service_url:
        with open(env.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
            outputs.write(f"service-url={deployed.service_url}\n")
    if args.comment:
        env.out(f"ephemeral: comment {env.github().upsert_comment(args.pr, 'ephemeral', body)}")
    return 0


def _ephemeral_down(args: argparse.Namespace, env: Env) -> int:
    stack = ephemeral_stack_name(args.pr)
    existed = destroy_and_remove(env.pulumi(), stack)
    what = "Destroyed and removed." if existed else "Nothing to tear down: no such stack."
    body = f"### Ephemeral stack `{stack}`\n\n{what}\n"
    env.out(body)
    if args.comment:
        env.out(f"ephemeral: comment {env.github().upsert_comment(args.pr, 'ephemeral', body)}")
    return 0


def _cmd_sweep(args: argparse.Namespace, env: Env) -> int:
    pulls = None
    if env.environ.get("GITHUB_TOKEN"):
        pulls = env.github().pull_request
    listing = args.list_json or args.dry_run
    report = sweep(env.pulumi(), env.now(), dry_run=listing, pulls=pulls, only=args.pr, log=env.out)
    lines = report.lines(listing)
    for line in lines:
        env.out(line)
    if args.list_json:
        due = json.dumps(report.due())
        env.out(f"prs={due}")
        if "GITHUB_OUTPUT" in env.environ:
            with open(env.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
                outputs.write(f"prs={due}\n")
    summary_file = env.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as summary:
            title = "Sweep (decisions only)" if listing else "Sweep"
            summary.write(f"### {title}\n\n```\n" + "\n".join(lines) + "\n```\n")
    return 0 if report.ok else 1


def _cmd_comment(args: argparse.Namespace, env: Env) -> int:
    number = args.pr if args.pr is not None else parse_pr_number(args.pr_file.read_text())
    text = args.body_file.read_text(encoding="utf-8")
    # With --expect-head-sha the number is only trusted if that PR's head is the commit the
    # artifact was built from (see tools.delivery.commenter).
    post(env.github(), number, args.key, text, args.expect_head_sha, env.out)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.delivery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("plan-diff", help="offline plan diff (see its --help)", add_help=False)
    commands.add_parser(
        "policy-check", help="policy pack on the mock inventory (see its --help)", add_help=False
    )

    preview = commands.add_parser("preview", help="pulumi preview --diff + policy pack")
    preview.add_argument("--stack", required=True, choices=LONG_LIVED_STACKS)
    preview.add_argument("--out", type=Path, default=Path("build/preview"))
    preview.add_argument("--pr", type=int, help="post/edit the PR comment of this stack")
    preview.add_argument("--image", help="set the stack's image to this REPO@sha256:... first")
    preview.add_argument("--refresh", action="store_true", help="refresh state before diffing")
    preview.add_argument("--save-plan", type=Path, help="save the update plan to this file")

    ephemeral = commands.add_parser("ephemeral", help="create/update or tear down pr-<n>")
    ephemeral.add_argument("action", choices=("up", "down"))
    ephemeral.add_argument("--pr", type=int, required=True)
    ephemeral.add_argument("--ttl-hours", type=float, default=72.0)
    ephemeral.add_argument("--comment", action="store_true", help="post the result on the PR")
    ephemeral.add_argument(
        "--require-open-label",
        metavar="LABEL",
        help="up: do nothing unless the PR is open and labelled LABEL right now (GitHub API)",
    )

    sweeper = commands.add_parser("sweep", help="destroy + remove expired or closed pr-<n> stacks")
    mode = sweeper.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only print the decisions")
    mode.add_argument("--list-json", action="store_true", help="decisions + prs=[...] output")
    sweeper.add_argument("--pr", type=int, help="only the stack of this pull request")

    comment = commands.add_parser("comment", help="post or edit a marked PR comment")
    comment.add_argument("--key", required=True, help="which comment, e.g. plan-diff:dev")
    comment.add_argument("--body-file", type=Path, required=True)
    target = comment.add_mutually_exclusive_group(required=True)
    target.add_argument("--pr", type=int)
    target.add_argument("--pr-file", type=Path, help="file holding the PR number (untrusted)")
    comment.add_argument("--expect-head-sha", help="refuse unless the PR head is this commit")
    return parser


_COMMANDS = {
    "preview": _cmd_preview,
    "ephemeral": _cmd_ephemeral,
    "sweep": _cmd_sweep,
    "comment": _cmd_comment,
}


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Parse ``argv``, run the command and return its exit code; errors are one clear line."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["plan-diff"]:
        return plan_diff.main(args_list[1:])
    if args_list[:1] == ["policy-check"]:
        from tools.delivery import policy_check  # starts gRPC machinery: load only when asked

        return policy_check.main(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        return _COMMANDS[args.command](args, env or Env())
    except (
        CommentError,
        EphemeralStackError,
        ValueError,
        OSError,
        auto.CommandError,
    ) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
