"""Messages for people: notes on stderr (once where asked) and progress that suits a terminal or a CI log."""

import sys
import time
from typing import Any

_said: set[str] = set()


def note(message: str, once_key: str | None = None) -> None:
    """Print a note on stderr; with `once_key`, only the first time in this process."""
    if once_key is not None:
        if once_key in _said:
            return
        _said.add(once_key)
    print(f"note: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class Progress:
    """A progress bar (tqdm) on a terminal, plain log lines elsewhere (CI, pipes).

    `update(n, **metrics)` advances by n units and shows the latest metrics (episode return, epsilon, ...).
    """

    def __init__(
        self, total: int, unit: str, desc: str = "train", every_s: float = 5.0, enabled: bool = True, initial: int = 0
    ):
        self.total, self.unit, self.desc = int(total), unit, desc
        self.done = self.start = int(initial)  # a resumed run's earlier units count in done, not in the rate
        self.metrics: dict = {}
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.every_s = every_s
        self.t0 = self._last = time.perf_counter()
        self._bar = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit=unit, desc=desc, dynamic_ncols=True, leave=True, initial=self.start)

    def update(self, n: int = 1, **metrics: Any) -> None:
        self.done += n
        if self.done > self.total:  # never "32768/20000": a run that goes past its estimate shows what it did
            self.total = self.done
            if self._bar is not None:
                self._bar.total = self.total
        self.metrics.update({k: v for k, v in metrics.items() if v is not None})
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            now = time.perf_counter()
            if now - self._last > 0.2:
                self._bar.set_postfix(self._fmt(), refresh=False)
                self._last = now
            return
        now = time.perf_counter()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def _fmt(self) -> dict:
        return {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in self.metrics.items()}

    def _line(self) -> None:
        elapsed = time.perf_counter() - self.t0
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        extras = " ".join(f"{k}={v}" for k, v in self._fmt().items())
        print(
            f"[{self.desc}] {self.done}/{self.total} {self.unit} ({rate:,.0f} {self.unit}/s) {extras}".rstrip(),
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix(self._fmt(), refresh=True)
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self._line()


class TensorBoard:
    """TensorBoard scalars under `logdir`, written by torch's public FileWriter (the event file TensorBoard reads).

    Only scalars are logged here, and `add_scalars` writes several of one step as ONE event (a Summary with a
    value each, as tf.summary.merge wrote them): every event is a queue hand-off to the writer thread, which then
    checksums it in pure Python while holding the GIL; on a short run (a PPO update every few hundredths of a
    second) an event per scalar, as SummaryWriter.add_scalar writes them, cost about a tenth of the training time.
    """

    def __init__(self, logdir: str):
        from torch.utils.tensorboard.writer import FileWriter

        self._file = FileWriter(logdir)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.add_scalars([(tag, value)], step)

    def add_scalars(self, items: list[tuple[str, float]], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._file.add_summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in items]), step)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
