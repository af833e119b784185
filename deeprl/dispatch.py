"""Where independent jobs run: a local pool sized to the cores (the default) or a Ray cluster (`--ray ADDRESS`,
or the RAY_ADDRESS variable), behind one seam, `Dispatcher.map`.

A job is a top-level function and one picklable input, `fn(job) -> dict`: one league match
(deeprl.league.runner.play_match) or one leaderboard evaluation of one revision
(deeprl.leaderboard.sandbox.evaluate_job). Its input carries everything it needs, the models' files included
(sandbox.pack), so it runs the same on any machine, and its model runs in the leaderboard's limited child process
(sandbox.run_child) under the same CPU, memory, file-size and wall-clock limits wherever the job runs. A job turns
a bad model into its own row (a forfeit, an error verdict) and does not raise; if it raises anyway, or its Ray
worker dies, `failed(job, why)` makes that job's row. Results come back one per input, in input order, whatever
order the jobs finish in, so a caller stores them as it would have stored them one by one.

- LocalPool(workers): at most `workers` jobs at once on this machine (default: the cores this process may run
  on). A job's work is its limited child process, so a pool slot is a thread that writes the job's files to a
  temporary folder and waits on that child: `workers` jobs run as `workers` processes. With one worker the jobs
  run one by one in the calling thread (the sequential baseline).
- RayCluster(address): one Ray task per job (`num_cpus=1`), on whichever node has a free CPU; the task calls the
  same function, which starts the same limited child on that node. Every node needs this package installed
  (the same virtual environment, or `pip install 'deeprl[ray]'`). A task whose worker dies is tried once more
  (a job is deterministic, so a retry gives the same row); a job that raises is not retried.

At most twice as many jobs as there are slots are submitted ahead of the result being waited for, so a long list
of jobs (and their files) is never all in memory at once. A caller that stops early (Ctrl-C, an error) closes
the dispatcher: the pool kills the limited children its jobs wait on; Ray force-cancels the tasks, whose
children are then left to their CPU-time limit.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

RAY_ADDRESS_ENV = "RAY_ADDRESS"


class _Connection:
    """This process's Ray connection: the dispatchers open on it, and whether this module made it (then the last
    one to close disconnects; a connection the caller made is the caller's)."""

    lock = threading.Lock()
    users = 0
    ours = False


J = TypeVar("J")
Job = Callable[[J], dict]


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class DispatchOptions:
    """Where jobs run: `ray` is a Ray cluster's address (None: the local pool); `workers` the local pool's size
    (None: the cores)."""

    ray: str | None = None
    workers: int | None = None

    @classmethod
    def resolve(cls, ray: str | None = None, workers: int | None = None) -> DispatchOptions:
        """The options a command was given, with RAY_ADDRESS standing in for a missing `--ray`."""
        from deeprl.errors import UserError

        if workers is not None and workers < 1:
            raise UserError(f"--workers must be at least 1, not {workers}.")
        address = (ray or os.environ.get(RAY_ADDRESS_ENV) or "").strip() or None
        if address is not None and workers is not None:
            raise UserError("--workers sizes the local pool; with --ray (or RAY_ADDRESS) the cluster's CPUs decide.")
        return cls(ray=address, workers=workers)

    def describe(self) -> str:
        if self.ray is not None:
            return f"Ray cluster at {self.ray}"
        n = self.workers or cores()
        return "one job at a time" if n == 1 else f"local pool of {n}"


class Dispatcher(Protocol):
    """Runs independent jobs; `map` yields one result per job, in the jobs' order."""

    name: str
    slots: int  # jobs that can run at once

    def map(self, fn: Job[J], jobs: Iterable[J], failed: Callable[[J, str], dict]) -> Iterator[dict]: ...

    def close(self) -> None: ...


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]


def call(fn: Job[J], job: J) -> dict:
    """Run one job (in a pool slot or a Ray task); a result that is not a dict is the job's bug."""
    out = fn(job)
    if not isinstance(out, dict):
        raise TypeError(f"{getattr(fn, '__name__', fn)} returned {type(out).__name__}, not a dict")
    return out


def _windowed(
    submit: Callable[[J], Any],
    collect: Callable[[Any], dict],
    cancel: Callable[[Any], None],
    jobs: Iterable[J],
    failed: Callable[[J, str], dict],
    window: int,
) -> Iterator[dict]:
    """Submit up to `window` jobs ahead, yield their results in order; a job that fails is its `failed` row."""
    pending: deque[tuple[J, Any]] = deque()
    it = iter(jobs)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < window:
                try:
                    job = next(it)
                except StopIteration:
                    exhausted = True
                    break
                try:
                    pending.append((job, submit(job)))
                except Exception as exc:  # the pool or the cluster refused it: that job's row, not the run's end
                    pending.append((job, exc))
            if not pending:
                return
            job, handle = pending.popleft()
            if isinstance(handle, Exception):
                yield failed(job, f"could not be started ({_why(handle)})")
                continue
            try:
                result = collect(handle)
            except Exception as exc:
                result = failed(job, _why(exc))
            yield result
    finally:
        for _, handle in pending:
            if not isinstance(handle, Exception):
                cancel(handle)


class LocalPool:
    """Jobs on this machine, at most `workers` at once (each one's model in its own limited child process)."""

    def __init__(self, workers: int | None = None):
        self.slots = max(1, workers or cores())
        self.name = "sequential" if self.slots == 1 else f"local pool ({self.slots})"
        self._executor: ThreadPoolExecutor | None = None
        self._threads: set[int] = set()  # the pool's threads, whose limited children close() stops

    def map(self, fn: Job[J], jobs: Iterable[J], failed: Callable[[J, str], dict]) -> Iterator[dict]:
        if self.slots == 1:
            for job in jobs:
                try:
                    result = call(fn, job)
                except Exception as exc:
                    result = failed(job, _why(exc))
                yield result
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.slots, thread_name_prefix="deeprl-job")
        executor = self._executor

        def run(job: J) -> dict:
            self._threads.add(threading.get_ident())
            return call(fn, job)

        def submit(job: J) -> Future[dict]:
            return executor.submit(run, job)

        def collect(f: Future[dict]) -> dict:
            return f.result()

        def cancel(f: Future[dict]) -> None:
            f.cancel()

        yield from _windowed(submit, collect, cancel, jobs, failed, 2 * self.slots)

    def close(self) -> None:
        """Wait for the pool's threads; when jobs still run (the caller stopped early: Ctrl-C, an error), their
        limited children are killed first, so closing takes no longer than their clean-up."""
        if self._executor is not None:
            from deeprl.leaderboard.sandbox import stop_children

            self._executor.shutdown(wait=False, cancel_futures=True)
            stop_children(self._threads)
            self._executor.shutdown(wait=True)
            self._executor = None


class RayCluster:
    """One Ray task per job on the cluster at `address` (connected on creation, disconnected by close)."""

    def __init__(self, address: str):
        from deeprl.errors import UserError

        try:
            import ray
        except ImportError:
            raise UserError(
                "--ray (or RAY_ADDRESS) needs Ray on this machine and on every node: pip install 'deeprl[ray]'."
            ) from None
        self._ray = ray
        with _Connection.lock:  # one connection per process, shared by the index and the league of one server
            if _Connection.users == 0 and not ray.is_initialized():
                try:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
                except Exception as exc:  # unreachable, no cluster there, a Ray Client address without ray[client]
                    raise UserError(f"Could not connect to the Ray cluster at {address} ({_why(exc)}).") from None
                _Connection.ours = True
            _Connection.users += 1
            self._open = True
        self.address = address
        self.slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.name = f"Ray ({self.slots} CPUs)"
        # one CPU per job: the job's limited child runs one thread; a worker that dies is retried once
        self._remote: Any = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(call)

    def map(self, fn: Job[J], jobs: Iterable[J], failed: Callable[[J, str], dict]) -> Iterator[dict]:
        ray = self._ray

        def submit(job: J) -> Any:
            return self._remote.remote(fn, job)

        def collect(ref: Any) -> dict:
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the job raised: its own exception (as in the pool)
                cause = getattr(exc, "cause", None)
                raise (cause if isinstance(cause, Exception) else exc) from None

        def cancel(ref: Any) -> None:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass

        yield from _windowed(submit, collect, cancel, jobs, failed, 2 * self.slots)

    def close(self) -> None:
        with _Connection.lock:
            if not self._open:
                return
            self._open = False
            _Connection.users -= 1
            if _Connection.users == 0 and _Connection.ours:
                _Connection.ours = False
                if self._ray.is_initialized():
                    self._ray.shutdown()


def open_dispatcher(options: DispatchOptions | None = None) -> Dispatcher:
    """The dispatcher `options` ask for (close it when done, or use `dispatching`)."""
    options = options or DispatchOptions()
    if options.ray is not None:
        return RayCluster(options.ray)
    return LocalPool(options.workers)


@contextmanager
def dispatching(options: DispatchOptions | None = None) -> Iterator[Dispatcher]:
    """`with dispatching(options) as d:` a dispatcher, closed on leaving."""
    d = open_dispatcher(options)
    try:
        yield d
    finally:
        d.close()
