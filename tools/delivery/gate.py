"""Deploy only a commit of ``main`` that CI passed: ``deploy.yml``'s gate (standard library only).

    python3 -S -E -m tools.delivery.gate --sha SHA [--workflow ci.yml] [--branch main]

Asks GitHub whether a run of the CI workflow for exactly that commit, pushed to ``main``,
concluded ``success`` ("List workflow runs for a workflow" with ``head_sha``, ``branch``,
``event`` and ``status`` filters:
https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-workflow).
A ``workflow_run`` trigger already implies it; a manual ``workflow_dispatch`` does not, so both
paths go through this one check. Exit 0 when green, 1 when not (the message says why).
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.parse
from collections.abc import Sequence

from tools.delivery.pr_comment import CommentError, GitHub


def ci_passed(github: GitHub, sha: str, workflow: str, branch: str) -> bool:
    """True when a push run of ``workflow`` on ``branch`` for commit ``sha`` succeeded."""
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise CommentError(f"commit {sha!r} is not a 40-character SHA")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+\.ya?ml", workflow):
        raise CommentError(f"workflow {workflow!r} is not a workflow file name")
    query = urllib.parse.urlencode(
        {"head_sha": sha, "branch": branch, "event": "push", "status": "success", "per_page": 1}
    )
    payload = github.get(f"/actions/workflows/{workflow}/runs?{query}")
    runs = payload.get("workflow_runs") or []
    return any(run.get("head_sha") == sha and run.get("conclusion") == "success" for run in runs)


def main(argv: Sequence[str] | None = None, github: GitHub | None = None) -> int:
    """Exit 0 when CI is green for the commit, 1 when not, 2 on an API error."""
    parser = argparse.ArgumentParser(prog="python3 -S -E -m tools.delivery.gate")
    parser.add_argument("--sha", required=True)
    parser.add_argument("--workflow", default="ci.yml")
    parser.add_argument("--branch", default="main")
    args = parser.parse_args(argv)
    try:
        green = ci_passed(github or GitHub.from_environment(), args.sha, args.workflow, args.branch)
    except CommentError as exc:
        print(f"gate: {exc}", file=sys.stderr)
        return 2
    if not green:
        print(f"gate: no successful {args.workflow} push run on {args.branch} for {args.sha}")
        return 1
    print(f"gate: {args.workflow} passed on {args.branch} for {args.sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
