"""Progress bars for long work (tqdm on stderr, with rate and ETA; silent when not a terminal)."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator


@contextlib.contextmanager
def progress_bar(total: int, desc: str, disable: bool = False, unit: str = "file") -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``. Shown on a terminal, or always with ``VTONDATA_PROGRESS=1``."""
    from tqdm.auto import tqdm

    show = not disable and (sys.stderr.isatty() or os.environ.get("VTONDATA_PROGRESS") == "1")
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not show, mininterval=0.5, dynamic_ncols=True,
               file=sys.stderr)
    try:
        yield bar.update
    finally:
        bar.close()
