// coatcheck-express: `app.use(coatcheck({ url, apiKey, cookieName? }))` gives every
// request `req.session`, kept by the coatcheck session service (`coatcheck serve`).
//
// One request is one introspect call (the session's data, a rotated token) and, when the
// handler changed the session, one update call with the delta, made when the response
// starts so the refreshed cookie goes out in its headers. The cookie, the CSRF check and
// the refusals are the Python edges' own, so an Express app and a Python app behind one
// origin share one login.

import { readBody } from "./body.js";
import { clearCookie, ConfigError, cookieConfig, readCookie, setCookie } from "./cookies.js";
import {
  checkOrigin,
  checkToken,
  formField,
  isForm,
  MAX_FORM_BODY,
  normalizeOrigin,
  ownOrigin,
  refusalText,
  Rejection,
  SAFE_METHODS,
} from "./csrf.js";
import { hold } from "./hold.js";
import { ServiceClient, ServiceError } from "./service.js";
import { Session } from "./session.js";

export { ConfigError, ServiceError, Session };

const CLEAR_ALL = '"cache", "cookies", "storage"';
const CLEAR_KEEP_COOKIES = '"cache", "storage"';
const MAX_TOKEN = 1024;
const MAX_USER_AGENT = 1024;
const MAX_IP = 64;

/** The Python edges' answers (src/coatcheck/http/refusals.py), word for word. */
const TEXTS = {
  503: "Session store unavailable; please retry shortly.\n",
  429: "Too many unknown session tokens from this address; slow down.\n",
  403: "This account has too many active sessions; log out elsewhere first.\n",
  500: "Internal Server Error\n",
};

function under(path, prefixes) {
  return prefixes.some((p) => path === p || path.startsWith(p.endsWith("/") ? p : `${p}/`));
}

function requestPath(req) {
  const url = req.originalUrl ?? req.url ?? "/";
  return url.split("?")[0] || "/";
}

/** A short plain answer that no cache keeps: what every coatcheck edge sends instead of
 * the app's when it refuses a request. */
function sendPlain(res, status, text, headers = {}) {
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  const body = Buffer.from(text);
  res.statusCode = status;
  res.setHeader("content-type", "text/plain; charset=utf-8");
  res.setHeader("content-length", String(body.length));
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader("cache-control", "no-store");
  res.end(body);
}

function refuse(res, error, log) {
  const known = error instanceof ServiceError;
  const status = known && TEXTS[error.status] ? error.status : 500;
  if (status === 500 || status === 503) log(error);
  const headers = known && error.retryAfter != null ? { "retry-after": String(error.retryAfter) } : {};
  if (status === 503 && !headers["retry-after"]) headers["retry-after"] = "1";
  sendPlain(res, status, TEXTS[status], headers);
}

function clientOf(req) {
  const client = {};
  const ip = req.ip ?? req.socket?.remoteAddress;
  if (typeof ip === "string" && ip && ip.length <= MAX_IP) client.ip = ip;
  const agent = req.headers["user-agent"];
  if (typeof agent === "string" && agent) client.user_agent = agent.slice(0, MAX_USER_AGENT);
  return client;
}

const isCacheControl = (name) => String(name).toLowerCase() === "cache-control";

/** The headers argument of a writeHead call (an object, a flat array of names and
 * values, or an array of pairs) without Cache-Control. */
function dropCacheControl(headers) {
  if (!Array.isArray(headers)) {
    return Object.fromEntries(Object.entries(headers).filter(([name]) => !isCacheControl(name)));
  }
  if (headers.length > 0 && Array.isArray(headers[0])) return headers.filter(([name]) => !isCacheControl(name));
  const out = [];
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (!isCacheControl(headers[i])) out.push(headers[i], headers[i + 1]);
  }
  return out;
}

function namesCacheControl(headers) {
  if (!Array.isArray(headers)) return Object.keys(headers).some(isCacheControl);
  if (headers.length > 0 && Array.isArray(headers[0])) return headers.some(([name]) => isCacheControl(name));
  return headers.some((name, i) => i % 2 === 0 && isCacheControl(name));
}

/** The headers object a queued writeHead call carries, if any. */
function headersOf(name, args) {
  const last = args.at(-1);
  return name === "writeHead" && last !== null && typeof last === "object" ? last : null;
}

/** Put the commit's headers on the response, as http/headers.py decides them: the new
 * cookie (or its clearing) and Clear-Site-Data after a logout, forcing no-store; for a
 * signed-in session, no-store unless the app chose its own Cache-Control. */
function deliver(res, session, config, queue) {
  const { issued, cleared, ended } = session._delivery();
  if (issued || cleared) {
    const cookie = issued ? setCookie(config.cookie, issued.token, issued.maxAge) : clearCookie(config.cookie);
    const present = res.getHeader("set-cookie");
    res.setHeader("set-cookie", present == null ? [cookie] : [...[present].flat(), cookie]);
    if (ended && config.clearSiteData) res.setHeader("clear-site-data", issued ? CLEAR_KEEP_COOKIES : CLEAR_ALL);
    res.setHeader("cache-control", "no-store"); // a credential: no cache may keep it
    for (const [name, args] of queue) {
      if (headersOf(name, args)) args[args.length - 1] = dropCacheControl(args.at(-1));
    }
  } else if (session.userId != null && !res.hasHeader("cache-control")) {
    const chosen = queue.some(([name, args]) => headersOf(name, args) && namesCacheControl(args.at(-1)));
    if (!chosen) res.setHeader("cache-control", "no-store");
  }
}

async function csrfVerdict(req, session, config) {
  if (under(requestPath(req), config.exempt)) return null;
  const origin = req.headers.origin;
  const scheme = req.protocol ?? (req.socket?.encrypted ? "https" : "http");
  const rejection = checkOrigin({
    secFetchSite: req.headers["sec-fetch-site"],
    origin,
    own: ownOrigin(scheme, req.headers.host),
    trusted: config.trusted,
  });
  if (rejection) return rejection;
  let token = req.headers[config.csrfHeader];
  if (token === undefined && isForm(req.headers["content-type"])) {
    if (req._body === true || req.readableEnded || (req.complete && !req.readable)) {
      const value = req.body?.[config.csrfField]; // a body parser ran before this middleware
      token = typeof value === "string" ? value : undefined;
    } else {
      const body = await readBody(req, MAX_FORM_BODY);
      if (body === null) return Rejection.BODY_TOO_LARGE;
      const field = body === undefined ? null : formField(req.headers["content-type"], body, config.csrfField);
      token = field ?? undefined;
    }
  }
  if (token === undefined || token === "") return Rejection.MISSING_TOKEN;
  if (!checkToken(session._secret, token)) return Rejection.INVALID_TOKEN;
  return null;
}

function resolve(options) {
  if (options == null || typeof options !== "object") throw new TypeError("coatcheck({ url, apiKey }) needs options");
  const trusted = new Set();
  for (const origin of options.trustedOrigins ?? []) {
    const normalized = normalizeOrigin(origin);
    if (normalized == null) {
      throw new ConfigError(`trustedOrigins: ${JSON.stringify(origin)} is not an origin (scheme://host[:port])`);
    }
    trusted.add(normalized);
  }
  const csrfHeader = options.csrfHeader ?? "X-CSRF-Token";
  if (!csrfHeader || /[ :;,"\t\r\n]/.test(csrfHeader)) {
    throw new ConfigError(`invalid csrfHeader ${JSON.stringify(csrfHeader)}`);
  }
  return {
    service: new ServiceClient(options.url, options.apiKey, options.timeout ?? 5000),
    cookie: cookieConfig(options),
    csrf: options.csrf ?? true,
    csrfHeader: csrfHeader.toLowerCase(),
    csrfField: options.csrfField ?? "csrf_token",
    trusted,
    exempt: [...(options.exempt ?? [])],
    passive: [...(options.passive ?? [])],
    clearSiteData: options.clearSiteData ?? true,
    log: options.log ?? ((error) => console.error("coatcheck:", error.message)),
  };
}

/**
 * The middleware. Options: `url` and `apiKey` (a key with the `sessions` scope), and,
 * all optional, `cookieName`, `secure`, `httpOnly`, `sameSite`, `path`, `domain` (the
 * engine's defaults: `__Host-session`, Secure, HttpOnly, Lax, `/`), `csrf` (true),
 * `csrfHeader`, `csrfField`, `trustedOrigins`, `exempt` (paths the CSRF check skips),
 * `passive` (polling paths: checked, never slid), `clearSiteData`, `timeout` (ms per
 * call, 5000) and `log` (called with a failure the visitor gets a 5xx for).
 */
export function coatcheck(options) {
  const config = resolve(options);
  const { service, cookie } = config;

  return async function coatcheckSession(req, res, next) {
    if (req.session instanceof Session) return next(); // mounted twice
    const presented = readCookie(req.headers.cookie, cookie.name);
    const token = presented && presented.length <= MAX_TOKEN ? presented : null;
    const client = clientOf(req);
    const passive = config.passive.length > 0 && under(requestPath(req), config.passive);
    let answer = null;
    try {
      if (token) {
        const body = { token, client };
        if (passive) body.touch = false;
        answer = await service.call("sessions/introspect", body);
      }
    } catch (error) {
      return refuse(res, error, config.log);
    }
    const session = new Session(service, token, answer, Object.keys(client).length ? client : null, passive);
    req.session = session;
    hold(
      res,
      () => session._commit(),
      (queue) => deliver(res, session, config, queue),
      (error) => refuse(res, error, config.log),
    );
    if (config.csrf && !SAFE_METHODS.has(req.method)) {
      let rejection;
      try {
        rejection = await csrfVerdict(req, session, config);
      } catch (error) {
        return next(error);
      }
      if (rejection) return sendPlain(res, 403, refusalText(rejection));
    }
    next();
  };
}

export default coatcheck;
