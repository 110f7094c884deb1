"""gensim fitting: `fit_word2vec` over corpus files, and `Track2Vec`, the ranker it trains.

Seeds: the corpus shuffles follow `seed` and gensim gets `seed` too, but with more than one worker
thread its result is not bit-for-bit reproducible (threads race on shared weights, by design of
Hogwild-style SGD). Use `workers: 1` in the grid file when reproducibility matters (the tests do).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ml.baselines import popularity_counts, popularity_order
from ml.corpus import CorpusFiles, write_corpus
from ml.rankers import VectorRanker
from ml.search import W2VParams
from ml.shapes import Ragged


@dataclass(frozen=True)
class FitResult:
    vectors: Any  # gensim KeyedVectors (the input vectors, `wv.vectors`)
    output: np.ndarray  # the negative-sampling output weights (`syn1neg`), rows as `vectors`
    seconds: float
    raw_words: int  # tokens read over all epochs
    trained_words: int  # tokens left after min_count and sub-sampling
    workers: int
    folded: int = 0  # rows added by ml.fold after training (tracks below min_count)

    @property
    def words_per_s_per_worker(self) -> float:
        return self.raw_words / max(self.seconds, 1e-9) / self.workers


def fit_word2vec(
    corpus: CorpusFiles,
    params: W2VParams,
    seed: int,
    workers: int,
    progress: bool = True,
    desc: str = "fit",
) -> FitResult:
    """Train gensim Word2Vec from corpus files, one epoch per call, cycling the shuffled orderings.

    The learning rate decays linearly from `alpha` to `min_alpha` across all epochs, exactly as one
    multi-epoch call would do, but each epoch reads the next ordering of the playlists.
    """
    from gensim.models import Word2Vec

    model = Word2Vec(
        vector_size=params.vector_size,
        window=params.window,
        min_count=params.min_count,
        sg=params.sg,
        hs=0,
        negative=params.negative,
        ns_exponent=params.ns_exponent,
        sample=params.sample,
        alpha=params.alpha,
        min_alpha=params.min_alpha,
        shrink_windows=params.shrink_windows,
        seed=seed,
        workers=workers,
    )
    model.build_vocab_from_freq(corpus.word_counts, corpus_count=corpus.n_sentences)
    if len(model.wv) == 0:
        raise ValueError(f"no track reaches min_count={params.min_count} in the corpus {corpus.directory}")
    alphas = np.linspace(params.alpha, params.min_alpha, params.epochs + 1)
    start = time.perf_counter()
    raw = trained = 0
    for epoch in tqdm(range(params.epochs), desc=desc, unit="epoch", disable=not progress, leave=False):
        path = corpus.files[epoch % len(corpus.files)]
        t, r = model.train(
            corpus_file=str(path),
            total_words=corpus.file_words,
            total_examples=corpus.file_lines,
            epochs=1,
            start_alpha=float(alphas[epoch]),
            end_alpha=float(alphas[epoch + 1]),
        )
        trained += t
        raw += r
    seconds = time.perf_counter() - start
    return FitResult(model.wv, model.syn1neg, seconds, raw, trained, workers)


def fold_fit(result: FitResult, train: Ragged, track_ids: np.ndarray) -> FitResult:
    """`result` with rows for the train tracks below min_count folded in (ml.fold), appended after
    the trained rows in ascending track order, in both the input vectors and the output weights."""
    from gensim.models import KeyedVectors

    from ml.fold import fold_rare

    vocab_tracks = VectorRanker.rows_of(result.vectors, track_ids)
    folded = fold_rare(train, len(track_ids), vocab_tracks, result.vectors.vectors, result.output)
    kv = KeyedVectors(result.vectors.vector_size)
    keys = list(result.vectors.index_to_key) + [str(track_ids[t]) for t in folded.tracks]
    kv.add_vectors(keys, np.vstack([result.vectors.vectors, folded.vectors]).astype(np.float32))
    output = np.vstack([np.asarray(result.output, dtype=np.float32), folded.output])
    return replace(result, vectors=kv, output=output, folded=len(folded.tracks))


def sample_min_count(min_count: int, fraction: float) -> int:
    """The min_count on a sample of `fraction` of the playlists that keeps about the same tracks.

    Floored at 2 (or the stated value, if lower): a track seen once in the sample has no context to
    learn from, and keeping every such track made skip-gram trials on the full preset ~5x slower.
    """
    return max(min(2, min_count), round(min_count * fraction))


class Track2Vec(VectorRanker):
    """track2vec: gensim Word2Vec over train playlists, scored by `ml.knn` (VectorRanker).

    `params.shuffle` picks the corpus: `n_orders` shuffled passes (a playlist is a set), or one
    pass in file position order (the seed recipe). Corpus files are cached under `cache_dir`.
    """

    def __init__(
        self,
        params: W2VParams,
        *,
        seed: int,
        workers: int,
        cache_dir: Path,
        n_orders: int = 1,
        progress: bool = False,
        desc: str = "fit",
        name: str = "track2vec",
        report: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.params, self.seed, self.workers = params, seed, workers
        self.cache_dir, self.n_orders, self.progress, self.desc = Path(cache_dir), n_orders, progress, desc
        self.name, self.report = name, report  # report: params shown with the metrics
        self.result: FitResult | None = None
        self.selection: dict[str, Any] = {}  # how a baseline chose its params (params.json)

    def corpus(self, train: Ragged, track_ids: np.ndarray) -> CorpusFiles:
        n_orders = self.n_orders if self.params.shuffle else 1
        return write_corpus(
            train, track_ids, self.cache_dir, n_orders, self.seed, shuffle=self.params.shuffle
        )

    def fit(self, train: Ragged, track_ids: np.ndarray) -> Track2Vec:
        counts = popularity_counts(train, len(track_ids))
        return self.fit_corpus(self.corpus(train, track_ids), track_ids, counts, train)

    def fit_corpus(
        self, corpus: CorpusFiles, track_ids: np.ndarray, counts: np.ndarray, train: Ragged | None = None
    ) -> Track2Vec:
        """Fit on corpus files already written (the search reuses one corpus for many trials).

        `counts`: train playlists per global track (the popularity prior and the fallback order).
        `train`: the playlists of the corpus, needed when `params.fold_rare` folds rare tracks in.
        """
        result = fit_word2vec(corpus, self.params, self.seed, self.workers, self.progress, self.desc)
        if self.params.fold_rare:
            if train is None:
                raise ValueError("fold_rare needs the train playlists the corpus was written from")
            result = fold_fit(result, train, track_ids)
        self.result = result
        return self.use_fit(self.result, track_ids, counts)

    def use_fit(
        self,
        result: FitResult,
        track_ids: np.ndarray,
        counts: np.ndarray,
        scoring: tuple[str, float, int] | None = None,
    ) -> Track2Vec:
        """Score this fit by `params.scoring`/`prior`/`per_seed`, or by `scoring` = (rule, prior,
        per_seed M of ml.knn)."""
        rule, prior, per_seed = (
            scoring if scoring is not None else (self.params.scoring, self.params.prior, self.params.per_seed)
        )
        self.result = result
        self.set_vectors(
            result.vectors, track_ids, popularity_order(counts), result.output, counts, rule, prior, per_seed
        )
        return self

    def describe(self) -> dict[str, Any]:
        return {key: getattr(self.params, key) for key in self.report}
