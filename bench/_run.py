"""Running commands as a user does and printing what they cost: shared by the command-line benchmarks.

A command is timed from just before its process starts to the moment it is reaped, so the figure includes
the interpreter's start-up and every import, as a user waits for it. The child is reaped with wait4, which
gives its CPU time and its peak RSS (ru_maxrss). Linux carries the parent's RSS high-water mark into a
child's ru_maxrss across fork and exec, so the benchmarks keep their own process small (they never import
digest) and print their own peak next to the figures; the child's own high-water mark (VmHWM of its
address space) is also sampled while it runs, as a cross-check.
"""

from __future__ import annotations

import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class SetupError(Exception):
    """The benchmark cannot run here (missing tool, a command that fails, a server that will not start)."""


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise SetupError(f"{name} not found: {hint}")
    return found


def digest_command() -> list[str]:
    """The `digest` console script of the environment this benchmark runs in (what `pip install` made)."""
    beside = Path(sys.executable).parent / "digest"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("digest")
    if not found:
        raise SetupError("the digest command is not installed: pip install -e . in this environment")
    return [found]


def user_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment as a user's shell has it: no DIGEST_* variables but `extra`, and bytecode caches
    written and read (a CI or test setting of PYTHONDONTWRITEBYTECODE would make every start-up compile
    digest's modules from source, which an installed package never does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") and k != "PYTHONDONTWRITEBYTECODE"}
    return env | dict(extra or {})


def warm_bytecode() -> None:
    """Compile digest's modules once, as `pip install` does for a regular install (an editable one compiles
    on first import), so no timed run pays for it."""
    spec = importlib.util.find_spec("digest")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SetupError("digest is not installed in this environment: pip install -e .")
    cmd = [sys.executable, "-m", "compileall", "-q", *spec.submodule_search_locations]
    run(cmd, env=user_env()).check("python -m compileall")


@dataclass
class Ran:
    wall: float  # seconds from start to reaping
    returncode: int
    stdout: str
    stderr: str
    cpu: float  # user + system seconds of the child
    maxrss_mb: float  # ru_maxrss from wait4
    hwm_mb: float  # the child's own VmHWM, last sample before it exited (0 when not sampled)

    def check(self, what: str, ok: Sequence[int] = (0,)) -> Ran:
        if self.returncode not in ok:
            tail = (self.stderr.strip() or self.stdout.strip())[-1500:]
            raise SetupError(f"{what} exited {self.returncode}:\n{tail}")
        return self


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    sample_memory: bool = False,
    timeout: float = 3600,
) -> Ran:
    """Run `cmd` to its end, in `env` (default: user_env()); its output goes to files (no pipe can fill and
    stall it)."""
    env = user_env() if env is None else env
    out_path, err_path = _scratch("out"), _scratch("err")
    with out_path.open("w+b") as out, err_path.open("w+b") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), env=dict(env), cwd=cwd, stdout=out, stderr=err)
        hwm = _HwmSampler(proc.pid) if sample_memory else None
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if hwm is not None:
            hwm.stop()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    out_path.unlink()
    err_path.unlink()
    return Ran(
        wall=wall,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        cpu=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss / 1024,
        hwm_mb=hwm.peak_mb if hwm else 0.0,
    )


_SCRATCH = Path(os.environ.get("TMPDIR", "/tmp"))
_counter = 0


def _scratch(kind: str) -> Path:
    global _counter
    _counter += 1
    return _SCRATCH / f"digest-bench-{os.getpid()}-{_counter}.{kind}"


class _HwmSampler:
    """Reads the child's VmHWM every few milliseconds; the high-water mark only grows, so the last read is
    the peak up to a few milliseconds before the end."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.peak_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
                        break
            except (OSError, ValueError):
                pass
            self._done.wait(0.005)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def own_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load1() -> float:
    return os.getloadavg()[0]


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the table ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    measure: str
    value: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def paired(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The median of a[i] / b[i]: each pair ran in the same repetition, within a minute of each other, so a
    change of the machine's load between repetitions cancels out (a ratio of medians would pair a quiet
    minute with a busy one)."""
    return median([x / y for x, y in zip(a, b, strict=True) if y]) if a and b else None


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, *args: str) -> None:
        self.rows.append(Row(*args))

    def print(self) -> None:
        print(f"\n{self.title}")
        for note in self.notes:
            print(note)
        if self.loads:
            loads = " → ".join(f"{x:.1f}" for x in self.loads)
            print(
                f"load average (1 min) {loads} on {os.cpu_count()} CPUs (other work on the machine skews every figure)"
            )
        print(f"benchmark process peak RSS {own_peak_mb():.0f} MB (a child's ru_maxrss is never below it)")
        if not self.rows:
            return
        heads = ("measure", "value", "baseline", "ratio", "target", "result")
        cells = [heads] + [(r.measure, r.value, r.baseline, r.ratio, r.target, r.result) for r in self.rows]
        widths = [max(len(c[i]) for c in cells) for i in range(len(heads))]
        print()
        for n, c in enumerate(cells):
            line = f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:>{widths[2]}}  {c[3]:>{widths[3]}}"
            print(f"{line}  {c[4]:<{widths[4]}}  {c[5]}".rstrip())
            if n == 0:
                print("-" * (sum(widths) + 10))


def finish(report: Report, work: Callable[[], None]) -> int:
    """Run a benchmark's measures into `report` and print it with the load average before and after:
    0 when the figures were measured (targets met or not), 2 when the setup failed."""
    try:
        work()
    except SetupError as exc:
        report.loads.append(load1())
        report.print()
        log(f"setup error: {exc}")
        return 2
    report.loads.append(load1())
    report.print()
    return 0


def graph_mb(root: object) -> float:
    """The size of `root` and of everything only it references (modules, classes and functions left out),
    in MB: what a list of subscribers holds in memory."""
    import gc
    import types

    gc.collect()
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
    seen: set[int] = set()
    size, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return size / 2**20
