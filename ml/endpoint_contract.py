"""The endpoint's JSON contract, in one place for the local server and the SageMaker container.

Request  `{"instances": [{"tracks": ["<track_id>", ...], "k": 10}, ...]}`, or tracks by name:
         `{"instances": [{"names": [{"artist": "...", "title": "..."}, "Artist - Title", ...], "k": 10}]}`,
         or the playlist's own name, alone or beside tracks (cold start, docs/cold_start.md):
         `{"instances": [{"name": "summer chill", "k": 10}]}`
Response `{"predictions": [{"track_ids": [...], "artists": [...], "titles": [...], "scores": [...],
          "n_unknown": 0, "fallback": false, "n_name_tokens": 2, "n_unknown_tokens": 0}]}`

A name resolves to a track id with the warehouse's identity rule (`track_id_of`, the same as dbt's
`short_id(normalize_name(artist), normalize_name(title))`), so no warehouse is needed: a name the
model does not know gives an id it does not know, counted in `n_unknown` like an unknown id.

A playlist name is tokenized by `ml/name_tokens.py` (`name_keys`: `name:summer`, `name:chill`);
the model knows some of the keys (their rows average into the name's query) and counts the others
in `n_unknown_tokens`, as it counts unknown ids in `n_unknown`; `n_name_tokens` is how many it used.

Standard library only: `ml export` copies this file into `model.tar.gz` as `code/inference.py` and
`ml/name_tokens.py` beside it as `code/name_tokens.py` (loaded by path: the container does not
register `code/` as a package), where the SageMaker TensorFlow Serving container calls
`input_handler` / `output_handler` around TensorFlow Serving's REST predict API. `ml serve` imports
the same functions, so both endpoints validate, tokenize and answer alike.
"""

import hashlib
import json
import re
from typing import NamedTuple

try:  # in the package (ml serve, ml recommend, tests)
    from ml.name_tokens import name_keys
except ImportError:  # code/inference.py in the container: code/name_tokens.py beside it, by path
    import importlib.util
    import os

    _spec = importlib.util.spec_from_file_location(
        "name_tokens", os.path.join(os.path.dirname(os.path.abspath(__file__)), "name_tokens.py")
    )
    _name_tokens = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_name_tokens)
    name_keys = _name_tokens.name_keys

SIGNATURE_NAME = "serving_default"
# Padding in the model's [batch, max_tracks] string input; never a track id.
PAD = ""

MAX_BODY_BYTES = 1 << 20  # 1 MiB: e.g. 64 playlists of 800 track ids, or one of 5,000 and more
MAX_INSTANCES = 64
MAX_TRACKS = 5000  # real playlists run to thousands of tracks (the Kaggle file's longest: >10,000)
MAX_K = 500
DEFAULT_K = 10
MAX_TRACK_ID_CHARS = 128
MAX_NAME_CHARS = 1024  # an artist, a title, or an "Artist - Title" string
MAX_PLAYLIST_NAME_CHARS = 200  # the playlist's own name (Spotify allows 100)
NAME_SEPARATOR = " - "
ID_SEPARATOR = "\x1f"  # dbt's id_separator(): the unit separator between the hashed parts
# The model keeps this many popular tracks for empty playlists: enough for MAX_K after
# removing up to MAX_TRACKS input tracks.
N_POPULAR = MAX_K + MAX_TRACKS


class ContractError(ValueError):
    """A request the endpoint refuses; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# A NamedTuple, not a dataclass: the container imports this file without registering it in
# sys.modules, which dataclasses need; and no `from __future__ import annotations` for the same reason.
class Instance(NamedTuple):
    tracks: tuple[str, ...]  # the given ids, then the ids of the given names, in order
    k: int
    name: str = ""  # the playlist's name ("" when not given)

    def name_keys(self) -> list:
        """The name's tokens as the model's keys (`name:chill`), by ml/name_tokens.py."""
        return name_keys(self.name) if self.name else []


JSON_MEDIA_TYPE = "application/json"


def check_content_type(content_type) -> None:  # noqa: ANN001 - str or None; no `|` for older container Pythons
    """The one content-type rule of both endpoints: application/json, with no charset or utf-8;
    a missing or empty header counts as application/json. Anything else: ContractError 415."""
    if not content_type or not content_type.strip():
        return
    media_type, *params = (part.strip() for part in content_type.split(";"))
    if media_type.lower() != JSON_MEDIA_TYPE:
        raise ContractError(
            f"content type {content_type!r} is not supported; send {JSON_MEDIA_TYPE}", status=415
        )
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ContractError(f"charset in {content_type!r} is not supported; send utf-8", status=415)


# --- identity: dbt_project/macros/identity.sql, docs/contracts.md ------------------------------

_WHITESPACE = re.compile("[ \t\n\f\r]+")
# What DuckDB's trim() strips: the Unicode space separators (category Zs), not tabs or newlines.
_SPACE_SEPARATORS = (
    " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
)


def normalize_name(name: str) -> str:
    """dbt's `normalize_name` as DuckDB computes it: lower-cased, each run of [ \\t\\n\\f\\r] made
    one space, then trimmed of space separators.

    Lower-casing is per character with the simple (one-to-one) Unicode mapping, as DuckDB's
    `lower` does: `str.lower` on the whole string would differ on U+0130 ('İ' -> 'i' plus a
    combining dot) and on a word-final capital sigma ('Σ' -> 'ς').
    """
    lowered = name.lower() if name.isascii() else "".join(c.lower()[:1] for c in name)
    return _WHITESPACE.sub(" ", lowered).strip(_SPACE_SEPARATORS)


def track_id_of(artist: str, title: str) -> str:
    """The warehouse's track_id: the first 16 hex chars of md5(norm(artist) + 0x1f + norm(title))."""
    key = normalize_name(artist) + ID_SEPARATOR + normalize_name(title)
    return hashlib.md5(key.encode("utf-8")).hexdigest()[:16]


def split_name(name: str) -> tuple[str, str]:
    """ "Artist - Title" -> (artist, title), split at the first " - " (titles often hold one, e.g.
    "Song - Remastered"; give {"artist", "title"} for an artist that holds one). "- Title" is a
    track with an empty artist name."""
    stripped = name.strip(" ")
    if stripped.startswith(NAME_SEPARATOR.lstrip()):
        return "", stripped[len(NAME_SEPARATOR.lstrip()) :]
    artist, sep, title = name.partition(NAME_SEPARATOR)
    if not sep:
        raise ValueError(f'{name!r} is not "Artist - Title"')
    return artist, title


def parse_body(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> list[Instance]:
    """Decode and validate a request body; raises ContractError naming the bad field."""
    if len(body) > max_bytes:
        raise ContractError(f"body is {len(body)} bytes; the limit is {max_bytes}", status=413)
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ContractError(f"body is not UTF-8: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ContractError(f"body is not valid JSON: {exc}") from None
    return parse_payload(payload)


def parse_payload(payload: object) -> list[Instance]:
    if not isinstance(payload, dict) or "instances" not in payload:
        raise ContractError('expected a JSON object {"instances": [...]}')
    instances = payload["instances"]
    if not isinstance(instances, list) or not instances:
        raise ContractError('"instances" must be a non-empty list')
    if len(instances) > MAX_INSTANCES:
        raise ContractError(
            f'"instances" has {len(instances)} items; the limit is {MAX_INSTANCES}', status=413
        )
    return [_parse_instance(i, item) for i, item in enumerate(instances)]


def _parse_instance(i: int, item: object) -> Instance:
    where = f"instances[{i}]"
    if not isinstance(item, dict):
        raise ContractError(
            f'{where} must be an object {{"tracks": [...], "k": 10}}, {{"names": [...]}} or {{"name": "..."}}'
        )
    extra = sorted(set(item) - {"tracks", "names", "name", "k"})
    if extra:
        raise ContractError(f"{where} has unknown field(s) {extra}")
    if "tracks" not in item and "names" not in item and "name" not in item:
        raise ContractError(
            f"{where} needs tracks (a list of track ids), names (tracks by name) or name (the playlist's)"
        )
    name = _parse_playlist_name(where, item.get("name", ""))
    tracks = item.get("tracks", [])
    if not isinstance(tracks, list):
        raise ContractError(f"{where}.tracks must be a list of track id strings")
    names = item.get("names", [])
    if not isinstance(names, list):
        raise ContractError(
            f'{where}.names must be a list of {{"artist", "title"}} objects or "Artist - Title" strings'
        )
    if len(tracks) + len(names) > MAX_TRACKS:
        what = "tracks" if "names" not in item else "names" if "tracks" not in item else "tracks + names"
        raise ContractError(
            f"{where}.{what} has {len(tracks) + len(names)} items; the limit is {MAX_TRACKS}", status=413
        )
    for j, track in enumerate(tracks):
        if not isinstance(track, str) or not track or len(track) > MAX_TRACK_ID_CHARS:
            raise ContractError(
                f"{where}.tracks[{j}] must be a non-empty string of at most {MAX_TRACK_ID_CHARS} chars"
            )
        if not _is_unicode_text(track):
            raise ContractError(f"{where}.tracks[{j}] is not Unicode text (it holds a lone surrogate)")
    named = [_parse_name(f"{where}.names[{j}]", name) for j, name in enumerate(names)]
    k = item.get("k", DEFAULT_K)
    # bool is an int in Python; true is not a k.
    if not isinstance(k, int) or isinstance(k, bool):
        raise ContractError(f"{where}.k must be an integer")
    if not 1 <= k <= MAX_K:
        raise ContractError(f"{where}.k is {k}; it must be between 1 and {MAX_K}")
    return Instance(tracks=(*tracks, *named), k=k, name=name)


def _parse_playlist_name(where: str, name: object) -> str:
    """The playlist's name: a string of at most MAX_PLAYLIST_NAME_CHARS (ContractError otherwise)."""
    if not isinstance(name, str):
        raise ContractError(f"{where}.name must be a string (the playlist's name)")
    if len(name) > MAX_PLAYLIST_NAME_CHARS:
        raise ContractError(f"{where}.name has {len(name)} chars; the limit is {MAX_PLAYLIST_NAME_CHARS}")
    if not _is_unicode_text(name):
        raise ContractError(f"{where}.name is not Unicode text (it holds a lone surrogate)")
    return name


def _parse_name(where: str, name: object) -> str:
    """One entry of `names` -> its track id (ContractError naming the entry when malformed)."""
    if isinstance(name, str):
        if len(name) > MAX_NAME_CHARS:
            raise ContractError(f"{where} is longer than {MAX_NAME_CHARS} chars")
        try:
            artist, title = split_name(name)
        except ValueError:
            raise ContractError(
                f'{where} must be "Artist - Title" (or {{"artist": "...", "title": "..."}})'
            ) from None
    elif isinstance(name, dict):
        extra = sorted(set(name) - {"artist", "title"})
        if extra:
            raise ContractError(f"{where} has unknown field(s) {extra}")
        artist, title = name.get("artist", ""), name.get("title")
        if not isinstance(artist, str) or not isinstance(title, str):
            raise ContractError(f"{where} needs a string title and a string artist (may be empty)")
        if len(artist) > MAX_NAME_CHARS or len(title) > MAX_NAME_CHARS:
            raise ContractError(f"{where}: artist and title are limited to {MAX_NAME_CHARS} chars")
    else:
        raise ContractError(f'{where} must be {{"artist": "...", "title": "..."}} or "Artist - Title"')
    if not (_is_unicode_text(artist) and _is_unicode_text(title)):
        raise ContractError(f"{where} is not Unicode text (it holds a lone surrogate)")
    if not normalize_name(title):
        raise ContractError(f"{where} has an empty title")
    return track_id_of(artist, title)


def _is_unicode_text(text: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate such as "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def model_inputs(instances: list[Instance]) -> dict[str, list]:
    """The SavedModel's inputs: tracks and the names' keys (ml/name_tokens.py), each padded to one
    width (at least 1) with PAD, and k."""
    width = max(1, max(len(inst.tracks) for inst in instances))
    tracks = [list(inst.tracks) + [PAD] * (width - len(inst.tracks)) for inst in instances]
    keys = [inst.name_keys() for inst in instances]
    key_width = max(1, max(len(k) for k in keys))
    name_tokens = [k + [PAD] * (key_width - len(k)) for k in keys]
    return {"tracks": tracks, "k": [inst.k for inst in instances], "name_tokens": name_tokens}


def predictions(outputs: dict[str, list]) -> list[dict[str, object]]:
    """Model outputs (lists, strings as str) -> one prediction per instance, trimmed to its result count."""
    out = []
    no_name = [0] * len(outputs["n_results"])
    for ids, artists, titles, scores, n_results, n_unknown, fallback, n_tokens, n_unknown_tokens in zip(
        outputs["track_ids"],
        outputs["artists"],
        outputs["titles"],
        outputs["scores"],
        outputs["n_results"],
        outputs["n_unknown"],
        outputs["fallback"],
        outputs.get("n_name_tokens", no_name),
        outputs.get("n_unknown_tokens", no_name),
        strict=True,
    ):
        n = int(n_results)
        out.append(
            {
                "track_ids": list(ids[:n]),
                "artists": list(artists[:n]),
                "titles": list(titles[:n]),
                "scores": [float(s) for s in scores[:n]],
                "n_unknown": int(n_unknown),
                "fallback": bool(fallback),
                "n_name_tokens": int(n_tokens),
                "n_unknown_tokens": int(n_unknown_tokens),
            }
        )
    return out


# --- SageMaker TensorFlow Serving container hooks (code/inference.py) -------------------------


def input_handler(data, context):  # the container's signature
    """Request body -> TensorFlow Serving REST predict body (columnar `inputs`)."""
    check_content_type(getattr(context, "request_content_type", None))
    instances = parse_body(data.read())
    return json.dumps({"signature_name": SIGNATURE_NAME, "inputs": model_inputs(instances)})


def output_handler(response, context):  # the container's signature
    """TensorFlow Serving REST answer -> the endpoint's predictions body."""
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8", "replace"))
    outputs = json.loads(response.content)["outputs"]
    return json.dumps({"predictions": predictions(outputs)}), "application/json"
