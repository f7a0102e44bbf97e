// Types of coatcheck.js, the browser side of a coatcheck session.

/** A consent category. "necessary" needs no consent; any other needs the user's. */
export type Category = "necessary" | "functional" | "analytics" | "marketing" | (string & {});

/** A JSON value, as the storage wrappers keep it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** localStorage or sessionStorage, kept per signed-in user and consent category. */
export interface CoatcheckStorage {
  /** The value stored under `key` for the signed-in user, or null. */
  get(key: string): Json;
  /** Store `value` in `category` (default "functional"); false when refused: no consent
   * for the category, the session has ended, no storage, over quota, or not JSON. */
  set(key: string, value: Json, category?: Category): boolean;
  remove(key: string): void;
  /** The signed-in user's keys. */
  keys(): string[];
  /** Remove every key of the signed-in user. */
  clear(): void;
}

export interface Options {
  /** Who is signed in (data-coatcheck-user); "" for nobody. */
  user?: string;
  /** Categories the user consented to (data-coatcheck-consent). */
  consent?: Category[];
  /** Where the tab goes when the session ends (data-coatcheck-sign-in); default "/". */
  signIn?: string;
  /** The keep-alive (data-coatcheck-keep-alive); default "/coatcheck/keep-alive". */
  keepAlive?: string;
  /** Seconds before the deadline that the warning shows (data-coatcheck-warn); default 60. */
  warn?: number;
  /** The CSRF token, when the page has no <meta name="csrf-token"> nor csrf_token field. */
  csrf?: string;
  /** Request header of the CSRF token; default "X-CSRF-Token". */
  header?: string;
  /** Form field of the CSRF token; default "csrf_token". */
  field?: string;
  /** false: no built-in warning (handle the "warn" event instead). */
  ui?: boolean;
  /** The warning's text for the seconds left. */
  text?: (seconds: number) => string;
  /** The label of the warning's button; default "Stay signed in". */
  stay?: string;
}

/** What each event hands its handlers. A handler that returns false stops the default:
 * the built-in warning ("warn"), leaving for the sign-in page (the ends), the reload
 * ("signin"). */
export interface Events {
  /** The warning starts: seconds left. */
  warn: number;
  /** A later deadline is known: ms since the epoch, by this browser's clock. */
  deadline: number;
  /** Another tab started signed in as this user. */
  signin: string;
  signout: undefined;
  expired: undefined;
  revoked: undefined;
  /** The categories consented to now. */
  consent: Category[];
}

export interface Coatcheck {
  readonly storage: { readonly local: CoatcheckStorage; readonly session: CoatcheckStorage };
  readonly consent: {
    get(): Category[];
    /** Record a consent change here and in every other tab; withdrawn categories are wiped. */
    set(categories: Category[]): void;
  };
  /** The signed-in user, or null. */
  readonly user: string | null;
  /** The session's deadline (ms since the epoch, by this browser's clock), once known. */
  readonly deadline: number | null;
  /** Listen to an event; returns a function that stops listening. */
  on<K extends keyof Events>(type: K, handler: (detail: Events[K]) => unknown): () => void;
  /** Change options after the start (texts, warn, signIn, ...). */
  configure(options: Options): Coatcheck;
  /** What "Stay signed in" does: POST the keep-alive; true when the session was extended. */
  keepAlive(): Promise<boolean>;
  /** Ask the server (a GET of the keep-alive, which extends nothing) whether the session
   * still stands; the tab ends if it does not. */
  check(): Promise<void>;
}

/** The instance for a window (one per window: a second call configures the first). */
export function create(window?: Window, options?: Options): Coatcheck;

/** The page's instance, started from the data-coatcheck-* attributes of <html>. */
export const coatcheck: Coatcheck;
export default coatcheck;
