"""The tensors of an Open Inference Protocol infer call: texts in, scores and labels out, JSON or binary.

The binary tensor data extension (Triton's ``binary_tensor_data``, the default of its Python client):
the body is the JSON header (``Inference-Header-Content-Length`` bytes), then each binary tensor's
bytes in order, sized by its ``binary_data_size`` parameter. ``BYTES`` elements are a 4-byte
little-endian length and the bytes; ``FP32`` is little-endian float32, row-major.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from samo_serve.calls import TextEntry, repeated_entry
from samo_serve.core.postprocess import PredictOptions
from samo_serve.errors import InvalidJSON, InvalidTensor
from samo_serve.http.responses import dumps
from samo_serve.http.schemas import Authorship, BatchItem
from samo_serve.http.v2_schemas import V2InferRequest, V2InputTensor, V2Parameter

__all__ = [
    "HEADER_LENGTH",
    "INPUT",
    "LABELS",
    "LABEL_SEPARATOR",
    "SCORES",
    "InferCall",
    "encode_response",
    "parse_request",
]

INPUT, SCORES, LABELS = "text", "scores", "labels"
LABEL_SEPARATOR = ","
HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")


#: inputs beside ``text`` that carry each text's person, time and journal entry (BYTES [N], JSON data)
ENTRY_INPUTS = ("user_id", "occurred_at", "entry_id")


@dataclass(frozen=True)
class InferCall:
    """A valid infer request: the texts, the prediction options (with every score), which outputs, binary or
    not, the request's authorship (``user_id`` / ``occurred_at`` parameters) and each text's own."""

    texts: list[str]
    options: PredictOptions
    outputs: list[tuple[str, bool]]
    id: str | None
    authorship: Authorship | None = None
    entries: list[TextEntry | None] | None = None


def parse_request(body: bytes, header_length: str | None) -> InferCall:
    """The infer call in ``body``; raises InvalidJSON / InvalidTensor (400). The texts themselves are checked
    by the request function (samo_serve.service), as for every route."""
    header, binary = _split(body, header_length)
    try:
        request = V2InferRequest.model_validate_json(header)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if any(e["type"] in ("json_invalid", "json_type") for e in errors):
            raise InvalidJSON("request body is not valid JSON (UTF-8)") from None
        where = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in errors[:3])
        raise InvalidTensor(f"not an inference request: {where}") from None
    inputs = {tensor.name: tensor for tensor in request.inputs}
    if len(inputs) != len(request.inputs) or INPUT not in inputs or set(inputs) - {INPUT, *ENTRY_INPUTS}:
        names = ", ".join(f"`{t.name}`" for t in request.inputs)
        raise InvalidTensor(f"this model takes `{INPUT}` and optionally `{'`, `'.join(ENTRY_INPUTS)}`; got {names}")
    texts = _texts(inputs[INPUT], binary)
    params = request.parameters or {}
    authorship, entries = _entries(params, inputs, texts)
    try:
        chosen = {k: params[k] for k in ("threshold", "top_k") if k in params}
        options = PredictOptions.model_validate({**chosen, "all_scores": True})
    except ValidationError as exc:
        where = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_url=False, include_input=False))
        raise InvalidTensor(f"parameters: {where}") from None
    return InferCall(texts, options, _outputs(request), request.id, authorship, entries)


def _entries(
    params: dict[str, V2Parameter], inputs: dict[str, V2InputTensor], texts: list[str]
) -> tuple[Authorship | None, list[TextEntry | None] | None]:
    """The request's person and time (parameters), and each text's (inputs; an ``entry_id`` parameter
    names the one text's entry), validated as /predict/batch items are (400 naming the field)."""
    asked = {k: params[k] for k in ENTRY_INPUTS if k in params}
    entry_id = asked.pop("entry_id", None)
    authorship = _valid(Authorship, asked, "parameters") if asked else None
    columns = {name: _strings(inputs[name], len(texts)) for name in ENTRY_INPUTS if name in inputs}
    if entry_id is not None:
        if len(texts) != 1 or "entry_id" in columns:
            raise InvalidTensor("parameters: entry_id names the entry of one text; for N texts, an `entry_id` input")
        columns["entry_id"] = [entry_id]  # type: ignore[list-item]  # validated as the field's type below
    if not columns:
        return authorship, None
    items = [
        _valid(BatchItem, {"text": t, **{k: v[i] for k, v in columns.items() if v[i] != ""}}, f"[{i}]")
        for i, t in enumerate(texts)
    ]
    entries: list[TextEntry | None] = [TextEntry(i.user_id, i.occurred_at, i.entry_id) for i in items]
    if repeated_entry(entries) is not None:
        raise InvalidTensor("entry_id: an entry is in the request twice; send each entry once")
    return authorship, entries


M = TypeVar("M", bound=BaseModel)


def _valid(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        e = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(map(str, e["loc"]))
        named = f"parameters: {field}" if where == "parameters" else f"{field}{where}"
        raise InvalidTensor(f"{named}: {e['msg']}") from None


def _strings(tensor: V2InputTensor, n: int) -> list[str]:
    """An entry input's N strings ("" for none), as JSON data of the text's shape."""
    if tensor.datatype != "BYTES" or tensor.data is None or (tensor.parameters or {}).get("binary_data_size"):
        raise InvalidTensor(f"`{tensor.name}` must be BYTES with JSON data (not binary)")
    values = [v for item in tensor.data for v in ([item] if isinstance(item, str) else item)]
    if len(values) != n:
        raise InvalidTensor(f"`{tensor.name}` has {len(values)} values for {n} texts")
    return values


def _split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    if header_length is None:
        return body, memoryview(b"")
    # its digits counted before int(): a 5,000-digit value would raise past int()'s digit limit (a 500)
    sane = header_length.isascii() and header_length.isdigit() and len(header_length) <= len(str(len(body)))
    if not (sane and 0 < int(header_length) <= len(body)):
        shown = header_length if len(header_length) <= 40 else f"{header_length[:40]}... ({len(header_length)} chars)"
        raise InvalidTensor(f"{HEADER_LENGTH} must be the JSON header's size, 1..{len(body)}; got {shown!r}")
    n = int(header_length)
    return body[:n], memoryview(body)[n:]


def _texts(tensor: V2InputTensor, binary: memoryview) -> list[str]:
    if tensor.name != INPUT or tensor.datatype != "BYTES":
        raise InvalidTensor(f"this model takes `{INPUT}` (BYTES); got `{tensor.name}` ({tensor.datatype})")
    shape = tensor.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 1:
        raise InvalidTensor(f"`{INPUT}` must have shape [N] or [N, 1] with N >= 1; got {shape}")
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if tensor.data is not None or size != len(binary) or isinstance(size, bool):
            raise InvalidTensor(f"binary_data_size {size!r}, but {len(binary)} bytes follow the header (and no data)")
        texts = [_utf8(element, i) for i, element in enumerate(_bytes_elements(binary))]
    elif binary:
        raise InvalidTensor(f"{len(binary)} bytes follow the header but `{INPUT}` has no binary_data_size")
    elif tensor.data is None:
        raise InvalidTensor(f"`{INPUT}` has no data")
    else:
        texts = [t for item in tensor.data for t in ([item] if isinstance(item, str) else item)]
    if len(texts) != shape[0]:
        raise InvalidTensor(f"shape {shape} is {shape[0]} texts; the data has {len(texts)}")
    return texts


def _bytes_elements(blob: memoryview) -> list[bytes]:
    out, at = [], 0
    while at < len(blob):
        if at + _LENGTH.size > len(blob):
            raise InvalidTensor("binary BYTES data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(blob, at)
        at += _LENGTH.size
        if at + length > len(blob):
            raise InvalidTensor("binary BYTES data ends inside an element")
        out.append(bytes(blob[at : at + length]))
        at += length
    return out


def _utf8(element: bytes, i: int) -> str:
    try:
        return element.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidTensor(f"`{INPUT}[{i}]` is not UTF-8") from None


def _flag(parameters: dict[str, V2Parameter] | None, name: str, default: bool) -> bool:
    value = (parameters or {}).get(name, default)
    if not isinstance(value, bool):
        raise InvalidTensor(f"parameter {name} must be true or false; got {value!r}")
    return value


def _outputs(request: V2InferRequest) -> list[tuple[str, bool]]:
    binary = _flag(request.parameters, "binary_data_output", False)
    if not request.outputs:
        return [(SCORES, binary), (LABELS, binary)]
    out = []
    for output in request.outputs:
        if output.name not in (SCORES, LABELS):
            raise InvalidTensor(f"no output `{output.name}`: this model has `{SCORES}` and `{LABELS}`")
        if (output.parameters or {}).get("classification"):
            raise InvalidTensor(f"the classification extension is not supported: request `{LABELS}`")
        out.append((output.name, _flag(output.parameters, "binary_data", binary)))
    return out


def encode_response(
    call: InferCall, results: list[dict[str, Any]], labels: list[str], model_name: str, model_version: str
) -> tuple[bytes, dict[str, str], str]:
    """Body, headers and media type of the answer; ``results`` are the service's, with ``scores``."""
    n = len(results)
    outputs, blobs = [], []
    for name, binary in call.outputs:
        if name == SCORES:
            values: list[Any] = [r["scores"][label] for r in results for label in labels]
            tensor: dict[str, Any] = {"name": SCORES, "datatype": "FP32", "shape": [n, len(labels)]}
            blob = struct.pack(f"<{len(values)}f", *values) if binary else b""
        else:
            values = [LABEL_SEPARATOR.join(e["label"] for e in r["emotions"]) for r in results]
            tensor = {"name": LABELS, "datatype": "BYTES", "shape": [n]}
            encoded = [v.encode() for v in values]
            blob = b"".join(_LENGTH.pack(len(e)) + e for e in encoded) if binary else b""
        if binary:
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values
        outputs.append(tensor)
    payload: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if call.id is not None:
        payload["id"] = call.id
    header = dumps(payload)
    if not blobs:
        return header, {}, "application/json"
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}, "application/octet-stream"
