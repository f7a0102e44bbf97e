// An Express app that shares one login with the coatcheck demo shop.
//
// Both keep their sessions in one `coatcheck serve`: the demo is served by it at `/`,
// this app talks to its API. Behind one origin (nginx.conf beside this file sends
// /express/ here and everything else to the service), the browser holds one session
// cookie for both: log in on either and the other knows the user; log out on either and
// both forget. The cookie's settings come from the same COATCHECK_* variables the demo
// reads, so the two always agree on them.
//
//   COATCHECK_URL      the service, as this app reaches it (http://127.0.0.1:8000)
//   COATCHECK_API_KEY  a key with the sessions scope:
//                      coatcheck api-keys create express --scope sessions
//   PORT               where this app listens (3000)

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

import express from "express";
import { coatcheck } from "coatcheck-express";

const USERS = { alice: "alice", bob: "bob" }; // the demo's own users (never do this outside a demo)
const PREFIX = "/express";

function flag(name, fallback) {
  const value = process.env[name];
  if (value === undefined) return fallback;
  if (["1", "true", "yes", "on"].includes(value.trim().toLowerCase())) return true;
  if (["0", "false", "no", "off"].includes(value.trim().toLowerCase())) return false;
  throw new Error(`${name}: expected true or false, got ${JSON.stringify(value)}`);
}

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function page(req, error = "") {
  const token = escape(await req.session.csrfToken());
  const user = req.session.userId;
  const cart = req.session.get("cart") ?? [];
  const account = user
    ? `<p>Logged in as <b>${escape(user)}</b>.</p>
       <form method="post" action="${PREFIX}/logout">
         <input type="hidden" name="csrf_token" value="${token}"><button>Log out</button>
       </form>`
    : `${error ? `<p role="alert">${escape(error)}</p>` : ""}
       <form method="post" action="${PREFIX}/login"><input type="hidden" name="csrf_token" value="${token}">
       <label>User <input name="username" required></label>
       <label>Password <input name="password" type="password" required></label>
       <button>Log in</button></form>`;
  return `<!doctype html><html lang="en"><meta charset="utf-8"><title>Express side</title>
    <h1>The Express side</h1>${account}
    <p>Cart, as the demo shop keeps it: ${cart.length ? cart.map(escape).join(", ") : "empty"}.</p>
    <p><a href="/">The demo shop</a></p></html>`;
}

export function createApp({ url, apiKey }) {
  const app = express();
  app.set("trust proxy", "loopback"); // nginx on this machine: its X-Forwarded-* are true
  app.use(
    coatcheck({
      url,
      apiKey,
      cookieName: process.env.COATCHECK_COOKIE_NAME ?? "__Host-session",
      secure: flag("COATCHECK_SECURE", true),
    }),
  );
  const router = express.Router();
  router.get("/", async (req, res) => res.send(await page(req)));
  router.get("/whoami", (req, res) => res.json({ user: req.session.userId, cart: req.session.get("cart") ?? [] }));
  router.post("/login", express.urlencoded({ extended: false }), async (req, res) => {
    const { username = "", password = "" } = req.body ?? {};
    const user = username.trim().toLowerCase();
    if (!Object.hasOwn(USERS, user) || USERS[user] !== password) {
      return res.status(401).send(await page(req, "Wrong username or password."));
    }
    await req.session.login(user);
    res.redirect(303, `${PREFIX}/`);
  });
  router.post("/logout", async (req, res) => {
    await req.session.logout();
    res.redirect(303, `${PREFIX}/`);
  });
  app.use(PREFIX, router);
  return app;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const url = process.env.COATCHECK_URL ?? "http://127.0.0.1:8000";
  const apiKey = process.env.COATCHECK_API_KEY;
  if (!apiKey) {
    console.error("set COATCHECK_API_KEY: coatcheck api-keys create express --scope sessions");
    process.exit(2);
  }
  const port = Number(process.env.PORT ?? 3000);
  createApp({ url, apiKey }).listen(port, "127.0.0.1", () => {
    console.log(`express side: http://127.0.0.1:${port}${PREFIX}/ (through nginx: /express/)`);
  });
}
