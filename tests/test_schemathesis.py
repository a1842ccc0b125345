"""A bounded schemathesis run against the generated OpenAPI document, on both databases.

A real `pulsestack serve` (a subprocess, on this test's database) with one
registered user, a workspace `acme` and a notification in it; schemathesis
then reads GET /api/openapi.json and sends every operation examples, the
edge cases of each schema (coverage), random valid and invalid requests
(fuzzing) and chains of calls that follow the links it infers (stateful),
as that user. The run must find:

- no 5xx (not_a_server_error);
- no status the operation does not document, and no answer outside its
  schema, content type or documented headers;
- every invalid request refused, a missing required header refused, a 405
  with `Allow` for an undocumented method, a 401 without a token where one
  is needed, and nothing still reachable after it was deleted.

Left out, each for a reason of the API's own:
- positive_data_acceptance: strings may not hold NUL or lone surrogates
  (400, neither database can store them), and GET /ws wants a websocket
  handshake a plain request does not make;
- ensure_resource_availability: an `Idempotency-Key` repeated by the same
  sender answers the first send, even from another workspace, so a
  "created" notification may live elsewhere.
POST /api/auth/logout is left out too: it would revoke the token the run
uses (tests/test_openapi.py checks its answers).

The seed is fixed, so a run is repeatable; `--max-examples` bounds it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from helpers import PASSWORD, Server, clean_env

EXAMPLES_PER_OPERATION = 10
SEED = 20261201
EXCLUDED_CHECKS = "positive_data_acceptance,ensure_resource_availability"


def call(base: str, method: str, path: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_schemathesis_finds_no_server_error_and_nothing_outside_the_document(tmp_path: Path, database_url: str):
    server = Server(tmp_path, "--no-migrate", "--port", "0", env=clean_env(PULSESTACK_DATABASE_URL=database_url))
    try:
        base = server.serving_base()
        token = call(base, "POST", "/api/auth/register", {"email": "fuzz@example.com", "password": PASSWORD})["token"]
        call(base, "POST", "/api/workspaces", {"name": "Acme", "slug": "acme"}, token)
        call(base, "POST", "/api/workspaces/acme/notifications", {"title": "hello", "broadcast": True}, token)

        run = subprocess.run(
            [Path(sys.executable).with_name("st"), "run", f"{base}/api/openapi.json",
             "--header", f"Authorization: Bearer {token}", "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
             "--exclude-operation-id", "logout", "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED),
             "--workers", "1", "--no-color", "--request-timeout", "10"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        code, log = server.stop()

    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-12000:]}\n{run.stderr[-2000:]}"
    assert "Traceback" not in log, log
