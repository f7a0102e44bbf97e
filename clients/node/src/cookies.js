// The session cookie, read and written exactly as the Python edges do
// (src/coatcheck/http/cookies.py), with the same refusals of attribute combinations a
// browser would silently ignore (src/coatcheck/core/config.py): a __Host- cookie needs
// Secure, Path=/ and no Domain; a __Secure- cookie needs Secure; SameSite=None needs
// Secure. So the Express app and the Python demo can share one cookie.

const EXPIRED = "Thu, 01 Jan 1970 00:00:00 GMT";
const BAD_NAME = /[ ;,="\t\r\n]/;
const SAME_SITE = { lax: "Lax", strict: "Strict", none: "None" };

/** A configuration mistake, refused when the middleware is built, never per request. */
export class ConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * The cookie settings, checked. Defaults are the engine's: `__Host-session`, Secure,
 * HttpOnly, SameSite=Lax, Path=/, no Domain.
 */
export function cookieConfig({
  cookieName = "__Host-session",
  secure = true,
  httpOnly = true,
  sameSite = "lax",
  path = "/",
  domain = null,
} = {}) {
  if (typeof cookieName !== "string" || !cookieName || BAD_NAME.test(cookieName)) {
    throw new ConfigError(`invalid cookieName ${JSON.stringify(cookieName)}`);
  }
  const site = String(sameSite).toLowerCase();
  if (!(site in SAME_SITE)) {
    throw new ConfigError(`sameSite must be lax, strict or none, got ${JSON.stringify(sameSite)}`);
  }
  if (site === "none" && !secure) {
    throw new ConfigError("sameSite 'none' requires secure: true (browsers drop it otherwise)");
  }
  if (typeof path !== "string" || !path.startsWith("/") || /[;\r\n]/.test(path)) {
    throw new ConfigError(`invalid cookie path ${JSON.stringify(path)}`);
  }
  if (domain != null && (typeof domain !== "string" || !domain || /[;\s]/.test(domain))) {
    throw new ConfigError(`invalid cookie domain ${JSON.stringify(domain)}`);
  }
  const lowered = cookieName.toLowerCase();
  if (lowered.startsWith("__host-")) {
    if (!secure || path !== "/" || domain != null) {
      throw new ConfigError(
        "a __Host- cookie needs secure: true, path '/' and no domain; to relax these, " +
          "also choose a cookieName without the __Host- prefix",
      );
    }
  } else if (lowered.startsWith("__secure-") && !secure) {
    throw new ConfigError("a __Secure- cookie needs secure: true");
  }
  return {
    name: cookieName,
    secure: Boolean(secure),
    httpOnly: Boolean(httpOnly),
    sameSite: site,
    path,
    domain: domain ?? null,
  };
}

/**
 * The value of cookie `name` in a Cookie header, or null. With several of the same name
 * (cookie tossing) the first wins: browsers list the most specific path first.
 */
export function readCookie(header, name) {
  if (typeof header !== "string" || !header.includes(name)) return null;
  for (const part of header.split(";")) {
    const at = part.indexOf("=");
    if (at < 0 || part.slice(0, at).trim() !== name) continue;
    let value = part.slice(at + 1).trim();
    if (value.length >= 2 && value[0] === '"' && value.at(-1) === '"') value = value.slice(1, -1);
    return value;
  }
  return null;
}

function attributes(config) {
  const attrs = [`Path=${config.path}`];
  if (config.domain) attrs.push(`Domain=${config.domain}`);
  if (config.secure) attrs.push("Secure");
  if (config.httpOnly) attrs.push("HttpOnly");
  attrs.push(`SameSite=${SAME_SITE[config.sameSite]}`);
  return attrs.join("; ");
}

/** A Set-Cookie value delivering `token`; persistent only with `maxAge` (remember-me). */
export function setCookie(config, token, maxAge = null) {
  let value = `${config.name}=${token}; ${attributes(config)}`;
  if (maxAge != null) value += `; Max-Age=${maxAge}`;
  return value;
}

/** A Set-Cookie value that makes the browser drop the session cookie. */
export function clearCookie(config) {
  return `${config.name}=""; ${attributes(config)}; Max-Age=0; Expires=${EXPIRED}`;
}
