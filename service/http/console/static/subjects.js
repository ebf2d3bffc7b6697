import { api } from "./api.js";
import { reindexing } from "./galleries.js";
import { badge, fill, flash, fmtDate, fmtNum, h, pager, problemText, table, typedConfirm } from "./ui.js";

const base = (g) => `/v1/galleries/${g}`;

export async function renderGallery(view, galleryId, ctx) {
  const gallery = await api.get(base(galleryId));
  const cursors = [null];
  const listBox = h("div");
  const search = h("input", { type: "search", name: "q", placeholder: "External id or name starts with…",
                              "aria-label": "Search subjects", spellcheck: "false" });

  async function load() {
    const q = search.value.trim();
    const data = await api.get(`${base(galleryId)}/subjects`, { limit: 50, cursor: cursors.at(-1), q });
    fill(listBox, 
      table(
        [
          { label: "External id", cell: (s) => h("a", { href: `#/galleries/${galleryId}/subjects/${s.id}` }, s.external_id) },
          { label: "Name", cell: (s) => s.display_name || "—" },
          { label: "Created", cell: (s) => fmtDate(s.created_at) },
        ],
        data.items,
        { empty: q ? `No subject starts with “${q}”.` : "No subjects yet." },
      ),
      pager({
        nextCursor: data.next_cursor, hasPrevious: cursors.length > 1,
        onNext: () => { cursors.push(data.next_cursor); load(); },
        onPrevious: () => { cursors.pop(); load(); },
      }),
    );
  }

  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => { cursors.splice(1); load().catch((e) => flash(problemText(e))); }, 250);
  });

  const create = h("form", { class: "card inline", id: "new-subject", onsubmit: async (e) => {
      e.preventDefault();
      const f = e.currentTarget.elements;
      try {
        const s = await api.post(`${base(galleryId)}/subjects`, {
          external_id: f.external_id.value.trim(), display_name: f.display_name.value.trim() || null,
        });
        ctx.go(`#/galleries/${galleryId}/subjects/${s.id}`);
      } catch (err) { flash(problemText(err)); }
    } },
    h("h2", null, "New subject"),
    h("label", null, "External id", h("input", { name: "external_id", required: true, maxlength: 200 })),
    h("label", null, "Display name", h("input", { name: "display_name", maxlength: 200 })),
    h("button", { type: "submit" }, "Add subject"));

  const risk = gallery.open_set
    ? h("p", { class: "hint" }, `An unthresholded search for someone not enrolled returns a candidate up to ${fmtNum(gallery.open_set.expected_fpir * 100, 1)}% of the time at this size.`)
    : null;
  fill(view, 
    h("p", { class: "crumbs" }, h("a", { href: "#/galleries" }, "Galleries"), " / ", gallery.name),
    h("h1", null, gallery.name),
    h("p", { class: "stats" }, `${gallery.subject_count} subjects · ${gallery.face_count} faces · model ${gallery.model_id}`,
      reindexing(gallery)),
    risk, create, h("h2", null, "Subjects"), search, listBox,
  );
  await load();
}

function thumbnail(path, alt) {
  const img = h("img", { alt, width: 160, height: 160, class: "thumb" });
  // The image route needs the caller's credentials, so it is fetched, not linked;
  // the object URL lives as long as the page.
  api.blob(path, { size: "thumbnail" })
    .then((blob) => { img.src = URL.createObjectURL(blob); })
    .catch(() => { img.alt = `${alt} (not available)`; });
  return img;
}

function enrolResult(file, outcome) {
  if (outcome.ok) {
    const f = outcome.face;
    const note = f.other_faces?.length ? ` (${f.other_faces.length} other face(s) ignored)` : "";
    return h("li", { class: "ok" }, badge("enrolled", "ok"), ` ${file.name}${note}`);
  }
  const body = outcome.error.body || {};
  return h("li", { class: "fail" }, badge(body.title || `HTTP ${outcome.error.status}`, "fail"),
    ` ${file.name}: ${body.detail || outcome.error.message}`);
}

function dropZone(onFiles) {
  const input = h("input", { type: "file", accept: "image/*", multiple: true, id: "enrol-files",
                             class: "visually-hidden" });
  const zone = h("label", { class: "dropzone", for: "enrol-files", tabindex: "0" },
    h("strong", null, "Drop photos here"), h("span", null, " or click to choose (several at once)"), input);
  input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onFiles([...(e.dataTransfer?.files || [])].filter((f) => f.type.startsWith("image/") || !f.type));
  });
  return zone;
}

export async function renderSubject(view, galleryId, subjectId, ctx) {
  const path = `${base(galleryId)}/subjects/${subjectId}`;
  const [gallery, subject] = await Promise.all([api.get(base(galleryId)), api.get(path)]);
  const grid = h("div", { class: "faces", id: "faces" });
  const results = h("ul", { class: "results", id: "enrol-results", "aria-live": "polite" });

  async function loadFaces() {
    const items = [];
    let cursor = null;
    do {
      const page = await api.get(`${path}/faces`, { limit: 200, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    fill(grid, 
      ...items.map((f) => h("figure", { class: "face", dataset: { faceId: f.id } },
        thumbnail(`${path}/faces/${f.id}/image`, `Face ${f.id.slice(0, 8)}`),
        h("figcaption", null, f.status, " · ", fmtDate(f.created_at),
          h("button", { class: "danger small", "aria-label": `Delete face ${f.id.slice(0, 8)}`,
            onclick: async (e) => {
              // Two clicks: the first arms the button, the second erases the face.
              if (e.target.dataset.armed !== "true") { e.target.dataset.armed = "true"; e.target.textContent = "Really delete?"; return; }
              try { await api.del(`${path}/faces/${f.id}`); await loadFaces(); }
              catch (err) { flash(problemText(err)); }
            } }, "Delete")))),
    );
    if (!items.length) grid.append(h("p", { class: "empty" }, "No faces enrolled yet."));
    count.textContent = `${items.length} face${items.length === 1 ? "" : "s"}`;
  }

  async function enrol(files) {
    fill(results);
    // One at a time: each photo gets its own answer, and the service's CPU pool is
    // left to the API's other callers.
    for (const file of files) {
      const form = new FormData();
      form.append("image", file, file.name);
      const pending = h("li", null, badge("…"), ` ${file.name}`);
      results.append(pending);
      try {
        const face = await api.upload(`${path}/faces`, form);
        pending.replaceWith(enrolResult(file, { ok: true, face }));
      } catch (error) {
        pending.replaceWith(enrolResult(file, { ok: false, error }));
      }
    }
    results.dataset.done = "true";
    await loadFaces();
  }

  const count = h("span");
  const erase = h("button", { class: "danger", id: "erase-subject", onclick: () => {
    view.querySelector(".confirm")?.remove();
    erase.after(typedConfirm({
      what: `Erase ${subject.external_id}: every face, template and stored photo, and their history is anonymised.`,
      expected: subject.external_id, action: "Erase subject",
      onConfirm: async () => {
        await api.del(path);
        flash(`Erased ${subject.external_id}.`, "ok");
        ctx.go(`#/galleries/${galleryId}`);
      },
    }));
  } }, "Erase subject");

  fill(view, 
    h("p", { class: "crumbs" }, h("a", { href: "#/galleries" }, "Galleries"), " / ",
      h("a", { href: `#/galleries/${galleryId}` }, gallery.name), " / ", subject.external_id),
    h("h1", null, subject.display_name || subject.external_id),
    h("p", { class: "stats" }, `External id ${subject.external_id} · `, count),
    h("h2", null, "Enrol photos"), dropZone(enrol), results,
    h("h2", null, "Faces"), grid,
    h("h2", null, "Erase"), erase,
  );
  await loadFaces();
}
