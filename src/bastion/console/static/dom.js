// Building the page with DOM APIs only: text goes in as text nodes, never as markup, so
// a hostile strategy name, alert text or audit "why" cannot execute (and the strict CSP
// would refuse inline script and style anyway).

// Attributes that load or navigate to a URL: a name from a node must never become one
// (a "javascript:" link). Links are "#/..." routes only (checked below).
const URL_ATTRIBUTES = new Set(["src", "action", "formaction", "srcset", "data", "xlink:href", "ping", "background", "poster"]);

/** Make an element. attrs: class, testid (-> data-testid), on<event> handlers (functions
 * only), href ("#/..." only), and other attributes set with setAttribute (never "style":
 * the CSP forbids inline style; never one that loads a URL). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.dataset.testid = value;
    else if (key.startsWith("on")) {
      if (typeof value !== "function") throw new Error(`h(): ${key} must be a function`);
      el.addEventListener(key.slice(2), value);
    } else if (key === "style" || key === "innerHTML" || key === "srcdoc" || URL_ATTRIBUTES.has(key)) {
      throw new Error(`h(): refusing attribute ${key}`);
    } else if (key === "href" && !String(value).startsWith("#")) {
      throw new Error("h(): a link is a route of this page (#/...), never a URL");
    } else if (key === "value" || key === "checked" || key === "disabled") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Append children (skipping null, false and undefined, which Element.append would
 * write out as text). */
export function add(el, ...children) {
  append(el, children);
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A decimal string as shown (exact: never parsed into a float), or a dash for null. */
export function dec(value, currency) {
  if (value === null || value === undefined) return "–";
  return currency ? `${value} ${currency}` : String(value);
}

/** "pos" / "neg" / "" for colouring a signed decimal string. */
export function sign(value) {
  if (typeof value !== "string" || value === "") return "";
  if (value.startsWith("-")) return "neg";
  return /[1-9]/.test(value) ? "pos" : "";
}

/** An ISO time as local "HH:MM:SS" (today) or "YYYY-MM-DD HH:MM" (other days). */
export function when(iso) {
  if (!iso) return "–";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return String(iso);
  const now = new Date();
  if (t.toDateString() === now.toDateString()) return t.toLocaleTimeString([], { hour12: false });
  return `${t.toISOString().slice(0, 10)} ${t.toTimeString().slice(0, 5)}`;
}

/** A table: columns [{label, cell(row) -> node|string, cls?}], one row per item. */
export function table(testid, columns, rows, empty = "none") {
  if (!rows || rows.length === 0) return h("p", { class: "empty", testid: `${testid}-empty` }, empty);
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.cls }, c.label)));
  const body = rows.map((row) =>
    h("tr", { testid: `${testid}-row` }, columns.map((c) => h("td", { class: c.cls, "data-label": c.label }, c.cell(row)))),
  );
  return h("div", { class: "table-wrap" }, h("table", { testid }, h("thead", {}, head), h("tbody", {}, body)));
}
