"""`ml serve`'s numpy engine keeps its strings as buffers: `Strings` (Arrow's layout) and `IdIndex`
(sorted fixed-width ids) answer as the Python list and dict they replace; a single query's product
split over two threads (`SplitProduct`) gives the whole product's floats."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ml.endpoint_contract import Instance
from ml.knn_engine import IdIndex, Strings, _line_strings, _name_columns


def test_strings_round_trip_unicode_and_empty_values() -> None:
    values = ["", "Beyoncé", "邦楽", "🔥 Fire", "a\tb", ""]
    column = Strings.from_list(values)
    assert len(column) == len(values)
    assert [column[i] for i in range(len(values))] == values
    assert column.take([3, 0, 2]) == ["🔥 Fire", "", "邦楽"]


@pytest.mark.parametrize("from_file", [False, True])
@pytest.mark.parametrize("width_mix", [False, True])
def test_the_id_index_finds_every_id_and_only_ids(width_mix: bool, from_file: bool) -> None:
    """Ids of one width (read straight from the asset file's bytes, or packed) and of several."""
    rng = np.random.default_rng(0)
    ids = [f"{int(x):016x}" for x in rng.integers(0, 2**63, size=500)]
    if width_mix:
        ids += ["short", "a-much-longer-track-id-than-the-rest", "ünïcode"]
    column = _line_strings("".join(f"{t}\n" for t in ids).encode()) if from_file else Strings.from_list(ids)
    assert column.take(range(len(ids))) == ids
    index = IdIndex(column)
    assert index.positions(ids).tolist() == list(range(len(ids)))
    probes = [
        "nope",
        ids[3] + "0",  # one character longer than an id
        ids[3][:-1],  # a prefix
        ids[3] + "\0",  # numpy bytes would drop the NUL: never an id
        "",
        ids[0].upper(),
    ]
    assert index.positions(probes).tolist() == [-1] * len(probes)
    assert index.positions([]).tolist() == []
    mixed = [ids[5], "nope", ids[5], ids[-1]]
    assert index.positions(mixed).tolist() == [5, -1, 5, len(ids) - 1]


def test_names_file_splits_at_the_tab_and_refuses_a_line_without_one(tmp_path) -> None:
    path = tmp_path / "track_names.tsv"
    path.write_text("Artist A\tSong 1\n\tUntitled artist\nÉmile\t\n", encoding="utf-8")
    artists, titles = _name_columns(path)
    assert artists.take(range(3)) == ["Artist A", "", "Émile"]
    assert titles.take(range(3)) == ["Song 1", "Untitled artist", ""]
    path.write_text("Artist A\tSong 1\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="one 'artist<TAB>title' line per track"):
        _name_columns(path)
    path.write_text("two\ttabs\there\n", encoding="utf-8")
    with pytest.raises(ValueError, match="one 'artist<TAB>title' line per track"):
        _name_columns(path)


def _unit_columns(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((dim, n)).astype(np.float32)
    return np.ascontiguousarray(matrix / np.linalg.norm(matrix, axis=0, keepdims=True))


@pytest.fixture
def one_blas_thread():
    """BLAS at one thread, as `ml serve` runs it (OpenBLAS splits a product over its own threads
    at other edges, whose floats a block split cannot match: `SplitProduct.build` declines then)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _split_product(items_t: np.ndarray):  # noqa: ANN202
    from ml.knn_engine import SplitProduct

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: SplitProduct.build declines by design")
    split = SplitProduct.build(items_t)
    assert split is not None, "the blocks' floats differ from the whole product's on this BLAS"
    return split


def test_a_split_product_is_declined_when_blas_splits_the_product_itself() -> None:
    """Two BLAS threads cut the whole product at their own edges (a few floats then differ from
    the blocks'): `build` checks and declines, the single product is used."""
    from threadpoolctl import threadpool_limits

    from ml.knn_engine import SplitProduct

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: BLAS runs one thread")
    items_t = _unit_columns(3 * 4096 + 777, 64, seed=0)
    with threadpool_limits(limits=2, user_api="blas"):
        assert SplitProduct.build(items_t) is None
    with threadpool_limits(limits=1, user_api="blas"):
        assert SplitProduct.build(items_t) is not None


def test_a_split_product_has_the_whole_products_floats_ties_included(one_blas_thread) -> None:
    """Blocks shared by two threads: bit for bit the single product, so an exact tie (the same
    vector on both sides of a block edge) stays a tie and goes to the lower row."""
    items_t = _unit_columns(3 * 4096 + 777, 64, seed=0)
    for a, b in ((100, 4096 + 100), (4095, 4096), (5, 2 * 4096 + 9)):
        items_t[:, b] = items_t[:, a]
    split = _split_product(items_t)
    rng = np.random.default_rng(1)
    for _ in range(60):
        query = items_t[:, rng.choice(items_t.shape[1], 10, replace=False)].T.mean(axis=0, keepdims=True)
        whole = query @ items_t
        for got in (split.split(query), split(query)):  # always split; and the timed choice
            assert got.dtype == np.float32 and np.array_equal(got, whole)
            assert got[0, 4096 + 100] == got[0, 100] and got[0, 4096] == got[0, 4095]
    batch = items_t[:, :3].T.copy()
    assert np.array_equal(split(batch), batch @ items_t)  # a batch: the single product


def test_an_engine_sharing_products_answers_exactly_as_before(one_blas_thread) -> None:
    from ml.knn import KnnTables
    from ml.knn_engine import KnnEngine

    n = 2 * 4096 + 300
    items_t = _unit_columns(n, 32, seed=2)
    _split_product(items_t)  # skips on one CPU
    ids = [f"{i:016x}" for i in range(n)]
    engine = KnnEngine.build(
        KnnTables(items_t=items_t),
        ids,
        list(range(50)),
        [f"a{i}" for i in range(n)],
        [f"t{i}" for i in range(n)],
    )
    shared = engine.sharing_products()
    assert shared.tables.product is not None and engine.tables.product is None
    rng = np.random.default_rng(3)
    instances = [
        Instance(tuple(ids[r] for r in rng.choice(n, 1 + i % 12, replace=False)), 10) for i in range(40)
    ]
    instances += [Instance((), 5), Instance(("nope",), 5)]
    for inst in instances:
        assert shared.predict([inst]) == engine.predict([inst])
    assert shared.predict(instances[:5]) == engine.predict(instances[:5])
