// Holding a response until the session is committed.
//
// Node sends the headers with the first writeHead / write / end / flushHeaders. The
// session's commit is a call to the service, and its answer (a new token) must reach the
// browser in those very headers, so the first of these calls starts the commit and is
// queued with any that follow; when the commit is done, `before` sets the cookie, the
// originals are put back and the queue is replayed in order. A streamed body waits only
// for the one commit; nothing is written twice.

const METHODS = ["writeHead", "write", "end", "flushHeaders"];

/**
 * Hold `res` until `commit()` settles: on success `before()` runs and the app's calls go
 * out; on failure `fail(error)` answers instead (the app's queued output is dropped).
 */
export function hold(res, commit, before, fail) {
  const originals = Object.fromEntries(METHODS.map((name) => [name, res[name]]));
  const queue = [];
  let started = false;

  const restore = () => {
    for (const name of METHODS) res[name] = originals[name];
  };
  const replay = () => {
    restore();
    for (const [name, args] of queue) originals[name].apply(res, args);
  };
  const start = () => {
    if (started) return;
    started = true;
    let committing;
    try {
      committing = Promise.resolve(commit()); // its first steps run now: later changes are refused
    } catch (error) {
      committing = Promise.reject(error);
    }
    committing.then(
        () => {
          before(queue);
          replay();
        },
        (error) => {
          restore();
          fail(error);
        },
      );
  };

  res.writeHead = function writeHead(...args) {
    queue.push(["writeHead", args]);
    start();
    return this;
  };
  res.write = function write(...args) {
    queue.push(["write", args]);
    start();
    return true;
  };
  res.end = function end(...args) {
    queue.push(["end", args]);
    start();
    return this;
  };
  res.flushHeaders = function flushHeaders(...args) {
    queue.push(["flushHeaders", args]);
    start();
  };
}
