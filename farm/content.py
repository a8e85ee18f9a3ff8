"""Deterministic file content, synthesized on the fly.

Every file of a farm is a window onto one pseudo-random pool: byte `i` of a file whose
start offset is `s` is `pool[(s + i) % POOL_SIZE]`. Nothing is written to disk, content is
the same on every run for a given seed, and any byte range can be served by slicing. The
pool size is deliberately not a power of two, so a client that resumes at a wrong offset
gets different bytes (and a wrong md5) rather than an accidental match.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator

POOL_SIZE = (8 << 20) + 9973


class ContentPool:
    def __init__(self, seed: int) -> None:
        pool = random.Random(seed).randbytes(POOL_SIZE)
        # Two copies back to back: any window of up to POOL_SIZE bytes is one slice.
        self._double = memoryview(pool + pool)

    def chunks(self, start: int, begin: int, end: int, chunk_size: int) -> Iterator[memoryview]:
        """The bytes [begin, end) of the file whose content starts at pool offset `start`."""
        position = begin
        limit = min(chunk_size, POOL_SIZE)
        while position < end:
            length = min(limit, end - position)
            offset = (start + position) % POOL_SIZE
            yield self._double[offset : offset + length]
            position += length

    def md5_base64(self, start: int, size: int) -> str:
        digest = hashlib.md5(usedforsecurity=False)
        for chunk in self.chunks(start, 0, size, 4 << 20):
            digest.update(chunk)
        return base64.b64encode(digest.digest()).decode("ascii")

    def read(self, start: int, size: int) -> bytes:
        return b"".join(bytes(c) for c in self.chunks(start, 0, size, 4 << 20))
