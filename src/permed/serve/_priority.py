"""Background threads of a service worker at a lower scheduling priority than its requests."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["lower_priority"]


def lower_priority(nice: int) -> None:
    """Give the calling thread (and the threads it starts) this nice value, on Linux.

    A worker of ``permed serve --workers`` has one CPU: work nobody waits for there takes it
    from the requests only when they leave some.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
