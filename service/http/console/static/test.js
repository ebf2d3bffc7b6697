import { api } from "./api.js";
import { fill, flash, fmtNum, h, problemText, rawJson, s, table } from "./ui.js";

// The galleries this principal can name: operators list them; a client key learns its
// own scope from /v1/me (it may not list galleries); an unscoped client types an id.
export async function galleryPicker(me, name = "gallery") {
  let options = me.galleries;
  if (options === null && me.role !== "client") {
    options = (await api.get("/v1/galleries", { limit: 200 })).items;
  }
  if (options === null) {
    return h("input", { name, placeholder: "Gallery id", required: true, spellcheck: "false" });
  }
  return h("select", { name, required: true }, options.map((g) => h("option", { value: g.id }, g.name)));
}

function overlay(img, width, height, faces, usedIndex = 0) {
  const box = s("svg", { class: "boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none",
                         "aria-hidden": "true" });
  const stroke = Math.max(2, Math.round(width / 250));
  faces.forEach((f, i) => {
    const b = f.bbox || f;
    box.append(s("rect", { x: b.x, y: b.y, width: b.width, height: b.height,
                           class: i === usedIndex ? "used" : "other", "stroke-width": stroke }));
  });
  return h("div", { class: "stage" }, img, box);
}

export async function render(view, _rest, ctx) {
  const picker = await galleryPicker(ctx.me);
  const fileInput = h("input", { type: "file", accept: "image/*", name: "image", id: "probe", required: true });
  const stage = h("div", { id: "stage" });
  const out = h("div", { id: "test-result", "aria-live": "polite" });
  let file = null;
  let preview = null;

  fileInput.addEventListener("change", async () => {
    file = fileInput.files[0] || null;
    fill(out);
    fill(stage);
    if (!file) return;
    if (preview) URL.revokeObjectURL(preview);
    preview = URL.createObjectURL(file);
    const img = h("img", { src: preview, alt: "Probe photo", class: "probe" });
    fill(stage, img);
    const form = new FormData();
    form.append("image", file, file.name);
    try {
      const found = await api.upload("/v1/detect", form);
      fill(stage, overlay(img, found.width, found.height, found.faces),
        h("p", { class: "hint", id: "detected" }, `${found.faces.length} face(s) detected`));
      stage.dataset.width = found.width;
      stage.dataset.height = found.height;
    } catch (e) {
      stage.append(h("p", { class: "error" }, problemText(e)));
    }
  });

  function showCandidates(result) {
    const threshold = result.threshold;
    return table(
      [
        { label: "#", cell: (c) => String(result.candidates.indexOf(c) + 1) },
        { label: "Subject", cell: (c) => c.external_id },
        { label: "Name", cell: (c) => c.display_name || "—" },
        { label: "Similarity", cell: (c) => h("span", { class: "score" },
            h("meter", { min: -1, max: 1, value: c.similarity, low: threshold, optimum: 1 }),
            ` ${fmtNum(c.similarity)}`) },
      ],
      result.candidates,
      { empty: "No subject clears the threshold: this person is not in the gallery." },
    );
  }

  async function run(kind) {
    if (!file) { flash("Choose a photo first."); return; }
    const form = new FormData();
    form.append("image", file, file.name);
    const gallery = picker.value.trim();
    fill(out, h("p", { class: "hint" }, "Working…"));
    try {
      let result;
      if (kind === "search") {
        result = await api.upload(`/v1/galleries/${encodeURIComponent(gallery)}/search`, form);
        fill(out, h("h2", null, "Search"),
          h("p", null, `Threshold ${fmtNum(result.threshold)} (${result.model_id}) · ${fmtNum(result.latency_ms, 0)} ms`),
          showCandidates(result), rawJson(result));
      } else {
        form.append("gallery", gallery);
        form.append("external_id", externalId.value.trim());
        result = await api.upload("/v1/verify", form);
        fill(out, h("h2", null, "Verify"),
          h("p", { class: result.match ? "decision ok" : "decision fail" },
            result.match ? "Match" : "No match",
            ` — similarity ${fmtNum(result.similarity)} against threshold ${fmtNum(result.threshold)}`),
          h("p", { class: "hint" }, `${result.model_id} · ${fmtNum(result.latency_ms, 0)} ms`), rawJson(result));
      }
      const img = stage.querySelector("img");
      if (img && result.probe && stage.dataset.width) {
        const faces = [result.probe, ...(result.other_faces || [])];
        stage.querySelector(".stage")?.replaceWith(overlay(img, +stage.dataset.width, +stage.dataset.height, faces));
      }
    } catch (e) {
      fill(out, h("p", { class: "error" }, problemText(e)), rawJson(e.body));
    }
  }

  const externalId = h("input", { name: "external_id", placeholder: "External id", spellcheck: "false" });
  fill(view, 
    h("h1", null, "Test"),
    h("form", { class: "card", onsubmit: (e) => e.preventDefault() },
      h("label", null, "Gallery", picker),
      h("label", null, "Photo", fileInput),
      h("div", { class: "row" },
        h("button", { type: "button", id: "run-search", onclick: () => run("search") }, "Search the gallery"),
        h("label", { class: "grow" }, "or verify against", externalId),
        h("button", { type: "button", id: "run-verify", class: "secondary", onclick: () => run("verify") }, "Verify"))),
    h("div", { class: "split" }, stage, out),
  );
}
