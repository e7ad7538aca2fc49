/* Drives Herald's dashboard in Debian's chromium (playwright-core) and
 * checks what each page shows against the admin API. Run by
 * 33_dashboard_test.py: node check.js '{"url": ..., "topic": ..., ...}'.
 *
 * Phase 1, while the test's traffic runs: the overview's rates become > 0
 * and its charts draw. Phase 2, once the broker is quiet (two API snapshots
 * equal): every number a page shows (data-value, and the text for counts)
 * equals the API's, read right after the page refreshed. Then Redrive on
 * the dead-letter queue, in two steps (a count, then the rest).
 *
 * A route that answers 404 "no such resource" is not built yet: the page
 * must show that error inline; the route is listed in the report (the last
 * line of stdout, JSON) and its page's numbers are not compared. */
"use strict";
const assert = require("assert");
const path = require("path");
const {chromium} = require("playwright-core");

const A = JSON.parse(process.argv[2]);
const missing = new Set();
const missingFields = new Set(); /* documented fields the API does not give (yet) */
const enc = encodeURIComponent;
const log = (...m) => console.log("check:", ...m);

/* GET (or POST) on the API: {status, body}. */
async function call(p, opts) {
  const res = await fetch(A.url + p, opts);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch (e) { /* not JSON: left null */ }
  return {status: res.status, body};
}

/* The API's answer, or null if the route is not built yet (recorded). */
async function get(p) {
  const r = await call(p);
  if (r.status === 404 && r.body && /^no such resource/.test(r.body.message || "")) {
    missing.add("GET " + p.replace(/\?.*/, "").replace(/dash\.[a-z]+/g, "{}"));
    return null;
  }
  assert.strictEqual(r.status, 200, `GET ${p}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function refreshed(page) {
  return Number((await page.getAttribute("#main", "data-refreshed")) || 0);
}

/* Waits for the page's next refresh to finish (after > n refreshes). */
async function nextRefresh(page, n) {
  if (n === undefined) n = await refreshed(page);
  await page.waitForFunction((k) => Number(document.getElementById("main").dataset.refreshed || 0) > k, n,
    {timeout: 20000});
}

async function open(page, hash) {
  await page.goto(A.url + "/#/" + hash);
  await nextRefresh(page, 0);
}

async function shot(page, name) {
  await page.screenshot({path: path.join(A.screenshots, name + ".png"), fullPage: true});
}

/* {testid: [{v: data-value, t: text}, ...]} inside scope (a selector). */
async function read(page, scope) {
  return page.$$eval(`${scope} [data-testid]`, (els) => {
    const out = {};
    for (const e of els) (out[e.dataset.testid] = out[e.dataset.testid] || []).push({v: e.dataset.value, t: e.textContent});
    return out;
  });
}

/* A count shown exactly: data-value and the text (without separators). */
function same(got, want, what) {
  assert.ok(got && got.length, `${what}: not on the page`);
  const g = got[0];
  if (want === undefined) { /* the page must show that it has no figure */
    missingFields.add(what);
    assert.strictEqual(g.v, "", `${what}: the API has no value, the page shows ${g.v}`);
    assert.strictEqual(g.t, "–", `${what}: the API has no value, the page shows "${g.t}"`);
    return;
  }
  assert.strictEqual(g.v, String(want), `${what}: data-value ${g.v}, API ${want}`);
  assert.strictEqual(g.t.replace(/,/g, ""), String(want), `${what}: text "${g.t}", API ${want}`);
}

/* Bytes and rates: data-value exact, the text a readable form of it. */
function sameValue(got, want, what) {
  assert.ok(got && got.length, `${what}: not on the page`);
  assert.strictEqual(Number(got[0].v), Number(want), `${what}: data-value ${got[0].v}, API ${want}`);
  assert.ok(/\d/.test(got[0].t), `${what}: text "${got[0].t}"`);
}

/* Compares a page with the API until they agree (a refresh may straddle a
 * late change): check() throws on a difference. */
async function agree(page, check, tries) {
  for (let i = 0; ; i++) {
    try {
      return await check();
    } catch (e) {
      if (i >= (tries || 3) || !(e instanceof assert.AssertionError)) throw e;
      log("retrying after", e.message);
      await nextRefresh(page);
    }
  }
}

/* Waits until the broker is quiet: the figures that traffic moves (not
 * rates) are the same in two snapshots a second apart. */
async function quiesce() {
  const snap = async () => {
    const parts = [];
    for (const p of ["/api/topics", "/api/queues", "/api/groups"]) {
      const r = await call(p);
      const strip = (x) => (Array.isArray(x) ? x.map(strip) : x && typeof x === "object"
        ? Object.fromEntries(Object.entries(x).filter(([k]) => k !== "rates").map(([k, v]) => [k, strip(v)])) : x);
      parts.push(r.status === 200 ? JSON.stringify(strip(r.body)) : String(r.status));
    }
    return parts.join("|");
  };
  const end = Date.now() + 40000;
  let prev = await snap();
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 1000));
    const cur = await snap();
    if (cur === prev) return;
    prev = cur;
  }
  throw new Error("the broker did not become quiet");
}

async function pageError(page, scope) {
  return page.$$eval(`${scope} [data-testid=error]`, (els) => els.map((e) => e.textContent));
}

/* A route not built: its panel must say so. */
async function expectInlineError(page, scope, route) {
  const errs = await pageError(page, scope);
  assert.ok(errs.some((t) => t.includes("404")), `${scope}: no inline error for ${route} (${errs})`);
}

async function livePhase(page) {
  await open(page, "overview");
  const ov = await get("/api/overview");
  if (!ov) return expectInlineError(page, "[data-testid=overview-tiles]", "/api/overview");
  /* The tiles follow the rates while the traffic runs. */
  await page.waitForFunction(() => {
    const v = (id) => Number(document.querySelector(`[data-testid=${id}]`)?.dataset.value || 0);
    return v("ov-kafka-in") > 0 && v("ov-amqp-publish") > 0;
  }, null, {timeout: 20000});
  await nextRefresh(page);
  const paths = await page.$$eval("[data-testid=chart-kafka-svg] path, [data-testid=chart-amqp-svg] path", (e) => e.length);
  assert.ok(paths >= 2, `the rate charts draw nothing (${paths} paths)`);
  /* Hovering a chart shows the values at that time. */
  let tip = "";
  for (let i = 0; i < 5 && !tip; i++) { /* the chart is redrawn every 2 s: hover the current one */
    const box = await page.locator("[data-testid=chart-kafka-svg] svg").boundingBox();
    await page.mouse.move(box.x + box.width - 20 - i, box.y + box.height / 2);
    tip = await page.locator("[data-testid=chart-kafka-svg] .tip").textContent();
  }
  assert.ok(/in: .*\d/.test(tip) && /out: .*\d/.test(tip), `chart tooltip: ${tip}`);
  /* Values that only grow: API before <= page <= API after. */
  const before = await get("/api/topics");
  await nextRefresh(page);
  const v = await read(page, "#main");
  const after = await get("/api/overview");
  log("live rates on the page: kafka in", v["ov-kafka-in"][0].v, "amqp publish", v["ov-amqp-publish"][0].v);
  assert.ok(Number(v["ov-kafka-in"][0].v) > 0 && Number(v["ov-amqp-publish"][0].v) > 0);
  const ready = Number(v["ov-ready"][0].v);
  assert.ok(ready <= after.messages.ready + after.messages.unacked && ready >= 0);
  /* The queue whose consumer stalls is flagged while publishers fill it. */
  if (await get("/api/queues"))
    await page.waitForSelector(`[data-testid=attention-item][data-kind=slow-consumers][data-name="${A.slow}"]`, {timeout: 20000});
  await shot(page, "overview-live");
  if (before) {
    await open(page, "topics");
    const t = await read(page, `[data-testid=topic-row][data-name="${A.topic}"]`);
    const after2 = (await get("/api/topics")).find((x) => x.name === A.topic);
    const b = before.find((x) => x.name === A.topic);
    const shown = Number(t["topic-end"][0].v);
    assert.ok(shown >= b.end_offsets && shown <= after2.end_offsets, `live end offsets ${shown} not within ${b.end_offsets}..${after2.end_offsets}`);
    await shot(page, "topics-live");
  }
}

async function overview(page) {
  await open(page, "overview");
  await agree(page, async () => {
    await nextRefresh(page);
    const v = await read(page, "#main");
    const o = await get("/api/overview");
    if (!o) return expectInlineError(page, "[data-testid=overview-tiles]", "/api/overview");
    same(v["ov-topics"], o.topics, "topics");
    same(v["ov-partitions"], o.partitions, "partitions");
    same(v["ov-groups"], o.groups, "groups");
    same(v["ov-queues"], o.queues, "queues");
    same(v["ov-exchanges"], o.exchanges, "exchanges");
    same(v["ov-conn-kafka"], o.connections.kafka, "kafka connections");
    same(v["ov-conn-amqp"], o.connections.amqp, "amqp connections");
    same(v["ov-ready"], o.messages.ready, "ready");
    same(v["ov-unacked"], o.messages.unacked, "unacked");
    same(v["ov-delayed"], o.messages.delayed, "delayed");
    same(v["ov-lag"], o.consumer_lag, "consumer lag");
    sameValue(v["ov-disk-total"], o.disk.total_bytes, "disk total");
    assert.strictEqual(v["ov-alarm-memory"][0].v, String(o.alarms.memory));
    assert.strictEqual(v["ov-alarm-disk"][0].v, String(o.alarms.disk));
    for (const k of ["ov-kafka-in", "ov-kafka-out", "ov-amqp-publish", "ov-amqp-deliver", "ov-disk-used", "ov-disk-free", "ov-rss"])
      assert.ok(v[k] && /\d/.test(v[k][0].t) && v[k][0].v !== "", `${k} shows no number`);
  });
  /* Needs attention: the orphan queue, the lagging group, the DLQ. */
  const items = await page.$$eval("[data-testid=attention-item]", (els) => els.map((e) => `${e.dataset.kind}:${e.dataset.name}`));
  log("needs attention:", items.join(", "));
  const queues = await get("/api/queues");
  const groups = await get("/api/groups");
  if (queues) {
    assert.ok(items.includes(`no-consumers:${A.orphan}`), `orphan queue not flagged: ${items}`);
    assert.ok(items.includes(`dead-letters:${A.dlq}`) || !(await get("/api/bindings")), `DLQ not flagged: ${items}`);
  } else await expectInlineError(page, "[data-testid=attention]", "/api/queues");
  if (groups) assert.ok(items.includes(`group-lag:${A.group}`), `group lag not flagged: ${items}`);
  await shot(page, "overview");
}

async function topics(page) {
  await open(page, "topics");
  if (!(await get("/api/topics"))) return expectInlineError(page, "[data-testid=topics]", "/api/topics");
  await agree(page, async () => {
    await nextRefresh(page);
    const v = await read(page, `[data-testid=topic-row][data-name="${A.topic}"]`);
    const t = (await get("/api/topics")).find((x) => x.name === A.topic);
    same(v["topic-partitions"], t.partitions, "topic partitions");
    same(v["topic-messages"], t.messages, "topic messages");
    same(v["topic-start"], t.start_offsets, "topic start offsets");
    same(v["topic-end"], t.end_offsets, "topic end offsets");
    sameValue(v["topic-size"], t.size_bytes, "topic size");
    sameValue(v["topic-rate-in"], t.rates.in, "topic rate in");
  });
  await shot(page, "topics");
  await page.click(`[data-testid=topic-row][data-name="${A.topic}"] a`);
  await page.waitForFunction(() => location.hash.startsWith("#/topics/"));
  await nextRefresh(page, 0);
  await agree(page, async () => {
    await nextRefresh(page);
    const t = await get(`/api/topics/${enc(A.topic)}`);
    if (!t) return expectInlineError(page, "[data-testid=topic-partitions]", "/api/topics/{}");
    assert.strictEqual(await page.$$eval("[data-testid=partition-row]", (e) => e.length), t.partitions.length);
    for (const p of t.partitions) {
      const v = await read(page, `[data-testid=partition-row][data-name="${p.partition}"]`);
      same(v["part-start"], p.start_offset, `p${p.partition} start`);
      same(v["part-end"], p.end_offset, `p${p.partition} end`);
      same(v["part-hwm"], p.high_watermark, `p${p.partition} hwm`);
      same(v["part-segments"], p.segments, `p${p.partition} segments`);
      same(v["part-in"], p.messages_in, `p${p.partition} records in`);
      sameValue(v["part-size"], p.size_bytes, `p${p.partition} size`);
    }
  });
  await shot(page, "topic");
}

async function groups(page) {
  await open(page, "groups");
  if (!(await get("/api/groups"))) return expectInlineError(page, "[data-testid=groups]", "/api/groups");
  await agree(page, async () => {
    await nextRefresh(page);
    const v = await read(page, `[data-testid=group-row][data-name="${A.group}"]`);
    const g = (await get("/api/groups")).find((x) => x.group_id === A.group);
    assert.ok(g, "the group is not listed by the API");
    same(v["group-members"], g.members, "group members");
    same(v["group-lag"], g.lag, "group lag");
    assert.strictEqual(v["group-state"][0].t, g.state);
    assert.ok(g.lag > 0, "the group should lag");
  });
  await shot(page, "groups");
  await page.click(`[data-testid=group-row][data-name="${A.group}"] [data-testid=group-lag]`); /* anywhere on the row */
  await page.waitForFunction(() => location.hash.startsWith("#/groups/"));
  await nextRefresh(page, 0);
  await agree(page, async () => {
    await nextRefresh(page);
    const g = await get(`/api/groups/${enc(A.group)}`);
    if (!g) return expectInlineError(page, "[data-testid=group-offsets]", "/api/groups/{}");
    same((await read(page, "[data-testid=group-info]"))["group-lag"], g.lag, "group detail lag");
    for (const o of g.offsets) {
      const v = await read(page, `[data-testid=offset-row][data-name="${o.topic}/${o.partition}"]`);
      same(v["off-committed"], o.committed, `committed ${o.partition}`);
      same(v["off-hwm"], o.high_watermark, `hwm ${o.partition}`);
      same(v["off-lag"], o.lag, `lag ${o.partition}`);
    }
    assert.strictEqual(await page.$$eval("[data-testid=member-row]", (e) => e.length), g.members.length);
    const assigned = await page.$$eval("[data-testid=member-assignments]", (e) => e.map((x) => x.textContent).join(" "));
    assert.ok(g.members.length === 0 || assigned.includes(A.topic), `assignments: ${assigned}`);
    assert.ok(await page.$("[data-testid=group-lag-svg] path"), "no lag chart");
  });
  await shot(page, "group");
}

async function queueRow(page, name, q) {
  const v = await read(page, `[data-testid=queue-row][data-name="${name}"]`);
  same(v["queue-messages"], q.messages, `${name} messages`);
  same(v["queue-ready"], q.messages_ready, `${name} ready`);
  same(v["queue-unacked"], q.messages_unacked, `${name} unacked`);
  same(v["queue-consumers"], q.consumers, `${name} consumers`);
}

async function queues(page) {
  await open(page, "queues");
  if (!(await get("/api/queues"))) return expectInlineError(page, "[data-testid=queues]", "/api/queues");
  await agree(page, async () => {
    await nextRefresh(page);
    const qs = await get("/api/queues");
    for (const name of [A.orphan, A.work, A.dlq]) await queueRow(page, name, qs.find((x) => x.name === name));
  });
  await shot(page, "queues");
  /* A click on a header sorts by it, largest first for numbers. */
  await page.click("[data-testid=queues-table] th:has-text('Messages')");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("[data-testid=queue-row] [data-testid=queue-messages]")].map((e) => Number(e.dataset.value));
    return rows.length > 1 && rows.every((v, i) => i === 0 || rows[i - 1] >= v);
  }, null, {timeout: 10000});
  /* The name filter keeps matching rows only. */
  await page.fill("[data-testid=queues] [data-testid=filter]", "orph");
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=queue-row]").length === 1, null, {timeout: 10000});
  await page.click(`[data-testid=queue-row][data-name="${A.orphan}"] a`);
  await page.waitForFunction(() => location.hash.startsWith("#/queues/"));
  await nextRefresh(page, 0);
  await agree(page, async () => {
    await nextRefresh(page);
    const q = await get(`/api/queues/${enc(A.orphan)}`);
    if (!q) return expectInlineError(page, "[data-testid=queue-info]", "/api/queues/{}");
    const v = await read(page, "[data-testid=queue-info]");
    same(v["q-messages"], q.messages, "queue messages");
    same(v["q-ready"], q.messages_ready, "queue ready");
    same(v["q-unacked"], q.messages_unacked, "queue unacked");
    same(v["q-consumers"], q.consumers, "queue consumers");
    sameValue(v["q-ready-bytes"], q.ready_bytes, "queue ready bytes");
    assert.ok(await page.$("[data-testid=queue-depth-svg] path"), "no depth chart");
  });
  const peek = await get(`/api/queues/${enc(A.orphan)}/messages?limit=10`);
  if (peek) {
    await page.waitForSelector("[data-testid=peek-table]");
    const rows = await page.$$eval("[data-testid=peek-table] [data-testid=msg-row]", (e) => e.length);
    assert.strictEqual(rows, peek.length);
  }
  await shot(page, "queue");
  /* An unknown queue: the API's 404 inline. */
  await open(page, "queues/" + enc("dash.no-such-queue"));
  const errs = await pageError(page, "#main");
  assert.ok(errs.some((t) => t.includes("404")), `no inline 404: ${errs}`);
}

async function deadLetters(page) {
  await open(page, "dead-letters");
  if (!(await get("/api/queues"))) return expectInlineError(page, "[data-testid=dlqs]", "/api/queues");
  await page.waitForSelector(`[data-testid=dlq-row][data-name="${A.dlq}"]`, {timeout: 10000});
  await agree(page, async () => {
    await nextRefresh(page);
    const q = (await get("/api/queues")).find((x) => x.name === A.dlq);
    same((await read(page, `[data-testid=dlq-row][data-name="${A.dlq}"]`))["dlq-messages"], q.messages, "dlq messages");
    assert.strictEqual(q.messages, A.dead);
  });
  await page.click(`[data-testid=dlq-row][data-name="${A.dlq}"] a`);
  await page.waitForFunction(() => location.hash.startsWith("#/dead-letters/"));
  await nextRefresh(page, 0);
  const peek = await get(`/api/queues/${enc(A.dlq)}/messages?limit=10`);
  if (peek) {
    await page.waitForSelector("[data-testid=dlq-peek-table] [data-testid=msg-row]");
    const v = await read(page, "[data-testid=dlq-peek-table]");
    assert.strictEqual(v["xdeath-reason"].length, peek.length);
    for (const [i, m] of peek.entries()) {
      const xd = m.properties.headers["x-death"][0];
      assert.strictEqual(v["xdeath-reason"][i].t, xd.reason);
      assert.strictEqual(v["xdeath-queue"][i].t, xd.queue);
      same([v["xdeath-count"][i]], xd.count, "x-death count");
    }
    assert.strictEqual(v["xdeath-reason"][0].t, "rejected");
    assert.strictEqual(v["xdeath-queue"][0].t, A.work);
  } else await expectInlineError(page, "[data-testid=peek-out]", "/api/queues/{}/messages");
  await shot(page, "dead-letters");

  /* Redrive 4, then the rest. */
  const workBefore = (await get("/api/queues")).find((x) => x.name === A.work).messages;
  await page.fill("[data-testid=redrive-count]", "4");
  await page.click("[data-testid=redrive-button]");
  await page.waitForFunction(() => {
    const r = document.querySelector("[data-testid=redrive-result]");
    return r && (r.dataset.moved !== undefined || r.classList.contains("error"));
  }, null, {timeout: 20000});
  const res = await page.$eval("[data-testid=redrive-result]", (e) => ({moved: e.dataset.moved, text: e.textContent}));
  if (res.moved === undefined) {
    assert.ok(/404/.test(res.text), `redrive failed: ${res.text}`);
    missing.add("POST /api/queues/{}/redrive");
    await shot(page, "dead-letters-redrive");
    return;
  }
  assert.strictEqual(res.moved, "4", res.text);
  let qs = await get("/api/queues");
  assert.strictEqual(qs.find((x) => x.name === A.dlq).messages, A.dead - 4);
  assert.strictEqual(qs.find((x) => x.name === A.work).messages, workBefore + 4);
  await page.fill("[data-testid=redrive-count]", "");
  await page.click("[data-testid=redrive-button]");
  await page.waitForFunction((n) => document.querySelector("[data-testid=redrive-result]").dataset.moved === String(n),
    A.dead - 4, {timeout: 20000});
  qs = await get("/api/queues");
  assert.strictEqual(qs.find((x) => x.name === A.dlq).messages, 0, "the DLQ did not empty");
  assert.strictEqual(qs.find((x) => x.name === A.work).messages, workBefore + A.dead);
  /* The page shows it: the DLQ at 0, no dead messages left to peek. */
  await page.waitForFunction(() => document.querySelector("[data-testid=dlq-detail-messages]")?.dataset.value === "0",
    null, {timeout: 10000});
  if (peek) await page.waitForSelector("[data-testid=dlq-peek-table] td.empty");
  /* The redriven messages keep their x-death, but died in the queue that
   * holds them now: that queue is not listed as a dead-letter queue. */
  await nextRefresh(page);
  await nextRefresh(page);
  assert.strictEqual(await page.$(`[data-testid=dlq-row][data-name="${A.work}"]`), null, "the redriven queue is listed as a DLQ");
  await shot(page, "dead-letters-redriven");
  const back = await get(`/api/queues/${enc(A.work)}/messages?limit=10`);
  if (back) assert.ok(back.every((m) => m.properties.headers["x-death"][0].queue === A.work));
}

async function connections(page) {
  await open(page, "connections");
  const cs = await get("/api/connections");
  if (!cs) return expectInlineError(page, "[data-testid=connections]", "/api/connections");
  await agree(page, async () => {
    const before = await get("/api/connections");
    await nextRefresh(page);
    const after = await get("/api/connections");
    const rows = await page.$$eval("[data-testid=conn-row]", (e) => e.map((x) => x.dataset.name));
    assert.deepStrictEqual(rows.slice().sort(), after.map((c) => c.name).sort());
    for (const c of after) {
      const b = before.find((x) => x.name === c.name);
      const v = await read(page, `[data-testid=conn-row][data-name="${c.name}"]`);
      assert.strictEqual(v["conn-protocol"][0].t, c.protocol);
      same(v["conn-channels"], c.channels, `${c.name} channels`);
      const bin = Number(v["conn-bytes-in"][0].v);
      assert.ok(b && bin >= b.bytes_in && bin <= c.bytes_in, `${c.name} bytes in ${bin} not within ${b && b.bytes_in}..${c.bytes_in}`);
    }
    assert.ok(after.some((c) => c.protocol === "kafka"), "the group consumer's connection is not listed");
    const w = after.find((c) => c.connection_name === "dash-watcher");
    assert.ok(w && w.protocol === "amqp" && w.channels === 1, `the AMQP watcher: ${JSON.stringify(w)}`);
  });
  const ch = await get("/api/channels");
  if (!ch) await expectInlineError(page, "[data-testid=channels]", "/api/channels");
  else {
    await nextRefresh(page);
    const rows = await page.$$eval("[data-testid=chan-row]", (e) => e.map((x) => x.dataset.name));
    assert.deepStrictEqual(rows.sort(), (await get("/api/channels")).map((c) => `${c.connection}/${c.number}`).sort());
  }
  await shot(page, "connections");
}

(async () => {
  const browser = await chromium.launch({executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"]});
  const page = await browser.newPage({viewport: {width: 1280, height: 860}});
  const jsErrors = [];
  page.on("pageerror", (e) => jsErrors.push(e.message));
  page.on("console", (m) => { /* a CSP violation is only a console error */
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) jsErrors.push(m.text());
  });
  try {
    await livePhase(page);
    log("live phase ok");
    await quiesce();
    log("quiet");
    for (const step of [overview, topics, groups, queues, deadLetters, connections]) {
      await step(page);
      log(step.name, "ok");
    }
    assert.deepStrictEqual(jsErrors, [], "JavaScript errors on the page");
  } finally {
    await browser.close();
  }
  if (missingFields.size) log("fields the API does not give:", [...missingFields].join(", "));
  console.log(JSON.stringify({ok: true, missing_routes: [...missing].sort(), missing_fields: [...missingFields].sort()}));
})().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
