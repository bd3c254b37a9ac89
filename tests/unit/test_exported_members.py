"""Every package says what it offers: its ``__all__`` is its public surface, exactly.

In the style of httpx's ``tests/test_exported_members.py``: each name in ``__all__`` exists, and
every public name the package's namespace holds is in ``__all__`` (its own submodules, imported
modules and ``from __future__`` features aside). The rest of a package is free to change.
"""

from __future__ import annotations
import __future__

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("contracts", "producers", "workers", "vidloc", "devkit")


def packages() -> list[str]:
    found = []
    for top in TOPS:
        for init in sorted((ROOT / top).rglob("__init__.py")):
            if "__pycache__" not in init.parts:
                found.append(".".join(init.parent.relative_to(ROOT).parts))
    return found


PACKAGES = packages()


def test_the_walk_finds_every_room() -> None:
    # guards against a walk that finds nothing and so proves nothing
    rooms = {"workers.service", "workers.pipeline", "workers.model", "workers.refinement"}
    assert rooms | {"workers.live", "workers.localizers.answer", "contracts"} <= set(PACKAGES)


def _public(module: ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType | __future__._Feature)
        and name != "TYPE_CHECKING"
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_the_public_surface(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list), f"{package} has no __all__ list"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{package}.__all__ names what it does not have: {missing}"
    unlisted = sorted(_public(module) - set(exported))
    assert unlisted == [], f"{package} offers names its __all__ does not list: {unlisted}"
