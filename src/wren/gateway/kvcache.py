"""A block-level KV cache with prefix caching and LRU eviction, as the simulated server uses it.

Blocks hold `block_size` tokens. A full block can carry a hash chained over all tokens before it,
so requests sharing a prefix share blocks. Blocks no request references stay cached (evictable)
until a new allocation needs the space, oldest first.
"""

from __future__ import annotations

from collections import OrderedDict


class Block:
    """One physical block; `hash` is set once it is full and registered."""

    __slots__ = ("hash", "ref")

    def __init__(self) -> None:
        self.hash: int | None = None
        self.ref = 1


class KVCache:
    """`num_blocks` blocks: in use (referenced), cached (unreferenced, evictable LRU) or empty."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        if num_blocks < 1 or block_size < 1:
            raise ValueError("the KV cache needs at least one block of at least one token")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.empty = num_blocks
        self.evictable: OrderedDict[int, Block] = OrderedDict()
        self.by_hash: dict[int, Block] = {}
        self.evictions = 0

    @property
    def used(self) -> int:
        """Blocks referenced by running requests."""
        return self.num_blocks - self.empty - len(self.evictable)

    def usage(self) -> float:
        return self.used / self.num_blocks

    def cached_prefix(self, hashes: list[int]) -> int:
        """How many leading blocks of a request with these block hashes are in the cache."""
        n = 0
        by_hash = self.by_hash
        for h in hashes:
            if h not in by_hash:
                break
            n += 1
        return n

    def available_for(self, hashes: list[int], new_blocks: int) -> bool:
        """Whether taking the cached `hashes` and allocating `new_blocks` more would fit."""
        reclaimed = sum(1 for h in hashes if self.by_hash[h].ref == 0)
        return self.empty + len(self.evictable) - reclaimed >= new_blocks

    def take(self, hashes: list[int]) -> list[Block]:
        """Reference cached blocks (the caller checked they are there)."""
        out = []
        for h in hashes:
            block = self.by_hash[h]
            if block.ref == 0:
                del self.evictable[h]
            block.ref += 1
            out.append(block)
        return out

    def allocate(self, n: int) -> list[Block] | None:
        """`n` new blocks, evicting the least recently used cached ones if needed; None if full."""
        if n <= 0:
            return []
        if self.empty + len(self.evictable) < n:
            return None
        from_empty = min(n, self.empty)
        self.empty -= from_empty
        for _ in range(n - from_empty):
            h, _block = self.evictable.popitem(last=False)
            del self.by_hash[h]
            self.evictions += 1
        return [Block() for _ in range(n)]

    def register(self, block: Block, h: int) -> None:
        """Give a full block its prefix hash so later requests can reuse it."""
        if block.hash is None and h not in self.by_hash:
            block.hash = h
            self.by_hash[h] = block

    def free(self, blocks: list[Block]) -> None:
        """Drop a request's references; tail blocks go first in line for eviction."""
        for block in reversed(blocks):
            block.ref -= 1
            if block.ref == 0:
                if block.hash is None:
                    self.empty += 1
                else:
                    self.evictable[block.hash] = block
                    self.evictable.move_to_end(block.hash)
