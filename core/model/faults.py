"""Client-side fault injection, for robustness tests (inert unless configured).

The legacy client had a decorator raising random exceptions in chosen functions; this is
that idea as a setting. `CDL_FAULTS` (or the `faults` config key) names operations and
probabilities, e.g. `chunk=0.02,api=0.05,hash=0.1,seed=3`. The engine's code calls
`maybe_fail(op, ErrorType)` at each point; with nothing configured that is one dict lookup.

Operations: api (any farm API request), chunk (each chunk of a file transfer), rename (the
final rename), hash (hashing an existing file), mkdir (creating a destination folder).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

OPERATIONS = ("api", "chunk", "rename", "hash", "mkdir")

_lock = threading.Lock()
_probabilities: dict[str, float] = {}
_rng = random.Random()
injected: Counter[str] = Counter()  # how many faults each operation got (tests read it)


def validate(spec: str | None) -> tuple[dict[str, float], int | None]:
    """Parse a spec into (probabilities, seed); raise ValueError naming the bad item."""
    probabilities: dict[str, float] = {}
    seed: int | None = None
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        try:
            if name == "seed":
                seed = int(value)
                continue
            if name not in OPERATIONS:
                raise ValueError(f"unknown operation (known: {', '.join(OPERATIONS)})")
            share = float(value)
            if not 0.0 <= share <= 1.0:
                raise ValueError("a probability must be between 0 and 1")
        except ValueError as exc:
            raise ValueError(f"bad fault {item!r}: {exc}") from None
        probabilities[name] = share
    return probabilities, seed


def configure(spec: str | None) -> None:
    """Set the faults from a spec; None or "" turns them off. Raises ValueError."""
    probabilities, seed = validate(spec)
    with _lock:
        _probabilities.clear()
        _probabilities.update(probabilities)
        injected.clear()
        _rng.seed(seed)


def maybe_fail(operation: str, error: Callable[[str], BaseException]) -> None:
    """Raise `error(...)` with the configured probability for `operation`."""
    probability = _probabilities.get(operation)
    if not probability:
        return
    with _lock:
        hit = _rng.random() < probability
        if hit:
            injected[operation] += 1
    if hit:
        raise error(f"injected fault ({operation})")
