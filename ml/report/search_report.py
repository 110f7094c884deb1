"""The search and ablation sections of the model card: tables from the search rows and a plot.

Rows are `ml.search.TrialResult.row()` dicts: the grid axes, `rung` (the last rung fitted), `rungN`
(the metric on rung N), the last rung's metrics, and `rung0 <rule>+<prior>[/seed<M>]` (the metric
of every scoring variant of the rung-0 fit on the valid sample; /seedM: ml.knn's per-seed rule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXES = (
    "sg", "vector_size", "window", "negative", "ns_exponent", "sample", "epochs", "min_count", "fold_rare", "alpha",
)  # fmt: skip


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 and v != 0 else f"{v:g}"
    return str(v)


def _table(cols: list[str], rows: list[list[Any]]) -> str:
    head = "| " + " | ".join(cols) + " |"
    sep = "|" + "---|" * len(cols)
    return "\n".join([head, sep, *("| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows)])


def search_table(rows: list[dict[str, Any]]) -> str:
    rung_cols = sorted({k for r in rows for k in r if k.startswith("rung") and k[4:].isdigit()})
    cols = ["trial", "rung", *[a for a in AXES if a in rows[0]], "scoring", "prior", "per_seed", *rung_cols]
    cols += ["oov_share", "covered", "vocab_size", "fit_seconds", "refit_cost", "within_budget"]
    return _table(cols, [[r.get(c, "") for c in cols] for r in sorted(rows, key=lambda r: r["trial"])])


def _parse_variant(key: str) -> tuple[str, float, int]:
    """`output+0.5` -> ("output", 0.5, 0) (the mean query); `output+0/seed50` -> (.., .., 50)."""
    rule, rest = key.split("+", 1)
    prior, _, seed = rest.partition("/seed")
    return rule, float(prior), int(seed) if seed else 0


def _variant(
    row: dict[str, Any], rule: str, prior: float | None = None, per_seed: int | None = 0
) -> float | None:
    """The metric of the row's fit under `rule` (with `prior`, or the best prior when None) and
    ml.knn's rule `per_seed` (0: the mean query; None: the best M > 0 of per-seed aggregation)."""
    values = {
        _parse_variant(k[len("rung0 ") :]): v
        for k, v in row.items()
        if k.startswith("rung0 ") and isinstance(v, float)
    }
    picked = [
        v
        for (r, w, m), v in values.items()
        if r == rule and (prior is None or w == prior) and (m == per_seed if per_seed is not None else m > 0)
    ]
    return max(picked) if picked else None


def ablation_table(rows: list[dict[str, Any]], metric: str) -> str:
    """What scoring, coverage and search each bought, on the valid sample, at rung 0's fits.

    Rung 0 scores are comparable across trials (same sample, same valid sample); the trial 0 fit is
    the defaults. The rungN value of a row is the metric of its best scoring variant on rung N.
    """
    if not rows:
        return "_No search in this run: no ablation._"
    by_trial = {r["trial"]: r for r in rows}
    first = by_trial[min(by_trial)]
    at_rung0 = [r for r in rows if r.get("rung", 0) == 0 or "rung0" in r]
    lines: list[list[Any]] = []

    def add(step: str, value: float | None, what: str) -> None:
        if value is not None:
            lines.append([step, value, what])

    add("defaults, cosine (the old rule)", _variant(first, "cosine", 0.0), "trial 0 fit, rung 0")
    add("defaults, output layer", _variant(first, "output", 0.0), "scoring: same fit, items = syn1neg")
    add(
        "defaults, best rule and prior, mean query",
        max(
            (v for r in ("cosine", "output") if (v := _variant(first, r, None)) is not None),
            default=None,
        ),
        "scoring: + popularity prior column",
    )
    for rule in ("cosine", "output"):
        per_seed = {
            m: v
            for k, v in first.items()
            if k.startswith("rung0 ") and isinstance(v, float)
            for r, _, m in [_parse_variant(k[len("rung0 ") :])]
            if r == rule and m > 0
        }
        for m, v in sorted(per_seed.items()):
            add(f"defaults, {rule}, per-seed M={m}", v, "scoring: one query per seed, top M each, summed")
    add("defaults, best variant", first.get("rung0"), "the rule picked on valid for trial 0")
    best0 = max(at_rung0, key=lambda r: r.get("rung0", -1.0))
    add(f"search: best of {len(rows)} fits (trial {best0['trial']})", best0.get("rung0"), "search, rung 0")
    table = _table(["step (valid sample, rung 0 sample)", metric, "what changed"], lines)
    by_mc: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in at_rung0:
        by_mc.setdefault((r.get("min_count"), bool(r.get("fold_rare", False))), []).append(r)
    coverage = _table(
        ["min_count", "rare tracks folded in", f"best {metric} at rung 0", "oov_share (last rung)", "fits"],
        [
            [mc, "yes" if fold else "no", max(r.get("rung0", 0.0) for r in v),
             min(r.get("oov_share", 1.0) for r in v), len(v)]
            for (mc, fold), v in sorted(by_mc.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        ],
    )  # fmt: skip
    return (
        table + "\n\nCoverage (min_count, folding of rarer tracks) across the search's fits:\n\n" + coverage
    )


def search_plot(rows: list[dict[str, Any]], out: Path, metric: str) -> Path | None:
    """Metric per trial on each rung (rung 0 dots, later rungs rings), best-so-far line."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["trial"])
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    x = [r["trial"] for r in rows]
    y0 = [r.get("rung0", float("nan")) for r in rows]
    ax.scatter(x, y0, s=22, label="rung 0 (smallest sample)", color="#1f77b4")
    best, line = -1.0, []
    for v in y0:
        best = max(best, v)
        line.append(best)
    ax.step(x, line, where="post", color="#1f77b4", alpha=0.4, label="best so far (rung 0)")
    rung_keys = sorted(
        {k for r in rows for k in r if k.startswith("rung") and k[4:].isdigit() and k != "rung0"}
    )
    colours = ["#d62728", "#2ca02c", "#9467bd"]
    for i, key in enumerate(rung_keys):
        pts = [(r["trial"], r[key]) for r in rows if key in r]
        ax.scatter(*zip(*pts, strict=True), s=60, facecolors="none", edgecolors=colours[i % 3], label=key)
    ax.set_xlabel("trial (order of the search)")
    ax.set_ylabel(f"valid {metric} (sample)")
    ax.set_title("track2vec search: successive halving, TPE proposals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
