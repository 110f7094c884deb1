"""ml.knn: the one scoring rule. Q = I = the normalized vectors is today's cosine rule, bit for bit;
a query table apart from the item matrix scores mean(Q[seeds]) . I[row]."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ml.knn import KnnTables, NameRule, SeedIndex, _select_top, normalize_rows, top_k


def cosine_before_the_generalisation(normed: np.ndarray, seed_rows: list[list[int]], k: int):
    """ml.knn.top_k as it was before KnnTables (the rule every saved run was scored with)."""
    queries = np.zeros((len(seed_rows), normed.shape[1]), dtype=np.float32)
    for i, rows in enumerate(seed_rows):
        if rows:
            queries[i] = normed[np.asarray(rows, dtype=np.int64)].mean(axis=0)
    scores = queries @ normed.T
    for i, rows in enumerate(seed_rows):
        if rows:
            scores[i, np.asarray(rows, dtype=np.int64)] = -np.inf
    return _select_top(scores, min(k, normed.shape[0]))


def playlists(rng: np.random.Generator, n_items: int, n: int) -> list[list[int]]:
    return [
        sorted(rng.choice(n_items, size=int(rng.integers(1, 40)), replace=False).tolist()) for _ in range(n)
    ]


def test_cosine_is_todays_rule_bit_for_bit():
    rng = np.random.default_rng(0)
    normed = normalize_rows(rng.normal(size=(5000, 64)))
    seeds = playlists(rng, 5000, 300) + [[]]
    rows, scores = cosine_before_the_generalisation(normed, seeds, 25)
    # One batch, as the old code's one product (BLAS may round another batch size differently).
    for got in (top_k(normed, seeds, 25), KnnTables(items_t=normed.T).top_k(seeds, 25)):
        assert np.array_equal(got.rows, rows) and np.array_equal(got.scores, scores)
    assert np.array_equal(KnnTables.cosine(normed).top_k(seeds, 25).rows, rows)
    # Served layout ([d, n] C-contiguous): the same ids; scores within float rounding.
    served = KnnTables(items_t=np.ascontiguousarray(normed.T)).top_k(seeds, 25)
    assert np.abs(served.scores[:-1] - scores[:-1]).max() < 1e-6
    assert (served.rows == rows).all(axis=1).mean() > 0.99


def test_a_query_table_apart_from_the_item_matrix():
    """query = mean of the seeds' Q rows; score = query . I[row]; seeds out; ties to the lower row."""
    rng = np.random.default_rng(1)
    n, d = 800, 16
    q = rng.normal(size=(n, d)).astype(np.float32)
    items = rng.normal(size=(n, d)).astype(np.float32)
    items[700] = items[100]  # an exact tie: row 100 must come first
    seeds = playlists(rng, n, 100)  # distinct rows: callers pass a playlist as a set
    got = top_k(q, seeds, 10, items=items)
    for i, rows in enumerate(seeds):
        query = q[sorted(set(rows))].astype(np.float64).mean(axis=0)
        scores = items.astype(np.float64) @ query
        scores[rows] = -np.inf
        order = np.lexsort((np.arange(n), -np.round(scores, 5)))[:10]
        assert set(got.rows[i]) == set(order) or np.allclose(
            np.sort(scores[got.rows[i]]), np.sort(scores[order]), atol=1e-5
        )
        assert not set(got.rows[i]) & set(rows)
        np.testing.assert_allclose(got.scores[i], scores[got.rows[i]], atol=1e-5)
    tied = top_k(q, [[0]], n - 1, items=items).rows[0].tolist()
    assert tied.index(100) < tied.index(700)
    # Q = I passed as two arrays is the shared case.
    same = top_k(items, seeds, 10, items=items)
    shared = top_k(items, seeds, 10)
    assert np.array_equal(same.rows, shared.rows)


def _per_seed_reference(query: np.ndarray, items: np.ndarray, seeds: list[int], m: int, k: int) -> list[int]:
    """The per-seed rule written out one seed and one item at a time (bench/results/
    track2vec_recipes.md `seedM`): each distinct seed's top m items get their inner product minus
    the seed's (m+1)-th one, summed per item; seeds out, top k, ties to the lower row."""
    n = len(items)
    total = np.zeros(n, dtype=np.float64)
    for s in sorted(set(seeds)):
        p = items @ query[s]
        order = sorted(range(n), key=lambda j: (-p[j], j))
        for j in order[:m]:
            total[j] += p[j] - p[order[m]]
    ranked = sorted((j for j in range(n) if j not in set(seeds)), key=lambda j: (-total[j], j))
    return ranked[:k]


def test_per_seed_rule_matches_the_written_out_rule():
    rng = np.random.default_rng(7)
    query = rng.normal(size=(300, 8)).astype(np.float32)
    items = rng.normal(size=(300, 8)).astype(np.float32)
    seeds = [[3, 17, 3, 250], [5], [], [299, 0, 1, 2, 3, 4]]
    tables = KnnTables(items_t=items.T, query_table=query, per_seed=20)
    got = tables.top_k(seeds, 30, batch_size=3)  # seed queries in several products
    for i, s in enumerate(seeds):
        if s:
            assert got.rows[i].tolist() == _per_seed_reference(query, items, s, 20, 30)
    # One seed keeps 20 items: the rest of its top 30 are the zero-score items in row order.
    assert got.rows[1, 20:].tolist() == [j for j in range(300) if j != 5 and j not in got.rows[1, :20]][:10]
    assert (got.scores[1, :19] > 0).all() and (got.scores[1, 20:] == 0).all()
    # An empty playlist: no contribution at all (the caller falls back to popularity).
    assert got.rows[2].tolist() == list(range(30))
    # M = 0 is the mean rule; the function form takes per_seed too; M is capped at n_items - 1.
    assert np.array_equal(
        KnnTables(items.T, query, per_seed=0).top_k(seeds, 30).rows, top_k(query, seeds, 30, items=items).rows
    )
    assert np.array_equal(top_k(query, seeds, 30, items=items, per_seed=20).rows, got.rows)
    big = KnnTables(items_t=items.T, query_table=query, per_seed=10_000).top_k([[3, 17]], 5)
    assert big.rows[0].tolist() == _per_seed_reference(query, items, [3, 17], 299, 5)


def test_per_seed_differs_from_the_mean_rule():
    rng = np.random.default_rng(8)
    normed = normalize_rows(rng.normal(size=(400, 6)))
    seeds = [list(rng.choice(400, size=5, replace=False)) for _ in range(20)]
    mean = top_k(normed, seeds, 10).rows
    per_seed = top_k(normed, seeds, 10, per_seed=5).rows
    assert not np.array_equal(mean, per_seed)


def test_select_top_with_massive_ties_keeps_the_lower_rows():
    """Rows mostly tied at the bound (the per-seed rule's zeros): the tied part is trimmed before
    sorting, and the answer is still score descending, then lower column first."""
    scores = np.zeros((3, 20_000), dtype=np.float32)
    scores[0, [50, 9000]] = [2.0, 1.0]
    scores[1, 7] = -np.inf
    scores[2, 100:200] = 0.5
    rows, top = _select_top(scores, 6)
    assert rows[0].tolist() == [50, 9000, 0, 1, 2, 3]
    assert rows[1].tolist() == [0, 1, 2, 3, 4, 5]
    assert rows[2].tolist() == [100, 101, 102, 103, 104, 105]
    assert top[0].tolist() == [2.0, 1.0, 0, 0, 0, 0]
    wide = np.zeros((2, 500), dtype=np.float32)  # narrow rows: the exact bound, ties trimmed too
    wide[1, 499] = 1.0
    assert _select_top(wide, 3)[0].tolist() == [[0, 1, 2], [499, 0, 1]]


# --- per-seed scan: distinct seeds, sparse sums, blocked and pruned top lists (issue 12) ---------


def per_seed_before_sparse(query: np.ndarray, items: np.ndarray, seed_rows, m: int, k: int):
    """KnnTables.top_k under per-seed aggregation as it was before the sparse path: a dense score
    matrix, each seed occurrence's top m+1 by one product, np.add.at, seeds -inf, _select_top."""
    n = len(items)
    m = min(m, n - 1)
    scores = np.zeros((len(seed_rows), n), dtype=np.float32)
    for i, rows in enumerate(seed_rows):
        for s in np.unique(np.asarray(rows, dtype=np.int64)):
            cols, vals = _select_top((query[s] @ items.T)[None, :], m + 1)
            np.add.at(scores[i], cols[0, :m], vals[0, :m] - vals[0, m])
        if len(rows):
            scores[i, np.asarray(rows, dtype=np.int64)] = -np.inf
    return _select_top(scores, min(k, n))


def integer_tables(rng: np.random.Generator, n: int, d: int, clusters: int = 0):
    """Small-integer rows (every product and sum exact in float32: ties are real ties), optionally
    drawn around a few centers (the structure pruning relies on), with duplicated rows and zero rows."""
    if clusters:
        centers = rng.integers(-6, 7, size=(clusters, d))
        items = centers[rng.integers(0, clusters, size=n)] + rng.integers(-1, 2, size=(n, d))
    else:
        items = rng.integers(-3, 4, size=(n, d))
    query = rng.integers(-2, 3, size=(n, d))
    items[n // 2 : n // 2 + 20] = items[5]  # exact duplicates: ties broken by the lower row
    items[-3:] = 0
    query[7] = 0  # a zero query: every item ties at 0, its top list is rows 0..m
    return query.astype(np.float32), items.astype(np.float32)


def test_seed_index_top_lists_are_the_brute_force(monkeypatch):
    rng = np.random.default_rng(21)
    for clusters in (0, 12):
        query, items = integer_tables(rng, 3000, 8, clusters)
        expected = _select_top(query @ items.T, 21)
        indexes = [
            SeedIndex.blocked(items.T, block=256),
            SeedIndex.blocked(items.T),
            SeedIndex.clustered(items.T, n_blocks=40, seed=3),
            SeedIndex.clustered(items.T, n_blocks=1),
            SeedIndex.clustered(items.T, n_blocks=10, norm_tiers=4),  # blocks by norm inside a cluster
        ]
        for index in indexes:
            for batch, n_q in ((1, 40), (7, 300), (256, 3000)):
                got = replace(index, query_batch=batch).top(query[:n_q], 21)
                assert np.array_equal(got[0], expected[0][:n_q]) and np.array_equal(got[1], expected[1][:n_q])
    # Real-valued rows (rounding differs between products: the scores agree to float precision).
    items = rng.normal(size=(5000, 16)).astype(np.float32) * rng.gamma(1.0, size=(5000, 1)).astype(np.float32)
    query = rng.normal(size=(300, 16)).astype(np.float32)
    expected = _select_top(query @ items.T, 11)
    items[4000:4100] = items[:100]  # exact duplicates far apart: they must tie, the lower row first
    expected = _select_top(query @ items.T, 11)
    stats: dict[str, float] = {}
    got = SeedIndex.clustered(items.T, n_blocks=64).top(query, 11, stats)
    assert (got[0] == expected[0]).mean() > 0.99  # one product's rounding may order near-ties apart
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)
    assert 0 < stats["scored"] < stats["cells"]
    # The scans rescore their candidates canonically: any layout gives the same lists, bit for bit.
    for other in (SeedIndex.blocked(items.T, block=300), SeedIndex.clustered(items.T, 7, norm_tiers=3)):
        again = replace(other, query_batch=37).top(query, 11)
        assert np.array_equal(again[0], got[0]) and np.array_equal(again[1], got[1])
    twins = 0
    for listed in got[0].tolist():  # a duplicate comes only right after its lower twin
        for at, row in enumerate(listed):
            if 4000 <= row < 4100:
                assert at > 0 and listed[at - 1] == row - 4000
                twins += 1
    assert twins > 0


def test_seed_index_prunes_clustered_items_and_stays_exact():
    """Well separated clusters: most blocks are skipped, and the lists are still the brute force's."""
    rng = np.random.default_rng(22)
    centers = rng.normal(size=(50, 16)).astype(np.float32) * 10
    items = centers[np.repeat(np.arange(50), 200)] + rng.normal(size=(10_000, 16)).astype(np.float32)
    query = centers[rng.integers(0, 50, size=200)] + rng.normal(size=(200, 16)).astype(np.float32)
    stats: dict[str, float] = {}
    got = SeedIndex.clustered(items.T, n_blocks=50).top(query, 21, stats)
    expected = _select_top(query @ items.T, 21)
    assert (got[0] == expected[0]).mean() > 0.999
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-4)
    assert stats["scored"] < 0.5 * stats["cells"]


def test_per_seed_sparse_path_is_the_dense_rule():
    """Distinct seeds once, sparse sums, top k with the fill rule: the same rows and scores as the
    dense matrix, including k beyond the kept items (zeros in row order, then the seeds) and k >= n."""
    rng = np.random.default_rng(23)
    query, items = integer_tables(rng, 400, 6)
    seeds = playlists(rng, 400, 60) + [[], [7], [7, 7, 3], [5, 205], list(range(390))]
    seeds[3] = seeds[3] + seeds[3][:2]  # a repeated seed counts once
    for m, k in ((5, 10), (20, 30), (3, 100), (20, 400), (500, 50)):
        expected = per_seed_before_sparse(query, items, seeds, m, k)
        for index in (
            None,
            SeedIndex.clustered(items.T, n_blocks=16),
            SeedIndex.clustered(items.T, 4, norm_tiers=3),
        ):
            tables = KnnTables(items_t=items.T, query_table=query, per_seed=m, seed_index=index)
            got = tables.top_k(seeds, k)
            assert np.array_equal(got.rows, expected[0]), (m, k)
            assert np.array_equal(got.scores, expected[1]), (m, k)
    dense = KnnTables(items_t=items.T, query_table=query, per_seed=5).per_seed_scores(seeds[:10])
    for i, s in enumerate(seeds[:10]):
        row = dense[i].copy()
        row[s] = -np.inf
        assert np.array_equal(
            _select_top(row[None, :], 10)[0][0], per_seed_before_sparse(query, items, [s], 5, 10)[0][0]
        )


def test_evaluation_prunes_a_large_catalogue_with_the_same_answers(monkeypatch):
    """ml.rankers.rank_vectors scans a catalogue of CLUSTERED_FROM rows or more through the
    k-means-pruned index (built once per tables): the ranking is the full scan's, bit for bit."""
    import ml.knn_scan
    from ml.rankers import VectorModel, rank_vectors
    from ml.shapes import Ragged

    rng = np.random.default_rng(24)
    centers = rng.normal(size=(30, 12)).astype(np.float32) * 4
    items = centers[rng.integers(0, 30, size=6000)] + rng.normal(size=(6000, 12)).astype(np.float32)
    items[5000:5200] = items[:200]  # duplicates, as folded rows
    query = rng.normal(size=(6000, 12)).astype(np.float32)
    track_of_row = rng.permutation(7000)[:6000]
    lists = [rng.choice(7000, size=int(rng.integers(1, 30)), replace=False) for _ in range(150)]
    seeds = Ragged(np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int64), np.concatenate(lists))
    popular = np.arange(7000)
    full = rank_vectors(
        VectorModel.from_tables(query, items, track_of_row, 7000, per_seed=15), seeds, popular, 50
    )
    monkeypatch.setattr(ml.knn_scan, "CLUSTERED_FROM", 1000)
    model = VectorModel.from_tables(query, items, track_of_row, 7000, per_seed=15)
    pruned = rank_vectors(model, seeds, popular, 50)
    assert model.seed_index is not None and model.seed_index.centers is not None
    assert np.array_equal(pruned.tracks, full.tracks) and np.array_equal(pruned.scores, full.scores)


def _named_per_seed_reference(
    query: np.ndarray,
    items: np.ndarray,
    name_row: np.ndarray,
    prior: np.ndarray,
    seeds: list[int],
    m: int,
    worth: float,
) -> list[int]:
    """Name + seeds under per-seed aggregation, written out: the seeds' per-seed sum, plus `worth`
    times the name's own list - its query [I | prior] . name_row, top m kept minus its (m+1)-th."""
    n = len(items)
    total = np.zeros(n, dtype=np.float64)
    for s in sorted(set(seeds)):
        p = items.astype(np.float64) @ query[s]
        order = sorted(range(n), key=lambda j: (-p[j], j))
        for j in order[:m]:
            total[j] += p[j] - p[order[m]]
    p = items.astype(np.float64) @ name_row[:-1] + prior * name_row[-1]  # the name space [I | prior]
    order = sorted(range(n), key=lambda j: (-p[j], j))
    for j in order[:m]:
        total[j] += worth * (p[j] - p[order[m]])
    return sorted((j for j in range(n) if j not in set(seeds)), key=lambda j: (-total[j], j))[:10]


def test_a_name_beside_seeds_is_one_more_per_seed_list():
    """Per-seed aggregation (M = 20): a name beside seeds adds its own top-M list (shifted by its
    (M+1)-th score) `worth` times to the seeds' lists; worth 0 is the seeds' answer bit for bit;
    a name alone is its own scores; the mean rule still mixes the name into the mean query."""
    rng = np.random.default_rng(9)
    n, d = 300, 8
    query = rng.normal(size=(n, d)).astype(np.float32)
    items = rng.normal(size=(n, d)).astype(np.float32)
    name_rows = rng.normal(size=(3, d + 1)).astype(np.float32)
    prior = rng.uniform(size=n).astype(np.float32)
    tables = KnnTables(items_t=items.T, query_table=query, per_seed=20)
    keys = ["name:a", "name:b", "name:c"]
    seeds = [[3, 17, 250], [5], [299, 0, 1, 2, 3, 4], []]
    tokens = [[0], [1, 2], [2], [0, 1]]
    for worth in (0.5, 4.0):
        rule = NameRule.over(tables, keys, name_rows, prior, worth)
        got = rule.top_k(seeds, tokens, 10)
        for i in range(3):
            name_q = name_rows[tokens[i]].astype(np.float64).mean(axis=0)
            want = _named_per_seed_reference(query, items, name_q, prior, seeds[i], 20, worth)
            assert got.rows[i].tolist() == want
        assert not np.array_equal(got.rows[:3], tables.top_k(seeds[:3], 10).rows)  # the name counts
    # A name alone: the mean of its token rows against [I | prior], every item (not a top-M list).
    alone = NameRule.over(tables, keys, name_rows, prior, 4.0).top_k([[]], [[0, 1]], n)
    q = name_rows[[0, 1]].mean(axis=0)
    np.testing.assert_allclose(alone.scores[0], np.sort(items @ q[:-1] + prior * q[-1])[::-1], atol=1e-5)
    # Worth 0: exactly the seeds' per-seed scores.
    zero = NameRule.over(tables, keys, name_rows, prior, 0.0)
    assert np.array_equal(zero.scores(seeds[:3], tokens[:3]), tables.per_seed_scores(seeds[:3]))
    # The mean rule (per_seed 0): the name mixed into the tracks' query (the mean of their Q rows),
    # its share worth / (n + worth), against [I | prior].
    mean_rule = NameRule.over(KnnTables(items_t=items.T, query_table=query), keys, name_rows, prior, 2.0)
    got = mean_rule.scores([[3, 17]], [[0]])[0]
    share = 2.0 / (2 + 2.0)
    mixed = (1 - share) * np.r_[query[[3, 17]].mean(axis=0), 0.0] + share * name_rows[0]
    np.testing.assert_allclose(got, items @ mixed[:-1] + prior * mixed[-1], atol=1e-5)


def test_a_zero_query_or_identical_rows_keep_a_bounded_candidate_set_and_the_lowest_rows() -> None:
    # A zero query ties every item (and so do identical rows): the scan keeps the lowest rows, as
    # the dense rule does, without holding every item as a candidate (a search trial once ran out
    # of 24 GB that way).
    from ml.knn_scan import _Candidates, tie_cap

    n, size = 20_000, 21
    cand = _Candidates.empty().merge(
        np.zeros(n, np.int64),
        np.arange(n, dtype=np.int64)[::-1].copy(),
        np.arange(n, dtype=np.int64),
        np.zeros(n, np.float32),
        1,
        size,
        np.full(1, 1e-5, np.float32),
    )
    assert len(cand.q) == tie_cap(size) < n
    assert sorted(cand.row.tolist()) == list(range(tie_cap(size)))

    rng = np.random.default_rng(3)
    items = np.repeat(rng.normal(size=(1, 16)).astype(np.float32), 5_000, axis=0)
    items = np.vstack([items, rng.normal(size=(50, 16)).astype(np.float32)])
    queries = np.vstack(
        [np.zeros((1, 16), np.float32), items[:1], rng.normal(size=(3, 16)).astype(np.float32)]
    )
    cols, vals = SeedIndex.blocked(np.ascontiguousarray(items.T)).top(queries, size)
    dense = queries @ items.T
    for i in range(len(queries)):
        order = np.lexsort((np.arange(len(items)), -dense[i]))[:size]
        assert cols[i].tolist() == order.tolist()
    assert cols[0].tolist() == list(range(size))


def _dense_named_top(rule: NameRule, seeds: list[list[int]], tokens: list[list[int]], k: int):
    """NameRule's answer from its dense (playlists x items) scores: seeds -inf, exact top-k."""
    scores = rule.scores(seeds, tokens)
    for i, s in enumerate(seeds):
        if s:
            scores[i, np.asarray(s, dtype=np.int64)] = -np.inf
    return _select_top(scores, min(k, rule.tables.n_items))


def test_a_named_top_k_scans_in_blocks_with_the_dense_rules_answer() -> None:
    """NameRule.top_k never holds a [playlists x items] matrix (a blocked scan of [N | prior], sparse
    per-seed sums): its answer is the same whatever the block width and batch, and the dense rule's -
    bit for bit where every product is exact (small integers, dyadic weights: ties everywhere, so the
    lower-row rule is what decides), within float rounding otherwise."""
    rng = np.random.default_rng(14)
    n, d = 500, 8
    items = rng.integers(-3, 4, size=(n, d)).astype(np.float32)
    items[400:450] = items[:50]  # identical rows: an exact tie goes to the lower row
    prior = (rng.integers(0, 9, size=n) / 8).astype(np.float32)
    name_rows = (rng.integers(-2, 3, size=(4, d + 1)) / 4).astype(np.float32)
    keys = ["name:a", "name:b", "name:c", "name:d"]
    seeds = [[], [], [], [3, 17, 250], [5], [5, 5, 9], [299, 0, 1, 2, 3, 4], [7], list(range(495))]
    tokens = [[0], [1, 2], [], [0, 1, 2, 3], [3], [], [1], [2, 3], [0]]  # 1, 2 or 4 rows: exact means
    exact = {
        "per_seed": KnnTables(items_t=items.T, per_seed=20),
        "per_seed_1": KnnTables(items_t=items.T, per_seed=1),
    }
    rounded = {
        "mean": KnnTables(items_t=items.T),
        "query_table": KnnTables(items_t=items.T, query_table=rng.normal(size=(n, d)).astype(np.float32)),
        "query_table_per_seed": KnnTables(
            items_t=items.T, query_table=rng.normal(size=(n, d)).astype(np.float32), per_seed=20
        ),
    }
    for label, tables in {**exact, **rounded}.items():
        rule = NameRule.over(tables, keys, name_rows, prior, 4.0 if tables.per_seed else 2.0)
        for k in (10, 30, n):
            whole = replace(rule, block=n).top_k(seeds, tokens, k, batch=len(seeds))
            blocked = replace(rule, block=16).top_k(seeds, tokens, k, batch=2)
            assert np.array_equal(blocked.rows, whole.rows), (label, k)
            assert np.array_equal(blocked.scores, whole.scores), (label, k)
            rows, scores = _dense_named_top(rule, seeds, tokens, k)
            if label in exact:
                assert np.array_equal(whole.rows, rows), (label, k)
                assert np.array_equal(whole.scores, scores), (label, k)
            else:
                finite = np.isfinite(scores)
                assert np.array_equal(np.isfinite(whole.scores), finite), (label, k)
                np.testing.assert_allclose(whole.scores[finite], scores[finite], atol=1e-5)
                # Rows differ only where the dense rule's own scores tie within float rounding.
                dense = rule.scores(seeds, tokens)
                at, pos = np.nonzero(whole.rows != rows)
                gap = np.abs(dense[at, whole.rows[at, pos]] - dense[at, rows[at, pos]])
                assert (gap <= 1e-5).all(), (label, k, gap.max(initial=0.0))
    # The seeds come last (scored -inf, ascending) when the catalogue runs out of other rows.
    tail = NameRule.over(exact["per_seed"], keys, name_rows, prior, 4.0).top_k([list(range(495))], [[0]], 10)
    assert tail.rows[0, 5:].tolist() == [0, 1, 2, 3, 4] and np.isinf(tail.scores[0, 5:]).all()
