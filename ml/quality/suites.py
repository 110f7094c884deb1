"""The expectation suites of both gates, built from the thresholds.

Values that change with the profile or the run (row ranges, mart sizes, split-share bounds) are
GX suite parameters (`$PARAMETER`), so the suites stored under gx/expectations/ do not change from
run to run; the other thresholds are written into the suites and change only with thresholds.yml.
dbt tests own the model logic (keys, relationships, accepted values): nothing here repeats them.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe

from ml.config import RAW_COLUMNS, RAW_HEADER
from ml.quality.gx_run import SuiteSpec, expectation
from ml.quality.raw_scan import USER_ID_RE
from ml.quality.thresholds import MartThresholds, Range, RawThresholds, allowed_count
from ml.warehouse import DIM_ARTISTS, DIM_PLAYLISTS, DIM_TRACKS, FCT_PLAYLIST_TRACKS, ML_PLAYLIST_SPLITS

RAW_FILE_SUITE = "raw_file"
RAW_USERS_SUITE = "raw_users"
RAW_LINES_SUITE = "raw_lines"
MARTS_SUMMARY_SUITE = "marts_summary"
MARTS_PLAYLISTS_SUITE = "marts_playlists"
MARTS_EVALUATED_SUITE = "marts_evaluated_sessions"

# the marts the model reads (ml.warehouse, docs/contracts.md); also the keys of marts.min_rows
MART_RELATIONS = tuple(
    r.name for r in (DIM_TRACKS, DIM_ARTISTS, DIM_PLAYLISTS, FCT_PLAYLIST_TRACKS, ML_PLAYLIST_SPLITS)
)
SPLITS = ("train", "valid", "test")
EVALUATION_SPLITS = ("valid", "test")


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def _bound(value: float) -> float | None:
    return None if value in (float("inf"), float("-inf")) else value


# --- raw file -----------------------------------------------------------------------------------


# share checks of the line_counts frame: check id -> (count column, the lines it is a share of, label)
SHARE_CHECKS = {
    "rejected_share": ("rejected_lines", "data_lines", "rejected lines (no parse into 4 quoted fields)"),
    "recovered_share": ("recovered_lines", "data_lines", "recovered lines (unescaped inner quotes)"),
    "empty_artist_share": ("empty_artist_lines", "parsed_lines", "lines with an empty artist name"),
    "empty_track_share": ("empty_track_lines", "parsed_lines", "lines with an empty track name"),
    "empty_playlist_share": ("empty_playlist_lines", "parsed_lines", "lines with an empty playlist name"),
    "line_length": ("line_length_outside_lines", "data_lines", "lines outside the line-length range"),
}


def share_limits(t: RawThresholds) -> dict[str, float]:
    """check id -> the largest share of its lines the thresholds allow."""
    return {
        "rejected_share": t.max_rejected_share,
        "recovered_share": t.max_recovered_share,
        "empty_artist_share": t.max_empty_artist_share,
        "empty_track_share": t.max_empty_track_share,
        "empty_playlist_share": t.max_empty_playlist_share,
        "line_length": round(1 - t.min_line_length_ok_share, 12),
        "control_characters": t.max_control_character_share,
    }


def raw_parameters(t: RawThresholds, totals: dict[str, int] | None = None) -> dict[str, Any]:
    """This run's suite parameters; the allowed counts depend on the file's line counts (`totals`:
    data_lines, parsed_lines, distinct_users; missing when the file could not be read as lines)."""
    totals = totals or {}
    limits = share_limits(t)
    params: dict[str, Any] = {
        "min_data_lines": _bound(t.data_lines.min),
        "max_data_lines": _bound(t.data_lines.max),
        "min_distinct_users": _bound(t.distinct_users.min),
        "max_distinct_users": _bound(t.distinct_users.max),
        # few users: one heavy user is no sign of a broken export (thresholds.yml)
        "max_user_row_share": (
            t.max_user_row_share if totals.get("distinct_users", 0) >= t.min_users_for_row_share else 1.0
        ),
        "share_alpha": t.share_alpha,
    }
    for check, (column, of, _) in SHARE_CHECKS.items():
        params[f"max_{column}"] = allowed_count(totals.get(of, 0), limits[check], t.share_alpha)
    params["max_control_character_lines"] = allowed_count(
        totals.get("data_lines", 0), limits["control_characters"], t.share_alpha
    )
    return params


def raw_file_suite(t: RawThresholds) -> SuiteSpec:
    return SuiteSpec(
        RAW_FILE_SUITE,
        [
            expectation(
                gxe.ExpectColumnValuesToBeInSet,
                "header_line",
                "header line, byte for byte",
                f"== {RAW_HEADER}",
                column="header_line",
                value_set=[RAW_HEADER],
            ),
            expectation(
                gxe.ExpectColumnValuesToBeInSet,
                "header_columns",
                "header columns, in order",
                f"== {', '.join(RAW_COLUMNS)}",
                column="header_columns",
                value_set=[", ".join(RAW_COLUMNS)],
            ),
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                "lines_unaccounted",
                "physical lines not read as one line each",
                "== 0",
                column="lines_unaccounted",
                min_value=0,
                max_value=0,
            ),
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                "carriage_returns",
                "carriage-return bytes",
                f"<= {t.max_carriage_returns}",
                column="carriage_returns",
                max_value=t.max_carriage_returns,
            ),
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                "nul_bytes",
                "NUL bytes",
                f"<= {t.max_nul_bytes}",
                column="nul_bytes",
                max_value=t.max_nul_bytes,
            ),
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                "control_characters",
                "lines holding a control character (byte < 0x20 but tab; dbt quarantines them)",
                f"<= $max_control_character_lines lines ({_pct(t.max_control_character_share)} of data lines, "
                "binomial p >= $share_alpha)",
                column="control_character_lines",
                max_value=_param("max_control_character_lines"),
            ),
            expectation(
                gxe.ExpectColumnValuesToBeNull,
                "utf8",
                "first line that is not valid UTF-8",
                "none",
                column="first_invalid_utf8_line",
            ),
        ],
        unit="files",
    )


def raw_users_suite(t: RawThresholds) -> SuiteSpec:
    return SuiteSpec(
        RAW_USERS_SUITE,
        [
            expectation(
                gxe.ExpectColumnValuesToMatchRegex,
                "user_id_format",
                "user_id is 32 lower-case hex characters (share of distinct ids)",
                f">= {_pct(t.min_valid_user_id_share)} match {USER_ID_RE}",
                column="user_id",
                regex=USER_ID_RE,
                mostly=t.min_valid_user_id_share,
            ),
            expectation(
                gxe.ExpectTableRowCountToBeBetween,
                "distinct_users",
                "distinct users",
                "in [$min_distinct_users, $max_distinct_users]",
                min_value=_param("min_distinct_users"),
                max_value=_param("max_distinct_users"),
            ),
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                "max_user_row_share",
                "largest share of rows held by one user",
                f"<= $max_user_row_share (checked from {t.min_users_for_row_share:,} distinct users on)",
                column="row_share",
                max_value=_param("max_user_row_share"),
            ),
        ],
        unit="distinct user_ids",
    )


def raw_lines_suite(t: RawThresholds) -> SuiteSpec:
    """Over the one-row line_counts frame: the size, and each share as a count (see raw_parameters)."""
    limits = share_limits(t)
    exps = [
        expectation(
            gxe.ExpectColumnMaxToBeBetween,
            "data_lines",
            "data lines (header excluded)",
            "in [$min_data_lines, $max_data_lines]",
            column="data_lines",
            min_value=_param("min_data_lines"),
            max_value=_param("max_data_lines"),
        )
    ]
    for check, (column, of, label) in SHARE_CHECKS.items():
        what = "parsed lines" if of == "parsed_lines" else "data lines"
        extra = f" {t.line_length}" if check == "line_length" else ""
        exps.append(
            expectation(
                gxe.ExpectColumnMaxToBeBetween,
                check,
                label + extra,
                f"<= ${'max_' + column} lines ({_pct(limits[check])} of {what}, binomial p >= $share_alpha)",
                column=column,
                max_value=_param(f"max_{column}"),
            )
        )
    return SuiteSpec(RAW_LINES_SUITE, exps, unit="files")


def raw_suites(t: RawThresholds) -> tuple[SuiteSpec, SuiteSpec, SuiteSpec]:
    return raw_file_suite(t), raw_users_suite(t), raw_lines_suite(t)


# --- marts --------------------------------------------------------------------------------------


def split_share_bounds(t: MartThresholds, expected: dict[str, float], n_units: int) -> dict[str, Range]:
    """Expected share +- max(absolute tolerance, z binomial standard errors at n_units split units)."""
    bounds = {}
    for split, share in expected.items():
        stderr = (share * (1 - share) / max(n_units, 1)) ** 0.5
        tol = max(t.split_share_tolerance, t.split_share_z * stderr)
        bounds[split] = Range(min=max(0.0, share - tol), max=min(1.0, share + tol))
    return bounds


def marts_parameters(t: MartThresholds, expected_shares: dict[str, float], n_units: int) -> dict[str, Any]:
    params: dict[str, Any] = {f"min_rows_{rel}": t.min_rows[rel] for rel in MART_RELATIONS}
    for split, rng in split_share_bounds(t, expected_shares, n_units).items():
        params[f"expected_{split}_share"] = expected_shares[split]
        params[f"min_{split}_share"] = round(rng.min, 6)
        params[f"max_{split}_share"] = round(rng.max, 6)
    params["min_evaluated_sessions"] = t.min_evaluated_sessions
    return params


def marts_summary_suite(t: MartThresholds) -> SuiteSpec:
    exps = [
        expectation(
            gxe.ExpectColumnMinToBeBetween,
            f"rows_{rel}",
            f"rows in {rel}",
            f">= $min_rows_{rel}",
            column=f"rows_{rel}",
            min_value=_param(f"min_rows_{rel}"),
        )
        for rel in MART_RELATIONS
    ]
    exps += [
        expectation(
            gxe.ExpectColumnMinToBeBetween,
            f"{split}_share",
            f"share of split units in the {split} split",
            f"in [$min_{split}_share, $max_{split}_share] (dbt var: $expected_{split}_share)",
            column=f"{split}_share",
            min_value=_param(f"min_{split}_share"),
            max_value=_param(f"max_{split}_share"),
        )
        for split in SPLITS
    ]
    exps += [
        expectation(
            gxe.ExpectColumnMinToBeBetween,
            f"evaluated_{split}",
            f"evaluated sessions in the {split} split",
            ">= $min_evaluated_sessions",
            column=f"evaluated_{split}_sessions",
            min_value=_param("min_evaluated_sessions"),
        )
        for split in EVALUATION_SPLITS
    ]
    return SuiteSpec(MARTS_SUMMARY_SUITE, exps, unit="summary rows")


def marts_playlists_suite(t: MartThresholds) -> SuiteSpec:
    return SuiteSpec(
        MARTS_PLAYLISTS_SUITE,
        [
            expectation(
                gxe.ExpectColumnValuesToBeBetween,
                "playlist_in_one_split",
                "splits a playlist's sessions fall in",
                "== 1 for every playlist (no leakage across splits)",
                column="n_splits",
                min_value=1,
                max_value=1,
            ),
        ],
        unit="playlists",
    )


def marts_evaluated_suite(t: MartThresholds) -> SuiteSpec:
    return SuiteSpec(
        MARTS_EVALUATED_SUITE,
        [
            expectation(
                gxe.ExpectColumnValuesToBeBetween,
                "holdout_present",
                "held-out tracks per evaluated session",
                f">= {t.min_holdout_tracks} for every session",
                column="n_holdout",
                min_value=t.min_holdout_tracks,
            ),
            expectation(
                gxe.ExpectColumnValuesToBeBetween,
                "seed_present",
                "seed (query) tracks per evaluated session",
                f">= {t.min_seed_tracks} for every session",
                column="n_seed",
                min_value=t.min_seed_tracks,
            ),
        ],
        unit="evaluated sessions",
    )


def marts_suites(t: MartThresholds) -> tuple[SuiteSpec, SuiteSpec, SuiteSpec]:
    return marts_summary_suite(t), marts_playlists_suite(t), marts_evaluated_suite(t)
