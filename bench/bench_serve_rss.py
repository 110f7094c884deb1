"""Server memory (issue 13, point 3: "Server RSS <= 2x the matrix"): the RSS part of bench serve.

Per catalogue size (the synthetic 68,228 x 128 and 1,000,000 x 128 runs of bench serve, with names):
export, start `ml serve` (numpy engine, 1 BLAS thread), answer 20 requests (ids, then playlist
names), read the server's RSS. References measured in the same run:
- the matrix's bytes (the target's unit), and the export's name table;
- `fixed`: a bare interpreter with the serving imports (numpy, h5py, starlette, uvicorn, orjson,
  threadpoolctl) - what any Python server costs before it holds a model;
- the catalogue's strings (ids, artists, titles) as the engine holds them (`ml.knn_engine.Strings`,
  `IdIndex`) against the former layout (Python lists and a dict, as the engine held them before),
  each loaded in a child process from the same export: RSS after minus RSS before.
Run it alone: `flock /tmp/music-recsys-heavy.lock python -m bench serve_rss`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.bench_serve import SIZES, _model_run, _start_server
from bench.common import REPO_ROOT, write_results

IMPORTS = "import numpy, h5py, orjson, threadpoolctl, starlette.applications, uvicorn"
CHILD = (
    r"""
import gc, json, sys
from pathlib import Path
import psutil
"""
    + IMPORTS
    + r"""
assets = Path(sys.argv[1]) / "1" / "assets"
layout = sys.argv[2]
gc.collect()
before = psutil.Process().memory_info().rss
if layout == "python":  # the former engine: lists of str and a dict id -> row
    def lines(p):
        text = p.read_text(encoding="utf-8")
        return text[:-1].split("\n") if text else []
    vocabulary = lines(assets / "track_ids.txt")
    catalogue = lines(assets / "catalogue_ids.txt")
    index_of = {t: i for i, t in enumerate(catalogue)}
    names = [line.split("\t") for line in lines(assets / "track_names.tsv")]
    kept = (catalogue, {t: i for i, t in enumerate(vocabulary)}, [index_of[t] for t in lines(assets / "popular_ids.txt")],
            [n[0] for n in names], [n[1] for n in names])
    del vocabulary, index_of, names
elif layout == "buffers":
    from ml.knn_engine import IdIndex, _line_strings, _name_columns
    catalogue = _line_strings((assets / "catalogue_ids.txt").read_bytes())
    kept = (catalogue, IdIndex(catalogue), _name_columns(assets / "track_names.tsv"))
gc.collect()
print(json.dumps({"mb": (psutil.Process().memory_info().rss - before) / 2**20,
                  "base_mb": before / 2**20}))
"""
)


def main() -> None:
    out: dict[str, object] = {"load_average_start": os.getloadavg()[0]}
    lines: list[str] = []
    sizes = {k: v for k, v in SIZES.items() if k in os.environ.get("BENCH_RSS_SIZES", "68k,1m").split(",")}
    for label, (n_tracks, dim) in sizes.items():
        run_dir, source = _model_run(label, n_tracks, dim)
        _add_names(run_dir)
        print(f"== {label}: {source}", flush=True)
        size = _measure(run_dir)
        size["model"] = source
        out[label] = size
        lines += [
            f"## {label}: {n_tracks:,} x {dim}, matrix {size['matrix_mb']:.0f} MiB ({source})",
            f"- ml serve (numpy engine) RSS {size['rss_mb']:.0f} MiB = {size['rss_over_matrix']:.2f} x the matrix "
            f"(target <= 2); of which a bare interpreter with the serving imports {size['fixed_mb']:.0f} MiB",
            f"- catalogue strings ({size['catalogue_entries']:,} ids, artists, titles): "
            f"{size['strings_buffers_mb']:.0f} MiB as buffers (now) vs {size['strings_python_mb']:.0f} MiB as Python "
            f"lists + dict (before), same export, same run",
            f"- name table: {size['name_tokens']:,} tokens",
        ]
    out["load_average_end"] = os.getloadavg()[0]
    out["targets_met"] = {"rss": all(out[k]["rss_over_matrix"] <= 2 for k in sizes)}
    ratios = " / ".join(f"{out[k]['rss_over_matrix']:.2f} ({k})" for k in sizes)
    lines += [
        "",
        f"RSS/matrix {ratios} (<= 2): {'met' if out['targets_met']['rss'] else 'NOT met'}",
        f"1-minute load average: {out['load_average_start']:.1f} at the start, {out['load_average_end']:.1f} "
        "at the end (2 cores, shared with other jobs).",
    ]
    write_results("serve_rss", out, lines)


def _add_names(run_dir: Path) -> None:
    """A name table on the synthetic run (rows of its own vectors' cluster means are not needed for
    memory: 2,000 seeded random rows), so the export carries one as a trained run's does."""
    import numpy as np

    from ml.cold_start import NameModel
    from ml.run_dir import RunDir

    run = RunDir(run_dir)
    if run.name_tokens.exists():
        return
    dim = run.load_keyed_vectors().vector_size
    rng = np.random.default_rng(0)
    keys = np.array([f"name:word{i}" for i in range(2000)], dtype=object)
    rows = rng.normal(size=(2000, dim + 1)).astype(np.float32)
    NameModel(keys, rows, np.full(2000, 5, np.int64), 1.0, {"method": "synthetic"}).save(run.path)


def _measure(run_dir: Path) -> dict[str, object]:
    import httpx

    from ml.config import Paths
    from ml.export import export_latest
    from ml.run_dir import RunDir

    export = export_latest(
        Paths(Path("-"), Path("-"), run_dir.parent, Path("-")), run_dir=run_dir, selfcheck_playlists=10
    )
    matrix_mb = export.n_tracks * export.dim * 4 / 2**20
    export_dir = export.saved_model_dir.parent
    ids = RunDir(run_dir).vocabulary()
    fixed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{IMPORTS}; import psutil; print(psutil.Process().memory_info().rss / 2**20)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    strings = {
        layout: json.loads(
            subprocess.run(
                [sys.executable, "-c", CHILD, str(export_dir), layout],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO_ROOT,
            ).stdout
        )["mb"]
        for layout in ("python", "buffers")
    }
    server, url = _start_server(export.tarball, ["--threads", "1"])
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for i in range(10):
                body = {"instances": [{"tracks": ids[i * 10 : i * 10 + 10], "k": 10}]}
                assert client.post("/invocations", json=body).status_code == 200
                named = {"instances": [{"name": f"word{i} word{i + 1}", "k": 10}]}
                answer = client.post("/invocations", json=named).json()["predictions"][0]
                assert not answer["fallback"] and answer["n_name_tokens"] == 2
        time.sleep(1)
        rss_mb = psutil.Process(server.pid).memory_info().rss / 2**20
    finally:
        server.terminate()
        server.wait(timeout=60)
    return {
        "matrix_mb": matrix_mb,
        "rss_mb": rss_mb,
        "rss_over_matrix": rss_mb / matrix_mb,
        "fixed_mb": float(fixed.stdout.strip()),
        "strings_python_mb": strings["python"],
        "strings_buffers_mb": strings["buffers"],
        "catalogue_entries": (export_dir / "1" / "assets" / "catalogue_ids.txt").read_bytes().count(b"\n"),
        "name_tokens": export.n_name_tokens,
    }


if __name__ == "__main__":
    main()
