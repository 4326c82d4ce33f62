"""The error hierarchy: codes, HTTP statuses, JSON bodies, pickling (errors cross Ray handles), and how
any exception maps to one of them at the HTTP edge."""

from __future__ import annotations

import pickle

import pytest
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from samo_serve.errors import (
    BatchTooLarge,
    BodyTooLarge,
    ClientClosed,
    EmptyText,
    InvalidJSON,
    MethodNotAllowed,
    ModelUnavailable,
    NotFound,
    SamoError,
    TextTooLong,
    UnsupportedMediaType,
    ValidationFailed,
)
from samo_serve.http.errors import as_samo_error

CASES = [
    (SamoError, "INTERNAL", 500),
    (InvalidJSON, "INVALID_JSON", 400),
    (UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", 415),
    (ValidationFailed, "VALIDATION_ERROR", 422),
    (EmptyText, "EMPTY_TEXT", 422),
    (TextTooLong, "TEXT_TOO_LONG", 413),
    (BatchTooLarge, "BATCH_TOO_LARGE", 413),
    (BodyTooLarge, "BODY_TOO_LARGE", 413),
    (NotFound, "NOT_FOUND", 404),
    (MethodNotAllowed, "METHOD_NOT_ALLOWED", 405),
    (ClientClosed, "CLIENT_CLOSED", 499),
    (ModelUnavailable, "MODEL_UNAVAILABLE", 503),
]
IDS = [cls.__name__ for cls, _, _ in CASES]


@pytest.mark.parametrize(("cls", "code", "status"), CASES, ids=IDS)
def test_code_and_status(cls: type[SamoError], code: str, status: int) -> None:
    err = cls("boom")
    assert isinstance(err, SamoError)
    assert isinstance(err, Exception)
    assert err.code == code
    assert err.http_status == status


def test_empty_text_is_a_validation_failure() -> None:
    assert issubclass(EmptyText, ValidationFailed)


@pytest.mark.parametrize(("cls", "code", "status"), CASES, ids=IDS)
def test_to_dict_without_details(cls: type[SamoError], code: str, status: int) -> None:
    assert cls("msg").to_dict("rid-1") == {"error": {"code": code, "message": "msg", "request_id": "rid-1"}}


def test_to_dict_with_details() -> None:
    details = [{"loc": ["text"], "msg": "bad", "type": "string_type"}]
    body = ValidationFailed("no", details).to_dict("r")
    assert body["error"]["details"] == details
    assert body["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(("cls", "code", "status"), CASES, ids=IDS)
def test_pickle_round_trip(cls: type[SamoError], code: str, status: int) -> None:
    err = cls("message", {"k": [1, 2]})
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert back.message == "message"
    assert back.details == {"k": [1, 2]}
    assert back.code == code
    assert back.http_status == status


@pytest.mark.parametrize(
    ("exc", "code", "status", "headers"),
    [
        (HTTPException(404), "NOT_FOUND", 404, {}),
        (HTTPException(405, headers={"Allow": "POST"}), "METHOD_NOT_ALLOWED", 405, {"Allow": "POST"}),
        (HTTPException(418), "HTTP_ERROR", 418, {}),
        (ClientDisconnect(), "CLIENT_CLOSED", 499, {}),
        (KeyError("secret"), "INTERNAL", 500, {}),
    ],
    ids=["404", "405", "other-status", "disconnect", "unexpected"],
)
def test_any_exception_maps_to_a_contract_error(
    exc: Exception, code: str, status: int, headers: dict[str, str]
) -> None:
    error = as_samo_error(exc, "rid")
    assert (error.code, error.http_status, error.headers) == (code, status, headers)
    assert "secret" not in error.message


def test_a_samo_error_maps_to_itself() -> None:
    err = ModelUnavailable("down", headers={"Retry-After": "1"})
    assert as_samo_error(err) is err
