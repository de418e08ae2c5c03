// The pages. Each renderer fills <main> from the nodes' views (ctx.nodes, kept current
// by the event stream) and is called again on every change, so a page holds no form
// that an update would wipe: actions ask for their fields in a dialog.

import { get, seg } from "./api.js";
import { drawEquity } from "./chart.js";
import { add, dec, h, sign, table, when } from "./dom.js";

const nodeLink = (name) => h("a", { href: `#/node/${seg(name)}`, testid: "node-link" }, name);
const badge = (text, cls, testid) => h("span", { class: `badge ${cls || ""}`, testid }, text);
const stateBadge = (view) =>
  badge(view.state, `state-${String(view.state).toLowerCase()}`, "node-state");
const money = (value, currency) => h("span", { class: `num ${sign(value)}` }, dec(value, currency));
const button = (label, testid, onclick, cls = "secondary") =>
  h("button", { type: "button", class: cls, testid, onclick }, label);

function section(title, testid, ...body) {
  return h("section", { class: "card", testid }, h("h2", {}, title), ...body);
}

/** One node's card header, or its error when the console cannot reach it. */
function nodeHeader(entry) {
  const view = entry.view;
  return h(
    "div",
    { class: "node-head" },
    h("h2", {}, nodeLink(entry.name)),
    view ? badge(view.mode, `mode-${view.mode}`, "node-mode") : null,
    view ? stateBadge(view) : null,
    entry.reachable ? null : badge("unreachable", "state-halted", "node-unreachable"),
    view && view.reason ? h("span", { class: "reason", testid: "node-reason" }, view.reason) : null,
    entry.error ? h("span", { class: "error", testid: "node-error" }, entry.error) : null,
  );
}

function eachNode(ctx, main, render) {
  const nodes = [...ctx.nodes.values()];
  if (nodes.length === 0) add(main, h("p", { class: "empty" }, "No nodes yet."));
  for (const entry of nodes) {
    const card = h("section", { class: "card", testid: `node-${entry.name}` }, nodeHeader(entry));
    if (entry.view) render(entry, entry.view, card);
    add(main, card);
  }
}

function alertsList(ctx, entry, alerts) {
  return table("alerts", [
    { label: "Severity", cell: (a) => badge(a.severity, `sev-${a.severity}`) },
    { label: "Alert", cell: (a) => a.alert },
    { label: "Summary", cell: (a) => a.summary },
    { label: "Since", cell: (a) => when(a.since) },
    {
      label: "",
      cell: (a) =>
        a.acknowledged_by
          ? h("span", { class: "muted" }, `ack by ${a.acknowledged_by}`)
          : ctx.may("alert_ack")
            ? button("Acknowledge", "alert-ack", () =>
                ctx.confirmAct(`Acknowledge ${a.alert}`, `/api/nodes/${seg(entry.name)}/alerts/${seg(a.id)}/ack`),
              )
            : null,
    },
  ], alerts, "no alerts");
}

export function overview(ctx, main) {
  add(main, h("h1", {}, "Overview"));
  const grid = h("div", { class: "grid" });
  add(main, grid);
  eachNode(ctx, grid, (entry, view, card) => {
    add(card, 
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "PnL"),
        h("dd", { testid: "pnl-total" }, money(view.pnl.total, view.pnl.currency)),
        h("dt", {}, "Realized / unrealized"),
        h("dd", {}, money(view.pnl.realized), " / ", money(view.pnl.unrealized)),
        h("dt", {}, "Exposure gross / net"),
        h("dd", { testid: "exposure" }, dec(view.exposure.gross), " / ", dec(view.exposure.net, view.exposure.currency)),
        h("dt", {}, "Updated"),
        h("dd", {}, when(view.ts)),
      ),
      h("h3", {}, "Venues"),
      table("venues", [
        { label: "Venue", cell: (v) => v.name },
        { label: "Session", cell: (v) => v.session },
        { label: "Halted", cell: (v) => (v.halted ? badge("halted", "state-halted") : "no") },
        { label: "Open orders", cell: (v) => String(v.open_orders), cls: "num" },
      ], view.venues),
      h("h3", {}, "Feeds"),
      table("feeds", [
        { label: "Feed", cell: (f) => f.name },
        { label: "Instruments", cell: (f) => f.instruments.join(", ") },
        { label: "Quote age", cell: (f) => (f.last_quote_age_ms === null ? "–" : `${f.last_quote_age_ms} ms`), cls: "num" },
        { label: "", cell: (f) => (f.stale ? badge("stale", "state-halted") : badge("fresh", "state-active")) },
      ], view.feeds),
      h("h3", {}, "Alerts"),
      alertsList(ctx, entry, view.alerts),
    );
  });
}

export function node(ctx, main, name) {
  const entry = ctx.nodes.get(name);
  if (!entry) {
    add(main, h("h1", {}, name), h("p", { class: "empty" }, "No such node."));
    return;
  }
  add(main, h("h1", { testid: "node-title" }, entry.name));
  const head = h("section", { class: "card" }, nodeHeader(entry));
  add(main, head);
  const view = entry.view;
  if (!view) return;
  add(head, 
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "PnL"),
      h("dd", { testid: "pnl-total" }, money(view.pnl.total, view.pnl.currency)),
      h("dt", {}, "Exposure gross / net"),
      h("dd", {}, dec(view.exposure.gross), " / ", dec(view.exposure.net, view.exposure.currency)),
    ),
  );
  const canvas = h("canvas", { class: "chart", testid: "equity-chart", role: "img", "aria-label": `equity of ${name}` });
  add(main, section("Equity", "equity-section", canvas));
  requestAnimationFrame(() => drawEquity(canvas, ctx.equity.get(name)));
  add(main, 
    section("Positions", "positions-section", table("positions", [
      { label: "Instrument", cell: (p) => p.instrument },
      { label: "Quantity", cell: (p) => money(p.quantity), cls: "num" },
      { label: "Avg price", cell: (p) => dec(p.avg_price), cls: "num" },
      { label: "Mark", cell: (p) => dec(p.mark), cls: "num" },
      { label: "Unrealized", cell: (p) => money(p.unrealized), cls: "num" },
    ], view.positions, "flat")),
    section("Working orders", "orders-section", table("orders", [
      { label: "Id", cell: (o) => o.id },
      { label: "Instrument", cell: (o) => o.instrument },
      { label: "Side", cell: (o) => badge(o.side, `side-${String(o.side).toLowerCase()}`) },
      { label: "Type", cell: (o) => o.type },
      { label: "Qty", cell: (o) => dec(o.quantity), cls: "num" },
      { label: "Filled", cell: (o) => dec(o.filled), cls: "num" },
      { label: "Price", cell: (o) => dec(o.price), cls: "num" },
      { label: "Status", cell: (o) => o.status },
      { label: "Strategy", cell: (o) => o.strategy ?? "–" },
      { label: "Venue", cell: (o) => o.venue },
    ], view.orders, "no working orders")),
  );
}

function strategyButtons(ctx, entry, s) {
  const act = (action, label, danger) =>
    ctx.mayStrategy(`strategy_${action}`, s.name)
      ? button(label, `strategy-${action}`, () =>
          ctx.confirmAct(`${label} strategy ${s.name}`, `/api/nodes/${seg(entry.name)}/strategies/${seg(s.name)}/${action}`, { danger }),
        )
      : null;
  return h(
    "div",
    { class: "buttons" },
    s.disabled ? act("enable", "Enable") : act("disable", "Disable", true),
    s.running ? act("stop", "Stop", true) : act("start", "Start"),
  );
}

export function strategies(ctx, main) {
  add(main, h("h1", {}, "Strategies"));
  eachNode(ctx, main, (entry, view, card) => {
    add(card, table("strategies", [
      { label: "Strategy", cell: (s) => h("span", { testid: "strategy-name" }, s.name) },
      { label: "State", cell: (s) => badge(s.running ? "running" : "stopped", s.running ? "state-active" : "state-reducing") },
      {
        label: "Enabled",
        cell: (s) => (s.disabled ? h("span", {}, badge("disabled", "state-halted"), " ", s.disabled_reason ?? "") : "yes"),
      },
      { label: "PnL", cell: (s) => money(s.pnl), cls: "num" },
      { label: "Open orders", cell: (s) => String(s.open_orders), cls: "num" },
      { label: "", cell: (s) => strategyButtons(ctx, entry, s) },
    ], view.strategies, "no strategies"));
  });
}

function utilisation(value) {
  if (value === null || value === undefined) return "–";
  const fraction = Number.parseFloat(value);
  const meter = h("meter", { min: 0, max: 1, low: 0.7, high: 0.9, optimum: 0, value: Math.min(fraction, 1), testid: "utilisation" });
  return h("span", { class: "util" }, meter, h("span", { class: "num" }, `${(fraction * 100).toFixed(0)} %`));
}

export function risk(ctx, main) {
  add(main, h("h1", {}, "Risk limits"));
  eachNode(ctx, main, (entry, view, card) => {
    const base = `/api/nodes/${seg(entry.name)}`;
    const override = (limit) =>
      ctx.formAct(`Override ${limit.path}`, `${base}/overrides`, {
        text: limit.ceiling ? `Ceiling: ${limit.ceiling}. Above the configured ${limit.configured} needs a second operator.` : null,
        fields: [
          { name: "value", label: "Value", value: limit.effective },
          { name: "for_s", label: "For (seconds)", type: "number", value: "3600", min: 1 },
        ],
        extra: { path: limit.path },
        numbers: ["for_s"],
      });
    const ceiling = (limit) =>
      ctx.formAct(`Raise the ceiling of ${limit.path}`, `${base}/ceilings`, {
        fields: [{ name: "value", label: "Ceiling", value: limit.ceiling ?? limit.configured }],
        extra: { path: limit.path },
      });
    add(card, 
      table("limits", [
        { label: "Limit", cell: (l) => l.path },
        { label: "Configured", cell: (l) => dec(l.configured), cls: "num" },
        { label: "Effective", cell: (l) => dec(l.effective), cls: "num" },
        { label: "Ceiling", cell: (l) => dec(l.ceiling), cls: "num" },
        { label: "Used", cell: (l) => utilisation(l.utilisation) },
        {
          label: "",
          cell: (l) =>
            h(
              "div",
              { class: "buttons" },
              ctx.may("risk_set") ? button("Override", "override-add", () => override(l)) : null,
              ctx.may("raise_ceiling") ? button("Ceiling", "ceiling-raise", () => ceiling(l)) : null,
            ),
        },
      ], view.limits, "no limits"),
      h("h3", {}, "Overrides"),
      table("overrides", [
        { label: "Limit", cell: (o) => o.path },
        { label: "Value", cell: (o) => dec(o.value), cls: "num" },
        { label: "Until", cell: (o) => when(o.until) },
        { label: "By", cell: (o) => o.by },
        { label: "Why", cell: (o) => o.why },
        {
          label: "",
          cell: (o) =>
            ctx.may("risk_clear")
              ? button("Clear", "override-clear", () => ctx.confirmAct(`Clear the override of ${o.path}`, `${base}/overrides/${seg(o.id)}/clear`))
              : null,
        },
      ], view.overrides, "no overrides"),
      h("h3", {}, "Paused instruments"),
      table("paused", [
        { label: "Instrument", cell: (p) => p.instrument },
        { label: "Until", cell: (p) => when(p.until) },
        { label: "Reason", cell: (p) => p.reason },
        {
          label: "",
          cell: (p) =>
            ctx.may("resume_instrument")
              ? button("Resume", "instrument-resume", () =>
                  ctx.confirmAct(`Resume ${p.instrument}`, `${base}/resume`, { extra: { venue: null, instrument: p.instrument } }),
                )
              : null,
        },
      ], view.paused_instruments, "none paused"),
      ctx.may("pause_instrument")
        ? button("Pause an instrument", "instrument-pause", () =>
            ctx.formAct("Pause an instrument", `${base}/pause`, {
              fields: [
                { name: "instrument", label: "Instrument", type: "select", options: instruments(view).map((i) => [i, i]) },
                { name: "for_s", label: "For (seconds)", type: "number", value: "300", min: 1 },
              ],
              numbers: ["for_s"],
            }),
          )
        : null,
    );
  });
}

function instruments(view) {
  return [...new Set(view.feeds.flatMap((f) => f.instruments))].sort();
}

export function kill(ctx, main) {
  add(main, 
    h("h1", {}, "Kill switch"),
    h("p", { class: "muted" }, "Kill cancels every working order and halts trading; kill + flatten also closes the positions. Both ask for a reason and a fresh authenticator code."),
  );
  eachNode(ctx, main, (entry, view, card) => {
    const base = `/api/nodes/${seg(entry.name)}`;
    const venues = [["", "every venue"], ...view.venues.map((v) => [v.name, v.name])];
    const killIt = (flatten) =>
      ctx.formAct(flatten ? `Kill and flatten ${entry.name}` : `Kill ${entry.name}`, `${base}/kill`, {
        text: flatten
          ? "Cancel every working order, close every position and halt trading."
          : "Cancel every working order and halt trading.",
        fields: [{ name: "venue", label: "Venue", type: "select", options: venues }],
        extra: { flatten },
        nullable: ["venue"],
        danger: true,
        confirm: flatten ? "Kill + flatten" : "Kill",
        testid: "kill-dialog",
      });
    add(card, 
      h(
        "div",
        { class: "buttons big" },
        ctx.may("kill") ? button("Kill", "kill", () => killIt(false), "danger") : null,
        ctx.may("flatten") ? button("Kill + flatten", "kill-flatten", () => killIt(true), "danger") : null,
        ctx.may("resume") && view.state !== "ACTIVE"
          ? button("Resume trading", "resume", () =>
              ctx.formAct(`Resume ${entry.name}`, `${base}/resume`, {
                text: "Resuming after a kill needs a second operator's approval.",
                fields: [{ name: "venue", label: "Venue", type: "select", options: venues }],
                extra: { instrument: null },
                nullable: ["venue"],
              }),
            )
          : null,
      ),
      ctx.may("kill") || ctx.may("flatten") ? null : h("p", { class: "muted" }, "Your roles may not use the kill switch."),
    );
  });
}

export function approvals(ctx, main) {
  add(main, 
    h("h1", {}, "Approvals"),
    h("p", { class: "muted" }, "Four-eyes: these actions wait for a second, different operator before they take effect."),
  );
  eachNode(ctx, main, (entry, view, card) => {
    add(card, table("approvals", [
      { label: "Command", cell: (a) => a.command },
      { label: "Summary", cell: (a) => a.summary },
      { label: "Requested by", cell: (a) => a.requested_by },
      { label: "Expires", cell: (a) => h("span", { class: "countdown", "data-until": a.expires_ms }, when(a.expires)) },
      {
        label: "",
        cell: (a) =>
          !ctx.may("approve")
            ? null
            : a.requested_by === ctx.me.name
              ? h("span", { class: "muted" }, "your request")
              : button("Approve", "approve", () =>
                  ctx.confirmAct(`Approve: ${a.summary}`, `/api/nodes/${seg(entry.name)}/approvals/${seg(a.id)}/approve`, { cls: "primary" }),
                  "primary"),
      },
    ], view.approvals, "nothing waiting"));
  });
}

/** The audit trail of one node: search box and paging by sequence number. */
export function audit(ctx, main, params) {
  const names = [...ctx.nodes.keys()];
  const state = { node: params.get("node") || names[0] || "", q: params.get("q") || "", pages: [null] };
  const results = h("div", { testid: "audit-results" });
  const nodeSelect = h("select", { name: "node", testid: "audit-node" }, names.map((n) => h("option", { value: n }, n)));
  nodeSelect.value = state.node;
  const query = h("input", { type: "search", name: "q", value: state.q, placeholder: "type, operator, source or text", testid: "audit-query" });
  const form = h(
    "form",
    { class: "search", role: "search" },
    nodeSelect,
    query,
    h("button", { type: "submit", class: "primary", testid: "audit-search" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    state.node = nodeSelect.value;
    state.q = query.value;
    state.pages = [null];
    load();
  });
  add(main, h("h1", {}, "Audit trail"), form, results);

  async function load() {
    const before = state.pages[state.pages.length - 1];
    const qs = new URLSearchParams({ q: state.q, limit: "50" });
    if (before !== null) qs.set("before", String(before));
    results.replaceChildren(h("p", { class: "muted" }, "loading…"));
    let answer;
    try {
      answer = await get(`/api/nodes/${seg(state.node)}/audit?${qs}`);
    } catch (e) {
      results.replaceChildren(h("p", { class: "error" }, e.message));
      return;
    }
    const records = answer.records || [];
    results.replaceChildren(
      table("audit", [
        { label: "Seq", cell: (r) => String(r.seq), cls: "num" },
        { label: "Time", cell: (r) => when(r.ts) },
        { label: "Type", cell: (r) => r.type },
        { label: "Operator", cell: (r) => r.operator ?? "–" },
        { label: "Source", cell: (r) => r.source ?? "–" },
        { label: "Summary", cell: (r) => r.summary },
      ], records, "no matching records"),
      h(
        "div",
        { class: "buttons pager" },
        state.pages.length > 1
          ? button("Newer", "audit-newer", () => {
              state.pages.pop();
              load();
            })
          : null,
        answer.more && records.length
          ? button("Older", "audit-older", () => {
              state.pages.push(records[records.length - 1].seq);
              load();
            })
          : null,
      ),
    );
  }
  if (state.node) load();
}
