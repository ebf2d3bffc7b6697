import { api } from "./api.js";
import { renderGallery, renderSubject } from "./subjects.js";
import { fill, flash, fmtDate, h, pager, problemText, table, typedConfirm } from "./ui.js";

export async function render(view, rest, ctx) {
  if (rest.length >= 3 && rest[1] === "subjects") return renderSubject(view, rest[0], rest[2], ctx);
  if (rest.length >= 1) return renderGallery(view, rest[0], ctx);
  return renderList(view, ctx);
}

function templates(counts) {
  const entries = Object.entries(counts || {});
  if (!entries.length) return "0";
  return entries.map(([model, n]) => `${n} × ${model}`).join(", ");
}

// A reindex's progress is the new model's templates against the gallery's faces.
export function reindexing(g) {
  if (!g.pending_model_id) return null;
  const done = (g.template_counts || {})[g.pending_model_id] || 0;
  return h("span", { class: "reindex" }, h("br"),
    `reindexing to ${g.pending_model_id}: ${done} of ${g.face_count} faces`,
    h("progress", { max: Math.max(1, g.face_count), value: done }));
}

async function renderList(view, ctx) {
  const cursors = [null];
  const listBox = h("div");
  const canCreate = ctx.me.galleries === null;

  async function load() {
    const data = await api.get("/v1/galleries", { limit: 50, cursor: cursors.at(-1) });
    fill(listBox, 
      table(
        [
          { label: "Name", cell: (g) => h("a", { href: `#/galleries/${g.id}` }, g.name) },
          { label: "Model", cell: (g) => [g.model_id, reindexing(g)] },
          { label: "Subjects", cell: (g) => String(g.subject_count ?? "—") },
          { label: "Faces", cell: (g) => String(g.face_count ?? "—") },
          { label: "Templates", cell: (g) => templates(g.template_counts) },
          { label: "Created", cell: (g) => fmtDate(g.created_at) },
          { label: "", cell: (g) => h("button", { class: "danger small", "aria-label": `Delete ${g.name}`,
              onclick: (e) => {
                const row = e.target.closest("tr");
                listBox.querySelector(".confirm")?.remove();
                row.after(h("tr", null, h("td", { colspan: 7 }, typedConfirm({
                  what: `Delete gallery “${g.name}” with its ${g.subject_count} subjects and ${g.face_count} faces?`,
                  expected: g.name, action: "Delete gallery",
                  onConfirm: async () => { await api.del(`/v1/galleries/${g.id}`); flash(`Deleted ${g.name}.`, "ok"); await load(); },
                }))));
              } }, "Delete") },
        ],
        data.items,
        { empty: "No galleries yet." },
      ),
      pager({
        nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); },
      }),
    );
  }

  const models = canCreate ? await api.get("/v1/models").catch(() => ({ items: [] })) : { items: [] };
  const create = canCreate
    ? h("form", { class: "card inline", id: "new-gallery", onsubmit: async (e) => {
        e.preventDefault();
        const form = e.currentTarget;
      const f = form.elements;
        try {
          const g = await api.post("/v1/galleries", {
            name: f.name.value.trim(), model_id: f.model.value || null, store_probes: f.store_probes.checked,
          });
          flash(`Created ${g.name}.`, "ok");
          form.reset();
          await load();
        } catch (err) { flash(problemText(err)); }
      } },
      h("h2", null, "New gallery"),
      h("label", null, "Name", h("input", { name: "name", required: true, maxlength: 200 })),
      h("label", null, "Model", h("select", { name: "model" }, h("option", { value: "" }, "service default"),
        (models.items || []).filter((m) => m.available !== false).map((m) => h("option", { value: m.id }, m.default ? `${m.id} (default)` : m.id)))),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "store_probes" }), "Keep probe images"),
      h("button", { type: "submit" }, "Create"))
    : h("p", { class: "hint" }, "Your key is limited to some galleries, so it cannot create new ones.");

  fill(view, h("h1", null, "Galleries"), create, listBox);
  await load();
}
