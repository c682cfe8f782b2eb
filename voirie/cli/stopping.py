"""A long command stopped by SIGTERM or SIGINT unwinds before it dies.

Python's default SIGTERM handler ends the process on the spot: no ``finally``, no
``with`` exit. A ``voirie import`` stopped that way (by ``kill``, a service manager or a
container runtime) left its spill folder, ``voirie-import-*``, hundreds of MB a million
rows, in the temporary folder. Inside ``StopSignals`` both signals raise ``Stopped``
instead, wherever the command is: the transaction in progress is rolled back, every
temporary folder removed, the store closed; ``die`` then reports it and ends the process
by the same signal, so that whoever sent it sees the process end as it asked.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType, TracebackType
from typing import NoReturn

from voirie.cli.common import console

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """Raised by a stopping signal (a ``BaseException``, as ``KeyboardInterrupt``: no
    ``except Exception`` on the way may take it for an error and go on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """A block that SIGTERM and SIGINT stop by ``Stopped``; the signal that did is kept
    in ``caught`` (the exception does not leave the block)."""

    def __init__(self) -> None:
        self.caught: int | None = None
        self._previous: dict[int, signal._HANDLER] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {signum: signal.signal(signum, self._stop) for signum in SIGNALS}
        return self

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        # A second signal (a service manager may send several) would cut the unwinding
        # short: the rollback or the removal of the spill folder.
        for other in SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if isinstance(error, Stopped):
            self.caught = error.signum
            return True
        return False

    def die(self, what: str) -> NoReturn:
        """Say that ``what`` was stopped, then end the process by the signal caught."""
        assert self.caught is not None, "die() after a block that no signal stopped"
        name = signal.Signals(self.caught).name
        console.print(f"[bold red]stopped by {name}:[/] {what}", highlight=False, soft_wrap=True)
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(self.caught, signal.SIG_DFL)
        os.kill(os.getpid(), self.caught)
        sys.exit(128 + self.caught)  # not reached: the default action ends the process
