"""Post a fork's offline plan diff on its pull request: the privileged half, standard library only.

    python3 -S -E -m tools.delivery.commenter --artifact DIR --expect-head-sha SHA

``plan-diff-comment.yml`` runs this from the default branch with a write token after the
unprivileged ``preview`` run of a pull request (forks included) uploaded its Markdown. It installs
nothing and imports only the standard library and :mod:`tools.delivery.pr_comment`: the workflow
starts the interpreter with ``-S`` (no site-packages at all) and ``-E`` (no ``PYTHON*``
variables), so a third-party import here could not even load. Everything in the artifact is
untrusted data: the PR number must be digits, that PR's head must be the commit the run built
(else a newer push, whose own run comments, or a forged number), the stack names are checked
against a fixed pattern, and the text is only ever a comment body.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tools.delivery.pr_comment import CommentError, GitHub, fit_detail, parse_pr_number

_STACK_FILE = re.compile(r"(?:dev|staging|prod|pr-[0-9]{1,9})\.md")


def post(
    github: GitHub,
    number: int,
    key: str,
    text: str,
    expect_head_sha: str | None,
    out: Callable[[str], object] = print,
) -> str:
    """Create or edit the ``key`` comment on PR ``number``; ``skipped`` when the head moved."""
    if expect_head_sha:
        head = github.pull_request_head(number)
        if head != expect_head_sha:
            out(f"comment: skipped, PR #{number} head is {head}, not {expect_head_sha}")
            return "skipped"
    done = github.upsert_comment(number, key, fit_detail("", text, reserve=200))
    out(f"comment: {done} {key} on PR #{number}")
    return done


def post_artifact(
    github: GitHub, artifact: Path, expect_head_sha: str, out: Callable[[str], object] = print
) -> list[str]:
    """Post every ``<stack>.md`` of a plan-diff artifact as that stack's comment."""
    number = parse_pr_number((artifact / "pr-number").read_text(encoding="utf-8"))
    done = []
    for path in sorted(artifact.iterdir()):
        if not _STACK_FILE.fullmatch(path.name):
            continue  # pr-number, or anything a forged artifact added
        text = path.read_text(encoding="utf-8", errors="replace")
        done.append(post(github, number, f"plan-diff:{path.stem}", text, expect_head_sha, out))
    if not done:
        raise CommentError(f"artifact {artifact} holds no <stack>.md plan diff")
    return done


def main(argv: Sequence[str] | None = None, github: GitHub | None = None) -> int:
    """Entry point; exit 2 with one line on any refusal or API error."""
    parser = argparse.ArgumentParser(prog="python3 -S -E -m tools.delivery.commenter")
    parser.add_argument("--artifact", type=Path, required=True, help="downloaded plan-diff folder")
    parser.add_argument("--expect-head-sha", required=True, help="commit the run was built from")
    args = parser.parse_args(argv)
    try:
        post_artifact(github or GitHub.from_environment(), args.artifact, args.expect_head_sha)
    except (CommentError, OSError) as exc:
        print(f"commenter: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
