"""The tensors of an Open Inference Protocol infer call: texts in, scores and labels out, JSON or binary.

The binary tensor data extension (Triton's ``binary_tensor_data``, the default of its Python client):
the body is the JSON header (``Inference-Header-Content-Length`` bytes), then each binary tensor's
bytes in order, sized by its ``binary_data_size`` parameter. ``BYTES`` elements are a 4-byte
little-endian length and the bytes; ``FP32`` is little-endian float32, row-major.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from samo_serve.core.postprocess import PredictOptions
from samo_serve.errors import InvalidJSON, InvalidTensor
from samo_serve.http.responses import dumps
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


@dataclass(frozen=True)
class InferCall:
    """A valid infer request: the texts, the prediction options (with every score), which outputs, binary or not."""

    texts: list[str]
    options: PredictOptions
    outputs: list[tuple[str, bool]]
    id: str | None


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
    if len(request.inputs) != 1:
        raise InvalidTensor(f"this model takes one input, `{INPUT}`; got {len(request.inputs)}")
    texts = _texts(request.inputs[0], binary)
    params = request.parameters or {}
    try:
        chosen = {k: params[k] for k in ("threshold", "top_k") if k in params}
        options = PredictOptions.model_validate({**chosen, "all_scores": True})
    except ValidationError as exc:
        where = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors(include_url=False, include_input=False))
        raise InvalidTensor(f"parameters: {where}") from None
    return InferCall(texts, options, _outputs(request), request.id)


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
