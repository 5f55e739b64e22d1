"""The exact software behind an archive: Credence's version and every installed Python
distribution with its version."""

from __future__ import annotations

import platform
import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from django.conf import settings


def credence_version() -> str:
    """The git commit of the running checkout ("<sha>", with " plus uncommitted changes"
    when the working tree differs from it), or the package version when there is no git
    (an installed copy, a container without .git): never an error."""
    base = Path(settings.BASE_DIR)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=base,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"credence {_package_version(base)} (no git commit available)"
    suffix = " plus uncommitted changes" if dirty else ""
    return f"credence {_package_version(base)}, git commit {head}{suffix}"


def _package_version(base: Path) -> str:
    try:
        return version("credence")
    except PackageNotFoundError:
        pass
    try:
        with (base / "pyproject.toml").open("rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted by name, case-blind."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(name.lower(), f"{name}=={dist.version}")
    return [found[key] for key in sorted(found)]


def versions_text() -> str:
    lines = [
        credence_version(),
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        "",
        "Installed Python packages:",
        *installed_packages(),
    ]
    return "\n".join(lines) + "\n"
