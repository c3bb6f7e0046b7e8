"""The errors a user can cause or meet, each with the exit code `run.py` ends with.

`run.py` prints one of these as a single line on stderr and exits with its code; a traceback is
printed only when asked for (HYDRA_FULL_ERROR=1). Anything else is a bug and keeps its traceback.

  exit 1    Hydra could not compose the config (its own message: an unknown group option, ...)
  exit 2    UserError: a config value, a file, a model folder or a key that cannot work
  exit 3    ServiceUnavailable: a server (MLflow, a teacher endpoint) that cannot be reached
  exit 130  Interrupted: Ctrl-C; every finished stage is kept in the stage cache
"""
from __future__ import annotations

import os


class UserError(ValueError):
    """Bad input from the user; the message names the field or file (and line) and what to do."""

    exit_code = 2


class ServiceUnavailable(RuntimeError):
    """A server the run needs cannot be reached, or kept failing; nothing finished is lost."""

    exit_code = 3


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during the pipeline, with what finished (kept in the stage cache)."""

    exit_code = 130

    def __init__(self, finished: list[str], cache_dir: str):
        self.finished, self.cache_dir = list(finished), str(cache_dir)
        super().__init__(self.message())

    def message(self) -> str:
        if not self.finished:
            return "interrupted before any stage finished; nothing to keep"
        return (f"interrupted: {len(self.finished)} finished stage(s) kept in the stage cache {self.cache_dir} "
                f"({', '.join(self.finished)}); run the same command again to reuse them")


def one_line(error: BaseException) -> str:
    """An error as one line (newlines folded), as run.py prints it and MLflow's `error` tag holds it."""
    if isinstance(error, Interrupted):
        return error.message()
    if isinstance(error, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    text = " ".join(str(error).split())
    return text if isinstance(error, (UserError, ServiceUnavailable)) else f"{type(error).__name__}: {text}"


def traceback_wanted() -> bool:
    """Whether the user asked for tracebacks (Hydra's own switch)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def redeliver_swallowed_interrupts() -> None:
    """Make every Ctrl-C reach the run. Python raises KeyboardInterrupt in whatever frame runs when
    the signal arrives; inside a garbage-collector callback (SQLAlchemy's weakref callbacks under
    MLflow) it is printed as "Exception ignored" and lost, and the run goes on. Such an interrupt
    is delivered again, to the main thread, a moment later."""
    import sys
    import threading
    import _thread

    previous = sys.unraisablehook

    def hook(unraisable):
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            threading.Timer(0.05, _thread.interrupt_main).start()  # out of the callback by then
            return
        previous(unraisable)

    sys.unraisablehook = hook
