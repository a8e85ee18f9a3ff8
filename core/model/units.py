"""Sizes as people write them: `512KiB`, `4MB`, `40MB/s`, `2GiB`, `1000`."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "KIB": 1024,
    "M": 1000**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1000**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1000**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*(?:/s)?\s*")


def parse_size(text: str) -> int:
    """Bytes in `text` (decimal and binary units; a trailing `/s` is allowed for rates).

    Raises ValueError with a one-line reason.
    """
    match = _SIZE_RE.fullmatch(text)
    if not match or match[2].upper() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 512KiB, 4MB, 2GiB)")
    return int(float(match[1]) * _UNITS[match[2].upper()])
