"""The TF 2.20 load check: the exported model, loaded by the TensorFlow the SageMaker image runs.

SageMaker serves the tarball with the `tensorflow-inference:2.20` image; we export with the TF of
our venv (2.21). This runs a second interpreter - TF220_PYTHON, a venv with `tensorflow-cpu==2.20.*`
(`python3.11 -m venv data/tf220-venv && data/tf220-venv/bin/pip install tensorflow-cpu==2.20.0`) -
that loads `1/` with `tf.saved_model.load` and `knn.keras` with `keras.saving.load_model`, answers
the same playlists (known, unknown, repeated and empty ones), and prints the answers; they must
equal ours: ids, names, counts identical, scores bit for bit. Model: a synthetic run (3,000 x 32,
with names and a seeded name-token table), or BENCH_TF_RUN (a run dir; exported first); checked
twice, as it is (the mean query) and copied with per-seed aggregation (ml.knn, M = 20).
Results: bench/results/tf_compat.json / .md. Not verified here: the TF Serving binary itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import BENCH_DATA_DIR, REPO_ROOT, write_results

TF220_PYTHON = Path(os.environ.get("TF220_PYTHON", REPO_ROOT / "data" / "tf220-venv" / "bin" / "python"))

# Runs inside the TF 2.20 interpreter: stdin = {"export_dir", "inputs"}; stdout = the answers.
CHILD = r"""
import json, sys
import numpy as np
request = json.load(sys.stdin)
sys.path.insert(0, request["repo"])
import tensorflow as tf, keras
import ml.knn_keras  # registers PlaylistKnn / CatalogueNames for knn.keras
inputs = {"tracks": tf.constant(request["inputs"]["tracks"]), "k": tf.constant(request["inputs"]["k"], tf.int32),
          "name_tokens": tf.constant(request["inputs"]["name_tokens"])}
def plain(out):
    return {k: (np.char.decode(np.asarray(v).astype(bytes), "utf-8") if np.asarray(v).dtype == object
                else np.asarray(v).astype(np.float64) if np.asarray(v).dtype == np.float32 else np.asarray(v)).tolist()
            for k, v in out.items()}
saved = tf.saved_model.load(request["export_dir"] + "/1").signatures["serving_default"](**inputs)
model = keras.saving.load_model(request["export_dir"] + "/knn.keras")
print(json.dumps({"tf": tf.__version__, "keras": keras.__version__,
                  "saved_model": plain(saved), "keras_model": plain(model(inputs))}))
"""


def main() -> None:
    """The check for the run (the mean query) and for a copy scored by per-seed aggregation
    (ml.knn, knn_scoring.json per_seed = PER_SEED): both must load and answer alike under TF 2.20."""
    run_dir = _run()
    figures, lines = _check(run_dir)
    per_seed_dir = _per_seed_copy(run_dir)
    per_seed, per_seed_lines = _check(per_seed_dir)
    figures["per_seed"] = {"m": PER_SEED, **per_seed}
    lines += [f"per-seed aggregation (M={PER_SEED}, {per_seed_dir.name}):", *per_seed_lines]
    figures["target_met"] = bool(figures["target_met"] and per_seed["target_met"])
    write_results("tf_compat", figures, lines)
    if not figures["target_met"]:
        raise SystemExit(1)


PER_SEED = 20


def _per_seed_copy(run_dir: Path) -> Path:
    """The run copied beside itself (no export), its knn_scoring.json saying per_seed = PER_SEED."""
    import shutil

    from ml.run_dir import RunDir

    copy = run_dir.parent / f"{run_dir.name}-per-seed{PER_SEED}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("export", "*.tar.gz", "knn.keras"))
    run = RunDir(copy)
    run.write_json(RunDir.KNN_SCORING, {**run.knn_scoring(), "per_seed": PER_SEED})
    return copy


def _check(run_dir: Path) -> tuple[dict, list[str]]:
    import tensorflow as tf

    from ml.config import Paths
    from ml.endpoint_contract import Instance, model_inputs
    from ml.export import export_latest

    export = export_latest(Paths(Path("-"), Path("-"), run_dir.parent, Path("-")), run_dir=run_dir)
    export_dir = export.saved_model_dir.parent
    ids = export_dir.joinpath("1", "assets", "track_ids.txt").read_text().split("\n")[:-1]
    rng = np.random.default_rng(0)
    playlists = [[], ["unknown-id"], [ids[3], ids[3], "unknown-id"]]
    playlists += [
        [ids[r] for r in rng.choice(len(ids), size=int(rng.integers(1, 30)), replace=False)]
        for _ in range(61)
    ]
    # Playlist names (issue 14): the run's most common name tokens alone and beside tracks, and
    # an unknown word; model_inputs tokenizes them as both endpoints do.
    keys = export_dir.joinpath("1", "assets", "name_tokens.txt").read_text().split("\n")[:-1]
    words = [k.split(":", 1)[1] for k in keys[:8] if k != "name:"] + ["qqqzzx"]
    named = [([], w) for w in words] + [(playlists[3 + i][:2], w) for i, w in enumerate(words)]
    instances = [Instance(tuple(p), 10) for p in playlists] + [Instance(tuple(p), 10, w) for p, w in named]
    inputs = model_inputs(instances)
    ours = tf.saved_model.load(str(export_dir / "1")).signatures["serving_default"](
        tracks=tf.constant(inputs["tracks"]),
        k=tf.constant(inputs["k"], tf.int32),
        name_tokens=tf.constant(inputs["name_tokens"]),
    )
    ours = {
        k: (
            np.char.decode(v.numpy().astype(bytes), "utf-8")
            if v.dtype == tf.string
            else v.numpy().astype(np.float64)
            if v.dtype == tf.float32
            else v.numpy()
        ).tolist()
        for k, v in ours.items()
    }
    child = subprocess.run(
        [str(TF220_PYTHON), "-c", CHILD],
        input=json.dumps({"repo": str(REPO_ROOT), "export_dir": str(export_dir), "inputs": inputs}),
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"{TF220_PYTHON} failed:\n{child.stderr[-2000:]}")
    theirs = json.loads(child.stdout.strip().splitlines()[-1])
    same_saved = ours == theirs["saved_model"]
    same_keras = ours == theirs["keras_model"]
    figures = {
        "model": str(run_dir),
        "exported_with_tf": tf.__version__,
        "loaded_with_tf": theirs["tf"],
        "loaded_with_keras": theirs["keras"],
        "playlists": len(playlists),
        "named_instances": len(named),
        "saved_model_identical": same_saved,
        "keras_file_identical": same_keras,
        "target_met": bool(same_saved and theirs["tf"].startswith("2.20")),
    }
    lines = [
        f"exported with TF {tf.__version__}; loaded with TF {theirs['tf']} / Keras {theirs['keras']} ({TF220_PYTHON})",
        f"{len(playlists)} playlists (one empty, one only unknown, one with a repeat) and {len(named)} "
        "playlist names (alone, beside tracks, unknown): SavedModel answers "
        f"{'identical' if same_saved else 'DIFFERENT'} (ids, names, counts; scores bit for bit); knn.keras "
        f"{'identical' if same_keras else 'DIFFERENT'}",
    ]
    return figures, lines


def _run() -> Path:
    given = os.environ.get("BENCH_TF_RUN")
    if given:
        return Path(given).resolve()
    sys.path.insert(0, str(REPO_ROOT / "tests"))  # the tests' synthetic runs (tests/ is no package)
    from synthetic_model import write_synthetic_model

    from bench.bench_serve_rss import _add_names

    run_dir = BENCH_DATA_DIR / "tf_compat" / "models" / "synthetic-3000x32"
    if not (run_dir / "vectors.kv").exists():
        write_synthetic_model(run_dir)
    _add_names(run_dir)  # a name table (seeded rows, worth 1), so names take the name path
    return run_dir


if __name__ == "__main__":
    main()
