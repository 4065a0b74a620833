"""A cache of pipeline stages keyed by a fingerprint of their config and inputs.

``StageCache.run(name, spec, build)`` returns ``<root>/<name>-<fingerprint>/``: reused when its ``DONE`` marker
exists, otherwise built by ``build(work_dir)`` in ``<...>.partial`` (kept across a kill, so a stage that
checkpoints — training — resumes there) and renamed into place when finished. ``force`` rebuilds.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable


def fingerprint(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


class StageCache:
    def __init__(self, root: str | Path, force: bool | set[str] = False, log=None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.force = force
        self.timings: list[tuple[str, float, str]] = []  # (stage, own seconds, "built" | "cached")
        self.recorded: dict[str, float] = {}  # stage -> own seconds when it was built (this run or an earlier one)
        self._child_seconds: list[float] = []  # stack: time spent in stages built inside the current one
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))

    def path(self, name: str, spec: dict) -> Path:
        return self.root / f"{name}-{fingerprint(spec)}"

    def done(self, name: str, spec: dict) -> bool:
        return (self.path(name, spec) / "DONE").exists()

    def _forced(self, name: str) -> bool:
        return self.force is True or (isinstance(self.force, set) and any(name.startswith(f) for f in self.force))

    def run(self, name: str, spec: dict, build: Callable[[Path], None]) -> Path:
        final = self.path(name, spec)
        work = final.with_name(final.name + ".partial")
        if self._forced(name):
            shutil.rmtree(final, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
            self.force = self.force - {name} if isinstance(self.force, set) else self.force
        if (final / "DONE").exists():
            if not any(n == name for n, _, _ in self.timings):
                self.timings.append((name, 0.0, "cached"))
                self.recorded[name] = _recorded_seconds(final)
                self.log(f"[stage] {name}: cached ({final})")
            return final
        resumed = work.exists()
        work.mkdir(parents=True, exist_ok=True)
        self.log(f"[stage] {name}: {'resuming' if resumed else 'building'} ...")
        t0 = time.perf_counter()
        self._child_seconds.append(0.0)
        try:
            build(work)
        finally:
            children = self._child_seconds.pop()
        total = time.perf_counter() - t0
        if self._child_seconds:
            self._child_seconds[-1] += total
        dt = total - children  # this stage's own time, without the stages it had to build first
        (work / "stage.json").write_text(json.dumps({"name": name, "spec": spec, "seconds": dt}, indent=1,
                                                    default=str))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
        (final / "DONE").touch()
        self.timings.append((name, dt, "built"))
        self.recorded[name] = dt
        self.log(f"[stage] {name}: built in {dt:.1f}s")
        return final

    def summary(self, wall: float | None = None) -> str:
        lines = [f"  {n:<48} {s:7.1f}s  {k}" for n, s, k in self.timings]
        lines.append(f"  {'total':<48} {sum(s for _, s, _ in self.timings):7.1f}s")
        if wall is not None:
            lines += ["by kind:"] + [f"  {kind:<48} {s:7.1f}s  {100 * s / max(wall, 1e-9):3.0f}%  ({n} built)"
                                     for kind, s, n in split_by_kind(self.timings, wall)]
        return "\n".join(lines)


def _recorded_seconds(stage_dir: Path) -> float:
    try:
        return float(json.loads((stage_dir / "stage.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


STAGE_KINDS = (  # (kind, does a stage name belong to it)
    ("world, benchmark sets, preference data", lambda n: n in ("world", "benchmarks", "data")),
    ("initial policies (SFT)", lambda n: n.startswith("initial-")),
    ("judged benchmarks (generation + judging)", lambda n: n.startswith("bench-")),
    ("gold-reward samples", lambda n: n.startswith("gold-")),
    ("training (every method, RM, reverse DPO)", lambda n: True),
)


def split_by_kind(timings: list[tuple[str, float, str]], wall: float) -> list[tuple[str, float, int]]:
    """``(kind, seconds, stages built)`` per kind of stage, plus the time spent outside every stage
    (loading models for tables, reward accuracies, judge agreement, plots, the report) as ``wall − Σ stages``."""
    rows = {kind: [0.0, 0] for kind, _ in STAGE_KINDS}
    for name, seconds, how in timings:
        kind = next(k for k, belongs in STAGE_KINDS if belongs(name))
        rows[kind][0] += seconds
        rows[kind][1] += how == "built"
    outside = wall - sum(s for _, s, _ in timings)
    return [(k, s, n) for k, (s, n) in rows.items()] + [("outside stages (tables, plots, report)", outside, 0)]
