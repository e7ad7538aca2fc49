/* Herald dashboard: hand-written SVG line/area charts (no library).
 *
 * Chart.line(opts) returns a <div class="chart"> holding a legend and an
 * <svg>. opts: {series: [{label, color, points: [[time_ms, value], ...]}],
 * fmt: value formatter for the axis and tooltip, height (px), area (fill
 * under the lines), integer (counts: no grid lines between integers),
 * testid}. Points are drawn in the order given (oldest
 * first); a series may be empty. Hovering shows the values at the nearest
 * time. */
"use strict";

const Chart = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  /* A round grid step (1, 2, 2.5, 5 x 10^n) giving at most 4 lines up to v,
   * and the axis maximum: the first multiple of it at or above v. */
  function niceScale(v, integer) {
    if (integer && !(v > 4)) return {step: 1, max: Math.max(1, Math.ceil(v))};
    if (!(v > 0)) return {step: 0.25, max: 1};
    const raw = v / 4, p = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * p;
    for (const m of [1, 2, 2.5, 5]) if (m * p >= raw) {
      step = m * p;
      break;
    }
    return {step, max: Math.max(step, Math.ceil(v / step - 1e-9) * step)};
  }

  function clock(ms) {
    const d = new Date(ms);
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
  }

  function line(opts) {
    const fmt = opts.fmt || ((v) => String(v));
    const height = opts.height || 180;
    const wrap = document.createElement("div");
    wrap.className = "chart";
    if (opts.testid) wrap.dataset.testid = opts.testid;
    const legend = document.createElement("div");
    legend.className = "legend";
    for (const s of opts.series) {
      const item = document.createElement("span");
      const sw = document.createElement("i");
      sw.style.background = s.color;
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      item.append(sw, s.label + (last == null ? "" : " " + fmt(last)));
      legend.append(item);
    }
    wrap.append(legend);

    const all = opts.series.flatMap((s) => s.points);
    if (all.length === 0) {
      const empty = document.createElement("div");
      empty.className = "chart-empty";
      empty.textContent = "No history yet: points arrive every 5 seconds.";
      wrap.append(empty);
      return wrap;
    }
    const width = Math.max(opts.width || 600, 200);
    const L = 64, R = 12, T = 8, B = 22;
    let t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
    if (t1 - t0 < 10000) t0 = t1 - 10000;
    const scale = niceScale(Math.max(...all.map((p) => p[1])), opts.integer);
    const ymax = scale.max;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (width - L - R);
    const y = (v) => T + (1 - v / ymax) * (height - T - B);

    const root = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img"});
    root.append(svg("title", {}));
    root.firstChild.textContent = opts.series.map((s) => s.label).join(", ");
    for (let i = 0; i * scale.step <= ymax + 1e-9; i++) {
      const v = i * scale.step, yy = y(v);
      root.append(svg("line", {x1: L, x2: width - R, y1: yy, y2: yy, class: i ? "grid" : "axis"}));
      const t = svg("text", {x: L - 6, y: yy + 4, "text-anchor": "end", class: "tick"});
      t.textContent = fmt(v);
      root.append(t);
    }
    for (const [tt, anchor] of [[t0, "start"], [t1, "end"]]) {
      const t = svg("text", {x: x(tt), y: height - 6, "text-anchor": anchor, class: "tick"});
      t.textContent = clock(tt);
      root.append(t);
    }
    for (const s of opts.series) {
      if (!s.points.length) continue;
      const d = s.points.map((p, i) => (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[1]).toFixed(1)).join(" ");
      if (opts.area !== false) {
        const first = s.points[0], last = s.points[s.points.length - 1];
        root.append(svg("path", {d: `${d} L${x(last[0]).toFixed(1)} ${y(0)} L${x(first[0]).toFixed(1)} ${y(0)} Z`,
                                 fill: s.color, "fill-opacity": 0.1, stroke: "none"}));
      }
      const line = svg("path", {d, fill: "none", stroke: s.color, "stroke-width": 1.8, "stroke-linejoin": "round"});
      if (s.dashed) line.setAttribute("stroke-dasharray", "5 3"); /* tells equal series apart */
      root.append(line);
      if (s.points.length === 1) root.append(svg("circle", {cx: x(s.points[0][0]), cy: y(s.points[0][1]), r: 3, fill: s.color}));
    }

    /* Hover: a rule at the nearest time and the values there. */
    const rule = svg("line", {y1: T, y2: height - B, class: "rule", visibility: "hidden"});
    const tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    const hit = svg("rect", {x: L, y: T, width: width - L - R, height: height - T - B, fill: "transparent"});
    root.append(rule, hit);
    hit.addEventListener("mousemove", (ev) => {
      const box = root.getBoundingClientRect();
      const t = t0 + ((ev.clientX - box.left - L) / (width - L - R)) * (t1 - t0);
      const rows = [clock(t)];
      let at = null;
      for (const s of opts.series) {
        let best = null;
        for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
        if (best) {
          rows.push(`${s.label}: ${fmt(best[1])}`);
          at = best[0];
          rows[0] = clock(best[0]);
        }
      }
      if (at == null) return;
      rule.setAttribute("x1", x(at));
      rule.setAttribute("x2", x(at));
      rule.setAttribute("visibility", "visible");
      tip.textContent = rows.join("\n");
      tip.hidden = false;
      tip.style.left = Math.min(x(at) + 8, width - 160) + "px";
    });
    hit.addEventListener("mouseleave", () => {
      rule.setAttribute("visibility", "hidden");
      tip.hidden = true;
    });
    const plot = document.createElement("div");
    plot.className = "plot";
    plot.append(root, tip);
    wrap.append(plot);
    return wrap;
  }

  return {line, niceScale, clock};
})();
