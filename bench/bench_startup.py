"""Where people wait: command start-up and ``larkps demo``, with baselines from the same run.

Start-up (goal: under 0.3 s for ``--version`` and ``startd-cron``): fresh
``python -m larkps ...`` processes next to two baselines measured in the same run:
a bare interpreter (``python -c pass``), and an interpreter importing the
statistics stack (pandas, numpy, the pipeline and the daemon), which is what every
command paid before the parser was built without it.

Demo (goal: under 5 s): ``larkps demo`` in a fresh process and state directory,
next to the raw cost of the data it serves (generated and rendered in one thread,
without HTTP). One in-process cycle counts block generations: each block the
cycle needs is generated once, however many requests for it overlap.

``--before DIR`` adds the same commands run from another source tree (for example
an earlier commit: ``git worktree add /tmp/before <commit>``), so that earlier and
current code are compared under the same load. Cases run interleaved; wall and CPU
time (of the case's own processes) are reported, CPU varying far less on a shared
machine.

    .venv/bin/python bench/bench_startup.py [--repeat 7] [--demo-repeat 3] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from pathlib import Path

PYTHON = sys.executable
STACK = "import pandas, numpy, larkps.pipeline, larkps.daemon"
DAY = 86400
Cases = dict[str, Callable[[], None]]
# `python -m` puts the working directory first on sys.path: run where no larkps lies.
NEUTRAL = tempfile.gettempdir()


def run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Callable[[], None]:
    """A fresh process running argv (output discarded, exit code checked)."""

    def case() -> None:
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env, cwd=NEUTRAL)

    return case


def fresh_demo(out: Path, env: Mapping[str, str] | None = None) -> Callable[[], None]:
    """`larkps demo` into a new directory each time (no state from an earlier run)."""
    runs = count()

    def case() -> None:
        argv = [PYTHON, "-m", "larkps", "demo", "--out", str(out / f"demo-{next(runs)}")]
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True, env=env, cwd=NEUTRAL)

    return case


def cpu_seconds() -> float:
    """CPU (user + system) of this process and its finished children so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def interleaved(cases: Cases, repeat: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of each case, run in turn `repeat` times (all see the same load)."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            wall, cpu = time.perf_counter(), cpu_seconds()
            case()
            times[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
    return times


def report(title: str, times: dict[str, list[tuple[float, float]]]) -> None:
    """Median wall and CPU per case, and their ratios to the first case (the baseline)."""
    print(title)
    print(f"  {'':<52} {'wall':>8} {'ratio':>7} {'CPU':>8} {'ratio':>7}")
    first = next(iter(times.values()))
    base_wall = statistics.median(w for w, _ in first)
    base_cpu = statistics.median(c for _, c in first)
    for name, found in times.items():
        wall = statistics.median(w for w, _ in found)
        cpu = statistics.median(c for _, c in found)
        print(
            f"  {name:<52} {wall:6.3f} s {wall / base_wall:6.2f}x"
            f" {cpu:6.3f} s {cpu / base_cpu:6.2f}x"
        )


def before_env(before: Path | None) -> dict[str, str] | None:
    if before is None:
        return None
    return dict(os.environ, PYTHONPATH=str(before.resolve()), PYTHONDONTWRITEBYTECODE="1")


def startup(repeat: int, ads: Path, before: Path | None) -> None:
    commands = {
        "larkps --version": ["--version"],
        "larkps startd-cron --ads FILE --site ALPHA-T2": [
            *("startd-cron", "--ads", str(ads), "--site", "ALPHA-T2")
        ],
    }
    cases: Cases = {
        "python -c pass (baseline)": run([PYTHON, "-c", "pass"]),
        "python -c 'import pandas, numpy, pipeline, daemon'": run([PYTHON, "-c", STACK]),
    }
    env = before_env(before)
    for name, argv in commands.items():
        if env is not None:
            cases[f"{name} (before)"] = run([PYTHON, "-m", "larkps", *argv], env)
        cases[name] = run([PYTHON, "-m", "larkps", *argv])
    report(f"start-up, {repeat} fresh processes each, interleaved:", interleaved(cases, repeat))


def demo(repeat: int, out: Path, before: Path | None) -> Path:
    """Time `larkps demo` in fresh processes; returns the ads file of its first run."""
    cases: Cases = {"raw generation + rendering, one thread (baseline)": raw_generation}
    env = before_env(before)
    if env is not None:
        cases["larkps demo (before)"] = fresh_demo(out / "before", env)
    cases["larkps demo (fresh process and state directory)"] = fresh_demo(out)
    report(f"demo, {repeat} runs each, interleaved:", interleaved(cases, repeat))
    generations(out / "in-process")
    return out / "demo-0" / "larkps.ads"


def raw_generation() -> None:
    """Generate and render 24 h of every series and event type of the demo mesh."""
    from larkps.embedded import Mesh, MeshConfig
    from larkps.embedded.catalog import event_types

    mesh = Mesh(MeshConfig(sites=4, seed=1))
    now = int(time.time())
    for series in mesh.series:
        for event, _ in event_types(series.kind, mesh.config.flavour):
            mesh.points(series.key, event, now - DAY, now)


def generations(out: Path) -> None:
    """One demo cycle in this process, counting block generations against distinct blocks."""
    from larkps.cli.commands.core import demo_settings
    from larkps.embedded.mesh import Mesh
    from larkps.embedded.series import Series
    from larkps.pipeline import run_cycle

    made: list[tuple[int, int]] = []
    lock = threading.Lock()
    real = Mesh._make

    def counted(self: Mesh, series: Series, index: int) -> object:
        with lock:
            made.append((series.index, index))
        return real(self, series, index)

    Mesh._make = counted  # type: ignore[assignment,method-assign]
    try:
        started = time.perf_counter()
        result = run_cycle(demo_settings(out), int(time.time()))
        seconds = time.perf_counter() - started
    finally:
        Mesh._make = real  # type: ignore[method-assign]
    print(
        f"  one demo cycle in this process: {seconds:.2f} s, {result.report.series} series,"
        f" {len(made)} block generations for {len(set(made))} distinct blocks"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per start-up figure")
    parser.add_argument("--demo-repeat", type=int, default=3, help="runs of larkps demo")
    parser.add_argument("--before", type=Path, help="also run the larkps in this source tree")
    args = parser.parse_args()
    if args.before is not None and not (args.before / "larkps" / "__init__.py").exists():
        parser.error(f"--before: no larkps package in {args.before}")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        ads = demo(args.demo_repeat, Path(tmp), args.before)
        print()
        startup(args.repeat, ads, args.before)


if __name__ == "__main__":
    main()
