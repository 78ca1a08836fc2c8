"""Progress reporting for long work: a tqdm bar on a terminal, periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Progress over ``total`` units with rate and ETA.

    On a terminal it draws a tqdm bar; when stderr is not a terminal (logs, Ray workers) it prints
    one line every ``interval_s`` seconds: ``desc: done/total (pct) rate unit/s ETA s``.
    ``disable=True`` silences it.
    """

    def __init__(self, total: float, desc: str = "", unit: str = "it", *, interval_s: float = 10.0,
                 disable: bool = False, stream: Any = None, initial: float = 0):
        self.total = float(total)
        self.desc = desc
        self.unit = unit
        self.n = float(initial)
        self._start_n = float(initial)
        self.interval_s = interval_s
        self.disable = disable
        self.stream = stream or sys.stderr
        self._t0 = time.perf_counter()
        self._last = self._t0
        self._bar = None
        if not disable and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, file=self.stream, dynamic_ncols=True)

    @property
    def rate(self) -> float:
        dt = time.perf_counter() - self._t0
        return (self.n - self._start_n) / dt if dt > 0 else 0.0

    @property
    def eta_s(self) -> float:
        r = self.rate
        return (self.total - self.n) / r if r > 0 else float("inf")

    def update(self, k: float = 1, **postfix: Any) -> None:
        self.n += k
        if self.disable:
            return
        if self._bar is not None:
            self._bar.update(k)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last >= self.interval_s or self.n >= self.total:
            self._last = now
            extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in postfix.items())
            pct = 100.0 * self.n / self.total if self.total else 100.0
            print(f"{self.desc}: {self.n:.0f}/{self.total:.0f} ({pct:.0f}%) {self.rate:.3g} {self.unit}/s "
                  f"ETA {self.eta_s:.0f}s {extra}".rstrip(), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
