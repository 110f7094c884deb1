"""The gates' thresholds: one YAML file (gx/thresholds.yml), a named profile over it, per-run overrides."""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ml.config import REPO_ROOT

THRESHOLDS_PATH = REPO_ROOT / "gx" / "thresholds.yml"


@dataclass(frozen=True)
class Range:
    min: float
    max: float

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"range min {self.min} > max {self.max}")

    def __str__(self) -> str:
        return f"[{_fmt(self.min)}, {_fmt(self.max)}]"

    @classmethod
    def parse(cls, text: str) -> Range:
        """`MIN:MAX` (either side may be empty: `:5000`, `100:`), as given on the command line."""
        lo, sep, hi = text.partition(":")
        if not sep:
            raise ValueError(f"expected MIN:MAX, got {text!r}")
        return cls(min=float(lo) if lo.strip() else 0, max=float(hi) if hi.strip() else float("inf"))


@dataclass(frozen=True)
class RawThresholds:
    data_lines: Range
    distinct_users: Range
    max_rejected_share: float
    max_recovered_share: float
    max_empty_artist_share: float
    max_empty_track_share: float
    max_empty_playlist_share: float
    min_valid_user_id_share: float
    line_length: Range
    min_line_length_ok_share: float
    max_user_row_share: float
    min_users_for_row_share: int
    max_carriage_returns: int
    max_nul_bytes: int
    max_control_character_share: float
    share_alpha: float


def allowed_count(n: int, share: float, alpha: float) -> int:
    """The most lines of a kind among `n` that a file whose true share is `share` shows with
    probability at least `alpha`: the binomial upper (1 - alpha) quantile.

    A share threshold means "the file's rate of such lines is at most `share`"; the count it allows
    grows with the file and its tolerance shrinks with it, so a small file is not failed by the
    noise of a few lines (16 of 4,027 at a 0.2 % rate has p = 0.009, far from alpha) while the full
    file is held to its share within a few per mille. share 0 allows none; share 1 allows all.
    """
    if n <= 0 or share <= 0:
        return 0
    if share >= 1:
        return n
    from scipy.stats import binom

    return int(min(n, binom.isf(alpha, n, share)))


@dataclass(frozen=True)
class MartThresholds:
    min_rows: dict[str, int]
    split_share_tolerance: float
    split_share_z: float
    min_evaluated_sessions: int
    min_seed_tracks: int
    min_holdout_tracks: int


@dataclass(frozen=True)
class Thresholds:
    raw: RawThresholds
    marts: MartThresholds
    profile: str | None = None
    source: str = str(THRESHOLDS_PATH)


def _fmt(value: float) -> str:
    if value == float("inf"):
        return "inf"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _build(cls: type, section: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(section) - names
    missing = names - set(section)
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    kwargs = {}
    for f in fields(cls):
        value = section[f.name]
        kwargs[f.name] = Range(**value) if f.type == "Range" else value
    return cls(**kwargs)


def load_thresholds(
    path: Path = THRESHOLDS_PATH,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Thresholds:
    """Read the YAML, layer `profiles.<profile>` on it, then `overrides` (same nesting: {"raw": {...}})."""
    if not path.exists():
        raise FileNotFoundError(f"thresholds file not found: {path}")
    doc = yaml.safe_load(path.read_text()) or {}
    profiles = doc.pop("profiles", {}) or {}
    if profile:
        if profile not in profiles:
            raise ValueError(f"unknown gate profile {profile!r} in {path}; known: {sorted(profiles)}")
        doc = _merge(doc, profiles[profile])
    if overrides:
        doc = _merge(doc, overrides)
    return Thresholds(
        raw=_build(RawThresholds, doc.get("raw", {}), f"{path}: raw"),
        marts=_build(MartThresholds, doc.get("marts", {}), f"{path}: marts"),
        profile=profile,
        source=str(path),
    )
