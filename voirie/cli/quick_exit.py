"""Ending a ``voirie`` process without tearing the interpreter down.

When a command has finished, Python still frees every object one by one before the process
ends: the city's GIS, pandas, numpy and the thousand modules a command imports, 0.4-0.6 s
of CPU at every ``voirie import`` (measured on the Paris city), to give memory back to an
operating system that reclaims it all at once anyway. ``exit_quickly`` does what matters
at the end (the threads that must end have ended, every exit handler runs, the output
streams are flushed) and then ends the process with its exit status.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_quickly(status: int) -> NoReturn:
    """Run the exit handlers, flush stdout and stderr, end the process with ``status``."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


def may_exit_quickly() -> bool:
    """Whether nothing would be cut short: no thread is left that Python would wait for."""
    main = threading.main_thread()
    return all(thread is main or thread.daemon for thread in threading.enumerate())
