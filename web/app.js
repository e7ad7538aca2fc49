/* Herald dashboard: the core (DOM helpers, the API client, number formats,
 * the hash router and the 2-second refresh). The pages are in pages.js.
 *
 * Every figure comes from the admin API (docs/http-api.md). Elements the
 * tests read carry data-testid, and numeric ones data-value with the API's
 * number unchanged; the text shows it exactly for counts and offsets, and
 * readably (with the exact value in the tooltip) for bytes and rates. */
"use strict";

/* h("tr", {class: "x", onclick: f}, child, "text", [more]) builds an element;
 * text is always set as text, never parsed as HTML. */
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "testid") e.dataset.testid = v;
    else if (k === "value" && tag !== "span" && tag !== "td") e.value = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/* ---- the API ---- */

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status || 0; /* 0: no answer at all */
  }
}

/* fetch + JSON. Throws ApiError naming the call, the status and the API's
 * own error message. */
async function api(path, opts) {
  const method = (opts && opts.method) || "GET";
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: opts && opts.body !== undefined ? {"Content-Type": "application/json"} : {},
      body: opts && opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
      cache: "no-store",
      signal: AbortSignal.timeout(15000), /* a stuck call must not stop the refresh */
    });
  } catch (e) {
    throw new ApiError(`${method} ${path}: the broker did not answer (${e.message})`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (e) {
    if (res.ok) throw new ApiError(`${method} ${path}: the answer is not JSON`, res.status);
  }
  if (!res.ok) {
    const why = body && body.message ? body.message : text.slice(0, 200);
    throw new ApiError(`${method} ${path} failed: ${res.status} ${(body && body.error) || res.statusText}${why ? ": " + why : ""}`,
      res.status);
  }
  return body;
}

const enc = encodeURIComponent;

/* ---- numbers ---- */

const Fmt = {
  int: (n) => (n == null ? "–" : Number(n).toLocaleString("en-US")),
  bytes(n) {
    if (n == null) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(n), i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) {
      v /= 1024;
      i++;
    }
    return i ? `${v.toFixed(v < 10 ? 2 : 1)} ${u[i]}` : `${Number.isInteger(v) ? v : v.toFixed(1)} B`;
  },
  rate(r) {
    if (r == null) return "–";
    const v = Number(r);
    return (v === 0 ? "0" : v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toPrecision(2)) + "/s";
  },
  axisRate: (v) => (v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e4 ? (v / 1e3).toFixed(0) + "k" : String(+v.toFixed(2))),
  axisInt: (v) => (v >= 1e6 ? (v / 1e6).toFixed(1) + "M" : v >= 1e4 ? (v / 1e3).toFixed(0) + "k" : String(Math.round(v))),
  duration(ms) {
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
    s %= 60;
    return d ? `${d}d ${hh}h` : hh ? `${hh}h ${mm}m` : mm ? `${mm}m ${s}s` : `${s}s`;
  },
  time: (ms) => (ms ? new Date(ms).toLocaleString() : "–"),
};

/* A number as the API gave it: data-value holds it unchanged, the title
 * the exact figure. kind: "int" (shown exactly), "bytes", "rate". */
function num(v, kind, testid) {
  const text = v == null ? "–" : Fmt[kind || "int"](v);
  const title = kind === "bytes" && v != null ? `${Fmt.int(v)} bytes` : kind === "rate" && v != null ? `${v} per second` : null;
  return h("span", {class: "num", testid, "data-value": v == null ? "" : String(v), title}, text);
}

function errorBox(err) {
  return h("div", {class: "error", role: "alert", testid: "error"}, err.message || String(err));
}

/* A titled panel whose body is replaced on each refresh. */
function panel(title, testid, extra) {
  const body = h("div", {class: "panel-body"});
  const el = h("section", {class: "panel", testid}, h("h2", {}, title, extra || null), body);
  return {
    el,
    body,
    show(...nodes) {
      body.replaceChildren(...nodes);
    },
    error(e) {
      body.replaceChildren(errorBox(e));
    },
  };
}

/* A name filter in panel p's title; onchange re-renders. */
function nameFilter(p, what, onchange) {
  const input = h("input", {type: "search", class: "filter", placeholder: `filter ${what}`, testid: "filter",
    "aria-label": `filter ${what}`});
  input.addEventListener("input", onchange);
  p.el.querySelector("h2").append(input);
  return (name) => !input.value || String(name).toLowerCase().includes(input.value.toLowerCase());
}

/* A sort order kept across refreshes: {col, desc}; onchange re-renders. */
function sortState(onchange) {
  return {col: -1, desc: false, onchange};
}

/* A table. cols: [{label, get(row), kind ("int", "bytes", "rate",
 * "text"; default text), testid, cls}]. opts: {key(row) for data-name,
 * href(row) makes the first cell a link, testid, empty (text), sort (a
 * sortState: headers sort on a click, numbers largest first)}. */
function table(cols, rows, opts) {
  opts = opts || {};
  const sort = opts.sort;
  if (sort && sort.col >= 0 && sort.col < cols.length) {
    const get = cols[sort.col].get, numeric = cols[sort.col].kind && cols[sort.col].kind !== "text";
    const val = (r) => {
      const v = get(r);
      return v instanceof Node ? v.textContent : v;
    };
    rows = rows.slice().sort((a, b) => {
      const x = val(a), y = val(b);
      const c = numeric ? (Number(x) || 0) - (Number(y) || 0) : String(x ?? "").localeCompare(String(y ?? ""));
      return sort.desc ? -c : c;
    });
  }
  const head = h("tr", {}, cols.map((c, i) => {
    const numeric = c.kind && c.kind !== "text";
    const th = h("th", {class: numeric ? "n" : null}, c.label,
      sort && sort.col === i ? (sort.desc ? " ▾" : " ▴") : null);
    if (sort) {
      th.classList.add("sortable");
      th.title = "sort";
      th.addEventListener("click", () => {
        if (sort.col === i) sort.desc = !sort.desc;
        else {
          sort.col = i;
          sort.desc = !!numeric;
        }
        sort.onchange();
      });
    }
    return th;
  }));
  /* With href, a click anywhere on the row opens it (not only the link). */
  const open = (row) => (opts.href ? (ev) => {
    if (!ev.target.closest("a, button, input, details")) location.hash = opts.href(row);
  } : null);
  const body = rows.map((row) =>
    h("tr", {testid: opts.rowTestid, "data-name": opts.key ? opts.key(row) : null,
      class: opts.href ? "clickable" : null, onclick: open(row)},
      cols.map((c, i) => {
        const v = c.get(row);
        let content;
        if (v instanceof Node) content = v;
        else if (c.kind && c.kind !== "text") content = num(v, c.kind, c.testid);
        else content = h("span", {testid: c.testid}, v == null ? "–" : String(v));
        if (i === 0 && opts.href) content = h("a", {href: opts.href(row)}, content);
        return h("td", {class: c.kind && c.kind !== "text" ? "n" : c.cls || null}, content);
      })));
  if (!rows.length) body.push(h("tr", {}, h("td", {colspan: cols.length, class: "empty"}, opts.empty || "None.")));
  return h("div", {class: "table-wrap"}, h("table", {testid: opts.testid}, h("thead", {}, head), h("tbody", {}, body)));
}

/* Key/value facts: [[label, node-or-text], ...]. */
function facts(list) {
  return h("dl", {class: "facts"}, list.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function json(v) {
  return h("pre", {class: "json"}, JSON.stringify(v, null, 2));
}

/* ---- router and refresh ---- */

const App = {
  pages: {},       /* name -> function(root, arg) returning {refresh()} */
  overview: null,  /* the last /api/overview, or null */
  overviewError: null,
  gen: 0,          /* bumped on each navigation; stale refreshes stop */
  refreshes: 0,    /* finished refreshes, in #main's data-refreshed (tests wait on it) */
};

function parseHash() {
  const parts = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  return {page: parts[0], arg: parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : null};
}

async function fetchOverview() {
  try {
    App.overview = await api("/api/overview");
    App.overviewError = null;
  } catch (e) {
    App.overviewError = e;
  }
  const o = App.overview, hdr = document.getElementById("broker");
  const banner = document.getElementById("alarms");
  if (App.overviewError) {
    hdr.replaceChildren(h("span", {class: "dot bad"}), App.overviewError.status ? `overview: ${App.overviewError.status}` : "no answer");
    hdr.title = App.overviewError.message;
  } else {
    hdr.replaceChildren(h("span", {class: "dot ok"}),
      `Herald ${o.version} · node ${o.node_id} · up ${Fmt.duration(o.uptime_ms)}`);
    hdr.title = `cluster ${o.cluster_id}` + (o.kafka_advertised ? `, Kafka advertised as ${o.kafka_advertised}` : "");
  }
  const alarms = [];
  if (o && !App.overviewError && o.alarms) {
    if (o.alarms.memory) alarms.push("Memory alarm: the broker is over its memory limit; AMQP publishers are blocked.");
    if (o.alarms.disk) alarms.push("Disk alarm: free disk space is below the limit; AMQP publishers are blocked.");
  }
  banner.replaceChildren(...alarms.map((a) => h("div", {class: "alarm", testid: "alarm-banner"}, a)));
}

async function tick(gen, view) {
  if (gen !== App.gen) return;
  await fetchOverview();
  if (gen !== App.gen) return;
  try {
    await view.refresh();
  } catch (e) {
    console.error(e);
  }
  if (gen !== App.gen) return;
  App.refreshes++;
  document.getElementById("main").dataset.refreshed = String(App.refreshes);
  setTimeout(() => tick(gen, view), 2000);
}

function navigate() {
  const {page, arg} = parseHash();
  const make = App.pages[page] || App.pages.overview;
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle("active", a.getAttribute("href") === "#/" + (App.pages[page] ? page : "overview"));
  App.gen++;
  const root = document.getElementById("main");
  root.replaceChildren();
  root.dataset.page = App.pages[page] ? page : "overview";
  delete root.dataset.refreshed;
  const view = make(root, arg);
  tick(App.gen, view);
}

window.addEventListener("hashchange", navigate);
window.addEventListener("DOMContentLoaded", navigate);
