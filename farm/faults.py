"""Fault injection for the reference farm, so client robustness is tested against it.

Off by default. `--faults` takes comma-separated `name=value` items:

    500=0.05        answer a share of file GETs with HTTP 500 (any 4xx/5xx code works)
    503=0.05        ... or 503
    cut=0.05        cut the connection part-way through the body
    corrupt=0.02    serve the file with one wrong byte
    slow=0.1        delay a share of responses by `slow_delay` seconds (default 2)
    slow_delay=2
    bandwidth=4MiB  cap every file response at this rate (per response; MB and MiB)
    norange=1       ignore Range headers (answer 200 with the whole file)
    api500=0.05     answer a share of API calls with HTTP 500
    seed=7          make the fault sequence reproducible

A probability is a share in [0, 1].
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from cdl_tui.core.model.units import parse_size


@dataclass(frozen=True)
class FileFault:
    kind: str  # "status", "cut", "corrupt"
    status: int = 0
    fraction: float = 0.0  # where to cut or corrupt, as a share of the body


@dataclass
class FaultPlan:
    status_codes: dict[int, float] = field(default_factory=dict)
    cut: float = 0.0
    corrupt: float = 0.0
    slow: float = 0.0
    slow_delay: float = 2.0
    bandwidth: int = 0  # bytes/s per response, 0 = unlimited
    ignore_range: bool = False
    api500: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self._rng.seed(self.seed)

    @property
    def active(self) -> bool:
        return bool(
            self.status_codes
            or self.cut
            or self.corrupt
            or self.slow
            or self.bandwidth
            or self.ignore_range
            or self.api500
        )

    def _roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def _fraction(self) -> float:
        with self._lock:
            return self._rng.random()

    def file_fault(self) -> FileFault | None:
        for code, probability in self.status_codes.items():
            if self._roll(probability):
                return FileFault("status", status=code)
        if self._roll(self.cut):
            return FileFault("cut", fraction=self._fraction())
        if self._roll(self.corrupt):
            return FileFault("corrupt", fraction=self._fraction())
        return None

    def delay(self) -> float:
        return self.slow_delay if self._roll(self.slow) else 0.0

    def api_fault(self) -> bool:
        return self._roll(self.api500)


def parse_faults(spec: str | None) -> FaultPlan:
    """Parse a `--faults` spec; raise ValueError naming the bad item."""
    plan = FaultPlan()
    if not spec:
        return plan
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if not sep or not value:
            raise ValueError(f"fault {item!r} needs a value, like {name or 'cut'}=0.05")
        try:
            if name.isdigit() and 400 <= int(name) <= 599:
                plan.status_codes[int(name)] = _share(value)
            elif name in ("cut", "corrupt", "slow", "api500"):
                setattr(plan, name, _share(value))
            elif name == "slow_delay":
                plan.slow_delay = float(value)
            elif name == "bandwidth":
                plan.bandwidth = parse_size(value)
            elif name == "norange":
                plan.ignore_range = value.lower() not in ("0", "false", "no", "off")
            elif name == "seed":
                plan.seed = int(value)
            else:
                raise ValueError(f"unknown fault {name!r}")
        except ValueError as exc:
            raise ValueError(f"bad fault {item!r}: {exc}") from None
    if plan.seed is not None:
        plan._rng.seed(plan.seed)
    return plan


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError("a share must be between 0 and 1")
    return share
