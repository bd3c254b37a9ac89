"""The test tree itself: pytest imports test modules by basename (rootdir-relative, no packages),
so two test files of one name in unit/ and integration/ stop the whole run at collection
("import file mismatch"). It happened twice in one day; this names the pair at once."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_basename_of_its_own() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if "__pycache__" not in path.parts:
            seen[path.name].append(str(path.relative_to(TESTS)))
    assert len(seen) > 50  # the walk sees the tree
    shared = {name: paths for name, paths in seen.items() if len(paths) > 1}
    shared.pop("__init__.py", None)
    assert shared == {}, f"rename one of each: {shared}"
