"""Progress bars that stay readable where no terminal is attached.

On a terminal: tqdm's bar. Elsewhere (SLURM logs, CI, output sent to a file) a carriage-return
stream would write every redraw into the log, so the bar prints one plain line at most every
``REASONBRIDGE_PROGRESS_INTERVAL`` seconds (default 15) and a last line when it closes."""
from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm

DEFAULT_INTERVAL_S = 15.0


class LineProgress(tqdm):
    """tqdm whose every display is a whole line (no ``\\r``), throttled by ``mininterval``."""

    def display(self, msg=None, pos=None):  # tqdm's hook for how a state is shown
        text = self.__str__() if msg is None else msg
        if text.strip():
            self.fp.write(text.strip() + "\n")
            self.fp.flush()
        return True

    def close(self):
        if not self.disable and self.n != self.last_print_n:
            self.display()  # the final count, which a throttled bar may not have shown yet
        self.sp = None  # tqdm's close then clears nothing: no redraw, no "\\r"
        super().close()


def interval_s() -> float:
    raw = os.environ.get("REASONBRIDGE_PROGRESS_INTERVAL")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


def progress_bar(*, total: int, desc: str, disable: bool = False, initial: int = 0, stream=None):
    """A progress bar for ``total`` units: tqdm on a terminal, a line every few seconds elsewhere."""
    stream = sys.stderr if stream is None else stream
    if disable or getattr(stream, "isatty", lambda: False)():
        return tqdm(total=total, initial=initial, desc=desc, disable=disable, leave=False, file=stream)
    every = interval_s()
    return LineProgress(total=total, initial=initial, desc=desc, leave=False, file=stream, ascii=True,
                        mininterval=every, maxinterval=max(every, 1.0) * 4, dynamic_ncols=False, ncols=100)
