"""Operations: an aiohttp route plus what it reads and answers, declared once.

    routes = Routes("workspaces")

    @routes.post("/api/workspaces", body=NewWorkspace, answer=MyWorkspace, status=201,
                 errors={409: "the slug is taken"})
    async def create_workspace(request: web.Request, body: NewWorkspace) -> MyWorkspace:
        ...

The declaration does the work and describes it: the wrapper authenticates
(`auth=True`, the default: 401 before anything else), parses and validates
the body, query string and headers into the declared models and passes
them in as `body=`, `query=` and `headers=`, then serialises the model the
handler returns with `status` (a handler of a 204 returns None). The same
`Operation` is what api/openapi.py turns into the OpenAPI document, so the
document cannot describe anything the server does not do.

`errors` lists the operation's own error statuses; the ones every operation
of a kind can answer are added from what it declares (401 with auth, 400
always and for more reasons with a body, query or header, 413 and 422 with a
body, 404 with a path parameter, 503 when it uses the database).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ..appkeys import DB, SESSION_CACHE
from ..services import accounts
from ..services.accounts import Principal
from .jsonio import parse_headers, parse_query, read_json, respond

PRINCIPAL = web.RequestKey("principal", Principal)
# Path parameters that only a UUID fills: /api/notifications/read is then
# the read route for every method, never "DELETE the notification `read`".
UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
ID_PARAMETER = re.compile(r"{(\w+_id)}")

Handler = Callable[..., Awaitable[Any]]


async def caller(request: web.Request) -> Principal:
    """The authenticated user of this request, or 401."""
    if PRINCIPAL not in request:
        request[PRINCIPAL] = await accounts.authenticate(request.app[DB], request.headers.get("Authorization"),
                                                         request.app[SESSION_CACHE])
    return request[PRINCIPAL]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    tag: str
    answer: type[BaseModel] | None
    status: int = 200
    auth: bool = True
    body: type[BaseModel] | None = None
    body_optional: bool = False
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    errors: Mapping[int, str] = field(default_factory=dict)
    answer_headers: Mapping[str, str] = field(default_factory=dict)  # name -> description
    database: bool = True
    answer_media: tuple[str, ...] = ()  # media types of an answer that is not a JSON model (the browser client's files)

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def summary(self) -> str:
        """The docstring's first paragraph."""
        return (inspect.getdoc(self.handler) or self.name).split("\n\n")[0].replace("\n", " ")

    @property
    def description(self) -> str:
        """The rest of the docstring."""
        doc = inspect.getdoc(self.handler) or ""
        return doc.split("\n\n", 1)[1] if "\n\n" in doc else ""

    def error_statuses(self) -> dict[int, str]:
        """Every error status this operation can answer, with what it means here."""
        causes = (("the body is not a JSON object", self.body), ("a query parameter is invalid", self.query),
                  ("a header is invalid", self.headers), ("the query string holds NUL or unpaired surrogates", True))
        # The last cause is the middleware's, for every route: no database could store such text.
        implied = {400: "bad_request: " + ", ".join(cause for cause, present in causes if present)}
        if self.auth:
            implied[401] = "unauthorized: no token, or an unknown, expired or revoked one"
        if "{" in self.path:
            implied[404] = "not_found: nothing at this path for the caller"
        if self.body:
            implied[413] = "payload_too_large: the body is over 64 KiB"
            implied[422] = "validation_error: fields missing, invalid or unknown; details names each one"
        if self.database:
            implied[503] = "unavailable: the database does not answer"
        return dict(sorted({**implied, **self.errors}.items()))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The aiohttp handler: authenticate, parse, call, answer."""
        if self.auth:
            await caller(request)
        parsed: dict[str, Any] = {}
        if self.query is not None:
            parsed["query"] = parse_query(request, self.query)
        if self.headers is not None:
            parsed["headers"] = parse_headers(request, self.headers)
        if self.body is not None:
            parsed["body"] = await read_json(request, self.body, optional=self.body_optional)
        result = await self.handler(request, **parsed)
        if isinstance(result, web.StreamResponse):  # a websocket, or an answer already encoded
            return result
        if self.answer is None:
            assert result is None, f"{self.name} answers no body"
            return web.Response(status=self.status)
        assert type(result) is self.answer or isinstance(result, self.answer), \
            f"{self.name} must answer {self.answer.__name__}, not {type(result).__name__}"
        return respond(result, self.status)


class Routes:
    """One module's operations, mounted on the app with `add_to(app)`."""

    def __init__(self, tag: str):
        self.tag = tag
        self.operations: list[Operation] = []

    def route(self, method: str, path: str, *, answer: type[BaseModel] | None, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(Operation(method, path, handler, self.tag, answer, **options))
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def add_to(self, app: web.Application) -> None:
        for op in self.operations:
            path = ID_PARAMETER.sub(lambda m: f"{{{m.group(1)}:{UUID_PATTERN}}}", op.path)
            if op.method == "GET":
                app.router.add_get(path, op.handle)  # also answers HEAD
            else:
                app.router.add_route(op.method, path, op.handle)
