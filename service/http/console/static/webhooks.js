import { api } from "./api.js";
import { badge, fill, flash, fmtDate, fmtNum, h, pager, problemText, table, typedConfirm } from "./ui.js";

const EVENTS = [
  "verification.completed", "search.completed", "enrollment.completed", "enrollment.failed",
  "liveness.completed", "subject.deleted", "gallery.deleted", "reindex.completed",
  "reindex.activated", "reindex.rolled_back",
];

function secretOnce(title, secret) {
  return h("div", { class: "card once", id: "secret-once" },
    h("h2", null, title),
    h("p", null, "Copy it now: it is shown this once. Receivers use it to check each delivery's signature."),
    h("code", { class: "secret" }, secret));
}

export async function render(view, rest, ctx) {
  if (rest[0]) return renderDeliveries(view, rest[0], ctx);
  const listBox = h("div");
  const once = h("div");
  const cursors = [null];

  async function load() {
    const data = await api.get("/v1/webhooks", { limit: 50, cursor: cursors.at(-1) });
    fill(listBox, 
      table(
        [
          { label: "URL", cell: (w) => h("a", { href: `#/webhooks/${w.id}` }, w.url) },
          { label: "Events", cell: (w) => w.events.join(", ") },
          { label: "State", cell: (w) => (w.active ? badge("active", "ok") : badge(w.disabled_reason || "disabled", "fail")) },
          { label: "Created", cell: (w) => fmtDate(w.created_at) },
        ],
        data.items, { empty: "No webhooks yet." },
      ),
      pager({ nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); } }),
    );
  }

  const create = h("form", { class: "card", id: "new-webhook", onsubmit: async (e) => {
      e.preventDefault();
      const form = e.currentTarget;
      const events = [...form.querySelectorAll("input[name=events]:checked")].map((i) => i.value);
      try {
        const w = await api.post("/v1/webhooks", {
          url: form.elements.url.value.trim(), events, description: form.elements.description.value || null,
        });
        fill(once, secretOnce(`Signing secret of ${w.url}`, w.secret));
        form.reset();
        await load();
      } catch (err) { flash(problemText(err)); }
    } },
    h("h2", null, "New webhook"),
    h("label", null, "URL", h("input", { name: "url", type: "url", required: true, placeholder: "https://…" })),
    h("label", null, "Description", h("input", { name: "description", maxlength: 500 })),
    h("fieldset", { class: "events" }, h("legend", null, "Events"),
      EVENTS.map((ev) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "events", value: ev }), ev))),
    h("button", { type: "submit" }, "Create webhook"));

  fill(view, h("h1", null, "Webhooks"), once, create, listBox);
  await load();
}

async function renderDeliveries(view, id, ctx) {
  const hook = await api.get(`/v1/webhooks/${id}`);
  const listBox = h("div");
  const status = h("select", { name: "status", "aria-label": "Delivery status" },
    ["", "pending", "delivered", "failed"].map((s) => h("option", { value: s }, s || "any status")));
  const cursors = [null];

  async function load() {
    const data = await api.get(`/v1/webhooks/${id}/deliveries`, { limit: 50, cursor: cursors.at(-1), status: status.value });
    fill(listBox, 
      table(
        [
          { label: "Event", cell: (d) => d.event_type },
          { label: "Status", cell: (d) => badge(d.status, d.status === "delivered" ? "ok" : d.status === "failed" ? "fail" : "") },
          { label: "Attempts", cell: (d) => String(d.attempts) },
          { label: "Last answer", cell: (d) => d.last_status_code ? `HTTP ${d.last_status_code}` : d.last_error || "—" },
          { label: "Latency", cell: (d) => (d.last_latency_ms == null ? "—" : `${fmtNum(d.last_latency_ms, 0)} ms`) },
          { label: "Created", cell: (d) => fmtDate(d.created_at) },
          { label: "", cell: (d) => h("button", { class: "secondary small", onclick: async () => {
              try { await api.post(`/v1/webhooks/${id}/deliveries/${d.id}/redeliver`); flash("Queued again.", "ok"); await load(); }
              catch (e) { flash(problemText(e)); }
            } }, "Redeliver") },
        ],
        data.items, { empty: "No deliveries yet." },
      ),
      pager({ nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); } }),
    );
  }
  status.addEventListener("change", () => { cursors.splice(1); load(); });
  const del = h("button", { class: "danger", onclick: () => {
    view.querySelector(".confirm")?.remove();
    del.after(typedConfirm({ what: `Delete the webhook to ${hook.url}?`, expected: "delete", action: "Delete webhook",
      onConfirm: async () => { await api.del(`/v1/webhooks/${id}`); ctx.go("#/webhooks"); } }));
  } }, "Delete webhook");
  fill(view, 
    h("p", { class: "crumbs" }, h("a", { href: "#/webhooks" }, "Webhooks"), " / ", hook.url),
    h("h1", null, hook.url),
    h("p", { class: "stats" }, hook.events.join(", ")),
    h("div", { class: "row" },
      h("button", { class: "secondary", id: "send-test", onclick: async () => {
        try { await api.post(`/v1/webhooks/${id}/test`); flash("Test event queued.", "ok"); await load(); }
        catch (e) { flash(problemText(e)); }
      } }, "Send a test event"),
      h("button", { class: "secondary", onclick: () => load() }, "Refresh"), del),
    h("h2", null, "Deliveries"), status, listBox,
  );
  await load();
}
