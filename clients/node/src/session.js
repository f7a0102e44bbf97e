// `req.session`: the end user's session as the service keeps it, read from one introspect
// call and changed in memory; the changes go to the service as one delta
// (POST /v1/sessions/update with set/unset, and the atomic operations of incr, append and
// addToSet) when the response starts.
//
// login, logout and csrfToken are awaited: each is a call of its own, made at once, so
// the app learns there whether it worked (a login over the session limit is refused).

import { mask, unmask } from "./csrf.js";
import { NOT_FOUND, ServiceError } from "./service.js";

const MAX_KEY = 1024;

function checkKey(key) {
  if (typeof key !== "string" || key.length < 1 || key.length > MAX_KEY) {
    throw new TypeError(`session keys are strings of 1 to ${MAX_KEY} characters, got ${JSON.stringify(key)}`);
  }
}

/** Refuse, when it is set, a value the service could not store (the key named). */
function checkValue(key, value) {
  let text;
  try {
    text = JSON.stringify(value, (_, v) => {
      if (typeof v === "number" && !Number.isFinite(v)) throw new TypeError(`${v} is not a JSON number`);
      return v;
    });
  } catch (error) {
    throw new TypeError(`session value for ${JSON.stringify(key)} is not JSON: ${error.message}`);
  }
  if (text === undefined) {
    throw new TypeError(`session value for ${JSON.stringify(key)} is not JSON (${typeof value})`);
  }
  return text;
}

function checkInteger(what, value) {
  if (!Number.isSafeInteger(value)) {
    throw new TypeError(`${what} must be an integer within ±(2**53 - 1), got ${JSON.stringify(value)}`);
  }
}

/** The error the service would answer for an operation on a value of another type. */
function typeClash(op, key, value) {
  const kind = Array.isArray(value) ? "a list" : value === null ? "null" : typeof value;
  const want = op === "incr" ? "an integer" : "a list";
  return new TypeError(`${op} on session key ${JSON.stringify(key)}: the value is ${kind}, not ${want}`);
}

export class Session {
  /**
   * @param service the ServiceClient
   * @param token the token the browser presented, if the service knows it
   * @param answer the introspect answer for it ({active, session, token?}), or null
   * @param client {ip, user_agent} of the end user, as the service records it
   * @param passive a polling route: read only, never committed
   */
  constructor(service, token, answer, client, passive) {
    this._service = service;
    this._client = client;
    this._passive = passive;
    this._token = null;
    this._view = null;
    this._data = {};
    this._sets = new Map();
    this._unsets = new Set();
    this._watched = new Map();
    this._ops = [];
    this._opValues = new Map();
    this._secret = null;
    this._issued = null;
    this._cleared = false;
    this._ended = false;
    this._committed = false;
    this._broken = false;
    if (answer?.active) {
      this._token = token;
      this._adopt(answer);
    }
  }

  // -- reading --------------------------------------------------------------------------
  /** The value under `key`, or undefined. */
  get(key) {
    const value = this._peek(key);
    const stored = !this._sets.has(key) && !this._opValues.has(key);
    if (stored && value !== null && typeof value === "object" && !this._watched.has(key)) {
      this._watched.set(key, JSON.stringify(value)); // changed in place: found at commit
    }
    return value;
  }

  has(key) {
    return this.get(key) !== undefined;
  }

  /** The signed-in user's id, or null. */
  get userId() {
    return this._view?.user_id ?? null;
  }

  /** The session's public handle (safe in logs), or null before it is stored. */
  get handle() {
    return this._view?.handle ?? null;
  }

  /** The assurance level of the login (0 when anonymous). */
  get level() {
    return this._view?.level ?? 0;
  }

  // -- changing ---------------------------------------------------------------------------
  set(key, value) {
    this._checkOpen();
    checkKey(key);
    checkValue(key, value);
    this._dropOps(key);
    this._sets.set(key, value);
    this._unsets.delete(key);
  }

  delete(key) {
    this._checkOpen();
    checkKey(key);
    this._dropOps(key);
    this._sets.delete(key);
    this._watched.delete(key);
    if (Object.hasOwn(this._data, key)) this._unsets.add(key);
  }

  /** Add `by` to the integer under `key` (missing: 0) and return the new value. The
   * service adds it to the value it holds when the update lands, so concurrent requests'
   * increments all count (`set(key, get(key) + 1)` would lose some). */
  incr(key, by = 1) {
    checkInteger("incr's step", by);
    return this._operate("incr", key, by, (current) => {
      const value = current ?? 0;
      if (!Number.isSafeInteger(value)) throw typeClash("incr", key, value);
      const next = value + by;
      checkInteger(`incr of ${JSON.stringify(key)}`, next);
      return next;
    });
  }

  /** Add `value` at the end of the list under `key` (missing: []), in the service, so
   * concurrent appends (a cart's additions) all land. `get` shows it at once. */
  append(key, value) {
    checkValue(key, value);
    this._operate("append", key, value, (current) => {
      const list = current ?? [];
      if (!Array.isArray(list)) throw typeClash("append", key, list);
      return [...list, value];
    });
  }

  /** `append`, unless the list already holds `value` (a string, a safe integer, a
   * boolean or null), as the service finds it when the update lands. */
  addToSet(key, value) {
    const scalar = value === null || ["string", "boolean"].includes(typeof value) || Number.isSafeInteger(value);
    if (!scalar) throw new TypeError(`addToSet takes a string, a safe integer, a boolean or null, got ${JSON.stringify(value)}`);
    this._operate("add_to_set", key, value, (current) => {
      const list = current ?? [];
      if (!Array.isArray(list)) throw typeClash("add_to_set", key, list);
      return list.some((item) => item === value) ? [...list] : [...list, value];
    });
  }

  /** Sign the session in as `userId`: a new token (the old one is dead), the data kept
   * unless the session belonged to another user. Pending changes are written first. */
  async login(userId, { remember = false, level } = {}) {
    this._checkOpen();
    const uid = String(userId ?? "");
    if (!uid) throw new TypeError("login needs a user id");
    const login = { user_id: uid };
    if (remember) login.remember = true;
    if (level != null) login.level = level;
    await this._guard(async () => {
      await this._flush();
      if (this._token) {
        const answer = await this._onToken("sessions/login", login);
        if (answer) return this._adopt(answer);
      }
      const data = this._pendingSets();
      this._adopt(await this._service.call("sessions", { ...login, ...data, ...this._clientField() }));
    });
  }

  /** End the session: the token dies at once, the cookie is cleared with the response. */
  async logout() {
    this._checkOpen();
    await this._guard(async () => {
      if (this._token) await this._onToken("sessions/logout", {});
    });
    const held = this._token != null;
    this._forget();
    this._cleared = held || this._cleared;
    this._ended = true;
  }

  /** A CSRF token for a form field (`csrf_token`) or the X-CSRF-Token header, masked
   * afresh at every call. The first one of a session asks the service for its secret
   * (and so stores a session for an anonymous visitor, as the Python edges do). */
  async csrfToken() {
    if (this._secret) return mask(this._secret);
    this._checkOpen();
    await this._guard(async () => {
      const delta = this._delta();
      this._clearPending();
      if (this._token) {
        const answer = await this._onToken("sessions/update", { ...delta, csrf: true });
        if (answer) return this._adopt(answer);
      }
      const data = delta.set ? { data: delta.set } : {};
      this._adopt(await this._service.call("sessions", { ...data, csrf: true, ...this._clientField() }));
    });
    return mask(this._secret);
  }

  // -- the commit, by the middleware ----------------------------------------------------
  /** Write the pending changes as one delta. After this, changes are an error. */
  async _commit() {
    if (this._committed) return;
    this._committed = true;
    if (this._broken || this._passive) return;
    await this._guard(async () => {
      await this._flush();
      const data = this._pendingSets();
      if (!this._token && data.data) {
        this._adopt(await this._service.call("sessions", { ...data, ...this._clientField() }));
      }
    });
  }

  /** What the response must carry: {token, maxAge} to deliver, or clear, and ended. */
  _delivery() {
    return { issued: this._issued, cleared: this._cleared, ended: this._ended };
  }

  // -- inside ---------------------------------------------------------------------------
  /** One atomic operation: applied here at once (read your writes) and sent to the
   * service with the delta. On a key this request wrote, or changed in place, or on a
   * session not stored yet, the result is known here, so it is written as a value. */
  _operate(op, key, arg, apply) {
    this._checkOpen();
    checkKey(key);
    const current = this._peek(key);
    const next = apply(current);
    const before = this._watched.get(key);
    const changedInPlace = before !== undefined && JSON.stringify(current) !== before;
    if (!this._token || this._sets.has(key) || this._unsets.has(key) || changedInPlace) {
      this._dropOps(key);
      this._watched.delete(key);
      this._sets.set(key, next);
      this._unsets.delete(key);
      return next;
    }
    this._watched.delete(key); // read but unchanged: the operation says what changes
    this._ops.push(op === "incr" ? { op, key, by: arg } : { op, key, value: arg });
    this._opValues.set(key, next);
    return next;
  }

  /** The value `get` answers, without watching it for changes in place. */
  _peek(key) {
    if (this._unsets.has(key)) return undefined;
    if (this._sets.has(key)) return this._sets.get(key);
    if (this._opValues.has(key)) return this._opValues.get(key);
    return Object.hasOwn(this._data, key) ? this._data[key] : undefined;
  }

  _dropOps(key) {
    if (!this._opValues.delete(key)) return;
    this._ops = this._ops.filter((op) => op.key !== key);
  }

  _checkOpen() {
    if (this._committed) {
      throw new Error("the session was committed when the response started; change it before sending");
    }
    if (this._passive) throw new Error("a passive route's session is read only");
    if (this._broken) throw new ServiceError("the session store is unavailable", { status: 503, retryAfter: 1 });
  }

  async _guard(step) {
    try {
      await step();
    } catch (error) {
      if (error instanceof ServiceError && error.status === 503) this._broken = true;
      throw error;
    }
  }

  _clientField() {
    return this._client ? { client: this._client } : {};
  }

  _delta() {
    for (const [key, before] of this._watched) {
      if (!this._sets.has(key) && !this._unsets.has(key) && JSON.stringify(this._data[key]) !== before) {
        this._sets.set(key, this._data[key]);
      }
    }
    const delta = {};
    if (this._sets.size) delta.set = Object.fromEntries(this._sets);
    if (this._unsets.size && this._token) delta.unset = [...this._unsets];
    if (this._ops.length && this._token) delta.ops = [...this._ops];
    return delta;
  }

  _clearPending() {
    this._sets.clear();
    this._unsets.clear();
    this._watched.clear();
    this._ops = [];
    this._opValues.clear();
  }

  _pendingSets() {
    const delta = this._delta();
    this._clearPending();
    return delta.set ? { data: delta.set } : {};
  }

  /** Write the pending delta of a stored session (one update call), if there is one. */
  async _flush() {
    if (!this._token) return;
    const delta = this._delta();
    if (!delta.set && !delta.unset && !delta.ops) return;
    this._clearPending();
    const answer = await this._onToken("sessions/update", delta);
    if (answer) this._adopt(answer);
  }

  /** A call on the current token; null when the session ended meanwhile (revoked by
   * another call): its cookie is then cleared, and nothing here may bring it back. */
  async _onToken(path, body) {
    try {
      return await this._service.call(path, { token: this._token, ...body });
    } catch (error) {
      if (error instanceof ServiceError && error.type === NOT_FOUND) {
        this._forget();
        this._cleared = true;
        return null;
      }
      throw error;
    }
  }

  _forget() {
    this._token = null;
    this._view = null;
    this._data = {};
    this._clearPending();
    this._secret = null;
    this._issued = null;
  }

  /** Take an answer's session view, and its token when it carries a new one. */
  _adopt(answer) {
    if (!answer) return;
    const view = answer.session;
    this._view = view;
    this._data = { ...view.data };
    this._watched.clear();
    this._secret = view.csrf_token ? unmask(view.csrf_token) : null;
    if (answer.token) {
      this._token = answer.token;
      const maxAge = view.remember ? Math.max(0, Math.floor(view.absolute_at - Date.now() / 1000)) : null;
      this._issued = { token: answer.token, maxAge };
      this._cleared = false;
    }
  }
}
