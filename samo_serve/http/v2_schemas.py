"""Request and response models of the Open Inference Protocol (KServe V2) over REST, as samo-serve speaks it.

The protocol's JSON shapes, with the tensor ``data`` typed to what this model takes (texts as ``BYTES``)
and gives (``FP32`` scores, ``BYTES`` labels). Unknown top-level fields are ignored, as the protocol's
extensions may add some.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

__all__ = [
    "V2Error",
    "V2InferRequest",
    "V2InferResponse",
    "V2InputTensor",
    "V2Live",
    "V2ModelMetadata",
    "V2ModelReady",
    "V2OutputTensor",
    "V2Parameter",
    "V2Ready",
    "V2RequestedOutput",
    "V2ServerMetadata",
    "V2TensorMetadata",
]

V2Parameter = StrictBool | StrictInt | StrictFloat | StrictStr


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore")


class V2InputTensor(_Message):
    # enum: documented (schemathesis generates them); checked by samo_serve.http.v2_tensors with a clear 400
    name: StrictStr = Field(
        description="`text`; optionally `user_id`, `occurred_at`, `entry_id` (BYTES [N] as JSON data, one per text)",
        json_schema_extra={"enum": ["text", "user_id", "occurred_at", "entry_id"]},
    )
    shape: list[StrictInt] = Field(description="[N] or [N, 1]: N texts")
    datatype: StrictStr = Field(description="`BYTES`", json_schema_extra={"enum": ["BYTES"]})
    parameters: dict[str, V2Parameter] | None = Field(
        default=None, description="`binary_data_size`: the texts are in the binary part of the body"
    )
    data: list[StrictStr | list[StrictStr]] | None = Field(
        default=None, description="the N texts, flat or nested by the shape (absent with binary data)"
    )


class V2RequestedOutput(_Message):
    name: StrictStr = Field(description="`scores` or `labels`", json_schema_extra={"enum": ["scores", "labels"]})
    parameters: dict[str, V2Parameter] | None = Field(default=None, description="`binary_data`: true or false")


class V2InferRequest(_Message):
    id: StrictStr | None = Field(default=None, description="echoed in the response")
    parameters: dict[str, V2Parameter] | None = Field(
        default=None,
        description="`threshold` (0..1, one cut-off for every label), `top_k` (>= 1), `binary_data_output`; "
        "`user_id`, `occurred_at` (ISO-8601) for every text, `entry_id` (one text only)",
    )
    inputs: list[V2InputTensor] = Field(
        min_length=1, description="`text`, and per text `user_id`, `occurred_at`, `entry_id` where given"
    )
    outputs: list[V2RequestedOutput] | None = Field(default=None, description="default: both outputs")


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, V2Parameter] | None = None
    data: list[float] | list[str] | None = Field(
        default=None, description="row-major; absent when sent as binary data (`binary_data_size`)"
    )


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class V2ModelMetadata(BaseModel):
    name: str
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, object] = Field(
        description="labels (the order of the scores' second axis), label_separator, model_version, limits"
    )


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2Error(BaseModel):
    error: str
