// Small DOM helpers. Text always goes in through textContent / text nodes, never
// innerHTML: names and ids come from users and must not become markup.
const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value" && "value" in el) el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// replaceChildren without the traps: arrays are flattened and null/false dropped
// (replaceChildren itself would print them as text).
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
export const s = (tag, attrs, ...children) =>
  build(document.createElementNS(SVG_NS, tag), attrs, children);

export function problemText(error) {
  const body = error.body || {};
  const parts = [body.title, body.detail].filter(Boolean);
  return parts.length ? parts.join(": ") : error.message;
}

let flashTimer = null;
export function flash(message, kind = "error") {
  const box = document.getElementById("flash");
  box.replaceChildren(h("div", { class: `flash ${kind}` }, message));
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => box.replaceChildren(), kind === "error" ? 8000 : 4000);
}

export const fmtDate = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
export const fmtNum = (x, digits = 3) =>
  x === null || x === undefined ? "—" : Number(x).toFixed(digits);
export const short = (id) => (id ? String(id).slice(0, 8) : "—");

// A table that scrolls sideways on a phone instead of overflowing the page.
export function table(columns, rows, { empty = "Nothing here yet.", onRow } = {}) {
  const head = h("tr", null, columns.map((c) => h("th", { scope: "col" }, c.label)));
  const body = rows.map((row) =>
    h(
      "tr",
      onRow ? { class: "clickable", tabindex: "0", onclick: () => onRow(row),
                onkeydown: (e) => e.key === "Enter" && onRow(row) } : null,
      columns.map((c) => h("td", { "data-label": c.label }, c.cell(row))),
    ),
  );
  if (!rows.length) body.push(h("tr", null, h("td", { colspan: columns.length, class: "empty" }, empty)));
  return h("div", { class: "table-wrap" }, h("table", null, h("thead", null, head), h("tbody", null, body)));
}

// A destructive action needs the object's name typed back: one click cannot erase.
export function typedConfirm({ what, expected, action, onConfirm }) {
  const input = h("input", { "aria-label": `Type ${expected} to confirm`, autocomplete: "off",
                             spellcheck: "false" });
  const go = h("button", { class: "danger", type: "submit", disabled: true }, action);
  input.addEventListener("input", () => (go.disabled = input.value !== expected));
  const panel = h(
    "form",
    { class: "confirm card", onsubmit: async (e) => {
      e.preventDefault();
      if (input.value !== expected) return;
      go.disabled = true;
      try {
        await onConfirm();
      } catch (err) {
        flash(problemText(err));
        go.disabled = false;
      }
    } },
    h("p", null, `${what} This cannot be undone. Type `, h("code", null, expected), " to confirm."),
    input,
    h("div", { class: "row" }, go,
      h("button", { type: "button", class: "secondary", onclick: () => panel.remove() }, "Cancel")),
  );
  return panel;
}

export function pager({ nextCursor, hasPrevious, onNext, onPrevious }) {
  return h(
    "div",
    { class: "pager row" },
    h("button", { class: "secondary", disabled: !hasPrevious, onclick: onPrevious }, "← Previous"),
    h("button", { class: "secondary", disabled: !nextCursor, onclick: onNext }, "Next →"),
  );
}

export function rawJson(value) {
  return h("details", { class: "raw" }, h("summary", null, "Raw JSON"),
    h("pre", null, JSON.stringify(value, null, 2)));
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}
