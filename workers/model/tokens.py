"""What a request costs in Qwen3-VL prompt tokens, computed as the model's server does (pure).

Images: the server's processor (Qwen3-VL-8B-Instruct ``preprocessor_config.json``: patch 16,
merge 2, ``shortest_edge`` 65,536 px, ``longest_edge`` 16,777,216 px) resizes every image with
``smart_resize``: both sides rounded to multiples of 32, then scaled *down* past the maximum or
*up* past the minimum pixel count. One token per 32x32 px of the result, so a 320x192 frame is
billed as 352x224 = 77 tokens, not 60. Each image is wrapped in ``<|vision_start|>`` and
``<|vision_end|>``.

Text: Qwen's tokenizer splits every digit into its own token, so ``<12.5 seconds>`` is 7 tokens
(``<``, 1, 2, ``.``, 5, `` seconds``, ``>``), not the 4 that characters / 4 suggests.
``text_tokens`` follows the tokenizer's pre-tokenizer (digits one by one, a word with its
leading space or mark, runs of punctuation) and counts long words as several pieces; without the
vocabulary it is an estimate, close for the short English text vidloc sends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

PATCH_PX = 16
MERGE_SIZE = 2
FACTOR = PATCH_PX * MERGE_SIZE  # one visual token per FACTOR x FACTOR px
MIN_PIXELS = 65_536  # preprocessor_config.json size.shortest_edge
MAX_PIXELS = 16_777_216  # preprocessor_config.json size.longest_edge
MAX_RATIO = 200  # the processor refuses images more elongated than this
VISION_MARKER_TOKENS = 2  # <|vision_start|> and <|vision_end|>
# <|im_start|>system\n ... <|im_end|>\n<|im_start|>user\n ... <|im_end|>\n<|im_start|>assistant\n
CHAT_FRAMING_TOKENS = 14

# Qwen2/Qwen3 pre-tokenizer, in Python's regex dialect: a letter run with one optional leading
# non-letter (a space or a mark), a single digit, a punctuation run with an optional space,
# newlines, other whitespace.
_PRETOKEN = re.compile(r"[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|_+|\s*[\r\n]+|\s+")
_WORD_PIECE_CHARS = 7  # BPE keeps common words whole; longer ones split every ~7 letters


def smart_resize(
    height: int,
    width: int,
    factor: int = FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """``(height, width)`` the processor resizes an image to (qwen-vl-utils ``smart_resize``).

    Same arithmetic, including Python's round-half-to-even; tests compare it with the
    official function over many sizes.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"bad image size {width}x{height}")
    if max_pixels < min_pixels:
        raise ValueError("max_pixels must be >= min_pixels")
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio of {width}x{height} is over {MAX_RATIO}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def image_tokens(width: int, height: int) -> int:
    """Visual tokens of one ``width`` x ``height`` image after the server's resize."""
    h, w = smart_resize(height, width)
    return (h // FACTOR) * (w // FACTOR)


def text_tokens(text: str) -> int:
    """Tokens of ``text`` by the rules in the module docstring."""
    count = 0
    for piece in _PRETOKEN.findall(text):
        letters = sum(1 for ch in piece if ch.isalpha())
        count += max(1, math.ceil(letters / _WORD_PIECE_CHARS)) if letters else 1
    return count


def split_tokens(text: str) -> list[str]:
    """``text`` cut into ``text_tokens(text)`` pieces by the same rules (a long word into
    pieces of about ``_WORD_PIECE_CHARS`` letters): a stand-in for token ids where only their
    order and equality matter, as in a prefix cache."""
    out: list[str] = []
    for piece in _PRETOKEN.findall(text):
        letters = sum(1 for ch in piece if ch.isalpha())
        parts = max(1, math.ceil(letters / _WORD_PIECE_CHARS)) if letters else 1
        step = math.ceil(len(piece) / parts)
        cuts = [piece[i * step : (i + 1) * step] for i in range(parts)]
        out.extend(cut or piece[-1:] for cut in cuts)
    return out


def frame_tokens(width: int, height: int, label: str) -> int:
    """One frame as vidloc sends it: its timestamp label, the vision markers and the image."""
    return text_tokens(label) + VISION_MARKER_TOKENS + image_tokens(width, height)


def frames_tokens(width: int, height: int, labels: Iterable[str]) -> int:
    """Several frames of one size, each with its own label."""
    per_image = VISION_MARKER_TOKENS + image_tokens(width, height)
    return sum(text_tokens(label) + per_image for label in labels)
