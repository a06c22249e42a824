"""How library code reports progress without printing: the CLI plugs a rich bar in."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

__all__ = ["Progress", "SilentProgress"]


class Progress(Protocol):
    """A sink for progress: ``with progress.step("CV", total=20) as advance: advance()``."""

    def step(self, label: str, total: int | None = None) -> AbstractContextManager: ...

    def note(self, message: str) -> None: ...


class SilentProgress:
    """Reports nothing (library default, and ``--quiet``)."""

    def step(self, label: str, total: int | None = None) -> AbstractContextManager:
        return nullcontext(lambda n=1: None)

    def note(self, message: str) -> None:
        return None
