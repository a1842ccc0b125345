// The PulseStack web app at `/`: sign in or register, the bell and inbox
// (one store from pulsestack.js), sending to a workspace, its members.
//
// It talks to this server's API with the token in the Authorization header
// (never in a URL) and keeps the token in localStorage. Every piece of text
// from the server or a user is set with textContent, never as HTML.

import {createInbox} from "./pulsestack.js";
import {badgeText} from "./components.js";

const TOKEN_KEY = "pulsestack.token";
const WORKSPACE_KEY = "pulsestack.workspace";
const MEMBER_PAGES = 10; // at most 1,000 members in the pickers

const $ = (id) => document.getElementById(id);

const ui = {
  loading: $("loading"),
  bootError: $("boot-error"),
  bootErrorText: $("boot-error-text"),
  session: $("session"),
  switcher: $("workspace-switcher"),
  bell: $("bell"),
  inbox: $("inbox"),
  meEmail: $("me-email"),
  signOut: $("sign-out"),
  auth: $("auth"),
  authMessage: $("auth-message"),
  signInForm: $("sign-in-form"),
  registerForm: $("register-form"),
  home: $("home"),
  noWorkspace: $("no-workspace"),
  compose: $("compose-form"),
  recipients: $("recipients"),
  members: $("members"),
  memberList: $("member-list"),
  addMember: $("add-member-form"),
  newWorkspace: $("new-workspace"),
  newWorkspaceForm: $("new-workspace-form"),
};

/** The signed-in state: {token, user, workspaces, store, slug, members}; null when signed out. */
let session = null;

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message, details = {}, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
    this.retryAfter = retryAfter;
  }
}

async function request(method, path, {token, body, headers = {}} = {}) {
  const init = {method, headers: {Accept: "application/json", ...headers}};
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "Can't reach the server. Check the connection and try again.");
  }
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(resp.status, error.code || "error", error.message || `The server answered ${resp.status}.`,
      error.details, resp.headers.get("Retry-After"));
  }
  return data;
}

/** A call with the session's token; a 401 ends the session. */
async function call(method, path, body, headers) {
  const current = session;
  if (!current) throw new ApiError(401, "unauthorized", "Signed out.");
  try {
    return await request(method, path, {token: current.token, body, headers});
  } catch (error) {
    if (error.status === 401 && session === current) endSession("expired");
    throw error;
  }
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context; this does not
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------------------
// Small UI helpers
// ---------------------------------------------------------------------------

function show(node, visible) {
  node.hidden = !visible;
}

function setText(node, text) {
  node.textContent = text || "";
  if (node.classList.contains("form-error") || node.classList.contains("notice")) node.hidden = !text;
}

/** Clear a form's error and status lines (ids `<prefix>-error`, `<prefix>-status`). */
function clearMessages(prefix) {
  setText($(`${prefix}-error`), "");
  $(`${prefix}-status`).textContent = "";
}

function busy(form, on) {
  for (const control of form.querySelectorAll("button, input, select, textarea")) control.disabled = on;
  form.setAttribute("aria-busy", String(on));
}

function minutes(seconds) {
  const s = Number(seconds) || 60;
  return s < 90 ? `${s} seconds` : `${Math.ceil(s / 60)} minutes`;
}

function roleCanBroadcast(workspace) {
  return (session && session.user.system_role === "admin") || workspace.role === "owner" || workspace.role === "admin";
}

function currentWorkspace() {
  return session && session.workspaces.find((w) => w.slug === session.slug);
}

// ---------------------------------------------------------------------------
// Screens
// ---------------------------------------------------------------------------

function showAuth(message = "", {register = false} = {}) {
  show(ui.loading, false);
  show(ui.bootError, false);
  show(ui.session, false);
  show(ui.home, false);
  show(ui.auth, true);
  setText(ui.authMessage, message);
  show(ui.signInForm, !register);
  show(ui.registerForm, register);
  setText($("sign-in-error"), "");
  setText($("register-error"), "");
  $("sign-in-password").value = "";
  $("register-password").value = "";
  document.title = "Sign in · PulseStack";
  (register ? $("register-email") : $("sign-in-email")).focus();
}

function showBootError(text) {
  show(ui.loading, false);
  show(ui.bootError, true);
  ui.bootErrorText.textContent = text;
}

async function boot() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) return showAuth();
  show(ui.loading, true);
  show(ui.bootError, false);
  try {
    const me = await request("GET", "/api/me", {token});
    startSession(token, me);
  } catch (error) {
    if (error.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      showAuth("Your session has ended. Sign in again.");
    } else {
      showBootError(`PulseStack could not load: ${error.message}`);
    }
  }
}

function startSession(token, me) {
  if (session) endSession(null, {keepToken: true});
  localStorage.setItem(TOKEN_KEY, token);
  const store = createInbox({token});
  session = {token, user: me.user, workspaces: me.workspaces || [], store, slug: null, members: [], membersError: ""};
  const mine = session;
  // A refused token: the store turns `signed-out` (before it emits `auth-expired`).
  store.subscribe(() => {
    if (session !== mine) return;
    const state = store.getState();
    if (state.status === "signed-out") {
      endSession("expired");
      return;
    }
    const unread = (state.unread && state.unread.total) || 0;
    document.title = unread ? `(${badgeText(unread)}) PulseStack` : "PulseStack";
  });
  ui.inbox.workspaces = session.workspaces;
  ui.inbox.store = store;
  ui.bell.store = store;

  show(ui.loading, false);
  show(ui.bootError, false);
  show(ui.auth, false);
  show(ui.session, true);
  show(ui.home, true);
  ui.meEmail.textContent = me.user.email;
  document.title = "PulseStack";
  const remembered = localStorage.getItem(WORKSPACE_KEY);
  const first = session.workspaces.find((w) => w.slug === remembered) || session.workspaces[0];
  renderWorkspaces(first ? first.slug : null);
}

/** Leave the signed-in state. reason: "expired" (the server ended it), "signed-out" (this user), or null. */
function endSession(reason, {keepToken = false} = {}) {
  const ending = session;
  if (!ending) return;
  session = null;
  ui.bell.open = false;
  ui.bell.store = null;
  ui.inbox.store = null;
  ui.inbox.workspaces = null;
  try {
    ending.store.close();
  } catch {
    // a store that failed to close is gone anyway
  }
  if (!keepToken && localStorage.getItem(TOKEN_KEY) === ending.token) localStorage.removeItem(TOKEN_KEY);
  if (reason === null) return;
  const messages = {
    expired: "You were signed out. Sign in again to continue.",
    "signed-out": "You signed out.",
    elsewhere: "You signed out in another tab.",
  };
  showAuth(messages[reason] || "");
  $("sign-in-email").value = ending.user.email;
  if (reason !== "signed-out") $("sign-in-password").focus();
}

async function signOut() {
  const ending = session;
  if (!ending) return;
  endSession("signed-out");
  try {
    await request("POST", "/api/auth/logout", {token: ending.token});
  } catch {
    // the token is gone from this browser either way
  }
}

// ---------------------------------------------------------------------------
// Sign in and register
// ---------------------------------------------------------------------------

function authError(error, registering) {
  if (error.status === 401) return "Wrong email or password.";
  if (error.status === 429) return `Too many attempts. Try again in ${minutes(error.retryAfter || (error.details || {}).retry_after)}.`;
  if (error.status === 409) return "An account with this email already exists. Sign in instead.";
  if (error.status === 403 && registering) return "Registration is closed on this server. Ask an administrator for an account.";
  if (error.status === 422) {
    const details = error.details || {};
    const problems = [];
    if (details.email) problems.push("Enter a valid email address.");
    if (details.password) problems.push(registering ? "The password needs at least 8 characters." : "Enter your password.");
    return problems.join(" ") || error.message;
  }
  return error.message;
}

async function submitAuth(event, registering) {
  event.preventDefault();
  const form = registering ? ui.registerForm : ui.signInForm;
  const prefix = registering ? "register" : "sign-in";
  const email = $(`${prefix}-email`).value.trim();
  const password = $(`${prefix}-password`).value;
  const errorNode = $(`${prefix}-error`);
  if (!email || !password) {
    setText(errorNode, "Enter your email and password.");
    (email ? $(`${prefix}-password`) : $(`${prefix}-email`)).focus();
    return;
  }
  setText(errorNode, "");
  busy(form, true);
  try {
    const issued = await request("POST", registering ? "/api/auth/register" : "/api/auth/login", {body: {email, password}});
    const me = await request("GET", "/api/me", {token: issued.token});
    busy(form, false);
    form.reset();
    startSession(issued.token, me);
    (session && session.workspaces.length === 0 ? $("new-workspace-name") : ui.bell).focus();
  } catch (error) {
    busy(form, false);
    setText(errorNode, authError(error, registering));
    $(`${prefix}-password`).focus();
  }
}

// ---------------------------------------------------------------------------
// Workspaces, compose, members
// ---------------------------------------------------------------------------

function renderWorkspaces(slug) {
  const list = session.workspaces;
  ui.switcher.replaceChildren(...list.map((w) => {
    const option = document.createElement("option");
    option.value = w.slug;
    option.textContent = w.name;
    return option;
  }));
  ui.switcher.closest("label").hidden = list.length === 0;
  ui.inbox.workspaces = list;
  show(ui.noWorkspace, list.length === 0);
  $("no-workspace-email").textContent = session.user.email;
  ui.newWorkspace.open = list.length === 0;
  selectWorkspace(slug);
}

function selectWorkspace(slug) {
  session.slug = slug;
  const workspace = currentWorkspace();
  show(ui.compose, !!workspace);
  if (!workspace) {
    show(ui.members, false);
    return;
  }
  ui.switcher.value = slug;
  localStorage.setItem(WORKSPACE_KEY, slug);
  $("compose-workspace").textContent = `to ${workspace.name}`;
  $("members-workspace").textContent = `of ${workspace.name}`;
  const canBroadcast = roleCanBroadcast(workspace);
  show($("audience-broadcast-choice"), canBroadcast);
  $("audience-broadcast").checked = canBroadcast;
  $("audience-direct").checked = !canBroadcast;
  ui.compose.dataset.key = "";
  clearMessages("compose");
  show(ui.members, canBroadcast);
  clearMessages("add-member");
  session.members = [];
  session.membersError = "";
  renderRecipients();
  renderMembers();
  loadMembers();
}

async function loadMembers() {
  const current = session;
  const slug = current.slug;
  const members = [];
  let cursor = null;
  try {
    for (let page = 0; page < MEMBER_PAGES; page++) {
      const query = new URLSearchParams({limit: "100"});
      if (cursor) query.set("cursor", cursor);
      const answer = await call("GET", `/api/workspaces/${encodeURIComponent(slug)}/members?${query}`);
      members.push(...answer.items);
      cursor = answer.next_cursor;
      if (!cursor) break;
    }
  } catch (error) {
    if (session === current && current.slug === slug) {
      current.membersError = `Couldn't load the members: ${error.message}`;
      renderRecipients();
      renderMembers();
    }
    return;
  }
  if (session !== current || current.slug !== slug) return; // switched meanwhile
  current.members = members;
  current.membersError = "";
  renderRecipients();
  renderMembers();
}

function listNote(text) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = text;
  return li;
}

/** A member as the pickers show them: the email, "(you)" after the signed-in user's. */
function memberName(member) {
  return member.email + (member.user_id === session.user.id ? " (you)" : "");
}

function renderRecipients() {
  const checked = new Set([...ui.recipients.querySelectorAll("input:checked")].map((i) => i.value));
  const direct = $("audience-direct").checked;
  ui.recipients.hidden = !direct;
  ui.recipients.replaceChildren(...session.members.map((member) => {
    const label = document.createElement("label");
    label.className = "choice";
    const input = document.createElement("input");
    input.type = "checkbox";
    input.name = "recipient";
    input.value = member.user_id;
    input.checked = checked.has(member.user_id);
    label.append(input, ` ${memberName(member)}`);
    return label;
  }));
  if (session.membersError || session.members.length === 0) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = session.membersError || "Loading members…";
    ui.recipients.append(p);
  }
}

function renderMembers() {
  const members = session.members;
  ui.memberList.replaceChildren(...members.map((member) => {
    const li = document.createElement("li");
    const email = document.createElement("span");
    email.className = "member-email";
    email.textContent = memberName(member);
    const role = document.createElement("span");
    role.className = `role role-${member.role}`;
    role.textContent = member.role;
    li.append(email, role);
    return li;
  }));
  if (session.membersError || members.length === 0) ui.memberList.append(listNote(session.membersError || "Loading…"));
}

const COMPOSE_FIELDS = {title: "Title", message: "Message", url: "Link", recipients: "Recipients", broadcast: "Audience"};

async function submitCompose(event) {
  event.preventDefault();
  const workspace = currentWorkspace();
  if (!workspace) return;
  const errorNode = $("compose-error");
  const status = $("compose-status");
  clearMessages("compose");
  const title = $("compose-title").value.trim();
  const message = $("compose-message").value;
  const url = $("compose-url").value.trim();
  const broadcast = $("audience-broadcast").checked && roleCanBroadcast(workspace);
  const recipients = [...ui.recipients.querySelectorAll("input:checked")].map((i) => i.value);
  if (!title) {
    setText(errorNode, "Give the notification a title.");
    $("compose-title").focus();
    return;
  }
  if (!broadcast && recipients.length === 0) {
    setText(errorNode, "Choose at least one member to send to.");
    return;
  }
  const body = {title, message, ...(url ? {url} : {}), ...(broadcast ? {broadcast: true} : {recipients})};
  // One key per message the user means to send: a retry after a lost answer sends nothing twice.
  const fingerprint = JSON.stringify([workspace.slug, body]);
  if (ui.compose.dataset.fingerprint !== fingerprint || !ui.compose.dataset.key) {
    ui.compose.dataset.fingerprint = fingerprint;
    ui.compose.dataset.key = randomKey();
  }
  busy(ui.compose, true);
  try {
    const answer = await call("POST", `/api/workspaces/${encodeURIComponent(workspace.slug)}/notifications`, body,
      {"Idempotency-Key": ui.compose.dataset.key});
    ui.compose.dataset.key = "";
    $("compose-title").value = "";
    $("compose-message").value = "";
    $("compose-url").value = "";
    const n = answer.recipient_count;
    status.textContent = `Sent to ${n} ${n === 1 ? "person" : "people"}.`;
  } catch (error) {
    if (error.status === 422) {
      const details = error.details || {};
      const problems = Object.keys(details).map((field) => {
        const problem = Array.isArray(details[field]) ? "not members of this workspace" : details[field];
        return `${COMPOSE_FIELDS[field] || field}: ${problem}`;
      });
      setText(errorNode, problems.length ? problems.join(". ") : error.message);
    } else if (error.status === 403) {
      setText(errorNode, "Only admins and the owner can send to everyone.");
    } else if (error.status !== 401) {
      setText(errorNode, `Not sent: ${error.message}`);
    }
  } finally {
    busy(ui.compose, false);
  }
}

async function submitAddMember(event) {
  event.preventDefault();
  const workspace = currentWorkspace();
  if (!workspace) return;
  const errorNode = $("add-member-error");
  const status = $("add-member-status");
  clearMessages("add-member");
  const email = $("add-member-email").value.trim();
  const role = $("add-member-role").value;
  if (!email) {
    setText(errorNode, "Enter the email of someone who has an account.");
    $("add-member-email").focus();
    return;
  }
  busy(ui.addMember, true);
  try {
    const member = await call("POST", `/api/workspaces/${encodeURIComponent(workspace.slug)}/members`, {email, role});
    $("add-member-email").value = "";
    status.textContent = `Added ${member.email}.`;
    loadMembers();
  } catch (error) {
    if (error.status === 404 && error.details && error.details.email) setText(errorNode, "There is no account with this email. They need to register first.");
    else if (error.status === 409) setText(errorNode, "They are already a member.");
    else if (error.status === 422) setText(errorNode, "Enter a valid email address.");
    else if (error.status !== 401) setText(errorNode, error.message);
  } finally {
    busy(ui.addMember, false);
    $("add-member-email").focus();
  }
}

async function submitNewWorkspace(event) {
  event.preventDefault();
  const errorNode = $("new-workspace-error");
  setText(errorNode, "");
  const name = $("new-workspace-name").value.trim();
  if (!name) {
    setText(errorNode, "Give the workspace a name.");
    $("new-workspace-name").focus();
    return;
  }
  busy(ui.newWorkspaceForm, true);
  try {
    const created = await call("POST", "/api/workspaces", {name});
    const me = await call("GET", "/api/me");
    session.workspaces = me.workspaces;
    $("new-workspace-name").value = "";
    renderWorkspaces(created.slug);
    $("compose-title").focus();
  } catch (error) {
    if (error.status !== 401) setText(errorNode, error.status === 422 ? "Give the workspace a name (at most 200 characters)." : error.message);
  } finally {
    busy(ui.newWorkspaceForm, false);
  }
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

ui.signInForm.addEventListener("submit", (e) => submitAuth(e, false));
ui.registerForm.addEventListener("submit", (e) => submitAuth(e, true));
$("show-register").addEventListener("click", () => {
  $("register-email").value = $("sign-in-email").value;
  showAuth("", {register: true});
});
$("show-sign-in").addEventListener("click", () => {
  $("sign-in-email").value = $("register-email").value;
  showAuth("");
});
$("boot-retry").addEventListener("click", () => boot());
ui.signOut.addEventListener("click", () => signOut());
ui.switcher.addEventListener("change", () => selectWorkspace(ui.switcher.value));
ui.compose.addEventListener("submit", submitCompose);
ui.compose.addEventListener("change", (e) => {
  if (e.target.name === "audience") renderRecipients();
});
ui.addMember.addEventListener("submit", submitAddMember);
ui.newWorkspaceForm.addEventListener("submit", submitNewWorkspace);

// Another tab signed in or out: follow it.
window.addEventListener("storage", (event) => {
  if (event.key !== TOKEN_KEY && event.key !== null) return;
  const token = localStorage.getItem(TOKEN_KEY);
  if (session && token !== session.token) {
    endSession(token ? null : "elsewhere", {keepToken: true});
    if (token) boot();
  } else if (!session && token) {
    boot();
  }
});

boot();
