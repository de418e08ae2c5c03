// The console's single page: sign-in, the header (operator, roles, step-up, live
// state), hash routes to the pages, the live event stream, and the actions (each asks
// for a reason, answers step-up with a TOTP prompt, and reports the node's answer).

import { ApiError, get, onSignedOut, post, setCsrf } from "./api.js";
import { ask, Cancelled, withStepUp } from "./dialogs.js";
import { fill, h } from "./dom.js";
import * as pages from "./pages.js";

// Roles whose strategy commands reach only the strategies assigned to the operator
// (the ASSIGNED cells of bastion.security.roles); the console and node check again.
const ASSIGNED_ONLY_ROLES = new Set(["trader"]);
const EQUITY_REFRESH_MS = 2000;

const ctx = {
  me: null,
  nodes: new Map(),
  equity: new Map(),
  may: (command) => Boolean(ctx.me && ctx.me.may && ctx.me.may[command]),
  mayStrategy: (command, strategy) =>
    ctx.may(command) &&
    (ctx.me.roles.some((r) => !ASSIGNED_ONLY_ROLES.has(r)) || ctx.me.strategies.includes(strategy)),
  confirmAct,
  formAct,
};

const ROUTES = [
  ["overview", "Overview", ""],
  ["strategies", "Strategies", "strategies"],
  ["risk", "Risk", "risk"],
  ["kill", "Kill switch", "kill"],
  ["approvals", "Approvals", "approvals"],
  ["audit", "Audit", "audit"],
];

const el = {
  header: document.querySelector("[data-testid=topbar]"),
  nav: document.querySelector("[data-testid=nav]"),
  main: document.querySelector("main"),
  flash: document.querySelector("[data-testid=flash]"),
};

// ---- sign-in and session -------------------------------------------------------------

function signedIn(me) {
  ctx.me = me;
  setCsrf(me.csrf);
  document.body.classList.remove("signed-out");
  renderHeader();
  startEvents();
  if (location.pathname !== "/") history.replaceState(null, "", `/${location.hash || "#/"}`);
  route();
}

function signedOut() {
  ctx.me = null;
  setCsrf(null);
  stopEvents();
  ctx.nodes.clear();
  document.body.classList.add("signed-out");
  fill(el.header);
  fill(el.nav);
  showLogin();
}
onSignedOut(signedOut);

function showLogin() {
  const error = h("p", { class: "error", role: "alert", testid: "login-error" });
  const input = (name, label, type, autocomplete, extra = {}) =>
    h("label", { class: "field" }, h("span", {}, label), h("input", { name, type, autocomplete, required: true, testid: `login-${name}`, ...extra }));
  const form = h(
    "form",
    { class: "card login", testid: "login-form" },
    h("h1", {}, "Sign in to bastion"),
    input("name", "Name", "text", "username"),
    input("password", "Password", "password", "current-password"),
    input("totp", "Authenticator code", "text", "one-time-code", { inputmode: "numeric", pattern: "[0-9]{6,8}" }),
    error,
    h("button", { type: "submit", class: "primary", testid: "login-submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const values = Object.fromEntries(new FormData(form).entries());
    try {
      const answer = await post("/api/login", values);
      setCsrf(answer.csrf);
      await enter({ ...answer.user, csrf: answer.csrf });
    } catch (e) {
      error.textContent = e instanceof ApiError && e.status === 429 ? "Too many attempts; wait and try again." : "Sign-in refused.";
      form.elements.totp.value = "";
    }
  });
  fill(el.main, form);
  form.elements.name.focus();
}

async function signOut() {
  try {
    await post("/api/logout", {});
  } finally {
    signedOut();
  }
}

// ---- header, step-up indicator, flash ------------------------------------------------

function renderHeader() {
  const me = ctx.me;
  fill(
    el.header,
    h("a", { class: "brand", href: "#/" }, "bastion"),
    h("span", { class: "live", testid: "live" }, "connecting"),
    h("span", { class: "step-up", testid: "step-up-state" }),
    h(
      "span",
      { class: "me", testid: "me" },
      h("strong", { testid: "me-name" }, me.name),
      " ",
      h("span", { class: "muted", testid: "me-roles" }, me.roles.join(", ")),
    ),
    h("button", { type: "button", class: "secondary", testid: "sign-out", onclick: signOut }, "Sign out"),
  );
  fill(
    el.nav,
    ROUTES.map(([id, label, hash]) =>
      h("a", { href: `#/${hash}`, testid: `nav-${id}` }, label, id === "approvals" ? h("span", { class: "count", testid: "approvals-count" }) : null),
    ),
  );
  tick();
}

function tick() {
  if (!ctx.me) return;
  const left = Math.floor(((ctx.me.step_up_until_ms || 0) - Date.now()) / 1000);
  const indicator = el.header.querySelector("[data-testid=step-up-state]");
  if (indicator) {
    indicator.textContent = left > 0 ? `stepped up for ${left} s` : "";
    indicator.classList.toggle("on", left > 0);
  }
  for (const countdown of el.main.querySelectorAll(".countdown[data-until]")) {
    const s = Math.max(0, Math.floor((Number(countdown.dataset.until) - Date.now()) / 1000));
    countdown.textContent = `${s} s`;
  }
}
setInterval(tick, 1000);

let flashTimer = null;
function flash(text, kind = "ok") {
  el.flash.textContent = text;
  el.flash.className = `flash ${kind}`;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    el.flash.className = "flash";
    el.flash.textContent = "";
  }, 8000);
}

// ---- actions -------------------------------------------------------------------------

async function act(title, path, body) {
  try {
    const answer = await withStepUp(() => post(path, body), (until) => {
      ctx.me.step_up_until_ms = until;
      tick();
    });
    if (answer && answer.pending) flash(`${title}: waiting for a second operator's approval`, "pending");
    else if (answer && answer.ok === false) flash(`${title}: ${answer.error || "refused"}`, "error");
    else flash(`${title}: done`);
    return answer;
  } catch (e) {
    if (e instanceof Cancelled) flash(`${title}: cancelled`, "pending");
    else flash(`${title}: ${e.message}`, "error");
    return null;
  }
}

const WHY = { name: "why", label: "Reason (journaled)", autocomplete: "off" };

async function confirmAct(title, path, { danger = false, extra = {} } = {}) {
  const values = await ask({ title, fields: [WHY], confirm: "Confirm", danger });
  if (values) await act(title, path, { ...extra, why: values.why });
}

async function formAct(title, path, options) {
  const { fields = [], extra = {}, numbers = [], nullable = [], ...rest } = options;
  const values = await ask({ title, fields: [...fields, WHY], ...rest });
  if (!values) return;
  for (const key of numbers) values[key] = Number(values[key]);
  for (const key of nullable) if (values[key] === "") values[key] = null;
  await act(title, path, { ...extra, ...values });
}

// ---- routes --------------------------------------------------------------------------

let current = null;

// A link's "%E0%A4%A" must not stop the page from drawing: kept as typed.
function decodeSegment(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function route() {
  if (!ctx.me) return;
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "").split("?");
  const parts = path.split("/").map(decodeSegment);
  const params = new URLSearchParams(query || "");
  const page = parts[0] || "overview";
  current = { page, arg: parts[1], params };
  for (const link of el.nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.testid === `nav-${page === "node" ? "overview" : page}`);
  }
  if (page === "node" && ctx.nodes.has(current.arg)) loadEquity(current.arg, true);
  render(true);
}
window.addEventListener("hashchange", route);

// The audit page keeps its own form and results: live updates do not redraw it.
function render(navigated = false) {
  if (!ctx.me || !current) return;
  if (!navigated && current.page === "audit") return;
  const y = window.scrollY;
  const main = fill(el.main);
  main.dataset.page = current.page;
  const renderer = {
    overview: () => pages.overview(ctx, main),
    node: () => pages.node(ctx, main, current.arg),
    strategies: () => pages.strategies(ctx, main),
    risk: () => pages.risk(ctx, main),
    kill: () => pages.kill(ctx, main),
    approvals: () => pages.approvals(ctx, main),
    audit: () => pages.audit(ctx, main, current.params),
  }[current.page];
  if (renderer) renderer();
  else main.append(h("h1", {}, "Not found"));
  if (!navigated) window.scrollTo(0, y);
  const waiting = [...ctx.nodes.values()].reduce((n, e) => n + (e.view ? e.view.approvals.length : 0), 0);
  const count = el.nav.querySelector("[data-testid=approvals-count]");
  if (count) count.textContent = waiting ? String(waiting) : "";
  tick();
}

let renderQueued = false;
function renderSoon() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

const equityLoaded = new Map();
async function loadEquity(name, force = false) {
  const last = equityLoaded.get(name) || 0;
  if (!force && Date.now() - last < EQUITY_REFRESH_MS) return;
  equityLoaded.set(name, Date.now());
  try {
    const answer = await get(`/api/nodes/${encodeURIComponent(name)}/equity`);
    ctx.equity.set(name, answer.points);
    if (current && current.page === "node" && current.arg === name) renderSoon();
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) flash(`equity of ${name}: ${e.message}`, "error");
  }
}

// ---- live updates --------------------------------------------------------------------

let source = null;
let retryTimer = null;
let retryMs = 1000;

function setLive(text, on) {
  const live = el.header.querySelector("[data-testid=live]");
  if (!live) return;
  live.textContent = text;
  live.classList.toggle("on", on);
}

function startEvents() {
  stopEvents();
  source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    retryMs = 1000;
    setLive("live", true);
  });
  source.addEventListener("node", (event) => {
    const entry = JSON.parse(event.data);
    ctx.nodes.set(entry.name, entry);
    if (current && current.page === "node" && current.arg === entry.name) loadEquity(entry.name);
    renderSoon();
  });
  source.addEventListener("error", () => {
    setLive("reconnecting", false);
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    // Closed for good: a refused stream (maybe 401). /api/me tells which; a 401 signs out.
    stopEvents();
    retryTimer = setTimeout(async () => {
      try {
        ctx.me = { ...ctx.me, ...(await get("/api/me")) };
        startEvents();
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) startEvents();
      }
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  });
}

function stopEvents() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
}

// ---- start ---------------------------------------------------------------------------

async function enter(me) {
  const nodes = await get("/api/nodes");
  for (const entry of nodes.nodes) ctx.nodes.set(entry.name, entry);
  signedIn(me);
}

async function start() {
  try {
    await enter(await get("/api/me"));
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) flash(`cannot reach the console: ${e.message}`, "error");
    signedOut();
  }
}

start();
