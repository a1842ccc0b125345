"""The browser store, pulsestack/static/pulsestack.js, in Debian's chromium against a real server.

Each test runs `pulsestack serve` on its own database (both dialects) and opens tabs at the
server's own origin, on a document the server serves with its Content-Security-Policy (the store's
own file, shown as text), so the store is imported from `/static/pulsestack.js` under the policy
the app runs under, and nothing of the app's page or script runs: these tests depend on the store
alone. Waits are bounded waits for a condition of the store's state, never
sleeps; the store's timing constants are shortened through its `timing` option.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the `browser` fixture skips the tests then
    PlaywrightTimeout = TimeoutError

TIMING = {"backoffMin": 50, "backoffMax": 400, "stable": 5000, "ping": 1000, "pong": 2000}
WAIT_MS = 10_000
# A document of the server's origin, served by the server itself (a document Playwright made up
# would not count as one from the loopback address, and Chromium's local network access checks
# would block its websocket to 127.0.0.1), with the server's Content-Security-Policy, and
# without the app's page and script: the store's own file, shown as text.
PAGE = "/static/pulsestack.js"

# Creates a store as window[name], logging its events in window.log. With tokenVar, the store's
# getToken reads window[tokenVar] (the way an app hands over a token it may replace).
START = """async ({name, opts, tokenVar}) => {
  const {createInbox} = await import('/static/pulsestack.js');
  window.log = window.log || [];
  if (tokenVar) opts.getToken = async () => window[tokenVar];
  const store = window[name] = createInbox(opts);
  store.on('notification', (item) => log.push(name + ' notification ' + item.id));
  store.on('connection', (status) => log.push(name + ' connection ' + status));
  store.on('auth-expired', () => log.push(name + ' auth-expired'));
}"""


class Tab:
    """A page at the server's origin, with the websockets it opened and the requests it made."""

    def __init__(self, context: Any, server: Any):
        self.page = context.new_page()
        self.sockets: list[Any] = []
        self.sent: list[str] = []  # frames the page sent on its websockets
        self.requests: list[Any] = []
        self.console: list[str] = []  # console messages and uncaught errors, shown when a wait fails
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"uncaught: {error}"))
        self.page.on("websocket", self._socket)
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.goto(server.base + PAGE)

    def _socket(self, ws: Any) -> None:
        self.sockets.append(ws)
        ws.on("framesent", lambda payload: self.sent.append(payload))

    def start(self, token: str | None = None, name: str = "inbox", token_var: str | None = None, **opts: Any) -> None:
        opts = {"token": token, "timing": TIMING, **opts}
        self.page.evaluate(START, {"name": name, "opts": opts, "tokenVar": token_var})

    def state(self, name: str = "inbox") -> dict:
        return self.page.evaluate("n => window[n].getState()", name)

    def wait(self, condition: str, arg: Any = None, name: str = "inbox") -> dict:
        """Wait (bounded) until `condition`, JS over the store's state `s` and `arg`, holds; the state then."""
        try:
            self.page.wait_for_function(
                f"([n, arg]) => {{ const s = window[n] && window[n].getState(); return !!s && ({condition}); }}",
                arg=[name, arg], polling=50, timeout=WAIT_MS)
        except PlaywrightTimeout:
            state = self.page.evaluate("n => window[n] && window[n].getState()", name)
            pytest.fail(f"not within {WAIT_MS} ms: {condition} (arg {arg!r})\nstate: {json.dumps(state, indent=1)}\n"
                        f"log: {self.log()}\nconsole: {self.console}", pytrace=False)
        return self.state(name)

    def run(self, js: str, arg: Any = None) -> Any:
        return self.page.evaluate(js, arg)

    def log(self) -> list[str]:
        return self.page.evaluate("window.log || []")

    def api_requests(self, needle: str) -> list[Any]:
        return [r for r in self.requests if "/api/" in r.url and needle in r.url]


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context()
    try:
        yield context
    finally:
        context.close()


def ids(state: dict) -> list[str]:
    return [item["id"] for item in state["items"]]


def item(state: dict, id_: str) -> dict | None:
    return next((i for i in state["items"] if i["id"] == id_), None)


def server_counts(live_server, token: str) -> dict:
    counts = live_server.call("GET", "/api/notifications/unread-count", token, status=200)
    return {"unread": {"total": counts["total"], "workspaces": counts["workspaces"]}, "unseen": counts["unseen"]}


def store_counts(state: dict) -> dict:
    return {"unread": state["unread"], "unseen": state["unseen"]}


READY = "s.status === 'ready'"
HAS = "arg.every(id => s.items.some(i => i.id === id))"


def test_ready_brings_counts_and_items_and_a_broadcast_shows_up_live(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    sent = [live_server.broadcast(owner, ws, f"before {n}") for n in range(2)]
    tab = Tab(context, live_server)
    tab.start(member["token"])

    s = tab.wait(f"{READY} && s.items.length === 2")
    assert ids(s) == [sent[1]["id"], sent[0]["id"]]  # newest first
    assert s["unread"] == {"total": 2, "workspaces": {ws["id"]: 2}}
    assert s["unseen"] == {"total": 2, "workspaces": {ws["id"]: 2}}
    assert s["nextCursor"] is None and s["filter"] == {}
    assert s["items"][0]["title"] == "before 1" and s["items"][0]["workspace_slug"] == ws["slug"]

    live = live_server.broadcast(owner, ws, "live one", message="<b>not markup</b>")
    s = tab.wait("s.items.length === 3 && s.unread.total === 3")
    assert ids(s)[0] == live["id"] and s["items"][0]["message"] == "<b>not markup</b>"
    assert store_counts(s) == server_counts(live_server, member["token"])
    assert f"inbox notification {live['id']}" in tab.log()
    assert tab.run("() => Object.isFrozen(inbox.getState()) && Object.isFrozen(inbox.getState().items[0])")
    assert tab.run("() => inbox.getState() === inbox.getState()")  # a snapshot, until the state changes

    # The token goes in the Authorization header and the first frame, never in a URL.
    token = member["token"]
    assert len(tab.sockets) == 1 and tab.sockets[0].url == live_server.base.replace("http", "ws") + "/ws"
    assert json.loads(tab.sent[0]) == {"type": "auth", "token": token}
    assert tab.api_requests("/api/notifications")
    assert all(token not in r.url for r in tab.requests)
    assert all(r.all_headers().get("authorization") == f"Bearer {token}" for r in tab.api_requests(""))


def test_a_get_token_that_fails_is_asked_again_until_it_answers(context, live_server):
    """getToken throws on its first and third call (starting, then opening the socket): each is
    retried after a back-off, and the store ends ready with the server's counts."""
    owner, ws, [member] = live_server.team(members=1)
    sent = live_server.broadcast(owner, ws, "while the token service was down")
    tab = Tab(context, live_server)
    tab.run("""async ([token, timing]) => {
      const {createInbox} = await import('/static/pulsestack.js');
      window.calls = 0;
      window.inbox = createInbox({timing, getToken: async () => {
        window.calls += 1;
        if (window.calls === 1 || window.calls === 3) throw new Error('token service down');
        return token;
      }});
    }""", [member["token"], TIMING])

    s = tab.wait(f"{READY} && s.items.length === 1")
    assert ids(s) == [sent["id"]]
    assert store_counts(s) == server_counts(live_server, member["token"])
    assert tab.run("() => window.calls") >= 4
    assert len(tab.sockets) == 1  # the failed call opened no socket


def test_two_tabs_share_one_socket_and_a_read_in_one_shows_in_both(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    first, second = (live_server.broadcast(owner, ws, f"n{n}")["id"] for n in range(2))
    a, b = Tab(context, live_server), Tab(context, live_server)
    a.start(member["token"])
    a.wait(f"{READY} && s.items.length === 2")
    b.start(member["token"])
    b.wait(f"{READY} && s.items.length === 2 && s.unread.total === 2")
    assert len(a.sockets) == 1 and b.sockets == []  # b follows a's socket

    assert a.run("id => inbox.markRead(id)", first) is True
    read_everywhere = "s.items.find(i => i.id === arg).is_read && s.unread.total === 1"
    b.wait(read_everywhere, first)
    a.wait(read_everywhere, first)

    assert b.run("id => inbox.markUnread(id)", first) is True  # and the other way: b's own HTTP call
    a.wait("!s.items.find(i => i.id === arg).is_read && s.unread.total === 2", first)

    assert b.run("id => inbox.markRead(id)", second) is True
    a.wait(read_everywhere, second)
    assert b.run("id => inbox.markRead(id)", second) is True  # already read: nothing is sent
    assert b.run("id => inbox.markUnread(id)", second) is True  # a later request, to order the events by
    assert len(b.api_requests(f"/{second}/read")) == 1 and len(b.api_requests(f"/{second}/unread")) == 1

    live = live_server.broadcast(owner, ws, "live")["id"]
    for tab in (a, b):
        s = tab.wait(f"{HAS} && s.unread.total === 3", [live])
        assert ids(s) == [live, second, first]
        assert f"inbox notification {live}" in tab.log()
    assert len(a.sockets) == 1 and b.sockets == []

    # Logged out: both tabs sign out, and b does not take the socket over with the dead token.
    live_server.call("POST", "/api/auth/logout", member["token"], status=204)
    for tab in (a, b):
        tab.wait("s.status === 'signed-out' && s.items.length === 0")
        assert tab.log().count("inbox auth-expired") == 1
    # Later: b signs in again and starts over, with a socket of its own (a new token, a new lock).
    fresh = live_server.call("POST", "/api/auth/login", body={"email": member["email"], "password": member["password"]},
                             status=200)["token"]
    b.start(fresh, name="again")
    b.wait(f"{READY} && s.items.length === 3", name="again")
    assert len(a.sockets) == 1 and len(b.sockets) == 1
    assert json.loads(b.sent[0]) == {"type": "auth", "token": fresh}


def test_without_web_locks_each_tab_keeps_its_own_socket(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    first = live_server.broadcast(owner, ws, "first")["id"]
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined})")
    a, b = Tab(context, live_server), Tab(context, live_server)
    for tab in (a, b):
        assert tab.run("() => navigator.locks") is None
        tab.start(member["token"])
        tab.wait(f"{READY} && s.items.length === 1")
    assert len(a.sockets) == 1 and len(b.sockets) == 1
    assert a.run("id => inbox.markRead(id)", first) is True
    b.wait("s.items[0].is_read && s.unread.total === 0")


def test_closing_the_owning_tab_hands_the_socket_to_the_other(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    first = live_server.broadcast(owner, ws, "first")["id"]
    a, b = Tab(context, live_server), Tab(context, live_server)
    a.start(member["token"])
    a.wait(f"{READY} && s.items.length === 1")
    b.start(member["token"])
    b.wait(f"{READY} && s.items.length === 1")
    assert len(a.sockets) == 1 and b.sockets == []

    with b.page.expect_websocket(timeout=WAIT_MS):
        a.page.close()
    b.wait(READY)
    live = live_server.broadcast(owner, ws, "after the handover")["id"]
    s = b.wait(f"{HAS} && s.unread.total === 2", [live])
    assert ids(s) == [live, first]
    assert len(b.sockets) == 1

    # A tab opened now follows b.
    c = Tab(context, live_server)
    c.start(member["token"])
    c.wait(f"{READY} && s.items.length === 2 && s.unread.total === 2")
    assert c.sockets == [] and len(b.sockets) == 1


def test_after_a_server_restart_what_was_sent_meanwhile_appears_exactly_once(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    before = live_server.broadcast(owner, ws, "before")["id"]
    tab = Tab(context, live_server)
    tab.start(member["token"])
    tab.wait(f"{READY} && s.items.length === 1")

    live_server.stop()
    tab.wait("s.status === 'offline'")
    live_server.start()
    late = [live_server.broadcast(owner, ws, f"late {n}")["id"] for n in range(2)]  # the client is likely still backing off
    everything = [before, *late]

    s = tab.wait(f"{READY} && {HAS} && s.unread.total === 3", everything)
    assert sorted(ids(s)) == sorted(everything)  # each once
    assert ids(s) == [late[1], late[0], before]
    assert store_counts(s) == server_counts(live_server, member["token"])
    assert len(tab.sockets) >= 2
    log = tab.log()
    assert all(log.count(f"inbox notification {id_}") <= 1 for id_ in everything)
    assert "inbox connection offline" in log


def test_logout_elsewhere_signs_the_store_out_and_it_stays_down(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    live_server.broadcast(owner, ws, "hello")
    tab = Tab(context, live_server)
    tab.run("t => { window.token = t; }", member["token"])
    tab.start(token_var="token")
    tab.wait(f"{READY} && s.items.length === 1")

    live_server.call("POST", "/api/auth/logout", member["token"], status=204)
    s = tab.wait("s.status === 'signed-out'")
    assert tab.log().count("inbox auth-expired") == 1
    assert s["items"] == [] and s["unread"]["total"] == 0  # nothing of the old session stays
    assert tab.run("() => document.visibilityState") == "visible"
    tab.run("""() => {
      window.dispatchEvent(new Event('online'));
      document.dispatchEvent(new Event('visibilitychange'));
    }""")

    # The app logs in again and calls the store: it starts over with the new token. Its new socket
    # and a live item arriving on it come after anything the events above could have opened.
    fresh = live_server.call("POST", "/api/auth/login", body={"email": member["email"], "password": member["password"]},
                             status=200)["token"]
    tab.run("t => { window.token = t; inbox.reconnect(); }", fresh)
    tab.wait(f"{READY} && s.items.length === 1")
    live = live_server.broadcast(owner, ws, "after login again")["id"]
    tab.wait(f"{HAS} && s.unread.total === 2", [live])
    assert len(tab.sockets) == 2  # the first one and the one reconnect() opened: none in between
    assert json.loads(tab.sent[-1]) == {"type": "auth", "token": fresh}
    assert tab.log().count("inbox auth-expired") == 1


OPTIMISTIC = """async ([action, id]) => {
  const done = inbox[action](id);
  const during = inbox.getState();
  const ok = await done;
  return {during, ok, after: inbox.getState()};
}"""


@pytest.mark.parametrize("failure", ["500", "network", "404"])
def test_an_optimistic_update_is_rolled_back_when_the_request_fails(context, live_server, failure):
    owner, ws, [member] = live_server.team(members=1)
    first, second = (live_server.broadcast(owner, ws, f"n{n}")["id"] for n in range(2))
    tab = Tab(context, live_server)
    tab.start(member["token"])
    start = tab.wait(f"{READY} && s.items.length === 2 && s.unread.total === 2")

    def fail(route):
        if failure == "network":
            route.abort()
        else:
            route.fulfill(status=int(failure), content_type="application/json",
                          body=json.dumps({"error": {"code": "x", "message": "refused by the test", "details": {}}}))

    tab.page.route(re.compile(r".*/api/notifications/[^/]+(/(read|archive))?$"), fail)

    out = tab.run(OPTIMISTIC, ["markRead", first])
    assert item(out["during"], first)["is_read"] is True
    assert out["during"]["unread"]["total"] == 1 and out["during"]["unseen"]["total"] == 1
    assert out["ok"] is False
    assert store_counts(out["after"]) == store_counts(start) and out["after"]["items"] == start["items"]

    out = tab.run(OPTIMISTIC, ["archive", second])  # archived items leave the default list
    assert ids(out["during"]) == [first] and out["during"]["unread"] == {"total": 1, "workspaces": {ws["id"]: 1}}
    assert out["ok"] is False
    assert store_counts(out["after"]) == store_counts(start) and out["after"]["items"] == start["items"]

    out = tab.run(OPTIMISTIC, ["dismiss", first])
    assert ids(out["during"]) == [second] and out["during"]["unread"]["total"] == 1
    assert out["ok"] is False
    assert ids(out["after"]) == [second, first] and store_counts(out["after"]) == store_counts(start)

    # Nothing reached the server.
    assert server_counts(live_server, member["token"]) == store_counts(start)


def test_what_the_server_says_meanwhile_wins_over_a_rollback(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    first, second = (live_server.broadcast(owner, ws, f"n{n}")["id"] for n in range(2))
    tab = Tab(context, live_server)
    tab.start(member["token"])
    tab.wait(f"{READY} && s.items.length === 2 && s.unread.total === 2")
    # The page's markRead request hangs until the test lets it fail.
    tab.run("""() => {
      const real = window.fetch;
      window.fetch = (url, init) => String(url).endsWith('/read')
        ? new Promise((_, reject) => { window.failRead = () => reject(new TypeError('dropped by the test')); })
        : real(url, init);
    }""")
    tab.run("id => { window.pending = inbox.markRead(id); }", first)
    assert item(tab.state(), first)["is_read"] is True

    # Meanwhile the item is read on another device: its `changed` frame sets the server's read_at.
    read_at = live_server.call("POST", f"/api/notifications/{first}/read", member["token"], status=200)["read_at"]
    tab.wait("s.items.find(i => i.id === arg[0]).read_at === arg[1]", [first, read_at])
    assert tab.run("async () => { window.failRead(); return await window.pending; }") is False
    s = tab.state()
    assert item(s, first)["is_read"] is True and item(s, first)["read_at"] == read_at  # not rolled back
    s = tab.wait("s.unread.total === 1")
    assert store_counts(s) == server_counts(live_server, member["token"])


def test_filters_paging_and_bulk_actions(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    other = live_server.call("POST", "/api/workspaces", owner["token"], {"name": "Other team"}, status=201)
    live_server.call("POST", f"/api/workspaces/{other['slug']}/members", owner["token"], {"email": member["email"]}, status=201)
    sent = [live_server.broadcast(owner, ws, f"n{n}")["id"] for n in range(5)]
    newest_first = sent[::-1]
    tab = Tab(context, live_server)
    tab.start(member["token"], pageSize=2)
    token = member["token"]

    s = tab.wait(f"{READY} && s.items.length === 2")
    assert ids(s) == newest_first[:2] and s["nextCursor"]
    assert tab.run("() => inbox.loadMore()") is True
    assert tab.run("() => inbox.loadMore()") is True
    s = tab.state()
    assert ids(s) == newest_first and s["nextCursor"] is None
    assert tab.run("() => inbox.loadMore()") is False  # nothing more

    # The bell opened: nothing is unseen any more, here and on the server.
    assert tab.run("() => inbox.markSeen()") is True
    s = tab.wait("s.unseen.total === 0 && s.items.every(i => i.is_seen)")
    assert server_counts(live_server, token)["unseen"]["total"] == 0 and s["unread"]["total"] == 5

    # Archived: out of the default list, read; back from the archived view.
    assert tab.run("id => inbox.archive(id)", newest_first[0]) is True
    s = tab.wait("s.unread.total === 4")
    assert ids(s) == newest_first[1:]
    assert tab.run("() => inbox.setFilter({archived: 'only'})") is True
    s = tab.state()
    assert ids(s) == newest_first[:1] and s["filter"] == {"archived": "only"} and s["items"][0]["is_read"]
    assert tab.run("id => inbox.unarchive(id)", newest_first[0]) is True
    s = tab.wait("s.items.length === 0")

    # An unread view: read items leave it; mark all read empties it.
    assert tab.run("() => inbox.setFilter({status: 'unread'})") is True
    s = tab.state()
    assert ids(s) == newest_first[1:3] and s["nextCursor"]
    assert tab.run("id => inbox.markRead(id)", newest_first[1]) is True
    s = tab.wait("s.unread.total === 3")
    assert ids(s) == newest_first[2:3]
    assert tab.run("() => inbox.markAllRead()") is True
    s = tab.wait("s.items.length === 0 && s.unread.total === 0")
    assert server_counts(live_server, token)["unread"]["total"] == 0

    # One workspace: other workspaces' items stay out of the list, but are announced.
    assert tab.run("slug => inbox.setFilter({workspace: slug})", other["slug"]) is True
    assert tab.state()["items"] == []
    elsewhere = live_server.broadcast(owner, ws, "elsewhere")["id"]
    here = live_server.broadcast(owner, other, "here")["id"]
    s = tab.wait(f"{HAS} && s.unread.total === 2", [here])
    assert ids(s) == [here]
    assert f"inbox notification {elsewhere}" in tab.log()

    # Dismissed: gone from the list and the counts.
    assert tab.run("id => inbox.dismiss(id)", here) is True
    s = tab.wait("s.items.length === 0 && s.unread.total === 1")
    assert s["unread"]["workspaces"] == {ws["id"]: 1}
    assert store_counts(s) == server_counts(live_server, token)


def test_a_ping_without_pong_drops_the_socket_and_it_reconnects(context, live_server):
    owner, ws, [member] = live_server.team(members=1)
    connections: list[Any] = []

    def relay(route):  # the first connection never passes a pong on
        connections.append(route)
        server = route.connect_to_server()
        first = len(connections) == 1

        def to_page(message):
            if not (first and isinstance(message, str) and json.loads(message).get("type") == "pong"):
                route.send(message)

        server.on_message(to_page)

    tab = Tab(context, live_server)
    tab.page.route_web_socket(re.compile(r"/ws$"), relay)
    # (The pong wait is not the shortest possible: the relay runs only while this test is inside
    # a Playwright call, so a later connection's pongs may lag by one of our HTTP calls.)
    tab.start(member["token"], timing={**TIMING, "ping": 200, "pong": 1000})
    tab.wait(f"{READY} && window.log.includes('inbox connection offline')")
    assert len(connections) >= 2
    live = live_server.broadcast(owner, ws, "still live")["id"]
    tab.wait(f"{READY} && {HAS}", [live])
