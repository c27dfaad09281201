// The widget's measurements in Chromium (issue 8, "Measure"), run by
// tests/bench (make bench), which starts the platform and the site and
// reads the last line, "BENCH <json>":
//
//   - what a visitor downloads from the platform: on the site's load (the
//     loader, the token) and from the launcher's click to an interactive
//     composer (the frame page, the app, the config, the visitor...), each
//     body raw, gzip -9 and as it came over the wire;
//   - the time from the click to an interactive composer, over
//     BENCH_OPENINGS openings by new visitors (cold cache) and as many by a
//     returning visitor (same browser, page reloaded);
//   - the round trip visitor -> person -> visitor in Chromium: the visitor
//     sends, a person's API client holding the conversation's stream
//     answers at once, the widget shows the answer (BENCH_ROUNDTRIPS, over
//     several visitors: one visitor's requests are rate limited);
//   - the same round trip between two API clients without a browser (the
//     visitor on the widget's routes and stream), the baseline.
//
// Every request to the platform must succeed: a run with a failed request
// reports it and exits non-zero (it measured nothing).
import assert from 'node:assert/strict';
import zlib from 'node:zlib';
import { SEL, env, launch, uid, api, inboxHead, waitVisitorMessage, frameOf, send, waitText, pctl } from './lib.mjs';

const OPENINGS = Number(process.env.BENCH_OPENINGS || 15);
const ROUNDTRIPS = Number(process.env.BENCH_ROUNDTRIPS || 60);
const PER_VISITOR = 20; // round trips per visitor: ~3 requests each, under the per-visitor limit of 120 a minute

const failures = [];
const out = { openings: OPENINGS, roundtrips: ROUNDTRIPS };

// watchRequests notes every request to the platform a page (and its
// frames) makes, and every failure: a failed or non-2xx request.
function watchRequests(page) {
  const list = [];
  page.on('requestfinished', async (req) => {
    if (!req.url().startsWith(env.platform)) return;
    const res = await req.response();
    const entry = { url: req.url().slice(env.platform.length), status: res.status(), at: Date.now(), type: res.headers()['content-type'] || '' };
    list.push(entry);
    if (res.status() >= 400) failures.push(`${req.method()} ${entry.url}: ${res.status()}`);
    if (entry.type.startsWith('text/event-stream')) return; // a held stream's body never ends
    try {
      const body = await res.body();
      const sizes = await req.sizes();
      entry.raw = body.length;
      entry.gzip = zlib.gzipSync(body, { level: 9 }).length;
      entry.wire = sizes.responseBodySize;
      entry.encoding = res.headers()['content-encoding'] || '';
    } catch (e) {
      entry.error = String(e);
    }
  });
  page.on('requestfailed', (req) => {
    if (!req.url().startsWith(env.platform)) return;
    const why = req.failure()?.errorText || '';
    // A stream cut when its page goes away is no failure.
    if (why === 'net::ERR_ABORTED' && /\/events\/stream/.test(req.url())) return;
    failures.push(`${req.method()} ${req.url().slice(env.platform.length)}: ${why}`);
  });
  return list;
}

// The frame notes when its composer becomes interactive, in the same
// clock as the page's (timeOrigin + now: both documents on one machine).
function composerClock() {
  if (!location.pathname.startsWith('/widget/frame/')) return;
  const check = () => {
    if (window.__composerReadyAt) return;
    const c = document.querySelector('[data-pommy=composer]');
    if (c && !c.disabled && c.offsetParent !== null) window.__composerReadyAt = performance.timeOrigin + performance.now();
  };
  new MutationObserver(check).observe(document, { subtree: true, childList: true, attributes: true });
  document.addEventListener('DOMContentLoaded', check);
}

// open clicks the launcher and returns the milliseconds from the click to
// an interactive composer, and the frame.
async function open(page) {
  await page.waitForSelector(SEL.launcher);
  const t0 = await page.evaluate((sel) => {
    const t = performance.timeOrigin + performance.now();
    document.querySelector(sel).click();
    return t;
  }, SEL.launcher);
  const frame = await frameOf(page);
  await frame.waitForFunction(() => window.__composerReadyAt > 0, null, { timeout: 15000 });
  const t1 = await frame.evaluate(() => window.__composerReadyAt);
  return { ms: t1 - t0, frame };
}

function sum(list, f) {
  return list.reduce((a, e) => a + (e[f] || 0), 0);
}

const browser = await launch();
console.log(`chromium ${browser.version()}; platform ${env.platform}; site ${env.site}`);

// 1. Bytes and the cold openings: each a new visitor in a new context.
const cold = [];
for (let i = 0; i < OPENINGS; i++) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(composerClock);
  const page = await ctx.newPage();
  const reqs = watchRequests(page);
  await page.goto(env.site + '/');
  await page.waitForSelector(SEL.launcher);
  await page.waitForLoadState('networkidle');
  const loaded = reqs.length;
  const { ms } = await open(page);
  cold.push(ms);
  if (i === 0) {
    await page.waitForLoadState('networkidle');
    const onLoad = reqs.slice(0, loaded);
    const onOpen = reqs.slice(loaded);
    out.requests = reqs.map(({ url, status, raw, gzip, wire, encoding, type }) => ({ url: url.replace(/([?&](v|tenant)=)[^&]+/g, '$1…').replace(/\/widget\/frame\/t_[a-z0-9]+/, '/widget/frame/{tenant}'), status, raw, gzip, wire, encoding, type }));
    out.onLoad = { n: onLoad.length, raw: sum(onLoad, 'raw'), gzip: sum(onLoad, 'gzip'), wire: sum(onLoad, 'wire') };
    out.onOpen = { n: onOpen.length, raw: sum(onOpen, 'raw'), gzip: sum(onOpen, 'gzip'), wire: sum(onOpen, 'wire') };
    for (const r of reqs) if (r.error) failures.push(`reading ${r.url}: ${r.error}`);
  }
  await ctx.close();
}
out.coldMs = cold;
console.log(`${cold.length} openings by new visitors done`);

// 2. A returning visitor: the same browser (cache, storage), the page
// reloaded, the widget opened again.
const warm = [];
{
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(composerClock);
  const page = await ctx.newPage();
  watchRequests(page);
  await page.goto(env.site + '/');
  await open(page);
  for (let i = 0; i < OPENINGS; i++) {
    await page.reload();
    await page.waitForLoadState('networkidle');
    warm.push((await open(page)).ms);
  }
  await ctx.close();
}
out.warmMs = warm;
console.log(`${warm.length} openings by a returning visitor done`);

// A person's API client holding a conversation's stream (people's SSE),
// answering each visitor message "rt-…" with "re: rt-…" at once.
function responder(conv, after) {
  const ac = new AbortController();
  const done = (async () => {
    const res = await fetch(`${env.platform}/v1/conversations/${conv}/events/stream?after=${after}`, {
      headers: { Cookie: `__Host-pommy_session=${env.session}`, 'Sec-Fetch-Site': 'same-origin', Accept: 'text/event-stream' }, signal: ac.signal,
    });
    assert.equal(res.status, 200, 'the person\'s stream');
    await readSSE(res, async (type, data) => {
      if (type === 'message.created' && data.data?.author_type === 'visitor' && data.data.text?.startsWith('rt-')) {
        await api('POST', `/v1/conversations/${conv}/messages`, { body: { text: 're: ' + data.data.text }, want: 201 })
          .catch((e) => failures.push(`the person's reply: ${e.message}`));
      }
    });
  })().catch((e) => { if (e.name !== 'AbortError') failures.push(`the person's stream: ${e.message}`); });
  return { stop: () => { ac.abort(); return done; } };
}

// readSSE calls on(type, event) for each event frame of an SSE body.
async function readSSE(res, on) {
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = 'message', data = '';
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) type = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).trim();
      }
      if (type === 'error') throw new Error(`stream error: ${data}`);
      if (type === 'ping' || !data) continue;
      await on(type, JSON.parse(data));
    }
  }
}

// 3. The round trip in Chromium, PER_VISITOR round trips a visitor.
const rtBrowser = [];
while (rtBrowser.length < ROUNDTRIPS) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addInitScript(composerClock);
  const page = await ctx.newPage();
  watchRequests(page);
  await page.goto(env.site + '/');
  const { frame } = await open(page);
  const head = await inboxHead();
  const first = `round trips ${uid()}`;
  await send(frame, first);
  const { conv } = await waitVisitorMessage(head, first);
  const msgs = await api('GET', `/v1/conversations/${conv}/messages`, { want: 200 });
  const r = responder(conv, msgs.messages[msgs.messages.length - 1].seq);
  for (let i = 0; i < PER_VISITOR && rtBrowser.length < ROUNDTRIPS; i++) {
    const text = `rt-${uid()}-${i}`;
    const ms = await frame.evaluate(async ([t, sel]) => {
      const c = document.querySelector(sel.composer);
      const seen = new Promise((resolve, reject) => {
        const find = () => [...document.querySelectorAll(sel.text)].some((el) => el.textContent === 're: ' + t);
        const mo = new MutationObserver(() => { if (find()) { mo.disconnect(); resolve(performance.now()); } });
        mo.observe(document.body, { subtree: true, childList: true, characterData: true });
        setTimeout(() => { mo.disconnect(); reject(new Error('no answer in 15 s')); }, 15000);
      });
      const t0 = performance.now();
      c.value = t;
      c.dispatchEvent(new Event('input', { bubbles: true }));
      document.querySelector(sel.send).click();
      return (await seen) - t0;
    }, [text, { composer: SEL.composer, send: SEL.send, text: `${SEL.message} ${SEL.text}` }]);
    rtBrowser.push(ms);
  }
  await r.stop();
  await ctx.close();
  console.log(`${rtBrowser.length} round trips in Chromium done`);
}
out.browserRtMs = rtBrowser;
await browser.close();

// 4. The baseline: the visitor as an API client (the widget's routes and
// the visitor's stream), the same person's client answering.
const rtAPI = [];
while (rtAPI.length < ROUNDTRIPS) {
  const tok = await fetch(`${env.platform}/v1/widget/token?tenant=${env.tenant}`, { headers: { Origin: env.site } });
  assert.equal(tok.status, 200, 'the widget token');
  const wt = (await tok.json()).token;
  const vis = await fetch(`${env.platform}/v1/widget/visitors`, { method: 'POST', headers: { 'Pommy-Widget': wt, 'Content-Type': 'application/json' }, body: '{}' });
  assert.equal(vis.status, 201, 'the visitor');
  const vt = (await vis.json()).visitor_token;
  const vh = { 'Pommy-Widget': wt, 'Pommy-Visitor': vt };
  const start = await fetch(`${env.platform}/v1/widget/conversations`, {
    method: 'POST', headers: { ...vh, 'Content-Type': 'application/json', 'Idempotency-Key': 'k-' + uid() + uid() }, body: JSON.stringify({ text: 'round trips over the API' }),
  });
  assert.equal(start.status, 201, `starting a conversation: ${await start.clone().text()}`);
  const started = await start.json();
  const conv = started.conversation.id;
  const r = responder(conv, started.conversation.last_seq);
  const waiting = new Map();
  const ac = new AbortController();
  const stream = (async () => {
    const res = await fetch(`${env.platform}/v1/widget/conversations/${conv}/events/stream?after=${started.conversation.last_seq}`, { headers: { ...vh, Accept: 'text/event-stream' }, signal: ac.signal });
    assert.equal(res.status, 200, 'the visitor\'s stream');
    await readSSE(res, (type, ev) => {
      const t = ev.data?.text;
      if (type === 'message.created' && t?.startsWith('re: ') && waiting.has(t.slice(4))) waiting.get(t.slice(4))(performance.now());
    });
  })().catch((e) => { if (e.name !== 'AbortError') failures.push(`the visitor's stream: ${e.message}`); });
  for (let i = 0; i < PER_VISITOR && rtAPI.length < ROUNDTRIPS; i++) {
    const text = `rt-${uid()}-${i}`;
    const seen = new Promise((resolve, reject) => {
      waiting.set(text, resolve);
      setTimeout(() => reject(new Error('no answer in 15 s')), 15000);
    });
    const t0 = performance.now();
    const res = await fetch(`${env.platform}/v1/widget/conversations/${conv}/messages`, {
      method: 'POST', headers: { ...vh, 'Content-Type': 'application/json', 'Idempotency-Key': 'k-' + uid() + uid() }, body: JSON.stringify({ text }),
    });
    if (res.status !== 201) failures.push(`the visitor's message over the API: ${res.status} ${await res.text()}`);
    await res.arrayBuffer().catch(() => {});
    rtAPI.push((await seen) - t0);
  }
  ac.abort();
  await stream;
  await r.stop();
  console.log(`${rtAPI.length} round trips between API clients done`);
}
out.apiRtMs = rtAPI;

out.failures = failures;
const p = (xs, q) => Math.round(pctl(xs, q) * 10) / 10;
console.log(`bytes on load ${JSON.stringify(out.onLoad)}; on open ${JSON.stringify(out.onOpen)}`);
console.log(`open: cold p50 ${p(cold, 50)} ms, warm p50 ${p(warm, 50)} ms; round trip p50/p99: browser ${p(rtBrowser, 50)}/${p(rtBrowser, 99)} ms, API ${p(rtAPI, 50)}/${p(rtAPI, 99)} ms`);
for (const f of failures) console.log(`FAILED: ${f}`);
console.log('BENCH ' + JSON.stringify(out));
process.exit(failures.length ? 1 : 0);
