"""`ml export`'s self-check of the name path (issue 14): the reloaded SavedModel answers name queries
- the run's most common tokens alone, two together, beside two tracks, and an unknown word - as
`ml.cold_start` computes them offline (`ml.parity.offline_expected_named`), up to float ties.
"""

from __future__ import annotations

from pathlib import Path

from ml import endpoint_contract
from ml.endpoint_contract import Instance
from ml.name_tokens import NAME_PREFIX
from ml.parity import Expected, compare, offline_expected_named


def name_queries(keys: list[str], track_ids: list[str], n_tokens: int = 30) -> list[tuple[list[str], str]]:
    """(tracks, name) queries over the first `n_tokens` keys of a name table."""
    words = [k[len(NAME_PREFIX) :] for k in keys[:n_tokens]]
    queries: list[tuple[list[str], str]] = [([], w) for w in words]
    queries += [([], f"{a} {b}") for a, b in zip(words, words[1:], strict=False)]
    queries += [(track_ids[i : i + 2], w) for i, w in enumerate(words) if i + 2 <= len(track_ids)]
    queries += [([], "qqqzzx-unknown"), (track_ids[:1], "qqqzzx-unknown")]
    return queries


def selfcheck_names(export_dir: Path, run_dir: Path, keys: list[str], track_ids: list[str]) -> int:
    """Compare the SavedModel's answers with ml.cold_start's; returns the queries checked (raises if
    one differs beyond float ties)."""
    import tensorflow as tf

    from ml.knn_keras import tensor_inputs

    queries = name_queries(keys, track_ids)
    expected = offline_expected_named(run_dir, queries)
    signature = tf.saved_model.load(str(export_dir / "1")).signatures[endpoint_contract.SIGNATURE_NAME]
    different = []
    for start in range(0, len(queries), 20):
        chunk = queries[start : start + 20]
        instances = [Instance(tracks=tuple(t), k=endpoint_contract.DEFAULT_K, name=n) for t, n in chunk]
        out = signature(**tensor_inputs(endpoint_contract.model_inputs(instances)))
        for i, e in enumerate(expected[start : start + 20]):
            verdict = compare(e, _prediction(out, i))
            if verdict not in (None, "tie"):
                different.append(f"tracks {list(e.tracks)} name {e.name!r}: {verdict}")
    if different:
        raise RuntimeError(
            f"{export_dir}: the SavedModel disagrees with ml.cold_start on {len(different)}/"
            f"{len(queries)} name queries, e.g. {different[0]}"
        )
    return len(queries)


def _prediction(out: dict, i: int) -> dict:
    n = int(out["n_results"][i])
    return {
        "track_ids": out["track_ids"][i, :n].numpy().astype(str).tolist(),
        "scores": out["scores"][i, :n].numpy().tolist(),
        "n_unknown": int(out["n_unknown"][i]),
    }


__all__ = ["Expected", "name_queries", "selfcheck_names"]
