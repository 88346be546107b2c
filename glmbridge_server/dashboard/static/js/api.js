// JSON calls to the server. Credentials are the session cookie (HttpOnly: this code never
// sees it) or nothing (a loopback server without a token); no secret is kept in the page.

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function messageOf(body, status) {
  if (body && typeof body.error === "string") return body.error;
  if (body && body.error && typeof body.error.message === "string") return body.error.message;
  return `HTTP ${status}`;
}

async function call(path, init) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  if (response.status === 401) {
    // The session ended (expired, or the server restarted): show the login form.
    window.location.assign("/dashboard");
    throw new ApiError(401, "not logged in");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, messageOf(body, response.status));
  return body;
}

export function getJSON(path) {
  return call(path, { headers: { accept: "application/json" } });
}

export function postJSON(path, data) {
  return call(path, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/json" },
    body: JSON.stringify(data),
  });
}
