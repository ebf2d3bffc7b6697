// The console's only way to the service: the public /v1 API, with the signed-in
// principal's own credentials in a header. Nothing goes in a cookie or a URL.
const STORE = "faceprint.credentials";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE));
  } catch {
    return null;
  }
}

function save(creds) {
  sessionStorage.setItem(STORE, JSON.stringify(creds));
}

export function signOut() {
  sessionStorage.removeItem(STORE);
}

function authHeaders(creds) {
  return creds.kind === "key"
    ? { "X-API-Key": creds.key }
    : { Authorization: `Bearer ${creds.access}` };
}

function fromTokens(body, email) {
  return {
    kind: "jwt",
    access: body.access_token,
    refresh: body.refresh_token,
    expires: Date.now() + body.expires_in * 1000,
    email,
  };
}

let refreshing = null;

// Refresh tokens are single use: concurrent requests share one refresh.
function refresh(creds) {
  refreshing ??= (async () => {
    const r = await fetch("/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: creds.refresh }),
      credentials: "omit",
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      signOut();
      throw new ApiError(401, body);
    }
    const next = fromTokens(body, creds.email);
    save(next);
    return next;
  })().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, v);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function request(method, path, { json, form, query, raw } = {}) {
  let creds = credentials();
  if (!creds) throw new ApiError(401, { detail: "not signed in" });
  if (creds.kind === "jwt" && creds.expires - Date.now() < 30_000) creds = await refresh(creds);
  const url = withQuery(path, query);
  const init = { method, headers: authHeaders(creds), cache: "no-store", credentials: "omit" };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  if (form) init.body = form;
  let r = await fetch(url, init);
  if (r.status === 401 && creds.kind === "jwt") {
    creds = await refresh(creds);
    init.headers = { ...init.headers, ...authHeaders(creds) };
    r = await fetch(url, init);
  }
  if (raw && r.ok) return r;
  if (r.status === 204) return null;
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

export const api = {
  get: (path, query) => request("GET", path, { query }),
  post: (path, json, query) => request("POST", path, { json, query }),
  patch: (path, json) => request("PATCH", path, { json }),
  del: (path) => request("DELETE", path),
  upload: (path, form, query) => request("POST", path, { form, query }),
  blob: async (path, query) => (await request("GET", path, { query, raw: true })).blob(),
};

// The first field takes an email (password sign-in: a JWT pair) or an API key.
export async function signIn(identity, password) {
  const id = identity.trim();
  if (id.includes("@")) {
    const r = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: id, password }),
      credentials: "omit",
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, body);
    save(fromTokens(body, id));
  } else {
    save({ kind: "key", key: id });
  }
  try {
    return await api.get("/v1/me");
  } catch (e) {
    signOut();
    throw e;
  }
}
