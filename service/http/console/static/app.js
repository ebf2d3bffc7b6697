import { api, credentials, signIn, signOut } from "./api.js";
import { flash, h, problemText } from "./ui.js";

const RANK = { client: 0, operator: 1, admin: 2 };

// Pages in menu order, each with the least role the API grants its calls to: a page is
// listed only when the signed-in principal could use it.
const PAGES = [
  { path: "galleries", label: "Galleries", role: "operator", module: "./galleries.js" },
  { path: "test", label: "Test", role: "client", module: "./test.js" },
  { path: "history", label: "History", role: "client", module: "./history.js" },
  { path: "charts", label: "Charts", role: "operator", module: "./charts.js" },
  { path: "webhooks", label: "Webhooks", role: "operator", module: "./webhooks.js" },
  { path: "keys", label: "API keys", role: "admin", module: "./keys.js" },
];

let me = null;
const allowed = (page) => me && RANK[me.role] >= RANK[page.role];

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { head: parts[0] || "", rest: parts.slice(1) };
}

function renderChrome() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!me) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  const current = route().head;
  nav.replaceChildren(
    ...PAGES.filter(allowed).map((p) =>
      h("a", { href: `#/${p.path}`, "aria-current": p.path === current ? "page" : null }, p.label),
    ),
    h("a", { href: "/console/liveness" }, "Liveness"),
  );
  who.replaceChildren(
    h("span", { class: "principal", title: `${me.kind} ${me.id}` }, me.name || me.id),
    h("span", { class: "badge" }, me.role),
    h("button", { class: "secondary", id: "signout", onclick: () => { signOut(); me = null; show(); } },
      "Sign out"),
  );
}

async function show() {
  const form = document.getElementById("signin");
  const page = document.getElementById("page");
  renderChrome();
  if (!me) {
    form.hidden = false;
    page.replaceChildren();
    form.elements.identity.focus();
    return;
  }
  form.hidden = true;
  const { head, rest } = route();
  const visible = PAGES.filter(allowed);
  const target = PAGES.find((p) => p.path === head);
  if (!target) {
    location.replace(`#/${visible[0].path}`);
    return;
  }
  if (!allowed(target)) {
    page.replaceChildren(h("section", { class: "card" }, h("h1", null, target.label),
      h("p", null, `This page needs the ${target.role} role; you are signed in as ${me.role}.`)));
    return;
  }
  const view = h("section", { class: "view", "aria-busy": "true" });
  page.replaceChildren(view);
  try {
    const mod = await import(target.module);
    await mod.render(view, rest, { me, go: (hash) => (location.hash = hash) });
  } catch (e) {
    if (e.status === 401) {
      signOut();
      me = null;
      flash("Your session has ended; sign in again.");
      show();
      return;
    }
    view.append(h("p", { class: "error" }, problemText(e)));
  } finally {
    view.removeAttribute("aria-busy");
    document.body.dataset.rendered = location.hash;
    performance.mark(`console-page-${target.path}`);
  }
}

document.getElementById("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = e.currentTarget;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    me = await signIn(form.elements.identity.value, form.elements.password.value);
    form.reset();
    await show();
  } catch (err) {
    flash(err.status === 401 ? "Those credentials were not accepted." : problemText(err));
  } finally {
    button.disabled = false;
  }
});

window.addEventListener("hashchange", show);

(async () => {
  if (credentials()) {
    try {
      me = await api.get("/v1/me");
    } catch {
      signOut();
    }
  }
  await show();
  // The browser tests time "interactive" to this mark: the page is drawn and its
  // handlers are attached.
  performance.mark("console-ready");
  document.body.dataset.ready = "true";
})();
