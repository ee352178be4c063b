"""Progress bars: live on a terminal, sparse (every 30 s) when output goes to a log file."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(total: int | None, desc: str, unit: str = "it") -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=interactive,
                mininterval=0.1 if interactive else 30.0, ascii=not interactive)
