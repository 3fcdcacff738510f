// larkps mesh report: builds the grid, legend, site table and path plots from the
// JSON in #larkps-data. Text only ever goes through textContent or setAttribute.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("larkps-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var state = { metric: "throughput", family: data.families[0] || "ipv4", selected: null };
  var metrics = {};
  data.metrics.forEach(function (m) { metrics[m.id] = m; });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    setAll(node, attrs);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function sv(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    setAll(node, attrs);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function setAll(node, attrs) {
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function pathName(src, dst, family) { return src + "->" + dst + "/" + family; }

  // -- formatting ------------------------------------------------------------------
  function sig(x) { return Number(x.toPrecision(3)).toString(); }
  function fmtRate(bps) {
    if (bps === null || bps === undefined) return "-";
    var steps = [[1e12, "Tbit/s"], [1e9, "Gbit/s"], [1e6, "Mbit/s"], [1e3, "kbit/s"]];
    for (var i = 0; i < steps.length; i++) {
      if (Math.abs(bps) >= steps[i][0]) return sig(bps / steps[i][0]) + " " + steps[i][1];
    }
    return sig(bps) + " bit/s";
  }
  function fmtValue(metric, v) {
    if (v === null || v === undefined) return "-";
    if (metric === "throughput") return fmtRate(v);
    if (metric === "loss") return sig(v * 100) + " %";
    return sig(v) + " ms";
  }
  function fmtTime(ts) {
    var d = new Date(ts * 1000);
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return d.getUTCFullYear() + "-" + two(d.getUTCMonth() + 1) + "-" + two(d.getUTCDate()) +
      " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + "Z";
  }
  function fmtHour(ts) {
    var d = new Date(ts * 1000);
    return (d.getUTCHours() < 10 ? "0" : "") + d.getUTCHours() + ":" +
      (d.getUTCMinutes() < 10 ? "0" : "") + d.getUTCMinutes();
  }
  function colour(level) { return data.colours[level === "none" ? "missing" : level]; }

  // -- controls --------------------------------------------------------------------
  function buildControls() {
    var metricBox = document.getElementById("metric-switch");
    data.metrics.forEach(function (m) {
      var b = el("button", { type: "button", id: "metric-" + m.id, "data-metric": m.id }, m.label);
      b.addEventListener("click", function () { state.metric = m.id; refresh(); });
      metricBox.appendChild(b);
    });
    var familyBox = document.getElementById("family-switch");
    data.families.forEach(function (f) {
      var b = el("button", { type: "button", id: "family-" + f, "data-family": f }, f === "ipv6" ? "IPv6" : "IPv4");
      b.addEventListener("click", function () { state.family = f; refresh(); });
      familyBox.appendChild(b);
    });
  }
  function markActive() {
    document.querySelectorAll("#metric-switch button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-metric") === state.metric);
    });
    document.querySelectorAll("#family-switch button").forEach(function (b) {
      b.classList.toggle("active", b.getAttribute("data-family") === state.family);
    });
  }

  // -- grid ------------------------------------------------------------------------
  function half(src, dst, position) {
    var name = pathName(src, dst, state.family);
    var path = data.paths[name];
    var div = el("div", { "class": "half " + position, "data-path": name, "data-src": src, "data-dst": dst });
    var level, reason;
    if (!path) {
      level = "none";
      reason = name + ": no tests from " + src + " to " + dst + " in " + state.family;
      div.classList.add("none");
      div.setAttribute("data-exists", "0");
    } else {
      var fig = path.figures[state.metric];
      level = fig.level;
      reason = name + ": " + fig.reason;
      div.setAttribute("data-exists", "1");
      div.addEventListener("click", function () { select(name); });
    }
    div.setAttribute("data-level", level);
    div.setAttribute("title", reason);
    div.style.backgroundColor = colour(level);
    if (state.selected === name) div.classList.add("selected");
    return div;
  }
  function gridSites() {
    // The sites with at least one path in the selected family.
    var seen = {};
    Object.keys(data.paths).forEach(function (name) {
      var p = data.paths[name];
      if (p.family === state.family) { seen[p.src] = true; seen[p.dst] = true; }
    });
    return data.sites.filter(function (s) { return seen[s]; });
  }
  function buildGrid() {
    var table = document.getElementById("grid");
    clear(table);
    var sites = gridSites();
    var head = el("tr");
    head.appendChild(el("th", { "class": "corner" }, "from \\ to"));
    sites.forEach(function (s) { head.appendChild(el("th", { "class": "col", scope: "col", title: s }, s)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    sites.forEach(function (row) {
      var tr = body.appendChild(el("tr"));
      tr.appendChild(el("th", { "class": "row", scope: "row", title: row }, row));
      sites.forEach(function (col) {
        if (row === col) { tr.appendChild(el("td", { "class": "diag" })); return; }
        var td = tr.appendChild(el("td", { "class": "cell", "data-row": row, "data-col": col }));
        td.appendChild(half(row, col, "top"));
        td.appendChild(half(col, row, "bottom"));
      });
    });
  }
  function thresholdText(m) {
    var w = fmtValue(m.id, m.warning), c = fmtValue(m.id, m.critical);
    if (m.higher_is_better) return { ok: "\u2265 " + w, warning: c + " \u2013 " + w, critical: "< " + c };
    return { ok: "< " + w, warning: w + " \u2013 " + c, critical: "\u2265 " + c };
  }
  function buildLegend() {
    var box = document.getElementById("legend");
    clear(box);
    var m = metrics[state.metric];
    var text = thresholdText(m);
    box.appendChild(el("strong", {}, m.label + " (window median): "));
    [["ok", text.ok], ["warning", text.warning], ["critical", text.critical],
     ["stale", "stale or untrusted"], ["missing", "no data / no tests"]].forEach(function (item) {
      var span = el("span", { "class": "item", "data-level": item[0] });
      var sw = span.appendChild(el("span", { "class": "swatch" }));
      sw.style.backgroundColor = colour(item[0]);
      span.appendChild(document.createTextNode(item[1]));
      box.appendChild(span);
    });
    var counts = {};
    Object.keys(data.paths).forEach(function (name) {
      var p = data.paths[name];
      if (p.family !== state.family) return;
      var level = p.figures[state.metric].level;
      counts[level] = (counts[level] || 0) + 1;
    });
    var parts = ["ok", "warning", "critical", "stale", "missing"].map(function (l) { return (counts[l] || 0) + " " + l; });
    document.getElementById("counts").textContent = "Paths (" + state.family + "): " + parts.join(", ") + ".";
  }

  // -- detail panel ----------------------------------------------------------------
  function select(name) {
    state.selected = name;
    document.querySelectorAll(".half.selected").forEach(function (d) { d.classList.remove("selected"); });
    document.querySelectorAll('.half[data-path="' + CSS.escape(name) + '"]').forEach(function (d) { d.classList.add("selected"); });
    showDetail(name);
  }
  function showDetail(name) {
    var box = document.getElementById("detail");
    clear(box);
    var p = data.paths[name];
    box.setAttribute("data-path", name);
    box.appendChild(el("h2", { id: "detail-title" }, p.src + " \u2192 " + p.dst + " (" + p.family + ")"));
    box.appendChild(el("p", { "class": "hosts" }, "Path " + name + "; hosts: " + (p.hosts.join(", ") || "-")));
    var table = box.appendChild(el("table", { "class": "figures" }));
    data.metrics.forEach(function (m) {
      var f = p.figures[m.id];
      var tr = table.appendChild(el("tr"));
      tr.appendChild(el("td", {}, m.label));
      var badge = el("span", { "class": "badge" }, f.level);
      badge.style.backgroundColor = colour(f.level);
      tr.appendChild(el("td")).appendChild(badge);
      tr.appendChild(el("td", {}, f.reason));
    });
    if (p.health !== null) {
      box.appendChild(el("p", { id: "health" }, "Path health: " + sig(p.health) + " (0..1)"));
    }
    if (p.alarms.length) {
      box.appendChild(el("h3", {}, "Alarms"));
      var ul = box.appendChild(el("ul", { id: "alarms", "class": "alarms" }));
      p.alarms.forEach(function (a) {
        ul.appendChild(el("li", {}, a.kind + " since " + fmtTime(a.ts) + ": " + a.text));
      });
    }
    if (p.advice) showAdvice(box, p.advice);
    if (p.calibration) showCalibration(box, p.calibration);
    if (p.png) box.appendChild(el("p")).appendChild(el("a", { href: p.png, id: "detail-png" }, "PNG of this path"));
    data.metrics.forEach(function (m) {
      box.appendChild(el("h3", {}, m.label + " (" + (m.id === "loss" ? "%" : m.id === "throughput" ? "Mbit/s" : "ms") + ")"));
      box.appendChild(chart(m.id, p));
    });
  }
  function showCalibration(box, c) {
    var div = box.appendChild(el("div", { "class": "calibration", id: "calibration" }));
    div.appendChild(el("strong", {}, "Calibration: "));
    div.appendChild(document.createTextNode(
      (c.applied ? "expected bandwidth x" + sig(c.ratio) : "not applied") + " from " + c.count +
      (c.count === 1 ? " completed job" : " completed jobs") + " (spread " + sig(c.spread) + "); " + c.note + "."));
  }
  function showAdvice(box, a) {
    var div = box.appendChild(el("div", { "class": "advice", id: "advice" }));
    div.appendChild(el("strong", {}, "Throttle advice: "));
    div.appendChild(document.createTextNode(
      a.jobs + (a.jobs === 1 ? " concurrent job at " : " concurrent jobs at ") + fmtRate(a.per_job_bps) + " each" +
      (a.held ? " (held: input not trusted)" : "") + "; bottleneck " + a.bottleneck + "; demand " + a.demand + "."));
    div.appendChild(el("div", { "class": "rationale" }, a.rationale));
  }

  // -- charts ----------------------------------------------------------------------
  var W = 640, H = 150, ML = 58, MR = 12, MT = 8, MB = 22;
  function scaleOf(metric) { return metric === "throughput" ? 1e-6 : metric === "loss" ? 100 : 1; }
  function chart(metric, p) {
    var svg = sv("svg", { "class": "chart", id: "chart-" + metric, width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
    svg.appendChild(sv("title", {}, metrics[metric].label + " of " + pathName(p.src, p.dst, p.family)));
    var h = p.history, k = scaleOf(metric);
    var t1 = data.window_end, t0 = t1 - data.window;
    var pts = [];
    if (h) h.ends.forEach(function (end, i) {
      var v = h[metric][i];
      if (v !== null) pts.push([Math.max(t0, end - h.step / 2), v * k, end, v]);
    });
    var band = p.bands[metric];
    var ys = pts.map(function (q) { return q[1]; });
    var span = null;  // the band clipped to [0 or the data's low, twice the data's high]
    if (band && band.value !== null) {
      var centre = band.value * k, floor = metric === "owdelay" ? -Infinity : 0;
      var cap = 2 * Math.max.apply(null, ys.concat([centre, 0]).map(Math.abs));
      span = [Math.max(floor, -cap, centre - band.error * k), Math.min(cap, centre + band.error * k), centre];
      ys.push(span[0], span[1], centre);
    }
    var lo = Math.min(0, Math.min.apply(null, ys.concat([0])));
    var hi = Math.max.apply(null, ys.concat([lo + 1e-9]));
    if (metric === "loss") hi = Math.max(hi, 0.1);
    hi = hi + (hi - lo) * 0.08;
    function x(t) { return ML + (t - t0) / (t1 - t0) * (W - ML - MR); }
    function y(v) { return H - MB - (v - lo) / (hi - lo) * (H - MT - MB); }
    axes(svg, lo, hi, t0, t1, x, y);
    if (span) {
      var r = svg.appendChild(sv("rect", { "class": "band", x: ML, y: y(span[1]), width: W - ML - MR, height: Math.max(1, y(span[0]) - y(span[1])) }));
      r.appendChild(sv("title", {}, fmtValue(metric, band.value) + " \u00b1 " + fmtValue(metric, band.error) + " (" + band.method + ")"));
      svg.appendChild(sv("line", { "class": "band-line", x1: ML, x2: W - MR, y1: y(span[2]), y2: y(span[2]) }));
    }
    p.alarms.forEach(function (a) {
      if (a.ts < t0 || a.ts > t1 || (a.metric !== null && a.metric !== metric)) return;
      var l = svg.appendChild(sv("line", { "class": "alarm", x1: x(a.ts), x2: x(a.ts), y1: MT, y2: H - MB }));
      l.appendChild(sv("title", {}, a.kind + ": " + a.text));
    });
    if (!pts.length) {
      svg.appendChild(sv("text", { "class": "empty", x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data in the window"));
      return svg;
    }
    var run = [];
    function flush() {
      if (run.length > 1) svg.appendChild(sv("polyline", { "class": "line", points: run.join(" ") }));
      run = [];
    }
    var prevEnd = null;
    pts.forEach(function (q) {
      if (prevEnd !== null && q[2] - prevEnd > 3 * h.step) flush();  // 3+ empty buckets in a row
      run.push(x(q[0]).toFixed(1) + "," + y(q[1]).toFixed(1));
      prevEnd = q[2];
    });
    flush();
    pts.forEach(function (q) {
      var c = svg.appendChild(sv("circle", { "class": "pt", cx: x(q[0]).toFixed(1), cy: y(q[1]).toFixed(1), r: 2.5, "data-ts": q[2], "data-value": q[3] }));
      c.appendChild(sv("title", {}, "hour to " + fmtTime(q[2]) + ": " + fmtValue(metric, q[3])));
    });
    return svg;
  }
  function axes(svg, lo, hi, t0, t1, x, y) {
    svg.appendChild(sv("line", { "class": "axis", x1: ML, x2: ML, y1: MT, y2: H - MB }));
    svg.appendChild(sv("line", { "class": "axis", x1: ML, x2: W - MR, y1: H - MB, y2: H - MB }));
    [lo, (lo + hi) / 2, hi].forEach(function (v) {
      svg.appendChild(sv("line", { "class": "gridline", x1: ML, x2: W - MR, y1: y(v), y2: y(v) }));
      svg.appendChild(sv("text", { x: ML - 4, y: y(v) + 3, "text-anchor": "end" }, sig(v)));
    });
    var span = t1 - t0, step = 3600;
    [1, 2, 3, 6, 12, 24, 48, 168].some(function (hours) { step = hours * 3600; return span / step <= 8; });
    for (var t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
      svg.appendChild(sv("line", { "class": "axis", x1: x(t), x2: x(t), y1: H - MB, y2: H - MB + 3 }));
      svg.appendChild(sv("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, fmtHour(t)));
    }
  }

  // -- sites and problems ----------------------------------------------------------
  function buildSites() {
    var table = document.getElementById("sites");
    var head = table.appendChild(el("thead")).appendChild(el("tr"));
    ["Site", "Families", "Partners out (fresh/all)", "Partners in (fresh/all)",
     "Median bandwidth out", "Median bandwidth in", "Health", "Alarms"].forEach(function (t) { head.appendChild(el("th", {}, t)); });
    var body = table.appendChild(el("tbody"));
    data.site_rows.forEach(function (r) {
      var tr = body.appendChild(el("tr", { "data-site": r.site }));
      [r.site, r.families.join(", "), r.fresh_out + "/" + r.partners_out, r.fresh_in + "/" + r.partners_in,
       fmtRate(r.median_out_bps), fmtRate(r.median_in_bps),
       r.health === null ? "-" : sig(r.health), r.alarms.join("; ") || "-"].forEach(function (t) { tr.appendChild(el("td", {}, t)); });
    });
  }
  function buildProblems() {
    if (!data.problems.length) return;
    var box = document.getElementById("problem-section");
    box.appendChild(el("h2", {}, "Problems in this cycle (" + data.problems.length + ")"));
    var ul = box.appendChild(el("ul"));
    data.problems.forEach(function (t) { ul.appendChild(el("li", {}, t)); });
  }

  function refresh() {
    markActive();
    buildGrid();
    buildLegend();
    if (state.selected && data.paths[state.selected] && data.paths[state.selected].family !== state.family) {
      state.selected = null;
    }
    document.body.setAttribute("data-metric", state.metric);
    document.body.setAttribute("data-family", state.family);
  }
  buildControls();
  buildSites();
  buildProblems();
  refresh();
  document.body.setAttribute("data-ready", "1");
})();
