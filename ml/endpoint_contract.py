"""The endpoint's JSON contract, in one place for the local server and the SageMaker container.

Request  `{"instances": [{"tracks": ["<track_id>", ...], "name": "summer chill", "k": 10}, ...]}`
         (`tracks`, `name` or both; a name alone is a cold start, docs/cold_start.md)
Response `{"predictions": [{"track_ids": [...], "scores": [...], "n_unknown": 0, "fallback": false,
         "n_name_tokens": 2}]}`  (n_name_tokens: the name's tokens the model knows)

Standard library only: `ml export` copies this file into `model.tar.gz` as `code/inference.py`,
and `ml/name_tokens.py` beside it as `code/name_tokens.py`, where the SageMaker TensorFlow Serving
container calls `input_handler` / `output_handler` around TensorFlow Serving's REST predict API.
`ml serve` imports the same functions, so both endpoints validate, tokenize and answer alike.
"""

import json
from typing import NamedTuple

try:  # in the package (ml serve, tests)
    from ml.name_tokens import NAME_PREFIX, name_keys
except ImportError:  # code/inference.py in the container: code/name_tokens.py, loaded by path
    import importlib.util
    import os

    _spec = importlib.util.spec_from_file_location(
        "name_tokens", os.path.join(os.path.dirname(os.path.abspath(__file__)), "name_tokens.py")
    )
    _name_tokens = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_name_tokens)
    NAME_PREFIX, name_keys = _name_tokens.NAME_PREFIX, _name_tokens.name_keys

SIGNATURE_NAME = "serving_default"
# Padding in the model's [batch, max_tracks] string input; never a track id.
PAD = ""

MAX_BODY_BYTES = 1 << 20  # 1 MiB: e.g. 64 playlists of 800 track ids, or one of 5,000 and more
MAX_INSTANCES = 64
MAX_TRACKS = 5000  # real playlists run to thousands of tracks (the Kaggle file's longest: >10,000)
MAX_K = 500
DEFAULT_K = 10
MAX_TRACK_ID_CHARS = 128
MAX_NAME_CHARS = 200
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
    tracks: tuple[str, ...]
    k: int
    name: str = ""


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
        raise ContractError(f'{where} must be an object {{"tracks": [...], "name": "...", "k": 10}}')
    extra = sorted(set(item) - {"tracks", "name", "k"})
    if extra:
        raise ContractError(f"{where} has unknown field(s) {extra}")
    if "tracks" not in item and "name" not in item:
        raise ContractError(f'{where} needs "tracks" (a list of track ids), "name" (a string), or both')
    tracks = item.get("tracks", [])
    if not isinstance(tracks, list):
        raise ContractError(f"{where}.tracks must be a list of track id strings")
    if len(tracks) > MAX_TRACKS:
        raise ContractError(f"{where}.tracks has {len(tracks)} items; the limit is {MAX_TRACKS}", status=413)
    for j, track in enumerate(tracks):
        if not isinstance(track, str) or not track or len(track) > MAX_TRACK_ID_CHARS:
            raise ContractError(
                f"{where}.tracks[{j}] must be a non-empty string of at most {MAX_TRACK_ID_CHARS} chars"
            )
        if not _is_unicode_text(track):
            raise ContractError(f"{where}.tracks[{j}] is not Unicode text (it holds a lone surrogate)")
    name = item.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise ContractError(f"{where}.name must be a string of at most {MAX_NAME_CHARS} chars")
    if not _is_unicode_text(name):
        raise ContractError(f"{where}.name is not Unicode text (it holds a lone surrogate)")
    k = item.get("k", DEFAULT_K)
    # bool is an int in Python; true is not a k.
    if not isinstance(k, int) or isinstance(k, bool):
        raise ContractError(f"{where}.k must be an integer")
    if not 1 <= k <= MAX_K:
        raise ContractError(f"{where}.k is {k}; it must be between 1 and {MAX_K}")
    return Instance(tracks=tuple(tracks), k=k, name=name)


def _is_unicode_text(text: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate such as "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def model_inputs(instances: list[Instance]) -> dict[str, list]:
    """The SavedModel's inputs: tracks and the names' token keys (ml/name_tokens.py), each padded
    to one width (at least 1) with PAD, and k."""
    width = max(1, max(len(inst.tracks) for inst in instances))
    tracks = [list(inst.tracks) + [PAD] * (width - len(inst.tracks)) for inst in instances]
    keys = [name_keys(inst.name) for inst in instances]
    name_width = max(1, max(len(k) for k in keys))
    names = [k + [PAD] * (name_width - len(k)) for k in keys]
    return {"tracks": tracks, "k": [inst.k for inst in instances], "names": names}


def predictions(outputs: dict[str, list]) -> list[dict[str, object]]:
    """Model outputs (lists, ids as str) -> one prediction per instance, trimmed to its result count."""
    out = []
    n_names = outputs.get("n_name_tokens") or [0] * len(outputs["n_results"])
    for ids, scores, n_results, n_unknown, fallback, n_name in zip(
        outputs["track_ids"],
        outputs["scores"],
        outputs["n_results"],
        outputs["n_unknown"],
        outputs["fallback"],
        n_names,
        strict=True,
    ):
        n = int(n_results)
        out.append(
            {
                "track_ids": list(ids[:n]),
                "scores": [float(s) for s in scores[:n]],
                "n_unknown": int(n_unknown),
                "fallback": bool(fallback),
                "n_name_tokens": int(n_name),
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
