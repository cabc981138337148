"""Linters that are not Python: hadolint and checkov on the Dockerfile, the workflow schema.

Run by ``make lint``. Each check prints what it ran; the script exits non-zero if any failed, so
CI reports every finding at once instead of stopping at the first tool.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
DOCKERFILE = ROOT / "service" / "Dockerfile"
WORKFLOWS = ROOT / ".github" / "workflows"


def _run(name: str, argv: list[str]) -> bool:
    print(f"lint: {name}: {' '.join(argv)}", flush=True)
    # checkov otherwise calls a vendor API for its check mapping, which fails offline (traceback).
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    result = subprocess.run(argv, cwd=ROOT, check=False, env=env)
    if result.returncode != 0:
        print(f"lint: {name} FAILED (exit {result.returncode})", file=sys.stderr, flush=True)
    return result.returncode == 0


def _tool(name: str) -> str:
    """Path of a linter: the project's virtualenv first, then PATH."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"lint: {name} is not installed; run `make venv`")
    return found


def main() -> int:
    """Run every non-Python linter and return the process exit code."""
    results: list[bool] = []
    if DOCKERFILE.exists():
        results.append(_run("hadolint", [_tool("hadolint"), str(DOCKERFILE)]))
        if not CHECKOV.exists():
            raise SystemExit("lint: checkov is not installed; run `make venv`")
        checkov = [str(CHECKOV), "--framework", "dockerfile", "--compact", "--quiet"]
        results.append(_run("checkov (Dockerfile)", [*checkov, "-f", str(DOCKERFILE)]))
    workflows = sorted(str(p) for p in WORKFLOWS.glob("*.y*ml"))
    if workflows:
        schema = [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
        results.append(_run("workflow schema", [*schema, *workflows]))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
