"""The OpenAPI 3.1 document of the HTTP API, generated from the same field declarations that
validate requests (handlers/*_api.py), so the document cannot drift from what is enforced.

    python -m handlers.openapi > docs/openapi.json     # tests check the committed copy
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handlers import lm_api, openai_api, sentiment_api
from handlers.schema import Field

JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def field_schema(spec: Field) -> dict[str, Any]:
    """JSON Schema of one field, with the limits `handlers.schema.validate` enforces."""
    if spec.kind is list:
        items: dict[str, Any] = {"type": "string", "minLength": 1}
        if spec.item_max_length is not None:
            items["maxLength"] = spec.item_max_length
        schema: dict[str, Any] = {"type": "array", "items": items}
        if spec.min_length:
            schema["minItems"] = spec.min_length
        if spec.max_length is not None:
            schema["maxItems"] = spec.max_length
        if spec.single_as_list:
            schema = {"oneOf": [items, schema]}
    else:
        schema = {"type": JSON_TYPES[spec.kind]}
        if spec.kind is str:
            schema["minLength"] = spec.min_length
            if spec.max_length is not None:
                schema["maxLength"] = spec.max_length
        if spec.minimum is not None:
            key = "exclusiveMinimum" if spec.exclusive_minimum else "minimum"
            schema[key] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
    if spec.nullable:
        schema = {"oneOf": [schema, {"type": "null"}]}
    if not spec.required:
        schema["default"] = spec.default
    schema["description"] = spec.doc
    if spec.example is not None:
        schema["examples"] = [spec.example]
    return schema


def object_schema(fields: Sequence[Field]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [spec.name for spec in fields if spec.required],
        "properties": {spec.name: field_schema(spec) for spec in fields},
    }


def _post(summary: str, request: str, errors: dict[str, str]) -> dict[str, Any]:
    body = {"$ref": f"#/components/schemas/{request}"}
    responses: dict[str, Any] = {"200": {"description": "the answer (or a stream of chunks)"}}
    for status, why in errors.items():
        responses[status] = {
            "description": why,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
        }
    }


def document() -> dict[str, Any]:
    bad = {"400": "a field is invalid: the body names it", "503": "the server is stopping"}
    sessions = {**bad, "404": "unknown session", "409": "session busy", "410": "session expired"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rnn-serve", "version": "1.0"},
        "security": [{"bearer": []}],
        "paths": {
            "/predictions/sentiment": _post("Classify sentiment", "SentimentRequest", bad),
            "/predictions/lm": _post("Generate text (ours)", "GenerationRequest", sessions),
            "/predictions/lm/1.0/v1/completions": _post(
                "Generate text (OpenAI completions)", "CompletionRequest", bad
            ),
            "/predictions/lm/1.0/v1/models": {
                "get": {"summary": "OpenAI model list", "responses": {"200": {"description": ""}}}
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "SentimentRequest": object_schema(sentiment_api.FIELDS),
                "GenerationRequest": object_schema(lm_api.FIELDS),
                "CompletionRequest": object_schema(openai_api.FIELDS),
                "Error": {
                    "type": "object",
                    "description": "ours; the OpenAI route answers {'error': {...}} instead",
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string"},
                        "code": {"type": "integer"},
                    },
                },
            },
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
