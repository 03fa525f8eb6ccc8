"""An ordered, prefetching map over worker processes, for image decoding.

``OrderedPool(workers).imap(fn, tasks)`` yields ``fn(task)`` in task order while up to
``workers × prefetch`` tasks are in flight, so the consumer (a network evaluating batches) and
the decoders overlap. ``workers=0`` runs ``fn`` in the calling process — same results, no
processes, for debugging and for tiny sets.

Workers are *spawned*, not forked: the parent usually holds torch's thread pools, which a forked
child must not touch. A script that decodes with workers therefore needs the usual
``if __name__ == "__main__":`` guard. The pool starts on first use (~0.5 s) and is reused by
every later call until :meth:`OrderedPool.close` (also run at interpreter exit). Workers ignore
Ctrl-C, so an interrupt reaches only the parent, which cancels what is still queued.
"""

from __future__ import annotations

import os
import signal
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hwnas.errors import ConfigError, DataError


def default_workers() -> int:
    """Decoding processes when none are asked for: one per core beyond the first, at least one,
    at most four (the network being evaluated needs a core too)."""
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _shutdown(executor) -> None:
    executor.shutdown(wait=False, cancel_futures=True)


class OrderedPool:
    """``workers`` decoding processes (0 = in-process), ``prefetch`` tasks queued per worker."""

    def __init__(self, workers: int | None = None, prefetch: int = 4) -> None:
        workers = default_workers() if workers is None else workers
        if not isinstance(workers, int) or workers < 0:
            raise ConfigError(f"workers must be an integer >= 0 (0 decodes in this process), got {workers!r}.")
        if prefetch < 1:
            raise ConfigError(f"prefetch must be >= 1 task per worker, got {prefetch}.")
        self.workers = workers
        self.prefetch = prefetch
        self._executor = None
        self._finalizer = None

    def _get(self):
        if self._executor is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._executor = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                                 initializer=_ignore_sigint)
            self._finalizer = weakref.finalize(self, _shutdown, self._executor)
        return self._executor

    def imap(self, fn: Callable[..., Any], tasks: Iterable[tuple]) -> Iterator[Any]:
        """``fn(*task)`` for every task, in order. ``fn`` must be a module-level function."""
        if self.workers == 0:
            for t in tasks:
                yield fn(*t)
            return
        from concurrent.futures.process import BrokenProcessPool

        ex = self._get()
        it = iter(tasks)
        window: deque = deque()
        try:
            for t in it:
                window.append(ex.submit(fn, *t))
                if len(window) >= self.workers * self.prefetch:
                    break
            while window:
                res = window.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    window.append(ex.submit(fn, *nxt))
                yield res
        except BrokenProcessPool:
            self.close()
            raise DataError(f"A decoding worker process died or could not start (killed, out of memory, or a "
                            f"script without an 'if __name__ == \"__main__\":' guard); retry with fewer workers "
                            f"(now {self.workers}) or workers=0.") from None
        finally:
            for f in window:
                f.cancel()

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        if self._finalizer is not None:
            self._finalizer()
        self._executor = self._finalizer = None
