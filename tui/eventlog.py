"""`--events-jsonl PATH|-`: one JSON object per lifecycle event, for scripts."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO

from cdl_tui.core.model.events import Event
from cdl_tui.core.model.secrets import scrub_data


class EventLog:
    def __init__(self, target: str) -> None:
        self.to_stdout = target == "-"
        self._own = not self.to_stdout
        self._out: IO[str] = (
            sys.stdout if self.to_stdout else Path(target).open("a", encoding="utf-8")  # noqa: SIM115
        )
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = json.dumps(scrub_data(event.to_json()), separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def close(self) -> None:
        if self._own:
            self._out.close()
