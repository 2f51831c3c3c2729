"""Progress bars and messages on stderr that can never end a computation.

stderr may be missing (``2>&-``, daemons: ``sys.stderr is None``), closed, or a pipe whose
reader has gone (BrokenPipeError): a bar or a message then falls silent, the run goes on.
"""
import sys


def stderr_isatty():
    """Whether stderr is a terminal (False when it is missing or closed)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def say(message):
    """Print ``message`` on stderr, if it can be printed."""
    if sys.stderr is None:
        return
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


class Bar:
    """A tqdm bar (optional dependency) that switches itself off when writing fails."""

    def __init__(self, **tqdm_kwargs):
        self.bar = None
        if sys.stderr is None:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            return
        try:
            self.bar = tqdm(**tqdm_kwargs)
        except (OSError, ValueError):
            pass

    def update_to(self, n):
        if self.bar is not None:
            try:
                self.bar.update(n - self.bar.n)
            except (OSError, ValueError):
                self._off()

    def close(self):
        if self.bar is not None:
            try:
                self.bar.close()
            except (OSError, ValueError):
                self._off()
            self.bar = None

    def _off(self):
        self.bar.disable = True   # tqdm's close and __del__ then write nothing
        self.bar = None


def bar(progress, auto, **tqdm_kwargs):
    """A :class:`Bar` if ``progress`` (None: if stderr is a terminal and ``auto``), else None."""
    if progress is None:
        progress = auto and stderr_isatty()
    return Bar(**tqdm_kwargs) if progress else None
