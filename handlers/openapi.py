"""The OpenAPI 3.1 document of the HTTP API, generated from the same field declarations that
validate requests (the `Endpoint`s of each model handlers/registry.py declares), so the
document cannot drift from what is enforced.

    python -m handlers.openapi > docs/openapi.json     # tests check the committed copy
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from handlers.registry import MODELS
from handlers.schema import Endpoint, Field

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
    elif spec.kind == "ids":
        schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
        if spec.max_length is not None:
            schema["maxItems"] = spec.max_length
    elif spec.kind is dict:
        values = {"type": "number", "minimum": spec.minimum, "maximum": spec.maximum}
        schema = {"type": "object", "additionalProperties": values}
        if spec.max_length is not None:
            schema["maxProperties"] = spec.max_length
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


def operation(endpoint: Endpoint) -> dict[str, Any]:
    """One path's operation: its body schema, and an Error body for each failure status."""
    if endpoint.method == "get":
        return {"get": {"summary": endpoint.summary, "responses": {"200": {"description": ""}}}}
    errors = {**COMMON_ERRORS, **endpoint.errors}
    body = {"$ref": f"#/components/schemas/{endpoint.request}"}
    responses: dict[str, Any] = {"200": {"description": "the answer (or a stream of chunks)"}}
    for status, why in errors.items():
        responses[status] = {
            "description": why,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {
        endpoint.method: {
            "summary": endpoint.summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": responses,
        }
    }


COMMON_ERRORS = {"400": "a field is invalid: the body names it", "503": "the server is stopping"}
ERROR_SCHEMA = {
    "type": "object",
    "description": "ours; the OpenAI route answers {'error': {...}} instead",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string"},
        "code": {"type": "integer"},
    },
}


def document() -> dict[str, Any]:
    routes = [(model.name, endpoint) for model in MODELS for endpoint in model.endpoints()]
    schemas = {e.request: object_schema(e.fields) for _, e in routes if e.request}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rnn-serve", "version": "1.0"},
        "security": [{"bearer": []}],
        "paths": {f"/predictions/{name}{e.path}": operation(e) for name, e in routes},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**schemas, "Error": ERROR_SCHEMA},
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    print(render(), end="")
