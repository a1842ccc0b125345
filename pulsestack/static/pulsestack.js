// PulseStack browser store: unread counts and the inbox list of one user, kept
// live over one websocket per browser and user, with catch-up after every
// (re)connect and optimistic updates. No dependency, no build step; the
// reference is docs/client.md ("The store: createInbox"), the protocol
// docs/websocket.md. The store holds data only: it never turns text into HTML.

const TIMING = { backoffMin: 500, backoffMax: 30000, stable: 30000, ping: 25000, pong: 10000, request: 30000, catchUpPages: 10 };
const ZERO = Object.freeze({ total: 0, workspaces: Object.freeze({}) });
const FILTER_KEYS = ["workspace", "status", "archived", "type"];
const STALE = {}; // thrown when the list an answer was for is gone (filter changed, signed out, closed)
const AUTH = {}; // thrown after a 401 (the store is signed out by then)

function freeze(o) {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const k in o) freeze(o[k]);
  }
  return o;
}

function normFilter(f) {
  const out = {};
  for (const k of FILTER_KEYS) if (f && f[k] != null && f[k] !== "") out[k] = String(f[k]);
  return freeze(out);
}

// Does the item (or a `changed` state, which has no workspace or type) belong in a list with this filter?
function matches(it, f) {
  return (!f.workspace || it.workspace_slug === f.workspace) && (!f.type || it.type === f.type) &&
    (f.status === "unread" ? !it.is_read : f.status === "read" ? !!it.is_read : true) &&
    (f.archived === "only" ? !!it.archived : f.archived === "include" ? true : !it.archived);
}

// Newest first: created_at (six fractional digits, so text order is time order), then id (UUIDv7).
const newer = (a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

const counts = (c) => freeze({ total: (c && c.total) | 0, workspaces: { ...(c && c.workspaces) } });

// The API's timestamp format (six fractional digits), for optimistic read_at / archived_at.
const now = () => new Date().toISOString().replace("Z", "000Z");

async function digest(text) {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(bytes.slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

export function createInbox({ baseUrl = "", token, getToken, filter = {}, pageSize = 50, timing } = {}) {
  const t = { ...TIMING, ...timing };
  pageSize = Math.min(100, Math.max(1, pageSize | 0 || 50));
  const base = String(baseUrl).replace(/\/+$/, "");
  const wsUrl = new URL(base + "/ws", location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
  const tabId = Math.random().toString(36).slice(2);
  const canShare = typeof navigator !== "undefined" && navigator.locks && typeof BroadcastChannel === "function" &&
    typeof crypto !== "undefined" && crypto.subtle;

  let state = freeze({ unread: ZERO, unseen: ZERO, items: [], nextCursor: null, status: "connecting",
    filter: normFilter(filter), loading: false });
  const subscribers = new Set();
  const handlers = {};

  // Lifecycle: `life` changes when the store signs out, starts over or closes (everything of the
  // old life is ignored); `gen` changes when the list it shows is replaced by another one.
  let life = 0, gen = 0, dead = false, closed = false;
  // Tabs: the owner holds the lock and the socket; followers get its frames on the channel.
  let owner = false, channel = null, lockAbort = null, releaseLock = null;
  // A signed-out owner keeps its lock (so no other tab reconnects with the dead token) until it
  // starts over or closes.
  let deadLock = null;
  // The owner's socket. `live`: its `ready` came. `up`: this store has a live server feed (own or relayed).
  let ws = null, live = false, up = false, conn = "connecting", attempt = 0;
  const timers = {};
  // Frames wait here while a list fetch is in flight, and are applied after it.
  let busy = 0, queue = [];
  let syncing = null, want = 0, wantCounts = false, syncTries = 0, more = null;
  // Optimistic updates: what the server said since an update started wins over its rollback.
  let epoch = 0, listAt = 0, countsAt = 0, pending = 0;
  // The list has had its first page (items that frames added before it do not count).
  let loaded = false;
  const touched = new Map();

  function report(e) {
    queueMicrotask(() => { throw e; });
  }

  function set(patch) {
    state = freeze({ ...state, ...patch });
    for (const fn of [...subscribers]) try { fn(); } catch (e) { report(e); }
  }

  function emit(name, arg) {
    for (const fn of [...(handlers[name] || [])]) try { fn(arg); } catch (e) { report(e); }
  }

  function setStatus(s) {
    if (state.status !== s) {
      set({ status: s });
      emit("connection", s);
    }
  }

  function post(msg) {
    if (channel) try { channel.postMessage(msg); } catch { /* closed */ }
  }

  function setConn(s) {
    conn = s;
    post({ s });
    setStatus(s);
  }

  // --- the list ---------------------------------------------------------------------------------

  function merge(add, list = state.items) {
    const byId = new Map(list.map((i) => [i.id, i]));
    for (const it of add) byId.set(it.id, freeze(it));
    return [...byId.values()].filter((i) => matches(i, state.filter)).sort(newer);
  }

  function mark(ids) {
    epoch++;
    if (pending) for (const id of ids) touched.set(id, epoch);
  }

  function setCounts(c) {
    countsAt = ++epoch;
    set({ unread: counts(c), unseen: counts(c && c.unseen) });
  }

  function bump(deltas) {
    if (!deltas.length) return;
    const u = { ...state.unread.workspaces }, s = { ...state.unseen.workspaces };
    let ut = state.unread.total, st = state.unseen.total;
    const add = (m, w, d) => {
      m[w] = (m[w] || 0) + d;
      if (m[w] <= 0) delete m[w];
    };
    for (const [w, du, ds] of deltas) {
      if (du) { ut += du; add(u, w, du); }
      if (ds) { st += ds; add(s, w, ds); }
    }
    set({ unread: counts({ total: Math.max(0, ut), workspaces: u }), unseen: counts({ total: Math.max(0, st), workspaces: s }) });
  }

  // --- HTTP -------------------------------------------------------------------------------------

  async function currentToken() {
    return (getToken ? await getToken() : token) || null;
  }

  // For the socket: the token, null when there is none (signed out), undefined when getToken failed.
  async function socketToken() {
    try {
      return await currentToken();
    } catch {
      return undefined;
    }
  }

  // This tab's socket has nothing to do: signed out, closed, or another tab holds it.
  const idle = () => dead || closed || !owner;

  async function api(method, path, body) {
    const l = life;
    const tk = await currentToken();
    if (l !== life) throw STALE;
    if (!tk) { signOut(); throw AUTH; }
    const headers = { Authorization: "Bearer " + tk };
    if (body) headers["Content-Type"] = "application/json";
    const signal = AbortSignal.timeout ? AbortSignal.timeout(t.request) : undefined; // a request that hangs fails
    const res = await fetch(base + path, { method, headers, body: body && JSON.stringify(body), cache: "no-store", signal });
    if (res.status === 401) {
      if (l === life) signOut();
      throw AUTH;
    }
    if (!res.ok) throw Object.assign(new Error(method + " " + path + ": " + res.status), { status: res.status });
    return res.status === 204 ? null : res.json();
  }

  function list(f, params) {
    const q = new URLSearchParams(f);
    for (const k in params) if (params[k] != null) q.set(k, params[k]);
    return api("GET", "/api/notifications?" + q);
  }

  function done() {
    busy--;
    while (!busy && queue.length) frame(queue.shift());
  }

  // Bring the list up to date: kind 1 catches up after the newest item held (the first page when
  // nothing is held or the id is gone), kind 2 reloads the first page; `withCounts` fetches the
  // counts too (a follower that joined after the owner's `ready`). Frames wait until it is done.
  function sync(kind, withCounts) {
    want = Math.max(want, kind);
    wantCounts = wantCounts || !!withCounts;
    if (syncing || dead || closed) return syncing || Promise.resolve(false);
    busy++;
    syncing = (async () => {
      let ok = false;
      try {
        while (want && !dead && !closed) {
          const k = want, c = wantCounts, g = gen;
          want = 0;
          wantCounts = false;
          try {
            await fetchList(k, c, g);
            ok = true;
          } catch (e) {
            ok = false;
            if (e === STALE || e === AUTH || g !== gen) continue;
            if (e.status < 500 && e.status !== 429) { // refused (a filter the server rejects): no retry
              if (up) setStatus("ready");
              continue;
            }
            clearTimeout(timers.sync);
            if (up) timers.sync = setTimeout(() => sync(k, c), backoff(syncTries++));
          }
        }
      } finally {
        syncing = null;
        if (!closed) set({ loading: false });
        done();
      }
      return ok;
    })();
    set({ loading: true }); // after `syncing` is set: a subscriber may call back in
    return syncing;
  }

  async function fetchList(kind, withCounts, g) {
    const check = (v) => { if (g !== gen) throw STALE; return v; };
    const f = state.filter;
    if (withCounts) setCounts(check(await api("GET", "/api/notifications/unread-count")));
    let first = kind === 2 || !loaded || !state.items.length;
    if (!first) {
      const got = [], after = state.items[0].id;
      let cursor = null, pages = 0;
      do {
        let page;
        try {
          page = check(await list(f, { after, limit: 100, cursor }));
        } catch (e) {
          if (e.status !== 404) throw e;
          first = true; // the id is gone: the first page instead
          break;
        }
        got.push(...page.items);
        cursor = page.next_cursor;
        if (cursor && ++pages >= t.catchUpPages) first = true; // too much missed to merge: the first page
      } while (cursor && !first);
      if (!first) {
        mark(got.map((i) => i.id));
        set({ items: merge(got) });
      }
    }
    if (first) {
      const page = check(await list(f, { limit: pageSize }));
      listAt = ++epoch;
      loaded = true;
      set({ items: merge(page.items, []), nextCursor: page.next_cursor });
    }
    syncTries = 0;
    if (up) setStatus("ready");
  }

  // --- frames (from this tab's socket, or relayed by the owning tab) ----------------------------

  function frame(f) {
    if (busy) return void queue.push(f);
    switch (f.type) {
      case "ready":
        up = true;
        setCounts(f.unread);
        sync(1);
        break;
      case "unread":
        setCounts(f);
        break;
      case "refresh":
        sync(2);
        break;
      case "notification": {
        const it = f.item;
        if (!it || !it.id) break;
        mark([it.id]);
        if (matches(it, state.filter)) set({ items: merge([it]) });
        emit("notification", freeze(it));
        break;
      }
      case "changed": {
        const states = new Map((f.items || []).map((s) => [s.id, s]));
        const removed = new Set(f.removed || []);
        mark([...states.keys(), ...removed]);
        const held = state.items, oldest = held.length ? held[held.length - 1].id : null, complete = state.nextCursor == null;
        const items = [];
        for (const it of held) {
          if (removed.has(it.id)) continue;
          const s = states.get(it.id);
          states.delete(it.id);
          items.push(s ? { ...it, is_read: s.is_read, read_at: s.read_at, archived: s.archived, archived_at: s.archived_at,
            is_seen: it.is_seen || !!s.is_read } : it);
        }
        set({ items: merge([], items) });
        // An item this list does not hold that should now be in it (unarchived in an inbox of
        // unarchived items, marked unread in an unread list): reload, when the filter is one a
        // state can be checked against and the item is within the loaded range.
        const f2 = state.filter;
        if (!f2.workspace && !f2.type) {
          for (const s of states.values()) {
            if (matches(s, f2) && (complete || s.id > oldest)) { sync(2); break; }
          }
        }
        break;
      }
      // pong, error and unknown types: nothing to do
    }
  }

  // --- the socket (owning tab only) -------------------------------------------------------------

  function backoff(n) {
    const d = Math.min(t.backoffMax, t.backoffMin * 2 ** Math.min(n, 30));
    return d / 2 + Math.random() * d / 2;
  }

  function stopSocket() {
    for (const k of ["ping", "pong", "stable", "retry"]) clearTimeout(timers[k]);
    timers.pong = 0;
    const sock = ws;
    ws = null;
    live = false;
    if (sock && sock !== 1) {
      sock.onopen = sock.onmessage = sock.onclose = sock.onerror = null;
      try { sock.close(1000); } catch { /* already closing */ }
    }
  }

  async function connect() {
    clearTimeout(timers.retry);
    if (ws || idle()) return;
    const l = life;
    ws = 1; // opening (the status stays what it is until the socket opens: no flicker while retrying)
    const tk = await socketToken();
    if (l !== life || ws !== 1) return;
    if (tk === null) return signOut();
    if (tk === undefined) return dropped(1006); // getToken failed: try again later
    const sock = ws = new WebSocket(wsUrl.href);
    sock.onopen = () => {
      setConn("connecting");
      sock.send(JSON.stringify({ type: "auth", token: tk }));
    };
    sock.onmessage = (e) => {
      let f;
      try { f = JSON.parse(e.data); } catch { return; }
      if (!f || typeof f !== "object") return;
      if (f.type === "pong") {
        clearTimeout(timers.pong);
        timers.pong = 0;
        return void schedulePing();
      }
      if (f.type === "error") return;
      if (f.type === "ready") {
        live = true;
        timers.stable = setTimeout(() => { attempt = 0; }, t.stable);
        schedulePing();
      }
      post({ f });
      frame(f);
    };
    sock.onclose = (e) => {
      if (ws === sock) dropped(e.code);
    };
  }

  function dropped(code) {
    stopSocket();
    if (code === 4401) return signOut();
    up = false;
    if (idle()) return;
    setConn("offline");
    timers.retry = setTimeout(connect, backoff(attempt++));
  }

  function schedulePing() {
    clearTimeout(timers.ping);
    timers.ping = setTimeout(ping, t.ping);
  }

  function ping() {
    if (!live || timers.pong) return;
    try { ws.send('{"type":"ping"}'); } catch { /* closing */ }
    timers.pong = setTimeout(() => dropped(1006), t.pong); // no pong: the connection is dead, whatever the browser thinks
  }

  // `online`, or the tab became visible: retry now if waiting, check the socket if connected.
  function kick() {
    if (idle()) return;
    if (live) ping();
    else if (!ws) connect();
  }

  function onVisible() {
    if (document.visibilityState === "visible") kick();
  }

  // --- tabs -------------------------------------------------------------------------------------

  function relayed(m) {
    if (m.s === "signed-out") return signOut();
    if (m.hello) {
      if (owner) post({ to: m.hello, s: conn, up: live });
      return;
    }
    if (owner || (m.to && m.to !== tabId)) return;
    if (m.f) return frame(m.f);
    if (m.up) {
      up = true;
      sync(1, true);
    } else if (m.s) {
      up = false;
      setStatus(m.s);
    }
  }

  async function start() {
    const l = life;
    const tk = await socketToken();
    if (l !== life) return;
    if (tk === undefined) {
      timers.start = setTimeout(start, backoff(attempt++)); // getToken failed: try again later
      return;
    }
    if (tk === null) return signOut();
    if (!canShare) {
      owner = true;
      return connect();
    }
    const key = "pulsestack:" + await digest(wsUrl.href + "\n" + tk);
    if (l !== life) return;
    channel = new BroadcastChannel(key);
    channel.onmessage = (e) => { if (l === life && e.data) relayed(e.data); };
    lockAbort = new AbortController();
    navigator.locks.request(key, { signal: lockAbort.signal }, () => {
      if (l !== life) return;
      owner = true;
      up = false;
      connect();
      return new Promise((resolve) => { releaseLock = resolve; });
    }).catch(() => { /* aborted: signed out or closed */ });
    post({ hello: tabId });
  }

  function teardown(keepLock) {
    life++;
    gen++;
    clearTimeout(timers.sync);
    clearTimeout(timers.start);
    stopSocket();
    owner = live = up = false;
    queue = [];
    if (keepLock) deadLock = releaseLock;
    else {
      if (releaseLock) releaseLock();
      freeLock();
    }
    if (lockAbort) lockAbort.abort();
    if (channel) channel.close();
    channel = lockAbort = releaseLock = null;
  }

  function freeLock() {
    if (deadLock) deadLock();
    deadLock = null;
  }

  function signOut() {
    if (dead || closed) return;
    dead = true;
    post({ s: "signed-out" });
    teardown(true);
    clear("signed-out");
    emit("connection", "signed-out");
    emit("auth-expired");
  }

  // Nothing of a signed-out session stays in the state.
  function clear(status) {
    loaded = false;
    listAt = ++epoch;
    countsAt = ++epoch;
    set({ unread: ZERO, unseen: ZERO, items: [], nextCursor: null, loading: false, status });
  }

  // After signing out, an explicit call starts over: a token again (getToken), empty state.
  function restart() {
    dead = false;
    freeLock();
    attempt = syncTries = 0;
    clear("connecting");
    emit("connection", "connecting");
    start();
  }

  // --- actions ----------------------------------------------------------------------------------

  const path = (id, action) => "/api/notifications/" + encodeURIComponent(id) + (action ? "/" + action : "");
  const find = (id) => state.items.find((i) => i.id === id);

  // Apply `patch` (or removal, when null) to the held items `pick` chooses, and the count deltas
  // ([workspace id, unread, unseen]), at once; returns what a rollback needs.
  function optimistic(pick, patch, deltas) {
    const prev = new Map(), items = [];
    for (const it of state.items) {
      if (!pick(it)) items.push(it);
      else {
        prev.set(it.id, it);
        if (patch) items.push({ ...it, ...patch(it) });
      }
    }
    set({ items: merge([], items) });
    const made = new Map(state.items.map((i) => [i.id, i]));
    bump(deltas);
    return { prev, made, deltas };
  }

  function rollback({ prev, made, deltas }, at) {
    const current = new Map(state.items.map((i) => [i.id, i]));
    const back = [];
    if (listAt <= at) {
      for (const [id, old] of prev) {
        if (!(touched.get(id) > at) && current.get(id) === made.get(id)) back.push(old);
      }
    }
    if (back.length) set({ items: merge(back) });
    if (countsAt <= at) bump(deltas.map(([w, u, s]) => [w, -u, -s]));
  }

  async function mutate(method, url, body, change) {
    if (closed) return false;
    if (dead) { restart(); return false; }
    const at = epoch, l = life;
    pending++;
    const undo = change && change();
    let ok = false;
    try {
      await api(method, url, body);
      ok = true;
    } catch {
      if (undo && l === life) rollback(undo, at);
    } finally {
      if (!--pending) touched.clear();
    }
    return ok;
  }

  const unreadDelta = (it) => (it.is_read ? [] : [[it.workspace_id, -1, it.is_seen ? 0 : -1]]);
  const readPatch = (i) => ({ is_read: true, read_at: i.read_at || now(), is_seen: true });
  const byId = (id) => (i) => i.id === id;

  function one(id, action, skip, patch, deltas, method = "POST") {
    const it = find(id);
    if (it && skip(it)) return Promise.resolve(true); // already so: nothing to send
    return mutate(method, path(id, action), null, it && (() => optimistic(byId(id), patch, deltas(it))));
  }

  // The workspace id of a slug, from the items held (counts are keyed by id).
  const wsId = (slug) => (state.items.find((i) => i.workspace_slug === slug) || {}).workspace_id;

  function scopeDeltas(slug, withUnread) {
    const ids = slug ? [wsId(slug)].filter(Boolean) : Object.keys({ ...state.unread.workspaces, ...state.unseen.workspaces });
    return ids.map((w) => [w, withUnread ? -(state.unread.workspaces[w] || 0) : 0, -(state.unseen.workspaces[w] || 0)]);
  }

  if (typeof window !== "undefined") {
    window.addEventListener("online", kick);
    document.addEventListener("visibilitychange", onVisible);
  }
  start();

  return {
    getState: () => state,
    subscribe(fn) {
      subscribers.add(fn);
      return () => subscribers.delete(fn);
    },
    on(name, fn) {
      (handlers[name] = handlers[name] || new Set()).add(fn);
      return () => handlers[name].delete(fn);
    },
    loadMore() {
      if (closed) return Promise.resolve(false);
      if (dead) { restart(); return Promise.resolve(false); }
      if (more) return more;
      const cursor = state.nextCursor, at = listAt, g = gen;
      if (!cursor) return Promise.resolve(false);
      busy++;
      more = list(state.filter, { cursor, limit: pageSize }).then((page) => {
        if (at !== listAt || g !== gen) return false;
        mark(page.items.map((i) => i.id));
        set({ items: merge(page.items), nextCursor: page.next_cursor });
        return true;
      }, () => false).finally(() => {
        more = null;
        if (!closed) set({ loading: syncing != null });
        done();
      });
      set({ loading: true });
      return more;
    },
    setFilter(f) {
      if (closed) return Promise.resolve(false);
      gen++;
      listAt = ++epoch;
      loaded = false;
      set({ filter: normFilter(f), items: [], nextCursor: null });
      if (dead) { restart(); return Promise.resolve(false); }
      return sync(2);
    },
    markRead: (id) => one(id, "read", (i) => i.is_read, readPatch, unreadDelta),
    markUnread: (id) => one(id, "unread", (i) => !i.is_read, () => ({ is_read: false, read_at: null }),
      (i) => (i.is_read ? [[i.workspace_id, 1, 0]] : [])),
    archive: (id) => one(id, "archive", (i) => i.archived, (i) => ({ ...readPatch(i), archived: true, archived_at: now() }), unreadDelta),
    unarchive: (id) => one(id, "unarchive", (i) => !i.archived, () => ({ archived: false, archived_at: null }), () => []),
    dismiss: (id) => one(id, "", () => false, null, unreadDelta, "DELETE"),
    // Everything unread up to the newest item shown (in the filtered workspace, if any).
    markAllRead() {
      const slug = state.filter.workspace, before = state.items.length ? state.items[0].created_at : null;
      const body = {};
      if (before) body.before = before;
      if (slug) body.workspace = slug;
      return mutate("POST", "/api/notifications/read-all", body, () => optimistic(
        (i) => !i.is_read && (!slug || i.workspace_slug === slug) && (!before || i.created_at <= before),
        readPatch, scopeDeltas(slug, true)));
    },
    // The bell was opened: nothing unread so far is unseen any more (in one workspace, if given).
    markSeen(arg) {
      const slug = typeof arg === "string" ? arg : arg && arg.workspace;
      return mutate("POST", "/api/notifications/seen", slug ? { workspace: slug } : {}, () => optimistic(
        (i) => !i.is_seen && (!slug || i.workspace_slug === slug), () => ({ is_seen: true }), scopeDeltas(slug, false)));
    },
    // Retry now (after signing out: start over, with a token from getToken).
    reconnect() {
      if (closed) return;
      if (dead) restart();
      else kick();
    },
    close() {
      if (closed) return;
      closed = true;
      teardown();
      if (typeof window !== "undefined") {
        window.removeEventListener("online", kick);
        document.removeEventListener("visibilitychange", onVisible);
      }
    },
  };
}
