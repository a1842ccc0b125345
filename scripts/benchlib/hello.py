"""aiohttp's bare JSON hello: the yardstick for HTTP throughput.

Started by the harness in its own process beside the PulseStack server:
    python hello.py PORT
GET / answers {"hello": "world"} through `web.json_response`, with no
middleware, no database and no access log: the most a single aiohttp
process does on this machine.
"""

import sys

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
