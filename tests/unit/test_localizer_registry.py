"""The localizer registry: the one place that knows localizers by name.

Everything else asks a ``LocalizerKind`` what it needs and offers; these tests hold that (no
name comparisons in the product), that the registry and the wire contract name the same
localizers, and that a new localizer plugs in by registration alone.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from contracts.common import LOCALIZER_NAMES
from vidloc.errors import InputError
from vidloc.settings import Settings
from workers.localizers import registry
from workers.localizers.kind import LocalizerDeps, LocalizerKind
from workers.localizers.registry import localizer_kind, localizer_names, source_is_refinable
from workers.pipeline.job_warnings import ignored_options_warning
from workers.service.main import localizer_factory
from workers.types import Chunk, ChunkResult, FrameSample, LocalizeRequest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("contracts", "producers", "workers", "vidloc")
# Where a localizer's name may be compared: the registry, and the timeline contract's own
# cross-field rule (a vlm timeline names its model), which is part of the JSON Schema itself.
ALLOWED = {"workers/localizers/registry.py", "contracts/timeline.py"}


def test_the_registry_and_the_wire_contract_name_the_same_localizers() -> None:
    assert localizer_names() == LOCALIZER_NAMES == ("vlm", "cv")


@pytest.mark.parametrize("name", LOCALIZER_NAMES)
def test_each_kind_builds_a_localizer_of_its_own_name(name: str) -> None:
    with httpx.Client() as http:
        built = localizer_kind(name).build(LocalizerDeps(Settings(), http))
    assert built.name == name


def test_an_unknown_name_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"unknown localizer 'audio'.*vlm, cv"):
        localizer_kind("audio")


def test_what_each_builtin_declares() -> None:
    vlm, cv = localizer_kind("vlm"), localizer_kind("cv")
    assert vlm.asks_model and vlm.shared and vlm.refines_boundaries and vlm.samples_adaptively
    assert vlm.reports_labels is None and vlm.after_merge is None and vlm.joins_instants
    assert not (cv.asks_model or cv.shared or cv.refines_boundaries or cv.samples_adaptively)
    assert cv.reports_labels == ("cut", "black", "frozen") and cv.after_merge is not None


@pytest.mark.parametrize(
    ("source", "refinable"),
    [("vlm", True), ("vlm+refined", True), ("", True), ("cv", False), ("join", True)],
)
def test_refinable_sources(source: str, refinable: bool) -> None:
    assert source_is_refinable(source) is refinable


def _name_comparisons(path: Path) -> Iterator[int]:
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in LOCALIZER_NAMES for o in operands):
                yield node.lineno


def test_no_localizer_name_is_compared_outside_the_registry() -> None:
    found = {
        str(path.relative_to(ROOT)): list(lines)
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := list(_name_comparisons(path)))
    }
    assert set(found) <= ALLOWED, f"ask the LocalizerKind instead: {found}"
    # the walk sees comparisons where they are (guards a walk that proves nothing)
    assert "contracts/timeline.py" in found


class _Speech:
    """A third localizer, as a new module would declare one."""

    name = "speech"

    def localize(
        self, chunk: Chunk, frames: Sequence[FrameSample], request: LocalizeRequest
    ) -> ChunkResult:
        return ChunkResult(chunk_index=chunk.index, events=())


def test_a_new_localizer_plugs_in_by_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    def build(deps: LocalizerDeps) -> _Speech:
        built.append(deps)
        return _Speech()

    speech = LocalizerKind(name="speech", build=build, shared=True, reports_labels=("speech",))
    monkeypatch.setattr(registry, "_BY_NAME", {**registry._BY_NAME, "speech": speech})
    with httpx.Client() as http:
        make = localizer_factory(Settings(), http)
        first, second = make("speech"), make("speech")
    assert first is second and len(built) == 1  # shared: one per worker
    assert make("cv") is not make("cv")  # not shared: one per job
    warning = ignored_options_warning("speech", True, None, ["dog"])
    assert warning is not None and "the speech localizer reports only speech" in str(warning)
    assert ignored_options_warning("speech", True, None, ["speech"]) is None
