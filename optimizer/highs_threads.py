"""Each solve gets the thread count it asks for, whatever ran before it in the process.

HiGHS runs a solve on a task scheduler that the first `run()` in a thread starts with that
solve's `threads` option; every later `run()` in the same thread reuses it, and one whose
`threads` differs fails with "Option 'threads' is set to 1 but the scheduler has already
been initialized to use 2 threads" (model status "Not Set", so our fallback plan). The
scheduler is per calling thread (HiGHS PR #818; `HighsTaskExecutor`'s handle is
thread_local), so a pool worker, which solves in one thread, would keep the count of its
first solve for life.

So a solve shuts its own thread's scheduler down first and `run()` starts a new one with
this solve's count. It touches no other thread's scheduler (checked: a reset in one thread
leaves another's as it was). Costs about 0.1 ms per solve with one thread. Details and the
evidence: docs/optimizer.md, Solver settings.
"""

from __future__ import annotations

import highspy


def fresh_scheduler() -> None:
    """Shut down the calling thread's HiGHS scheduler, if any, waiting for its workers to
    exit (blocking: a worker pool never piles up threads of earlier solves)."""
    highspy.Highs.resetGlobalScheduler(True)
