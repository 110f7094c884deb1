"""A playlist's name -> its name tokens (`name:chill`, `name:summer`), the one tokenizer of `ml`.

Standard library only and free of dataclasses, loadable by path outside any package: `ml export`
ships it as `code/name_tokens.py` beside the SageMaker handler (`code/inference.py`), which
tokenizes a request's playlist name with it, as `ml serve` does.

Rules (docs/cold_start.md):
1. The Spotify client's own playlists (`Starred`, `Liked from Radio`; ml/config.py
   AUTO_PLAYLIST_NAMES, compared after trimming and lower-casing) have no name signal: no tokens.
   They mix every taste their owner has, so their words say nothing about their tracks.
2. Unicode NFKC (full-width letters, ligatures), lower-case (casefold), then accents folded:
   NFKD and the accents of Latin and Greek letters dropped (`Música` -> `musica`).
   Scripts without a Latin decomposition (Hangul syllables recompose, kana, Han, Arabic) keep their
   letters: `케이팝`, `邦楽` are tokens as they are.
3. Words are runs of letters and digits. Between two of them a hyphen or an apostrophe is
   dropped and an ampersand kept, so spellings meet: `k-pop` and `kpop` -> `kpop`, `lo-fi` ->
   `lofi`, `i've` -> `ive`, `r&b` -> `r&b`; anything else separates words.
4. Each emoji (and other pictographic symbol: `♥`, `☀`) is a token of its own, skin tones and
   variation selectors dropped (`🔥🔥🔥` -> `🔥` once).
5. Stop words of several languages (en, es, pt, fr, de, it, nl, sv/da/no: function words only,
   in STOP_WORDS) and one-character ASCII words (`a`, `3`) are dropped, as are tokens repeated
   within a name (a name is a set of tokens). Numbers are kept (`2014`, `90s`): years and
   decades carry taste. Words that say little (`mix`, `favorites`) are left to the data: their
   fitted rows sit near the average taste.
"""

import unicodedata

NAME_PREFIX = "name:"
# Keep in step with ml/config.py AUTO_PLAYLIST_NAMES (a test checks); repeated here so this file
# stays importable on its own.
AUTO_PLAYLIST_NAMES = ("Starred", "Liked from Radio")
_AUTO = frozenset(n.casefold() for n in AUTO_PLAYLIST_NAMES)

STOP_WORDS_BY_LANGUAGE = {
    "en": "a an and the of to in on for with my our your me i im ive its it is are be this that at by "
    "from or all some",
    "es": "el la los las un una unos unas y o de del al en con por para mi mis tu tus su sus que es",
    "pt": "e os as um uma do da dos das no na nos nas em com por pra meu minha minhas meus",
    "fr": "le les une des du au aux et ou ma mes ton ta tes son sa ses pour avec sur dans qui",
    "de": "der die das den dem des ein eine einer und oder mit von zu im am fur auf meine mein",
    "it": "il lo gli uno ed di da dei della delle per con mia mio",
    "nl": "het een en van voor met op mijn",
    "sv": "och att det som en ett av pa med min mitt mina jag",  # sv, with da/no below
    "da": "og af er",
}
STOP_WORDS = frozenset(w for words in STOP_WORDS_BY_LANGUAGE.values() for w in words.split())

# Code point ranges of pictographic symbols kept as tokens (emoji and the older dingbats).
_PICTOGRAPHIC = (
    (0x2190, 0x21FF),  # arrows
    (0x2300, 0x23FF),  # misc technical (⌚ ⏰)
    (0x2460, 0x24FF),  # enclosed alphanumerics
    (0x25A0, 0x27BF),  # shapes, misc symbols (☀ ☕ ♥), dingbats (✨ ❤)
    (0x2B00, 0x2BFF),  # arrows, stars (⭐)
    (0x1F000, 0x1FAFF),  # mahjong .. symbols and pictographs extended-A (🔥 🎧 🤘 🎄)
)
# Joiners, variation selectors and skin tones: parts of an emoji, never tokens themselves.
_EMOJI_PARTS = frozenset([0x200D, 0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)])
_JOINERS = "-\u2010\u2011'\u2019&"  # inside a word: hyphens and apostrophes join, & stays


def _is_pictographic(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _PICTOGRAPHIC)


def _fold(text: str) -> str:
    """NFKC, casefold, then NFKD with the accents of Latin, Greek and Cyrillic letters dropped,
    recomposed (Hangul stays whole; the vowel signs of Devanagari or Arabic stay)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    out = []
    base = 0  # code point of the last non-mark character
    for ch in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(ch) and (base < 0x0400 or 0x1E00 <= base <= 0x1FFF):
            continue
        if not unicodedata.category(ch).startswith("M"):
            base = ord(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def is_auto_playlist(name: str) -> bool:
    return name.strip().casefold() in _AUTO


def tokenize(name: str) -> list:
    """The name's tokens in first-seen order, without prefix (`"Summer Chill 🔥"` -> summer, chill, 🔥)."""
    if not isinstance(name, str) or is_auto_playlist(name):
        return []
    text = "".join(ch for ch in _fold(name) if ord(ch) not in _EMOJI_PARTS)
    words = []
    current = []
    for i, ch in enumerate(text):
        if ch.isalnum() or (current and unicodedata.category(ch).startswith("M")):
            current.append(ch)  # a mark (Devanagari vowel sign) belongs to its word
            continue
        if ch in _JOINERS and current and i + 1 < len(text) and text[i + 1].isalnum():
            if ch == "&":
                current.append(ch)
            continue  # k-pop -> kpop, i've -> ive, r&b -> r&b
        if current:
            words.append("".join(current))
            current = []
        if _is_pictographic(ch):
            words.append(ch)
    if current:
        words.append("".join(current))
    out = []
    seen = set()
    for word in words:
        if word in STOP_WORDS or (len(word) == 1 and word.isascii()):
            continue
        if word not in seen:
            seen.add(word)
            out.append(word)
    return out


def name_keys(name: str) -> list:
    """The name's tokens as query-table keys (`name:chill`): never a track id."""
    return [NAME_PREFIX + token for token in tokenize(name)]
