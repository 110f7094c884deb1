"""The KNN as a Keras 3 model: the rule of `ml.knn` in `keras.ops`, exported for TensorFlow Serving.

`PlaylistKnn` holds, as non-trainable weights, the item matrix I transposed (`items_t`, [d, n]) and,
only when it differs from I, the query table Q (`query_table`, [n, d]); the vocabulary (track id ->
row) in a `StringLookup`; the catalogue (vocabulary rows, then popular tracks the vectors lack) in
an inverted `StringLookup` (index -> track id) and in `CatalogueNames` (index -> artist, title); the
popularity fallback as a `StringLookup` over the popular ids (id -> rank) and their catalogue
indices (an int weight); the name table of issue 14 (`ml.knn.NameRule`): a `StringLookup` over the
name-token keys (`name:chill`), their rows (`name_rows`, [n_tokens, d + 1]), the prior column
(`prior`, [n]) and the name's `worth` (config).

`call({"tracks": string[batch, width] padded with "", "k": int32[batch], "name_tokens":
string[batch, width'] padded with ""})` computes, as `ml.knn.KnnTables.top_k`: query = mean of the
known seeds' rows of Q (a repeated id counts once), scores = query @ I^T, seeds excluded, top k with
ties to the lower row (`top_k` keeps the lower index first on equal values); unknown ids are
counted. With `per_seed` = M > 0 (config) the tracks' scores are ml.knn's per-seed aggregation
instead: the distinct known seeds' rows of Q times I^T in one matmul, `top_k` M + 1 per seed, each
kept score minus the (M+1)-th, summed per item with `scatter` (a segment sum). A playlist with a
known name token is scored as `ml.knn.NameRule.scores` instead: alone, the mean of its known token
rows against [I | prior]; beside seeds, under per-seed aggregation, the name's own per-seed list
(top M+1 of those scores, shifted) added `worth` times to the seeds' sum, under the mean rule the
name's mean mixed with the tracks' query (the mean of the seeds' rows of Q) by the worth. A playlist with neither a known track nor a known token gets the most popular
tracks not in it (scores 0, `fallback`). Outputs: `track_ids`, `artists`, `titles`, `scores`
([batch, max k], valid up to `n_results`), `n_results`, `n_unknown`, `fallback`, `n_name_tokens`,
`n_unknown_tokens`. `name_tokens` may be left out of a Keras call (no name); the SavedModel's
signature takes all three.

Saved as `knn.keras` (`keras.saving.load_model`; the string tables travel as the layers' assets)
and exported with `keras.export.ExportArchive` (the lookups' files become SavedModel assets).
TensorFlow backend only: the lookup layers are TensorFlow tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ml import endpoint_contract

PAD = endpoint_contract.PAD
_OFFSET = 2  # StringLookup indices: 0 = the mask (PAD), 1 = out of vocabulary, 2.. = the tokens
NAMES_ASSET = "track_names.tsv"  # catalogue index = line number; artist \t title
NAME_TOKENS_ASSET = "name_tokens.txt"  # name-token key (`name:chill`) per row of name_rows


def display_name(name: str) -> str:
    """A name as one TSV field: tabs, newlines and other control characters shown as spaces."""
    return "".join(" " if (c < " " or c == "\x7f") else c for c in name)


@keras.saving.register_keras_serializable(package="music_recsys")
class CatalogueNames(keras.layers.Layer):
    """Catalogue index -> (artist, title), two TensorFlow tables read from one TSV file."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.artist_of = self.title_of = None
        self.built = True

    def set_names_file(self, path: str) -> None:
        """Tables over a TSV of `artist \\t title` lines (line number = catalogue index)."""
        line = tf.lookup.TextFileIndex.LINE_NUMBER
        self.artist_of, self.title_of = (
            tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(path, tf.int64, line, tf.string, column, delimiter="\t"),
                default_value=PAD,
            )
            for column in (0, 1)
        )

    def call(self, index):
        return self.artist_of.lookup(index), self.title_of.lookup(index)

    def save_assets(self, dir_path: str) -> None:
        # Each table exports in its own hash order: sort both by catalogue index.
        artists, titles = (
            values.numpy()[np.argsort(keys.numpy())]
            for keys, values in (self.artist_of.export(), self.title_of.export())
        )
        rows = zip(artists, titles, strict=True)
        Path(dir_path, NAMES_ASSET).write_bytes(b"".join(a + b"\t" + t + b"\n" for a, t in rows))

    def load_assets(self, dir_path: str) -> None:
        self.set_names_file(os.path.join(dir_path, NAMES_ASSET))


@keras.saving.register_keras_serializable(package="music_recsys")
class PlaylistKnn(keras.Model):
    """Playlist -> top-k tracks by ml.knn's rule (module docstring)."""

    def __init__(
        self,
        n_items: int,
        dim: int,
        n_popular: int,
        shared: bool = True,
        n_tokens: int = 1,
        worth: float = 0.0,
        per_seed: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n_items, self.dim, self.n_popular, self.shared = n_items, dim, n_popular, shared
        self.n_tokens, self.worth, self.per_seed = n_tokens, float(worth), int(per_seed)

        def lookup(name: str, invert: bool = False) -> keras.layers.StringLookup:
            return keras.layers.StringLookup(mask_token=PAD, num_oov_indices=1, invert=invert, name=name)

        self.vocabulary = lookup("vocabulary")  # track id -> row + 2
        self.catalogue = lookup("catalogue", invert=True)  # catalogue index + 2 -> track id
        self.popular_rank = lookup("popular_rank")  # track id -> popularity rank + 2
        self.names = CatalogueNames(name="names")
        self.name_vocabulary = lookup("name_vocabulary")  # name-token key -> row + 2
        self.items_t = self.add_weight(
            shape=(dim, n_items), initializer="zeros", trainable=False, name="items_t"
        )
        self.query_table = (
            None
            if shared
            else self.add_weight(
                shape=(n_items, dim), initializer="zeros", trainable=False, name="query_table"
            )
        )
        self.popular_index = self.add_weight(
            shape=(n_popular,), initializer="zeros", dtype="int32", trainable=False, name="popular_index"
        )
        # The name table (weights after these: ml.knn_engine reads them in this order).
        self.prior = self.add_weight(shape=(n_items,), initializer="zeros", trainable=False, name="prior")
        self.name_rows = self.add_weight(
            shape=(n_tokens, dim + 1), initializer="zeros", trainable=False, name="name_rows"
        )
        self.built = True

    @classmethod
    def build_from(
        cls,
        files: KnnFiles,
        items_t: np.ndarray,
        query_table: np.ndarray | None,
        popular_index: np.ndarray,
        names: NameTable | None = None,
        per_seed: int = 0,
    ) -> PlaylistKnn:
        """A model over `files` (vocabulary, catalogue, popular ids, names, name-token keys), the
        two tables and the name table (`names`: its keys must be those of `files`)."""
        dim, n_items = (int(x) for x in items_t.shape)
        names = names or NameTable.empty(n_items, dim)
        if names.rows.shape[1] != dim + 1 or len(names.prior) != n_items:
            raise ValueError(
                f"the name table's rows are {names.rows.shape[1]} wide and its prior has "
                f"{len(names.prior)} entries; the tables need {dim + 1} and {n_items}"
            )
        model = cls(
            n_items=n_items,
            dim=dim,
            n_popular=len(popular_index),
            shared=query_table is None,
            n_tokens=len(names.rows),
            worth=names.worth,
            per_seed=per_seed,
        )
        model.vocabulary.set_vocabulary(files.vocabulary)
        model.catalogue.set_vocabulary(files.catalogue)
        model.popular_rank.set_vocabulary(files.popular)
        model.names.set_names_file(files.names)
        model.name_vocabulary.set_vocabulary(files.name_tokens)
        model.items_t.assign(items_t)
        if query_table is not None:
            model.query_table.assign(query_table)
        model.popular_index.assign(np.asarray(popular_index, dtype=np.int32))
        model.prior.assign(np.asarray(names.prior, dtype=np.float32))
        model.name_rows.assign(np.asarray(names.rows, dtype=np.float32))
        return model

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "n_items": self.n_items,
            "dim": self.dim,
            "n_popular": self.n_popular,
            "shared": self.shared,
            "n_tokens": self.n_tokens,
            "worth": self.worth,
            "per_seed": self.per_seed,
        }

    def _query_rows(self, rows):
        """Rows of Q for an int [batch, width] tensor of rows: [batch, width, d]."""
        if self.query_table is None:
            return ops.transpose(ops.take(self.items_t, rows, axis=1), (1, 2, 0))
        return ops.take(self.query_table, rows, axis=0)

    @staticmethod
    def _as_set(index):
        """Lookup indices [batch, width] (0 padding, 1 unknown, >= 2 known) -> rows (0 where masked
        out), the mask of each known entry counted once, and how many there are."""
        rows = ops.sort(index - _OFFSET, axis=1)  # repeats side by side; padding/unknown first
        repeat = ops.concatenate(
            [ops.zeros_like(rows[:, :1], dtype="bool"), ops.equal(rows[:, 1:], rows[:, :-1])], axis=1
        )
        known = ops.logical_and(ops.greater_equal(rows, 0), ops.logical_not(repeat))
        return ops.where(known, rows, 0), known, ops.sum(ops.cast(known, "int32"), axis=1)

    def call(self, inputs):
        tracks, k = inputs["tracks"], ops.cast(inputs["k"], "int32")
        index = ops.cast(self.vocabulary(tracks), "int32")  # 0 padding, 1 unknown, >= 2 known
        n_unknown = ops.sum(ops.cast(ops.equal(index, 1), "int32"), axis=1)
        safe_rows, seed, n_known = self._as_set(index)  # a playlist is a set

        # Query: mean of the seeds' rows of Q (zero for an empty playlist); scores against I.
        weights = ops.cast(seed, "float32")
        seed_rows = self._query_rows(safe_rows)
        summed = ops.sum(seed_rows * weights[:, :, None], axis=1)
        if self.per_seed > 0:
            scores = self._per_seed_scores(seed_rows, safe_rows, seed)
        else:
            query = summed / ops.cast(ops.maximum(n_known, 1), "float32")[:, None]
            scores = ops.matmul(query, self.items_t)  # [batch, n_items]
        zeros = ops.zeros_like(n_known)
        n_tokens = n_unknown_tokens = zeros
        if inputs.get("name_tokens") is not None:  # the name rule where a token is known
            name_q, n_tokens, n_unknown_tokens = self._name_query(inputs["name_tokens"])
            has_name = ops.greater(n_tokens, 0)
            # The name counts unless it is worth 0 tracks beside known ones (then: the tracks' rule).
            use = has_name if self.worth > 0 else ops.logical_and(has_name, ops.equal(n_known, 0))
            scores = ops.cond(
                ops.any(use),
                lambda: ops.where(
                    use[:, None],
                    self._named_scores(scores, summed, n_known, name_q, has_name),
                    scores,
                ),
                lambda: scores,
            )
        scores = ops.where(self._hits(safe_rows, seed, self.n_items), float("-inf"), scores)

        k = ops.clip(k, 0, self.n_items)
        k_max = ops.minimum(ops.max(ops.concatenate([k, ops.zeros((1,), "int32")])), self.n_items)
        top_scores, top_rows = ops.top_k(scores, k_max, sorted=True)
        knn_n = ops.minimum(k, self.n_items - n_known)
        pop_index, pop_n = self._popular(tracks, k, k_max)

        fallback = ops.logical_and(ops.equal(n_known, 0), ops.equal(n_tokens, 0))
        n_results = ops.where(fallback, pop_n, knn_n)
        chosen = ops.where(fallback[:, None], pop_index, ops.cast(top_rows, "int32"))
        valid = ops.arange(k_max, dtype="int32")[None, :] < n_results[:, None]
        chosen = ops.where(valid, chosen + _OFFSET, 0)  # 0: the mask token, PAD
        artists, titles = self.names(ops.cast(chosen, "int64") - _OFFSET)
        return {
            "track_ids": self.catalogue(chosen),
            "artists": artists,
            "titles": titles,
            "scores": ops.where(fallback[:, None], 0.0, top_scores),
            "n_results": n_results,
            "n_unknown": n_unknown,
            "fallback": fallback,
            "n_name_tokens": n_tokens,
            "n_unknown_tokens": n_unknown_tokens,
        }

    def _per_seed_scores(self, seed_rows, safe_rows, seed):
        """ml.knn's per-seed aggregation [batch, n_items]: each distinct known seed's top M items
        (M capped at n_items - 1) get their score minus the seed's (M+1)-th, summed per item."""
        m = min(self.per_seed, self.n_items - 1)
        batch, width = ops.shape(safe_rows)[0], ops.shape(safe_rows)[1]
        flat = ops.reshape(seed_rows, (-1, self.dim))  # [batch * width, d]
        top_scores, top_rows = ops.top_k(ops.matmul(flat, self.items_t), m + 1, sorted=True)
        kept = (top_scores[:, :m] - top_scores[:, m : m + 1]) * ops.reshape(
            ops.cast(seed, "float32"), (-1, 1)
        )  # padding, unknown and repeated entries contribute 0
        playlist = ops.repeat(ops.arange(batch, dtype="int32"), width * m)
        at = ops.stack([playlist, ops.reshape(ops.cast(top_rows[:, :m], "int32"), (-1,))], axis=1)
        return ops.scatter(at, ops.reshape(kept, (-1,)), (batch, self.n_items))

    def _name_query(self, name_tokens):
        """Mean of each name's known token rows [batch, d + 1], known and unknown token counts."""
        index = ops.cast(self.name_vocabulary(name_tokens), "int32")
        n_unknown = ops.sum(ops.cast(ops.equal(index, 1), "int32"), axis=1)
        rows, known, n_known = self._as_set(index)
        summed = ops.sum(
            ops.take(self.name_rows, rows, axis=0) * ops.cast(known, "float32")[:, :, None], axis=1
        )
        return summed / ops.cast(ops.maximum(n_known, 1), "float32")[:, None], n_known, n_unknown

    def _named_scores(self, scores, summed, n_known, name_q, has_name):
        """ml.knn.NameRule.scores [batch, n_items] beside the tracks' `scores`. Per-seed
        aggregation: without a seed the name's own scores; beside seeds the tracks' per-seed sum
        plus worth times the name's per-seed list (its top M+1 of its own scores, shifted by the
        (M+1)-th). The mean rule: the tracks' query mixed with the name's by the worth."""
        if self.per_seed <= 0:
            return self._name_scores(summed, n_known, name_q, has_name)
        alone = self._name_space_scores(name_q[:, : self.dim], name_q[:, self.dim :])
        m = min(self.per_seed, self.n_items - 1)
        top_scores, top_rows = ops.top_k(alone, m + 1, sorted=True)
        kept = (top_scores[:, :m] - top_scores[:, m : m + 1]) * self.worth
        batch, cols = ops.shape(alone)[0], ops.reshape(ops.cast(top_rows[:, :m], "int32"), (-1,))
        at = ops.stack([ops.repeat(ops.arange(batch, dtype="int32"), m), cols], axis=1)
        beside = scores + ops.scatter(at, ops.reshape(kept, (-1,)), (batch, self.n_items))
        return ops.where(ops.equal(n_known, 0)[:, None], alone, beside)

    def _name_scores(self, summed, n_known, name_q, has_name):
        """ml.knn.NameRule's scores [batch, n_items] under the mean rule: the tracks' query (the
        mean of the seeds' rows of Q; `summed` is their sum) mixed with the name's mean by the
        worth, against [I | prior]."""
        n = ops.cast(n_known, "float32")
        tracks_q = summed / ops.maximum(n, 1.0)[:, None]
        share = ops.where(has_name, self.worth / ops.maximum(n + self.worth, 1e-12), 0.0)
        w = ops.where(ops.logical_and(has_name, ops.equal(n_known, 0)), 1.0, share)[:, None]
        q = (1.0 - w) * tracks_q + w * name_q[:, : self.dim]
        return self._name_space_scores(q, w * name_q[:, self.dim :])

    def _name_space_scores(self, q, prior_weight):
        """[batch, n_items] scores of name-space queries: q @ I^T + prior_weight * prior."""
        return ops.matmul(q, self.items_t) + prior_weight * self.prior[None, :]

    @staticmethod
    def _hits(columns, mask, width: int):
        """bool [batch, width]: True at (playlist, column) for each masked-in entry of `columns`."""
        batch, n = ops.shape(columns)[0], ops.shape(columns)[1]
        playlist = ops.repeat(ops.arange(batch, dtype="int32")[:, None], n, axis=1)
        at = ops.stack([ops.reshape(playlist, (-1,)), ops.reshape(columns, (-1,))], axis=1)
        counts = ops.scatter(at, ops.reshape(ops.cast(mask, "int32"), (-1,)), (batch, width))
        return ops.greater(counts, 0)

    def _popular(self, tracks, k, k_max):
        """Catalogue indices of the most popular tracks not in each playlist ([batch, k_max]), and
        how many there are (at most k)."""
        rank = ops.cast(self.popular_rank(tracks), "int32") - _OFFSET  # >= 0: among the popular
        is_popular = ops.greater_equal(rank, 0)
        in_playlist = self._hits(ops.where(is_popular, rank, 0), is_popular, self.n_popular)
        order = -ops.cast(ops.arange(self.n_popular), "float32")[None, :]
        order = ops.where(in_playlist, float("-inf"), order)  # the playlist's own sink to the bottom
        take = ops.minimum(k_max, self.n_popular)
        picked = ops.top_k(order, take, sorted=True)[1]
        index = ops.take(self.popular_index, picked, axis=0)
        index = ops.pad(index, [[0, 0], [0, k_max - take]], constant_values=-1)
        available = self.n_popular - ops.sum(ops.cast(in_playlist, "int32"), axis=1)
        return index, ops.minimum(ops.minimum(k, available), take)


class NameTable:
    """The name table of an export: token keys, their rows, the prior column and the worth."""

    EMPTY_KEY = "name:"  # no tokenizer output: the one key of a run without name tokens

    def __init__(self, keys: Sequence[str], rows: np.ndarray, prior: np.ndarray, worth: float) -> None:
        self.keys, self.rows, self.prior, self.worth = list(keys), np.asarray(rows, np.float32), prior, worth

    @classmethod
    def empty(cls, n_items: int, dim: int) -> NameTable:
        return cls([cls.EMPTY_KEY], np.zeros((1, dim + 1), np.float32), np.zeros(n_items, np.float32), 0.0)


class KnnFiles:
    """The model's text files, written once under `directory` (line number = index)."""

    def __init__(
        self,
        directory: Path,
        track_ids: Sequence[str],
        extra_ids: Sequence[str],
        popular_ids: Sequence[str],
        names: dict[str, tuple[str, str]],
        name_keys: Sequence[str] = (NameTable.EMPTY_KEY,),
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.vocabulary = str(directory / "track_ids.txt")
        self.catalogue = str(directory / "catalogue_ids.txt")
        self.popular = str(directory / "popular_ids.txt")
        self.names = str(directory / NAMES_ASSET)
        self.name_tokens = str(directory / NAME_TOKENS_ASSET)
        Path(self.name_tokens).write_text("".join(f"{t}\n" for t in name_keys), encoding="utf-8")
        catalogue = [*track_ids, *extra_ids]
        Path(self.vocabulary).write_text("".join(f"{t}\n" for t in track_ids))
        Path(self.catalogue).write_text("".join(f"{t}\n" for t in catalogue))
        Path(self.popular).write_text("".join(f"{t}\n" for t in popular_ids))
        Path(self.names).write_text(
            "".join(
                f"{display_name(names[t][0])}\t{display_name(names[t][1])}\n" if t in names else "\t\n"
                for t in catalogue
            ),
            encoding="utf-8",
        )


def input_signature() -> list[dict[str, tf.TensorSpec]]:
    return [
        {
            "tracks": tf.TensorSpec([None, None], tf.string, name="tracks"),
            "k": tf.TensorSpec([None], tf.int32, name="k"),
            "name_tokens": tf.TensorSpec([None, None], tf.string, name="name_tokens"),
        }
    ]


def tensor_inputs(inputs: dict[str, list]) -> dict[str, tf.Tensor]:
    """`ml.endpoint_contract.model_inputs` as the signature's tensors."""
    return {
        "tracks": tf.constant(inputs["tracks"], dtype=tf.string),
        "k": tf.constant(inputs["k"], dtype=tf.int32),
        "name_tokens": tf.constant(inputs["name_tokens"], dtype=tf.string),
    }


def export_saved_model(model: PlaylistKnn, directory: Path) -> None:
    """The TF Serving SavedModel: one endpoint, `serving_default(tracks, k, name_tokens)`, via
    ExportArchive."""
    archive = keras.export.ExportArchive()
    # The archive saves the weights the endpoint reads on its own; `track(model)` would add the
    # model's Keras variables as well, and the item matrix would be written twice. The lookup
    # tables are tracked one by one, so their files are copied into the SavedModel's assets.
    for table in (
        model.vocabulary.lookup_table,
        model.catalogue.lookup_table,
        model.popular_rank.lookup_table,
        model.name_vocabulary.lookup_table,
        model.names.artist_of,
        model.names.title_of,
    ):
        archive.track(table)
    archive.add_endpoint(endpoint_contract.SIGNATURE_NAME, model.call, input_signature=input_signature())
    archive.write_out(str(directory), verbose=False)
