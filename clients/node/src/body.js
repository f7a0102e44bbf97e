// Reading a form body for its CSRF field without taking it from the app.
//
// The Python edges buffer the body and replay it to the app. Node's request is a stream
// that can be read once, so the bytes are read with `read()` and, once the whole body is
// in, put back with `unshift()` in the same tick: the stream has seen its end but not yet
// emitted 'end', so whatever reads it next (express.urlencoded(), multer, busboy) gets the
// same body and the same 'end'. A body declared or found longer than the limit is never
// replayed: the request is refused.

/** The whole body (a Buffer), null when it is longer than `limit`, or undefined when it
 * cannot be read (the client went away, or something already read it). */
export function readBody(req, limit) {
  const declared = Number.parseInt(req.headers["content-length"] ?? "", 10);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(null);
  if (req.readableEnded) return Promise.resolve(undefined);
  if (req.complete && req.readableLength === 0) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve) => {
    const chunks = [];
    let size = 0;
    const done = (value) => {
      req.removeListener("readable", onReadable);
      req.removeListener("end", onEnd);
      req.removeListener("error", onError);
      req.removeListener("aborted", onError);
      resolve(value);
    };
    function onReadable() {
      let chunk;
      while ((chunk = req.read()) !== null) {
        size += chunk.length;
        if (size > limit) return done(null);
        chunks.push(chunk);
      }
      if (req.complete) {
        const body = Buffer.concat(chunks);
        done(body);
        if (body.length > 0) req.unshift(body); // before 'end' is emitted: the app reads it all
      }
    }
    function onEnd() {
      done(undefined); // only when the end came before the whole body was in hand
    }
    function onError() {
      done(undefined);
    }
    req.on("readable", onReadable);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("aborted", onError);
  });
}
