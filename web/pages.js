/* Herald dashboard: the pages. Each App.pages[name](root, arg) builds its
 * panels into root and returns {refresh()}, which app.js calls every 2
 * seconds; a failed call shows its error inside the panel it feeds and the
 * others still render. */
"use strict";

const COLORS = {in: "#2563eb", out: "#16a34a", pub: "#9333ea", del: "#ea580c", ready: "#0891b2", unacked: "#dc2626", lag: "#b45309"};

/* Live points appended to a 5-second history: keeps those newer than the
 * history's last point, at most max. */
function liveTail(history, live, max) {
  const last = history.length ? history[history.length - 1][0] : -Infinity;
  while (live.length > max) live.shift();
  return history.concat(live.filter((p) => p[0] > last));
}

function col(points, i) {
  return points.map((p) => [p[0], p[i]]);
}

function chartWidth(p) {
  return Math.max((p.body.clientWidth || p.el.clientWidth || 600) - 4, 240);
}

/* ---- dead-letter queues (shared by Overview and Dead letters) ---- */

const xdeathSeen = new Map(); /* queue name -> {at: ms, has: bool}: peeked recently */

function dlxOf(q) {
  if (q.dead_letter_exchange != null) return q.dead_letter_exchange;
  const a = q.arguments || {};
  return a["x-dead-letter-exchange"] != null ? a["x-dead-letter-exchange"] : null;
}

function dlxKeyOf(q) {
  if (q.dead_letter_routing_key != null) return q.dead_letter_routing_key;
  const a = q.arguments || {};
  return a["x-dead-letter-routing-key"] != null ? a["x-dead-letter-routing-key"] : null;
}

/* The queues that receive dead letters: those bound to an exchange some
 * queue names as its dead-letter exchange (or named by the routing key when
 * that exchange is the default one), and those whose first ready message
 * carries x-death from another queue (peeked at most every 10 s per queue). Returns a Map
 * name -> {queue, why: [text], sources: [queue names]}. bindings may be
 * null (the call failed): then only peeks decide. */
async function findDeadLetterQueues(queues, bindings) {
  const byName = new Map(queues.map((q) => [q.name, q]));
  const out = new Map();
  const add = (name, why, source) => {
    const q = byName.get(name);
    if (!q) return;
    if (!out.has(name)) out.set(name, {queue: q, why: [], sources: []});
    const e = out.get(name);
    if (!e.why.includes(why)) e.why.push(why);
    if (source && !e.sources.includes(source)) e.sources.push(source);
  };
  for (const q of queues) {
    const dlx = dlxOf(q);
    if (dlx == null) continue;
    const key = dlxKeyOf(q);
    if (dlx === "" || dlx === "amq.default") {
      if (key != null) add(key, "target of the default exchange as dead-letter exchange", q.name);
      continue;
    }
    for (const b of bindings || []) {
      if (b.source !== dlx || b.destination_type !== "queue") continue;
      add(b.destination, `bound to dead-letter exchange "${dlx}"`, q.name);
    }
  }
  const now = Date.now();
  const toPeek = queues.filter((q) => !out.has(q.name) && q.messages_ready > 0 &&
    !(xdeathSeen.has(q.name) && now - xdeathSeen.get(q.name).at < 10000)).slice(0, 30);
  await Promise.all(toPeek.map(async (q) => {
    try {
      const msgs = await api(`/api/queues/${enc(q.name)}/messages?limit=1`);
      /* A message whose newest death was in this very queue came back
       * (redriven, or a retry loop): that does not make it a DLQ. */
      xdeathSeen.set(q.name, {at: now, has: msgs.some((m) => xdeath(m).length > 0 && xdeath(m)[0].queue !== q.name)});
    } catch (e) {
      xdeathSeen.set(q.name, {at: now, has: false});
    }
  }));
  for (const q of queues) if (!out.has(q.name) && q.messages_ready > 0 && xdeathSeen.get(q.name)?.has)
    add(q.name, "holds messages that died in another queue");
  return out;
}

function xdeath(m) {
  const x = m.properties && m.properties.headers && m.properties.headers["x-death"];
  return Array.isArray(x) ? x : [];
}

/* ---- Overview ---- */

/* What a newcomer should look at first: alarms, queues growing with no or
 * slow consumers, groups with lag, dead letters. */
function attentionItems(o, queues, groups, dlqs, trend) {
  const items = [];
  const item = (kind, name, href, text) => items.push({kind, name, href, text});
  if (o && o.alarms && o.alarms.memory) item("alarm", "memory", "#/overview", "Memory alarm: AMQP publishers are blocked until memory use falls.");
  if (o && o.alarms && o.alarms.disk) item("alarm", "disk", "#/overview", "Disk alarm: AMQP publishers are blocked until disk space is freed.");
  for (const q of queues || []) {
    /* A stream keeps what consumers read, and a DLQ is listed below. */
    if (q.type === "stream" || (dlqs && dlqs.has(q.name))) continue;
    const pub = (q.rates && q.rates.publish) || 0, del = (q.rates && q.rates.deliver) || 0;
    const href = `#/queues/${enc(q.name)}`;
    const grew = trend && trend.get(q.name); /* {by: messages, s: seconds} over the last minute */
    const consumers = `${q.consumers} consumer${q.consumers === 1 ? " takes" : "s take"} ${Fmt.rate(del)}`;
    if (q.messages_ready > 0 && q.consumers === 0)
      item("no-consumers", q.name, href, [`Queue ${q.name}: ${Fmt.int(q.messages_ready)} ready, no consumers`,
        pub >= 0.05 ? `, publishers add ${Fmt.rate(pub)}` : ""].join(""));
    else if (q.messages_ready > 0 && (pub > del * 1.2 + 0.5 || (grew && grew.by >= 10)))
      item("slow-consumers", q.name, href, `Queue ${q.name}: growing, ${Fmt.int(q.messages_ready)} ready` +
        (grew && grew.by > 0 ? ` (+${Fmt.int(grew.by)} in ${grew.s} s)` : "") +
        `; publishers add ${Fmt.rate(pub)}, ${consumers}`);
    else if (q.messages_ready > 0 && del > 0 && q.messages_ready / del > 300)
      item("slow-consumers", q.name, href, `Queue ${q.name}: a backlog of ${Fmt.int(q.messages_ready)}, ` +
        `${Math.round(q.messages_ready / del / 60)} minutes at the rate ${consumers}`);
  }
  for (const g of groups || []) {
    if (!(g.lag > 0)) continue;
    item("group-lag", g.group_id, `#/groups/${enc(g.group_id)}`,
      `Group ${g.group_id}: lag ${Fmt.int(g.lag)} on ${(g.topics || []).join(", ") || "its topics"}` +
      (g.members === 0 ? " and no members consuming" : ` (${g.members} member${g.members === 1 ? "" : "s"}, ${g.state})`));
  }
  for (const [name, d] of dlqs || []) {
    if (!(d.queue.messages > 0)) continue;
    item("dead-letters", name, `#/dead-letters/${enc(name)}`,
      `Dead-letter queue ${name}: ${Fmt.int(d.queue.messages)} message${d.queue.messages === 1 ? "" : "s"}` +
      (d.sources.length ? ` from ${d.sources.join(", ")}` : ""));
  }
  return items;
}

function tile(label, value, sub) {
  return h("div", {class: "tile"}, h("div", {class: "tile-label"}, label), h("div", {class: "tile-value"}, value),
    sub ? h("div", {class: "tile-sub"}, sub) : null);
}

App.pages.overview = (root) => {
  const attention = panel("Needs attention", "attention");
  const tiles = panel("Now", "overview-tiles");
  const kafka = panel("Kafka records per second", "chart-kafka");
  const amqp = panel("AMQP messages per second", "chart-amqp");
  const backlog = panel("Queued AMQP messages and Kafka consumer lag", "chart-backlog");
  root.append(h("h1", {}, "Overview"), attention.el, tiles.el,
    h("div", {class: "grid2"}, kafka.el, amqp.el), backlog.el);
  const live = [];
  const depth = new Map(); /* queue name -> [[time_ms, ready], ...] over the last minute */

  /* How much each queue's ready count grew since the oldest sample at
   * least 10 s old: Map name -> {by, s}. */
  function trend(queues, now) {
    const out = new Map();
    for (const q of queues) {
      const pts = depth.get(q.name) || [];
      pts.push([now, q.messages_ready]);
      while (pts.length && now - pts[0][0] > 60000) pts.shift();
      depth.set(q.name, pts);
      if (now - pts[0][0] >= 10000) out.set(q.name, {by: q.messages_ready - pts[0][1], s: Math.round((now - pts[0][0]) / 1000)});
    }
    return out;
  }

  return {
    async refresh() {
      const o = App.overview;
      const [queues, groups, bindings] = await Promise.allSettled([api("/api/queues"), api("/api/groups"), api("/api/bindings")]);
      if (App.overviewError) {
        for (const p of [tiles, kafka, amqp, backlog]) p.error(App.overviewError);
      } else {
        const r = o.rates || {}, m = o.messages || {}, d = o.disk || {}, c = o.connections || {};
        tiles.show(h("div", {class: "tiles"},
          tile("Kafka in", num(r.kafka_in, "rate", "ov-kafka-in"), [num(r.kafka_in_bytes, "bytes", "ov-kafka-in-bytes"), "/s"]),
          tile("Kafka out", num(r.kafka_out, "rate", "ov-kafka-out"), [num(r.kafka_out_bytes, "bytes", "ov-kafka-out-bytes"), "/s"]),
          tile("AMQP publish", num(r.amqp_publish, "rate", "ov-amqp-publish")),
          tile("AMQP deliver", num(r.amqp_deliver, "rate", "ov-amqp-deliver"), ["ack ", num(r.amqp_ack, "rate", "ov-amqp-ack")]),
          tile("Connections", num((c.kafka || 0) + (c.amqp || 0), "int", "ov-conn-total"),
            [num(c.kafka, "int", "ov-conn-kafka"), " Kafka · ", num(c.amqp, "int", "ov-conn-amqp"), " AMQP"]),
          tile("AMQP messages ready", num(m.ready, "int", "ov-ready"),
            ["unacked ", num(m.unacked, "int", "ov-unacked"), " · delayed ", num(m.delayed, "int", "ov-delayed")]),
          tile("Consumer lag (Kafka)", num(o.consumer_lag, "int", "ov-lag")),
          tile("Topics", num(o.topics, "int", "ov-topics"), [num(o.partitions, "int", "ov-partitions"), " partitions · ",
            num(o.groups, "int", "ov-groups"), o.groups === 1 ? " group" : " groups"]),
          tile("Queues", num(o.queues, "int", "ov-queues"), [num(o.exchanges, "int", "ov-exchanges"), " exchanges"]),
          tile("Disk used (data directory)", num(d.used_bytes, "bytes", "ov-disk-used"),
            [num(d.free_bytes, "bytes", "ov-disk-free"), " free of ", num(d.total_bytes, "bytes", "ov-disk-total")]),
          tile("Memory (RSS)", num(o.process && o.process.rss_bytes, "bytes", "ov-rss"),
            o.process && o.process.cpu_seconds != null ? `CPU ${Number(o.process.cpu_seconds).toFixed(2)} s` : null),
          tile("Alarms", [
            h("span", {class: o.alarms && o.alarms.memory ? "badge bad" : "badge ok", testid: "ov-alarm-memory",
              "data-value": String(!!(o.alarms && o.alarms.memory))}, o.alarms && o.alarms.memory ? "memory ALARM" : "memory ok"), " ",
            h("span", {class: o.alarms && o.alarms.disk ? "badge bad" : "badge ok", testid: "ov-alarm-disk",
              "data-value": String(!!(o.alarms && o.alarms.disk))}, o.alarms && o.alarms.disk ? "disk ALARM" : "disk ok")],
            null)));
        live.push([o.now_ms, r.kafka_in, r.kafka_out, r.amqp_publish, r.amqp_deliver,
          (m.ready || 0) + (m.unacked || 0), o.consumer_lag || 0]);
        const pts = liveTail(o.history || [], live, 200);
        kafka.show(Chart.line({testid: "chart-kafka-svg", width: chartWidth(kafka), fmt: Fmt.axisRate, series: [
          {label: "in", color: COLORS.in, points: col(pts, 1)}, {label: "out", color: COLORS.out, points: col(pts, 2), dashed: true}]}));
        amqp.show(Chart.line({testid: "chart-amqp-svg", width: chartWidth(amqp), fmt: Fmt.axisRate, series: [
          {label: "publish", color: COLORS.pub, points: col(pts, 3)}, {label: "deliver", color: COLORS.del, points: col(pts, 4), dashed: true}]}));
        backlog.show(Chart.line({testid: "chart-backlog-svg", width: chartWidth(backlog), fmt: Fmt.axisInt, integer: true, height: 150, series: [
          {label: "AMQP ready + unacked", color: COLORS.ready, points: col(pts, 5)}, {label: "consumer lag", color: COLORS.lag, points: col(pts, 6), dashed: true}]}));
      }
      const errs = [queues, groups].filter((x) => x.status === "rejected").map((x) => errorBox(x.reason));
      const qs = queues.status === "fulfilled" ? queues.value : [];
      const dlqs = await findDeadLetterQueues(qs, bindings.status === "fulfilled" ? bindings.value : null);
      const items = attentionItems(App.overviewError ? null : o, qs, groups.status === "fulfilled" ? groups.value : [], dlqs,
        trend(qs, Date.now()));
      attention.show(...errs, items.length
        ? h("ul", {class: "attention"}, items.map((it) =>
          h("li", {class: "att-" + it.kind, testid: "attention-item", "data-kind": it.kind, "data-name": it.name},
            h("a", {href: it.href}, it.text))))
        : h("p", {class: "calm", testid: "attention-none"}, errs.length ? "" : "Nothing needs attention: no queue is growing without consumers, no group lags, no dead letters."));
    },
  };
};

/* ---- Topics ---- */

App.pages.topics = (root, name) => (name ? topicPage(root, name) : topicsPage(root));

function topicsPage(root) {
  const p = panel("Topics", "topics");
  root.append(h("h1", {}, "Topics"), p.el);
  const view = {
    async refresh() {
      try {
        const topics = (await api("/api/topics")).filter((t) => keep(t.name));
        p.show(table([
          {label: "Topic", get: (t) => t.name, testid: "topic-name"},
          {label: "Partitions", get: (t) => t.partitions, kind: "int", testid: "topic-partitions"},
          {label: "Messages", get: (t) => t.messages, kind: "int", testid: "topic-messages"},
          {label: "Size", get: (t) => t.size_bytes, kind: "bytes", testid: "topic-size"},
          {label: "Start offsets", get: (t) => t.start_offsets, kind: "int", testid: "topic-start"},
          {label: "End offsets", get: (t) => t.end_offsets, kind: "int", testid: "topic-end"},
          {label: "In", get: (t) => t.rates && t.rates.in, kind: "rate", testid: "topic-rate-in"},
          {label: "Out", get: (t) => t.rates && t.rates.out, kind: "rate", testid: "topic-rate-out"},
        ], topics, {testid: "topics-table", sort, rowTestid: "topic-row", key: (t) => t.name,
          href: (t) => `#/topics/${enc(t.name)}`, empty: "No topics."}));
      } catch (e) {
        p.error(e);
      }
    },
  };
  const keep = nameFilter(p, "topics", () => view.refresh());
  const sort = sortState(() => view.refresh());
  return view;
}

function topicPage(root, name) {
  const info = panel("Topic", "topic-info");
  const rates = panel("Records per second (since this page opened)", "topic-rates");
  const parts = panel("Partitions", "topic-partitions");
  const configs = panel("Configuration", "topic-configs");
  root.append(h("h1", {}, h("a", {href: "#/topics"}, "Topics"), " / ", h("span", {testid: "topic-title"}, name)),
    info.el, rates.el, parts.el, configs.el);
  const live = [];
  return {
    async refresh() {
      let t;
      try {
        t = await api(`/api/topics/${enc(name)}`);
      } catch (e) {
        for (const x of [info, rates, parts, configs]) x.error(e);
        return;
      }
      const ps = t.partitions || [];
      const sum = (f) => ps.reduce((a, x) => a + (f(x) || 0), 0);
      info.show(facts([
        ["Id", t.id], ["Internal", String(t.internal)], ["Partitions", num(ps.length, "int", "topic-partition-count")],
        ["Groups", (t.groups || []).length ? t.groups.map((g, i) => [i ? ", " : "", h("a", {href: `#/groups/${enc(g)}`}, g)]) : "none"],
      ]));
      live.push([App.overview ? App.overview.now_ms : Date.now(), sum((x) => x.rates && x.rates.in), sum((x) => x.rates && x.rates.out)]);
      rates.show(Chart.line({width: chartWidth(rates), height: 140, fmt: Fmt.axisRate, series: [
        {label: "in", color: COLORS.in, points: col(liveTail([], live, 300), 1)},
        {label: "out", color: COLORS.out, points: col(liveTail([], live, 300), 2), dashed: true}]}));
      parts.show(table([
        {label: "Partition", get: (x) => x.partition, kind: "int", testid: "part-id"},
        {label: "Start offset", get: (x) => x.start_offset, kind: "int", testid: "part-start"},
        {label: "End offset", get: (x) => x.end_offset, kind: "int", testid: "part-end"},
        {label: "High watermark", get: (x) => x.high_watermark, kind: "int", testid: "part-hwm"},
        {label: "Messages", get: (x) => x.end_offset - x.start_offset, kind: "int", testid: "part-messages"},
        {label: "Size", get: (x) => x.size_bytes, kind: "bytes", testid: "part-size"},
        {label: "Segments", get: (x) => x.segments, kind: "int", testid: "part-segments"},
        {label: "Records in", get: (x) => x.messages_in, kind: "int", testid: "part-in"},
        {label: "Records out", get: (x) => x.messages_out, kind: "int", testid: "part-out"},
        {label: "In", get: (x) => x.rates && x.rates.in, kind: "rate", testid: "part-rate-in"},
        {label: "Out", get: (x) => x.rates && x.rates.out, kind: "rate", testid: "part-rate-out"},
      ], ps, {testid: "partitions-table", rowTestid: "partition-row", key: (x) => String(x.partition)}));
      const cfg = Object.entries(t.configs || {}).sort((a, b) => (a[1].default === b[1].default ? a[0] < b[0] ? -1 : 1 : a[1].default ? 1 : -1));
      configs.show(table([
        {label: "Name", get: ([k]) => k},
        {label: "Value", get: ([, v]) => (v && v.value != null ? v.value : "–")},
        {label: "", get: ([, v]) => (v && v.default ? "default" : h("b", {}, "set"))},
      ], cfg, {empty: "No configuration shown."}));
    },
  };
}

/* ---- Consumer groups ---- */

App.pages.groups = (root, id) => (id ? groupPage(root, id) : groupsPage(root));

function groupsPage(root) {
  const p = panel("Consumer groups", "groups");
  root.append(h("h1", {}, "Consumer groups"), p.el);
  const view = {
    async refresh() {
      try {
        const groups = (await api("/api/groups")).filter((g) => keep(g.group_id));
        p.show(table([
          {label: "Group", get: (g) => g.group_id, testid: "group-id"},
          {label: "State", get: (g) => g.state, testid: "group-state"},
          {label: "Protocol", get: (g) => [g.protocol_type, g.protocol].filter(Boolean).join(" / ")},
          {label: "Members", get: (g) => g.members, kind: "int", testid: "group-members"},
          {label: "Lag", get: (g) => g.lag, kind: "int", testid: "group-lag"},
          {label: "Topics", get: (g) => (g.topics || []).join(", ")},
        ], groups, {testid: "groups-table", sort, rowTestid: "group-row", key: (g) => g.group_id,
          href: (g) => `#/groups/${enc(g.group_id)}`, empty: "No consumer groups."}));
      } catch (e) {
        p.error(e);
      }
    },
  };
  const keep = nameFilter(p, "groups", () => view.refresh());
  const sort = sortState(() => view.refresh());
  return view;
}

function groupPage(root, id) {
  const info = panel("Group", "group-info");
  const lag = panel("Lag over time", "group-lag-chart");
  const members = panel("Members and assignments", "group-members");
  const offsets = panel("Committed offsets and lag per partition", "group-offsets");
  root.append(h("h1", {}, h("a", {href: "#/groups"}, "Consumer groups"), " / ", h("span", {testid: "group-title"}, id)),
    info.el, lag.el, members.el, offsets.el);
  const live = [];
  return {
    async refresh() {
      let g;
      try {
        g = await api(`/api/groups/${enc(id)}`);
      } catch (e) {
        for (const x of [info, lag, members, offsets]) x.error(e);
        return;
      }
      info.show(facts([["State", h("span", {testid: "group-state"}, g.state)],
        ["Protocol", [g.protocol_type, g.protocol].filter(Boolean).join(" / ") || "–"],
        ["Lag", num(g.lag, "int", "group-lag")], ["Members", num((g.members || []).length, "int", "group-member-count")]]));
      live.push([App.overview ? App.overview.now_ms : Date.now(), g.lag]);
      lag.show(Chart.line({testid: "group-lag-svg", width: chartWidth(lag), height: 150, fmt: Fmt.axisInt, integer: true,
        series: [{label: "lag", color: COLORS.lag, points: liveTail(g.history || [], live, 200)}]}));
      members.show(table([
        {label: "Member", get: (m) => m.member_id, testid: "member-id"},
        {label: "Client", get: (m) => m.client_id},
        {label: "Host", get: (m) => m.client_host},
        {label: "Instance", get: (m) => m.instance_id},
        {label: "Assignments", get: (m) => (m.assignments || []).map((a) => `${a.topic}: ${a.partitions.join(", ")}`).join("; "),
          testid: "member-assignments"},
      ], g.members || [], {testid: "members-table", rowTestid: "member-row", key: (m) => m.member_id, empty: "No members."}));
      offsets.show(table([
        {label: "Topic", get: (x) => h("a", {href: `#/topics/${enc(x.topic)}`}, x.topic)},
        {label: "Partition", get: (x) => x.partition, kind: "int", testid: "off-partition"},
        {label: "Committed", get: (x) => x.committed, kind: "int", testid: "off-committed"},
        {label: "High watermark", get: (x) => x.high_watermark, kind: "int", testid: "off-hwm"},
        {label: "Lag", get: (x) => x.lag, kind: "int", testid: "off-lag"},
        {label: "Metadata", get: (x) => x.metadata},
      ], g.offsets || [], {testid: "offsets-table", rowTestid: "offset-row", key: (x) => `${x.topic}/${x.partition}`,
        empty: "No committed offsets."}));
    },
  };
}

/* ---- Queues ---- */

App.pages.queues = (root, name) => (name ? queuePage(root, name) : queuesPage(root));

const QUEUE_COLS = [
  {label: "Queue", get: (q) => q.name, testid: "queue-name"},
  {label: "Type", get: (q) => q.type},
  {label: "Messages", get: (q) => q.messages, kind: "int", testid: "queue-messages"},
  {label: "Ready", get: (q) => q.messages_ready, kind: "int", testid: "queue-ready"},
  {label: "Unacked", get: (q) => q.messages_unacked, kind: "int", testid: "queue-unacked"},
  {label: "Consumers", get: (q) => q.consumers, kind: "int", testid: "queue-consumers"},
  {label: "Publish", get: (q) => q.rates && q.rates.publish, kind: "rate", testid: "queue-rate-publish"},
  {label: "Deliver", get: (q) => q.rates && q.rates.deliver, kind: "rate", testid: "queue-rate-deliver"},
  {label: "Ack", get: (q) => q.rates && q.rates.ack, kind: "rate", testid: "queue-rate-ack"},
  {label: "Dead letters to", get: (q) => (dlxOf(q) == null ? "" : (dlxOf(q) || "(default)") + (dlxKeyOf(q) != null ? ` → ${dlxKeyOf(q)}` : ""))},
];

function queuesPage(root) {
  const p = panel("Queues", "queues");
  root.append(h("h1", {}, "Queues"), p.el);
  const view = {
    async refresh() {
      try {
        const queues = (await api("/api/queues")).filter((q) => keep(q.name));
        p.show(table(QUEUE_COLS, queues, {testid: "queues-table", sort, rowTestid: "queue-row", key: (q) => q.name,
          href: (q) => `#/queues/${enc(q.name)}`, empty: "No queues."}));
      } catch (e) {
        p.error(e);
      }
    },
  };
  const keep = nameFilter(p, "queues", () => view.refresh());
  const sort = sortState(() => view.refresh());
  return view;
}

/* Peeked messages as a table; with x-death columns when any has them. */
function messagesTable(msgs, testid) {
  const dead = msgs.some((m) => xdeath(m).length);
  const cols = [
    {label: "#", get: (m) => m.position, kind: "int", testid: "msg-position"},
    {label: "Routing key", get: (m) => m.routing_key, testid: "msg-routing-key"},
    {label: "Redelivered", get: (m) => (m.redelivered ? "yes" : "no")},
    {label: "Deliveries", get: (m) => m.delivery_count, kind: "int"},
    {label: "Bytes", get: (m) => m.payload_bytes, kind: "int", testid: "msg-bytes"},
  ];
  if (dead) cols.push(
    {label: "x-death reason", get: (m) => (xdeath(m)[0] || {}).reason, testid: "xdeath-reason"},
    {label: "died in queue", get: (m) => (xdeath(m)[0] || {}).queue, testid: "xdeath-queue"},
    {label: "count", get: (m) => (xdeath(m)[0] || {}).count, kind: "int", testid: "xdeath-count"},
    {label: "deaths", get: (m) => xdeath(m).length, kind: "int"});
  cols.push({label: "Payload", cls: "payload", get: (m) => h("details", {},
    h("summary", {testid: "msg-payload"}, (m.payload_encoding === "base64" ? "base64: " : "") + String(m.payload).slice(0, 60)),
    json({payload: m.payload, payload_encoding: m.payload_encoding, exchange: m.exchange, properties: m.properties}))});
  return table(cols, msgs, {testid, rowTestid: "msg-row", empty: "No ready messages."});
}

function peeker(name, testid) {
  const limit = h("input", {type: "number", min: 1, max: 1000, value: 10, testid: "peek-limit", "aria-label": "how many"});
  const out = h("div", {testid: "peek-out"});
  const run = async () => {
    try {
      const msgs = await api(`/api/queues/${enc(name)}/messages?limit=${Number(limit.value) || 10}`);
      out.replaceChildren(messagesTable(msgs, testid));
    } catch (e) {
      out.replaceChildren(errorBox(e));
    }
  };
  const el = h("div", {}, h("div", {class: "form"}, "Show the first ", limit, " ready messages without consuming them ",
    h("button", {type: "button", testid: "peek-button", onclick: run}, "Peek")), out);
  return {el, run};
}

function queuePage(root, name) {
  const info = panel("Queue", "queue-info");
  const depth = panel("Depth over time", "queue-depth");
  const consumers = panel("Consumers", "queue-consumers");
  const args = panel("Arguments", "queue-arguments");
  const peek = peeker(name, "peek-table");
  const peekPanel = panel("Peek", "queue-peek");
  peekPanel.show(peek.el);
  peek.run();
  root.append(h("h1", {}, h("a", {href: "#/queues"}, "Queues"), " / ", h("span", {testid: "queue-title"}, name)),
    info.el, depth.el, consumers.el, args.el, peekPanel.el);
  const live = [];
  return {
    async refresh() {
      let q;
      try {
        q = await api(`/api/queues/${enc(name)}`);
      } catch (e) {
        for (const x of [info, depth, consumers, args]) x.error(e);
        return;
      }
      const t = q.totals || {}, r = q.rates || {};
      info.show(h("div", {class: "grid2"},
        facts([["Type", q.type], ["Durable", String(q.durable)], ["Exclusive", String(q.exclusive)],
          ["Auto-delete", String(q.auto_delete)],
          ["Messages", num(q.messages, "int", "q-messages")], ["Ready", num(q.messages_ready, "int", "q-ready")],
          ["Unacked", num(q.messages_unacked, "int", "q-unacked")], ["Delayed", num(q.messages_delayed, "int", "q-delayed")],
          ["Ready bytes", num(q.ready_bytes, "bytes", "q-ready-bytes")], ["Consumers", num(q.consumers, "int", "q-consumers")],
          ["Dead letters to", dlxOf(q) == null ? "–" : `${dlxOf(q) || "(default exchange)"}${dlxKeyOf(q) != null ? " with key " + dlxKeyOf(q) : ""}`]]),
        table([
          {label: "Since start", get: (k) => k},
          {label: "Total", get: (k) => t[k], kind: "int", testid: "q-total"},
          {label: "Rate", get: (k) => r[{published: "publish", delivered: "deliver", redelivered: "redeliver", acked: "ack",
            returned: "return", dead_lettered: "dead_letter", expired: "expire"}[k]], kind: "rate"},
        ], Object.keys(t), {testid: "q-totals", rowTestid: "q-total-row", key: (k) => k})));
      live.push([App.overview ? App.overview.now_ms : Date.now(), q.messages_ready, q.messages_unacked]);
      const pts = liveTail(q.history || [], live, 200);
      depth.show(Chart.line({testid: "queue-depth-svg", width: chartWidth(depth), height: 160, fmt: Fmt.axisInt, integer: true, series: [
        {label: "ready", color: COLORS.ready, points: col(pts, 1)}, {label: "unacked", color: COLORS.unacked, points: col(pts, 2), dashed: true}]}));
      consumers.show(table([
        {label: "Tag", get: (c) => c.consumer_tag, testid: "consumer-tag"},
        {label: "Connection", get: (c) => c.connection},
        {label: "Channel", get: (c) => c.channel, kind: "int"},
        {label: "Prefetch", get: (c) => c.prefetch, kind: "int"},
        {label: "Ack", get: (c) => (c.ack ? "manual" : "auto")},
      ], q.consumer_details || [], {testid: "consumers-table", rowTestid: "consumer-row", empty: "No consumers."}));
      args.show(Object.keys(q.arguments || {}).length ? json(q.arguments) : h("p", {class: "calm"}, "No arguments."));
    },
  };
}

/* ---- Dead letters ---- */

App.pages["dead-letters"] = (root, selected) => {
  const list = panel("Dead-letter queues", "dlqs");
  root.append(h("h1", {}, "Dead letters"),
    h("p", {class: "hint"}, "Queues that receive dead letters: bound to a queue's dead-letter exchange, or holding messages " +
      "with an x-death header. Redrive sends each message back to the queue it died in (its newest x-death entry)."),
    list.el);
  let detail = null;
  if (selected) {
    const info = panel(["Dead-letter queue ", h("span", {class: "name"}, selected)], "dlq-detail");
    const count = h("input", {type: "number", min: 1, testid: "redrive-count", "aria-label": "how many"});
    const to = h("input", {type: "text", placeholder: "where each died", testid: "redrive-to", "aria-label": "to queue"});
    const result = h("span", {testid: "redrive-result", class: "result"});
    const peek = peeker(selected, "dlq-peek-table");
    const button = h("button", {type: "button", class: "primary", testid: "redrive-button"}, "Redrive");
    button.addEventListener("click", async () => {
      button.disabled = true;
      result.textContent = "moving…";
      result.className = "result";
      const body = {};
      if (count.value) body.count = Number(count.value);
      if (to.value) body.to = to.value;
      try {
        const r = await api(`/api/queues/${enc(selected)}/redrive`, {method: "POST", body});
        result.textContent = `Moved ${r.moved}, skipped ${r.skipped}.`;
        result.dataset.moved = String(r.moved);
        result.dataset.skipped = String(r.skipped);
      } catch (e) {
        result.textContent = e.message;
        result.className = "result error";
      }
      button.disabled = false;
      await view.refresh();
      await peek.run();
    });
    const summary = h("div", {});
    info.show(summary,
      h("div", {class: "form"}, "Redrive ", count, " messages (empty: all) to ", to, " ", button, " ", result),
      peek.el);
    root.append(info.el);
    detail = {summary, count, peek};
    peek.run();
  }
  const view = {
    async refresh() {
      let queues, bindings = null;
      try {
        queues = await api("/api/queues");
      } catch (e) {
        list.error(e);
        return;
      }
      const notes = [];
      try {
        bindings = await api("/api/bindings");
      } catch (e) {
        notes.push(errorBox(e));
      }
      const dlqs = await findDeadLetterQueues(queues, bindings);
      const rows = [...dlqs.values()];
      list.show(...notes, table([
        {label: "Queue", get: (d) => d.queue.name, testid: "dlq-name"},
        {label: "Messages", get: (d) => d.queue.messages, kind: "int", testid: "dlq-messages"},
        {label: "Ready", get: (d) => d.queue.messages_ready, kind: "int", testid: "dlq-ready"},
        {label: "Consumers", get: (d) => d.queue.consumers, kind: "int"},
        {label: "Dead-lettered from", get: (d) => d.sources.join(", ")},
        {label: "Why listed", get: (d) => d.why.join("; ")},
      ], rows, {testid: "dlq-table", rowTestid: "dlq-row", key: (d) => d.queue.name,
        href: (d) => `#/dead-letters/${enc(d.queue.name)}`, empty: "No dead-letter queues."}));
      if (detail) {
        const q = queues.find((x) => x.name === selected);
        detail.summary.replaceChildren(q
          ? facts([["Messages", num(q.messages, "int", "dlq-detail-messages")], ["Ready", num(q.messages_ready, "int", "dlq-detail-ready")]])
          : errorBox(new Error(`There is no queue called ${selected}.`)));
      }
    },
  };
  return view;
};

/* ---- Connections ---- */

App.pages.connections = (root) => {
  const conns = panel("Connections", "connections");
  const chans = panel("AMQP channels", "channels");
  root.append(h("h1", {}, "Connections"), conns.el, chans.el);
  return {
    async refresh() {
      const [c, ch] = await Promise.allSettled([api("/api/connections"), api("/api/channels")]);
      if (c.status === "rejected") conns.error(c.reason);
      else conns.show(table([
        {label: "Connection", get: (x) => x.name, testid: "conn-name"},
        {label: "Protocol", get: (x) => x.protocol, testid: "conn-protocol"},
        {label: "Client", get: (x) => x.client},
        {label: "Name", get: (x) => x.connection_name},
        {label: "User", get: (x) => x.user},
        {label: "Channels", get: (x) => x.channels, kind: "int", testid: "conn-channels"},
        {label: "Connected", get: (x) => Fmt.time(x.connected_at_ms)},
        {label: "Bytes in", get: (x) => x.bytes_in, kind: "bytes", testid: "conn-bytes-in"},
        {label: "Bytes out", get: (x) => x.bytes_out, kind: "bytes", testid: "conn-bytes-out"},
        {label: "Requests", get: (x) => x.requests, kind: "int"},
      ], c.value, {testid: "connections-table", rowTestid: "conn-row", key: (x) => x.name, empty: "No connections."}));
      if (ch.status === "rejected") chans.error(ch.reason);
      else chans.show(table([
        {label: "Connection", get: (x) => x.connection, testid: "chan-connection"},
        {label: "Channel", get: (x) => x.number, kind: "int"},
        {label: "Consumers", get: (x) => x.consumers, kind: "int"},
        {label: "Unacked", get: (x) => x.unacked, kind: "int"},
        {label: "Prefetch", get: (x) => x.prefetch, kind: "int"},
        {label: "Confirm", get: (x) => (x.confirm ? "yes" : "no")},
      ], ch.value, {testid: "channels-table", rowTestid: "chan-row", key: (x) => `${x.connection}/${x.number}`, empty: "No channels."}));
    },
  };
};
