"""The KNN SavedModel as a `tf.Module`: the scoring rule of `ml.knn.top_k` in TensorFlow.

Imported by `ml.export` only when it exports, so `import ml.export` needs no TensorFlow. See
`ml.export` for the layout; `ml.parity` checks that this module and `ml.knn` agree.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ml import endpoint_contract


class PlaylistKnn(tf.Module):
    def __init__(
        self,
        normed: np.ndarray,
        vocab_path: str,
        popular_ids: list[str],
        popular_path: str,
        query_table: np.ndarray | None = None,
    ) -> None:
        """`normed`: the item matrix I [n, d]; `query_table`: Q [n, d], None or I itself when Q = I."""
        super().__init__(name="playlist_knn")
        self.embeddings_t = tf.Variable(
            np.ascontiguousarray(np.asarray(normed).T), trainable=False, name="embeddings_t", dtype=tf.float32
        )
        self.query_table = None
        if query_table is not None and query_table is not normed:
            self.query_table = tf.Variable(
                np.ascontiguousarray(query_table), trainable=False, name="query_table", dtype=tf.float32
            )
        whole_line, line_number = tf.lookup.TextFileIndex.WHOLE_LINE, tf.lookup.TextFileIndex.LINE_NUMBER
        self.row_of_id = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(vocab_path, tf.string, whole_line, tf.int64, line_number),
            default_value=tf.constant(-1, tf.int64),
        )
        self.id_of_row = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(vocab_path, tf.int64, line_number, tf.string, whole_line),
            default_value=tf.constant(endpoint_contract.PAD),
        )
        self.popular_ids = tf.Variable(popular_ids, trainable=False, name="popular_ids", dtype=tf.string)
        self.popular_rank = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(popular_path, tf.string, whole_line, tf.int64, line_number),
            default_value=tf.constant(-1, tf.int64),
        )

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.string, name="tracks"),
            tf.TensorSpec([None], tf.int32, name="k"),
        ]
    )
    def serve(self, tracks, k):
        return self._serve(tracks, k)

    def _serve(self, tracks, k):
        embeddings_t = self.embeddings_t  # [dim, n_items]
        n_items = tf.shape(embeddings_t)[1]
        batch = tf.shape(tracks)[0]
        present = tf.not_equal(tracks, endpoint_contract.PAD)
        rows = self.row_of_id.lookup(tracks)  # -1 for unknown ids and padding
        n_unknown = tf.reduce_sum(tf.cast(present & (rows < 0), tf.int32), axis=1)

        # A playlist is a set: drop repeated rows (sorted, so repeats are neighbours).
        rows = tf.sort(rows, axis=1)
        repeat = tf.concat([tf.zeros([batch, 1], tf.bool), tf.equal(rows[:, 1:], rows[:, :-1])], axis=1)
        seed = (rows >= 0) & ~repeat
        n_known = tf.reduce_sum(tf.cast(seed, tf.int32), axis=1)

        # Query: mean of the seeds' rows of Q (zero for an empty playlist).
        seed_rows = tf.where(seed, rows, tf.zeros_like(rows))
        if self.query_table is None:  # Q = I
            seed_vectors = tf.transpose(tf.gather(embeddings_t, seed_rows, axis=1), [1, 2, 0])
        else:
            seed_vectors = tf.gather(self.query_table, seed_rows)  # [batch, width, dim]
        summed = tf.reduce_sum(seed_vectors * tf.cast(seed, tf.float32)[:, :, None], axis=1)
        query = summed / tf.cast(tf.maximum(n_known, 1), tf.float32)[:, None]
        scores = tf.matmul(query, embeddings_t)  # [batch, n_items]

        seed_at = tf.where(seed)  # [n_seeds, 2] (playlist, position)
        scores = tf.tensor_scatter_nd_update(
            scores,
            tf.stack([seed_at[:, 0], tf.gather_nd(rows, seed_at)], axis=1),
            tf.fill([tf.shape(seed_at)[0]], tf.constant(-np.inf, tf.float32)),
        )
        k = tf.clip_by_value(k, 0, n_items)
        k_max = tf.minimum(tf.reduce_max(tf.concat([k, [0]], axis=0)), n_items)
        top = tf.math.top_k(scores, k=k_max, sorted=True)
        knn_ids = self.id_of_row.lookup(tf.cast(top.indices, tf.int64))
        knn_n = tf.minimum(k, n_items - n_known)

        fallback = tf.equal(n_known, 0)
        pop_ids, pop_n = tf.cond(
            tf.reduce_any(fallback),
            lambda: self._popular(tracks, k, k_max),
            lambda: (tf.fill([batch, k_max], endpoint_contract.PAD), tf.zeros([batch], tf.int32)),
        )
        return {
            "track_ids": tf.where(fallback[:, None], pop_ids, knn_ids),
            "scores": tf.where(fallback[:, None], tf.zeros_like(top.values), top.values),
            "n_results": tf.where(fallback, pop_n, knn_n),
            "n_unknown": n_unknown,
            "fallback": fallback,
        }

    def _popular(self, tracks, k, k_max):
        """Most popular tracks not in the playlist, padded to k_max."""
        popular = self.popular_ids
        n_popular = tf.shape(popular)[0]
        ranks = self.popular_rank.lookup(tracks)  # [batch, width]: rank among popular, or -1
        hit = tf.where(ranks >= 0)
        in_playlist = (
            tf.scatter_nd(
                tf.stack([hit[:, 0], tf.gather_nd(ranks, hit)], axis=1),
                tf.ones([tf.shape(hit)[0]], tf.int32),
                tf.cast(tf.stack([tf.shape(tracks)[0], n_popular]), tf.int64),
            )
            > 0
        )
        # Rank by popularity order; tracks of the playlist sink to the bottom.
        rank = tf.where(
            in_playlist,
            tf.constant(-np.inf, tf.float32),
            -tf.cast(tf.range(n_popular), tf.float32)[None, :],
        )
        take = tf.minimum(k_max, n_popular)
        picked = tf.math.top_k(rank, k=take).indices
        ids = tf.gather(popular, picked)
        ids = tf.pad(ids, [[0, 0], [0, k_max - take]], constant_values=endpoint_contract.PAD)
        available = n_popular - tf.reduce_sum(tf.cast(in_playlist, tf.int32), axis=1)
        return ids, tf.minimum(tf.minimum(k, available), take)
