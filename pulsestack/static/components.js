// <pulse-bell> and <pulse-inbox>: web components that render a PulseStack
// store (createInbox of pulsestack.js). An ES module with no dependency and
// no build step; docs/client.md describes the attributes, properties, CSS
// custom properties and keys.
//
//   import "/static/components.js";
//   bell.store = inbox.store = createInbox({token});
//
// Safety: every piece of user text (titles, messages, urls, workspace names)
// is set with textContent or setAttribute, never parsed as HTML, and a url
// becomes a link only when it is http:, https: or a path on this site.
// Styles are constructable stylesheets (adoptedStyleSheets), which a strict
// Content-Security-Policy without 'unsafe-inline' allows.

const UNDO_MS = 6000;
const NEAR_END_PX = 200;
const SVG_NS = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** The href for a notification url, or null when it must stay text: only
 * absolute http(s) urls and paths starting with a single "/" are links. */
export function safeHref(url) {
  if (typeof url !== "string" || url === "" || url.length > 2048) return null;
  if (/[\s\u0000-\u001f\u007f\\]/.test(url)) return null;
  if (url.startsWith("/")) return url.startsWith("//") ? null : url;
  if (!/^https?:\/\//i.test(url)) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

const RELATIVE_STEPS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

function lang() {
  return document.documentElement.lang || navigator.language || "en";
}

const relativeFormats = new Map(); // one Intl.RelativeTimeFormat per language, not one per call

/** "just now", "5 minutes ago", "yesterday", ... for an ISO timestamp. */
export function relativeTime(iso, now = Date.now()) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.round((now - then) / 1000);
  if (seconds < 45) return "just now"; // a clock a little ahead shows "just now" too
  const language = lang();
  if (!relativeFormats.has(language)) relativeFormats.set(language, new Intl.RelativeTimeFormat(language, {numeric: "auto"}));
  const format = relativeFormats.get(language);
  for (const [unit, size] of RELATIVE_STEPS) {
    if (seconds >= size) return format.format(-Math.floor(seconds / size), unit);
  }
  return format.format(-1, "minute");
}

function fullTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString(lang(), {dateStyle: "medium", timeStyle: "short"});
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key === "on") for (const [name, fn] of Object.entries(value)) node.addEventListener(name, fn);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const ICONS = {
  bell: "M12 22a2.4 2.4 0 0 0 2.35-1.9h-4.7A2.4 2.4 0 0 0 12 22Zm7.2-5.6-1.7-1.9V10.3a5.5 5.5 0 0 0-4.3-5.4V3.9a1.2 1.2 0 0 0-2.4 0v1A5.5 5.5 0 0 0 6.5 10.3v4.2l-1.7 1.9a.9.9 0 0 0 .7 1.5h13a.9.9 0 0 0 .7-1.5Z",
  read: "M9.3 16.2 5.1 12l-1.4 1.4 5.6 5.6 11-11-1.4-1.4Z",
  unread: "M12 7a5 5 0 1 0 0 10 5 5 0 0 0 0-10Zm0 8.2a3.2 3.2 0 1 1 0-6.4 3.2 3.2 0 0 1 0 6.4Z",
  archive: "M20.5 5.2 19.1 3.5a1.4 1.4 0 0 0-1.1-.5H6a1.4 1.4 0 0 0-1.1.5L3.5 5.2A1.9 1.9 0 0 0 3 6.5V19a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2V6.5c0-.5-.2-.9-.5-1.3ZM12 17.5 6.5 12H10v-2h4v2h3.5ZM5.1 5l.8-1h12l.9 1Z",
  unarchive: "M20.5 5.2 19.1 3.5a1.4 1.4 0 0 0-1.1-.5H6a1.4 1.4 0 0 0-1.1.5L3.5 5.2A1.9 1.9 0 0 0 3 6.5V19a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2V6.5c0-.5-.2-.9-.5-1.3ZM14 14v2h-4v-2H6.5L12 8.5l5.5 5.5ZM5.1 5l.8-1h12l.9 1Z",
  dismiss: "M18.3 7.1 16.9 5.7 12 10.6 7.1 5.7 5.7 7.1l4.9 4.9-4.9 4.9 1.4 1.4 4.9-4.9 4.9 4.9 1.4-1.4-4.9-4.9Z",
};

function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A property set on the element before its class was defined hides the class's
 * accessor: take it off and set it again through the accessor. */
function upgradeProperties(element, names) {
  for (const name of names) {
    if (Object.prototype.hasOwnProperty.call(element, name)) {
      const value = element[name];
      delete element[name];
      element[name] = value;
    }
  }
}

function sheet(text) {
  const s = new CSSStyleSheet();
  s.replaceSync(text);
  return s;
}

function run(promiseOrValue) {
  return Promise.resolve().then(() => promiseOrValue);
}

/** A count as a badge shows it: "99+" past 99. */
export function badgeText(n) {
  return n > 99 ? "99+" : String(n);
}

function errorText(error, fallback) {
  const message = error && (error.message || (error.error && error.error.message));
  return message ? `${fallback}: ${message}` : fallback;
}

// ---------------------------------------------------------------------------
// Styles: theme variables with light and dark defaults
// ---------------------------------------------------------------------------

const LIGHT = `
  --_bg: var(--pulse-bg, #ffffff);
  --_fg: var(--pulse-fg, #1b1e26);
  --_muted: var(--pulse-muted, #5b6170);
  --_border: var(--pulse-border, #dde1e8);
  --_accent: var(--pulse-accent, #3553d1);
  --_hover: var(--pulse-hover, #f1f3f7);
  --_unread-bg: var(--pulse-unread-bg, #f2f5ff);
  --_badge-bg: var(--pulse-badge-bg, #d92f2f);
  --_badge-fg: var(--pulse-badge-fg, #ffffff);
  --_danger: var(--pulse-danger, #b42323);
  --_banner-bg: var(--pulse-banner-bg, #fff6db);
  --_banner-fg: var(--pulse-banner-fg, #5c4400);
  --_shadow: var(--pulse-shadow, 0 10px 30px rgba(20, 26, 45, 0.18));
`;
const DARK = `
  --_bg: var(--pulse-bg, #1c1f26);
  --_fg: var(--pulse-fg, #e7e9ef);
  --_muted: var(--pulse-muted, #a3a9b8);
  --_border: var(--pulse-border, #343946);
  --_accent: var(--pulse-accent, #8aa0ff);
  --_hover: var(--pulse-hover, #262a33);
  --_unread-bg: var(--pulse-unread-bg, #212843);
  --_badge-bg: var(--pulse-badge-bg, #ff6b6b);
  --_badge-fg: var(--pulse-badge-fg, #14161c);
  --_danger: var(--pulse-danger, #ff8a8a);
  --_banner-bg: var(--pulse-banner-bg, #3a3220);
  --_banner-fg: var(--pulse-banner-fg, #f5dc9a);
  --_shadow: var(--pulse-shadow, 0 10px 30px rgba(0, 0, 0, 0.55));
`;

const THEME = sheet(`
  :host {
    ${LIGHT}
    --_focus: var(--pulse-focus, var(--_accent));
    --_radius: var(--pulse-radius, 10px);
    --_font: var(--pulse-font, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif);
    color-scheme: light;
  }
  @media (prefers-color-scheme: dark) {
    :host(:not([theme="light"])) { ${DARK} color-scheme: dark; }
  }
  :host([theme="dark"]) { ${DARK} color-scheme: dark; }
  .sr-only {
    position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
    overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; border: 0;
  }
  [hidden] { display: none !important; }
  svg { width: 1.25em; height: 1.25em; fill: currentColor; flex: none; }
  button { font: inherit; color: inherit; }
  :focus-visible { outline: 2px solid var(--_focus); outline-offset: 2px; }
`);

const BELL_STYLE = sheet(`
  :host { display: inline-block; position: relative; font-family: var(--_font); line-height: 1.4; }
  :host([hidden]) { display: none; }
  .bell {
    position: relative; display: inline-flex; align-items: center; justify-content: center;
    width: var(--pulse-bell-size, 40px); height: var(--pulse-bell-size, 40px);
    padding: 0; border: 0; border-radius: 50%; background: transparent;
    color: var(--pulse-bell-color, currentColor); cursor: pointer;
  }
  .bell:hover, .bell[aria-expanded="true"] { background: var(--pulse-bell-hover, rgba(127, 127, 127, 0.16)); }
  .bell svg { width: 24px; height: 24px; }
  .badge {
    position: absolute; top: 1px; right: -2px; min-width: 18px; height: 18px; padding: 0 5px;
    box-sizing: border-box; border-radius: 9px; background: var(--_badge-bg); color: var(--_badge-fg);
    font: 700 11px/18px var(--_font); text-align: center; pointer-events: none;
    box-shadow: 0 0 0 2px var(--pulse-badge-ring, transparent);
  }
  :host([data-status="offline"]) .badge, :host([data-status="connecting"]) .badge { opacity: 0.6; }
  .panel {
    position: absolute; top: calc(100% + 8px); right: 0; z-index: var(--pulse-z-index, 1000);
    width: var(--pulse-panel-width, min(420px, calc(100vw - 16px)));
    border-radius: var(--_radius); box-shadow: var(--_shadow);
  }
  :host([align="start"]) .panel, .panel.start { right: auto; left: 0; }
  .panel.narrow { position: fixed; left: 8px; right: 8px; width: auto; }
`);

const INBOX_STYLE = sheet(`
  :host { display: block; font-family: var(--_font); font-size: 14px; line-height: 1.4; color: var(--_fg); }
  :host([hidden]) { display: none; }
  .inbox {
    display: flex; flex-direction: column; box-sizing: border-box;
    max-height: var(--pulse-inbox-height, min(70vh, 640px));
    background: var(--_bg); color: var(--_fg);
    border: 1px solid var(--_border); border-radius: var(--_radius); overflow: hidden;
  }
  header { display: flex; align-items: center; gap: 8px; padding: 12px 14px 4px; }
  h2 { flex: 1; margin: 0; font-size: 15px; font-weight: 650; }
  .text-button {
    border: 0; background: transparent; color: var(--_accent); padding: 4px 6px; border-radius: 6px;
    cursor: pointer; font-size: 13px; font-weight: 600;
  }
  .text-button:hover:not(:disabled) { background: var(--_hover); }
  .text-button:disabled { color: var(--_muted); cursor: default; opacity: 0.7; }
  .bar { display: flex; align-items: flex-end; gap: 8px; padding: 0 10px; border-bottom: 1px solid var(--_border); }
  [role="tablist"] { display: flex; gap: 2px; flex: 1; }
  [role="tab"] {
    border: 0; border-bottom: 2px solid transparent; background: transparent; padding: 8px 8px 7px;
    color: var(--_muted); cursor: pointer; font-size: 13px; font-weight: 600;
  }
  [role="tab"]:hover { color: var(--_fg); }
  [role="tab"][aria-selected="true"] { color: var(--_accent); border-bottom-color: var(--_accent); }
  .count {
    display: inline-block; min-width: 16px; margin-left: 4px; padding: 0 5px; box-sizing: border-box;
    border-radius: 8px; background: var(--_hover); color: var(--_fg); font-size: 11px; line-height: 16px; text-align: center;
  }
  .workspace { padding: 0 0 6px; }
  select {
    max-width: 170px; font: inherit; font-size: 12px; color: var(--_fg); background: var(--_bg);
    border: 1px solid var(--_border); border-radius: 6px; padding: 3px 4px;
  }
  .banner {
    display: flex; align-items: center; gap: 8px; padding: 6px 14px; font-size: 13px;
    background: var(--_banner-bg); color: var(--_banner-fg);
  }
  .banner.error { color: var(--_danger); }
  .banner .text-button { margin-left: auto; color: inherit; text-decoration: underline; }
  .scroller { flex: 1 1 auto; overflow-y: auto; overscroll-behavior: contain; min-height: 72px; }
  .feed { list-style: none; margin: 0; padding: 0; }
  .placeholder { padding: 28px 16px; text-align: center; color: var(--_muted); }
  .item {
    display: grid; grid-template-columns: 8px minmax(0, 1fr) auto; column-gap: 10px;
    padding: 10px 10px 10px 14px; border-bottom: 1px solid var(--_border); outline: none; cursor: default;
  }
  .item.unread { background: var(--_unread-bg); }
  .item:hover { background: var(--_hover); }
  .item:focus-visible { box-shadow: inset 0 0 0 2px var(--_focus); }
  .dot { width: 8px; height: 8px; margin-top: 6px; border-radius: 50%; background: var(--_accent); }
  .item:not(.unread) .dot { visibility: hidden; }
  .title { margin: 0; font-size: 14px; font-weight: 500; overflow-wrap: anywhere; }
  .item.unread .title { font-weight: 650; }
  .message {
    margin: 2px 0 0; color: var(--_muted); white-space: pre-line; overflow-wrap: anywhere;
    display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 4; overflow: hidden;
  }
  .message:empty { display: none; }
  .meta { display: flex; flex-wrap: wrap; gap: 2px 8px; margin-top: 4px; font-size: 12px; color: var(--_muted); }
  .meta .ws:not([hidden]) + time::before { content: "·"; margin-right: 8px; }
  .url-slot { flex-basis: 100%; min-width: 0; display: flex; }
  .url-slot:empty { display: none; }
  .meta .url { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  a.url { color: var(--_accent); }
  .actions { display: flex; gap: 2px; align-items: flex-start; }
  .actions button {
    display: inline-flex; align-items: center; justify-content: center; width: 28px; height: 28px; padding: 0;
    border: 0; border-radius: 6px; background: transparent; color: var(--_muted); cursor: pointer;
  }
  .actions button:hover { background: var(--_border); color: var(--_fg); }
  .actions svg { width: 18px; height: 18px; }
  .more { display: block; width: 100%; padding: 10px; border: 0; background: transparent; color: var(--_accent); cursor: pointer; }
  .toast {
    display: flex; align-items: center; gap: 8px; padding: 8px 14px; font-size: 13px;
    background: var(--_fg); color: var(--_bg);
  }
  .toast .text-button { margin-left: auto; color: inherit; text-decoration: underline; }
`);

// ---------------------------------------------------------------------------
// <pulse-inbox>
// ---------------------------------------------------------------------------

const TABS = [
  {key: "all", label: "All", filter: {status: "all", archived: "exclude"}, empty: "No notifications yet"},
  {key: "unread", label: "Unread", filter: {status: "unread", archived: "exclude"}, empty: "You're all caught up"},
  {key: "archived", label: "Archived", filter: {status: "all", archived: "only"}, empty: "Nothing archived"},
];

function tabOf(filter) {
  if (!filter) return "all";
  if (filter.archived === "only") return "archived";
  if (filter.status === "unread") return "unread";
  return "all";
}

export class PulseInbox extends HTMLElement {
  constructor() {
    super();
    this._store = null;
    this._unsubscribe = null;
    this._rows = new Map(); // id -> {row, article, parts, key}
    this._activeId = null;
    this._hidden = new Set(); // ids dismissed locally, waiting for their undo to run out
    this._pending = null; // {kind: "archive" | "dismiss", id, title, wasUnread, timer}
    this._error = null; // {text, retry}
    this._loadingMore = false;
    this._workspaces = null; // [{id, slug, name}] from the host app, or null
    this._workspaceNames = new Map(); // id -> name, from this._workspaces
    this._knownWorkspaces = new Map(); // id -> {id, slug, name}, from items
    this._scannedItems = null; // the items array _knownWorkspaces has seen (snapshots are immutable)
    this._renderQueued = false;
    this._tick = null;

    const root = this.attachShadow({mode: "open"});
    root.adoptedStyleSheets = [THEME, INBOX_STYLE];

    this._heading = el("h2", {id: "heading", text: this.getAttribute("heading") || "Notifications"});
    this._markAll = el("button", {type: "button", class: "text-button", part: "mark-all", text: "Mark all read"});
    this._markAll.addEventListener("click", () => this._markAllRead());
    this._tabs = TABS.map((tab) => {
      const button = el("button", {
        type: "button", role: "tab", id: `tab-${tab.key}`, "aria-selected": "false",
        "aria-controls": "list", tabindex: "-1", "data-tab": tab.key, part: "tab",
      }, tab.label);
      if (tab.key === "unread") {
        button._count = el("span", {class: "count", hidden: true});
        button.append(button._count);
      }
      button.addEventListener("click", () => this._selectTab(tab.key));
      return button;
    });
    this._tablist = el("div", {role: "tablist", "aria-label": "Show"}, ...this._tabs);
    this._tablist.addEventListener("keydown", (e) => this._onTabKey(e));
    this._workspaceSelect = el("select", {"aria-label": "Workspace", part: "workspace-filter"});
    this._workspaceSelect.addEventListener("change", () => this._setWorkspace(this._workspaceSelect.value || null));
    this._workspaceLabel = el("label", {class: "workspace"}, this._workspaceSelect);
    this._banner = el("div", {class: "banner", role: "status", part: "banner", hidden: true});
    this._feed = el("ul", {class: "feed", id: "list", role: "feed", "aria-labelledby": "heading", "aria-busy": "false", part: "list"});
    this._feed.addEventListener("keydown", (e) => this._onItemKey(e));
    this._feed.addEventListener("click", (e) => this._onItemClick(e));
    this._feed.addEventListener("focusin", (e) => {
      const article = e.target.closest && e.target.closest(".item");
      if (article && article.dataset.id !== this._activeId) this._setActive(article.dataset.id);
    });
    this._placeholder = el("p", {class: "placeholder", part: "placeholder", hidden: true});
    this._more = el("button", {type: "button", class: "more", text: "Load more", hidden: true, part: "load-more"});
    this._more.addEventListener("click", () => { this._stuckCursor = null; this._loadMore(); });
    this._scroller = el("div", {class: "scroller", part: "scroller"}, this._feed, this._placeholder, this._more);
    this._scroller.addEventListener("scroll", () => this._maybeLoadMore(), {passive: true});
    this._toast = el("div", {class: "toast", role: "status", part: "toast", hidden: true});
    this._root = el("section", {class: "inbox", part: "inbox", "aria-labelledby": "heading"},
      el("header", {}, this._heading, this._markAll),
      el("div", {class: "bar"}, this._tablist, this._workspaceLabel),
      this._banner, this._scroller, this._toast);
    root.append(this._root);
  }

  static get observedAttributes() {
    return ["heading"];
  }

  attributeChangedCallback(name, _old, value) {
    if (name === "heading") this._heading.textContent = value || "Notifications";
  }

  /** The store this inbox renders (createInbox of pulsestack.js). */
  get store() {
    return this._store;
  }

  set store(store) {
    if (store === this._store) return;
    // A dismissal waiting for its undo goes to the store it was made in, while that is signed in.
    if (this._pending && this._store && this._state().status !== "signed-out") this._commitPending();
    else this._dropPending();
    this._detach();
    this._store = store || null;
    this._rows.forEach(({row}) => row.remove());
    this._rows.clear();
    this._activeId = null;
    this._error = null;
    this._stuckCursor = null;
    this._loadingMore = false;
    this._knownWorkspaces.clear();
    this._scannedItems = null;
    if (this.isConnected) {
      this._attach();
      this._render();
    }
  }

  /** Workspaces to name in the filter and on items: [{id, slug, name}] (GET /api/me's list). */
  get workspaces() {
    return this._workspaces;
  }

  set workspaces(list) {
    this._workspaces = Array.isArray(list) ? list.map((w) => ({id: w.id, slug: w.slug, name: w.name || w.slug})) : null;
    this._workspaceNames = new Map((this._workspaces || []).map((w) => [w.id, w.name]));
    this._queueRender();
  }

  connectedCallback() {
    upgradeProperties(this, ["store", "workspaces"]);
    this._attach();
    this._resize = new ResizeObserver(() => this._maybeLoadMore());
    this._resize.observe(this._scroller);
    this._tick = setInterval(() => this._refreshTimes(), 30000);
    this._onPageHide = () => this._commitPending();
    window.addEventListener("pagehide", this._onPageHide);
  }

  disconnectedCallback() {
    clearInterval(this._tick);
    if (this._resize) this._resize.disconnect();
    window.removeEventListener("pagehide", this._onPageHide);
    this._commitPending();
    this._detach();
  }

  /** Move focus into the list: the item last focused, else the first; the tabs when the list is empty. */
  focusList() {
    const article = this._activeArticle() || this._firstArticle();
    if (article) article.focus();
    else (this._tabs.find((t) => t.getAttribute("aria-selected") === "true") || this._tabs[0]).focus();
  }

  focus() {
    this.focusList();
  }

  _attach() {
    if (!this._store || this._unsubscribe) return;
    const unsubscribe = this._store.subscribe(() => this._queueRender());
    this._unsubscribe = typeof unsubscribe === "function" ? unsubscribe : () => {};
    this._render();
  }

  _detach() {
    if (this._unsubscribe) this._unsubscribe();
    this._unsubscribe = null;
  }

  _state() {
    const state = (this._store && this._store.getState()) || {};
    return {
      unread: state.unread || {total: 0, workspaces: {}},
      unseen: state.unseen || {total: 0, workspaces: {}},
      items: Array.isArray(state.items) ? state.items : [],
      nextCursor: state.nextCursor || null,
      status: state.status || "connecting",
      filter: state.filter || {},
      loading: !!state.loading,
    };
  }

  _queueRender() {
    if (this._renderQueued) return;
    this._renderQueued = true;
    queueMicrotask(() => {
      this._renderQueued = false;
      if (this.isConnected) this._render();
    });
  }

  // -- rendering --------------------------------------------------------------

  _visibleItems(state) {
    // The store keeps only items that match its filter; what is hidden here
    // is what waits for its undo.
    return state.items.filter((item) => !this._hidden.has(item.id));
  }

  _render() {
    const state = this._state();
    this.dataset.status = state.status;
    const tab = tabOf(state.filter);
    for (const button of this._tabs) {
      const selected = button.dataset.tab === tab;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      if (button._count) {
        button._count.hidden = !state.unread.total;
        button._count.textContent = !state.unread.total ? "" : badgeText(state.unread.total);
      }
    }
    this._markAll.disabled = !state.unread.total || state.status === "signed-out";
    this._renderWorkspaces(state);

    const signedOut = state.status === "signed-out";
    const items = signedOut ? [] : this._visibleItems(state);
    if (state.items !== this._scannedItems) { // the store hands over a new array only when the items change
      this._scannedItems = state.items;
      for (const item of state.items) {
        if (item.workspace_id && item.workspace_slug && !this._knownWorkspaces.has(item.workspace_id)) {
          this._knownWorkspaces.set(item.workspace_id, {id: item.workspace_id, slug: item.workspace_slug, name: item.workspace_slug});
        }
      }
    }
    this._renderItems(items, state.nextCursor);

    const loading = !signedOut && items.length === 0 && (state.status === "connecting" || state.loading);
    this._feed.setAttribute("aria-busy", String(loading || this._loadingMore));
    this._feed.hidden = items.length === 0;
    this._placeholder.hidden = items.length > 0;
    if (signedOut) this._placeholder.textContent = "You are signed out.";
    else if (loading) this._placeholder.textContent = "Loading notifications…";
    else if (state.status === "offline" && items.length === 0) this._placeholder.textContent = "Can't reach the server right now.";
    else this._placeholder.textContent = (TABS.find((t) => t.key === tab) || TABS[0]).empty;
    this._more.hidden = signedOut || !state.nextCursor;
    this._more.textContent = this._loadingMore ? "Loading…" : "Load more";

    this._renderBanner(state, items.length);
    this._maybeLoadMore();
  }

  _renderBanner(state, shown) {
    let text = null;
    let kind = "info";
    let retry = null;
    if (this._error) {
      ({text, retry} = this._error);
      kind = "error";
    } else if (state.status === "offline") {
      text = shown ? "Offline. Reconnecting…" : null;
      if (this._store && typeof this._store.reconnect === "function") retry = () => this._store.reconnect();
    } else if (state.status === "connecting" && shown) {
      text = "Reconnecting…";
    }
    const key = JSON.stringify([text, kind, !!retry]);
    if (key === this._bannerKey && this._error === this._bannerError) return; // (a new error brings a new retry)
    this._bannerKey = key;
    this._bannerError = this._error;
    this._banner.hidden = !text;
    this._banner.className = `banner ${kind}`;
    this._banner.replaceChildren();
    if (!text) return;
    this._banner.append(el("span", {text}));
    if (retry && kind !== "error") {
      this._banner.append(el("button", {type: "button", class: "text-button", text: "Retry now", on: {click: retry}}));
    }
    if (kind === "error") {
      if (retry) {
        this._banner.append(el("button", {type: "button", class: "text-button", text: "Retry",
          on: {click: () => { this._error = null; this._stuckCursor = null; retry(); }}}));
      }
      this._banner.append(el("button", {type: "button", class: "text-button", text: "Dismiss", "aria-label": "Dismiss this message",
        on: {click: () => { this._error = null; this._queueRender(); }}}));
    }
  }

  _workspaceList() {
    if (this._workspaces) return this._workspaces;
    return [...this._knownWorkspaces.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  _renderWorkspaces(state) {
    const list = this._workspaceList();
    const current = state.filter.workspace || "";
    const show = list.length > 1 || (current && list.length > 0);
    this._workspaceLabel.hidden = !show;
    if (!show) return;
    const options = [["", `All workspaces${state.unread.total ? ` (${state.unread.total})` : ""}`]];
    for (const ws of list) {
      const n = state.unread.workspaces[ws.id] || 0;
      options.push([ws.slug, `${ws.name}${n ? ` (${n})` : ""}`]);
    }
    if (current && !list.some((ws) => ws.slug === current)) options.push([current, current]);
    const select = this._workspaceSelect;
    const same = select.options.length === options.length &&
      options.every(([value, label], i) => select.options[i].value === value && select.options[i].textContent === label);
    if (!same) select.replaceChildren(...options.map(([value, label]) => el("option", {value, text: label})));
    select.value = current;
  }

  _workspaceName(item) {
    return this._workspaceNames.get(item.workspace_id) || item.workspace_slug || "";
  }

  _renderItems(items, nextCursor) {
    const wanted = new Set(items.map((item) => item.id));
    const setSize = nextCursor ? "-1" : String(items.length);
    const focusedId = this._focusedItemId();
    const shown = [...this._feed.children].map((row) => row.firstElementChild.dataset.id); // display order
    let focusFallback = null;
    for (const [id, entry] of this._rows) {
      if (!wanted.has(id)) {
        if (id === focusedId || id === this._activeId) focusFallback = this._neighbour(shown, id, wanted);
        entry.row.remove();
        this._rows.delete(id);
      }
    }
    let previous = null;
    items.forEach((item, index) => {
      let entry = this._rows.get(item.id);
      if (!entry) {
        entry = this._createRow(item.id);
        this._rows.set(item.id, entry);
      }
      this._updateRow(entry, item, index, setSize);
      const expectedAt = previous ? previous.nextSibling : this._feed.firstChild;
      if (expectedAt !== entry.row) this._feed.insertBefore(entry.row, expectedAt);
      previous = entry.row;
    });
    if (!this._activeId || !this._rows.has(this._activeId)) {
      this._activeId = focusFallback && this._rows.has(focusFallback) ? focusFallback : items.length ? items[0].id : null;
    }
    this._applyRoving();
    if (focusedId && !this._rows.has(focusedId)) {
      // The focused item went away (archived, dismissed, filtered): keep focus in the list.
      const next = this._activeArticle();
      if (next) next.focus();
      else this.focusList();
    }
  }

  /** The item shown after `id` (else before it) that stays in the list. */
  _neighbour(order, id, wanted) {
    const at = order.indexOf(id);
    for (let i = at + 1; i < order.length; i++) if (wanted.has(order[i])) return order[i];
    for (let i = at - 1; i >= 0; i--) if (wanted.has(order[i])) return order[i];
    return null;
  }

  _createRow(id) {
    const parts = {};
    parts.dot = el("span", {class: "dot", "aria-hidden": "true"});
    parts.state = el("span", {class: "sr-only"});
    parts.titleText = el("span", {class: "title-text", part: "title"});
    parts.title = el("p", {class: "title", id: `t-${id}`}, parts.state, parts.titleText);
    parts.message = el("p", {class: "message", id: `m-${id}`, part: "message"});
    parts.workspace = el("span", {class: "ws"});
    parts.time = el("time", {});
    parts.urlSlot = el("span", {class: "url-slot"});
    parts.meta = el("div", {class: "meta", id: `d-${id}`}, parts.workspace, parts.time, parts.urlSlot);
    parts.read = el("button", {type: "button", "data-action": "read"});
    parts.archive = el("button", {type: "button", "data-action": "archive"});
    parts.dismiss = el("button", {type: "button", "data-action": "dismiss", "aria-label": "Dismiss", title: "Dismiss"}, icon("dismiss"));
    parts.actions = el("div", {class: "actions", part: "actions"}, parts.read, parts.archive, parts.dismiss);
    const article = el("article", {
      class: "item", tabindex: "-1", "data-id": id, part: "item",
      "aria-labelledby": `t-${id}`, "aria-describedby": `m-${id} d-${id}`,
    }, parts.dot, el("div", {class: "body"}, parts.title, parts.message, parts.meta), parts.actions);
    const row = el("li", {role: "none"}, article);
    return {row, article, parts, key: null, tabbable: null};
  }

  _updateRow(entry, item, index, size) {
    const {article, parts} = entry;
    const workspaceName = this._workspaceName(item);
    const key = JSON.stringify([item.title, item.message, item.url, item.is_read, item.archived, item.created_at,
      item.workspace_id, item.workspace_slug, workspaceName]);
    article.setAttribute("aria-posinset", String(index + 1));
    article.setAttribute("aria-setsize", size);
    entry.item = item;
    if (entry.key === key) return;
    entry.key = key;
    article.classList.toggle("unread", !item.is_read);
    article.classList.toggle("archived", !!item.archived);
    parts.state.textContent = item.is_read ? "" : "Unread: ";
    parts.titleText.textContent = item.title || "";
    parts.message.textContent = item.message || "";
    parts.workspace.textContent = workspaceName;
    parts.workspace.hidden = !parts.workspace.textContent;
    parts.time.setAttribute("datetime", item.created_at || "");
    parts.time.title = fullTime(item.created_at);
    parts.time.textContent = relativeTime(item.created_at);
    if (entry.url !== item.url) { // (kept otherwise, so a focused link stays focused)
      entry.url = item.url;
      const href = safeHref(item.url);
      parts.urlSlot.replaceChildren();
      if (href) {
        parts.urlSlot.append(el("a", {class: "url", href, rel: "noopener noreferrer", part: "link", "data-action": "open", text: item.url}));
      } else if (item.url) {
        parts.urlSlot.append(el("span", {class: "url", text: item.url}));
      }
      parts.link = href ? parts.urlSlot.firstChild : null;
      entry.tabbable = null; // a new link: _applyRoving sets its tabIndex
    }
    const readLabel = item.is_read ? "Mark unread" : "Mark read";
    parts.read.setAttribute("aria-label", readLabel);
    parts.read.title = readLabel;
    parts.read.replaceChildren(icon(item.is_read ? "unread" : "read"));
    const archiveLabel = item.archived ? "Unarchive" : "Archive";
    parts.archive.setAttribute("aria-label", archiveLabel);
    parts.archive.title = archiveLabel;
    parts.archive.replaceChildren(icon(item.archived ? "unarchive" : "archive"));
  }

  _refreshTimes() {
    for (const {parts, item} of this._rows.values()) {
      if (item) parts.time.textContent = relativeTime(item.created_at);
    }
  }

  // -- roving focus --------------------------------------------------------

  _firstArticle() {
    const first = this._feed.firstElementChild;
    return first ? first.firstElementChild : null;
  }

  _activeArticle() {
    const entry = this._activeId && this._rows.get(this._activeId);
    return entry ? entry.article : null;
  }

  _focusedItemId() {
    const active = this.shadowRoot.activeElement;
    const article = active && active.closest && active.closest(".item");
    return article ? article.dataset.id : null;
  }

  _setActive(id) {
    this._activeId = id;
    this._applyRoving();
  }

  /** One item and its controls in the tab order, the active one; the rest reached by arrow keys.
   * Only rows whose part changed are touched (`entry.tabbable`: what was last applied). */
  _applyRoving() {
    for (const [id, entry] of this._rows) {
      const active = id === this._activeId;
      if (entry.tabbable === active) continue;
      entry.tabbable = active;
      entry.article.tabIndex = active ? 0 : -1;
      for (const control of entry.article.querySelectorAll("button, a")) control.tabIndex = active ? 0 : -1;
    }
  }

  _move(article, where) {
    const rows = [...this._feed.children];
    const at = rows.indexOf(article.parentElement);
    let target = at;
    if (where === "next") target = Math.min(rows.length - 1, at + 1);
    else if (where === "prev") target = Math.max(0, at - 1);
    else if (where === "first") target = 0;
    else if (where === "last") target = rows.length - 1;
    const next = rows[target] && rows[target].firstElementChild;
    if (next) {
      this._setActive(next.dataset.id);
      next.focus();
      next.scrollIntoView({block: "nearest"});
    }
    if (where === "next" || where === "last") this._maybeLoadMore();
  }

  // -- events -------------------------------------------------------------

  _onTabKey(event) {
    const at = this._tabs.indexOf(event.target);
    if (at < 0) return;
    let next = null;
    if (event.key === "ArrowRight") next = (at + 1) % this._tabs.length;
    else if (event.key === "ArrowLeft") next = (at - 1 + this._tabs.length) % this._tabs.length;
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = this._tabs.length - 1;
    else if (event.key === "ArrowDown") {
      const article = this._activeArticle() || this._firstArticle();
      if (article) {
        event.preventDefault();
        article.focus();
      }
      return;
    } else return;
    event.preventDefault();
    this._tabs[next].focus();
    this._selectTab(this._tabs[next].dataset.tab);
  }

  _onItemKey(event) {
    const article = event.target.closest && event.target.closest(".item");
    if (!article || event.altKey || event.ctrlKey || event.metaKey) return;
    const id = article.dataset.id;
    const onItem = event.target === article;
    switch (event.key) {
      case "ArrowDown": case "PageDown": this._move(article, "next"); break;
      case "ArrowUp": case "PageUp": this._move(article, "prev"); break;
      case "Home": if (!onItem) return; this._move(article, "first"); break;
      case "End": if (!onItem) return; this._move(article, "last"); break;
      case "Enter": if (!onItem) return; this._open(id, event); break;
      case "r": case "R": case "u": case "U": if (!onItem) return; this._toggleRead(id); break;
      case "a": case "A": case "e": case "E": if (!onItem) return; this._toggleArchive(id); break;
      case "Delete": case "Backspace": if (!onItem) return; this._dismiss(id); break;
      default: return;
    }
    event.preventDefault();
  }

  _onItemClick(event) {
    const article = event.target.closest && event.target.closest(".item");
    if (!article) return;
    const id = article.dataset.id;
    const action = event.target.closest("[data-action]");
    switch (action && action.dataset.action) {
      case "read": this._toggleRead(id); break;
      case "archive": this._toggleArchive(id); break;
      case "dismiss": this._dismiss(id); break;
      case "open": this._followLink(id, event); break;
      default: this._markRead(id);
    }
  }

  _item(id) {
    const entry = this._rows.get(id);
    return entry && entry.item;
  }

  /** Run a store action; one that fails (the store's actions answer false, or throw) says so
   * in the banner, with a retry. */
  _act(fn, failure) {
    const store = this._store;
    if (!store || this._state().status === "signed-out") return Promise.resolve(false);
    const report = (error) => {
      if (this._store !== store || this._state().status === "signed-out") return;
      this._error = {text: errorText(error, failure), retry: () => this._act(fn, failure)};
      this._queueRender();
    };
    return run(fn()).then((ok) => {
      if (ok === false) report(null);
      return ok;
    }, (error) => {
      report(error);
      return false;
    });
  }

  _markRead(id) {
    const item = this._item(id);
    if (!item || item.is_read) return Promise.resolve();
    return this._act(() => this._store.markRead(id), "Couldn't mark it read");
  }

  _toggleRead(id) {
    const item = this._item(id);
    if (!item) return;
    if (item.is_read) this._act(() => this._store.markUnread(id), "Couldn't mark it unread");
    else this._markRead(id);
    this._dispatch("pulse-read", {id, read: !item.is_read});
  }

  _open(id, event) {
    const entry = this._rows.get(id);
    if (!entry) return;
    this._dispatch("pulse-open", {id, item: entry.item});
    if (entry.parts.link) this._followLink(id, event);
    else this._markRead(id);
  }

  _followLink(id, event) {
    const entry = this._rows.get(id);
    const link = entry && entry.parts.link;
    if (!link) return;
    const opened = this._dispatch("pulse-navigate", {id, item: entry.item, href: link.href}, true);
    const newTab = event && (event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1);
    if (!opened) {
      if (event) event.preventDefault();
      this._markRead(id);
      return;
    }
    if (newTab) {
      this._markRead(id);
      return;
    }
    // Mark it read first (briefly), so leaving the page does not cancel the request.
    if (event) event.preventDefault();
    const go = () => window.location.assign(link.href);
    Promise.race([this._markRead(id), new Promise((resolve) => setTimeout(resolve, 1000))]).then(go, go);
  }

  _toggleArchive(id) {
    const item = this._item(id);
    if (!item) return;
    if (item.archived) {
      this._act(() => this._store.unarchive(id), "Couldn't unarchive it");
      this._showToast(null);
      return;
    }
    this._commitPending();
    this._act(() => this._store.archive(id), "Couldn't archive it");
    this._pending = {kind: "archive", id, title: item.title, wasUnread: !item.is_read,
      timer: setTimeout(() => this._commitPending(), UNDO_MS)};
    this._showToast("Archived");
    this._dispatch("pulse-archive", {id});
  }

  _dismiss(id) {
    const item = this._item(id);
    if (!item) return;
    this._commitPending();
    // Deleting a receipt cannot be undone on the server, so it waits for the undo to run out.
    this._hidden.add(id);
    this._pending = {kind: "dismiss", id, title: item.title, wasUnread: !item.is_read,
      timer: setTimeout(() => this._commitPending(), UNDO_MS)};
    this._showToast("Dismissed");
    this._dispatch("pulse-dismiss", {id});
    this._render();
  }

  _commitPending() {
    const pending = this._pending;
    if (!pending) return;
    this._pending = null;
    clearTimeout(pending.timer);
    this._showToast(null);
    if (pending.kind === "dismiss" && this._store) {
      const store = this._store;
      this._act(() => store.dismiss(pending.id), "Couldn't dismiss it").then(() => {
        this._hidden.delete(pending.id); // gone from the store's list, or back in it when that failed
        this._queueRender();
      });
    }
  }

  _dropPending() {
    if (!this._pending) return;
    clearTimeout(this._pending.timer);
    this._pending = null;
    this._hidden.clear();
    this._showToast(null);
  }

  _undo() {
    const pending = this._pending;
    if (!pending) return;
    this._pending = null;
    clearTimeout(pending.timer);
    if (pending.kind === "dismiss") {
      this._hidden.delete(pending.id);
      this._render();
    } else {
      const store = this._store;
      this._act(async () => {
        const back = await store.unarchive(pending.id);
        return pending.wasUnread && back !== false ? store.markUnread(pending.id) : back;
      }, "Couldn't undo");
    }
    this._showToast(null);
    this._setActive(pending.id);
    queueMicrotask(() => {
      const article = this._activeArticle();
      if (article) article.focus();
    });
  }

  _showToast(text) {
    this._toast.replaceChildren();
    this._toast.hidden = !text;
    if (!text) return;
    this._toast.append(el("span", {text: `${text}: `}), el("span", {text: this._pending ? this._pending.title : ""}),
      el("button", {type: "button", class: "text-button", text: "Undo", part: "undo", on: {click: () => this._undo()}}));
  }

  _markAllRead() {
    this._act(() => this._store.markAllRead(), "Couldn't mark everything read");
  }

  _selectTab(key) {
    const tab = TABS.find((t) => t.key === key);
    if (!tab || !this._store || this._state().status === "signed-out") return;
    if (tabOf(this._state().filter) === key) return;
    this._changeFilter(tab.filter);
  }

  _setWorkspace(slug) {
    if (!this._store || this._state().status === "signed-out") return;
    this._changeFilter({workspace: slug});
  }

  /** Show another list: the store's filter with `patch` over it, from the top. */
  _changeFilter(patch) {
    this._commitPending();
    this._activeId = null;
    this._scroller.scrollTop = 0;
    // The store retries a list that failed to load by itself; its status says when it is offline.
    this._error = null;
    run(this._store.setFilter({...this._state().filter, ...patch})).catch(() => {});
    this._queueRender();
  }

  _loadMore() {
    const state = this._state();
    if (!this._store || this._loadingMore || !state.nextCursor || state.status === "signed-out") return;
    const cursor = state.nextCursor;
    const filter = state.filter;
    const store = this._store;
    this._loadingMore = true;
    this._queueRender();
    const finished = (ok, error) => {
      this._loadingMore = false;
      const now = this._state();
      // Still the same list and page: a failure (the store answers false) says so, with a retry.
      if (this._store === store && now.filter === filter && now.nextCursor === cursor && now.status !== "signed-out") {
        if (ok === false || error) {
          this._error = {text: errorText(error, "Couldn't load more"), retry: () => this._loadMore()};
        } else {
          this._stuckCursor = cursor; // a page that brought nothing: scrolling does not ask again (the button can)
        }
      }
      this._queueRender();
    };
    run(store.loadMore()).then((ok) => finished(ok, null), (error) => finished(false, error));
  }

  _maybeLoadMore() {
    if (this._loadingMore || this._more.hidden || this._error) return;
    if (this._stuckCursor && this._stuckCursor === this._state().nextCursor) return;
    const scroller = this._scroller;
    if (!scroller.isConnected || scroller.clientHeight === 0) return; // not shown
    if (scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= NEAR_END_PX) this._loadMore();
  }

  _dispatch(name, detail, cancelable = false) {
    return this.dispatchEvent(new CustomEvent(name, {detail, bubbles: true, composed: true, cancelable}));
  }
}

// ---------------------------------------------------------------------------
// <pulse-bell>
// ---------------------------------------------------------------------------

export class PulseBell extends HTMLElement {
  constructor() {
    super();
    this._store = null;
    this._unsubscribe = null;
    this._offNotification = null;
    this._announceQueue = [];
    this._announceTimer = null;
    const root = this.attachShadow({mode: "open", delegatesFocus: true});
    root.adoptedStyleSheets = [THEME, BELL_STYLE];
    this._badge = el("span", {class: "badge", part: "badge", "aria-hidden": "true", hidden: true});
    this._button = el("button", {type: "button", class: "bell", part: "button", "aria-expanded": "false"}, icon("bell"), this._badge);
    this._button.addEventListener("click", () => this.toggle());
    this._live = el("span", {class: "sr-only", role: "status", "aria-live": "polite", "aria-atomic": "true", part: "live"});
    this._panel = el("div", {class: "panel", id: "panel", part: "panel", hidden: true}, el("slot"));
    root.append(this._button, this._live, this._panel);
    this._onKeyDown = (e) => this._keydown(e);
    this._onOutside = (e) => this._outside(e);
    this.addEventListener("keydown", this._onKeyDown);
  }

  static get observedAttributes() {
    return ["count", "for", "label", "open"];
  }

  attributeChangedCallback(name, old, value) {
    if (name === "open") {
      if ((old === null) !== (value === null)) this._applyOpen(value !== null);
    } else {
      if (name === "for") this._bindPanel();
      this._render();
    }
  }

  get store() {
    return this._store;
  }

  set store(store) {
    if (store === this._store) return;
    const old = this._store;
    this._detach();
    this._store = store || null;
    const panel = this.panel;
    if (old && panel && panel.store === old) panel.store = this._store; // the one it was handed goes with it
    if (this.isConnected) this._attach();
    this._render();
  }

  /** The <pulse-inbox> this bell opens: the element named by `for`, else its first child <pulse-inbox>. */
  get panel() {
    const id = this.getAttribute("for");
    if (id) {
      const root = this.getRootNode();
      return (root.getElementById ? root.getElementById(id) : document.getElementById(id)) || null;
    }
    return this.querySelector("pulse-inbox");
  }

  get open() {
    return this.hasAttribute("open");
  }

  set open(value) {
    this.toggleAttribute("open", !!value);
  }

  show() {
    this.open = true;
  }

  hide({focus = false} = {}) {
    this.open = false;
    if (focus) this._button.focus();
  }

  toggle() {
    this.open = !this.open;
  }

  connectedCallback() {
    upgradeProperties(this, ["store", "open"]);
    this._attach();
    this._bindPanel();
    this._applyOpen(this.open, {quiet: !this.open});
  }

  disconnectedCallback() {
    this._detach();
    document.removeEventListener("pointerdown", this._onOutside, true);
    if (this._boundPanel) this._boundPanel.removeEventListener("keydown", this._onKeyDown);
    this._boundPanel = null;
  }

  _attach() {
    if (!this._store || this._unsubscribe) return;
    const store = this._store;
    const unsubscribe = store.subscribe(() => this._render());
    this._unsubscribe = typeof unsubscribe === "function" ? unsubscribe : () => {};
    const off = store.on ? store.on("notification", (item) => this._arrived(item)) : null;
    this._offNotification = typeof off === "function" ? off : null;
    const panel = this.panel;
    if (panel && "store" in panel && !panel.store) panel.store = store;
    this._render();
  }

  _detach() {
    if (this._unsubscribe) this._unsubscribe();
    if (this._offNotification) this._offNotification();
    this._unsubscribe = this._offNotification = null;
  }

  _bindPanel() {
    const panel = this.isConnected ? this.panel : null;
    if (this._boundPanel && this._boundPanel !== panel) this._boundPanel.removeEventListener("keydown", this._onKeyDown);
    this._boundPanel = null;
    if (!panel) return;
    if (this._store && "store" in panel && !panel.store) panel.store = this._store;
    if (this.getAttribute("for")) {
      // A panel elsewhere in the page: its keys (Escape) come here too, and the bell shows and hides it.
      panel.addEventListener("keydown", this._onKeyDown);
      this._boundPanel = panel;
      panel.hidden = !this.open;
      if ("ariaControlsElements" in this._button) this._button.ariaControlsElements = [panel];
      this._button.removeAttribute("aria-controls");
    } else {
      this._button.setAttribute("aria-controls", "panel");
    }
  }

  _render() {
    const state = (this._store && this._store.getState()) || {};
    const kind = this.getAttribute("count") === "unread" ? "unread" : "unseen";
    const counts = state[kind] || {};
    const n = Number(counts.total) || 0;
    this.dataset.status = state.status || "connecting";
    this._badge.hidden = n === 0 || state.status === "signed-out";
    this._badge.textContent = badgeText(n);
    const label = this.getAttribute("label") || "Notifications";
    this._button.setAttribute("aria-label", state.status === "signed-out" ? `${label}, signed out` : `${label}, ${n} ${kind}`);
  }

  _arrived(item) {
    if (!item) return;
    this._announceQueue.push(item.title || "");
    clearTimeout(this._announceTimer);
    // Arrivals of one push are announced together.
    this._announceTimer = setTimeout(() => {
      const titles = this._announceQueue.splice(0);
      const text = titles.length === 1
        ? `New notification: ${titles[0]}`
        : `${titles.length} new notifications: ${titles.join("; ")}`;
      this._live.textContent = "";
      requestAnimationFrame(() => { this._live.textContent = text; });
    }, 150);
    if (this.open && this._store && document.visibilityState === "visible") this._markSeen();
  }

  _markSeen() {
    const store = this._store;
    // Not on a signed-out store: an action there starts it over (pulsestack.js), which is the app's call.
    if (!store || !store.markSeen || store.getState().status === "signed-out") return;
    run(store.markSeen()).catch(() => {});
  }

  _applyOpen(open, {quiet = false} = {}) {
    if (this.getAttribute("for") && !this._boundPanel) this._bindPanel();
    this._button.setAttribute("aria-expanded", String(open));
    const panel = this.panel;
    if (this.getAttribute("for")) {
      this._panel.hidden = true;
      if (panel) panel.hidden = !open;
    } else {
      this._panel.hidden = !open;
      if (open) this._place();
    }
    if (open) {
      document.addEventListener("pointerdown", this._onOutside, true);
      this._markSeen();
      if (panel && panel.focusList) queueMicrotask(() => panel.focusList());
    } else {
      document.removeEventListener("pointerdown", this._onOutside, true);
    }
    if (!quiet) this.dispatchEvent(new CustomEvent("pulse-toggle", {detail: {open}, bubbles: true, composed: true}));
  }

  /** Without an `align` attribute the panel opens on the side where it fits the window. */
  _place() {
    const panel = this._panel;
    panel.classList.remove("start", "narrow");
    panel.style.top = "";
    if (this.hasAttribute("align")) return;
    const margin = 8;
    const rect = this.getBoundingClientRect();
    const width = panel.offsetWidth;
    if (rect.right - width >= margin) return; // the default: its right edge under the bell's
    if (rect.left + width <= window.innerWidth - margin) panel.classList.add("start");
    else {
      panel.classList.add("narrow");
      panel.style.top = `${Math.round(rect.bottom + margin)}px`;
    }
  }

  _keydown(event) {
    if (event.key !== "Escape" || !this.open) return;
    event.preventDefault();
    event.stopPropagation();
    this.hide({focus: true});
  }

  _outside(event) {
    const path = event.composedPath();
    const panel = this.panel;
    if (path.includes(this) || (panel && path.includes(panel))) return;
    this.hide();
  }
}

if (!customElements.get("pulse-inbox")) customElements.define("pulse-inbox", PulseInbox);
if (!customElements.get("pulse-bell")) customElements.define("pulse-bell", PulseBell);
