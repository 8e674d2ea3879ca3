"""The shadow process's entry point: ``python -m gateway.shadow.child FD PARENT_PID LEVEL
THIRD_PARTY_LEVEL``.

Before importing anything heavy it asks the kernel to SIGKILL it when its worker dies
(``PR_SET_PDEATHSIG``; a worker that died before that is seen by its parent pid) and takes the
name ``gateway-shadow`` (``ps``, ``/proc/<pid>/comm``), so that nothing counts it as a worker
even while it starts, and the lowest priority there is: Linux's ``SCHED_IDLE`` (any process may
take it for itself), so that it only gets the CPU time nothing else wants; where that is not
available, niceness 10. Then :mod:`gateway.shadow.process` runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

NAME = b"gateway-shadow"
NICENESS = 10
"""Its scheduling priority below its worker's where ``SCHED_IDLE`` is refused."""
_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


def bind_to_parent(parent: int) -> None:
    # The worker decides when this stops (it closes the socket): a signal to the whole process
    # group, the terminal's ^C or a service manager's SIGTERM, must not end it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(NAME), 0, 0, 0)
    if os.getppid() != parent:  # it died before the kernel was told
        os._exit(0)
    lower_priority()


def lower_priority() -> None:
    """Run only when the CPU has nothing else to do: a primary that wakes up on this core takes
    it at once (a niceness only shrinks its share: a waking primary can still wait behind it). The
    shadow's work can wait; what it cannot keep up with is dropped by its pool and counted."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (OSError, AttributeError):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


def run(argv: list[str]) -> None:
    bind_to_parent(int(argv[1]))
    from gateway.shadow.process import main

    main([argv[0], *argv[2:]])


if __name__ == "__main__":
    run(sys.argv[1:])
