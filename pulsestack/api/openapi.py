"""The OpenAPI 3.1 document, generated from the app's operations.

Every operation is an `Operation` (api/routing.py) on the app's router: its
path, method, body, query, header and answer models, and its error
statuses. This module walks the router and turns them into the document,
with the models' JSON Schemas (pydantic) under components/schemas. Served
at GET /api/openapi.json and printed by `pulsestack openapi`; both are the
same text.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..models.resources import ErrorBody
from .routing import Operation, Routes

routes = Routes("meta")
DOCUMENT = web.AppKey("openapi_document", bytes)

REF = "#/components/schemas/{model}"
PATH_PARAMETERS = {
    "slug": {"type": "string", "description": "The workspace's slug."},
    "user_id": {"type": "string", "format": "uuid", "description": "A member's user id."},
    "notification_id": {"type": "string", "format": "uuid", "description": "A notification's id."},
    "name": {"type": "string", "description": "A file of the browser client, e.g. `pulsestack.js`."},
}
INFO = {
    "title": "PulseStack",
    "version": __version__,
    "summary": "Multi-tenant in-app notifications.",
    "description": (
        "JSON in and out. Authenticated operations take `Authorization: Bearer <token>`. Every error is "
        "`{\"error\": {\"code\", \"message\", \"details\"}}`. Timestamps are ISO-8601 UTC with `Z` at microsecond "
        "precision; ids are UUIDs. Request bodies are limited to 64 KiB and may not carry fields an operation "
        "does not declare. Every response carries `X-Request-Id`. The websocket protocol is in docs/websocket.md, "
        "the whole API with examples in docs/api.md."
    ),
    "license": {"name": "MIT", "identifier": "MIT"},
}
REQUEST_ID = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}


@routes.get("/api/openapi.json", auth=False, database=False, answer=None)
async def openapi(request: web.Request) -> web.Response:
    """This document"""
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


def operations(app: web.Application) -> list[Operation]:
    """Every operation the app routes, in the order they were added."""
    found = []
    for route in app.router.routes():
        op = getattr(route.handler, "__self__", None)
        if isinstance(op, Operation) and route.method == op.method:
            found.append(op)
    return found


def document(app: web.Application) -> dict[str, Any]:
    ops = operations(app)
    refs, schemas = _schemas(ops)
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in ops)],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "A token from register or login."}},
            "headers": {
                "X-Request-Id": {"description": "This request's id (yours, if you sent one); quote it when reporting a problem.",
                                 "required": True, "schema": {"type": "string"}},
            },
        },
    }


def render(app: web.Application) -> bytes:
    return json.dumps(document(app), indent=2, ensure_ascii=False).encode() + b"\n"


Refs = dict[type[Any], dict[str, Any]]


def _schemas(ops: list[Operation]) -> tuple[Refs, dict[str, Any]]:
    """({model: its $ref}, the JSON Schemas of every model the operations use).
    Bodies are read (validation mode), answers written (serialization mode);
    no model is both."""
    used: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
    for op in ops:
        if op.body is not None:
            used.append((op.body, "validation"))
        if op.answer is not None:
            used.append((op.answer, "serialization"))
    keys, defs = models_json_schema(list(dict.fromkeys(used)), ref_template=REF)
    return {model: ref for (model, _), ref in keys.items()}, defs.get("$defs", {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
              for name in re.findall(r"{(\w+)}", op.path)]
    for model, where in ((op.query, "query"), (op.headers, "header")):
        if model is None:
            continue
        schema = model.model_json_schema(ref_template=REF)  # its fields become parameters
        assert "$defs" not in schema, f"{model.__name__}: parameters are plain values"
        for name, prop in schema["properties"].items():
            prop = dict(prop)
            description = prop.pop("description", None)
            if "anyOf" in prop:  # `X | None = None`: a parameter is left out, never null
                prop.update(next(s for s in prop.pop("anyOf") if s.get("type") != "null"))
                prop.pop("default", None)
            params.append({"name": name, "in": where, "required": name in schema.get("required", []), "schema": prop,
                           **({"description": description} if description else {})})
    return params


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op.name, "tags": [op.tag], "summary": op.summary}
    if op.description:
        out["description"] = op.description
    if params := _parameters(op):
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": not op.body_optional,
                              "content": {"application/json": {"schema": refs[op.body]}}}
    out["security"] = [{"bearerAuth": []}] if op.auth else []
    out["responses"] = {str(op.status): _answer(op, refs)}
    for status, description in op.error_statuses().items():
        out["responses"][str(status)] = {
            "description": description,
            "headers": {**REQUEST_ID, **_error_headers(status)},
            "content": {"application/json": {"schema": refs[ErrorBody]}},
        }
    return out


def _answer(op: Operation, refs: Refs) -> dict[str, Any]:
    if op.status == 101:
        return {"description": "Switching Protocols: the websocket is open."}
    answer: dict[str, Any] = {"description": op.summary, "headers": dict(REQUEST_ID)}
    for name, description in op.answer_headers.items():
        answer["headers"][name] = {"description": description, "schema": {"type": "string"}}
    if op.answer is not None:
        answer["content"] = {"application/json": {"schema": refs[op.answer]}}
    elif op.answer_media:  # files: HTML, scripts, styles
        answer["content"] = {media: {"schema": {"type": "string"}} for media in op.answer_media}
    elif op.status != 204:  # the document itself
        answer["content"] = {"application/json": {"schema": {"type": "object"}}}
    return answer


def _error_headers(status: int) -> dict[str, Any]:
    if status == 429:
        return {"Retry-After": {"description": "Whole seconds to wait.", "required": True, "schema": {"type": "integer"}}}
    if status == 401:
        return {"WWW-Authenticate": {"description": "The bearer challenge.", "schema": {"type": "string"}}}
    return {}
