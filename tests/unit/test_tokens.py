"""Image tokens as the Qwen3-VL processor counts them, checked against the official code.

qwen-vl-utils (a dev dependency) imports torch when its module loads, so the reference
``smart_resize`` and the constants it reads are taken from the installed file's source with
``ast`` and run in a namespace of their own: the official arithmetic, without torch.
"""

from __future__ import annotations

import ast
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workers.frames.plan import frame_size_for
from workers.localizers.prompt import timestamp_text
from workers.model.tokens import (
    FACTOR,
    MAX_PIXELS,
    MIN_PIXELS,
    VISION_MARKER_TOKENS,
    frame_tokens,
    image_tokens,
    smart_resize,
    text_tokens,
)

_WANTED = {"round_by_factor", "ceil_by_factor", "floor_by_factor", "smart_resize"}
_CONSTANTS = {"MAX_RATIO", "IMAGE_MIN_TOKEN_NUM", "IMAGE_MAX_TOKEN_NUM", "SPATIAL_MERGE_SIZE"}


def _wanted(node: ast.stmt) -> bool:
    if isinstance(node, ast.FunctionDef):
        return node.name in _WANTED
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id in _CONSTANTS for t in node.targets)
    return False


def _official() -> dict[str, Any]:
    spec = importlib.util.find_spec("qwen_vl_utils")
    assert spec is not None and spec.submodule_search_locations, "pip install -e '.[dev]'"
    path = Path(next(iter(spec.submodule_search_locations))) / "vision_process.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    keep = [node for node in tree.body if _wanted(node)]
    found = {getattr(n, "name", None) for n in keep} | {
        t.id
        for n in keep
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    assert found >= _WANTED | _CONSTANTS, f"qwen-vl-utils changed: missing {_WANTED - found}"
    namespace: dict[str, Any] = {"math": math, "Optional": Any, "Tuple": tuple}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


OFFICIAL = _official()


def official_tokens(width: int, height: int) -> int:
    resize: Callable[..., tuple[int, int]] = OFFICIAL["smart_resize"]
    # The server's processor reads min/max pixels from Qwen3-VL-8B-Instruct's
    # preprocessor_config.json (shortest_edge / longest_edge), not qwen-vl-utils' defaults.
    h, w = resize(height, width, factor=FACTOR, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return (h // FACTOR) * (w // FACTOR)


def test_the_reference_is_the_qwen3_vl_one() -> None:
    assert OFFICIAL["SPATIAL_MERGE_SIZE"] * 16 == FACTOR
    assert OFFICIAL["MAX_RATIO"] == 200


SIDES = sorted(
    {1, 2, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 100, 144, 176, 180, 191, 192, 224, 240}
    | {256, 257, 320, 352, 360, 448, 480, 511, 512, 576, 720, 1000, 1080, 1920, 2160, 3840}
    | {4095, 4096, 7680, 8192}
)


@pytest.mark.parametrize("height", SIDES)
def test_smart_resize_matches_the_official_function(height: int) -> None:
    resize = OFFICIAL["smart_resize"]
    checked = 0
    for width in SIDES:
        if max(width, height) / min(width, height) > 200:
            with pytest.raises(ValueError):
                smart_resize(height, width)
            continue
        expected = resize(height, width, FACTOR, MIN_PIXELS, MAX_PIXELS)
        assert smart_resize(height, width) == expected, (width, height)
        assert image_tokens(width, height) == official_tokens(width, height)
        checked += 1
    assert checked > 0


@pytest.mark.parametrize(
    ("width", "height"),
    [(199, 1), (1, 200), (5000, 25), (33, 6600), (16384, 82), (12345, 6789), (7, 13)],
    ids=["wide-edge", "tall-edge", "strip", "tall-strip", "huge-strip", "huge-odd", "tiny-odd"],
)
def test_extreme_shapes_match_too(width: int, height: int) -> None:
    assert image_tokens(width, height) == official_tokens(width, height)


@pytest.mark.parametrize(
    ("source", "sent", "before", "billed"),
    [
        ((320, 180), (320, 192), 60, 77),
        ((176, 144), (192, 160), 30, 72),
        ((64, 64), (64, 64), 4, 64),
        ((100, 1000), (32, 448), 14, 90),
        ((1920, 1080), (448, 256), 112, 112),
    ],
)
def test_frames_as_vidloc_sends_them_are_billed_as_the_server_does(
    source: tuple[int, int], sent: tuple[int, int], before: int, billed: int
) -> None:
    assert frame_size_for(*source) == sent
    w, h = sent
    assert (w // 32) * (h // 32) == before  # what vidloc used to estimate
    assert image_tokens(w, h) == official_tokens(w, h) == billed


def test_small_frames_are_scaled_up_past_the_minimum() -> None:
    h, w = smart_resize(192, 320)
    assert (w, h) == (352, 224) and w * h >= MIN_PIXELS


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("<12.5 seconds>", 7),  # <, 1, 2, ., 5, " seconds", >
        ("<0.0 seconds>", 6),
        ("<1234.56 seconds>", 10),
        ("These frames cover", 3),
        ("hello, world", 3),
        ("", 0),
    ],
)
def test_text_tokens_split_digits_one_by_one(text: str, tokens: int) -> None:
    assert text_tokens(text) == tokens


def test_a_frame_costs_its_label_its_markers_and_its_image() -> None:
    label = timestamp_text(12.5)
    assert frame_tokens(320, 192, label) == 7 + VISION_MARKER_TOKENS + 77
    assert frame_tokens(448, 256, timestamp_text(12.35, 2)) == 8 + VISION_MARKER_TOKENS + 112


def test_long_words_count_as_several_pieces() -> None:
    assert text_tokens(" localization") > text_tokens(" event") == 1
