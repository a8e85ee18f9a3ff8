"""A job's files as frame sequences: which frames are on disk, missing, or suspicious.

Files are grouped the way the VFX field reads them, with `fileseq`:
`renders/beauty/MJ_0100.beauty.1001.exr` ... `.1100.exr` is one sequence,
`renders/beauty/MJ_0100.beauty.####.exr` (one `#` per digit), frames `1001-1100`. For each
sequence:

- **frames**: the frames whose file is on disk (downloaded, already there, or kept);
- **missing**: the gaps inside the sequence's range (frames the farm did not list), and
  the frames listed but not on disk (not downloaded yet, failed, cancelled or refused);
- **empty**: frames on disk that are zero bytes, or under 10 % of the median size of the
  4 nearest frames of the same sequence that are on disk (a render that died writing).

A group of one frame is no sequence: such files, and files without a frame number, are
listed singly. Grouping is incremental: paths are buffered as they are listed and grouped
a batch at a time (fileseq groups 100 paths in about 1 ms; a path at a time costs ten
times more), so that a view of a 100,000-task job only groups what came since the last.

Not thread-safe: the owner (state/frames.py) locks around it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import fileseq
from fileseq.frameset import FrameSet

BATCH = 256  # paths buffered before they are grouped
NEAREST = 4  # frames a frame's size is compared with
SUSPICIOUS_SHARE = 0.10  # of their median size: under it, a frame is suspicious


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """A sequence is its folder, the name before the frame and the name after it; the
    padding is not part of it (fileseq reads `a.1`..`a.300` as `#` or `###` by batch, and
    `0999`, `1000`, `10000` as `####` and `#####`)."""

    folder: str  # "renders/beauty/" ("" at the job's top)
    stem: str  # "MJ_0100.beauty."
    suffix: str  # ".exr"


@dataclass(frozen=True, slots=True)
class SequenceView:
    pattern: str  # relative to the job's folder, one "#" per digit
    frames: str  # on disk, as fileseq writes a frame set ("1001-1049,1053-1100"; "" if none)
    missing: str
    empty: str
    files: int  # files on disk
    bytes: int  # their bytes
    listed: int  # frames the farm listed
    first: int  # the sequence's range
    last: int


@dataclass(frozen=True, slots=True)
class SingleView:
    path: str  # relative to the job's folder
    size: int  # as listed
    on_disk: bool


@dataclass(frozen=True, slots=True)
class FramesView:
    """A job's files as sequences and single files, at one moment."""

    job_id: str
    sequences: tuple[SequenceView, ...] = ()
    singles: tuple[SingleView, ...] = ()

    @property
    def missing(self) -> int:
        """Frames missing in all sequences, and single files not on disk."""
        counted = 0
        for sequence in self.sequences:
            if sequence.missing:
                counted += len(FrameSet(sequence.missing))
        return counted + sum(1 for single in self.singles if not single.on_disk)


def frame_set(frames: list[int]) -> str:
    """Frames as fileseq writes a frame set: "1001-1049,1053-1100" ("" for none)."""
    return str(FrameSet(frames)) if frames else ""


@dataclass
class _Sequence:
    files: dict[int, tuple[str, int]] = field(default_factory=dict)  # frame -> path, size
    width: int = 0  # the padding of its first frames (the pattern shows it)

    def pattern(self, key: SequenceKey) -> str:
        return f"{key.folder}{key.stem}{'#' * max(1, self.width)}{key.suffix}"


class FrameCatalog:
    """One job's files, as listed, and which of them are on disk (with their size)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._buffer: list[tuple[str, int]] = []  # (relative path, size) not grouped yet
        self._sequences: dict[SequenceKey, _Sequence] = {}
        self._singles: dict[str, int] = {}  # path -> size, files with no frame number
        self._place: dict[str, tuple[SequenceKey, int] | None] = {}  # path -> where
        self._on_disk: dict[str, int] = {}  # path -> size on disk

    def __len__(self) -> int:
        return len(self._place) + len(self._buffer)

    def listed(self, path: str, size: int) -> None:
        """The farm listed this file (a path relative to the job's folder)."""
        self._buffer.append((path, size))
        if len(self._buffer) >= BATCH:
            self.group()

    def placed(self, path: str, size: int | None) -> None:
        """The file is on disk with `size` bytes (None: it is not, or not any more)."""
        if size is None:
            self._on_disk.pop(path, None)
        else:
            self._on_disk[path] = size

    def group(self) -> None:
        """Group what was listed since the last time."""
        if not self._buffer:
            return
        sizes = dict(self._buffer)
        self._buffer.clear()
        fresh = [p for p in sizes if p not in self._place]
        for seq in fileseq.findSequencesInList(fresh):
            frames = seq.frameSet()
            if frames is None or not seq.padding():
                continue  # no frame number: a single file (below)
            key = SequenceKey(seq.dirname(), seq.basename(), seq.extension())
            group = self._sequences.setdefault(key, _Sequence(width=seq.zfill()))
            for number in frames:
                frame = int(number)
                if frame != number:
                    continue  # a subframe (1001.5): not grouped, listed singly below
                path = seq.frame(frame)
                if path in sizes and path not in self._place:
                    group.files[frame] = (path, sizes[path])
                    self._place[path] = (key, frame)
        for path in fresh:
            if path not in self._place:
                self._singles[path] = sizes[path]
                self._place[path] = None

    def view(self) -> FramesView:
        self.group()
        sequences, singles = [], []
        for key, group in sorted(self._sequences.items(), key=lambda kv: kv[1].pattern(kv[0])):
            if len(group.files) < 2:  # one frame is no sequence
                for path, size in group.files.values():
                    singles.append(SingleView(path, size, path in self._on_disk))
                continue
            sequences.append(self._sequence_view(key, group))
        for path, size in self._singles.items():
            singles.append(SingleView(path, size, path in self._on_disk))
        singles.sort(key=lambda s: s.path)
        return FramesView(self.job_id, tuple(sequences), tuple(singles))

    def _sequence_view(self, key: SequenceKey, group: _Sequence) -> SequenceView:
        on_disk: dict[int, int] = {}
        for frame, (path, _) in group.files.items():
            size = self._on_disk.get(path)
            if size is not None:
                on_disk[frame] = size
        listed = sorted(group.files)
        present = sorted(on_disk)
        return SequenceView(
            pattern=group.pattern(key),
            frames=frame_set(present),
            missing=missing_frames(listed, on_disk),
            empty=frame_set(suspicious(on_disk)),
            files=len(on_disk),
            bytes=sum(on_disk.values()),
            listed=len(group.files),
            first=listed[0],
            last=listed[-1],
        )


SPELLED_OUT = 100_000  # missing frames written by fileseq; more are written as ranges


def missing_frames(listed: list[int], on_disk: dict[int, int]) -> str:
    """The frames of the range first..last of `listed` (sorted) that are not on disk: the
    gaps between listed frames, and the listed frames not on disk. Gaps are taken as
    ranges, never enumerated: frame numbers such as dates leave gaps of millions."""
    ranges: list[tuple[int, int]] = []

    def add(start: int, end: int) -> None:
        if ranges and ranges[-1][1] + 1 >= start:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], end))
        else:
            ranges.append((start, end))

    previous = None
    for frame in listed:
        if previous is not None and frame > previous + 1:
            add(previous + 1, frame - 1)
        if frame not in on_disk:
            add(frame, frame)
        previous = frame
    if not ranges:
        return ""
    if sum(end - start + 1 for start, end in ranges) <= SPELLED_OUT:
        return frame_set([f for start, end in ranges for f in range(start, end + 1)])
    return ",".join(f"{s}-{e}" if e > s else f"{s}" for s, e in ranges)


def suspicious(sizes: dict[int, int]) -> list[int]:
    """Frames that are empty, or under SUSPICIOUS_SHARE of the median size of their
    NEAREST nearest frames (by frame number, among `sizes`)."""
    frames = sorted(sizes)
    found = []
    for index, frame in enumerate(frames):
        size = sizes[frame]
        if size == 0:
            found.append(frame)
            continue
        lo, hi = index - 1, index + 1
        near: list[int] = []
        while len(near) < NEAREST and (lo >= 0 or hi < len(frames)):
            below = frame - frames[lo] if lo >= 0 else None
            above = frames[hi] - frame if hi < len(frames) else None
            if above is None or (below is not None and below <= above):
                near.append(sizes[frames[lo]])
                lo -= 1
            else:
                near.append(sizes[frames[hi]])
                hi += 1
        if near and size < SUSPICIOUS_SHARE * statistics.median(near):
            found.append(frame)
    return found
