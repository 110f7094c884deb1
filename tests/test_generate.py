"""The generator: exact raw format, quirk rates, structure (heavy tails, learnable), determinism."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from ml.cli import main as cli_main
from ml.config import RAW_HEADER
from ml.data import generate as gen
from ml.data import presets

SEED = 7
# A well-formed data line: four double-quoted fields, inner quotes escaped with a backslash.
FIELD = r'((?:[^"\\]|\\.)*)'
LINE_RE = re.compile(rf'^"([0-9a-f]{{32}})","{FIELD}","{FIELD}","{FIELD}"$')
UNESCAPE_RE = re.compile(r"\\(.)")
# The one reader configuration for the real format, shared by the real sample and generated files.
READER = gen.DUCKDB_RAW_READ_OPTIONS


def _data_lines(path: Path) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n") and "\r" not in text
    return text.split("\n")[1:-1]


def _parse(lines: list[str]) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """Well-formed rows (unescaped values) and the lines that are not well-formed."""
    rows, bad = [], []
    for line in lines:
        m = LINE_RE.match(line)
        if m is None:
            bad.append(line)
        else:
            rows.append(tuple(UNESCAPE_RE.sub(r"\1", f) for f in m.groups()))  # type: ignore[misc]
    return rows, bad


@pytest.fixture(scope="module")
def mid_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small preset scaled to 80k rows: enough rows for rates, tails and a held-out evaluation."""
    out = tmp_path_factory.mktemp("gen") / "mid.csv"
    gen.generate(preset="small", rows=80_000, seed=SEED, out=out)
    return out


@pytest.fixture(scope="module")
def mid_rows(mid_csv: Path) -> tuple[list[str], list[tuple[str, str, str, str]], list[str]]:
    lines = _data_lines(mid_csv)
    rows, bad = _parse(lines)
    return lines, rows, bad


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tiny_csv: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.csv"
    other = tmp_path / "other.csv"
    result = gen.generate(preset="tiny", rows=None, seed=SEED, out=again)
    gen.generate(preset="tiny", rows=None, seed=SEED + 1, out=other)
    assert again.read_bytes() == tiny_csv.read_bytes()
    assert gen.sidecar_path(again).read_bytes() == gen.sidecar_path(tiny_csv).read_bytes()
    assert other.read_bytes() != tiny_csv.read_bytes()
    assert result.rows == len(_data_lines(again))
    assert not list(tmp_path.glob(".*tmp*")), "the temp file must be renamed away"


def test_cli_twice_gives_identical_bytes_and_the_exact_header(tmp_path: Path) -> None:
    runner = CliRunner()
    outs = [tmp_path / "a.csv", tmp_path / "b.csv"]
    for out in outs:
        res = runner.invoke(
            cli_main, ["data", "generate", "--preset", "tiny", "--seed", "7", "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        assert "rows" in res.output and "playlists" in res.output
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes().split(b"\n", 1)[0] == b'"user_id", "artistname", "trackname", "playlistname"'


def test_cli_never_overwrites_raw_csv_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "spotify_dataset.csv"
    raw.write_text("keep me\n")
    monkeypatch.setenv("RAW_CSV", str(raw))
    res = CliRunner().invoke(cli_main, ["data", "generate", "--preset", "tiny"])
    assert res.exit_code != 0
    assert raw.read_text() == "keep me\n"


def test_rows_option_scales_the_preset_and_bad_input_is_refused(tmp_path: Path) -> None:
    result = gen.generate(preset="tiny", rows=2_000, seed=SEED, out=tmp_path / "r.csv")
    assert 1_700 <= result.rows <= 2_300
    assert f"{result.rows:,} rows" in result.summary()
    with pytest.raises(ValueError, match="unknown preset"):
        gen.generate(preset="huge", rows=None, seed=SEED, out=tmp_path / "x.csv")
    with pytest.raises(ValueError, match="rows"):
        gen.generate(preset="tiny", rows=10, seed=SEED, out=tmp_path / "x.csv")


# --- format ----------------------------------------------------------------------------------------


def test_header_quoting_and_layout_match_the_real_file(tiny_csv: Path, real_sample_csv: Path) -> None:
    for path in (tiny_csv, real_sample_csv):
        assert path.read_bytes().split(b"\n", 1)[0].decode() == RAW_HEADER
    real_rows, real_bad = _parse(_data_lines(real_sample_csv))
    assert len(real_rows) == 500 and not real_bad  # the line pattern describes the real file
    lines = _data_lines(tiny_csv)
    rows, bad = _parse(lines)
    assert 4_000 <= len(lines) <= 6_000
    assert len(bad) <= 0.003 * len(lines)  # only the unescaped-quote quirk breaks the pattern
    assert all(line.startswith('"') and line.endswith('"') and len(line) > 40 for line in lines)
    assert all(re.fullmatch(r'"[0-9a-f]{32}",.*', line) for line in lines)
    # Rows of a user, and of a playlist, are contiguous.
    user_blocks = [u for i, u in enumerate(r[0] for r in rows) if i == 0 or rows[i - 1][0] != u]
    assert len(user_blocks) == len(set(user_blocks))
    pl_keys = [(r[0], r[3]) for r in rows]
    pl_blocks = [k for i, k in enumerate(pl_keys) if i == 0 or pl_keys[i - 1] != k]
    assert len(pl_blocks) == len(set(pl_blocks)) >= 80


def test_rows_are_sorted_by_title_inside_each_playlist(mid_rows) -> None:
    _, rows, _ = mid_rows
    unsorted = sum(
        1
        for prev, cur in zip(rows, rows[1:], strict=False)
        if (prev[0], prev[3]) == (cur[0], cur[3]) and cur[2] < prev[2]
    )
    assert unsorted == 0
    # ... and the order is not trivially the artist order or the file would not look real.
    same_pl = [(p, c) for p, c in zip(rows, rows[1:], strict=False) if (p[0], p[3]) == (c[0], c[3])]
    assert sum(c[1] < p[1] for p, c in same_pl) > 0.2 * len(same_pl)


def test_quirk_rates_are_realistic(mid_rows) -> None:
    lines, rows, bad = mid_rows
    n = len(lines)
    artists = [r[1] for r in rows]
    tracks = [r[2] for r in rows]
    playlists = [r[3] for r in rows]
    empty_artist = sum(a == "" for a in artists) / n
    assert 0.0018 <= empty_artist <= 0.0035, empty_artist
    assert 0.0003 <= len(bad) / n <= 0.0015, len(bad)
    # Most unescaped-quote lines still split on `","`; a few do not.
    unsplittable = [line for line in bad if len(line[1:-1].split('","')) != 4]
    assert 1 <= len(unsplittable) < len(bad)
    assert all('\\"' not in line for line in bad)
    dup = 1 - len(set(lines)) / n
    assert 0.004 <= dup <= 0.011, dup
    assert 1 <= sum(t == "" for t in tracks) <= 0.001 * n
    assert len({(r[0], r[3]) for r in rows if r[3] == ""}) >= 1
    names = Counter(artists) + Counter(tracks) + Counter(playlists)
    assert all(names[lit] > 0 for lit in ("NA", "null", "None", "NaN"))
    padded = [s for s in set(artists) | set(tracks) | set(playlists) if s and s != s.strip()]
    assert any(s.endswith(" ") for s in padded) and any(s.startswith(" ") for s in padded)
    assert 0.005 <= sum(p != p.strip() for p in playlists) / n <= 0.05
    assert 0.0005 <= sum('\\"' in line for line in lines) / n <= 0.01  # escaped quotes, correctly
    assert sum("," in a for a in artists) > 0 and sum("," in t for t in tracks) > 0.01 * n
    non_ascii = sum(any(ord(ch) > 127 for ch in line) for line in lines) / n
    assert 0.05 <= non_ascii <= 0.3, non_ascii
    text = "\n".join(lines)
    for script, pattern in {
        "accents": "[éèüöñçå]",
        "hangul": "[\uac00-\ud7a3]",
        "kana/kanji": "[\u3040-\u30ff\u4e00-\u9fff]",
        "arabic": "[\u0600-\u06ff]",
        "hebrew": "[\u0590-\u05ff]",
        "emoji": "[\U0001f300-\U0001faff\u2600-\u27bf]",
    }.items():
        assert re.search(pattern, text), f"no {script} in the generated file"
    assert 0.05 <= playlists.count("Starred") / n <= 0.15
    assert 0.005 <= playlists.count("Liked from Radio") / n <= 0.06


def test_sidecar_holds_each_track_with_its_taste(mid_csv: Path, mid_rows) -> None:
    _, rows, _ = mid_rows
    side = pq.read_table(gen.sidecar_path(mid_csv)).to_pylist()
    assert set(side[0]) == {"artistname", "trackname", "community", "community_name", "n_rows"}
    keys = [(s["artistname"], s["trackname"]) for s in side]
    assert len(keys) == len(set(keys))
    assert len({s["community"] for s in side}) == gen.PRESETS["small"].communities
    # Written names equal the sidecar's up to padding: every row joins, except the few whose artist or
    # title the quirks blanked.
    side_by_norm = {(a.strip().lower(), t.strip().lower()): s for (a, t), s in zip(keys, side, strict=True)}
    joined = sum((r[1].strip().lower(), r[2].strip().lower()) in side_by_norm for r in rows)
    blanked = sum(r[1] == "" or r[2] == "" for r in rows)
    assert blanked <= 0.005 * len(rows)
    assert joined + blanked == len(rows)
    assert sum(s["n_rows"] for s in side) >= len(rows)
    # The latent taste is visible in the playlists: most of a playlist's rows share one community.
    by_pl: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        s = side_by_norm.get((r[1].strip().lower(), r[2].strip().lower()))
        if s is not None and r[3] not in ("Starred", "Liked from Radio"):
            by_pl.setdefault((r[0], r[3]), []).append(s["community"])
    big = [c for c in by_pl.values() if len(c) >= 5]
    purity = [Counter(c).most_common(1)[0][1] / len(c) for c in big]
    # Calibrated to mix tastes inside a playlist (docs/generator.md), so a playlist is not pure; but
    # its modal community holds far more of it than if the same rows' communities were shuffled.
    shuffled = np.random.default_rng(0).permutation(np.concatenate(big))
    ends = np.cumsum([len(c) for c in big])
    chance = [Counter(c).most_common(1)[0][1] / len(c) for c in np.split(shuffled, ends[:-1])]
    assert np.mean(purity) >= 0.6
    assert np.mean(purity) >= np.mean(chance) + 0.3


def test_duckdb_reads_the_real_sample_and_a_generated_file_completely(
    real_sample_csv: Path, mid_csv: Path, mid_rows
) -> None:
    lines, _, bad = mid_rows
    for path, n_lines in ((real_sample_csv, 500), (mid_csv, len(lines))):
        con = duckdb.connect()
        loaded = con.execute(f"select count(*) from read_csv('{path}', {READER})").fetchall()[0][0]
        rejected = con.execute("select count(distinct line) from reject_errors").fetchall()[0][0]
        assert loaded + rejected == n_lines, path
        if path == real_sample_csv:
            assert rejected == 0
            weird_al = con.execute(
                f"select artistname from read_csv('{path}', {READER}) where trackname like 'White & Nerdy%'"
            ).fetchall()
            assert weird_al == [('"Weird Al" Yankovic',)]
        else:
            # Rejected lines are exactly the unescaped-quote ones (line numbers count the header as 1).
            bad_lines = {i + 2 for i, line in enumerate(lines) if not LINE_RE.match(line)}
            got = {r[0] for r in con.execute("select distinct line from reject_errors").fetchall()}
            assert got == bad_lines and len(bad) == rejected


# --- structure -------------------------------------------------------------------------------------


def test_popularity_and_playlist_sizes_are_heavy_tailed(mid_rows) -> None:
    _, rows, _ = mid_rows
    tracks = Counter((r[1].strip().lower(), r[2].strip().lower()) for r in rows)
    counts = np.sort(np.fromiter(tracks.values(), dtype=np.int64))[::-1]
    top1 = counts[: max(1, len(counts) // 100)].sum() / counts.sum()
    assert top1 >= 0.08, top1  # 1% of the tracks hold 8x their share of rows (flat heads, as calibrated)
    assert (counts == 1).mean() >= 0.2  # a long tail of tracks seen once
    sizes = np.fromiter(Counter((r[0], r[3]) for r in rows).values(), dtype=np.int64)
    assert 12 <= np.median(sizes) <= 24
    assert sizes.max() >= 20 * np.median(sizes)
    per_user = np.fromiter(Counter(u for u, _ in {(r[0], r[3]) for r in rows}).values(), dtype=np.int64)
    assert per_user.max() >= 4 * np.median(per_user)
    intro_artists = {r[1] for r in rows if r[2] == "Intro"}
    assert len(intro_artists) >= 10  # a title many artists share


def test_full_preset_scale_is_the_real_files() -> None:
    full = gen.PRESETS["full"]
    assert 12_500_000 <= full.rows <= 13_300_000
    assert 15_000 <= full.users <= 16_500 and 220_000 <= full.playlists <= 240_000
    # The real file's largest playlist holds about 47,000 rows.
    assert (
        40_000
        <= presets.FULL_SCALE_MAX_PLAYLIST
        < presets.FULL_SCALE_MAX_PLAYLIST + presets.FULL_SCALE_MAX_PLAYLIST_SPREAD
        <= 50_000
    )
    assert 250_000 <= gen.PRESETS["small"].rows <= 350_000


def _hit_rate_at_10(rows: list[tuple[str, str, str, str]], seed: int = 0) -> dict[str, float]:
    """Hold out one random track of 20% of playlists; rank by popularity and by co-occurrence."""
    playlists: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for r in rows:
        playlists.setdefault((r[0], r[3]), set()).add((r[1].strip().lower(), r[2].strip().lower()))
    vocab: dict[tuple[str, str], int] = {}
    lists = [sorted(vocab.setdefault(t, len(vocab)) for t in playlists[k]) for k in sorted(playlists)]
    rng = np.random.default_rng(seed)
    test = rng.random(len(lists)) < 0.2
    r_idx = [i for i, items in enumerate(lists) if not test[i] for _ in items]
    c_idx = [t for i, items in enumerate(lists) if not test[i] for t in items]
    x = sp.csr_matrix((np.ones(len(r_idx)), (r_idx, c_idx)), shape=(len(lists), len(vocab)))
    popularity = np.asarray(x.sum(axis=0)).ravel()
    inv_len = 1.0 / np.maximum(1.0, np.asarray(x.sum(axis=1)).ravel())
    hits = {"popularity": 0, "cooccurrence": 0}
    n = 0
    for i in np.flatnonzero(test):
        items = lists[i]
        if len(items) < 3:
            continue
        held = items[int(rng.integers(len(items)))]
        query = [t for t in items if t != held]
        q = np.zeros(len(vocab))
        q[query] = 1.0
        cooc = x.T @ ((x @ q) * inv_len) + 1e-9 * popularity  # ties broken by popularity
        for name, scores in (("popularity", popularity.astype(float)), ("cooccurrence", cooc)):
            scores[query] = -np.inf
            hits[name] += int(held in np.argpartition(-scores, 10)[:10])
        n += 1
    return {"evaluated": n, **{k: v / n for k, v in hits.items()}}


def test_structure_is_learnable_cooccurrence_beats_popularity(mid_rows) -> None:
    _, rows, _ = mid_rows
    hr = _hit_rate_at_10(rows)
    assert hr["evaluated"] >= 100
    # Learnable: co-occurrence well above popularity (~0.07 vs ~0.008 on this file of ~260 evaluated
    # playlists; bounds wide for that noise). The issue-11 re-calibration brought the full preset to
    # the real file's item-kNN ~0.1 and smaller files sit below it (docs/generator.md), hence 0.04.
    assert hr["cooccurrence"] >= 0.04, hr
    assert hr["cooccurrence"] >= 3 * hr["popularity"], hr
    # ... but not easier than the real file (item-kNN ~0.1 there; ~0.27 before calibration).
    assert hr["cooccurrence"] <= 0.15, hr


def test_tastes_mix_in_playlists_and_small_users_are_less_coherent(mid_csv: Path, mid_rows) -> None:
    """The sidecar's communities still explain playlists, mixed (several tastes per playlist) and less
    so for users with few playlists (the calibration levers; see docs/generator.md)."""
    _, rows, _ = mid_rows
    side = pq.read_table(gen.sidecar_path(mid_csv)).to_pylist()
    comm = {(t["artistname"].lower(), t["trackname"].lower()): t["community"] for t in side}
    playlists: dict[tuple[str, str], list[int]] = {}
    for r in rows:
        c = comm.get((r[1].strip().lower(), r[2].strip().lower()))
        if c is not None and r[3] not in ("Starred", "Liked from Radio"):
            playlists.setdefault((r[0], r[3]), []).append(c)
    per_user = Counter(u for u, _ in playlists)
    modal = {k: Counter(v).most_common(1)[0][1] / len(v) for k, v in playlists.items() if len(v) >= 5}
    few = [m for k, m in modal.items() if per_user[k[0]] <= 3]
    many = [m for k, m in modal.items() if per_user[k[0]] >= 20]
    assert len(few) >= 20 and len(many) >= 100
    assert 0.5 <= np.mean(many) <= 0.85, np.mean(many)  # one taste leads, others mixed in
    assert np.mean(few) <= np.mean(many) - 0.05, (np.mean(few), np.mean(many))
