"""Great Expectations plumbing: the file-mode context under gx/, suites kept in step with the
thresholds, one checkpoint per in-memory frame, and results turned into readable outcomes."""

from __future__ import annotations

import contextlib
import html
import json
import logging
import numbers
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

# GX phones home unless told not to; there is no network here and nothing to report.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

import great_expectations as gx  # noqa: E402
from great_expectations.checkpoint import UpdateDataDocsAction  # noqa: E402
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.expectations.expectation import Expectation  # noqa: E402

DATASOURCE = "music_recsys"
BATCH_DEFINITION = "whole_frame"
DATA_DOCS_SITE = "local_site"
logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict in words: what was checked, what was seen, what was allowed."""

    suite: str
    check: str
    label: str
    success: bool
    observed: str
    threshold: str
    examples: str = ""


@dataclass(frozen=True)
class SuiteSpec:
    """A suite over one frame: its expectations, each carrying meta {check, label, threshold}."""

    name: str
    expectations: Sequence[Expectation]
    unit: str = "rows"  # what one row of the frame is, for the summary ("lines", "playlists")


def expectation(cls: type[Expectation], check: str, label: str, threshold: str, **kwargs: Any) -> Expectation:
    """An expectation whose description and meta say, in words, what it guards and its threshold."""
    return cls(
        description=f"{label}: {threshold}",
        meta={"check": check, "label": label, "threshold": threshold},
        **kwargs,
    )


def open_context(gx_dir: Path) -> Any:
    """The file-mode context in gx_dir (created with its layout when missing), progress bars off."""
    gx_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="file", context_root_dir=str(gx_dir))
    config = context.variables.config
    if config.analytics_enabled is not False or not _progress_bars_off(config):
        context.variables.analytics_enabled = False
        context.variables.progress_bars = {"globally": False, "metric_calculations": False}
        context.variables.save()
    return context


def _progress_bars_off(config: Any) -> bool:
    bars = config.progress_bars
    if bars is None:
        return False
    globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
    return globally is False


def _expectation_key(exp: Expectation) -> str:
    cfg = exp.configuration.to_json_dict()
    cfg.pop("id", None)
    return json.dumps(cfg, sort_keys=True, default=str)


def _sync_suite(context: Any, spec: SuiteSpec) -> Any:
    """Store the suite only when its expectations changed, so committed JSON stays put between runs."""
    wanted = sorted(_expectation_key(e) for e in spec.expectations)
    try:
        existing = context.suites.get(spec.name)
    except Exception:  # noqa: BLE001 - GX raises its own not-found types across versions
        existing = None
    if existing is not None and sorted(_expectation_key(e) for e in existing.expectations) == wanted:
        return existing
    if existing is not None:
        context.suites.delete(spec.name)
    suite = context.suites.add(gx.ExpectationSuite(name=spec.name))
    for exp in spec.expectations:
        suite.add_expectation(exp)
    return suite


def _batch_definition(context: Any, asset_name: str) -> Any:
    try:
        datasource = context.data_sources.get(DATASOURCE)
    except (KeyError, ValueError):
        datasource = context.data_sources.add_pandas(DATASOURCE)
    try:
        asset = datasource.get_asset(asset_name)
    except LookupError:
        asset = datasource.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        return asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)


def _checkpoint(context: Any, spec: SuiteSpec, suite: Any, result_format: dict[str, Any]) -> Any:
    batch_definition = _batch_definition(context, spec.name)
    try:
        validation = context.validation_definitions.get(spec.name)
    except Exception:  # noqa: BLE001
        validation = None
    if validation is None or validation.suite.id != suite.id:
        if validation is not None:
            context.validation_definitions.delete(spec.name)
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite)
        )
    try:
        checkpoint = context.checkpoints.get(spec.name)
        if checkpoint.validation_definitions[0].id != validation.id:
            raise LookupError
    except Exception:  # noqa: BLE001
        with contextlib.suppress(Exception):
            context.checkpoints.delete(spec.name)
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name=spec.name,
                validation_definitions=[validation],
                actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])],
                result_format=result_format,
            )
        )
    return checkpoint


def run_suites(
    context: Any,
    batches: Sequence[tuple[SuiteSpec, pd.DataFrame]],
    run_name: str,
    parameters: dict[str, Any] | None = None,
) -> list[Outcome]:
    """Validate each frame against its suite through its checkpoint; Data Docs update on each run."""
    run_id = RunIdentifier(run_name=run_name)
    outcomes: list[Outcome] = []
    for spec, frame in batches:
        suite = _sync_suite(context, spec)
        index_cols = [frame.index.name] if frame.index.name else []
        result_format = {
            "result_format": "SUMMARY",
            "partial_unexpected_count": 5,
            **({"unexpected_index_column_names": index_cols} if index_cols else {}),
        }
        checkpoint = _checkpoint(context, spec, suite, result_format)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters or {},
                run_id=run_id,
            )
        for suite_result in result.run_results.values():
            outcomes.extend(_outcome(spec, r, parameters or {}) for r in suite_result.results)
    return outcomes


def run_name(gate: str, target: Path) -> str:
    """A run name for Data Docs (shown in its HTML and its paths): the file name reduced to safe
    characters, since a file name is user text."""
    return f"{gate}-" + re.sub(r"[^A-Za-z0-9._-]", "_", target.name)[:80]


def console_text(text: str) -> str:
    """Frame text escaped for Data Docs (raw_scan.html_safe), shown as the file holds it."""
    return html.unescape(text) if isinstance(text, str) else text


def data_docs_index(gx_dir: Path) -> Path:
    return gx_dir / "uncommitted" / "data_docs" / DATA_DOCS_SITE / "index.html"


def _fmt_num(value: Any) -> str:
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        return f"{int(value):,}" if float(value).is_integer() else f"{float(value):.6g}"
    return str(value)


def _outcome(spec: SuiteSpec, r: Any, parameters: dict[str, Any]) -> Outcome:
    cfg = r.expectation_config
    meta = cfg.meta or {}
    res = r.result or {}
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = f"error: {r.exception_info.get('exception_message')}"
    elif "observed_value" in res:
        observed = _fmt_num(res["observed_value"])
    elif res.get("element_count") == 1 and "unexpected_count" in res:
        # one-row frames hold file-level facts: show the fact itself
        unexpected = res.get("partial_unexpected_list") or []
        observed = repr(console_text(_py(unexpected[0]))) if unexpected else "as expected"
    elif "unexpected_count" in res:
        nonnull = (res.get("element_count") or 0) - (res.get("missing_count") or 0)
        observed = (
            f"{res.get('unexpected_percent') or 0:.4g}% of {nonnull:,} {spec.unit} "
            f"({res['unexpected_count']:,} unexpected)"
        )
    else:
        observed = json.dumps(res, default=str)[:200]
    return Outcome(
        suite=spec.name,
        check=meta.get("check", cfg.type),
        label=meta.get("label", cfg.type),
        success=bool(r.success),
        observed=observed,
        # thresholds that are suite parameters read "$name" in the suite; show this run's value
        threshold=Template(meta.get("threshold", "")).safe_substitute(
            {k: ("none" if v is None else _fmt_num(v)) for k, v in parameters.items()}
        ),
        examples="" if r.success else _examples(cfg, res),
    )


def _py(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


_INDEX_WORDS = {"line_number": "line", "first_line": "first at line"}


def _examples(cfg: Any, res: dict[str, Any]) -> str:
    """A few failing rows: their index (line number, id) and value, from GX's partial lists."""
    if res.get("element_count") == 1:
        return ""  # a one-row frame: the observed value says it all
    column = cfg.kwargs.get("column")
    parts = []
    for row in (res.get("partial_unexpected_index_list") or [])[:5]:
        if isinstance(row, dict):
            where = ", ".join(f"{_INDEX_WORDS.get(k, k)} {_py(v)}" for k, v in row.items() if k != column)
            parts.append(f"{where}: {console_text(_py(row[column]))!r}" if column in row else where)
    if not parts:
        parts = [repr(console_text(_py(v))) for v in (res.get("partial_unexpected_list") or [])[:5]]
    return "; ".join(parts)
