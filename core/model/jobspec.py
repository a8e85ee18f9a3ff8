"""Job specs as users type them: `8285`, `08285:1-10`, `08285:1-5x2,10,12-14`.

Job IDs are zero padded to 5 digits, task IDs to 3, before use (padding sets a minimum
width: task 12345 of a big job stays `12345`). A malformed spec raises
`JobSpecError` naming the offending part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import JobSpecError

JOB_ID_WIDTH = 5
TASK_ID_WIDTH = 3
# A task range can name many tasks, but not an absurd number by a typo (`1-99999999`).
MAX_TASKS_PER_SPEC = 1_000_000

_JOB_RE = re.compile(r"\d{1,9}")
_PART_RE = re.compile(r"(?P<start>\d+)(?:-(?P<end>\d+)(?:x(?P<step>\d+))?)?")


@dataclass(frozen=True)
class JobSpec:
    """One job, and either every task (`task_ids is None`) or the listed tasks, in order."""

    job_id: str
    task_ids: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.task_ids is None:
            return self.job_id
        return f"{self.job_id}:{','.join(self.task_ids)}"


def pad_job_id(job_id: str) -> str:
    return job_id.zfill(JOB_ID_WIDTH)


def pad_task_id(task_id: str) -> str:
    return task_id.zfill(TASK_ID_WIDTH)


def parse_job_spec(text: str) -> JobSpec:
    """Parse one spec; raise JobSpecError with a one-line reason if it is malformed."""
    spec = text.strip()
    if not spec:
        raise JobSpecError("empty job spec")
    job_part, sep, task_part = spec.partition(":")
    if not _JOB_RE.fullmatch(job_part):
        raise JobSpecError(f"malformed job spec {spec!r}: the job ID must be digits, like 08285")
    job_id = pad_job_id(job_part)
    if not sep:
        return JobSpec(job_id)
    if not task_part:
        raise JobSpecError(f"malformed job spec {spec!r}: nothing after ':' (try {job_id}:1-10)")
    return JobSpec(job_id, _parse_task_ranges(spec, task_part))


def parse_job_specs(texts: list[str] | tuple[str, ...]) -> list[JobSpec]:
    """Parse several specs (each may itself hold several, separated by spaces)."""
    specs: list[JobSpec] = []
    for text in texts:
        specs.extend(parse_job_spec(word) for word in text.split())
    return specs


def _parse_task_ranges(spec: str, task_part: str) -> tuple[str, ...]:
    seen: set[int] = set()
    ordered: list[int] = []
    for raw in task_part.split(","):
        part = raw.strip()
        match = _PART_RE.fullmatch(part)
        if not match:
            raise JobSpecError(
                f"malformed task range {part!r} in {spec!r}: use forms like 1-10, 1-9x2, 12"
            )
        start = int(match["start"])
        end = int(match["end"]) if match["end"] is not None else start
        step = int(match["step"]) if match["step"] is not None else 1
        if step < 1:
            raise JobSpecError(f"malformed task range {part!r} in {spec!r}: step must be >= 1")
        if end < start:
            raise JobSpecError(f"malformed task range {part!r} in {spec!r}: {end} < {start}")
        if (end - start) // step + 1 + len(ordered) > MAX_TASKS_PER_SPEC:
            raise JobSpecError(f"task range {part!r} in {spec!r} names too many tasks")
        for number in range(start, end + 1, step):
            if number not in seen:
                seen.add(number)
                ordered.append(number)
    return tuple(pad_task_id(str(n)) for n in ordered)
