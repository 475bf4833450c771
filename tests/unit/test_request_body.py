"""Bodies as TorchServe hands them to a handler, for each way a client may send them: JSON
whatever the content type, text, form fields, and the 400 for what a form decoder mangled."""

from __future__ import annotations

import pytest

from handlers.schema import SEND_JSON, RequestError
from handlers.torchserve import FORM_LOST, read_request, request_body

FORM = "application/x-www-form-urlencoded"


class Context:
    """The part of TorchServe's context that carries request headers (names as sent)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def get_all_request_header(self, idx: int) -> dict[str, object]:
        return {"body": {"content-type": "ignored"}, **self.headers}


def read(row: dict, headers: dict[str, str]) -> object:
    return read_request(Context(headers), 0, row, lambda body: body)


@pytest.mark.parametrize(
    "raw", [b'{"text": "x"}', '{"text": "x"}', bytearray(b' {"text": "x"}'), {"text": "x"}]
)
def test_json_is_json_whatever_the_content_type(raw):
    for content_type in ("application/json", "text/plain", "application/octet-stream", ""):
        assert read({"body": raw}, {"Content-Type": content_type}) in ({"text": "x"},)


def test_plain_text_stays_text():
    assert read({"body": b"a fine film"}, {"content-type": "text/plain"}) == "a fine film"


def test_form_fields_are_an_object_of_strings():
    row = {"text": bytearray(b"a fine film"), "explain": bytearray(b"")}
    assert request_body(row, FORM, "24") == {"text": "a fine film", "explain": ""}


@pytest.mark.parametrize(
    "row, length",
    [
        ({}, "20"),  # '{"prompt": "ROMEO:"}': no "=", so the decoder kept nothing
        ({'{"text": "a ': bytearray(b" b "), ' c"}': bytearray(b"")}, "21"),
    ],
)
def test_json_sent_as_a_form_is_refused_saying_how_to_send_it(row, length):
    with pytest.raises(RequestError) as refused:
        read(row, {"Content-Type": FORM, "Content-Length": length})
    error = refused.value
    assert error.status == 400 and error.field == "body"
    assert FORM_LOST in error.message
    assert f"received Content-Type: {FORM}" in error.message and error.message.endswith(SEND_JSON)


def test_an_empty_body_says_so_and_names_the_type():
    with pytest.raises(RequestError) as refused:
        read({}, {"Content-Type": FORM, "Content-Length": "0"})
    assert "is empty" in refused.value.message and FORM in refused.value.message
    with pytest.raises(RequestError) as refused:
        read({"body": b""}, {})
    assert "(received no Content-Type)" in refused.value.message


def test_field_errors_keep_their_own_message():
    def parse(body):
        raise RequestError("text", "must not be empty")

    with pytest.raises(RequestError) as refused:
        read_request(Context({"Content-Type": "application/json"}), 0, {"body": b"{}"}, parse)
    assert refused.value.field == "text" and refused.value.message == "must not be empty"
