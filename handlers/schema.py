"""Request fields declared once, with their limits; validation that names the offending field.

Each endpoint declares a tuple of `Field`s. The same declaration validates requests, fills in
defaults, and renders the field tables in pages under docs/ (`python -m handlers.api_docs`) and
docs/openapi.json (`python -m handlers.openapi`), so the docs cannot drift from what the server
enforces. Nothing here imports TorchServe or torch, so the
parsing can be fuzzed quickly and reused by another server.
"""

from __future__ import annotations

import dataclasses
import json
import math
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()

# Characters a text field may contain besides printable ones: line breaks and tabs are text,
# other control characters (NUL, escape sequences, ...) are almost always a client bug.
ALLOWED_CONTROL = frozenset("\n\r\t")
# Our limit on a whole body, answered with a JSON 413 naming "body". TorchServe's own cut-off
# (max_request_size in serving/config.properties) sits well above it, because TorchServe's
# bare 413 reaches few clients: it closes the connection while a client that sent
# "Connection: close" (Python's urllib) is still sending, and that client sees a reset.
MAX_BODY_BYTES = 1 << 20


class RequestError(Exception):
    """A problem with one request: answered with ``status`` and a JSON body naming the field."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": f"{self.field}: {self.message}", "field": self.field, "code": self.status}


@dataclass(frozen=True)
class Field:
    """One request field. ``kind`` is str, int, float, bool, list (of str), dict (an object
    of numbers, each within ``minimum``/``maximum``; at most ``max_length`` entries) or "ids"
    (a list of token ids: integers >= 0)."""

    name: str
    kind: Any
    default: Any = REQUIRED
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    max_length: int | None = None  # characters of a string, or items of a list
    item_max_length: int | None = None  # characters of each list item
    min_length: int = 0
    nullable: bool = False
    blank_ok: bool = False  # whitespace-only text is a valid value
    single_as_list: bool = False  # accept "x" for ["x"] (stop strings, as OpenAI's API does)
    example: Any = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def limits(self) -> str:
        """Human-readable limits, for the generated API docs."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {_number(self.minimum)}")
        if self.maximum is not None:
            parts.append(f"<= {_number(self.maximum)}")
        if self.min_length or self.max_length is not None:
            unit = {list: "items", dict: "entries", "ids": "ids"}.get(self.kind, "characters")
            low = (
                "non-blank, " if self.min_length and self.kind is str and not self.blank_ok else ""
            )
            if self.min_length and self.kind is str and self.blank_ok:
                low = "non-empty, "
            if self.kind is list and self.min_length:
                low = f"at least {self.min_length} item, "
            high = f"at most {self.max_length} {unit}" if self.max_length is not None else ""
            parts.append((low + high).rstrip(", "))
        if self.item_max_length is not None:
            parts.append(f"each at most {self.item_max_length} characters")
        return ", ".join(parts)


def optional(name: str, kind: Any, doc: str, **limits: Any) -> Field:
    """A field a request may leave out or send as null, and then has none: the usual shape of
    an opt-in setting (a seed, a session, log-probabilities), declared without repeating it."""
    return Field(name, kind, None, doc, nullable=True, **limits)


@dataclass(frozen=True)
class Endpoint:
    """One documented route of a model, declared beside its fields in the model's api module:
    the docs/api.md table between ``<!-- api:<marker> -->`` markers (`handlers.api_docs`) and the
    OpenAPI path (`handlers.openapi`) are both rendered from it."""

    marker: str  # the docs/api.md marker, and the endpoint's short name
    path: str  # after /predictions/<model>; "" for the model's own route
    summary: str
    request: str = ""  # the OpenAPI schema name of its JSON body ("" for a GET)
    fields: Sequence[Field] = ()
    errors: Mapping[str, str] = dataclasses.field(default_factory=dict)  # statuses beyond 400, 503
    method: str = "post"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# What a 400 about an unreadable body tells the client to send instead.
SEND_JSON = "send a JSON object with Content-Type: application/json"


def decode_body(raw: Any) -> Any:
    """Turn what TorchServe hands over (already-decoded JSON, text, or bytes) into a value.

    TorchServe decodes ``application/json`` and ``text/*`` bodies itself but forwards raw bytes
    when that fails or for other content types, so bytes are decoded here: UTF-8 first, then
    JSON if the body looks like JSON (whatever its content type said: ``text/plain`` too),
    else plain text. Form fields (curl's default type) are read by ``handlers.torchserve``.
    """
    if raw is None or (isinstance(raw, (bytes, bytearray, str)) and len(raw) == 0):
        raise RequestError("body", "is empty")
    if isinstance(raw, (bytes, bytearray, str)) and len(raw) > MAX_BODY_BYTES:
        size = f"{len(raw):,} {'bytes' if isinstance(raw, (bytes, bytearray)) else 'characters'}"
        raise RequestError("body", f"is {size}; the limit is {MAX_BODY_BYTES:,} bytes", 413)
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError("body", f"is not valid UTF-8 (byte {exc.start})") from None
    if isinstance(raw, str) and raw.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RequestError("body", f"is not valid JSON ({exc.msg} at {exc.pos})") from None
    return raw


@contextmanager
def body_errors(content_type: str) -> Iterator[None]:
    """A 400 about the body as a whole raised inside also names the content type received and
    says what to send, since a wrong content type is the usual cause."""
    try:
        yield
    except RequestError as error:
        if error.field != "body" or error.status != 400:
            raise
        received = f"Content-Type: {content_type}" if content_type else "no Content-Type"
        raise RequestError("body", f"{error.message} (received {received}); {SEND_JSON}") from None


def check_text(
    name: str, value: str, min_length: int, max_length: int | None, blank_ok: bool = False
) -> str:
    """Validate one text value: length bounds and no stray control characters.

    Whitespace counts towards ``min_length`` only where ``blank_ok`` (a stop string "\n\n" or
    a prompt "\n" mean something; a blank sentence to classify does not)."""
    if len(value if blank_ok else value.strip()) < min_length:
        raise RequestError(name, "must not be empty" if min_length == 1 else "is too short")
    if max_length is not None and len(value) > max_length:
        raise RequestError(name, f"is {len(value)} characters long; the limit is {max_length}")
    for position, char in enumerate(value):
        if char not in ALLOWED_CONTROL and unicodedata.category(char) in ("Cc", "Cs"):
            raise RequestError(name, f"contains control character U+{ord(char):04X} at {position}")
    return value


def _check_number(spec: Field, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(spec.name, f"must be a number, got {type(value).__name__}")
    if spec.kind is int and not (isinstance(value, int) or float(value).is_integer()):
        raise RequestError(spec.name, "must be an integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError(spec.name, "must be a finite number")
    low, high = spec.minimum, spec.maximum
    too_low = low is not None and (value <= low if spec.exclusive_minimum else value < low)
    if too_low or (high is not None and value > high):
        raise RequestError(spec.name, f"is {value}; allowed: {spec.limits()}")
    return int(value) if spec.kind is int else float(value)


def _check_list(spec: Field, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise RequestError(spec.name, f"must be a list of strings, got {type(value).__name__}")
    if len(value) < spec.min_length:
        raise RequestError(spec.name, f"must hold at least {spec.min_length} item(s)")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise RequestError(spec.name, f"holds {len(value)} items; the limit is {spec.max_length}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise RequestError(f"{spec.name}[{index}]", "must be a string")
        check_text(f"{spec.name}[{index}]", item, 1, spec.item_max_length, spec.blank_ok)
    return value


def _check_dict(spec: Field, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise RequestError(spec.name, f"must be an object, got {type(value).__name__}")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise RequestError(spec.name, f"has {len(value)} entries; the limit is {spec.max_length}")
    entry = dataclasses.replace(spec, max_length=None)
    return {
        key: _check_number(dataclasses.replace(entry, name=f"{spec.name}[{key}]"), number)
        for key, number in value.items()
    }


def check_ids(name: str, value: Any, min_length: int, max_length: int | None) -> list[int]:
    """A list of token ids (integers >= 0; the vocabulary's size is checked by its model)."""
    if not isinstance(value, list):
        raise RequestError(name, f"must be a list of token ids, got {type(value).__name__}")
    if len(value) < min_length:
        raise RequestError(name, f"must hold at least {min_length} token id(s)")
    if max_length is not None and len(value) > max_length:
        raise RequestError(name, f"holds {len(value)} token ids; the limit is {max_length}")
    for index, token in enumerate(value):
        if isinstance(token, bool) or not isinstance(token, int) or token < 0:
            raise RequestError(f"{name}[{index}]", "must be a token id (an integer >= 0)")
    return value


def check_field(spec: Field, value: Any) -> Any:
    if value is None and spec.nullable:
        return None
    if spec.kind is str:
        if not isinstance(value, str):
            raise RequestError(spec.name, f"must be a string, got {type(value).__name__}")
        return check_text(spec.name, value, spec.min_length, spec.max_length, spec.blank_ok)
    if spec.kind in (int, float):
        return _check_number(spec, value)
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise RequestError(spec.name, "must be true or false")
        return value
    if spec.kind is list:
        if isinstance(value, str) and spec.single_as_list:
            value = [value]
        return _check_list(spec, value)
    if spec.kind is dict:
        return _check_dict(spec, value)
    if spec.kind == "ids":
        return check_ids(spec.name, value, spec.min_length, spec.max_length)
    raise TypeError(f"unsupported field kind {spec.kind!r}")


def validate(payload: Any, fields: Sequence[Field]) -> dict[str, Any]:
    """Check a decoded JSON object against ``fields``; returns every field with defaults filled."""
    if not isinstance(payload, Mapping):
        raise RequestError("body", f"must be a JSON object, got {type(payload).__name__}")
    known = {spec.name for spec in fields}
    for name in payload:
        if name not in known:
            raise RequestError(
                str(name), f"is not a known field (known: {', '.join(sorted(known))})"
            )
    values: dict[str, Any] = {}
    for spec in fields:
        if spec.name in payload:
            values[spec.name] = check_field(spec, payload[spec.name])
        elif spec.required:
            raise RequestError(spec.name, "is required")
        else:
            values[spec.name] = spec.default
    return values


def markdown_table(fields: Sequence[Field]) -> str:
    """The API reference table for one endpoint, generated from its declaration."""
    rows = ["| field | type | default | limits | meaning |", "|---|---|---|---|---|"]
    for spec in fields:
        kinds = {list: "list of strings", dict: "object of numbers", "ids": "list of token ids"}
        kind = kinds.get(spec.kind, getattr(spec.kind, "__name__", spec.kind))
        default = "required" if spec.required else json.dumps(spec.default)
        rows.append(f"| `{spec.name}` | {kind} | {default} | {spec.limits()} | {spec.doc} |")
    return "\n".join(rows)
