// coatcheck.js: the browser side of a coatcheck session. One ES module, no dependency,
// no build step; types in coatcheck.d.ts beside it. It never sees the session token (the
// cookie is HttpOnly) and stores none. What it does, in the order of the code below:
// - the CSRF token of the page goes into the X-CSRF-Token header of same-origin unsafe
//   fetch and XHR requests, and into a csrf_token field of same-origin POST forms;
// - the session's deadline is read from the X-Session-Expires header of same-origin
//   responses (corrected for clock skew by their Date header); a warning with a "Stay
//   signed in" button shows `warn` seconds before it, and at the deadline the tab leaves
//   for the sign-in page. Only the button calls the keep-alive: an unattended tab never
//   extends its own session;
// - the tabs of a site stay in step (BroadcastChannel, else storage events): each tab
//   says at start who is signed in and, when its page names it, the consent in force, and
//   sign-in, sign-out, expiry, revocation and consent changes reach the other tabs at once;
// - storage.local and storage.session keep values per signed-in user and consent
//   category, refuse a write in a category without consent, and are wiped at sign-out,
//   expiry and revocation in every tab.

const SAFE = /^(GET|HEAD|OPTIONS|TRACE)$/i;
const PREFIX = "coatcheck:";
const BUS = "coatcheck.bus";
const MAX_DELAY = 2147483647; // setTimeout's largest delay; longer ones fire at once
const ME = Symbol.for("coatcheck");

export function create(W = globalThis, options = {}) {
  if (W[ME]) return W[ME].configure(options);
  const D = W.document;
  const L = W.location;
  const attr = (name) => D.documentElement.getAttribute("data-coatcheck-" + name);
  const declared = attr("user") !== null || "user" in options;
  const o = {
    user: attr("user") || "",
    consent: (attr("consent") || "").split(/[\s,]+/).filter(Boolean),
    signIn: attr("sign-in") || "/",
    keepAlive: attr("keep-alive") || "/coatcheck/keep-alive",
    warn: Number(attr("warn") || 60),
    header: "X-CSRF-Token",
    field: "csrf_token",
    ui: true,
    text: (s) => `You will be signed out in ${s} s.`,
    stay: "Stay signed in",
  };
  const handlers = {};
  let deadline = 0; // ms by this tab's clock; 0 while unknown
  let ended = false;
  let timer;
  let box;
  let checking;

  const now = () => Date.now();
  const same = (url) => {
    try {
      return new URL(url, L.href).origin === L.origin;
    } catch {
      return false;
    }
  };
  const token = () =>
    o.csrf ||
    D.querySelector('meta[name="csrf-token"]')?.content ||
    D.querySelector(`input[name="${o.field}"]`)?.value;
  const emit = (type, detail) =>
    (handlers[type] || []).map((fn) => fn(detail)).includes(false) ? false : true;

  // -- requests in, headers out ----------------------------------------------------------
  const seen = (status, get) => {
    if (ended) return;
    if (get("clear-site-data") != null && o.user) return end("signout", true);
    // 401, or 403 (a CSRF token of a session that is gone): ask whether it still stands
    if ((status === 401 || status === 403) && o.user) return check();
    const expires = Number(get("x-session-expires"));
    if (expires && o.user) {
      const date = Date.parse(get("date") || "");
      learn(expires * 1000 - (date ? date - now() : 0), true);
    }
  };
  const fetch0 = W.fetch;
  if (fetch0) {
    W.fetch = function (input, init) {
      const url = typeof input === "string" || input instanceof URL ? String(input) : input.url;
      const ours = same(url);
      const t = ours && !SAFE.test(init?.method || input.method || "GET") && token();
      if (t) {
        const headers = new Headers(init?.headers || input.headers);
        if (!headers.has(o.header)) headers.set(o.header, t);
        init = { ...init, headers };
      }
      const answer = fetch0.call(W, input, init);
      return ours ? answer.then((r) => (seen(r.status, (n) => r.headers.get(n)), r)) : answer;
    };
  }
  const X = W.XMLHttpRequest?.prototype;
  if (X) {
    const { open, send, setRequestHeader } = X;
    X.open = function (method, url) {
      this[ME] = { method, url: String(url) };
      return open.apply(this, arguments);
    };
    X.setRequestHeader = function (name) {
      if (this[ME] && name.toLowerCase() === o.header.toLowerCase()) this[ME].set = true;
      return setRequestHeader.apply(this, arguments);
    };
    X.send = function () {
      const r = this[ME];
      if (r && same(r.url)) {
        const t = !r.set && !SAFE.test(r.method) && token();
        if (t) setRequestHeader.call(this, o.header, t);
        this.addEventListener("loadend", () => seen(this.status, (n) => this.getResponseHeader(n)));
      }
      return send.apply(this, arguments);
    };
  }
  // Attributes, not the form's properties: an input named "action" would shadow those.
  const field = (form, by) => {
    const pick = (name) => by?.getAttribute("form" + name) ?? form.getAttribute(name);
    const t = token();
    if (!t || (pick("method") || "").toLowerCase() !== "post" || !same(pick("action") || L.href)) return;
    if (form.querySelector(`[name="${o.field}"]`)) return;
    const input = D.createElement("input");
    input.type = "hidden";
    input.name = o.field;
    input.value = t;
    form.append(input);
  };
  D.addEventListener("submit", (e) => field(e.target, e.submitter), true);
  const F = W.HTMLFormElement?.prototype;
  if (F) {
    const submit = F.submit;
    F.submit = function () {
      field(this);
      return submit.call(this);
    };
  }

  // -- the deadline ----------------------------------------------------------------------
  function learn(ms, share) {
    if (ms <= deadline) return;
    deadline = ms;
    if (share) post({ t: "deadline", d: ms });
    emit("deadline", ms);
    schedule();
  }
  function schedule() {
    W.clearTimeout(timer);
    if (ended || !deadline) return;
    const left = deadline - now();
    if (left <= 0) return end("expired", true);
    const warnAt = left - o.warn * 1000;
    if (warnAt > 0) hide();
    else show(Math.ceil(left / 1000));
    timer = W.setTimeout(schedule, Math.min(warnAt > 0 ? warnAt : left % 1000 || 1000, MAX_DELAY));
  }
  function show(seconds) {
    if (!box) {
      box = D.createElement("div");
      if (emit("warn", seconds) === false || !o.ui) return;
      box.setAttribute("role", "alertdialog");
      box.setAttribute("aria-labelledby", "coatcheck-idle");
      box.style.cssText =
        "position:fixed;z-index:9999;right:1rem;bottom:1rem;padding:1rem;background:#fff;" +
        "color:#111;border:1px solid #888;border-radius:.5rem;box-shadow:0 .2rem 1rem #0004;" +
        "font:1rem system-ui";
      const p = D.createElement("p");
      p.id = "coatcheck-idle";
      p.style.margin = "0 0 .75rem";
      const button = D.createElement("button");
      button.type = "button";
      button.style.cssText = "font:inherit;padding:.3rem .9rem";
      button.textContent = o.stay;
      button.onclick = keepAlive;
      box.append(p, button);
      D.body.append(box);
      button.focus();
    }
    if (box.firstChild) box.firstChild.textContent = o.text(seconds);
  }
  function hide() {
    box?.remove();
    box = undefined;
  }
  async function keepAlive() {
    try {
      const r = await W.fetch(o.keepAlive, { method: "POST" });
      if (!r.ok) await check();
      return r.ok;
    } catch {
      return false;
    }
  }
  // Is the session still there? A GET of the keep-alive, which extends nothing.
  function check() {
    if (!o.user || ended || !fetch0) return Promise.resolve();
    return (checking ||= fetch0
      .call(W, o.keepAlive)
      .then((r) => {
        if (r.status === 401) end(deadline && now() < deadline - 1000 ? "revoked" : "expired", true);
        else seen(r.status, (n) => r.headers.get(n));
      })
      .catch(() => {})
      .finally(() => (checking = undefined)));
  }
  function end(reason, share) {
    if (ended) return;
    ended = true;
    W.clearTimeout(timer);
    hide();
    wipe(() => true);
    if (share) post({ t: reason });
    if (emit(reason) !== false) L.assign(o.signIn);
  }

  // -- the other tabs --------------------------------------------------------------------
  let channel;
  try {
    channel = new W.BroadcastChannel("coatcheck");
    channel.onmessage = (e) => hear(e.data);
  } catch {
    W.addEventListener("storage", (e) => {
      if (e.key === BUS && e.newValue) hear(JSON.parse(e.newValue));
    });
  }
  function post(message) {
    message.u = o.user;
    if (channel) return channel.postMessage(message);
    try {
      W.localStorage.setItem(BUS, JSON.stringify({ ...message, n: Math.random() }));
      W.localStorage.removeItem(BUS);
    } catch {}
  }
  function hear(m) {
    if (ended) return;
    if (m.t === "user") {
      if (m.u === o.user) return;
      if (!m.u) return end("signout");
      if (emit("signin", m.u) !== false) {
        ended = true;
        L.reload();
      }
    } else if (m.u !== o.user) {
      return; // a tab showing another user's page: its news is not this tab's
    } else if (m.t === "deadline") learn(m.d);
    else if (m.t === "consent" && m.c.join() !== o.consent.join()) consent(m.c);
    else if (/^(signout|expired|revoked)$/.test(m.t)) end(m.t);
  }

  // -- storage ---------------------------------------------------------------------------
  const mine = () => PREFIX + encodeURIComponent(o.user) + ":";
  const allowed = (category) => category === "necessary" || o.consent.includes(category);
  const area = (name) => {
    try {
      return W[name];
    } catch {
      return null; // storage disabled: reads find nothing, writes are refused
    }
  };
  // Remove every coatcheck entry for which drop(isMine, category) says so, in both areas.
  function wipe(drop) {
    for (const name of ["localStorage", "sessionStorage"]) {
      const s = area(name);
      if (!s) continue;
      for (let i = s.length - 1; i >= 0; i--) {
        const key = s.key(i);
        if (!key?.startsWith(PREFIX)) continue;
        let category;
        try {
          category = JSON.parse(s.getItem(key))[0];
        } catch {}
        if (drop(key.startsWith(mine()), category)) s.removeItem(key);
      }
    }
  }
  const wrap = (name) => ({
    get(key) {
      try {
        const value = area(name)?.getItem(mine() + key);
        return value == null ? null : JSON.parse(value)[1];
      } catch {
        return null;
      }
    },
    set(key, value, category = "functional") {
      if (ended || !allowed(category)) return false;
      try {
        area(name).setItem(mine() + key, JSON.stringify([category, value]));
        return true;
      } catch {
        return false; // no storage, over quota, or a value JSON cannot hold
      }
    },
    remove(key) {
      try {
        area(name)?.removeItem(mine() + key);
      } catch {}
    },
    keys() {
      const s = area(name);
      const out = [];
      for (let i = 0; s && i < s.length; i++) {
        const key = s.key(i);
        if (key?.startsWith(mine())) out.push(key.slice(mine().length));
      }
      return out;
    },
    clear() {
      for (const key of this.keys()) this.remove(key);
    },
  });
  function consent(categories, share) {
    const gone = o.consent.filter((c) => !categories.includes(c));
    o.consent = [...categories];
    wipe((isMine, category) => isMine && gone.includes(category));
    if (share) post({ t: "consent", c: o.consent });
    emit("consent", [...o.consent]);
  }

  const api = {
    storage: { local: wrap("localStorage"), session: wrap("sessionStorage") },
    consent: {
      get: () => [...o.consent],
      set: (categories) => consent(categories, true),
    },
    get user() {
      return o.user || null;
    },
    get deadline() {
      return deadline || null;
    },
    on(type, fn) {
      (handlers[type] ||= []).push(fn);
      return () => handlers[type].splice(handlers[type].indexOf(fn) >>> 0, 1);
    },
    configure(changes) {
      Object.assign(o, changes);
      schedule();
      return api;
    },
    keepAlive,
    check,
  };
  W[ME] = api;
  Object.assign(o, options);
  wipe((isMine) => !isMine); // what another user (or nobody) left here goes
  if (declared) post({ t: "user" });
  // The server's answer to a banner is the next page: it tells the tabs already open.
  if (attr("consent") !== null) post({ t: "consent", c: o.consent });
  D.addEventListener("visibilitychange", () => D.hidden || schedule());
  W.addEventListener("pageshow", (e) => e.persisted && check());
  check();
  return api;
}

const coatcheck = typeof document === "object" ? create() : null;
export { coatcheck };
export default coatcheck;
