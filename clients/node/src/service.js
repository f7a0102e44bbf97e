// The calls of the coatcheck session service this middleware makes (docs/service.md), over
// Node's own fetch, and what its refusals mean for the Express request.

/**
 * A call to the service that did not succeed. `status` is what the Express request
 * should answer (Express's error handler reads it, and `headers`):
 *
 * - 503 when the store is down (the service's store-unavailable problem) or the service
 *   itself does not answer: never a crash, and never an empty session that could later
 *   overwrite the real one;
 * - 429 when the service throttles this client for presenting unknown tokens;
 * - 403 when a login is over the user's session limit;
 * - 500 for anything else (a wrong or revoked API key, a key without the `sessions`
 *   scope, data the service refuses): a mistake of this app, not of its visitor.
 *
 * `type` is the problem's type URI, `serviceStatus` the service's own status.
 */
export class ServiceError extends Error {
  constructor(message, { status, type = null, serviceStatus = null, retryAfter = null }) {
    super(message);
    this.name = "ServiceError";
    this.status = status;
    this.statusCode = status;
    this.type = type;
    this.serviceStatus = serviceStatus;
    this.retryAfter = retryAfter;
    this.expose = false;
    this.headers = { "cache-control": "no-store" };
    if (retryAfter != null) this.headers["retry-after"] = String(retryAfter);
  }
}

const PROBLEM = "urn:coatcheck:problem:";
const ANSWERED = {
  [`${PROBLEM}store-unavailable`]: 503,
  [`${PROBLEM}throttled`]: 429,
  [`${PROBLEM}session-limit`]: 403,
};

export const NOT_FOUND = `${PROBLEM}session-not-found`;

export class ServiceClient {
  constructor(url, apiKey, timeout) {
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new TypeError(`coatcheck: url must be the service's http(s) URL, got ${JSON.stringify(url)}`);
    }
    if (typeof apiKey !== "string" || !apiKey) {
      throw new TypeError("coatcheck: apiKey is required (coatcheck api-keys create NAME --scope sessions)");
    }
    this.url = url.replace(/\/+$/, "");
    this.headers = { authorization: `Bearer ${apiKey}`, "content-type": "application/json" };
    this.timeout = timeout;
  }

  /** POST `body` to `/v1/<path>`: the answer's JSON (null for 204), or a ServiceError. */
  async call(path, body) {
    let response;
    let text;
    try {
      response = await fetch(`${this.url}/v1/${path}`, {
        method: "POST",
        headers: this.headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeout),
      });
      text = await response.text();
    } catch (error) {
      throw new ServiceError(`the session service did not answer: ${error.message}`, {
        status: 503,
        retryAfter: 1,
      });
    }
    let payload = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (response.ok) return payload;
    const type = payload?.type ?? null;
    const retry = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    throw new ServiceError(`session service: ${payload?.detail ?? response.statusText} (${type ?? response.status})`, {
      status: ANSWERED[type] ?? (response.status === 503 ? 503 : 500),
      type,
      serviceStatus: response.status,
      retryAfter: Number.isFinite(retry) ? retry : null,
    });
  }
}
