"""Cold start from a playlist's name: the tokenizer, the name rows, the name rankers, and the blocks
`ml train` writes (real parquet files, real gensim vectors, the tiny warehouse and model)."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from ml import config
from ml.cold_start import KeywordPopularityRanker, NameModel, NameVectorRanker, fit_name_model, track_prior
from ml.name_tokens import name_keys, tokenize
from ml.rankers import PopularityRanker, VectorRanker
from ml.run_dir import RunDir
from ml.shapes import EvalSet, Ragged

# --- the tokenizer --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "tokens"),
    [
        ("Summer Chill", ["summer", "chill"]),
        ("  SUMMER   chill  ", ["summer", "chill"]),
        ("Música latina", ["musica", "latina"]),  # accents folded
        ("à écouter", ["ecouter"]),  # fr stop word `a` after folding, one-letter words dropped
        ("Best of the Rock", ["best", "rock"]),  # en stop words
        ("Lo mejor de la música", ["mejor", "musica"]),  # es
        ("Musik für die Party", ["musik", "party"]),  # de (`für` folds to `fur`, a stop word)
        ("Het beste van", ["beste"]),  # nl
        ("Låtar och visor", ["latar", "visor"]),  # sv
        ("METAL 🤘", ["metal", "🤘"]),  # emoji kept as a token
        ("🔥🔥🔥", ["🔥"]),  # a name is a set of tokens
        ("❤️ love", ["❤", "love"]),  # variation selector dropped
        ("Thumbs 👍🏽", ["thumbs", "👍"]),  # skin tone dropped
        ("k-pop", ["kpop"]),
        ("KPOP", ["kpop"]),  # spellings meet
        ("R&B Soul", ["r&b", "soul"]),
        ("rock & roll", ["rock", "roll"]),
        ("케이팝", ["케이팝"]),  # Hangul stays whole
        ("हिंदी गाने", ["हिंदी", "गाने"]),  # Devanagari vowel signs stay with their word
        ("Summer 2014", ["summer", "2014"]),  # years kept
        ("Playlist 3", ["playlist"]),  # one-character ASCII words dropped
        ("Starred", []),  # the client's own playlists carry no name signal
        (" liked from radio ", []),
        ("", []),
    ],
)
def test_tokenize(name: str, tokens: list[str]) -> None:
    assert tokenize(name) == tokens


def test_name_keys_are_prefixed_and_never_look_like_a_track_id() -> None:
    assert name_keys("Summer Chill") == ["name:summer", "name:chill"]


def test_the_tokenizer_knows_the_auto_playlists_of_the_config() -> None:
    from ml import name_tokens

    assert name_tokens.AUTO_PLAYLIST_NAMES == config.AUTO_PLAYLIST_NAMES


def test_the_tokenizer_is_standard_library_only_and_loads_by_path() -> None:
    """ml/name_tokens.py needs only the standard library and loads by path, outside any package."""
    path = config.REPO_ROOT / "ml" / "name_tokens.py"
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= set(sys.stdlib_module_names)
    spec = importlib.util.spec_from_file_location("loose_name_tokens", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.tokenize("Chill Vibes ☀️") == ["chill", "vibes", "☀"]


# --- name rows and rankers (hand-made data) ----------------------------------------------------------

TRACK_IDS = np.array([f"{i:016x}" for i in range(8)])
# Two tastes: tracks 0-3 in "rock" playlists, 4-7 in "jazz" ones; track 0 and 4 the most popular.
TRAIN = Ragged.from_lists([[0, 1, 2], [0, 1], [0, 3], [4, 5], [4, 6], [4, 5, 7], [0, 4]])
TRAIN_NAMES = ["Rock", "rock!", "Classic Rock", "Jazz", "smooth jazz", "Jazz", "Starred"]


def _base(per_seed: int = 0) -> VectorRanker:
    rng = np.random.default_rng(5)
    centres = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)
    vectors = np.vstack([centres[i // 4] + 0.3 * rng.normal(size=4) for i in range(8)]).astype(np.float32)
    kv = KeyedVectors(vector_size=4)
    kv.add_vectors([str(t) for t in TRACK_IDS], vectors)
    popular = PopularityRanker().fit(TRAIN, TRACK_IDS).order
    return VectorRanker().set_vectors(kv, TRACK_IDS, popular, per_seed=per_seed)


def _items(base: VectorRanker) -> tuple[np.ndarray, np.ndarray]:
    assert base.model is not None
    prior = track_prior(np.bincount(TRAIN.values, minlength=8))
    return np.hstack([base.model.items, prior[base.model.track_of_row, None]]), prior  # [I | prior]


@pytest.mark.parametrize("method", ["query_mean", "ridge"])
def test_a_name_alone_ranks_its_taste_first_and_an_unknown_name_gets_popularity(method: str) -> None:
    base = _base()
    items, prior = _items(base)
    tokens = [name_keys(n) for n in TRAIN_NAMES]
    names = fit_name_model(
        base.model.query, items, TRAIN.map_values(base.model.row_of_track), tokens, method, min_playlists=2
    )
    assert set(names.keys) == {"name:rock", "name:jazz"}  # `classic`, `smooth` once; Starred none
    assert names.rows.shape == (2, 5)
    ranker = NameVectorRanker(base, prior, names)
    empty = Ragged.from_lists([[], [], []])
    ranking = ranker.rank_named(["ROCK", "Jazz 2014", "Sleep"], empty, k=4)
    assert set(ranking.tracks[0].tolist()) == {0, 1, 2, 3}
    assert set(ranking.tracks[1].tolist()) == {4, 5, 6, 7}
    assert ranking.fallback.tolist() == [False, False, True]
    popular = PopularityRanker().fit(TRAIN, TRACK_IDS).order
    assert ranking.tracks[2].tolist() == popular[:4].tolist()


def test_an_artist_token_no_playlist_name_carries_finds_the_artist() -> None:
    base = _base()
    items, prior = _items(base)
    artists = ["Miles Davis", "Miles Davis", "Coltrane", "Evans", "Ozzy", "Ozzy", "Dio", "Ozzy"]
    artist_tokens = [name_keys(artists[int(t)]) for t in base.model.track_of_row]
    tokens = [name_keys(n) for n in TRAIN_NAMES]
    names = fit_name_model(
        base.model.query, items, TRAIN, tokens, "query_mean", 2, beta=0.5, item_tokens=artist_tokens
    )
    assert {"name:rock", "name:jazz", "name:miles", "name:davis", "name:ozzy"} <= set(names.keys)
    ozzy = list(names.keys).index("name:ozzy")
    assert names.n_playlists[ozzy] == 0 and names.rows[ozzy, -1] == 0.0  # from artists: no prior
    ranking = NameVectorRanker(base, prior, names).rank_named(["Ozzy – Live"], Ragged.from_lists([[]]), k=3)
    assert set(ranking.tracks[0].tolist()) <= {4, 5, 6, 7}  # Ozzy's tracks and their neighbours


@pytest.mark.parametrize("idf", [0.0, 1.0])
def test_query_mean_rows_are_the_mean_of_the_playlists_queries_weighed_by_idf(idf: float) -> None:
    base = _base()
    items, _ = _items(base)
    tokens = [name_keys(n) for n in TRAIN_NAMES]
    query = base.model.query
    names = fit_name_model(query, items, TRAIN, tokens, "query_mean", min_playlists=2, beta=0.3, idf=idf)
    assert names.params["space"] == "items" and names.params["idf"] == idf
    rock = np.mean([query[[0, 1, 2]].mean(0), query[[0, 1]].mean(0), query[[0, 3]].mean(0)], axis=0)
    weight = np.log(7 / 3) ** idf  # 7 train playlists, 3 of them named rock
    row = names.rows[list(names.keys).index("name:rock")]
    np.testing.assert_allclose(row[:4], rock * weight, rtol=1e-5)
    assert row[4] == pytest.approx(0.3 * weight)


def test_ridge_rows_solve_the_regularized_least_squares_of_the_track_shares() -> None:
    base = _base()
    items, _ = _items(base)
    alpha = 0.1
    names = fit_name_model(
        base.model.query,
        items,
        TRAIN,
        [name_keys(n) for n in TRAIN_NAMES],
        "ridge",
        min_playlists=2,
        alpha=alpha,
    )
    x = items.astype(np.float64)
    gram = x.T @ x
    penalty = alpha * np.trace(gram) / gram.shape[0]
    jazz_share = np.array([0, 0, 0, 0, 3, 2, 1, 1]) / 3  # tracks of the 3 jazz playlists
    v = np.linalg.solve(gram + penalty * np.eye(5), x.T @ jazz_share)
    row = names.rows[list(names.keys).index("name:jazz")]
    np.testing.assert_allclose(row, v / np.linalg.norm(v[:4]), rtol=1e-4)


@pytest.mark.parametrize("per_seed", [0, 2])
def test_a_name_worth_zero_seeds_is_exactly_the_track_model_and_a_worth_moves_it(per_seed: int) -> None:
    """Under either track rule (the mean query; per-seed aggregation, where the name is one more
    per-seed list) a name worth 0 seeds leaves the seeds' answer exactly, and a worth moves it."""
    base = _base(per_seed)
    items, prior = _items(base)
    names = fit_name_model(
        base.model.query, items, TRAIN, [name_keys(n) for n in TRAIN_NAMES], "query_mean", 2, beta=0.2
    )
    seeds = Ragged.from_lists([[0], [4, 5], [], [1]])
    plain = base.rank(seeds, 5)
    named = NameVectorRanker(base, prior, names.with_worth(0.0)).rank_named(
        ["Jazz", "rock", "", "x"], seeds, 5
    )
    assert named.tracks.tolist() == plain.tracks.tolist()
    assert np.array_equal(named.scores, plain.scores)
    assert named.fallback.tolist() == [False, False, True, False]
    # A rock seed, a jazz name worth 9 seeds: jazz first (per-seed: the name's list keeps M = 2).
    k = 2 if per_seed else 3
    pulled = NameVectorRanker(base, prior, names.with_worth(9.0)).rank_named(["Jazz"], seeds.take([0]), k)
    assert set(pulled.tracks[0].tolist()) <= {4, 5, 6, 7}
    for i in range(len(seeds)):
        assert not np.isin(named.tracks[i], seeds.row(i)).any()


def test_keyword_popularity_counts_the_playlists_sharing_a_token() -> None:
    tokens = [name_keys(n) for n in TRAIN_NAMES]
    ranker = KeywordPopularityRanker(min_playlists=2).fit(TRAIN, tokens, 8)
    seeds = Ragged.from_lists([[], [5], []])
    ranking = ranker.rank_named(["rock classics", "JAZZ", "Starred"], seeds, k=4)
    # rock playlists: 0 in three, 1 in two, 2 and 3 in one (2 before 3: same count, same popularity)
    assert ranking.tracks[0].tolist() == [0, 1, 2, 3]
    # jazz: 4 in three, 5 (a seed) excluded, then 6 and 7 (one each), then the most popular track
    assert ranking.tracks[1].tolist() == [4, 6, 7, 0]
    assert ranking.fallback.tolist() == [False, False, True]


def test_the_name_model_round_trips_through_a_run_folder(tmp_path: Path) -> None:
    base = _base()
    items, _ = _items(base)
    names = fit_name_model(
        base.model.query, items, TRAIN, [name_keys(n) for n in TRAIN_NAMES], "ridge", 2
    ).with_worth(0.5)
    names.save(tmp_path)
    again = NameModel.load(tmp_path)
    assert RunDir(tmp_path).name_tokens.exists()
    assert again.keys.tolist() == names.keys.tolist() and again.worth == 0.5
    np.testing.assert_array_equal(again.rows, names.rows)
    # A table fitted before the name space was the item matrix is refused, not served wrong.
    old = tmp_path / "old"
    old.mkdir()
    NameModel(names.keys, names.rows, names.n_playlists, 0.0, {"method": "centroid"}).save(old)
    with pytest.raises(ValueError, match="rerun `ml train`"):
        NameModel.load(old)
    assert again.params == names.params and again.n_playlists.tolist() == names.n_playlists.tolist()


def test_a_cold_eval_set_has_no_seeds_and_every_track_as_a_target() -> None:
    es = EvalSet(
        session_ids=np.array(["a", "b"]),
        seeds=Ragged.from_lists([[1, 2], [3]]),
        holdouts=Ragged.from_lists([[4], [5, 6]]),
        last_query=np.array([2, 5]),
        last_target=np.array([4, 6]),
        names=np.array(["x", "y"], dtype=object),
    )
    cold = es.cold()
    assert cold.seeds.lengths.tolist() == [0, 0]
    assert [r.tolist() for r in cold.holdouts.rows()] == [[1, 2, 4], [3, 5, 6]]
    assert cold.subset(np.array([1])).names.tolist() == ["y"]


# --- the tiny warehouse and model --------------------------------------------------------------------


def test_playlists_load_with_their_names(tiny_warehouse: Path) -> None:
    from ml import warehouse as wh
    from ml.corpus import load_playlists

    con = wh.connect(tiny_warehouse)
    try:
        data = load_playlists(con)
        expected = dict(con.execute("select session_id, playlist_name from dim_playlists").fetchall())
    finally:
        con.close()
    assert data.train_names is not None and len(data.train_names) == len(data.train)
    for ids, names in (
        (data.train_session_ids, data.train_names),
        (data.valid.session_ids, data.valid.names),
        (data.test.session_ids, data.test.names),
    ):
        assert names is not None
        assert [expected[s] for s in ids] == names.tolist()


def test_training_writes_the_name_blocks_and_the_name_table(tiny_model: Path) -> None:
    metrics = json.loads((tiny_model / "metrics.json").read_text())
    name_only, both = metrics["name_only"], metrics["name_and_seeds"]
    for split in ("valid", "test"):
        assert 0.0 <= name_only[split]["hr@10"] <= 1.0
        for baseline in ("popularity", "name_keyword_popularity"):
            assert "hr@10" in name_only["baselines"][baseline][split]
        assert both["baselines"]["seeds_only"][split]["hr@10"] == metrics[split]["hr@10"]
        assert both[split]["n_playlists"] == metrics[split]["n_playlists"]
    # the name table is the best of the trials on valid (the figures themselves are measured on the
    # small and full presets: the tiny one has a dozen valid playlists and a 16-d, 5-epoch model)
    best = max(row["valid_name_only_hr@10"] for row in name_only["selection"])
    chosen = [
        r
        for r in name_only["selection"]
        if all(r[k] == v for k, v in name_only["selected"].items() if k in r)
    ]
    assert chosen and chosen[0]["valid_name_only_hr@10"] == best
    # the name's worth: the best on valid if it beats the seeds alone by a standard error, else 0
    rows = both["selection"]
    assert [r["worth"] for r in rows if r["chosen"]] == [both["worth"]]
    best = max(rows, key=lambda r: r["valid_name_and_seeds_hr@10"])
    beats = best["gain_over_seeds"] > best["gain_standard_error"]
    assert both["worth"] == (best["worth"] if beats else 0.0)
    names = NameModel.load(tiny_model)
    assert names.worth == both["worth"] and len(names.keys) == name_only["selected"]["n_tokens"]
    assert all(k.startswith("name:") for k in names.keys)
    assert "Cold start from a playlist's name" in (tiny_model / "model_card.md").read_text()
