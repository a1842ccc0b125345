"""The browser client in Debian's chromium: the app at `/`, `<pulse-bell>`
and `<pulse-inbox>` (pulsestack/static/), against a real `pulsestack serve`
on each database.

Every test is a plain function on playwright's sync API. Waits are bounded
conditions (`expect`, `wait_for_function`), never sleeps. Each page fails
its test if it threw an uncaught error or the Content-Security-Policy
refused something. Playwright's CSS locators pierce the components' open
shadow roots, so `pulse-inbox .item` finds the items inside.

With PULSESTACK_SCREENSHOT=path set, test_screenshot_of_the_app writes a
screenshot of the app there (docs/client-app.png is one); otherwise nothing
is written.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import HANG_GUARD_S, LiveServer

try:
    from playwright.sync_api import Page, Route, expect
except ImportError:  # the `browser` fixture skips (or fails under CI) with the way to get it
    Page = Route = Any  # type: ignore[misc,assignment]
    expect = None

if expect is not None:
    expect.set_options(timeout=15_000)  # a bound for slow shared machines, not a timing assertion

TOKEN_KEY = "pulsestack.token"
ITEMS = "pulse-inbox .item"


class Pages:
    """New browser contexts (one per user), each watched for page errors and CSP refusals."""

    def __init__(self, browser: Any):
        self.browser = browser
        self.contexts: list[Any] = []
        self.problems: list[str] = []

    def new(self) -> Page:
        context = self.browser.new_context(viewport={"width": 1180, "height": 820})
        self.contexts.append(context)
        return self.watch(context.new_page())

    def watch(self, page: Page) -> Page:
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", lambda msg: self.problems.append(f"console: {msg.text}")
                if "Content Security Policy" in msg.text else None)
        page.on("dialog", lambda dialog: (self.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser: Any) -> Iterator[Pages]:
    made = Pages(browser)
    try:
        yield made
    finally:
        made.close()
    assert not made.problems, made.problems


# --- helpers -------------------------------------------------------------------------------------

def signed_in(pages: Pages, server: LiveServer, account: dict) -> Page:
    """A page of the app signed in as `account` (its token put where the app keeps it)."""
    page = pages.new()
    page.goto(server.base + "/")
    page.evaluate("([key, token]) => localStorage.setItem(key, token)", [TOKEN_KEY, account["token"]])
    page.reload()
    expect(page.locator("#me-email")).to_have_text(account["email"])
    expect(page.locator("pulse-bell")).to_have_attribute("data-status", "ready")
    return page


def badge(page: Page):
    return page.locator("pulse-bell .badge")


def bell_button(page: Page):
    return page.locator("pulse-bell button.bell")


def open_bell(page: Page) -> None:
    bell_button(page).click()
    expect(bell_button(page)).to_have_attribute("aria-expanded", "true")
    expect(page.locator("pulse-inbox")).to_be_visible()


def item(page: Page, title: str):
    return page.locator(ITEMS).filter(has=page.locator(".title-text", has_text=re.compile("^" + re.escape(title) + "$")))


def inbox_state(server: LiveServer, account: dict) -> dict[str, dict]:
    return {i["title"]: i for i in server.call("GET", "/api/notifications?limit=100&archived=include",
                                                 account["token"], status=200)["items"]}


def inbox_state_once(server: LiveServer, account: dict, done: Callable[[dict[str, dict]], bool]) -> dict[str, dict]:
    """The server's inbox once `done` holds of it (within the hang guard). The page shows a change
    the moment it is made and sends its request meanwhile, so the server may not have it yet."""
    deadline = time.monotonic() + HANG_GUARD_S
    states = inbox_state(server, account)
    while not done(states) and time.monotonic() < deadline:
        time.sleep(0.02)
        states = inbox_state(server, account)
    return states


# --- signing in ----------------------------------------------------------------------------------

def test_sign_in_through_the_form_and_a_wrong_password_shows_an_error(pages, live_server):
    owner, ws, _ = live_server.team(members=0)
    page = pages.new()
    page.goto(live_server.base + "/")
    expect(page.locator("#sign-in-form")).to_be_visible()

    page.fill("#sign-in-email", owner["email"])
    page.fill("#sign-in-password", "not the password")
    page.click("#sign-in-submit")
    expect(page.locator("#sign-in-error")).to_have_text("Wrong email or password.")
    expect(page.locator("#sign-in-form")).to_be_visible()
    assert page.evaluate("k => localStorage.getItem(k)", TOKEN_KEY) is None

    page.fill("#sign-in-password", owner["password"])
    page.click("#sign-in-submit")
    expect(page.locator("#me-email")).to_have_text(owner["email"])
    expect(page.locator("#sign-in-form")).to_be_hidden()
    expect(page.locator("#workspace-switcher")).to_have_value(ws["slug"])
    expect(page.locator("pulse-bell")).to_have_attribute("data-status", "ready")
    token = page.evaluate("k => localStorage.getItem(k)", TOKEN_KEY)
    assert live_server.call("GET", "/api/me", token, status=200)["user"]["email"] == owner["email"]

    # Signed in it stays, across a reload; signing out revokes the token.
    page.reload()
    expect(page.locator("#me-email")).to_have_text(owner["email"])
    page.click("#sign-out")
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#auth-message")).to_have_text("You signed out.")
    live_server.call("GET", "/api/me", token, status=401)


def test_signing_out_in_one_tab_signs_out_the_others(pages, live_server):
    owner, ws, _ = live_server.team(members=0)
    first = signed_in(pages, live_server, owner)
    second = pages.watch(first.context.new_page())  # another tab of the same browser: same localStorage, one socket
    second.goto(live_server.base + "/")
    expect(second.locator("#me-email")).to_have_text(owner["email"])
    expect(second.locator("pulse-bell")).to_have_attribute("data-status", "ready")

    first.click("#sign-out")
    expect(first.locator("#auth-message")).to_have_text("You signed out.")
    expect(second.locator("#sign-in-form")).to_be_visible()
    expect(second.locator("#auth-message")).to_contain_text("signed out")
    expect(second.locator("#session")).to_be_hidden()

    # Signing in in one tab signs the other one in too.
    second.fill("#sign-in-password", owner["password"])
    second.click("#sign-in-submit")
    expect(second.locator("#me-email")).to_have_text(owner["email"])
    expect(first.locator("#me-email")).to_have_text(owner["email"])
    expect(first.locator("pulse-bell")).to_have_attribute("data-status", "ready")


def test_register_through_the_form_then_create_a_workspace(pages, live_server):
    page = pages.new()
    page.goto(live_server.base + "/")
    page.click("#show-register")
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    page.fill("#register-email", email)
    page.fill("#register-password", "short")
    page.click("#register-submit")
    expect(page.locator("#register-error")).to_contain_text("at least 8 characters")

    page.fill("#register-password", "a long enough password")
    page.click("#register-submit")
    expect(page.locator("#me-email")).to_have_text(email)
    expect(page.locator("#no-workspace")).to_be_visible()
    expect(page.locator("#compose-form")).to_be_hidden()

    page.fill("#new-workspace-name", "Rocket Team")
    page.click("#new-workspace-submit")
    expect(page.locator("#workspace-switcher option")).to_have_text(["Rocket Team"])
    expect(page.locator("#compose-form")).to_be_visible()
    expect(page.locator("#audience-broadcast")).to_be_checked()  # the owner broadcasts by default
    expect(page.locator("#member-list li")).to_have_text([re.compile(re.escape(email) + r" \(you\)\s*owner")])


# --- live updates ------------------------------------------------------------------------------

def test_badge_and_list_update_live_when_a_broadcast_is_sent(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    page = signed_in(pages, live_server, member)
    expect(badge(page)).to_be_hidden()
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 0 unseen")

    live_server.broadcast(owner, ws, "Deploy at 5", message="The API restarts at 17:00 UTC.")
    expect(badge(page)).to_have_text("1")
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 1 unseen")
    expect(page.locator("pulse-bell [part=live]")).to_have_text("New notification: Deploy at 5")
    expect(page).to_have_title("(1) PulseStack")

    open_bell(page)
    expect(item(page, "Deploy at 5")).to_be_visible()
    expect(item(page, "Deploy at 5")).to_have_class(re.compile(r"\bunread\b"))
    expect(item(page, "Deploy at 5").locator(".message")).to_have_text("The API restarts at 17:00 UTC.")
    expect(item(page, "Deploy at 5").locator("time")).to_have_text("just now")
    # Opening the bell marks everything seen: the badge goes, the unread count stays.
    expect(badge(page)).to_be_hidden()
    expect(page.locator("pulse-inbox [role=tab] .count")).to_have_text("1")
    assert live_server.call("GET", "/api/notifications/unread-count", member["token"], status=200)["unseen"]["total"] == 0

    # While the panel is open, a new one goes to the top of the list.
    live_server.broadcast(owner, ws, "Deploy done")
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Deploy done", "Deploy at 5"])
    expect(page.locator("pulse-inbox [role=tab] .count")).to_have_text("2")

    # With count="unread" the badge shows the unread count.
    page.locator("pulse-bell").evaluate("bell => bell.setAttribute('count', 'unread')")
    expect(badge(page)).to_have_text("2")
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 2 unread")


def test_the_inbox_says_when_it_reconnects_and_catches_up(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    live_server.broadcast(owner, ws, "Before the restart")
    page = signed_in(pages, live_server, member)
    open_bell(page)
    expect(item(page, "Before the restart")).to_be_visible()

    live_server.stop()
    expect(page.locator("pulse-inbox .banner")).to_contain_text(re.compile("Offline|Reconnecting"))
    live_server.start()
    expect(page.locator("pulse-bell")).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(page.locator("pulse-inbox .banner")).to_be_hidden()
    live_server.broadcast(owner, ws, "After the restart")
    expect(item(page, "After the restart")).to_be_visible()


# --- keyboard ----------------------------------------------------------------------------------

def test_keyboard_open_move_mark_read_and_escape(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    for title in ("First", "Second", "Third"):
        live_server.broadcast(owner, ws, title)
    page = signed_in(pages, live_server, member)
    expect(badge(page)).to_have_text("3")

    page.locator("pulse-bell").focus()
    expect(bell_button(page)).to_be_focused()
    page.keyboard.press("Enter")
    expect(bell_button(page)).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Third", "Second", "First"])
    expect(item(page, "Third")).to_be_focused()  # opening moves focus to the list

    page.keyboard.press("ArrowDown")
    expect(item(page, "Second")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(item(page, "First")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(item(page, "Second")).to_be_focused()
    expect(item(page, "Second")).to_have_attribute("tabindex", "0")  # a roving tabindex
    expect(item(page, "Third")).to_have_attribute("tabindex", "-1")
    for title, tabindex in (("Second", "0"), ("Third", "-1"), ("First", "-1")):  # its controls go with it
        for control in item(page, title).locator("button").all():
            expect(control).to_have_attribute("tabindex", tabindex)

    page.keyboard.press("Enter")  # no link: Enter marks it read
    expect(item(page, "Second")).not_to_have_class(re.compile(r"\bunread\b"))
    expect(item(page, "Second").locator("[data-action=read]")).to_have_attribute("aria-label", "Mark unread")
    expect(page.locator("pulse-inbox [role=tab] .count")).to_have_text("2")
    page.wait_for_function("() => document.title === '(2) PulseStack'")
    states = inbox_state_once(live_server, member, lambda s: s["Second"]["is_read"])
    assert states["Second"]["is_read"] and not states["First"]["is_read"] and not states["Third"]["is_read"]

    page.keyboard.press("r")  # r toggles read
    expect(item(page, "Second")).to_have_class(re.compile(r"\bunread\b"))
    page.wait_for_function("() => document.title === '(3) PulseStack'")

    page.keyboard.press("Escape")
    expect(bell_button(page)).to_have_attribute("aria-expanded", "false")
    expect(page.locator("pulse-inbox")).to_be_hidden()
    expect(bell_button(page)).to_be_focused()
    assert page.evaluate("() => document.activeElement.localName") == "pulse-bell"


# --- user text and links -----------------------------------------------------------------------

def test_html_in_user_text_renders_as_text(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    title = "<img src=x onerror=alert(1)>"
    message = "<b>bold</b> and <script>alert(2)</script>"
    live_server.broadcast(owner, ws, title, message=message)
    page = signed_in(pages, live_server, member)
    open_bell(page)
    shown = item(page, title)
    expect(shown).to_be_visible()
    expect(shown.locator(".title-text")).to_have_text(title)
    expect(shown.locator(".message")).to_have_text(message)
    assert page.locator("pulse-inbox img, pulse-inbox b, pulse-inbox script").count() == 0
    assert page.locator("img, b, script:not([src])").count() == 0
    expect(page.locator("pulse-bell [part=live]")).to_have_text("")  # it was there before the page: no arrival


def test_only_http_https_and_same_site_paths_become_links(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    live_server.broadcast(owner, ws, "Secure link", url="https://example.com/deploys/1")
    live_server.broadcast(owner, ws, "Path link", url="/deploys/2")
    live_server.broadcast(owner, ws, "No link")
    # The server refuses a javascript: url (422), so the client's own guard is tested with an item
    # injected into the inbox answer, as a server without that check could send it.
    live_server.call("POST", f"/api/workspaces/{ws['slug']}/notifications", owner["token"],
                     {"title": "Bad link", "broadcast": True, "url": "javascript:alert(1)"}, status=422)
    page = pages.new()

    def inject(route: Route) -> None:
        query = route.request.url.split("?", 1)[1] if "?" in route.request.url else ""
        response = route.fetch()
        body = response.json()
        if "after=" not in query and "cursor=" not in query and body["items"]:
            evil = {**body["items"][0], "id": str(uuid.UUID(int=uuid.uuid4().int)), "title": "Bad link",
                    "url": "javascript:alert(1)"}
            body["items"].insert(0, evil)
            for other, url in (("Sneaky link", "//evil.example/x"), ("Data link", "data:text/html,<script>alert(3)</script>")):
                body["items"].insert(0, {**evil, "id": str(uuid.uuid4()), "title": other, "url": url})
        route.fulfill(response=response, body=json.dumps(body))

    page.context.route(re.compile(r".*/api/notifications(\?.*)?$"), inject)
    page.goto(live_server.base + "/")
    page.evaluate("([key, token]) => localStorage.setItem(key, token)", [TOKEN_KEY, member["token"]])
    page.reload()
    open_bell(page)

    expect(item(page, "Secure link").locator("a.url")).to_have_attribute("href", "https://example.com/deploys/1")
    expect(item(page, "Path link").locator("a.url")).to_have_attribute("href", "/deploys/2")
    expect(item(page, "No link").locator(".url")).to_have_count(0)
    for title, url in (("Bad link", "javascript:alert(1)"), ("Sneaky link", "//evil.example/x"),
                       ("Data link", "data:text/html,<script>alert(3)</script>")):
        shown = item(page, title)
        expect(shown).to_be_visible()
        expect(shown.locator("a")).to_have_count(0)
        expect(shown.locator(".url")).to_have_text(url)
        shown.locator(".url").click()  # text, not a link: nothing runs, nothing navigates
    expect(page).to_have_url(live_server.base + "/")


# --- signed out elsewhere ------------------------------------------------------------------------

def test_logout_elsewhere_shows_signed_out(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    live_server.broadcast(owner, ws, "Hello")
    page = signed_in(pages, live_server, member)
    expect(badge(page)).to_have_text("1")
    token = page.evaluate("k => localStorage.getItem(k)", TOKEN_KEY)

    live_server.call("POST", "/api/auth/logout", token, status=204)
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#auth-message")).to_have_text("You were signed out. Sign in again to continue.")
    expect(page.locator("#sign-in-email")).to_have_value(member["email"])
    expect(page.locator("#session")).to_be_hidden()
    assert page.evaluate("k => localStorage.getItem(k)", TOKEN_KEY) is None

    page.fill("#sign-in-password", member["password"])
    page.click("#sign-in-submit")
    expect(badge(page)).to_have_text("1")


# --- sending and members ---------------------------------------------------------------------------

def test_an_admin_broadcasts_through_the_form_and_a_member_gets_it(pages, live_server):
    owner, ws, (member, other) = live_server.team(members=2)
    admin_page = signed_in(pages, live_server, owner)
    member_page = signed_in(pages, live_server, member)
    expect(badge(member_page)).to_be_hidden()

    expect(admin_page.locator("#audience-broadcast")).to_be_checked()
    admin_page.fill("#compose-title", "Lunch is here")
    admin_page.fill("#compose-message", "Kitchen, 2nd floor.\nBring a plate.")
    admin_page.fill("#compose-url", "/kitchen")
    admin_page.click("#compose-submit")
    expect(admin_page.locator("#compose-status")).to_have_text("Sent to 2 people.")
    expect(admin_page.locator("#compose-title")).to_have_value("")

    expect(badge(member_page)).to_have_text("1")
    open_bell(member_page)
    lunch = item(member_page, "Lunch is here")
    expect(lunch.locator(".message")).to_have_text("Kitchen, 2nd floor.\nBring a plate.")
    expect(lunch.locator("a.url")).to_have_attribute("href", "/kitchen")

    # A direct send, to one chosen member.
    admin_page.check("#audience-direct")
    admin_page.locator("#recipients label", has_text=other["email"]).locator("input").check()
    admin_page.fill("#compose-title", "Just for you")
    admin_page.click("#compose-submit")
    expect(admin_page.locator("#compose-status")).to_have_text("Sent to 1 person.")
    assert "Just for you" in inbox_state(live_server, other)
    assert "Just for you" not in inbox_state(live_server, member)


def test_members_are_listed_and_added_by_admins_only(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    newcomer = live_server.register()
    admin_page = signed_in(pages, live_server, owner)
    expect(admin_page.locator("#member-list li")).to_have_count(2)
    admin_page.fill("#add-member-email", "nobody-" + newcomer["email"])
    admin_page.click("#add-member-submit")
    expect(admin_page.locator("#add-member-error")).to_contain_text("no account with this email")
    admin_page.fill("#add-member-email", newcomer["email"])
    admin_page.click("#add-member-submit")
    expect(admin_page.locator("#add-member-status")).to_have_text(f"Added {newcomer['email']}.")
    expect(admin_page.locator("#member-list li")).to_have_count(3)
    expect(admin_page.locator("#member-list li", has_text=newcomer["email"])).to_contain_text("member")

    # A plain member sees neither the member list nor "Everyone".
    member_page = signed_in(pages, live_server, member)
    expect(member_page.locator("#compose-form")).to_be_visible()
    expect(member_page.locator("#members")).to_be_hidden()
    expect(member_page.locator("#audience-broadcast-choice")).to_be_hidden()
    expect(member_page.locator("#audience-direct")).to_be_checked()
    expect(member_page.locator("#recipients label")).to_have_count(3)


def test_members_that_fail_to_load_say_so_in_both_pickers(pages, live_server):
    owner, ws, _ = live_server.team(members=1)
    page = pages.new()
    member_pages = re.compile(r".*/api/workspaces/[^/]+/members\?.*")

    def refuse(route: Route) -> None:
        route.fulfill(status=503, content_type="application/json",
                      body=json.dumps({"error": {"code": "unavailable", "message": "Database unavailable."}}))

    page.route(member_pages, refuse)
    page.goto(live_server.base + "/")
    page.evaluate("([key, token]) => localStorage.setItem(key, token)", [TOKEN_KEY, owner["token"]])
    page.reload()
    expect(page.locator("#member-list")).to_contain_text("Couldn't load the members: Database unavailable.")
    page.check("#audience-direct")
    expect(page.locator("#recipients")).to_contain_text("Couldn't load the members: Database unavailable.")
    expect(page.locator("#recipients")).not_to_contain_text("Loading")

    # Once the database answers again, adding a member reloads the list and the error goes.
    page.unroute(member_pages)
    newcomer = live_server.register()
    page.fill("#add-member-email", newcomer["email"])
    page.click("#add-member-submit")
    expect(page.locator("#member-list li")).to_have_count(3)
    expect(page.locator("#recipients label")).to_have_count(3)
    expect(page.locator("#recipients")).not_to_contain_text("Couldn't load")


# --- the inbox's own actions -----------------------------------------------------------------------

def test_archive_dismiss_undo_and_tabs(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    for title in ("Keep", "Archive me", "Dismiss me"):
        live_server.broadcast(owner, ws, title)
    page = signed_in(pages, live_server, member)
    open_bell(page)
    expect(page.locator(ITEMS)).to_have_count(3)

    item(page, "Archive me").locator("[data-action=archive]").click()
    expect(item(page, "Archive me")).to_have_count(0)
    expect(page.locator("pulse-inbox .toast")).to_contain_text("Archived")
    page.locator("pulse-inbox .toast button", has_text="Undo").click()
    expect(item(page, "Archive me")).to_be_visible()
    expect(item(page, "Archive me")).to_have_class(re.compile(r"\bunread\b"))  # undo restores unread too

    item(page, "Archive me").locator("[data-action=archive]").click()
    expect(item(page, "Archive me")).to_have_count(0)
    item(page, "Dismiss me").locator("[data-action=dismiss]").click()
    expect(item(page, "Dismiss me")).to_have_count(0)
    page.locator("pulse-inbox .toast button", has_text="Undo").click()
    expect(item(page, "Dismiss me")).to_be_visible()
    item(page, "Dismiss me").locator("[data-action=dismiss]").click()
    page.locator("pulse-inbox [role=tab]", has_text="Archived").click()  # a new view commits the dismissal
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Archive me"])
    states = inbox_state_once(live_server, member, lambda s: "Dismiss me" not in s)
    assert "Dismiss me" not in states and states["Archive me"]["archived"] and states["Archive me"]["is_read"]

    page.locator("pulse-inbox [role=tab]", has_text="Unread").click()
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Keep"])
    page.locator("pulse-inbox button", has_text="Mark all read").click()
    expect(page.locator("pulse-inbox [role=tab] .count")).to_be_hidden()
    page.locator("pulse-inbox [role=tab]", has_text="All").click()
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Keep"])
    expect(page.locator(f"{ITEMS}.unread")).to_have_count(0)


def test_infinite_scroll_loads_the_next_page(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    for n in range(45):
        live_server.broadcast(owner, ws, f"Note {n:02d}")
    page = signed_in(pages, live_server, member)
    expect(badge(page)).to_have_text("45")
    open_bell(page)
    expect(page.locator(ITEMS).first).to_be_visible()
    for _ in range(4):  # scroll to the end of what is loaded, until everything is
        page.locator(ITEMS).last.scroll_into_view_if_needed()
        if page.locator(ITEMS).count() == 45:
            break
        page.wait_for_function("n => document.querySelector('pulse-inbox').shadowRoot.querySelectorAll('.item').length > n",
                               arg=page.locator(ITEMS).count())
    expect(page.locator(ITEMS)).to_have_count(45)
    expect(page.locator(ITEMS).last.locator(".title-text")).to_have_text("Note 00")
    expect(page.locator("pulse-inbox .more")).to_be_hidden()


def test_workspace_filter_with_counts(pages, live_server):
    owner, ws, (member,) = live_server.team(members=1)
    other_ws = live_server.call("POST", "/api/workspaces", owner["token"], {"name": "Second <i>team</i>"}, status=201)
    live_server.call("POST", f"/api/workspaces/{other_ws['slug']}/members", owner["token"],
                     {"email": member["email"]}, status=201)
    live_server.broadcast(owner, ws, "From the first")
    live_server.broadcast(owner, other_ws, "From the second")
    live_server.broadcast(owner, other_ws, "Also from the second")
    page = signed_in(pages, live_server, member)
    open_bell(page)
    select = page.locator("pulse-inbox select")
    expect(select.locator("option")).to_have_text(
        ["All workspaces (3)", f"{ws['name']} (1)", "Second <i>team</i> (2)"] if ws["name"] < "Second"
        else ["All workspaces (3)", "Second <i>team</i> (2)", f"{ws['name']} (1)"])
    select.select_option(other_ws["slug"])
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(["Also from the second", "From the second"])
    expect(page.locator("#workspace-switcher option", has_text="Second <i>team</i>")).to_have_count(1)
    assert page.locator("i").count() == 0


# --- the screenshot in docs/client.md ------------------------------------------------------------

def test_screenshot_of_the_app(pages, live_server):
    owner = live_server.register("dana@acme.example")
    ws = live_server.call("POST", "/api/workspaces", owner["token"], {"name": "Acme Corp", "slug": "acme"}, status=201)
    member = live_server.register("sam@acme.example")
    for person in (member, live_server.register("lee@acme.example")):
        live_server.call("POST", "/api/workspaces/acme/members", owner["token"], {"email": person["email"]}, status=201)
    live_server.broadcast(owner, ws, "Weekly report is ready", message="Revenue, signups and churn for week 48.",
                          url="https://example.com/reports/48")
    live_server.broadcast(owner, ws, "Deploy finished", message="api v2.14.0 is live in production.", url="/deploys/812")
    live_server.broadcast(owner, ws, "Database failover at 17:00 UTC", message="Expect a few seconds of read-only mode.")
    deployed = inbox_state(live_server, member)["Deploy finished"]
    live_server.call("POST", f"/api/notifications/{deployed['id']}/read", member["token"], status=200)

    page = signed_in(pages, live_server, member)
    page.fill("#compose-title", "Can someone review PR #482?")
    page.locator("#recipients label", has_text="dana@acme.example").locator("input").check()
    open_bell(page)
    expect(page.locator(f"{ITEMS} .title-text")).to_have_text(
        ["Database failover at 17:00 UTC", "Deploy finished", "Weekly report is ready"])
    expect(item(page, "Deploy finished")).not_to_have_class(re.compile(r"\bunread\b"))
    expect(page.locator("pulse-inbox [role=tab] .count")).to_have_text("2")
    target = os.environ.get("PULSESTACK_SCREENSHOT")
    if target and live_server.database_url.startswith("sqlite"):
        page.mouse.move(0, 0)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=target)


# --- the components alone, on a fake store ---------------------------------------------------------
#
# A page at http://pulse.test/ (answered by playwright, not a server) with the server's strict
# Content-Security-Policy, the components from pulsestack/static/, and a store made in the page whose
# state each test sets. These run once, not per database.

STATIC = Path(__file__).resolve().parent.parent / "pulsestack" / "static"
HARNESS = "http://pulse.test"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

FAKE_STORE = """() => {
  window.makeStore = (initial = {}) => {
    const subs = new Set(), handlers = {};
    let state = {unread: {total: 0, workspaces: {}}, unseen: {total: 0, workspaces: {}}, items: [], nextCursor: null,
                 status: "ready", filter: {workspace: null, status: "all", archived: "exclude"}, ...initial};
    const store = {
      calls: [], failing: new Set(),
      set(patch) { state = {...state, ...patch}; subs.forEach((fn) => fn()); },
      emit(name, arg) { (handlers[name] || []).forEach((fn) => fn(arg)); },
      subscribe(fn) { subs.add(fn); return () => subs.delete(fn); },
      getState: () => state,
      on(name, fn) {
        (handlers[name] ||= []).push(fn);
        return () => { handlers[name] = handlers[name].filter((g) => g !== fn); };
      },
    };
    for (const name of ["loadMore", "setFilter", "markRead", "markUnread", "markAllRead", "markSeen", "archive",
                        "unarchive", "dismiss", "close"]) {
      store[name] = (...args) => {
        store.calls.push([name, ...args]);
        return store.failing.has(name) ? Promise.reject(new Error("the server said no")) : Promise.resolve();
      };
    }
    return store;
  };
  window.fakeItem = (n, extra = {}) => ({
    id: `00000000-0000-7000-8000-${String(n).padStart(12, "0")}`, workspace_id: "w1", workspace_slug: "acme",
    title: `Item ${n}`, message: "", type: "info", url: null, data: null, created_at: new Date().toISOString(),
    is_read: false, read_at: null, is_seen: false, archived: false, archived_at: null, ...extra});
}"""


def harness(pages: Pages, body: str = "") -> Page:
    page = pages.new()

    def answer(route: Route) -> None:
        path = route.request.url[len(HARNESS):].split("?")[0]
        if path == "/":
            route.fulfill(status=200, headers={"Content-Security-Policy": CSP, "Content-Type": "text/html"},
                          body=f"<!doctype html><html lang=en><body><button id=outside>outside</button>{body}</body></html>")
        elif path.startswith("/static/") and (STATIC / path[len("/static/"):]).is_file():
            route.fulfill(status=200, path=str(STATIC / path[len("/static/"):]),
                          headers={"Content-Security-Policy": CSP, "Content-Type": "text/javascript"})
        else:
            route.fulfill(status=404, body="")

    page.route(HARNESS + "/**", answer)
    page.goto(HARNESS + "/")
    page.evaluate(FAKE_STORE)
    page.evaluate("() => import('/static/components.js')")
    return page


def test_bell_badge_caps_at_99_and_its_label_says_the_count(pages):
    page = harness(pages, "<pulse-bell id=bell></pulse-bell>")
    page.evaluate("() => { window.store = makeStore({unseen: {total: 3, workspaces: {}}, unread: {total: 150, workspaces: {}}}); "
                  "document.getElementById('bell').store = store; }")
    expect(badge(page)).to_have_text("3")
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 3 unseen")
    page.evaluate("() => store.set({unseen: {total: 100, workspaces: {}}})")
    expect(badge(page)).to_have_text("99+")
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 100 unseen")
    page.evaluate("() => document.getElementById('bell').setAttribute('count', 'unread')")
    expect(badge(page)).to_have_text("99+")
    expect(bell_button(page)).to_have_attribute("aria-label", "Notifications, 150 unread")
    page.evaluate("() => { const bell = document.getElementById('bell'); bell.setAttribute('label', 'Alerts'); "
                  "store.set({unread: {total: 0, workspaces: {}}}); }")
    expect(badge(page)).to_be_hidden()
    expect(bell_button(page)).to_have_attribute("aria-label", "Alerts, 0 unread")

    page.evaluate("() => { store.emit('notification', fakeItem(1, {title: '<b>One</b>'})); }")
    expect(page.locator("pulse-bell [part=live]")).to_have_text("New notification: <b>One</b>")
    page.evaluate("() => { store.emit('notification', fakeItem(2, {title: 'Two'}));"
                  " store.emit('notification', fakeItem(3, {title: 'Three'})); }")
    expect(page.locator("pulse-bell [part=live]")).to_have_text("2 new notifications: Two; Three")
    page.evaluate("() => store.set({status: 'signed-out'})")
    expect(bell_button(page)).to_have_attribute("aria-label", "Alerts, signed out")


def test_inbox_shows_loading_empty_offline_signed_out_and_error_states(pages):
    page = harness(pages, "<pulse-inbox id=inbox></pulse-inbox>")
    page.evaluate("() => { window.store = makeStore({status: 'connecting'}); document.getElementById('inbox').store = store; }")
    placeholder = page.locator("pulse-inbox .placeholder")
    banner = page.locator("pulse-inbox .banner")
    expect(placeholder).to_have_text("Loading notifications…")
    expect(page.locator("pulse-inbox [role=feed]")).to_have_attribute("aria-busy", "true")
    page.evaluate("() => store.set({status: 'ready'})")
    expect(placeholder).to_have_text("No notifications yet")
    page.evaluate("() => store.set({status: 'ready', filter: {status: 'unread', archived: 'exclude'}})")
    expect(placeholder).to_have_text("You're all caught up")
    expect(page.locator("pulse-inbox [role=tab][aria-selected=true]")).to_have_text("Unread")
    page.evaluate("() => store.set({status: 'offline', filter: {status: 'all', archived: 'exclude'}})")
    expect(placeholder).to_have_text("Can't reach the server right now.")
    page.evaluate("() => store.set({items: [fakeItem(1)], unread: {total: 1, workspaces: {w1: 1}}})")
    expect(placeholder).to_be_hidden()
    expect(banner).to_have_text("Offline. Reconnecting…")
    page.evaluate("() => store.set({status: 'connecting'})")
    expect(banner).to_have_text("Reconnecting…")
    page.evaluate("() => store.set({status: 'ready'})")
    expect(banner).to_be_hidden()

    # A refused action says so, with a way to retry a failed page load.
    page.evaluate("() => store.failing.add('markRead')")
    page.locator("pulse-inbox .item [data-action=read]").click()
    expect(banner).to_contain_text("Couldn't mark it read: the server said no")
    banner.locator("button", has_text="Dismiss").click()
    expect(banner).to_be_hidden()
    page.evaluate("() => { store.failing.add('loadMore'); store.set({nextCursor: 'next'}); }")
    expect(banner).to_contain_text("Couldn't load more")
    page.evaluate("() => store.failing.delete('loadMore')")
    banner.locator("button", has_text="Retry").click()
    page.wait_for_function("() => store.calls.filter((c) => c[0] === 'loadMore').length >= 2")

    page.evaluate("() => store.set({status: 'signed-out'})")
    expect(placeholder).to_have_text("You are signed out.")
    expect(page.locator("pulse-inbox .item")).to_have_count(0)


def test_bell_for_a_panel_elsewhere_opens_it_marks_seen_and_escape_returns_focus(pages):
    page = harness(pages, "<pulse-bell id=bell for=panel></pulse-bell><main><pulse-inbox id=panel></pulse-inbox></main>")
    page.evaluate("() => { window.store = makeStore({items: [fakeItem(1), fakeItem(2)], unseen: {total: 2, workspaces: {}},"
                  " unread: {total: 2, workspaces: {w1: 2}}}); document.getElementById('bell').store = store; }")
    panel = page.locator("main pulse-inbox")
    expect(panel).to_be_hidden()
    assert page.evaluate("() => document.getElementById('panel').store === store")  # the bell handed its store on
    bell_button(page).click()
    expect(panel).to_be_visible()
    expect(bell_button(page)).to_have_attribute("aria-expanded", "true")
    assert page.evaluate("() => store.calls.filter((c) => c[0] === 'markSeen').length") == 1
    expect(item(page, "Item 1")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(item(page, "Item 2")).to_be_focused()
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(bell_button(page)).to_be_focused()

    # A click outside closes it too, and leaves focus where the click put it.
    page.keyboard.press("Enter")
    expect(panel).to_be_visible()
    page.click("#outside")
    expect(panel).to_be_hidden()
    expect(page.locator("#outside")).to_be_focused()
    assert page.evaluate("() => store.calls.filter((c) => c[0] === 'markSeen').length") == 2


def test_inbox_keys_archive_dismiss_and_tabs(pages):
    page = harness(pages, "<pulse-inbox id=inbox></pulse-inbox>")
    page.evaluate("() => { window.store = makeStore({items: [1, 2, 3].map((n) => fakeItem(n)),"
                  " unread: {total: 3, workspaces: {w1: 3}}});"
                  " document.getElementById('inbox').store = store; }")
    page.locator("pulse-inbox").evaluate("inbox => inbox.focusList()")
    expect(item(page, "Item 1")).to_be_focused()
    page.keyboard.press("End")
    expect(item(page, "Item 3")).to_be_focused()
    page.keyboard.press("Home")
    expect(item(page, "Item 1")).to_be_focused()
    page.keyboard.press("a")
    assert page.evaluate("() => store.calls.at(-1)") == ["archive", "00000000-0000-7000-8000-000000000001"]
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Delete")
    expect(item(page, "Item 2")).to_have_count(0)  # hidden at once, deleted when the undo runs out
    expect(item(page, "Item 3")).to_be_focused()  # focus stays in the list
    assert ["dismiss", "00000000-0000-7000-8000-000000000002"] not in page.evaluate("() => store.calls")
    page.locator("pulse-inbox [role=tab]", has_text="Archived").click()  # a new view commits it
    calls = page.evaluate("() => store.calls")
    assert ["dismiss", "00000000-0000-7000-8000-000000000002"] in calls
    assert calls[-1] == ["setFilter", {"workspace": None, "status": "all", "archived": "only"}]
    page.locator("pulse-inbox [role=tab][aria-selected=false]").first.focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => store.calls.at(-1)")[0] == "setFilter"


def test_theme_has_light_and_dark_defaults_and_custom_properties(pages):
    page = harness(pages, "<pulse-inbox id=inbox></pulse-inbox>")
    page.evaluate("() => { window.store = makeStore({items: [fakeItem(1)]}); document.getElementById('inbox').store = store; }")
    background = "el => getComputedStyle(el.shadowRoot.querySelector('.inbox')).backgroundColor"
    inbox = page.locator("pulse-inbox")
    page.emulate_media(color_scheme="light")
    assert inbox.evaluate(background) == "rgb(255, 255, 255)"
    page.emulate_media(color_scheme="dark")
    assert inbox.evaluate(background) == "rgb(28, 31, 38)"
    inbox.evaluate("el => el.setAttribute('theme', 'light')")
    assert inbox.evaluate(background) == "rgb(255, 255, 255)"
    inbox.evaluate("el => el.style.setProperty('--pulse-bg', 'rgb(1, 2, 3)')")
    assert inbox.evaluate(background) == "rgb(1, 2, 3)"


# --- embedded in a page of another origin ----------------------------------------------------------
#
# The embedding page comes from a small HTTP server of its own on 127.0.0.1 (another port, so another
# origin). It is a real server, not a playwright route: Chromium lets a page reach the loopback
# address space (the API server) only from a page that is itself on it.


class EmbeddingSite:
    """Serves `pages` ({path: (content type, text)}) on 127.0.0.1 from a thread."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                content_type, text = site.pages.get(self.path, ("text/plain", "not found"))
                body = text.encode()
                self.send_response(200 if self.path in site.pages else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class CorsLiveServer(LiveServer):
    """A live server whose server.cors_origins lists one origin."""

    def __init__(self, cwd: Path, database_url: str, origin: str):
        super().__init__(cwd, database_url, PULSESTACK_CORS_ORIGINS=origin)
        self.origin = origin


@pytest.fixture
def embedding_site() -> Iterator[EmbeddingSite]:
    site = EmbeddingSite()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def cors_server(database_url: str, tmp_path: Path, embedding_site: EmbeddingSite) -> Iterator[LiveServer]:
    server = CorsLiveServer(tmp_path, database_url, embedding_site.origin)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_bell_embedded_in_a_page_of_another_origin(pages, cors_server, embedding_site):
    """docs/client.md's embedding example: another site loads the store and the components from the
    server, which lists that site in server.cors_origins, and talks to its API and websocket."""
    owner, ws, (member,) = cors_server.team(members=1)
    embedding_site.pages["/"] = ("text/html", (
        "<!doctype html><html lang=en><body><header><pulse-bell><pulse-inbox></pulse-inbox></pulse-bell></header>"
        "<script type=module src=/embed.js></script></body></html>"))
    embedding_site.pages["/embed.js"] = ("text/javascript", f"""
      import {{createInbox}} from "{cors_server.base}/static/pulsestack.js";
      import "{cors_server.base}/static/components.js";
      const inbox = createInbox({{baseUrl: "{cors_server.base}", token: sessionStorage.getItem("token")}});
      document.querySelector("pulse-bell").store = inbox;
    """)
    page = pages.new()
    page.goto(embedding_site.origin + "/")
    page.evaluate("token => sessionStorage.setItem('token', token)", member["token"])
    page.reload()
    expect(page.locator("pulse-bell")).to_have_attribute("data-status", "ready")

    cors_server.broadcast(owner, ws, "From the API's origin")
    expect(badge(page)).to_have_text("1")
    open_bell(page)
    item(page, "From the API's origin").locator("[data-action=read]").click()
    expect(item(page, "From the API's origin")).not_to_have_class(re.compile(r"\bunread\b"))
    assert inbox_state_once(cors_server, member, lambda s: s["From the API's origin"]["is_read"])[
        "From the API's origin"]["is_read"]
