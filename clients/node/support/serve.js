// A real `coatcheck serve` for the tests, started as an operator would: a subprocess on a
// free loopback port over a SQLite file in a temporary directory (or a private Redis the
// test can kill), and an API key made with `coatcheck api-keys create NAME --scope
// sessions`. COATCHECK_PYTHON names the Python that has coatcheck (default python3).

import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const PYTHON = process.env.COATCHECK_PYTHON ?? "python3";

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function until(what, check, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not come up`);
    await new Promise((r) => setTimeout(r, 50)); // waiting for a process to start
  }
}

async function answers(url) {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

/** `coatcheck ARGS` to the end: its stdout. */
export async function coatcheckCli(args, env = {}) {
  const { stdout } = await run(PYTHON, ["-m", "coatcheck.cli", ...args], {
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return stdout;
}

/** A private redis-server on a free port, for a store the test can take down. */
export async function startRedis() {
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
    stdio: "ignore",
  });
  const { Socket } = await import("node:net");
  await until("redis-server", () =>
    new Promise((resolve) => {
      const socket = new Socket();
      socket.once("error", () => resolve(false));
      socket.connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
    }),
  );
  return {
    url: `redis://127.0.0.1:${port}/0`,
    kill() {
      child.kill("SIGKILL");
      return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", r)));
    },
  };
}

/**
 * `coatcheck serve` on `store` (default: a SQLite file of its own) with `env` added:
 * {url, apiKey (scope sessions), adminKey, store, port, stop(), output()}.
 */
export async function startService({ store, env = {}, port } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "coatcheck-node-"));
  const storeUrl = store ?? `sqlite:///${join(dir, "sessions.db")}`;
  const servicePort = port ?? (await freePort());
  const fullEnv = {
    ...process.env,
    COATCHECK_STORE: storeUrl,
    COATCHECK_API_KEY_CACHE: "0",
    PYTHONUNBUFFERED: "1",
    ...env,
  };
  const log = join(dir, "serve.log");
  const { openSync } = await import("node:fs");
  const out = openSync(log, "w");
  const child = spawn(PYTHON, ["-m", "coatcheck.cli", "serve", "--port", String(servicePort)], {
    cwd: dir,
    env: fullEnv,
    stdio: ["ignore", out, out],
  });
  let exited = false;
  child.once("exit", () => (exited = true));
  const url = `http://127.0.0.1:${servicePort}`;
  const output = () => readFile(log, "utf8").catch(() => "");
  try {
    await until("coatcheck serve", async () => {
      if (exited) throw new Error(`coatcheck serve exited:\n${await output()}`);
      return answers(`${url}/healthz`);
    });
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const adminKey = (await output()).match(/^(cc_[A-Za-z0-9_-]{43})$/m)?.[1] ?? null;
  const apiKey = (await coatcheckCli(["api-keys", "create", "express", "--scope", "sessions", "--store", storeUrl], fullEnv)).trim();
  return {
    url,
    apiKey,
    adminKey,
    store: storeUrl,
    port: servicePort,
    output,
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        await new Promise((r) => (exited ? r() : child.once("exit", r)));
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** POST to the service with a key, as the tests check what the store holds. */
export async function api(service, path, body, key = service.apiKey) {
  const response = await fetch(`${service.url}/v1/${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}
