import { api } from "./api.js";
import { badge, fill, flash, fmtDate, fmtNum, h, pager, problemText, rawJson, short, table } from "./ui.js";

const LABELS = ["genuine", "impostor", "attack", "bona_fide"];

function decision(v) {
  if (v.kind === "liveness") return badge(v.liveness_decision || "—", v.liveness_decision === "live" ? "ok" : "fail");
  if (v.match === null) return "—";
  return badge(v.match ? "match" : "no match", v.match ? "ok" : "fail");
}

export async function render(view, rest, ctx) {
  if (rest[0]) return renderDetail(view, rest[0], ctx);
  const filters = h("form", { class: "card filters", id: "history-filters" },
    h("label", null, "Kind", h("select", { name: "kind" }, ["", "verify", "search", "liveness"].map(
      (k) => h("option", { value: k }, k || "any")))),
    h("label", null, "Decision", h("select", { name: "match" },
      h("option", { value: "" }, "any"), h("option", { value: "true" }, "match"),
      h("option", { value: "false" }, "no match"))),
    h("label", null, "Since", h("input", { type: "date", name: "since" })),
    h("label", null, "Until", h("input", { type: "date", name: "until" })),
  );
  const listBox = h("div");
  const cursors = [null];

  const query = () => {
    const f = filters.elements;
    return {
      limit: 50, cursor: cursors.at(-1), kind: f.kind.value, match: f.match.value,
      since: f.since.value ? new Date(`${f.since.value}T00:00:00`).toISOString() : "",
      until: f.until.value ? new Date(`${f.until.value}T23:59:59.999`).toISOString() : "",
    };
  };

  async function load() {
    const data = await api.get("/v1/verifications", query());
    fill(listBox, 
      table(
        [
          { label: "When", cell: (v) => fmtDate(v.created_at) },
          { label: "Kind", cell: (v) => v.kind },
          { label: "Subject", cell: (v) => v.external_id || (v.candidates?.[0]?.external_id ?? "—") },
          { label: "Decision", cell: decision },
          { label: "Score", cell: (v) => fmtNum(v.similarity ?? v.liveness_score) },
          { label: "Threshold", cell: (v) => fmtNum(v.threshold) },
          { label: "Liveness", cell: (v) => v.liveness_decision || "—" },
          { label: "Latency", cell: (v) => (v.latency_ms == null ? "—" : `${fmtNum(v.latency_ms, 0)} ms`) },
          { label: "Label", cell: (v) => v.label || "—" },
        ],
        data.items,
        { empty: "No decisions match these filters.", onRow: (v) => ctx.go(`#/history/${v.id}`) },
      ),
      pager({
        nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); },
      }),
    );
  }
  filters.addEventListener("change", () => { cursors.splice(1); load().catch((e) => flash(problemText(e))); });
  fill(view, h("h1", null, "History"), filters, listBox);
  await load();
}

async function renderDetail(view, id, ctx) {
  const v = await api.get(`/v1/verifications/${id}`);
  const rows = [
    ["When", fmtDate(v.created_at)], ["Kind", v.kind], ["Decision", decision(v)],
    ["Similarity", fmtNum(v.similarity)], ["Threshold", fmtNum(v.threshold)], ["Model", v.model_id || "—"],
    ["Subject", v.external_id || "—"], ["Gallery", short(v.gallery_id)],
    ["Liveness", v.liveness_decision ? `${v.liveness_decision} (${fmtNum(v.liveness_score)})` : "—"],
    ["Latency", v.latency_ms == null ? "—" : `${fmtNum(v.latency_ms, 1)} ms`],
    ["Caller", `${v.principal_type}:${short(v.principal_id)}`], ["Request id", v.request_id || "—"],
    ["Label", v.label ? `${v.label}${v.labelled_by ? ` by ${v.labelled_by}` : ""}` : "none"],
  ];
  const candidates = v.candidates?.length
    ? table([{ label: "Subject", cell: (c) => c.external_id ?? short(c.subject_id) },
             { label: "Similarity", cell: (c) => fmtNum(c.similarity) }], v.candidates)
    : null;
  const canLabel = ctx.me.role !== "client";
  const labelForm = canLabel
    ? h("form", { class: "card inline", id: "label-form", onsubmit: async (e) => {
        e.preventDefault();
        const f = e.currentTarget.elements;
        try {
          await api.patch(`/v1/verifications/${id}`, { label: f.label.value || null, note: f.note.value || null });
          flash("Label saved.", "ok");
          await renderDetail(view, id, ctx);
        } catch (err) { flash(problemText(err)); }
      } },
      h("h2", null, "Label this decision"),
      h("label", null, "Ground truth", h("select", { name: "label" }, h("option", { value: "" }, "none"),
        LABELS.map((l) => h("option", { value: l, selected: v.label === l }, l.replace("_", " "))))),
      h("label", null, "Note", h("input", { name: "note", maxlength: 2000, value: v.label_note || "" })),
      h("button", { type: "submit" }, "Save label"))
    : null;
  fill(view, 
    h("p", { class: "crumbs" }, h("a", { href: "#/history" }, "History"), " / ", short(v.id)),
    h("h1", null, `${v.kind} ${short(v.id)}`),
    h("dl", { class: "facts" }, rows.map(([k, val]) => [h("dt", null, k), h("dd", null, val)])),
    candidates ? [h("h2", null, "Candidates"), candidates] : null,
    labelForm, rawJson(v),
  );
}
