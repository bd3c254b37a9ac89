"""What ships: the wheel and the image carry the product packages only, never the dev tooling.

The wheel is built from a copy of the whole checkout (devkit, tests and bench included), so a
packaging rule that let them in would show up here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = {"contracts", "producers", "vidloc", "workers"}
TOOLING = {"devkit", "stack", "fake_vlm", "synth", "tests", "bench"}
# Local state and caches: not part of the source, and large.
NOT_SOURCE = (
    ".git",
    ".venv",
    ".stack",
    ".cache",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
)


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[PurePosixPath]:
    tree = tmp_path_factory.mktemp("checkout") / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    assert (tree / "devkit").is_dir() and (tree / "tests").is_dir()  # so leaking them would show
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the dev extra's setuptools builds it, offline and in seconds.
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(tree),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("vidloc-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return [PurePosixPath(name) for name in archive.namelist()]


def test_wheel_holds_the_product_packages_only(wheel_files: list[PurePosixPath]) -> None:
    tops = {p.parts[0] for p in wheel_files if not p.parts[0].endswith(".dist-info")}
    assert tops == PRODUCT_PACKAGES
    leaked = sorted(str(p) for p in wheel_files if TOOLING & set(p.parts))
    assert leaked == []


def test_wheel_carries_the_schemas_and_the_console_script(
    wheel_files: list[PurePosixPath],
) -> None:
    schemas = {p.name for p in wheel_files if p.parent == PurePosixPath("contracts/schemas")}
    expected = {p.name for p in (ROOT / "contracts" / "schemas").glob("*.json")}
    assert schemas == expected and len(expected) >= 6
    assert PurePosixPath("workers/service/policy.py") in wheel_files
    assert any(p.name == "entry_points.txt" for p in wheel_files)


def dockerfile_copies() -> list[list[str]]:
    """The source arguments of every COPY/ADD line (continuations joined, flags dropped)."""
    text = (ROOT / "Dockerfile").read_text("utf-8").replace("\\\n", " ")
    sources = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() in ("COPY", "ADD"):
            args = [w for w in words[1:] if not w.startswith("--")]
            sources.append(args[:-1])  # the last argument is the destination
    return sources


def test_the_image_copies_product_packages_only() -> None:
    copies = dockerfile_copies()
    assert copies, "no COPY line found: the parse is wrong or the Dockerfile changed shape"
    copied = {PurePosixPath(s).parts[0] for sources in copies for s in sources}
    allowed = PRODUCT_PACKAGES | {"pyproject.toml", "README.md"}
    assert copied <= allowed, f"the image copies {sorted(copied - allowed)}"
    assert copied >= PRODUCT_PACKAGES


def test_the_build_context_leaves_the_tooling_out() -> None:
    ignored = {
        line.strip().strip("/")
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"devkit", "tests", "bench", ".venv", ".git"} <= ignored
    # nothing re-included with "!"
    assert not [line for line in ignored if re.match(r"!\s*(devkit|tests|bench)", line)]
