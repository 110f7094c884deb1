"""Word pools and name builders for the generator: artists, track titles and playlist names.

Names are built from small per-script pools (Latin with accents, Hangul, Japanese, Chinese, Arabic,
Hebrew, Devanagari) so the generated file carries the real file's mix of scripts. Every builder
takes a numpy Generator and returns plain Python strings in a deterministic order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --- taste communities ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Community:
    """A latent taste: its name, the script its artists write in, and words people use for it."""

    name: str
    script: str
    words: tuple[str, ...]


# Ordered so that the first few (used by the tiny preset) already mix scripts.
COMMUNITIES: tuple[Community, ...] = (
    Community("rock", "en", ("rock", "Rock", "classic rock", "Rock Classics", "guitar", "ROCK")),
    Community("rap", "en", ("rap", "hip hop", "Hip-Hop", "rap bangers", "beats", "RAP")),
    Community("latin", "es", ("latin", "reggaeton", "salsa", "Música latina", "Latino", "bachata")),
    Community("k-pop", "ko", ("k-pop", "KPOP", "케이팝", "kpop", "K-Pop ♥")),
    Community("country", "en", ("country", "Country", "bluegrass", "americana", "honky tonk")),
    Community("jazz", "en", ("jazz", "Jazz", "smooth jazz", "bebop", "jazz standards")),
    Community("arabic", "ar", ("arabic", "عربي", "طرب", "Arabic music", "خليجي")),
    Community("electronic", "en", ("electronic", "EDM", "house", "techno", "Deep House", "electro")),
    Community("pop", "en", ("pop", "Pop Hits", "top 40", "charts", "POP")),
    Community("j-pop", "ja", ("j-pop", "J-Pop", "アニソン", "jpop", "邦楽")),
    Community("indie", "en", ("indie", "Indie", "alt", "indie folk", "indie rock")),
    Community("metal", "en", ("metal", "Metal", "heavy", "thrash", "METAL 🤘")),
    Community("chanson", "fr", ("chanson", "variété française", "à écouter", "français", "Chansons")),
    Community("classical", "de", ("classical", "Klassik", "piano", "orchestra", "Classical")),
    Community("chill", "en", ("chill", "Chill", "ambient", "lounge", "sleep", "chillout")),
    Community("hebrew", "he", ("israeli", "מזרחית", "שירים", "עברית", "Israeli")),
    Community("soul", "en", ("r&b", "soul", "Soul", "motown", "RnB")),
    Community("punk", "en", ("punk", "Punk", "pop punk", "emo", "skate")),
    Community("mandopop", "zh", ("mandopop", "华语", "中文歌", "C-pop", "国语")),
    Community("workout", "en", ("workout", "gym", "running", "Workout", "cardio", "GYM")),
    Community("reggae", "en", ("reggae", "dub", "Reggae", "ska", "roots")),
    Community("brasil", "pt", ("MPB", "bossa nova", "samba", "sertanejo", "Brasil")),
    Community("folk", "en", ("folk", "Folk", "acoustic", "singer-songwriter", "unplugged")),
    Community("deutsch", "de", ("Deutschrap", "Schlager", "deutsch", "Deutsch", "Liedermacher")),
    Community("blues", "en", ("blues", "Blues", "delta blues", "blues rock")),
    Community("bollywood", "hi", ("bollywood", "हिंदी", "desi", "Bollywood", "filmi")),
    Community("funk", "en", ("funk", "disco", "Funk", "boogie", "Disco Fever")),
    Community("trance", "en", ("trance", "Trance", "uplifting", "ASOT", "progressive")),
    Community("nordic", "sv", ("svenskt", "nordic", "Svensk pop", "dansband", "visor")),
    Community("soundtrack", "en", ("soundtrack", "movie", "OST", "video games", "scores")),
    Community("gospel", "en", ("gospel", "worship", "Praise", "church", "Gospel")),
    Community("oldies", "en", ("oldies", "60s", "70s", "80s", "Oldies but goodies")),
    Community("dnb", "en", ("drum and bass", "dnb", "dubstep", "DnB", "bass")),
    Community("christmas", "en", ("christmas", "Christmas", "xmas", "holiday", "Xmas 🎄")),
    Community("afrobeat", "en", ("afrobeat", "afrobeats", "Afro", "highlife", "naija")),
    Community("trap", "en", ("trap", "Trap", "drill", "TRAP", "bangers")),
    Community("lofi", "en", ("lofi", "study", "focus", "lo-fi", "Study")),
    Community("shoegaze", "en", ("shoegaze", "dream pop", "noise pop", "Dreampop")),
    Community("grunge", "en", ("90s", "alternative", "grunge", "Alternative", "90s alt")),
    Community("opera", "fr", ("opéra", "opera", "Lyrique", "arias", "bel canto")),
)

# --- word pools ------------------------------------------------------------------------------------


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


EN_FIRST = _w(
    "John Paul George Mary Anna Laura Emma Kate Sarah David Michael James Robert Chris Tom Jack Sam "
    "Alex Max Ben Nick Lucy Grace Ella Zoe Mia Nina Ruby Jake Luke Ryan Adam Noah Leo Eli Jonas Ivy "
    "Billie Frank Dean Etta Otis Ray Nina Aretha Carl Buddy Johnny Dolly Willie Merle Patsy Hank Kenny "
    "Marvin Stevie Curtis Bobby Jimmy Janis Joni Neil Tracy Lana Taylor Miley Selena Demi Harry Louis "
    "Liam Niall Zayn Shawn Camila Halsey Lorde Sia Kesha Adele Amy Duffy Jess Kelly Carrie Blake Luke"
)
EN_LAST = _w(
    "Smith Johnson Brown Taylor Miller Wilson Moore Jackson Martin Lee Walker Hall Allen Young King "
    "Wright Scott Green Baker Adams Nelson Hill Campbell Mitchell Roberts Carter Phillips Evans Turner "
    "Parker Collins Edwards Stewart Morris Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Bell "
    "Kelly Howard Ward Cox Richardson Wood Watson Brooks Bennett Gray James Hughes Price Sanders Myers "
    "Long Ross Foster Powell Jenkins Perry Russell Sullivan Fisher Henderson Cole West Jordan Reynolds "
    "Hamilton Graham Wallace Woods Owens Harrison Gibson Ellis Stone Hunt Black Fox Rose Snow Marsh"
)
EN_ADJ = _w(
    "Black White Red Blue Golden Silver Electric Broken Wild Young Lost Velvet Crystal Dark Bright "
    "Silent Hollow Neon Paper Glass Iron Stone Burning Frozen Sweet Bitter Lonely Happy Sad Crazy "
    "Little Big Holy Modern Ancient Secret Sonic Cosmic Atomic Magnetic Northern Southern Eastern "
    "Western Midnight Morning Summer Winter Autumn Spring Strange Gentle Savage Royal Rusty Dusty"
)
EN_NOUN = _w(
    "Keys Stones Lips Wolves Foxes Tigers Lions Bears Kings Queens Knights Monks Saints Sinners "
    "Ghosts Shadows Angels Devils Birds Crows Ravens Doves Horses Hearts Hands Eyes Bones Roses "
    "Lilies Flowers Trees Rivers Oceans Waves Mountains Valleys Stars Planets Moons Suns Clouds "
    "Storms Machines Robots Engines Wheels Drums Bells Strings Horns Pilots Sailors Soldiers Strangers "
    "Brothers Sisters Sons Daughters Children Lovers Dreamers Thieves Riders Runners Wizards Kids"
)
EN_WORDS = _w(
    "love night heart fire dream light rain home road time world sun moon star blue city girl boy baby "
    "summer river ocean sky gold shadow ghost storm wild free young lost broken dance run fall rise "
    "tonight forever alone together heaven paradise midnight morning sunday monday weekend party money "
    "crazy sweet bitter lonely happy sad hold let go stay away back down up tears smile kiss touch "
    "eyes hands soul mind body blood bones wings window door house garden street highway train car "
    "radio song music rhythm beat bass echo silence thunder lightning snow winter spring autumn "
    "california paris london tokyo berlin memphis texas mexico brooklyn hollywood desert island "
    "diamond silver honey sugar whiskey wine coffee cigarettes candy cherry lemon roses violet "
    "electric golden neon velvet crystal glass paper iron stone"
)
EN_VERBS = _w("Hold Let Take Give Bring Come Turn Keep Leave Run Fall Dance Call Feel Tell Save Stop Wait")
EN_OBJ = _w("On Go Me Away Back Down Up Home Out Together Tonight You Us It Over")

# Titles many artists share, as in the real file (thousands of `Intro`s).
SHARED_TITLES = (
    "Intro",
    "Intro",
    "Intro",
    "Outro",
    "Interlude",
    "Home",
    "Hold On",
    "Forever",
    "Sunday",
    "Runaway",
    "Skit",
    "Untitled",
    "Stay",
    "Alive",
    "Closer",
    "Heaven",
    "Fire",
    "Angel",
    "Crazy",
    "Breathe",
    "Hello",
    "Tonight",
    "Paradise",
    "Smile",
    "Falling",
    "Lullaby",
    "Prelude",
    "Reprise",
    "Silent Night",
)

TITLE_SUFFIXES = (
    " - Remastered",
    " - Radio Edit",
    " - Live",
    " - Remix",
    " - 2011 Remaster",
    " - Acoustic",
    " [Mix Cut]",
    " - Original Mix",
    " - Bonus Track",
    " - Single Version",
    " - Demo",
    " - Edit",
    " - Album Version",
    " - Extended Mix",
    " - Instrumental",
    " - Live At Leeds",
    " - Remastered 2009",
    " - Mono",
    " - Club Mix",
    " - Unplugged",
    " - Deluxe Edition",
    " - Radio Version",
    " - Stereo",
)
# Appended to break a collision of two titles of one artist; reads like real catalogue noise.
DISAMBIGUATION_SUFFIXES = (
    " - Live",
    " - Demo",
    " - Acoustic",
    " - Remix",
    " - Reprise",
    " (Part 2)",
    " - Alternate Take",
    " - Edit",
    " II",
    " - Instrumental",
    " (Interlude)",
    " - Bonus Track",
    " - Mono",
    " - Remastered",
)
ARTIST_DISAMBIGUATION = (" (UK)", " (US)", " II", " (band)", " & Friends", " Band", " Project", " Trio")

# Words per non-English script; Latin-script languages also borrow the English pools.
SCRIPT_WORDS: dict[str, tuple[str, ...]] = {
    "es": _w(
        "corazón amor noche vida canción fuego luna sol mañana cielo mar besos bailar sueño niña "
        "mi tu señorita música alegría dolor querer siempre nunca ojos lágrimas calle ciudad fiesta "
        "gitana rosa corazones tequila Méjico azúcar pasión llorar olvidar volver"
    ),
    "pt": _w(
        "saudade coração amor noite vida canção sol mar céu samba menina beleza morena garota "
        "cidade chão praia lua alegria tristeza você não são João ação canção viver"
    ),
    "fr": _w(
        "amour nuit cœur vie chanson soleil mer ciel rêve été hiver étoile fête ville rue "
        "là-bas déjà toujours jamais ma mon belle beau père mère garçon fille café à écouter"
    ),
    "de": _w(
        "Liebe Nacht Herz Leben Lied Sonne Meer Himmel Traum Sommer Winter Straße Stadt Mädchen "
        "Schön Glück Größe München Köln Sehnsucht Träume Müde Über Grüße Tränen Wälder"
    ),
    "sv": _w(
        "kärlek natt hjärta liv sång sol hav himmel dröm sommar vinter gata stad flicka "
        "älskar här där över öga ögon månsken ängel snö björk sjö"
    ),
    "ko": _w(
        "사랑 밤 마음 너 나 우리 노래 하늘 별 바다 꿈 시간 눈물 안녕 봄 여름 가을 겨울 "
        "그대 오늘 내일 기억 행복 이별 너에게 빛 춤"
    ),
    "ja": _w(
        "愛 夜 心 君 僕 歌 空 星 海 夢 時間 涙 桜 春 夏 秋 冬 東京 恋 花火 "
        "さくら ありがとう さよなら ひかり こころ ラブ ソング メロディー ドリーム"
    ),
    "zh": _w(
        "爱 夜 心 你 我 歌 天空 星星 大海 梦 时间 眼泪 月亮 春天 夏天 秋天 冬天 "
        "北京 上海 朋友 告白 想念 永远 幸福 回忆 晴天 青春"
    ),
    "ar": _w(
        "حب ليل قلب حياة أغنية شمس بحر سماء حلم صيف شتاء عيون دموع حبيبي يا "
        "قمر نور أمل وطن سلام بيروت القاهرة"
    ),
    "he": _w("אהבה לילה לב חיים שיר שמש ים שמיים חלום קיץ חורף עיניים דמעות ירושלים תל אביב שלום אור בית"),
    "hi": _w("प्यार रात दिल ज़िंदगी गाना सूरज समंदर आसमान सपना गर्मी बारिश आँखें आंसू चाँद जान मेरा तेरा दीवाना"),
}
SCRIPT_FIRST: dict[str, tuple[str, ...]] = {
    "es": _w("José María Juan Carlos Luis Ana Sofía Lucía Andrés Jesús Ramón Inés Álvaro Íñigo"),
    "pt": _w("João Maria José Ana Luís Antônio Gilberto Caetano Marisa Cássia Tânia Zé"),
    "fr": _w("Jean Marie Pierre Édith Françoise Hélène Gaël Léa Chloé Zoé Jérôme Anaïs Benoît"),
    "de": _w("Jürgen Günter Hans Klaus Helene Jörg Björn Sönke Käthe Uwe Udo Nena Max"),
    "sv": _w("Björn Åsa Håkan Göran Märta Sören Agnetha Benny Frida Lasse Anni-Frid Ölle"),
    "ko": _w("김 이 박 최 정 강 조 윤 장 임"),
    "ja": _w("佐藤 鈴木 高橋 田中 渡辺 伊藤 山本 中村 小林 加藤"),
    "zh": _w("王 李 张 刘 陈 杨 黄 赵 周 吴"),
    "ar": _w("محمد أحمد فيروز عمرو نانسي إليسا راغب كاظم تامر وائل"),
    "he": _w("עומר שלמה אייל עידן נועה שרית משה אריק יהורם"),
    "hi": _w("अरिजीत श्रेया लता किशोर सोनू नेहा आशा मोहम्मद"),
}
SCRIPT_LAST: dict[str, tuple[str, ...]] = {
    "es": _w("García Martínez López Sánchez Pérez Gómez Fernández Díaz Muñoz Núñez Ibáñez"),
    "pt": _w("Silva Santos Oliveira Souza Conceição Araújo Gonçalves Simões Brandão"),
    "fr": _w("Martin Bernard Dubois Lefèvre Léger Gérard Hérault Bécaud Aznavour Piaf"),
    "de": _w("Müller Schäfer Köhler Böhm Groß Weiß Schröder Krüger Jürgens Böse"),
    "sv": _w("Andersson Johansson Källström Åberg Öberg Nyström Lindqvist Ekström"),
    "ko": _w("민수 지은 서연 하준 도윤 수아 지호 예은 태양 보아"),
    "ja": _w("ひかる あゆみ 健太 翔 美咲 陽菜 蓮 結衣 大輔 由紀"),
    "zh": _w("伟 芳 娜 敏 静 丽 强 磊 杰 杰伦 菲 学友"),
    "ar": _w("عبده دياب منير الساهر حسني فضل شاكر"),
    "he": _w("אדם כהן לוי פרץ ברי גולן זוהר"),
    "hi": _w("सिंह घोषाल मंगेशकर कुमार कक्कड़ भोसले रफ़ी"),
}
# Syllables for invented one-word band names (Bastille, Odesza, Chvrches ...).
SYLLABLES = _w(
    "ka ro mi na lo vi sa te ra zu be do fe ga hi ja ko lu ma ne po qu ri si to un va we xe yo za "
    "bri cha dro fla gre kri pla sta tro vel mor dan sil ven tar lex nox vyn zor kai mon del fin"
)

GENERIC_PLAYLIST_NAMES = (
    "Favorites",
    "Favorites ",
    "2013",
    "2014",
    "2012",
    "iTunes",
    "To listen to",
    "Music",
    "musik",
    "everything",
    "Run",
    "Car",
    "Running",
    "chill",
    "workout",
    "party",
    "Party!!!",
    "Summer 2014",
    "Best of 2014",
    "Albums 1",
    "My Music",
    "à écouter",
    "Road trip",
    "Sleep",
    "Study",
    "Work",
    "Mix",
    "new",
    "New Playlist",
    "Playlist 3",
    "good stuff",
    "i like.",
    "🔥🔥🔥",
    "❤️",
    "Morning ☕",
    "Weekend 🎉",
    "sd. HipHop DE ",
    "Library & Streams (Part 22)",
    "Discover Weekly archive",
    "Top Tracks 2009 - 2012",
    "wedding",
    "Dinner",
    "Shower songs",
    "Guilty pleasures",
    "Throwback",
    "Songs, old and new",
    "Love, actually",
    "rainy days",
    "late night",
    "Bands i've seen ",
)
PLAYLIST_TEMPLATES = (
    "{w}",
    "{w}",
    "{W}",
    "my {w}",
    "{w} mix",
    "Best of {w}",
    "{w} {year}",
    "{W} Favorites",
    "{w} & more",
    "{w}, {w2}",
    "{mood} {w}",
    "{w} {emoji}",
    "{W} Essentials",
    "old {w}",
    "{w}!!",
)
MOODS = ("Chill", "Workout", "Party", "Sunday", "Late night", "Happy", "Sad", "Driving", "Summer", "Rainy")
EMOJIS = ("🔥", "❤️", "🎧", "🎶", "✨", "🌙", "☀️", "💔", "🤘", "🎸")
ALBUM_WORDS = (
    "Greatest Hits",
    "Live",
    "Deluxe Edition",
    "The Best Of",
    "Anthology",
    "Remastered",
    "Essentials",
    "Collection",
    "Unplugged",
    "B-Sides",
    "Vol. 2",
    "(Deluxe)",
    "EP",
    "Sessions",
    "Demos",
)


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


NATIVE_SYLLABLES: dict[str, tuple[str, ...]] = {
    "ko": _w("민 수 지 은 서 연 하 준 도 윤 아 호 예 태 양 보 현 우 진 영 성 희 경 미 정 혜 동 석 철 빈"),
    "ja": _w(
        "ア カ サ タ ナ ハ マ ヤ ラ ワ キ シ チ ニ ヒ ミ リ ク ス ツ ヌ フ ム ユ ル コ ソ ト ノ ホ モ ヨ ロ"
    ),
    "zh": _w("伟 芳 娜 敏 静 丽 强 磊 杰 伦 菲 友 明 华 建 国 文 军 平 玉 英 春 晓 云 飞 龙 凤 佳 欣 怡"),
}


def _syl(x: int, n: int, pool: tuple[str, ...] = SYLLABLES) -> str:
    """An invented word of `n` syllables, the digits of `x` in base len(pool)."""
    out = []
    for _ in range(n):
        x, r = divmod(x, len(pool))
        out.append(pool[r])
    return "".join(out)


def _native_artist(s: str, k: float, a: int, b: int, c: int, d: int) -> str:
    first, last, words = SCRIPT_FIRST[s], SCRIPT_LAST[s], SCRIPT_WORDS[s]
    if k < 0.35:  # a person
        if s in NATIVE_SYLLABLES:
            given = _syl(b, 1 + b % 2 if s != "ja" else 2 + b % 2, NATIVE_SYLLABLES[s])
            return (
                first[a % len(first)] + given
                if s != "ja" or c % 2
                else first[a % len(first)] + last[b % len(last)]
            )
        name = f"{first[a % len(first)]} {last[b % len(last)]}"
        return name + (" " + words[c % len(words)] if c % 2 else "")
    if k < 0.75:  # a band named in words
        n_words = 2 + c % 2
        return " ".join(words[(x >> 3) % len(words)] for x in (a, b, d)[:n_words])
    if k < 0.92:  # romanized or Latin names are common in these scenes too
        return _cap(_syl(a, 2)) + " " + _cap(_syl(b, 2))
    return _syl(c, 2 + d % 2).upper()


def _latin_artist(s: str, k: float, a: int, b: int, c: int, d: int) -> str:
    first = EN_FIRST + SCRIPT_FIRST.get(s, ())
    last = EN_LAST + SCRIPT_LAST.get(s, ())

    def surname(x: int) -> str:
        return last[x % len(last)] if x % 5 < 3 else _cap(_syl(x >> 3, 2 + (x >> 2) % 2))

    if k < 0.38:
        middle = f" {chr(65 + c % 26)}." if c % 4 == 0 else ""
        return f"{first[a % len(first)]}{middle} {surname(b)}"
    if k < 0.395:
        return f"The {EN_ADJ[a % len(EN_ADJ)]} {EN_NOUN[b % len(EN_NOUN)]}"
    if k < 0.47:
        return f"The {_cap(_syl(a, 2))} {EN_NOUN[b % len(EN_NOUN)]}"
    if k < 0.72:
        return _cap(_syl(a, 2 + b % 3))
    if k < 0.725:
        return f"{EN_ADJ[a % len(EN_ADJ)]} {EN_NOUN[b % len(EN_NOUN)]}"
    if k < 0.8:
        return f"{('DJ', 'MC', 'Lil', 'Young', 'Big')[d % 5]} {_cap(_syl(a, 2 + b % 2))}"
    if k < 0.87:
        return f"{first[a % len(first)]} {surname(b)} & The {EN_NOUN[c % len(EN_NOUN)]}"
    if k < 0.89:
        words = SCRIPT_WORDS.get(s, EN_WORDS)
        return _cap(words[a % len(words)]) + " " + _cap(words[b % len(words)])
    if k < 0.93:  # a comma inside the name, as in "Crosby, Stills, Nash & Young"
        return f"{surname(a)}, {surname(b)} & {surname(c)}"
    if k < 0.97:
        return f"{_cap(_syl(a, 2))} feat. {first[b % len(first)]} {surname(c)}"
    return f"{first[a % len(first)]} {surname(b)}/{first[c % len(first)]} {surname(d)}"


def artist_names(rng: np.random.Generator, scripts: list[str]) -> list[str]:
    """One name per artist, in the artist's script. Rarely collides; `make_unique` settles the rest."""
    n = len(scripts)
    kind = rng.random(n).tolist()
    u = rng.integers(0, 1 << 30, size=(n, 4)).tolist()
    latin = ("en", "es", "pt", "fr", "de", "sv")
    return [
        _latin_artist(s, k, *abcd) if s in latin else _native_artist(s, k, *abcd)
        for s, k, abcd in zip(scripts, kind, u, strict=True)
    ]


def track_titles(rng: np.random.Generator, scripts: list[str], feat_pool: list[str]) -> list[str]:
    """One title per track, in its artist's script; a share are titles many artists share."""
    n = len(scripts)
    kind = rng.random(n).tolist()
    suffix = rng.random(n).tolist()
    u = rng.integers(0, 1 << 30, size=(n, 4)).tolist()
    out: list[str] = []
    nw, nv, no = len(EN_WORDS), len(EN_VERBS), len(EN_OBJ)
    for i in range(n):
        s = scripts[i]
        k = kind[i]
        a, b, c, d = u[i]
        native = SCRIPT_WORDS.get(s)
        if k < 0.03:
            title = SHARED_TITLES[a % len(SHARED_TITLES)]
        elif native is not None and k < 0.6:
            sep = "" if s in ("ja", "zh") else " "
            title = (
                native[a % len(native)]
                if k < 0.2
                else native[a % len(native)] + sep + native[b % len(native)]
            )
            if s in ("es", "pt", "fr", "de", "sv"):
                title = _cap(title)
        elif k < 0.2:
            title = _cap(EN_WORDS[a % nw])
        elif k < 0.45:
            title = f"{_cap(EN_WORDS[a % nw])} {_cap(EN_WORDS[b % nw])}"
        elif k < 0.55:
            title = f"{EN_VERBS[a % nv]} {EN_OBJ[b % no]}"
        elif k < 0.63:
            title = f"{_cap(EN_WORDS[a % nw])} of {_cap(EN_WORDS[b % nw])}"
        elif k < 0.72:
            title = f"The {_cap(EN_WORDS[a % nw])} {_cap(EN_WORDS[b % nw])}"
        elif k < 0.82:
            title = f"{_cap(EN_WORDS[a % nw])} {EN_WORDS[b % nw]} {EN_WORDS[c % nw]}"
        elif k < 0.88:
            title = f"I {EN_VERBS[a % nv]} {_cap(EN_WORDS[b % nw])}"
        elif k < 0.92:
            title = f"{_cap(EN_WORDS[a % nw])}, {_cap(EN_WORDS[b % nw])}"
        elif k < 0.96:
            title = f"{_cap(EN_WORDS[a % nw])} ({_cap(EN_WORDS[b % nw])} {_cap(EN_WORDS[c % nw])})"
        else:
            title = f"Don't {EN_VERBS[a % nv]} {EN_OBJ[b % no]}"
        if suffix[i] < 0.12:
            title += TITLE_SUFFIXES[d % len(TITLE_SUFFIXES)]
        elif suffix[i] < 0.15 and feat_pool:
            title += f" (feat. {feat_pool[d % len(feat_pool)]})"
        out.append(title)
    return out


def unique_artist_names(rng: np.random.Generator, scripts: list[str], rounds: int = 6) -> list[str]:
    """Artist names, distinct case-insensitively: later duplicates are redrawn a few times (so small name
    pools stay realistic without saturating), and the rare survivors get a suffix such as ` (UK)`."""
    names = artist_names(rng, scripts)
    for _ in range(rounds):
        seen: set[str] = set()
        dups = []
        for i, name in enumerate(names):
            key = name.lower()
            if key in seen:
                dups.append(i)
            seen.add(key)
        if not dups:
            break
        for i, name in zip(dups, artist_names(rng, [scripts[i] for i in dups]), strict=True):
            names[i] = name
    return make_unique(names, None, ARTIST_DISAMBIGUATION)


def make_unique(names: list[str], groups: np.ndarray | None, extras: tuple[str, ...]) -> list[str]:
    """Append `extras` (then a number) to later duplicates so names are unique (per group, if given).

    Uniqueness is case-insensitive, matching the pipeline's identity (trimmed, lower-cased names).
    """
    names = list(names)
    seen: dict[tuple[int, str], int] = {}
    for i, name in enumerate(names):
        g = int(groups[i]) if groups is not None else 0
        key = (g, name.lower())
        if key not in seen:
            seen[key] = 1
            continue
        k = seen[key]
        while True:
            cand = name + (extras[k - 1] if k - 1 < len(extras) else f" ({k})")
            if (g, cand.lower()) not in seen:
                break
            k += 1
        seen[key] = k + 1
        seen[(g, cand.lower())] = 1
        names[i] = cand
    return names


def playlist_name(
    rng_vals: tuple[float, float, int, int],
    kind: str,
    community: Community,
    focus_artist: str | None,
) -> str:
    """A playlist name: `Artist – Album`, taste words of its community, or a generic name."""
    r, r2, a, b = rng_vals
    if kind == "artist" and focus_artist is not None:
        if r < 0.55:
            return f"{focus_artist} – {ALBUM_WORDS[a % len(ALBUM_WORDS)]}"
        if r < 0.75:
            return f"{focus_artist} — {_cap(EN_WORDS[a % len(EN_WORDS)])} {_cap(EN_WORDS[b % len(EN_WORDS)])}"
        return focus_artist
    if kind == "taste":
        words = community.words
        tpl = PLAYLIST_TEMPLATES[a % len(PLAYLIST_TEMPLATES)]
        w = words[b % len(words)]
        return tpl.format(
            w=w,
            W=_cap(w),
            w2=words[(b + 1) % len(words)],
            year=2008 + (a % 8),
            mood=MOODS[b % len(MOODS)],
            emoji=EMOJIS[a % len(EMOJIS)],
        )
    return GENERIC_PLAYLIST_NAMES[a % len(GENERIC_PLAYLIST_NAMES)]
