"""Command line of the container path: ``python -m tools.container COMMAND``.

base         build (or find) the debootstrap base image
wheelhouse   download (or find) the wheelhouse image of a torch variant
build        build the service image (offline by default; --online uses the registry and index)
run-pod      build, push to a local registry, pull by digest, run like the pod; serve until
             Ctrl-C, or with --smoke check probes and held-out accuracy and stop
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from service import contract
from tools.container.base_image import ensure_base_image
from tools.container.client import holdout_accuracy, probes_answer
from tools.container.engine import DockerError, progress
from tools.container.image import build_image
from tools.container.serve import serve_in_container
from tools.container.wheelhouse import VARIANTS, ensure_wheelhouse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.container",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="build or find the debootstrap base image")
    wheels = commands.add_parser("wheelhouse", help="download or find the wheelhouse image")
    wheels.add_argument("--variant", choices=VARIANTS, default="cpu")
    build = commands.add_parser("build", help="build the service image")
    build.add_argument("--variant", choices=VARIANTS, default="cpu")
    build.add_argument("--tag", help="image tag (default torch-eks-inference:VARIANT)")
    build.add_argument(
        "--online", action="store_true", help="pull the base, install from the index"
    )
    build.add_argument("--base-image", help="base image to use instead of the debootstrap one")
    build.add_argument("--verbose", "-v", action="store_true", help="stream the build output")
    run = commands.add_parser("run-pod", help="serve the image like the pod")
    run.add_argument("--variant", choices=VARIANTS, default="cpu")
    run.add_argument("--online", action="store_true", help="build from the registry and index")
    run.add_argument("--device", choices=contract.DEVICES, default="cpu")
    run.add_argument("--registry-port", type=int, help="local registry port (default 5000)")
    run.add_argument(
        "--smoke", action="store_true", help="check probes and held-out accuracy, then stop (CI)"
    )
    return parser


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run_pod(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        with serve_in_container(
            args.variant,
            offline=not args.online,
            device=args.device,
            registry_port=args.registry_port,
        ) as base_url:
            probes = probes_answer(base_url)
            progress(f"probes: {probes}")
            if args.smoke:
                accuracy = holdout_accuracy(base_url)
                progress(
                    f"held-out accuracy {accuracy.ratio:.4f} ({accuracy.correct}/{accuracy.total})"
                )
                from model.package import DEFAULT_MIN_ACCURACY

                healthy = set(probes.values()) == {200}
                return 0 if healthy and accuracy.ratio >= DEFAULT_MIN_ACCURACY else 1
            print(f"serving at {base_url} (Ctrl-C stops the container)", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (1 with the reason on stderr when a step fails)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "base":
            print(ensure_base_image())
        elif args.command == "wheelhouse":
            print(ensure_wheelhouse(args.variant).image)
        elif args.command == "build":
            built = build_image(
                args.variant,
                args.tag,
                offline=not args.online,
                base_image=args.base_image,
                verbose=args.verbose,
            )
            print(built.tag)
        else:
            return _run_pod(args)
    except (DockerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
