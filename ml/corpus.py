"""Playlists from the marts -> training sentences for gensim, and the evaluation sets.

A playlist is a set (inside a playlist the raw file is sorted by title), so the corpus never keeps
the file order: each corpus file holds every train playlist once, its tracks in a fresh seeded
random order, and training cycles through several such files, one per epoch. Only the train split
(`role = 'train'` in `ml_playlist_splits`) is written; valid/test playlists never reach the corpus.

gensim cuts sentences longer than 10,000 tokens; a longer playlist is therefore written as several
lines of at most `MAX_SENTENCE` tokens (every token kept). Files are LineSentence format (track ids
separated by spaces, one sentence a line) for gensim's fast `corpus_file` input. A corpus directory
is keyed by a fingerprint of its content and reused when it is complete (restartable).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.shapes import EvalSet, Ragged
from ml.warehouse import DIM_PLAYLISTS, DIM_TRACKS, FCT_PLAYLIST_TRACKS, ML_PLAYLIST_SPLITS

if TYPE_CHECKING:  # a connection opened by ml.warehouse.connect; corpus never opens one
    import duckdb

MAX_SENTENCE = 10_000  # gensim's MAX_SENTENCE_LEN: longer sentences are cut, so we split first
# gensim's corpus_file reader (4.x, `CythonLineSentence.next_batch`) reads lines until a batch holds
# more than 10,000 words but keeps the line that crossed the limit in the batch, and training then
# silently drops every word past the 10,000th in-vocabulary word of the batch. So the writer packs
# lines into groups of at most 10,000 tokens and closes each group with a padding line that brings
# it to 10,001 words: the reader stops exactly there, and the padding tokens are never in the
# vocabulary, so training skips them. No token is lost (tests/test_train.py checks the word count).
PAD_TOKEN = "________________"  # 16 chars like a track id, never a hex id


# --- reading the marts --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaylistData:
    """Everything training and evaluation read from the warehouse, as integer arrays.

    Global track index = position of the track in `track_ids` (dim_tracks ordered by track_id).
    """

    track_ids: np.ndarray  # (n_tracks,) str
    train: Ragged  # train playlists, tracks in file position order
    train_session_ids: np.ndarray  # (n_train,) str
    valid: EvalSet
    test: EvalSet
    train_names: np.ndarray | None = None  # (n_train,) str: playlist names (dim_playlists)
    track_artists: np.ndarray | None = None  # (n_tracks,) str: each track's artist name (dim_tracks)

    @property
    def n_tracks(self) -> int:
        return len(self.track_ids)

    def fingerprint(self) -> str:
        """Content hash of what training sees (train playlists, eval sets, track ids)."""
        h = hashlib.sha256()
        for arr in (
            self.train.indptr,
            self.train.values,
            self.valid.seeds.values,
            self.valid.holdouts.values,
            self.test.seeds.values,
            self.test.holdouts.values,
        ):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\n".join(self.track_ids[:: max(1, len(self.track_ids) // 10_000)]).encode())
        h.update(str(len(self.track_ids)).encode())
        for names in (self.train_names, self.valid.names, self.test.names):
            if names is not None:
                h.update("\x1f".join(str(n) for n in names).encode())
        return h.hexdigest()


_ROWS_SQL = """
with

tracks as (
    select
        {track_id},
        row_number() over (order by {track_id}) - 1 as track_idx,
    from {dim_tracks}
),

sessions as (
    select
        {session_id},
        row_number() over (order by {session_id}) - 1 as session_idx,
    from (select distinct {session_id} from {splits})
),

final as (
    select
        case s.{split} when 'train' then 0 when 'valid' then 1 when 'test' then 2 end as split_code,
        case s.{role} when 'train' then 0 when 'seed' then 1 when 'holdout' then 2 else 3 end as role_code,
        sessions.session_idx,
        tracks.track_idx,
        f.{position} as position,
    from {splits} as s
    inner join {fct} as f using ({session_id}, {track_id})
    inner join tracks using ({track_id})
    inner join sessions using ({session_id})
)

select * from final
order by split_code, session_idx, position
"""


def load_playlists(con: duckdb.DuckDBPyConnection, names: MartNames | None = None) -> PlaylistData:
    """Read train playlists and valid/test evaluation sets from the marts (one query, ints only)."""
    n = names or MartNames()
    sql = _ROWS_SQL.format(
        track_id=n.track_id,
        session_id=n.session_id,
        split=n.split,
        role=n.role,
        position=n.position,
        dim_tracks=n.dim_tracks,
        splits=n.splits,
        fct=n.fct,
    )
    cols = con.execute(sql).fetchnumpy()
    split = np.asarray(cols["split_code"], dtype=np.int8)
    role = np.asarray(cols["role_code"], dtype=np.int8)
    session = np.asarray(cols["session_idx"], dtype=np.int64)
    track = np.asarray(cols["track_idx"], dtype=np.int64)
    tracks = con.execute(
        f"select {n.track_id}, coalesce({n.artist_name}, '') as artist_name from {n.dim_tracks} order by 1"
    ).fetchnumpy()
    track_ids = np.asarray(tracks[n.track_id], dtype=object)
    session_ids = np.asarray(
        con.execute(f"select distinct {n.session_id} from {n.splits} order by 1").fetchnumpy()[n.session_id],
        dtype=object,
    )
    bad = (split == 0) != (role == 0)
    if bad.any():
        raise ValueError(f"{n.splits}: {int(bad.sum())} rows where role 'train' and split 'train' disagree")

    is_train = split == 0
    train_sessions, train = _group(session[is_train], track[is_train])
    name_of = _playlist_names(con, n, session_ids)
    valid = _eval_set(session, track, role, split == 1, session_ids)
    test = _eval_set(session, track, role, split == 2, session_ids)
    return PlaylistData(
        track_ids=track_ids,
        train=train,
        train_session_ids=session_ids[train_sessions],
        valid=replace(valid, names=name_of[np.searchsorted(session_ids, valid.session_ids)]),
        test=replace(test, names=name_of[np.searchsorted(session_ids, test.session_ids)]),
        train_names=name_of[train_sessions],
        track_artists=np.asarray(tracks["artist_name"], dtype=object),
    )


def _playlist_names(con: duckdb.DuckDBPyConnection, n: MartNames, session_ids: np.ndarray) -> np.ndarray:
    """The name of each session of `session_ids` (sorted), '' when dim_playlists has none."""
    cols = con.execute(
        f"select {n.session_id}, coalesce({n.playlist_name}, '') as playlist_name from {n.dim_playlists}"
    ).fetchnumpy()
    names = np.full(len(session_ids), "", dtype=object)
    found = np.asarray(cols[n.session_id], dtype=object)
    where = np.searchsorted(session_ids, found)
    ok = (where < len(session_ids)) & (session_ids[np.minimum(where, len(session_ids) - 1)] == found)
    names[where[ok]] = np.asarray(cols["playlist_name"], dtype=object)[ok]
    return names


@dataclass(frozen=True)
class MartNames:
    """Relation and column names read here (docs/contracts.md; checked by ml.warehouse on read)."""

    dim_tracks: str = DIM_TRACKS.name
    dim_playlists: str = DIM_PLAYLISTS.name
    splits: str = ML_PLAYLIST_SPLITS.name
    fct: str = FCT_PLAYLIST_TRACKS.name
    track_id: str = "track_id"
    session_id: str = "session_id"
    split: str = "split"
    role: str = "role"
    position: str = "position"
    playlist_name: str = "playlist_name"
    artist_name: str = "artist_name"


def _group(session: np.ndarray, track: np.ndarray) -> tuple[np.ndarray, Ragged]:
    """Rows sorted by session -> (session index of each group, tracks per group)."""
    if len(session) == 0:
        return np.array([], dtype=np.int64), Ragged(np.zeros(1, dtype=np.int64), np.array([], dtype=np.int64))
    starts = np.flatnonzero(np.r_[True, session[1:] != session[:-1]])
    indptr = np.r_[starts, len(session)].astype(np.int64)
    return session[starts], Ragged(indptr=indptr, values=track.astype(np.int64))


def _eval_set(
    session: np.ndarray, track: np.ndarray, role: np.ndarray, in_split: np.ndarray, session_ids: np.ndarray
) -> EvalSet:
    evaluated = in_split & ((role == 1) | (role == 2))
    s, t, r = session[evaluated], track[evaluated], role[evaluated]
    sess, full = _group(s, t)  # whole playlist in position order (seed recipe protocol)
    is_seed = r == 1
    seed_sess, seeds = _group(s[is_seed], t[is_seed])
    hold_sess, holdouts = _group(s[~is_seed], t[~is_seed])
    if not (np.array_equal(seed_sess, sess) and np.array_equal(hold_sess, sess)):
        raise ValueError("ml_playlist_splits: an evaluated session lacks seed or holdout tracks")
    ends = full.indptr[1:]
    return EvalSet(
        session_ids=session_ids[sess],
        seeds=seeds,
        holdouts=holdouts,
        last_query=full.values[ends - 2],
        last_target=full.values[ends - 1],
    )


# --- writing the corpus -------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusFiles:
    """LineSentence files of one corpus: each file is one full pass over the playlists."""

    directory: Path
    files: tuple[Path, ...]
    n_sentences: int  # lines per file (without the padding line)
    n_tokens: int  # tokens per file (without the padding line)
    word_counts: dict[str, int]  # playlists containing each track (gensim's vocabulary counts)
    fingerprint: str

    file_words: int  # words per file, padding included (gensim's `total_words`)
    file_lines: int  # lines per file, padding included (gensim's `total_examples`)


def sentence_lines(
    playlists: Ragged,
    shuffle: bool,
    rng: np.random.Generator | None,
    max_sentence: int = MAX_SENTENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Token order and line breaks of one pass: (global track index per token, ends-a-line flag).

    With `shuffle`, playlists come in a random order and each playlist's tracks in a random order;
    otherwise in the given (file position) order. A playlist longer than `max_sentence` ends a line
    every `max_sentence` tokens, so no token is lost.
    """
    n = len(playlists)
    lengths = playlists.lengths
    if shuffle:
        assert rng is not None
        playlist_order = rng.permutation(n)
        # Random key inside each playlist: sorting by (playlist, key) shuffles every playlist at once.
        owner = np.repeat(np.arange(n), lengths)
        token_order = np.lexsort((rng.random(len(playlists.values)), owner))
        shuffled = Ragged(playlists.indptr, playlists.values[token_order])
        new_lengths = lengths[playlist_order]
        idx = (
            np.concatenate([np.arange(shuffled.indptr[i], shuffled.indptr[i + 1]) for i in playlist_order])
            if n
            else np.array([], dtype=np.int64)
        )
        tokens = shuffled.values[idx] if n else idx
        lengths = new_lengths
    else:
        tokens = playlists.values
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(len(tokens)) - starts
    length_of = np.repeat(lengths, lengths)
    ends_line = ((pos + 1) % max_sentence == 0) | (pos + 1 == length_of)
    return tokens.astype(np.int64), ends_line


def pad_batches(
    tokens: np.ndarray, ends_line: np.ndarray, batch: int = MAX_SENTENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Group whole lines into batches of at most `batch` tokens, each closed by a padding line
    (token -1) that brings it to batch + 1 words (see PAD_TOKEN)."""
    if len(tokens) == 0:
        return tokens, ends_line
    line_lengths = np.diff(np.r_[0, np.flatnonzero(ends_line) + 1])
    pieces_t, pieces_e = [], []
    start = 0  # token offset of the current group
    total = 0  # tokens in the current group
    for length in line_lengths.tolist():
        if total + length > batch:
            _close_group(tokens, ends_line, start, start + total, batch, pieces_t, pieces_e)
            start, total = start + total, 0
        total += length
    _close_group(tokens, ends_line, start, start + total, batch, pieces_t, pieces_e)
    return np.concatenate(pieces_t), np.concatenate(pieces_e)


def _close_group(
    tokens: np.ndarray, ends_line: np.ndarray, a: int, b: int, batch: int, pieces_t: list, pieces_e: list
) -> None:
    n_pad = batch + 1 - (b - a)
    pieces_t += [tokens[a:b], np.full(n_pad, -1, dtype=np.int64)]
    pad_ends = np.zeros(n_pad, dtype=bool)
    pad_ends[-1] = True
    pieces_e += [ends_line[a:b], pad_ends]


def write_lines(path: Path, track_ids: np.ndarray, tokens: np.ndarray, ends_line: np.ndarray) -> None:
    """Write tokens as LineSentence text (space-separated, newline at each line end), atomically.

    Token -1 is the padding token."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fixed = _fixed_width_bytes(track_ids)
    if fixed is not None and len(tokens) and fixed.dtype.itemsize == len(PAD_TOKEN):
        # Fixed-width ASCII ids (track ids are 16 hex chars): build the bytes with numpy in one go.
        w = fixed.dtype.itemsize
        table = np.concatenate([fixed, np.array([PAD_TOKEN.encode()], dtype=fixed.dtype)])
        buf = np.empty((len(tokens), w + 1), dtype=np.uint8)
        buf[:, :w] = table[tokens].view(np.uint8).reshape(-1, w)  # -1 -> the padding token
        buf[:, w] = np.where(ends_line, ord("\n"), ord(" "))
        tmp.write_bytes(buf.tobytes())
    else:
        ids = np.concatenate([np.asarray(track_ids, dtype=object), np.array([PAD_TOKEN], dtype=object)])[
            tokens
        ]
        breaks = np.flatnonzero(ends_line) + 1
        with tmp.open("w", encoding="utf-8") as fh:
            for chunk in np.split(ids, breaks[:-1]) if len(tokens) else []:
                fh.write(" ".join(chunk) + "\n")
    os.replace(tmp, path)


def _fixed_width_bytes(track_ids: np.ndarray) -> np.ndarray | None:
    """The ids as one fixed-width bytes array, or None when they differ in length or are not ASCII."""
    try:
        as_bytes = np.asarray(track_ids, dtype="S")
    except UnicodeEncodeError:
        return None
    if len(as_bytes) == 0 or not (np.char.str_len(as_bytes) == as_bytes.dtype.itemsize).all():
        return None
    return as_bytes


def write_corpus(
    playlists: Ragged,
    track_ids: np.ndarray,
    directory: Path,
    n_orders: int,
    seed: int,
    shuffle: bool = True,
    max_sentence: int = MAX_SENTENCE,
) -> CorpusFiles:
    """Write (or reuse) `n_orders` LineSentence files of the playlists under `directory/<fingerprint>`.

    `shuffle=False` writes a single file in position order (the seed recipe's corpus).
    """
    n_orders = n_orders if shuffle else 1
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(playlists.indptr).tobytes())
    h.update(np.ascontiguousarray(playlists.values).tobytes())
    h.update(json.dumps(["v3-batch-padded", n_orders, seed, shuffle, max_sentence, len(track_ids)]).encode())
    h.update("\n".join(track_ids[:: max(1, len(track_ids) // 10_000)]).encode())
    fingerprint = h.hexdigest()[:16]
    out = Path(directory) / f"corpus-{fingerprint}"
    meta_path = out / "meta.json"
    counts = (
        np.bincount(playlists.values, minlength=len(track_ids))
        if len(playlists.values)
        else np.zeros(len(track_ids), dtype=np.int64)
    )
    word_counts = {str(track_ids[i]): int(counts[i]) for i in np.flatnonzero(counts)}
    files = tuple(out / f"order_{i}.txt" for i in range(n_orders))
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fingerprint and all(f.exists() for f in files):
            return CorpusFiles(
                out,
                files,
                meta["n_sentences"],
                meta["n_tokens"],
                word_counts,
                fingerprint,
                meta["file_words"],
                meta["file_lines"],
            )
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_sentences = n_tokens = file_words = file_lines = 0
    for path in files:
        tokens, ends_line = sentence_lines(playlists, shuffle, rng, max_sentence)
        n_sentences, n_tokens = int(ends_line.sum()), len(tokens)
        tokens, ends_line = pad_batches(tokens, ends_line, MAX_SENTENCE)
        write_lines(path, track_ids, tokens, ends_line)
        file_words, file_lines = len(tokens), int(ends_line.sum())
    # Written last: its presence means the corpus is complete.
    meta_path.write_text(
        json.dumps(
            {
                "fingerprint": fingerprint,
                "n_sentences": n_sentences,
                "n_tokens": n_tokens,
                "file_words": file_words,
                "file_lines": file_lines,
                "n_orders": n_orders,
                "seed": seed,
                "shuffle": shuffle,
                "max_sentence": max_sentence,
            },
            indent=2,
        )
    )
    return CorpusFiles(out, files, n_sentences, n_tokens, word_counts, fingerprint, file_words, file_lines)


def read_corpus(path: Path) -> list[list[str]]:
    """The sentences of one corpus file, without the padding line (tests and debugging)."""
    with Path(path).open(encoding="utf-8") as fh:
        return [words for words in (line.split() for line in fh) if words and words[0] != PAD_TOKEN]


def nested_samples(playlists: Ragged, sizes: tuple[int, ...], seed: int) -> tuple[Ragged, ...]:
    """Seeded samples of the given sizes, each inside the next (prefixes of one permutation)."""
    order = np.random.default_rng(seed).permutation(len(playlists))
    return tuple(playlists if n >= len(playlists) else playlists.take(np.sort(order[:n])) for n in sizes)


def sample_playlists(playlists: Ragged, n: int, seed: int) -> Ragged:
    """A seeded random sample of n playlists (all of them when n >= len)."""
    if n >= len(playlists):
        return playlists
    index = np.sort(np.random.default_rng(seed).choice(len(playlists), size=n, replace=False))
    return playlists.take(index)
