"""Serving benchmark: `ml serve` (the exported Keras KNN) vs a bare numpy brute-force top-k.

Two catalogue sizes, each a real export served by a real `ml serve` process on 127.0.0.1:
- `68k`: 68,228 tracks x 128 dims, the full preset's selected model's size - BENCH_SERVE_RUN (a
  trained run dir) if set, else a synthetic stand-in of that size (clustered vectors, names);
- `1m`: a synthetic 1,000,000 x 128 matrix (the vocabulary the catalogue-coverage work heads for).
Synthetic runs are written once under BENCH_DATA_DIR/serve/. The results say which was used.

Figures, each beside its numpy reference measured in the same run, same process layout:
- latency p50 / p99 of one 10-track playlist at k=10, sequential requests over HTTP (keep-alive)
  vs numpy in the benchmark process: mean of the seeds' rows, one product, seeds masked,
  argpartition + sort, over both matrix layouts ([n, d] @ q and q @ [d, n]) and BLAS at 1 thread
  and at the library default; the reference is the best of the four;
- `p50_ratio` (68k), `p50_ratio_1m`: endpoint p50 / numpy p50; `fixed_overhead_ms` (68k): endpoint
  p50 - numpy p50; p99 / p50 of the endpoint;
- throughput with 8 concurrent clients (8 threads, one keep-alive connection each) vs numpy;
- server RSS against the matrix's bytes; export time and sizes.
Options tried: the TensorFlow engine (the SavedModel as TF Serving runs it) at 68k; the numpy
engine with 1 vs 2 BLAS threads at 1M; float16 storage (parity measured, not served).
Run it alone: `flock /tmp/music-recsys-heavy.lock python -m bench serve`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

from bench.common import BENCH_DATA_DIR, REPO_ROOT, write_results

SIZES = {"68k": (68_228, 128), "1m": (1_000_000, 128)}
PLAYLIST = 10
K = 10
CLIENTS = 8
WARMUP = 20


def main() -> None:
    from threadpoolctl import threadpool_limits

    out: dict[str, object] = {}
    lines: list[str] = []
    for label, (n_tracks, dim) in SIZES.items():
        run_dir, source = _model_run(label, n_tracks, dim)
        print(f"== {label}: {source}", flush=True)
        size = _bench_size(label, run_dir, threadpool_limits)
        size["model"] = source
        out[label] = size
        lines += _size_lines(label, size)
    r68, r1m = out["68k"], out["1m"]
    numpy_68k = r68["endpoints"]["numpy_1_thread"]
    numpy_1m = min(r1m["endpoints"].values(), key=lambda e: e["p50_ms"])
    figures = {
        **out,
        "p50_ratio": numpy_68k["p50_ms"] / r68["reference"]["p50_ms"],
        "p50_ratio_1m": numpy_1m["p50_ms"] / r1m["reference"]["p50_ms"],
        "fixed_overhead_ms": numpy_68k["p50_ms"] - r68["reference"]["p50_ms"],
        "p99_over_p50": numpy_68k["p99_ms"] / numpy_68k["p50_ms"],
        "p99_over_p50_1m": numpy_1m["p99_ms"] / numpy_1m["p50_ms"],
        "rss_over_matrix": numpy_68k["rss_mb"] / r68["matrix_mb"],
        "rss_over_matrix_1m": numpy_1m["rss_mb"] / r1m["matrix_mb"],
        "load_average_1m": os.getloadavg()[0],
        "targets": "p50_ratio <= 1.5, p50_ratio_1m <= 1.5, fixed_overhead_ms <= 0.8, p99 <= 3x p50, RSS <= 2x matrix",
    }
    figures["targets_met"] = {
        "p50_ratio": figures["p50_ratio"] <= 1.5,
        "p50_ratio_1m": figures["p50_ratio_1m"] <= 1.5,
        "fixed_overhead_ms": figures["fixed_overhead_ms"] <= 0.8,
        "p99_over_p50": figures["p99_over_p50"] <= 3 and figures["p99_over_p50_1m"] <= 3,
        "rss": figures["rss_over_matrix"] <= 2 and figures["rss_over_matrix_1m"] <= 2,
    }
    lines += [
        "",
        f"p50_ratio (68k) {figures['p50_ratio']:.2f} (<= 1.5), p50_ratio_1m {figures['p50_ratio_1m']:.2f} "
        f"(<= 1.5), fixed_overhead_ms {figures['fixed_overhead_ms']:.3f} (<= 0.8), p99/p50 "
        f"{figures['p99_over_p50']:.2f} / {figures['p99_over_p50_1m']:.2f} (<= 3), RSS/matrix "
        f"{figures['rss_over_matrix']:.2f} / {figures['rss_over_matrix_1m']:.2f} (<= 2)",
        f"targets met: {figures['targets_met']}",
        f"1-minute load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared with other jobs).",
    ]
    write_results("serve", figures, lines)


def _bench_size(label: str, run_dir: Path, threadpool_limits) -> dict[str, object]:  # noqa: ANN001
    from ml.config import Paths
    from ml.export import export_latest
    from ml.run_dir import RunDir

    start = time.perf_counter()
    export = export_latest(
        Paths(Path("-"), Path("-"), run_dir.parent, Path("-")), run_dir=run_dir, selfcheck_playlists=40
    )
    export_s = time.perf_counter() - start
    print(export.summary(), flush=True)
    track_ids, normed = RunDir(run_dir).load_normalized_vectors()
    normed = np.ascontiguousarray(normed)
    n_single = 300 if label == "68k" else 120
    n_concurrent = 1600 if label == "68k" else 240
    rng = np.random.default_rng(0)
    playlists = [
        rng.choice(len(track_ids), size=PLAYLIST, replace=False) for _ in range(n_single + n_concurrent)
    ]
    bodies = [
        json.dumps({"instances": [{"tracks": [track_ids[r] for r in p], "k": K}]}).encode() for p in playlists
    ]

    reference = _numpy_reference(normed, playlists[:n_single], playlists[n_single:], threadpool_limits)
    configs = {"numpy_1_thread": ["--threads", "1"]}
    if label == "68k":
        configs["tensorflow"] = ["--engine", "tensorflow"]
    else:
        configs["numpy_2_threads"] = ["--threads", "2"]
    endpoints = {}
    for name, args in configs.items():
        server, url = _start_server(export.tarball, args)
        try:
            _agree(url, bodies[:20], playlists[:20], normed, track_ids)
            _latencies_http(url, bodies[:WARMUP])
            single = _latencies_http(url, bodies[:n_single])
            rps = _throughput_http(url, bodies[n_single:])
            rss_mb = psutil.Process(server.pid).memory_info().rss / 2**20
        finally:
            server.terminate()
            server.wait(timeout=60)
        p50, p99 = np.percentile(single, [50, 99])
        endpoints[name] = {
            "p50_ms": float(p50),
            "p99_ms": float(p99),
            "throughput_rps": rps,
            "rss_mb": rss_mb,
        }
        print(name, endpoints[name], flush=True)
    return {
        "n_tracks": len(track_ids),
        "dim": int(normed.shape[1]),
        "matrix_mb": normed.nbytes / 2**20,
        "export_s": round(export_s, 2),
        "saved_model_mb": round(export.saved_model_bytes / 2**20, 1),
        "tarball_mb": round(export.tarball_bytes / 2**20, 1),
        "reference": reference,
        "endpoints": endpoints,
        "float16": _float16_parity(normed, playlists[: 1000 if label == "68k" else 200]),
        "requests": {"sequential": n_single, "concurrent": n_concurrent, "warmup": WARMUP},
    }


def _size_lines(label: str, size: dict) -> list[str]:
    ref = size["reference"]
    lines = [
        "",
        f"## {label}: {size['n_tracks']:,} x {size['dim']} ({size['matrix_mb']:.0f} MiB float32) - {size['model']}",
        f"export {size['export_s']:.1f}s, SavedModel {size['saved_model_mb']} MiB, tarball {size['tarball_mb']} MiB",
        "",
        "| | p50 ms | p99 ms | p99/p50 | 8-client throughput | RSS MiB | p50 / numpy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| numpy reference (best of {', '.join(ref['variants'])}) | {ref['p50_ms']:.3f} | {ref['p99_ms']:.3f} | "
        f"{ref['p99_ms'] / ref['p50_ms']:.2f} | {ref['throughput_qps']:.0f} q/s | | 1.00 |",
    ]
    for name, e in size["endpoints"].items():
        lines.append(
            f"| ml serve, {name.replace('_', ' ')} (HTTP) | {e['p50_ms']:.3f} | {e['p99_ms']:.3f} | "
            f"{e['p99_ms'] / e['p50_ms']:.2f} | {e['throughput_rps']:.0f} req/s | {e['rss_mb']:.0f} | "
            f"{e['p50_ms'] / ref['p50_ms']:.2f} |"
        )
    f16 = size["float16"]
    lines.append(
        f"float16 storage (float32 accumulation), not served: top-10 identical on {f16['identical']}/{f16['playlists']} "
        f"playlists, max |score diff| {f16['max_score_diff']:.1e} (the parity tolerance is 1e-6)"
    )
    return lines


def numpy_top_k(matrix: np.ndarray, seeds: np.ndarray, transposed: bool, k: int = K) -> np.ndarray:
    """The bare reference: mean of the seeds' rows, one product, seeds out, top-k sorted."""
    query = (matrix[:, seeds].T if transposed else matrix[seeds]).mean(axis=0)
    scores = query @ matrix if transposed else matrix @ query
    scores[seeds] = -np.inf
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def _numpy_reference(normed, single, concurrent, threadpool_limits) -> dict[str, object]:  # noqa: ANN001
    """Best p50 over layouts x BLAS threads; throughput: 8 threads, and one thread back to back."""
    normed_t = np.ascontiguousarray(normed.T)
    variants = {}
    for layout, matrix, transposed in (("[n,d]@q", normed, False), ("q@[d,n]", normed_t, True)):
        for threads in (1, None):
            name = f"{layout} blas={threads or 'default'}"
            with threadpool_limits(limits=threads, user_api="blas") if threads else _nothing():
                _time_numpy(matrix, single[:WARMUP], transposed)
                lat = _time_numpy(matrix, single, transposed)
            variants[name] = {
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
            }
    best = min(variants, key=lambda v: variants[v]["p50_ms"])
    matrix, transposed = (normed_t, True) if best.startswith("q@") else (normed, False)
    parts = [concurrent[i::CLIENTS] for i in range(CLIENTS)]
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(CLIENTS) as pool:
        done = sum(pool.map(lambda part: len(_time_numpy(matrix, part, transposed)), parts))
    threads_qps = done / (time.perf_counter() - start)
    sequential_qps = 1000 / variants[best]["p50_ms"]
    return {
        **variants[best],
        "best": best,
        "variants": list(variants),
        "all": variants,
        "throughput_qps": max(threads_qps, sequential_qps),
    }


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _time_numpy(matrix: np.ndarray, playlists: list[np.ndarray], transposed: bool) -> list[float]:
    out = []
    for seeds in playlists:
        start = time.perf_counter()
        numpy_top_k(matrix, seeds, transposed)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _float16_parity(normed: np.ndarray, playlists: list[np.ndarray]) -> dict[str, object]:
    """Top-10 with the item matrix stored as float16 (products in float32) vs float32."""
    from ml.knn import KnnTables

    rows = [sorted(p.tolist()) for p in playlists]
    full = KnnTables(items_t=normed.T).top_k(rows, K, batch_size=50)
    half_t = np.ascontiguousarray(normed.T).astype(np.float16)
    half = KnnTables(items_t=half_t.astype(np.float32)).top_k(rows, K, batch_size=50)
    del half_t
    same = int(sum((a == b).all() for a, b in zip(full.rows, half.rows, strict=True)))
    return {
        "playlists": len(rows),
        "identical": same,
        "max_score_diff": float(np.abs(full.scores - half.scores).max()),
        "bytes_saved_mb": normed.nbytes / 2 / 2**20,
    }


def _model_run(label: str, n_tracks: int, dim: int) -> tuple[Path, str]:
    given = os.environ.get("BENCH_SERVE_RUN")
    if given and label == "68k":
        return Path(given).resolve(), f"trained run {Path(given).resolve()}"
    sys.path.insert(0, str(REPO_ROOT / "tests"))  # the tests' synthetic runs (tests/ is no package)
    from synthetic_model import write_synthetic_model

    run_dir = BENCH_DATA_DIR / "serve" / "models" / f"synthetic-{n_tracks}x{dim}"
    if not (run_dir / "track_names.parquet").exists():
        print(f"writing a synthetic {n_tracks:,} x {dim} model to {run_dir}", flush=True)
        write_synthetic_model(
            run_dir, n_tracks=n_tracks, dim=dim, n_clusters=200, n_duplicate_pairs=0, seed=0
        )
    return run_dir, (
        f"synthetic {n_tracks:,} x {dim} (clustered vectors, names; no trained model of this size used)"
    )


def _latencies_http(url: str, bodies: list[bytes]) -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for body in bodies:
            start = time.perf_counter()
            response = client.post("/invocations", content=body, headers={"content-type": "application/json"})
            out.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
    return out


def _throughput_http(url: str, bodies: list[bytes]) -> float:
    parts = [bodies[i::CLIENTS] for i in range(CLIENTS)]
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        done = sum(pool.map(lambda part: len(_latencies_http(url, part)), parts))
    return done / (time.perf_counter() - start)


def _agree(
    url: str, bodies: list[bytes], playlists: list[np.ndarray], normed: np.ndarray, ids: list[str]
) -> None:
    """The endpoint's top-10 = numpy's before anything is timed (scores within the parity tolerance)."""
    import httpx

    row_of = {t: i for i, t in enumerate(ids)}
    for body, seeds in zip(bodies, playlists, strict=True):
        got = httpx.post(f"{url}/invocations", content=body, timeout=120).json()["predictions"][0]
        want = numpy_top_k(normed, seeds, transposed=False)
        if got["track_ids"] == [ids[r] for r in want]:
            continue
        scores = normed @ normed[seeds].mean(axis=0)
        got_scores = np.sort(scores[[row_of[t] for t in got["track_ids"]]])
        if not np.allclose(got_scores, np.sort(scores[want]), atol=1e-6):  # more than a tie apart
            raise RuntimeError(f"endpoint and numpy disagree: {got['track_ids']} != {[ids[r] for r in want]}")


def _start_server(tarball: Path, args: list[str]) -> tuple[subprocess.Popen, str]:
    from ml.deploy.local import wait_for_ping

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    log = open(BENCH_DATA_DIR / "serve" / "bench-serve.log", "ab")  # noqa: SIM115 - lives with the server
    server = subprocess.Popen(
        [sys.executable, "-m", "ml.cli", "serve", "--model", str(tarball), "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        env=env,
    )
    problem = wait_for_ping(url, server, timeout_s=900)
    if problem:
        server.kill()
        raise RuntimeError(f"server did not start: {problem}")
    return server, url


if __name__ == "__main__":
    main()
