"""`ml serve`'s numpy engine keeps its strings as buffers: `Strings` (Arrow's layout) and `IdIndex`
(sorted fixed-width ids) answer as the Python list and dict they replace."""

from __future__ import annotations

import numpy as np
import pytest

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
