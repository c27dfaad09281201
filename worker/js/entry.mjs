// The edge home's entry module: the worker's fetch handler and the Durable
// Object class RealtimeTopic that holds stream connections (docs/realtime.md,
// "The edge home").
//
// Why JavaScript: the application is Go (syumai/workers, worker/main.go), and
// syumai/workers can neither define a Durable Object class nor keep a
// connection open after its Go runtime ends (it starts a fresh runtime per
// event). So this file does only what Go cannot: hold connections, and
// re-run the Go application on a wake-up. It decides nothing. Who may
// subscribe, what an event holds, where the cursor is and whether a stream
// must end are all answers of the Go application, re-asked at every poll
// (protocol: docs/realtime.md §2). The build copies this file next to
// syumai's generated worker.mjs (worker/worker.mk).

import { DurableObject } from "cloudflare:workers";
import goWorker from "./worker.mjs";

// Headers of the hand-off between the application and its home; the same
// names as storage/realtime.go.
const PREFIX = "pommy-stream-";
const TOPIC = "Pommy-Stream-Topic";
const CURSOR = "Pommy-Stream-Cursor";
const MODE = "Pommy-Stream-Mode";
const WAIT = "Pommy-Stream-Wait";
const MORE = "Pommy-Stream-More";
const POLL = "Pommy-Stream-Poll";

// Defaults of the two knobs; vars POMMY_STREAM_HEARTBEAT_MS and
// POMMY_STREAM_MAX override them (the tests shorten the heartbeat).
const HEARTBEAT_MS = 15000;
// Streams one topic's object holds. Every wake-up re-runs the Go
// application once per held stream, so this bounds the work of a publish
// as well as the object's memory.
const MAX_STREAMS = 1000;
// Go runs at once inside one object: each is a fresh Go runtime of about
// 5 MiB, and an isolate has 128 MB.
const POLL_CONCURRENCY = 4;
// A wake-up that reached the object less than this before the Go answer was
// asked for may have come after the application read the log: the object
// polls once at once rather than wait for the next wake-up. The margin
// covers clock skew between the machine of the request and the object's.
const RACE_MARGIN_MS = 2000;
// Heartbeats in a row that find a client's previous chunk still unread; a
// client that reads nothing for this long is dropped (it reconnects with
// Last-Event-ID and misses nothing) instead of holding a place.
const MAX_STALLED = 4;
// The longest long-poll wait; the application clamps ?wait= to 1..30 s.
const MAX_WAIT_S = 30;
// The object is only reached through its binding (never by a client), so
// its URLs are internal: this host name is reserved and never resolves.
const DO_ORIGIN = "https://realtime.invalid";

const encoder = new TextEncoder();

function hasStreamHeader(headers) {
  for (const k of headers.keys()) if (k.startsWith(PREFIX)) return true;
  return false;
}

function withoutStreamHeaders(headers) {
  const h = new Headers(headers);
  for (const k of [...h.keys()]) if (k.startsWith(PREFIX)) h.delete(k);
  return h;
}

// clean returns a response the client may see: no hand-off headers.
function clean(res) {
  if (!hasStreamHeader(res.headers)) return res;
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: withoutStreamHeaders(res.headers) });
}

function errorJSON(code, message) {
  return JSON.stringify({ error: { code, message } });
}

function jsonError(status, code, message) {
  return new Response(errorJSON(code, message), {
    status,
    headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
  });
}

// The cursor a request asks from, as the application reads it: an SSE
// resume's Last-Event-ID first, else ?after=, else 0.
function requestCursor(req) {
  return req.headers.get("Last-Event-ID") ?? new URL(req.url).searchParams.get("after") ?? "0";
}

// A cursor is a decimal sequence number (docs/realtime.md).
const DECIMAL = /^[0-9]+$/;

// sameCursor compares two decimal cursors by value ("007" is 7).
function sameCursor(a, b) {
  const norm = (c) => c.replace(/^0+(?=[0-9])/, "");
  return DECIMAL.test(a) && DECIMAL.test(b) && norm(a) === norm(b);
}

export default {
  async fetch(request, env, ctx) {
    // Only the home sets Pommy-Stream-* request headers: one a client sends
    // must not reach the application (a forged Pommy-Stream-Poll would skip
    // its audit of the subscription).
    if (hasStreamHeader(request.headers)) {
      request = new Request(request, { headers: withoutStreamHeaders(request.headers) });
    }
    const since = Date.now();
    const res = await goWorker.fetch(request, env, ctx);
    const topic = res.headers.get(TOPIC);
    if (topic === null) return clean(res);
    return handOff(request, res, topic, env, since);
  },
  // Cron runs and queue batches go straight to Go.
  scheduled: goWorker.scheduled,
  queue: goWorker.queue,
};

// handOff gives a stream answer's connection to the topic's object.
async function handOff(request, res, topic, env, since) {
  const mode = res.headers.get(MODE);
  const cursor = res.headers.get(CURSOR) ?? "0";
  if (mode === "longpoll" && !sameCursor(cursor, requestCursor(request))) {
    return clean(res); // it has events: answered at once
  }
  if (request.method === "HEAD") {
    return clean(res); // headers only: nothing to hold
  }
  if (request.method !== "GET" || (mode !== "sse" && mode !== "longpoll") || !env.REALTIME) {
    // The application asked for something the home cannot hold: say so
    // rather than hand out a stream that never wakes.
    await res.body?.cancel();
    console.error(`pommy-edge: refusing to hold a stream (method ${request.method}, mode ${mode}, REALTIME bound: ${!!env.REALTIME})`);
    return jsonError(500, "internal", "this stream cannot be held by the edge home");
  }
  const spec = {
    method: request.method,
    url: request.url,
    headers: [...request.headers],
    status: res.status,
    responseHeaders: [...withoutStreamHeaders(res.headers)].filter(([k]) => k !== "content-length"),
    body: await res.text(),
    cursor,
    more: res.headers.get(MORE) === "1",
    mode,
    wait: Number(res.headers.get(WAIT) ?? "0"),
    since,
  };
  const stub = env.REALTIME.get(env.REALTIME.idFromName(topic));
  return stub.fetch(DO_ORIGIN + "/hold", { method: "POST", body: JSON.stringify(spec) });
}

// RealtimeTopic holds the streams of one topic (one object per topic name:
// idFromName(topic)). POST /publish is a wake-up from Go
// (worker/realtime); POST /hold comes from handOff above. Its state is in
// memory only: if the object is reset, its connections end and clients
// resume from their Last-Event-ID, losing nothing (events live in SQL).
export class RealtimeTopic extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.streams = new Set(); // held SSE connections
    this.waiters = new Set(); // held long-polls
    this.lastWake = 0; // when the last wake-up arrived (Date.now())
    this.heartbeat = null;
    this.heartbeatMs = positive(env.POMMY_STREAM_HEARTBEAT_MS, HEARTBEAT_MS);
    this.max = positive(env.POMMY_STREAM_MAX, MAX_STREAMS);
    this.running = 0;
    this.queue = [];
    // What syumai's Go glue expects as the execution context.
    this.goCtx = { waitUntil: (p) => ctx.waitUntil(p), passThroughOnException() {} };
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (request.method === "POST" && path === "/publish") {
      this.wake();
      return new Response(null, { status: 204 });
    }
    if (request.method === "POST" && path === "/hold") {
      const spec = await request.json();
      return spec.mode === "sse" ? this.holdSSE(spec) : this.holdLongPoll(spec);
    }
    return jsonError(404, "not_found", "no such realtime operation");
  }

  held() {
    return this.streams.size + this.waiters.size;
  }

  // recentWake: a wake-up may have come between the application's read and
  // this hold (RACE_MARGIN_MS).
  recentWake(spec) {
    return this.lastWake > 0 && this.lastWake >= spec.since - RACE_MARGIN_MS;
  }

  wake() {
    this.lastWake = Date.now();
    for (const s of this.streams) this.poll(s);
    for (const w of this.waiters) w.wake();
  }

  holdSSE(spec) {
    const { readable, writable } = new TransformStream();
    const s = { spec, cursor: spec.cursor, writer: writable.getWriter(), polling: false, again: false, closed: false, stalled: 0 };
    const headers = new Headers(spec.responseHeaders);
    this.write(s, spec.body);
    if (this.held() >= this.max) {
      this.fail(s, errorJSON("too_many_streams", `this topic holds its maximum of ${this.max} streams; reconnect later`));
    } else {
      this.streams.add(s);
      this.startHeartbeat();
      // More: the first answer was one page of several.
      if (spec.more || this.recentWake(spec)) this.poll(s);
    }
    return new Response(readable, { status: spec.status, headers });
  }

  // write queues a chunk; writes are kept in order by the stream itself. A
  // write that fails means the client went away.
  write(s, text) {
    if (s.closed || text === "") return Promise.resolve();
    return s.writer.write(typeof text === "string" ? encoder.encode(text) : text).catch(() => this.drop(s));
  }

  // poll re-runs the stream's request until the application has no more to
  // give; a wake-up during a poll becomes one more poll (coalescing).
  async poll(s) {
    if (s.closed) return;
    if (s.polling) {
      s.again = true;
      return;
    }
    s.polling = true;
    try {
      do {
        s.again = false;
        const r = await this.invoke(s.spec, s.cursor);
        if (s.closed) return;
        if (r.status !== 200) {
          this.fail(s, oneLine(r.status, r.body));
          return;
        }
        const cursor = r.headers.get(CURSOR) ?? s.cursor;
        if (!DECIMAL.test(cursor)) {
          // Never sent back as Last-Event-ID: the stream ends, and the
          // client resumes from the last id it got.
          console.error(`pommy-edge: a stream poll answered cursor ${JSON.stringify(cursor)}; stream ended`);
          this.fail(s, errorJSON("internal", "the stream's poll was malformed; reconnect with Last-Event-ID"));
          return;
        }
        s.cursor = cursor;
        if (r.headers.get(MORE) === "1") s.again = true;
        // Awaiting the write holds this stream's polls to its client's
        // pace: a slow reader gets fewer, larger answers, not a queue.
        await this.write(s, new Uint8Array(r.body));
      } while (s.again && !s.closed);
    } catch (e) {
      console.error(`pommy-edge: stream poll failed: ${e}`);
      this.fail(s, errorJSON("internal", "the stream could not be polled; reconnect with Last-Event-ID"));
    } finally {
      s.polling = false;
    }
  }

  // invoke runs the Go application on the held request, as a poll: the
  // same method, URL and client headers, plus Pommy-Stream-Poll and the
  // cursor. The body is read inside the slot so that the Go runtime ends
  // before another starts.
  invoke(spec, cursor) {
    const headers = new Headers(spec.headers);
    headers.set(POLL, "1");
    headers.set("Last-Event-ID", cursor);
    return this.withSlot(async () => {
      const res = await goWorker.fetch(new Request(spec.url, { method: spec.method, headers }), this.env, this.goCtx);
      return { status: res.status, headers: res.headers, body: await res.arrayBuffer() };
    });
  }

  async withSlot(fn) {
    while (this.running >= POLL_CONCURRENCY) await new Promise((r) => this.queue.push(r));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }

  // fail ends a stream with the application's error (protocol §2.4).
  fail(s, json) {
    if (s.closed) return;
    this.write(s, `event: error\ndata: ${json}\n\n`);
    s.closed = true;
    this.streams.delete(s);
    s.writer.close().catch(() => {});
    this.stopHeartbeatIfIdle();
  }

  drop(s) {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s);
    s.writer.abort().catch(() => {});
    this.stopHeartbeatIfIdle();
  }

  startHeartbeat() {
    if (this.heartbeat !== null) return;
    this.heartbeat = setInterval(() => {
      const frame = `event: ping\ndata: {"t":${Date.now()}}\n\n`;
      for (const s of this.streams) {
        // A client that has not taken the last chunk gets no more pings.
        if (s.writer.desiredSize !== null && s.writer.desiredSize <= 0) {
          if (++s.stalled >= MAX_STALLED) this.drop(s);
          continue;
        }
        s.stalled = 0;
        this.write(s, frame);
      }
    }, this.heartbeatMs);
  }

  stopHeartbeatIfIdle() {
    if (this.streams.size === 0 && this.heartbeat !== null) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  // holdLongPoll waits for a wake-up (at most the application's echoed
  // wait) and answers the first re-poll that has events, or an error; a
  // re-poll with nothing new (an early poll for a recent wake-up, or a
  // wake-up for an event this client may not see) goes back to waiting.
  // With nothing in time it answers the first, empty, answer.
  holdLongPoll(spec) {
    const first = () => new Response(spec.body, { status: spec.status, headers: new Headers(spec.responseHeaders) });
    if (this.held() >= this.max) {
      return jsonError(503, "too_many_streams", `this topic holds its maximum of ${this.max} streams; retry later`);
    }
    const wait = Math.min(Number.isFinite(spec.wait) ? spec.wait : 0, MAX_WAIT_S);
    if (wait <= 0) return first();
    return new Promise((resolve) => {
      const w = { polling: false, again: false };
      let done = false;
      const finish = (res) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(res);
      };
      // An answer lost to the deadline loses nothing: the client's cursor
      // has not moved, and its next request reads the same events.
      const timer = setTimeout(() => finish(first()), wait * 1000);
      w.wake = async () => {
        if (w.polling) {
          w.again = true;
          return;
        }
        w.polling = true;
        try {
          do {
            w.again = false;
            const r = await this.invoke(spec, spec.cursor);
            if (r.status !== 200 || !sameCursor(r.headers.get(CURSOR) ?? spec.cursor, spec.cursor)) {
              finish(new Response(r.body, { status: r.status, headers: withoutStreamHeaders(r.headers) }));
              return;
            }
          } while (w.again && !done);
        } catch (e) {
          console.error(`pommy-edge: long-poll failed: ${e}`);
          finish(jsonError(500, "internal", "the long-poll could not be answered; retry"));
        } finally {
          w.polling = false;
        }
      };
      this.waiters.add(w);
      if (this.recentWake(spec)) w.wake();
    });
  }
}

function positive(v, dflt) {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : dflt;
}

// oneLine makes a poll's error answer an SSE data line: the application's
// JSON error body re-encoded on one line, or, when it is not JSON, an error
// naming the status.
function oneLine(status, body) {
  try {
    const v = JSON.parse(new TextDecoder().decode(body));
    if (v && typeof v === "object") return JSON.stringify(v);
  } catch {}
  return errorJSON("stream_failed", `the stream's poll answered ${status}`);
}
