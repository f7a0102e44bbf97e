// Cross-site request forgery, checked as the Python edges check it
// (src/coatcheck/security/csrf.py, src/coatcheck/http/csrf_check.py):
//
// 1. only unsafe methods (anything but GET, HEAD, OPTIONS, TRACE), outside exempt paths;
// 2. `Sec-Fetch-Site: cross-site` is refused unless the Origin is trusted, and an Origin
//    must be the request's own (its scheme and Host) or trusted (`null` matches nothing);
// 3. then the token, from the X-CSRF-Token header or else the `csrf_token` field of a
//    urlencoded or multipart form: `pad || (pad XOR secret)` in base64url, compared with
//    the session's secret in constant time.
//
// The secret is the session's own, kept by the engine in the session's metadata: the
// service hands it over masked in the session view (`csrf_token`), so a token rendered
// by the Python demo verifies here and one rendered here verifies there.

import { randomBytes, timingSafeEqual } from "node:crypto";

export const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);
export const SECRET_BYTES = 32;
export const TOKEN_LENGTH = 86;
/** Largest form body searched for the token field (the Python edges' MAX_FORM_BODY). */
export const MAX_FORM_BODY = 1024 * 1024;

const MASKED = /^[A-Za-z0-9_-]{86}$/;
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^\s/?#,@]+$/;
const DEFAULT_PORTS = { http: ":80", https: ":443" };
const FORM_TYPES = new Set(["application/x-www-form-urlencoded", "multipart/form-data"]);

export const Rejection = Object.freeze({
  CROSS_SITE: "cross-site request",
  ORIGIN_MISMATCH: "origin mismatch",
  MISSING_TOKEN: "missing token",
  INVALID_TOKEN: "invalid token",
  BODY_TOO_LARGE: "form body too large to search for the token field; send the token in a header",
});

/** A token for `secret`: a fresh one-time pad, then the secret XORed with it. */
export function mask(secret) {
  const pad = randomBytes(secret.length);
  const out = Buffer.alloc(secret.length * 2);
  pad.copy(out);
  for (let i = 0; i < secret.length; i++) out[secret.length + i] = pad[i] ^ secret[i];
  return out.toString("base64url");
}

/** The secret inside a token, or null when `token` is not shaped like one. */
export function unmask(token) {
  if (typeof token !== "string" || token.length !== TOKEN_LENGTH || !MASKED.test(token)) {
    return null;
  }
  const raw = Buffer.from(token, "base64url");
  const secret = Buffer.alloc(SECRET_BYTES);
  for (let i = 0; i < SECRET_BYTES; i++) secret[i] = raw[i] ^ raw[SECRET_BYTES + i];
  return secret;
}

/** Does `presented` carry `secret`? Constant time in the secret. */
export function checkToken(secret, presented) {
  const candidate = unmask(presented);
  if (secret == null || candidate == null) return false;
  return timingSafeEqual(candidate, secret);
}

/** `scheme://host[:port]` lower-cased without a default port, or null for `null` and
 * anything that is not one origin (a list, a path, spaces, user info). */
export function normalizeOrigin(value) {
  const text = String(value).trim().toLowerCase();
  if (text.length > 2048 || !ORIGIN.test(text)) return null;
  const scheme = text.slice(0, text.indexOf(":"));
  const port = DEFAULT_PORTS[scheme];
  return port && text.endsWith(port) ? text.slice(0, -port.length) : text;
}

/** The origin a browser writes for this site's pages: the request's scheme and Host. */
export function ownOrigin(scheme, host) {
  return host ? normalizeOrigin(`${scheme}://${host}`) : null;
}

/** The header checks of an unsafe request, before any token: a rejection, or null. */
export function checkOrigin({ secFetchSite, origin, own, trusted }) {
  const normalized = origin != null ? normalizeOrigin(origin) : null;
  const isTrusted = normalized != null && trusted.has(normalized);
  const crossSite = secFetchSite != null && secFetchSite.trim().toLowerCase() === "cross-site";
  if (crossSite && !isTrusted) return Rejection.CROSS_SITE;
  if (origin != null && !isTrusted && (normalized == null || normalized !== own)) {
    return Rejection.ORIGIN_MISMATCH;
  }
  return null;
}

export function mimeType(contentType) {
  return String(contentType ?? "").split(";")[0].trim().toLowerCase();
}

export function isForm(contentType) {
  return FORM_TYPES.has(mimeType(contentType));
}

const PARAM = /;\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)/g;

function headerParams(value) {
  const params = {};
  for (const match of value.matchAll(PARAM)) {
    let raw = match[2];
    if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"')) {
      raw = raw.slice(1, -1).replace(/\\(.)/g, "$1");
    }
    const name = match[1].toLowerCase();
    if (!(name in params)) params[name] = raw;
  }
  return params;
}

function multipartField(contentType, body, name) {
  const boundary = headerParams(contentType).boundary;
  if (!boundary) return null;
  const text = body.toString("latin1");
  const parts = text.split(`--${boundary}`).slice(1);
  for (let part of parts) {
    if (part.startsWith("--")) break; // the closing delimiter
    if (part.startsWith("\r\n")) part = part.slice(2);
    const split = part.indexOf("\r\n\r\n");
    if (split < 0) continue;
    for (const line of part.slice(0, split).split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "content-disposition") continue;
      const params = headerParams(line.slice(colon + 1));
      if (params.name === name && !("filename" in params)) {
        const content = part.slice(split + 4);
        return content.endsWith("\r\n") ? content.slice(0, -2) : content;
      }
    }
  }
  return null;
}

/** The plain (non-file) field `name` of a urlencoded or multipart body, or null;
 * tolerant of any bytes: a malformed body simply has no such field. */
export function formField(contentType, body, name) {
  const mime = mimeType(contentType);
  if (mime === "application/x-www-form-urlencoded") {
    for (const [key, value] of new URLSearchParams(body.toString("latin1"))) {
      if (key === name) return value;
    }
    return null;
  }
  if (mime === "multipart/form-data") return multipartField(contentType ?? "", body, name);
  return null;
}

/** The body text the 403 carries, naming the reason so a developer sees what to fix. */
export function refusalText(rejection) {
  return `CSRF check failed: ${rejection}\n`;
}
