"""The endpoint's JSON contract, in one place for the local server and the SageMaker container.

Request  `{"instances": [{"tracks": ["<track_id>", ...], "k": 10}, ...]}`
Response `{"predictions": [{"track_ids": [...], "scores": [...], "n_unknown": 0, "fallback": false}]}`

Standard library only: `ml export` copies this file into `model.tar.gz` as `code/inference.py`,
where the SageMaker TensorFlow Serving container calls `input_handler` / `output_handler` around
TensorFlow Serving's REST predict API. `ml serve` imports the same functions, so both endpoints
validate and answer alike.
"""

import json
from typing import NamedTuple

SIGNATURE_NAME = "serving_default"
# Padding in the model's [batch, max_tracks] string input; never a track id.
PAD = ""

MAX_BODY_BYTES = 1 << 20  # 1 MiB: e.g. 64 playlists of 800 track ids, or one of 5,000 and more
MAX_INSTANCES = 64
MAX_TRACKS = 5000  # real playlists run to thousands of tracks (the Kaggle file's longest: >10,000)
MAX_K = 500
DEFAULT_K = 10
MAX_TRACK_ID_CHARS = 128
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
        raise ContractError(f'{where} must be an object {{"tracks": [...], "k": 10}}')
    extra = sorted(set(item) - {"tracks", "k"})
    if extra:
        raise ContractError(f"{where} has unknown field(s) {extra}")
    tracks = item.get("tracks")
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
    k = item.get("k", DEFAULT_K)
    # bool is an int in Python; true is not a k.
    if not isinstance(k, int) or isinstance(k, bool):
        raise ContractError(f"{where}.k must be an integer")
    if not 1 <= k <= MAX_K:
        raise ContractError(f"{where}.k is {k}; it must be between 1 and {MAX_K}")
    return Instance(tracks=tuple(tracks), k=k)


def _is_unicode_text(text: str) -> bool:
    """False for a string JSON can carry but UTF-8 cannot (a lone surrogate such as "\\ud800")."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def model_inputs(instances: list[Instance]) -> dict[str, list]:
    """The SavedModel's inputs: tracks padded to one width (at least 1) with PAD, and k."""
    width = max(1, max(len(inst.tracks) for inst in instances))
    tracks = [list(inst.tracks) + [PAD] * (width - len(inst.tracks)) for inst in instances]
    return {"tracks": tracks, "k": [inst.k for inst in instances]}


def predictions(outputs: dict[str, list]) -> list[dict[str, object]]:
    """Model outputs (lists, ids as str) -> one prediction per instance, trimmed to its result count."""
    out = []
    for ids, scores, n_results, n_unknown, fallback in zip(
        outputs["track_ids"],
        outputs["scores"],
        outputs["n_results"],
        outputs["n_unknown"],
        outputs["fallback"],
        strict=True,
    ):
        n = int(n_results)
        out.append(
            {
                "track_ids": list(ids[:n]),
                "scores": [float(s) for s in scores[:n]],
                "n_unknown": int(n_unknown),
                "fallback": bool(fallback),
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
