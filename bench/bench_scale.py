"""The scaling curve: the whole pipeline at 1/8, 1/4, 1/2 and 1x the full preset (DuckDB target).

`python -m bench scale` (or `python -m bench.bench_scale [--fresh] [--sizes 1/8,1/4]`) runs, for
each size, smallest first:

    generate  ml data generate --preset full --rows N --seed 42
    gate      ml validate raw (expected data lines N +- 5 %)
    dbt       dbt build (every model, data test and unit test) into a DuckDB file
    train     ml train --no-search (the grid's default params: the refit, evaluation, baselines
              and the model card, without the random search; SCALE_TRAIN_ARGS to change)
    export    ml export (Keras KNN SavedModel + model.tar.gz)

and records per (size, stage): wall time, peak RSS of the process tree (sampled every 50 ms), the
1-minute load average sampled during the stage, and a reference measured in the same run just
before the stage: a fixed single-threaded CPU workload (`calibrate`), whose time divided by its
best time in this file says how much slower the machine was than at its quietest. Results go to
bench/results/scale.json, .md and .png (log-log, with the exponent b of time ~ rows^b fitted per
stage by least squares), rewritten after every stage so a partial run leaves a partial curve.

Resumable: each measurement is kept in BENCH_DATA_DIR/scale/state.json with a fingerprint of the
code the stage runs (the generator, gate, dbt project, trainer, exporter sources) and of the
measurement it depends on. Rerunning measures only what is missing or stale: after the generator
changes, every stage of every size is redone; after the trainer changes, train and export only.
`--fresh` forgets everything. Each stage holds the shared heavy-job lock
(/tmp/music-recsys-heavy.lock, BENCH_LOCK) while it runs, so two heavy benchmarks never overlap.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from bench.common import BENCH_DATA_DIR, REPO_ROOT, RESULTS_DIR, median, run_measured, write_results

FULL_ROWS = 12_900_000  # the full preset's target rows (ml/data/generate.py PRESETS["full"])
SIZES = (Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1))
STAGES = ("generate", "gate", "dbt", "train", "export")
SEED = 42
WORK = BENCH_DATA_DIR / "scale"
STATE = WORK / "state.json"
LOCK = Path(os.environ.get("BENCH_LOCK", "/tmp/music-recsys-heavy.lock"))
TRAIN_ARGS = tuple(os.environ.get("SCALE_TRAIN_ARGS", "--no-search").split())

# The sources each stage runs: a change here makes that stage's measurements (and the ones built on
# them) stale. Paths relative to the repository; directories are hashed file by file.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "generate": ("ml/data",),
    "gate": ("ml/quality", "gx/thresholds.yml", "gx/expectations"),
    "dbt": ("dbt_project/models", "dbt_project/macros", "dbt_project/dbt_project.yml", "profiles"),
    "train": (
        "ml/train.py",
        "ml/corpus.py",
        "ml/word2vec.py",
        "ml/search.py",
        "ml/rankers.py",
        "ml/baselines.py",
        "ml/baseline_table.py",
        "ml/evaluate.py",
        "ml/artefacts.py",
        "ml/shapes.py",
        "ml/report/model_card.py",
        "ml/grid.yml",
    ),
    "export": (
        "ml/export.py",
        "ml/knn.py",
        "ml/knn_keras.py",
        "ml/endpoint_contract.py",
    ),
}


@dataclass(frozen=True)
class Size:
    fraction: Fraction

    @property
    def rows(self) -> int:
        return int(FULL_ROWS * self.fraction)

    @property
    def label(self) -> str:
        return "1x" if self.fraction == 1 else str(self.fraction)

    @property
    def dir(self) -> Path:
        return WORK / f"rows_{self.rows}"

    @property
    def raw(self) -> Path:
        return self.dir / "spotify_dataset.csv"

    @property
    def warehouse(self) -> Path:
        return self.dir / "warehouse.duckdb"

    @property
    def models(self) -> Path:
        return self.dir / "models"


# --- what each stage runs ----------------------------------------------------------------------


def _ml(*args: str) -> list[str]:
    return [sys.executable, "-m", "ml.cli", *args]


def stage_command(stage: str, size: Size) -> tuple[list[str], dict[str, str], Path | None]:
    """(command, extra environment, working directory) of one stage at one size."""
    env = {
        "RAW_CSV": str(size.raw),
        "DUCKDB_PATH": str(size.warehouse),
        "MODELS_DIR": str(size.models),
        "REPORTS_DIR": str(size.dir / "reports"),
        "SEED": str(SEED),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if stage == "generate":
        return (
            _ml(
                "data",
                "generate",
                "--preset",
                "full",
                "--rows",
                str(size.rows),
                "--seed",
                str(SEED),
                "--out",
                str(size.raw),
            ),
            env,
            None,
        )
    if stage == "gate":
        lo, hi = int(size.rows * 0.95), int(size.rows * 1.05)
        return _ml("validate", "raw", "--csv", str(size.raw), "--rows", f"{lo}:{hi}"), env, None
    if stage == "dbt":
        from ml.warehouse import DBT_PROJECT_DIR, dbt_command

        cmd = dbt_command(("build",), size.dir / "dbt", dbt_vars={"split_seed": SEED}, quiet=True)
        return cmd, {**env, "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"}, DBT_PROJECT_DIR
    if stage == "train":
        return _ml("train", "--seed", str(SEED), *TRAIN_ARGS), env, None
    if stage == "export":
        return _ml("export"), env, None
    raise ValueError(f"unknown stage {stage!r}")


def prepare(stage: str, size: Size) -> None:
    """Remove what the stage writes, so a rerun measures the work and not a cache."""
    if stage == "generate":
        size.dir.mkdir(parents=True, exist_ok=True)
        size.raw.unlink(missing_ok=True)
    elif stage == "dbt":
        for stale in (size.warehouse, size.warehouse.with_name(size.warehouse.name + ".wal")):
            stale.unlink(missing_ok=True)
    elif stage == "train":
        shutil.rmtree(size.models, ignore_errors=True)  # the corpus and search caches too


def output_exists(stage: str, size: Size) -> bool:
    if stage == "generate":
        return size.raw.exists()
    if stage == "dbt":
        return size.warehouse.exists()
    if stage == "train":
        return (size.models / "latest" / "vectors.kv").exists()
    if stage == "export":
        return (size.models / "latest" / "model.tar.gz").exists()
    return True


# --- fingerprints, state, measuring ------------------------------------------------------------


def code_fingerprint(stage: str) -> str:
    h = hashlib.sha256()
    for rel in STAGE_CODE.get(stage, ()):
        root = REPO_ROOT / rel
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if path.exists() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(REPO_ROOT)).encode())
                h.update(path.read_bytes())
    h.update(" ".join(TRAIN_ARGS).encode() if stage == "train" else b"")
    return h.hexdigest()[:16]


def load_state() -> dict[str, Any]:
    return json.loads(STATE.read_text()) if STATE.exists() else {"measurements": {}}


def save_state(state: dict[str, Any]) -> None:
    STATE.parent.mkdir(parents=True, exist_ok=True)
    tmp = STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, STATE)


def key(size: Size, stage: str) -> str:
    return f"{size.rows}/{stage}"


def is_current(state: dict[str, Any], size: Size, stage: str) -> bool:
    """Measured with today's code, on top of today's measurement of the stage before, output there."""
    m = state["measurements"].get(key(size, stage))
    if m is None or m["code"] != code_fingerprint(stage) or not output_exists(stage, size):
        return False
    i = STAGES.index(stage)
    if i == 0:
        return True
    before = state["measurements"].get(key(size, STAGES[i - 1]))
    return (
        before is not None
        and m["upstream"] == before["measured_at"]
        and is_current(state, size, STAGES[i - 1])
    )


def calibrate(n: int = 3) -> float:
    """Seconds of a fixed single-threaded workload (median of n): the same-run reference."""
    code = "import time; t = time.perf_counter(); s = sum(i * i for i in range(3_000_000)); print(time.perf_counter() - t)"
    times = []
    for _ in range(n):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout))
    return median(times)


class LoadSampler:
    """The 1-minute load average every 5 s while a stage runs."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)

    def _run(self, every_s: float) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(every_s):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


@contextlib.contextmanager
def heavy_lock() -> Iterator[float]:
    """Hold the shared heavy-job lock; yields the seconds spent waiting for it."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def measure(stage: str, size: Size, upstream: str | None) -> dict[str, Any]:
    cmd, env, cwd = stage_command(stage, size)
    with heavy_lock() as waited:
        prepare(stage, size)
        reference = calibrate()
        with LoadSampler() as load:
            figures = run_measured(cmd, env=env, cwd=cwd)
    return {
        "rows": size.rows,
        "size": size.label,
        "stage": stage,
        "wall_s": round(figures.wall_s, 2),
        "cpu_s": round(getattr(figures, "cpu_s", 0.0), 2),
        "peak_rss_mb": round(figures.peak_rss_mb, 1),
        "load1_mean": round(sum(load.samples) / len(load.samples), 2),
        "load1_max": round(max(load.samples), 2),
        "calibrate_s": round(reference, 4),
        "lock_wait_s": round(waited, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "code": code_fingerprint(stage),
        "upstream": upstream,
        "git": _git_head(),
        "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
    }


def _git_head() -> str:
    out = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or "unknown"


def data_lines(size: Size) -> int | None:
    """Data lines of the generated file (the x axis: rows actually written, header excluded)."""
    if not size.raw.exists():
        return None
    n = 0
    with open(size.raw, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
    return n - 1


# --- fits, plot, report ------------------------------------------------------------------------


def fit_exponent(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least-squares fit of log y = a + b log x: (b, r^2); None with fewer than two sizes."""
    if len(xs) < 2:
        return None
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((x - mx) ** 2 for x in lx)
    b = sum((x - mx) * (y - my) for x, y in zip(lx, ly, strict=True)) / sxx
    ss_res = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(lx, ly, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ly)
    return b, (1 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def summarise(rows_of: dict[int, int], measurements: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stage: points (rows, time, memory, load), fitted exponents of time, load-normalised time
    and peak memory. Load-normalised time = wall / (calibrate / fastest calibrate in this file)."""
    best_cal = min((m["calibrate_s"] for m in measurements), default=1.0)
    fits: dict[str, Any] = {}
    for stage in (*STAGES, "total"):
        pts = sorted((m for m in measurements if m["stage"] == stage), key=lambda m: m["rows"])
        if not pts:
            continue
        xs = [float(rows_of.get(m["rows"], m["rows"])) for m in pts]
        out: dict[str, Any] = {"sizes": [m["size"] for m in pts]}
        cpu = [m.get("cpu_s") or 0.0 for m in pts]
        for name, ys in (
            ("time", [m["wall_s"] for m in pts]),
            ("cpu_time", cpu if all(c > 0 for c in cpu) else []),
            ("time_load_normalised", [m["wall_s"] * best_cal / m["calibrate_s"] for m in pts]),
            ("peak_memory", [m["peak_rss_mb"] for m in pts]),
        ):
            fit = fit_exponent(xs, ys) if ys else None
            out[name] = None if fit is None else {"exponent": round(fit[0], 3), "r2": round(fit[1], 3)}
            if fit is not None and len(xs) > 2:  # the slope between the two largest sizes: fixed
                last = fit_exponent(xs[-2:], ys[-2:])  # costs (startup, parsing) weigh less there
                out[name]["last_pair_exponent"] = round(last[0], 3) if last else None
        fits[stage] = out
    return fits


def totals(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A synthetic 'total' stage per size once every stage of it is measured."""
    out = []
    for rows in sorted({m["rows"] for m in measurements}):
        ms = [m for m in measurements if m["rows"] == rows]
        if len(ms) == len(STAGES):
            out.append(
                {
                    "rows": rows,
                    "size": ms[0]["size"],
                    "stage": "total",
                    "wall_s": round(sum(m["wall_s"] for m in ms), 2),
                    "cpu_s": round(sum(m.get("cpu_s") or 0.0 for m in ms), 2),
                    "peak_rss_mb": max(m["peak_rss_mb"] for m in ms),
                    "calibrate_s": median([m["calibrate_s"] for m in ms]),
                    "load1_mean": round(
                        sum(m["load1_mean"] * m["wall_s"] for m in ms) / sum(m["wall_s"] for m in ms), 2
                    ),
                }
            )
    return out


def plot(
    rows_of: dict[int, int], measurements: list[dict[str, Any]], fits: dict[str, Any], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for stage in STAGES:
        pts = sorted((m for m in measurements if m["stage"] == stage), key=lambda m: m["rows"])
        if not pts:
            continue
        xs = [rows_of.get(m["rows"], m["rows"]) for m in pts]
        for ax, field, fit_name in ((axes[0], "wall_s", "time"), (axes[1], "peak_rss_mb", "peak_memory")):
            fit = fits.get(stage, {}).get(fit_name)
            label = stage + (f"  b={fit['exponent']:.2f}" if fit else "")
            ax.plot(xs, [m[field] for m in pts], marker="o", label=label)
    for ax, title, unit in (
        (axes[0], "wall time per stage", "seconds"),
        (axes[1], "peak RSS per stage", "MB"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("raw rows (data lines)")
        ax.set_ylabel(unit)
        ax.set_title(f"{title} (log-log; b: fitted exponent)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def projections(
    rows_of: dict[int, int], measurements: list[dict[str, Any]], fits: dict[str, Any]
) -> dict[str, Any]:
    """Per stage with a fit: time and peak memory at 10x and 100x FULL_ROWS, extrapolated from the
    largest measured size (load-normalised time, so the quietest machine state in the file)."""
    best_cal = min((m["calibrate_s"] for m in measurements), default=1.0)
    out: dict[str, Any] = {}
    for stage, fit in fits.items():
        if not fit.get("time_load_normalised") or not fit.get("peak_memory"):
            continue
        last = max((m for m in measurements if m["stage"] == stage), key=lambda m: m["rows"])
        rows = rows_of.get(last["rows"], last["rows"])
        t0 = last["wall_s"] * best_cal / last["calibrate_s"]
        t_fit = fit.get("cpu_time") or fit["time_load_normalised"]
        b_t = t_fit.get("last_pair_exponent") or t_fit["exponent"]
        b_m = fit["peak_memory"]["exponent"]
        out[stage] = {"from": last["size"]}
        for factor in (10, 100):
            ratio = FULL_ROWS * factor / rows
            out[stage][f"{factor}x"] = {
                "s": round(t0 * ratio**b_t, 1),
                "gb": round(last["peak_rss_mb"] * ratio**b_m / 1024, 2),
            }
    return out


PHASES = ("load", "corpus", "refit", "evaluate_valid", "evaluate_test", "baselines", "artefacts")


def train_details(size: Size) -> dict[str, Any] | None:
    """What the train stage's run folder says about itself: phase seconds (timings.json), the fit
    (params.json: vocabulary, words trained) and the split sizes (fingerprint.json)."""
    run = size.models / "latest"
    try:
        timings = json.loads((run / "timings.json").read_text())
        fit = json.loads((run / "params.json").read_text())["fit"]
        counts = json.loads((run / "fingerprint.json").read_text())["split_role_rows"]
    except (OSError, ValueError, KeyError):
        return None
    return {
        "phases_s": {p: timings[p] for p in PHASES if p in timings},
        "vocab_size": fit.get("vocab_size"),
        "trained_words": fit.get("trained_words"),
        "words_per_s_per_worker": fit.get("words_per_s_per_worker"),
        "train_rows": counts.get("train/train"),
    }


def phase_lines(rows_of: dict[int, int], measurements: list[dict[str, Any]]) -> tuple[list[str], dict]:
    """The train stage by phase (from the run folders): a table per size and a fitted exponent."""
    sizes = [Size(s) for s in SIZES if key(Size(s), "train") in {bs_key(m) for m in measurements}]
    details = {s.label: (s, train_details(s)) for s in sizes}
    details = {k: v for k, v in details.items() if v[1] is not None}
    if not details:
        return [], {}
    xs = [float(rows_of.get(s.rows, s.rows)) for s, _ in details.values()]
    head = "| phase | " + " | ".join(details) + " | b |"
    lines = [
        "",
        "The train stage by phase (seconds, from each run's timings.json; b fitted over the sizes):",
        "",
        head,
        "|---|" + "---:|" * (len(details) + 1),
    ]
    fits: dict[str, Any] = {}
    rows_of_phase = [(p, [d["phases_s"].get(p) for _, d in details.values()]) for p in PHASES]
    extra = [(name, [d.get(name) for _, d in details.values()]) for name in ("vocab_size", "trained_words")]
    for name, values in [*rows_of_phase, *extra]:
        if any(v is None for v in values):
            continue
        fit = fit_exponent(xs, [max(float(v), 1e-3) for v in values])
        fits[name] = None if fit is None else round(fit[0], 3)
        cells = " | ".join(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" for v in values)
        lines.append(f"| {name} | {cells} | {'-' if fit is None else f'{fit[0]:.2f}'} |")
    return lines, {
        "sizes": list(details),
        "exponents": fits,
        "details": {k: d for k, (_, d) in details.items()},
    }


def bs_key(m: dict[str, Any]) -> str:
    return f"{m['rows']}/{m['stage']}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.1f} h"


def report(state: dict[str, Any]) -> None:
    """bench/results/scale.*: the current measurements (stale ones - their code changed since, or an
    earlier stage was measured again - are counted, not shown, until they are measured again)."""
    everything_measured = sorted(
        state["measurements"].values(), key=lambda m: (m["rows"], STAGES.index(m["stage"]))
    )
    measurements = [
        m for m in everything_measured if is_current(state, Size(Fraction(m["rows"], FULL_ROWS)), m["stage"])
    ]
    n_stale = len(everything_measured) - len(measurements)
    rows_of = {int(k): v for k, v in state.get("data_lines", {}).items()}
    everything = measurements + totals(measurements)
    fits = summarise(rows_of, everything)
    missing = [
        key(s, st) for s in map(Size, SIZES) for st in STAGES if key(s, st) not in state["measurements"]
    ]
    if measurements:
        plot(rows_of, measurements, fits, RESULTS_DIR / "scale.png")
    lines = [
        "Pipeline at 1/8, 1/4, 1/2 and 1x the full preset (DuckDB target): `python -m bench scale`.",
        f"train = `ml train {' '.join(TRAIN_ARGS)}` (no random search: the grid's default params, refit, "
        "evaluation, baselines, model card). Time is wall seconds; peak = RSS of the process tree; load = "
        "1-min load average during the stage (2 CPUs); cal = the same-run reference (a fixed single-threaded "
        "workload timed just before the stage; its slowdown over the quietest in this file is the load factor).",
        "",
        "| size | rows | stage | wall s | CPU s | peak MB | load mean/max | cal s (x quietest) | measured |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    best_cal = min((m["calibrate_s"] for m in measurements), default=1.0)
    for m in measurements:
        lines.append(
            f"| {m['size']} | {rows_of.get(m['rows'], m['rows']):,} | {m['stage']} | {m['wall_s']:,.1f} | "
            f"{m.get('cpu_s') or 0:,.1f} | "
            f"{m['peak_rss_mb']:,.0f} | {m['load1_mean']:.1f}/{m['load1_max']:.1f} | "
            f"{m['calibrate_s']:.3f} (x{m['calibrate_s'] / best_cal:.2f}) | {m['measured_at']} |"
        )
    lines += [
        "",
        "Fitted exponents b (value ~ rows^b, least squares on log-log over the measured sizes; r^2 beside):",
        "",
        "| stage | sizes | wall time b (r2) | CPU time b (r2) | load-normalised wall b (r2) | peak memory b (r2) |",
        "|---|---|---:|---:|---:|---:|",
    ]

    def cell(fit: dict[str, Any] | None) -> str:
        if fit is None:
            return "-"
        last = fit.get("last_pair_exponent")
        return f"{fit['exponent']:.2f} ({fit['r2']:.2f})" + (
            f"; last pair {last:.2f}" if last is not None else ""
        )

    for stage, fit in fits.items():
        lines.append(
            f"| {stage} | {', '.join(fit['sizes'])} | {cell(fit['time'])} | {cell(fit.get('cpu_time'))} | "
            f"{cell(fit['time_load_normalised'])} | {cell(fit['peak_memory'])} |"
        )
    projected = projections(rows_of, everything, fits)
    if projected:
        lines += [
            "",
            "Extrapolated to 10x and 100x the real file (12.9M rows) on this machine type, from the largest "
            "measured size (its load-normalised wall time) with the CPU-time exponent between the two largest sizes (least "
            "sensitive to the load; the load-normalised wall exponent without CPU figures) and the memory exponent (a "
            "projection, not a measurement; docs/scaling.md):",
            "",
            "| stage | from | 10x time | 10x peak | 100x time | 100x peak |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for stage, p in projected.items():
            lines.append(
                f"| {stage} | {p['from']} | {_duration(p['10x']['s'])} | {p['10x']['gb']:,.1f} GB | "
                f"{_duration(p['100x']['s'])} | {p['100x']['gb']:,.1f} GB |"
            )
    more, phases = phase_lines(rows_of, measurements)
    lines += more
    missing = [
        k
        for k in missing
        if k not in {key(Size(Fraction(m["rows"], FULL_ROWS)), m["stage"]) for m in measurements}
    ]
    missing += [
        key(Size(Fraction(m["rows"], FULL_ROWS)), m["stage"])
        for m in everything_measured
        if m not in measurements
    ]
    if n_stale:
        lines += ["", f"Stale ({n_stale}, code changed since; measured again on the next run, not shown)."]
    if missing:
        lines += ["", f"Not measured yet or stale ({len(missing)}): " + ", ".join(sorted(set(missing)))]
    lines += ["", "Plot: scale.png. Rerun (measures only what is missing or stale): `python -m bench scale`."]
    write_results(
        "scale",
        {
            "train_args": list(TRAIN_ARGS),
            "sizes": [str(s) for s in SIZES],
            "stages": list(STAGES),
            "data_lines": rows_of,
            "measurements": measurements,
            "totals": totals(measurements),
            "fits": fits,
            "projections": projected,
            "train_phases": phases,
            "missing": missing,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        lines,
    )


# --- main --------------------------------------------------------------------------------------


def run(
    sizes: list[Size], fresh: bool, stages: tuple[str, ...] = STAGES, say: Callable[[str], None] = print
) -> dict[str, Any]:
    state = {"measurements": {}} if fresh else load_state()
    state.setdefault("data_lines", {})
    for size in sizes:
        for i, stage in enumerate(STAGES):
            if stage not in stages:
                continue
            if i and not is_current(state, size, STAGES[i - 1]):
                raise SystemExit(
                    f"scale {size.label} {stage}: {STAGES[i - 1]} is not measured yet (add it to --stages)"
                )
            if is_current(state, size, stage):
                say(
                    f"scale {size.label} {stage}: measured {state['measurements'][key(size, stage)]['measured_at']}, kept"
                )
                continue
            upstream = state["measurements"][key(size, STAGES[i - 1])]["measured_at"] if i else None
            say(f"scale {size.label} ({size.rows:,} rows) {stage}: running")
            m = measure(stage, size, upstream)
            state["measurements"][key(size, stage)] = m
            if stage == "generate":
                state["data_lines"][str(size.rows)] = data_lines(size)
            save_state(state)
            say(
                f"  {m['wall_s']:,.1f} s, peak {m['peak_rss_mb']:,.0f} MB, load {m['load1_mean']:.1f}, cal {m['calibrate_s']:.3f} s"
            )
            report(state)
    report(state)
    return state


def parse_sizes(text: str) -> list[Size]:
    return [Size(Fraction(part.strip())) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--fresh", action="store_true", help="forget earlier measurements")
    parser.add_argument(
        "--sizes", default=",".join(str(s) for s in SIZES), help="fractions of the full preset"
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="only these stages (each needs the one before it measured), e.g. generate,gate,dbt",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite bench/results/scale.* from the state"
    )
    args = parser.parse_args(argv if argv is not None else [])
    if args.report_only:
        report(load_state())
        return
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
    run(parse_sizes(args.sizes), args.fresh, stages)


if __name__ == "__main__":
    main(sys.argv[1:])
