// The console's JSON API: every POST carries the session's CSRF token; a 401 (outside
// sign-in and step-up) means the session is gone, and the app goes back to sign-in.

export class ApiError extends Error {
  constructor(status, data) {
    super((data && data.error) || `HTTP ${status}`);
    this.status = status;
    this.data = data || {};
  }
  get stepUp() {
    return this.status === 403 && this.data.step_up === true;
  }
}

const session = { csrf: null, onSignedOut: () => {} };

export function setCsrf(token) {
  session.csrf = token;
}

export function onSignedOut(callback) {
  session.onSignedOut = callback;
}

// Where a 401 is an answer about the credentials, not about the session.
const CREDENTIAL_PATHS = new Set(["/api/login", "/api/step-up"]);

export async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    if (session.csrf) init.headers["X-CSRF-Token"] = session.csrf;
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.ok) return data;
  if (response.status === 401 && !CREDENTIAL_PATHS.has(path)) session.onSignedOut();
  throw new ApiError(response.status, data);
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body);

/** A path segment for a node, strategy or record id (names can hold anything). */
export const seg = (value) => encodeURIComponent(String(value));
