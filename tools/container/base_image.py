"""A Debian bookworm base image with Python 3.11, made without any container registry.

``debootstrap`` builds a minimal root file system from the Debian mirror apt already uses, the
script trims what a container never reads (docs, man pages, locales, apt lists), precompiles the
standard library (a read-only, non-root container cannot write ``.pyc`` files, and imports are
several times slower without them) and ``docker import``s it. The tag carries a hash of these
inputs, so a second run finds the image and does nothing.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tools.container.engine import BUILD_DIR, DockerCli, DockerError, default_cli, progress

SUITE = "bookworm"
#: What the service's image needs from Debian: an interpreter, venv (ensurepip for the builder
#: stage) and CA certificates for HTTPS to AWS.
PACKAGES = ("python3-minimal", "python3-venv", "ca-certificates")
#: Paths (relative to the root file system) removed after debootstrap; copyright files are kept.
TRIM = (
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/linda",
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/templates.dat-old",
    "var/log",
)
#: Directories whose ``.pyc`` files are compiled into the image.
COMPILE = ("/usr/lib/python3.11", "/usr/lib/python3/dist-packages")
IMAGE_REPOSITORY = "torch-eks-base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_IMPORT_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)


def recipe_digest() -> str:
    """Hash of everything that decides the base image's content; part of its tag."""
    recipe = repr((SUITE, PACKAGES, TRIM, COMPILE, _IMPORT_CHANGES))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_image_tag() -> str:
    """The tag the current recipe's base image has (``torch-eks-base:bookworm-<hash>``)."""
    return f"{IMAGE_REPOSITORY}:{SUITE}-{recipe_digest()}"


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt on this machine uses for the main archive (deb.debian.org if none)."""
    candidates = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        # deb822 (.sources) "URIs: http://.../debian" or one-line "deb http://.../debian bookworm".
        for match in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.MULTILINE):
            uri = match.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return DEFAULT_MIRROR


def _require_tools() -> None:
    missing = [tool for tool in ("debootstrap", "chroot", "tar") if shutil.which(tool) is None]
    if missing:
        raise DockerError(
            f"cannot build the base image: {', '.join(missing)} not installed "
            "(apt-get install debootstrap), or pass --base-image to use a pulled one"
        )


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise DockerError(f"`{' '.join(argv)}` failed with exit {result.returncode}:\n{tail}")


def build_root_filesystem(rootfs: Path, mirror: str) -> None:
    """Debootstrap a trimmed bookworm with Python into ``rootfs`` (needs root)."""
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
    )
    for relative in TRIM:
        target = rootfs / relative
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir(parents=True)
        elif target.exists():
            target.unlink()
    for doc in (rootfs / "usr/share/doc").glob("*"):
        # Keep each package's copyright file (license compliance), drop the rest of its docs.
        for item in doc.iterdir() if doc.is_dir() else ():
            if item.name != "copyright":
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    _run(["chroot", str(rootfs), "python3", "-m", "compileall", "-q", "-j", "0", *COMPILE])


def ensure_base_image(cli: DockerCli | None = None, mirror: str | None = None) -> str:
    """Return the tag of the base image, building and importing it first when it is missing."""
    cli = cli or default_cli()
    tag = base_image_tag()
    if cli.run("image", "inspect", tag, check=False).returncode == 0:
        progress(f"base image {tag}: cached")
        return tag
    _require_tools()
    mirror = mirror or apt_mirror()
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=BUILD_DIR) as scratch:
        rootfs = Path(scratch) / "rootfs"
        progress(f"base image {tag}: debootstrap {SUITE} from {mirror} (about a minute)")
        build_root_filesystem(rootfs, mirror)
        progress(f"base image {tag}: docker import")
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
        )
        changes = [arg for change in _IMPORT_CHANGES for arg in ("--change", change)]
        imported = subprocess.run(
            cli.command("import", *changes, "-", tag),
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        if tar.stdout is not None:
            tar.stdout.close()
        tar_rc = tar.wait()
        if tar_rc != 0 or imported.returncode != 0:
            raise DockerError(f"docker import of {rootfs} failed: {imported.stderr.strip()}")
    progress(f"base image {tag}: built in {time.monotonic() - started:.0f} s")
    return tag
