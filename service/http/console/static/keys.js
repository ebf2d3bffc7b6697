import { api } from "./api.js";
import { badge, fill, flash, fmtDate, h, pager, problemText, short, table } from "./ui.js";
import { galleryPicker } from "./test.js";

export async function render(view, _rest, ctx) {
  const listBox = h("div");
  const once = h("div");
  const cursors = [null];

  async function load() {
    const data = await api.get("/v1/api-keys", { limit: 50, cursor: cursors.at(-1) });
    fill(listBox, 
      table(
        [
          { label: "Name", cell: (k) => k.name },
          { label: "Prefix", cell: (k) => h("code", null, k.prefix) },
          { label: "Role", cell: (k) => k.role },
          { label: "Galleries", cell: (k) => (k.galleries ? k.galleries.map(short).join(", ") : "all") },
          { label: "Last used", cell: (k) => fmtDate(k.last_used_at) },
          { label: "State", cell: (k) => (k.revoked_at ? badge("revoked", "fail") : badge("active", "ok")) },
          { label: "", cell: (k) => (k.revoked_at || k.id === ctx.me.id ? "" : h("button", {
              class: "danger small", "aria-label": `Revoke ${k.name}`, onclick: async (e) => {
                // Two clicks: the first arms the button, the second revokes.
                if (e.target.dataset.armed !== "true") { e.target.dataset.armed = "true"; e.target.textContent = "Really revoke?"; return; }
                try { await api.del(`/v1/api-keys/${k.id}`); flash(`Revoked ${k.name}.`, "ok"); await load(); }
                catch (err) { flash(problemText(err)); }
              } }, "Revoke")) },
        ],
        data.items, { empty: "No keys." },
      ),
      pager({ nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); } }),
    );
  }

  const picker = await galleryPicker(ctx.me, "galleries");
  if (picker.tagName === "SELECT") {
    picker.multiple = true;
    picker.required = false;
    picker.size = Math.min(6, Math.max(2, picker.options.length));
  }
  const create = h("form", { class: "card", id: "new-key", onsubmit: async (e) => {
      e.preventDefault();
      const form = e.currentTarget;
      const f = form.elements;
      const galleries = picker.tagName === "SELECT"
        ? [...picker.selectedOptions].map((o) => o.value)
        : picker.value.split(",").map((x) => x.trim()).filter(Boolean);
      try {
        const k = await api.post("/v1/api-keys", {
          name: f.name.value.trim(), role: f.role.value, galleries: galleries.length ? galleries : null,
          rate_limit_per_minute: f.rate.value === "" ? null : Number(f.rate.value),
        });
        fill(once, h("div", { class: "card once", id: "key-once" },
          h("h2", null, `Key “${k.name}”`),
          h("p", null, "Copy it now: it is shown this once and only its hash is stored."),
          h("code", { class: "secret" }, k.key)));
        form.reset();
        await load();
      } catch (err) { flash(problemText(err)); }
    } },
    h("h2", null, "New API key"),
    h("label", null, "Name", h("input", { name: "name", required: true, maxlength: 200 })),
    h("label", null, "Role", h("select", { name: "role" }, ["client", "operator", "admin"].map((r) => h("option", { value: r }, r)))),
    h("label", null, "Galleries (none selected: all)", picker),
    h("label", null, "Requests a minute (empty: service default, 0: none)", h("input", { name: "rate", type: "number", min: 0 })),
    h("button", { type: "submit" }, "Create key"));

  fill(view, h("h1", null, "API keys"), once, create, listBox);
  await load();
}
