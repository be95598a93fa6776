// The Eventual console: polls /ui/api/cluster once a second and draws what it says.
// Everything a user wrote (keys, values, names) goes into the page as text, never as markup.
"use strict";

const POLL_MS = 1000;
const COLORS = ["#3b6fd8", "#d8703b", "#2f9e6b", "#a04bc8", "#c8a12f", "#d83b6f", "#3bb5d8",
                "#6b8e23", "#8b5a2b", "#5a5acd", "#cd5a5a", "#2e8b8b"];
const previous = {};  // node -> {uptime_ms, requests, buckets}: rates are differences of polls
const colorOf = {};

function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function svg(tag, attrs, ...children) {
  const element = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) element.setAttribute(name, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

function color(node) {
  if (!(node in colorOf)) colorOf[node] = COLORS[Object.keys(colorOf).length % COLORS.length];
  return colorOf[node];
}

function swatch(node) {
  return h("span", {class: "swatch", style: `background:${color(node)}`});
}

// The q-quantile of bucket counts: the upper bound of the bucket it falls in.
function quantile(counts, bounds, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i];
    if (seen >= q * total) return i < bounds.length ? bounds[i] : Infinity;
  }
  return Infinity;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value === Infinity) return "late";
  return value < 10 ? value.toFixed(2) : value.toFixed(0);
}

function us(value) {  // µs to ms, keeping "nothing measured" and "past every bucket"
  return value === null || value === Infinity ? value : value / 1000;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function cell(value, cls) {
  return h("td", {class: cls}, value);
}

function renderMembers(data) {
  const rows = [];
  const partitions = data.partitions;
  for (const member of data.members) {
    const status = data.statuses[member.node] || {};
    const latest = status.latency_us_buckets;
    let rate = "–", p50 = "–", p99 = "–";
    if (latest) {
      const merged = latest.read.map((count, i) => count + latest.write[i]);
      const requests = status.requests.read + status.requests.write;
      const before = previous[member.node];
      if (before && status.uptime_ms > before.uptime_ms) {
        const seconds = (status.uptime_ms - before.uptime_ms) / 1000;
        rate = ((requests - before.requests) / seconds).toFixed(0);
        const delta = merged.map((count, i) => count - before.buckets[i]);
        p50 = ms(us(quantile(delta, data.latency_bounds_us, 0.5)));
        p99 = ms(us(quantile(delta, data.latency_bounds_us, 0.99)));
      }
      previous[member.node] = {uptime_ms: status.uptime_ms, requests, buckets: merged};
    }
    const events = status.events || {};
    const state = member.membership === "active" ? member.status : member.membership;
    const share = partitions ? `${(100 * member.partitions / partitions).toFixed(0)}%` : "–";
    rows.push(h("tr", {"data-node": member.node},
      h("td", {}, swatch(member.node), member.node, member.self ? " (this node)" : ""),
      h("td", {class: `state-${state}`, title: status.error || ""},
        state, status.error ? " · silent" : ""),
      cell(member.region), cell(member.zone || "–"), cell(share, "num"),
      cell(rate, "num"), cell(p50, "num"), cell(p99, "num"),
      cell(status.in_flight ?? "–", "num"), cell(status.keys ?? "–", "num"),
      cell(status.hints ?? "–", "num"), cell(events.lww_losses ?? "–", "num"),
      cell(events.read_repairs ?? "–", "num"), cell(events.ae_repairs ?? "–", "num")));
  }
  fill(document.querySelector("#members tbody"), rows);
}

function renderRing(data) {
  const ring = document.getElementById("ring");
  const count = data.ring.length;
  const paths = [];
  for (let p = 0; p < count; p++) {
    const start = (p / count) * 2 * Math.PI - Math.PI / 2;
    const end = ((p + 1) / count) * 2 * Math.PI - Math.PI / 2;
    const arc = (r, a) => `${(r * Math.cos(a)).toFixed(2)} ${(r * Math.sin(a)).toFixed(2)}`;
    data.ring[p].forEach((replica, rank) => {
      const outer = 100 - rank * 16, inner = outer - 14;
      const d = `M ${arc(outer, start)} A ${outer} ${outer} 0 0 1 ${arc(outer, end)} ` +
                `L ${arc(inner, end)} A ${inner} ${inner} 0 0 0 ${arc(inner, start)} Z`;
      paths.push(svg("path", {d, fill: color(replica), stroke: "#fff", "stroke-width": "0.4"},
        svg("title", {}, `partition ${p}: ${data.ring[p].join(", ")}`)));
    });
  }
  paths.push(svg("text", {x: 0, y: 4, "text-anchor": "middle"}, `${count} partitions, N=${data.n}`));
  ring.replaceChildren(...paths);
  document.getElementById("ring-note").textContent =
    data.in_transition ? "(changing: a member is joining or leaving)" : "";
  const nodes = [...new Set(data.members.map((m) => m.node))];
  document.getElementById("ring-legend").replaceChildren(
    ...nodes.map((n) => h("span", {}, swatch(n), n)),
    h("span", {class: "muted"}, "outer ring: first replica; inward: the next"));
}

function renderStaleness(data) {
  const plot = document.getElementById("staleness");
  const bounds = data.visibility.bounds_ms;
  const left = 40, right = 396, top = 10, bottom = 205;
  const x = (i) => left + (i / (bounds.length - 1)) * (right - left);
  const y = (p) => bottom - p * (bottom - top);
  const parts = [];
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(svg("line", {x1: left, x2: right, y1: y(p), y2: y(p), stroke: "#e2e5eb"}));
    parts.push(svg("text", {x: left - 4, y: y(p) + 3, "text-anchor": "end"}, p.toFixed(2)));
  }
  bounds.forEach((bound, i) => {
    if ((i % 2 === 0 && i < bounds.length - 2) || i === bounds.length - 1) {
      parts.push(svg("text", {x: x(i), y: bottom + 14, "text-anchor": "middle"}, bound));
    }
  });
  parts.push(svg("text", {x: (left + right) / 2, y: bottom + 30, "text-anchor": "middle"},
    "ms after the write was acknowledged"));
  const legend = [];
  data.visibility.pairs.forEach((pair, index) => {
    const total = pair.buckets.reduce((a, b) => a + b, 0);
    if (!total) return;
    const stroke = COLORS[index % COLORS.length];
    let seen = 0;
    const points = bounds.map((_, i) => {
      seen += pair.buckets[i];
      return `${x(i).toFixed(1)},${y(seen / total).toFixed(1)}`;
    });
    parts.push(svg("polyline", {points: points.join(" "), fill: "none", stroke, "stroke-width": 2},
      svg("title", {}, `${pair.from} → ${pair.to}`)));
    const atZero = pair.buckets[0] / total;
    const mean = pair.mean_ms === null ? "–" : ms(pair.mean_ms);
    legend.push(h("span", {class: "pair", "data-from": pair.from, "data-to": pair.to},
      h("span", {class: "swatch", style: `background:${stroke}`}),
      `${pair.from} → ${pair.to}: ${(100 * atZero).toFixed(1)}% at once, mean ${mean} ms, ` +
      `p99 ≤ ${ms(quantile(pair.buckets, bounds, 0.99))} ms (${total} copies)`));
  });
  if (!legend.length) legend.push(h("span", {class: "muted"}, "no replicated writes yet"));
  plot.replaceChildren(...parts);
  document.getElementById("staleness-legend").replaceChildren(...legend);
}

function renderLag(data) {
  const bounds = data.visibility.bounds_ms;
  const rows = [];
  for (const [node, status] of Object.entries(data.statuses)) {
    for (const [replica, buckets] of Object.entries(status.visibility || {})) {
      if (replica === node) continue;
      const total = buckets.reduce((a, b) => a + b, 0);
      const visible = total - buckets[bounds.length];
      const mean = visible ? ms(((status.visibility_ms || {})[replica] || 0) / visible) : "–";
      const link = (status.links || {})[replica];
      const linkText = !link ? "–" : link.connected ?
        `up${link.queued ? `, ${link.queued} queued` : ""}` : `down, ${link.queued} queued`;
      rows.push(h("tr", {},
        h("td", {}, swatch(node), node), h("td", {}, swatch(replica), replica),
        cell(total, "num"), cell(mean, "num"), cell(ms(quantile(buckets, bounds, 0.5)), "num"),
        cell(ms(quantile(buckets, bounds, 0.99)), "num"), cell(buckets[bounds.length], "num"),
        cell(linkText + (link && link.dropped ? `, ${link.dropped} dropped` : ""))));
    }
  }
  if (!rows.length) rows.push(h("tr", {}, h("td", {colspan: 8, class: "muted"}, "no replicated writes yet")));
  fill(document.querySelector("#lag tbody"), rows);
}

function renderHandoff(data) {
  const items = [h("p", {}, data.in_transition ?
    "The ring is changing: partitions are moving." : "The ring is settled.")];
  const rows = [];
  for (const [node, status] of Object.entries(data.statuses)) {
    const handoff = status.handoff || {};
    rows.push(h("tr", {}, h("td", {}, swatch(node), node),
      cell(handoff.partitions_to_pull ?? "–", "num"), cell(handoff.partitions_to_hand_off ?? "–", "num"),
      cell(status.hints ?? "–", "num")));
  }
  items.push(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "node"),
    h("th", {class: "num"}, "to pull"), h("th", {class: "num"}, "to hand off"),
    h("th", {class: "num"}, "hints held"))), h("tbody", {}, rows)));
  document.getElementById("handoff").replaceChildren(...items);
}

function shownValue(value) {
  if (value === null || value === undefined) return h("span", {class: "muted"}, "none");
  if (typeof value === "object" && !Array.isArray(value) && "bytes" in value) {
    const text = "text" in value ? value.text : `base64 ${value.base64}`;
    return h("code", {}, text + (value.cut ? ` … (${value.bytes} bytes)` : ""));
  }
  return h("pre", {}, JSON.stringify(value, null, 1));
}

function describe(record) {
  const rows = [["type", record.type], ["present", record.present ? "yes" : "no (deleted or expired)"]];
  rows.push(["TTL", record.ttl_ms === null ? "none" : `${record.ttl_ms} ms`]);
  if (record.members !== undefined) rows.push(["members", record.members]);
  if (record.timestamp !== undefined && record.timestamp !== null) rows.push(["timestamp (HLC)", record.timestamp]);
  const list = h("dl", {});
  for (const [name, value] of rows) list.append(h("dt", {}, name), h("dd", {}, String(value)));
  if (record.siblings) {
    list.append(h("dt", {}, `siblings (${record.siblings.length})`), h("dd", {},
      record.siblings.map((s) => h("div", {class: "sibling"},
        h("code", {}, `dot ${s.dot[0]}:${s.dot[1]}`), " ",
        s.deleted ? h("em", {}, "deleted (a DEL's tombstone)") :
          [h("span", {class: "muted"}, s.content_type), " ", shownValue(s)]))));
    list.append(h("dt", {}, "causal context"), h("dd", {},
      h("code", {}, Object.entries(record.context).map(([a, c]) => `${a}:${c}`).join(", ") || "empty")));
  } else {
    list.append(h("dt", {}, "value"), h("dd", {}, shownValue(record.value)));
  }
  return list;
}

async function inspect(key) {
  const target = document.getElementById("inspected");
  target.replaceChildren(h("p", {class: "muted"}, "asking every replica…"));
  const response = await fetch(`/ui/api/key/${encodeURIComponent(key)}`, {cache: "no-store"});
  if (!response.ok) {
    target.replaceChildren(h("p", {class: "problem"}, `${response.status}: ${await response.text()}`));
    return;
  }
  const data = await response.json();
  const rows = data.replicas.map((copy) => h("tr", {"data-replica": copy.node},
    h("td", {}, swatch(copy.node), copy.node), cell(copy.held || "nothing"),
    h("td", {}, h("code", {}, copy.version || "–")),
    cell(copy.record ? copy.record.type : "–"),
    cell(copy.record ? (copy.record.siblings ? `${copy.record.siblings.length} sibling(s)` :
      copy.record.present ? "present" : "deleted") : "–"),
    cell([copy.error, copy.owed_to ? `hint owed to ${copy.owed_to.join(", ")}` : null,
      copy.page ? `first members of ${copy.members}` : null].filter(Boolean).join("; "))));
  const versions = new Set(data.replicas.filter((c) => c.version).map((c) => c.version));
  target.replaceChildren(
    h("p", {}, `partition ${data.partition}: `, versions.size > 1 ?
      h("strong", {}, `${versions.size} different versions among the replicas`) :
      versions.size ? "every replica that holds it holds the same version" : "no replica holds it"),
    h("table", {}, h("thead", {}, h("tr", {}, ["replica", "holds", "version", "type", "state", "note"]
      .map((t) => h("th", {}, t)))), h("tbody", {}, rows)),
    h("h3", {}, "Merged (what a read at ALL returns)"),
    data.merged ? describe(data.merged) : h("p", {class: "muted"}, "nothing to merge"));
}

async function poll() {
  try {
    const response = await fetch("/ui/api/cluster", {cache: "no-store"});
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const data = await response.json();
    document.getElementById("problem").hidden = true;
    document.getElementById("node").textContent = `${data.node} · ${data.version} (${data.build})`;
    const health = document.getElementById("health");
    health.textContent = data.healthy ? "healthy" : "degraded";
    health.className = `pill ${data.healthy ? "ok" : "bad"}`;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    renderMembers(data);
    renderRing(data);
    renderStaleness(data);
    renderLag(data);
    renderHandoff(data);
  } catch (error) {
    const problem = document.getElementById("problem");
    problem.textContent = `cannot reach the node: ${error.message}`;
    problem.hidden = false;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

document.getElementById("inspect").addEventListener("submit", (event) => {
  event.preventDefault();
  inspect(document.getElementById("key").value).catch((error) => {
    document.getElementById("inspected").replaceChildren(h("p", {class: "problem"}, String(error)));
  });
});
poll();
