import { api } from "./api.js";
import { fill, fmtNum, h, s, short } from "./ui.js";

const W = 560;
const H = 220;
const PAD = { l: 44, r: 12, t: 12, b: 36 };

// A bar chart in inline SVG: bars [{label, value, cls}], optional vertical marker at a
// fractional x position (the threshold on the histogram).
function bars(title, items, { format = (v) => String(v), marker = null, max = null } = {}) {
  const top = max ?? Math.max(1, ...items.map((b) => b.value));
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const bw = items.length ? iw / items.length : iw;
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  svg.append(s("line", { x1: PAD.l, y1: PAD.t + ih, x2: PAD.l + iw, y2: PAD.t + ih, class: "axis" }));
  svg.append(s("text", { x: PAD.l - 6, y: PAD.t + 10, class: "tick end" }, format(top)));
  svg.append(s("text", { x: PAD.l - 6, y: PAD.t + ih, class: "tick end" }, format(0)));
  const every = Math.ceil(items.length / 10);
  items.forEach((b, i) => {
    const bh = (b.value / top) * ih;
    const x = PAD.l + i * bw;
    svg.append(s("rect", { x: x + bw * 0.1, y: PAD.t + ih - bh, width: Math.max(1, bw * 0.8), height: bh,
                           class: `bar ${b.cls || ""}` }, s("title", null, `${b.label}: ${format(b.value)}`)));
    if (i % every === 0) {
      svg.append(s("text", { x: x + bw / 2, y: H - PAD.b + 16, class: "tick mid" }, b.label));
    }
  });
  if (marker !== null) {
    const x = PAD.l + marker * iw;
    svg.append(s("line", { x1: x, y1: PAD.t, x2: x, y2: PAD.t + ih, class: "marker" }));
  }
  return h("figure", { class: "card chart-card" }, h("figcaption", null, title), svg);
}

function empty(title) {
  return h("figure", { class: "card chart-card" }, h("figcaption", null, title), h("p", { class: "empty" }, "No data in this range."));
}

export async function render(view) {
  const since = new Date(Date.now() - 30 * 86400_000).toISOString();
  const get = (name) => api.get(`/v1/analytics/${name}`, { since }).then((r) => r.rows);
  const [volume, outcomes, scores, latency] = await Promise.all(
    ["volume", "outcomes", "scores", "latency"].map(get),
  );
  const charts = [];

  const perDay = new Map();
  for (const r of volume) perDay.set(r.day, (perDay.get(r.day) || 0) + r.decisions);
  charts.push(perDay.size
    ? bars("Decisions per day (last 30 days)", [...perDay].sort().map(([day, n]) => ({ label: String(day).slice(5, 10), value: n })))
    : empty("Decisions per day (last 30 days)"));

  const rates = outcomes.filter((r) => r.verify_match_rate !== null || r.search_hit_rate !== null);
  charts.push(rates.length
    ? bars("Verify match rate and search hit rate per gallery", rates.flatMap((r) => [
        { label: `${short(r.gallery_id)} verify`, value: r.verify_match_rate ?? 0 },
        { label: `${short(r.gallery_id)} search`, value: r.search_hit_rate ?? 0, cls: "alt" },
      ]), { max: 1, format: (v) => `${Math.round(v * 100)}%` })
    : empty("Verify match rate and search hit rate per gallery"));

  const models = [...new Set(scores.map((r) => r.model_id))];
  for (const model of models) {
    const rows = scores.filter((r) => r.model_id === model);
    const threshold = rows[0].threshold;
    // Wide enough to show the threshold line and some room below it, even when every
    // decision so far scored above it.
    const step = (x) => Math.round(x * 20) / 20;
    const lo = step(Math.min(...rows.map((r) => r.bucket_low), Math.floor((threshold - 0.2) * 20) / 20));
    const hi = step(Math.max(...rows.map((r) => r.bucket_high), Math.min(1, Math.ceil((threshold + 0.05) * 20) / 20)));
    const buckets = [];
    for (let b = lo; b < hi - 1e-9; b += 0.05) {
      const key = b.toFixed(2);
      const n = rows.filter((r) => r.bucket_low.toFixed(2) === key).reduce((t, r) => t + r.decisions, 0);
      buckets.push({ label: key, value: n, cls: rows.some((r) => r.bucket_low.toFixed(2) === key && r.holds_threshold) ? "alt" : "" });
    }
    charts.push(bars(`Similarity histogram, ${model} (line: threshold ${fmtNum(threshold)})`, buckets,
      { marker: hi > lo ? (threshold - lo) / (hi - lo) : null }));
  }
  if (!models.length) charts.push(empty("Similarity histogram"));

  charts.push(latency.length
    ? bars("Latency percentiles (ms)", latency.flatMap((r) => [
        { label: `${r.kind} p50`, value: r.p50_ms },
        { label: `${r.kind} p95`, value: r.p95_ms, cls: "alt" },
        { label: `${r.kind} p99`, value: r.p99_ms, cls: "alt2" },
      ]), { format: (v) => fmtNum(v, 0) })
    : empty("Latency percentiles (ms)"));

  fill(view, h("h1", null, "Charts"), h("div", { class: "charts", id: "charts" }, charts));
}
