"""Progress: a live tqdm bar on a terminal; plain timestamped lines every 30 s when output is a log file."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class LineProgress:
    """The part of tqdm's interface we use, printing one line per interval (for logs and CI)."""

    def __init__(self, total: float | None, desc: str, unit: str, interval: float = 30.0, stream=None):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.stream = stream or sys.stderr
        self.n = 0.0
        self.postfix = ""
        self.started = self.last = time.monotonic()

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._print()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def _print(self) -> None:
        self.last = time.monotonic()
        elapsed = self.last - self.started
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n:.0f}" + (f"/{self.total:.0f} ({100 * self.n / self.total:.0f}%)" if self.total else "")
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {max(self.total - self.n, 0) / rate:.0f} s"
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{time.strftime('%H:%M:%S')} {self.desc}: {done} {self.unit}, {rate:.1f} {self.unit}/s{eta}{extra}",
              file=self.stream, flush=True)

    def close(self) -> None:
        self._print()


def progress(total: float | None, desc: str, unit: str = "it"):
    """A tqdm bar with rate and ETA on a terminal; :class:`LineProgress` otherwise."""
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return LineProgress(total, desc, unit)
