// Talking to the verifier: the bearer token and every request the page makes.
//
// The page is opened once as /?token=...; the token moves to sessionStorage (gone when the tab
// closes) and out of the address bar so it is not bookmarked or shared by copy-paste. fetch sends
// it as a header; EventSource cannot, so the alert stream takes it as ?access_token=.

const TOKEN_KEY = "lightfence.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function takeToken() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function request(method, path, token, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? data.detail : response.statusText;
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return data;
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  get(path) {
    return request("GET", path, this.token);
  }

  post(path, body) {
    return request("POST", path, this.token, body);
  }

  put(path, body) {
    return request("PUT", path, this.token, body);
  }

  delete(path) {
    return request("DELETE", path, this.token);
  }

  // Follows `next_cursor` until the listing is complete (bounded, so a misbehaving server
  // cannot keep the page looping).
  async getAll(path, maxPages = 50) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < maxPages; page += 1) {
      const separator = path.includes("?") ? "&" : "?";
      const data = await this.get(cursor ? `${path}${separator}cursor=${encodeURIComponent(cursor)}` : path);
      items.push(...data.items);
      cursor = data.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  alertStream() {
    return new EventSource(`/v1/alerts/stream?access_token=${encodeURIComponent(this.token)}`);
  }
}
