/**
 * The REST API, as the pages use it (the viewer and the pages' scripts alike): JSON in and
 * out, the session cookie for authentication and Django's CSRF token on every write. Every
 * failure becomes an ApiError carrying the server's one error shape, {"message", "extra"}, so
 * callers show `message` as it is.
 */

export class ApiError extends Error {
  constructor(status, message, extra = {}, body = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0: the server could not be reached
    this.extra = extra;
    this.body = body; // the answer as JSON, null when it was not (an HTML error page, no answer)
  }
}

/** The page's CSRF token: base.html puts it in <meta name="csrf-token">. */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? '';
}

/** An answer's text as JSON; null when it is empty or not JSON (an HTML error page). */
export function jsonOrNull(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null; // the status line says enough
  }
}

/**
 * `base` is put before every path (the viewer's "/api/v1/"; '' for whole paths); `csrfToken`
 * is the token to send, read from the page's <meta> when not given.
 */
export function makeApi({ base = '', csrfToken: token = null } = {}) {
  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET') headers['X-CSRFToken'] = token ?? csrfToken();
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, `The server could not be reached (${error.message}).`);
    }
    const data = jsonOrNull(await response.text());
    if (!response.ok) {
      const message = data?.message ?? data?.detail ?? `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, data?.extra ?? {}, data);
    }
    return data;
  }

  return {
    get: (path) => request('GET', path),
    post: (path, body = {}) => request('POST', path, body),
  };
}

/** Every item of a paginated list ({count, next, previous, results}) or a plain list. */
export function resultsOf(data) {
  return Array.isArray(data) ? data : (data?.results ?? []);
}
