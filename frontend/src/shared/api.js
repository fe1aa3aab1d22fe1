/**
 * The REST API, as the page uses it: JSON in and out, the session cookie for authentication
 * and Django's CSRF token on every write. Every failure becomes an ApiError carrying the
 * server's one error shape, {"message", "extra"}, so callers show `message` as it is.
 */

export class ApiError extends Error {
  constructor(status, message, extra = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // 0: the server could not be reached
    this.extra = extra;
  }
}

export function makeApi({ base, csrfToken }) {
  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET') headers['X-CSRFToken'] = csrfToken;
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
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null; // an HTML error page: the status line says enough
      }
    }
    if (!response.ok) {
      const message = data?.message ?? data?.detail ?? `${response.status} ${response.statusText}`;
      throw new ApiError(response.status, message, data?.extra ?? {});
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
