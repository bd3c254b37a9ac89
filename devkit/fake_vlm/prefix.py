"""A prefix cache counted the way vLLM's automatic prefix caching counts it.

vLLM (v1 ``kv_cache_utils``) cuts a prompt into blocks of 16 tokens and names each full block by
a hash of its parent block's hash, its token ids and, for blocks that hold part of an image, the
image's identity (the part's ``uuid`` when the request gave one, else a hash of the image). A
new request reuses its leading blocks whose names the cache still holds, and reports them as
``usage.prompt_tokens_details.cached_tokens``; at least its last token is always computed. Old
blocks are evicted least recently used first.

The fake has no tokenizer: a request is a list of token stand-ins (``bytes``) built in prompt
order by the server, text cut by ``workers.model.tokens.split_tokens``, each image one stand-in
per visual token that carries the image's identity. Only equality and order matter here.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

BLOCK_TOKENS = 16  # vLLM's default --block-size
# About what an H200 holds for Qwen3-VL-8B (36 layers x 8 KV heads x 128 x 2 x bf16 = 144 KiB a
# token; ~100 GiB of KV cache): 2**16 blocks of 16 tokens.
DEFAULT_CAPACITY_BLOCKS = 65_536

_ROOT = b"vidloc-fake-prefix-cache"


def block_hashes(tokens: Sequence[bytes], block_tokens: int = BLOCK_TOKENS) -> list[bytes]:
    """The chained name of each full block of ``tokens`` (a partial last block has none)."""
    hashes: list[bytes] = []
    parent = _ROOT
    for start in range(0, len(tokens) - block_tokens + 1, block_tokens):
        digest = hashlib.blake2b(parent, digest_size=16)
        for token in tokens[start : start + block_tokens]:
            digest.update(len(token).to_bytes(4, "little"))
            digest.update(token)
        parent = digest.digest()
        hashes.append(parent)
    return hashes


class PrefixCache:
    """Leading blocks already seen, bounded LRU; thread-safe. ``capacity_blocks`` 0: off."""

    def __init__(
        self, capacity_blocks: int = DEFAULT_CAPACITY_BLOCKS, block_tokens: int = BLOCK_TOKENS
    ) -> None:
        self.capacity_blocks = max(0, capacity_blocks)
        self.block_tokens = block_tokens
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, tokens: Sequence[bytes]) -> int:
        """How many leading tokens of this request were cached; its blocks are kept after."""
        if self.capacity_blocks == 0 or not tokens:
            return 0
        hashes = block_hashes(tokens, self.block_tokens)
        # Like vLLM, the last token is always computed: a prompt that hits in full still has
        # its last block recomputed.
        usable = (len(tokens) - 1) // self.block_tokens
        with self._lock:
            hit = 0
            for name in hashes[:usable]:
                if name not in self._blocks:
                    break
                hit += 1
            for name in hashes:
                self._blocks[name] = None
                self._blocks.move_to_end(name)
            while len(self._blocks) > self.capacity_blocks:
                self._blocks.popitem(last=False)
        return hit * self.block_tokens

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._blocks)
