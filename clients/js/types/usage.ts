// Compiled by test/types.test.mjs with tsc --strict: the uses a page makes of coatcheck.js
// type-check against coatcheck.d.ts, and the misuses marked @ts-expect-error do not.
import coatcheck, { create, type Coatcheck, type Json } from "../../../src/coatcheck/static/coatcheck.js";

const cc: Coatcheck = coatcheck;
const ok: boolean = cc.storage.local.set("prefs", { theme: "dark", sizes: [1, 2] });
const back: Json = cc.storage.session.get("prefs");
cc.storage.local.set("seen", 1, "analytics");
const keys: string[] = cc.storage.local.keys();
cc.consent.set(["functional"]);
const stop: () => void = cc.on("warn", (seconds: number) => seconds > 10);
cc.on("consent", (categories) => categories.includes("analytics"));
cc.on("expired", () => false);
cc.configure({ warn: 120, text: (s) => `${s}`, signIn: "/login" }).keepAlive().then((x: boolean) => x);
const other: Coatcheck = create(window, { user: "alice", consent: ["functional"] });
const deadline: number | null = other.deadline;

// @ts-expect-error: values are JSON
cc.storage.local.set("when", new Map());
// @ts-expect-error: no such event
cc.on("logout", () => {});
// @ts-expect-error: warn is seconds
cc.configure({ warn: "soon" });
// @ts-expect-error: user is read-only
cc.user = "mallory";

export { back, deadline, keys, ok, stop };
