// Shared by the widget's browser scenarios (widget.mjs) and the bench's
// measurements (bench.mjs): where things are (from the environment the Go
// side sets), the widget's selectors, the tenant's people through the API,
// and a PNG made on the spot.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: tests/browser scripts are run by the Go tests (tests/e2e/widget_browser_test.go, tests/bench)`);
  return v;
}

export const env = {
  chromium: process.env.POMMY_CHROMIUM || '/usr/bin/chromium',
  platform: need('POMMY_PLATFORM'), // http://127.0.0.1:PORT
  site: need('POMMY_SITE'), // the tenant's website, an allowed origin
  unlisted: process.env.POMMY_UNLISTED || '', // a website on an origin never listed
  tenant: need('POMMY_TENANT'),
  key: need('POMMY_KEY'),
  session: need('POMMY_SESSION'),
  owner: process.env.POMMY_OWNER || '',
  screenshots: process.env.POMMY_SCREENSHOTS || 'build/screenshots',
};

// The widget's hooks: attributes the ui writes for tests and tools, never
// classes (ui/widget/app.js and loader.js set them as data-pommy attributes).
export const SEL = {
  launcher: '#pommy-launcher',
  frame: 'iframe#pommy-frame',
  composer: '[data-pommy=composer]',
  send: '[data-pommy=send]',
  close: '[data-pommy=close]',
  file: 'input[type=file][data-pommy=file]',
  messages: '[data-pommy=messages]',
  message: '[data-pommy=message]',
  author: '[data-pommy=author]',
  text: '[data-pommy=text]',
  attachment: '[data-pommy=attachment]',
  fileName: '[data-pommy=file-name]',
  preview: 'img[data-pommy=preview]',
  connection: '[data-pommy=connection]',
  typing: '[data-pommy=typing]',
  title: '[data-pommy=title]',
  prechat: 'form[data-pommy=prechat]',
};

// Playwright starts Chromium with ThirdPartyStoragePartitioning disabled
// (its issue 32230), which makes localStorage throw in a cross-site iframe:
// the widget would forget its visitor on reload, unlike in Chrome, which
// partitions third-party storage by top-level site and lets the widget use
// it. A later --disable-features replaces Playwright's list, so this is
// that list (playwright-core 1.65.1, chromiumSwitches.ts) without it.
const disabledFeatures = ['AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable', 'LensOverlay', 'MediaRouter', 'PaintHolding', 'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin', 'OptimizationHints', 'NetworkTimeServiceQuerying', 'AimEnabled', 'PreconnectToSearch'];

export async function launch() {
  // --no-sandbox: the tests run as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: env.chromium, args: ['--no-sandbox', '--disable-features=' + disabledFeatures.join(',')] });
}

export function uid() {
  return randomBytes(4).toString('hex');
}

// api calls the platform as the tenant's owner (the session cookie, as
// the console would) or as an integration (the API key). It returns the
// parsed body and fails on a status other than want.
export async function api(method, path, { body, as = 'person', session = env.session, want, headers = {}, raw = false } = {}) {
  const h = { ...headers };
  if (as === 'person') {
    h.Cookie = `__Host-pommy_session=${session}`;
    h['Sec-Fetch-Site'] = 'same-origin';
  } else {
    h.Authorization = `Bearer ${env.key}`;
  }
  if (body !== undefined) h['Content-Type'] = 'application/json';
  if (method === 'POST' && /\/messages$|^\/v1\/conversations$/.test(path) && !h['Idempotency-Key']) h['Idempotency-Key'] = 'k-' + uid() + uid();
  const res = await fetch(env.platform + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const buf = Buffer.from(await res.arrayBuffer());
  if (want !== undefined && res.status !== want) {
    throw new Error(`${method} ${path}: status ${res.status}, want ${want}: ${buf.toString().slice(0, 300)}`);
  }
  if (raw) return { status: res.status, headers: res.headers, body: buf };
  return buf.length ? JSON.parse(buf.toString()) : null;
}

// inboxHead is the tenant's inbox feed cursor now.
export async function inboxHead() {
  let after = 0;
  for (;;) {
    const r = await api('GET', `/v1/inbox/events?after=${after}`, { want: 200 });
    if (r.cursor === after) return after;
    after = r.cursor;
  }
}

// waitVisitorMessage long-polls the inbox feed from after until a visitor's
// message whose text is text arrives, as a person's inbox would; it
// returns the conversation id and the message.
export async function waitVisitorMessage(after, text, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  const seen = new Set();
  while (Date.now() < deadline) {
    const r = await api('GET', `/v1/inbox/events?after=${after}&wait=5`, { want: 200 });
    for (const ev of r.events) {
      if (ev.type !== 'message.created' || ev.data.author_type !== 'visitor') continue;
      if (seen.has(ev.data.message_id)) continue;
      seen.add(ev.data.message_id);
      const msgs = await api('GET', `/v1/conversations/${ev.conversation_id}/messages`, { want: 200 });
      const m = msgs.messages.find((x) => x.id === ev.data.message_id);
      if (m && m.text === text) return { conv: ev.conversation_id, msg: m, cursor: ev.seq };
    }
    after = r.cursor;
  }
  throw new Error(`the tenant's people never saw the visitor's message ${JSON.stringify(text)}`);
}

// reply sends a person's message to a conversation (by default as the
// owner; session: another person's).
export async function reply(conv, text, session = env.session) {
  return api('POST', `/v1/conversations/${conv}/messages`, { body: { text }, session, want: 201 });
}

// newPerson invites a person with this display name as an agent and has
// them accept; it returns their session token.
export async function newPerson(name) {
  const email = `agent-${uid()}@example.com`;
  const inv = await api('POST', '/v1/invitations', { body: { email, role: 'agent' }, want: 201 });
  const res = await fetch(env.platform + '/v1/invitations/accept', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: inv.token, password: 'correct horse battery staple', name }),
  });
  assert.equal(res.status, 201, `accepting the invitation: ${await res.clone().text()}`);
  const ck = res.headers.getSetCookie().find((c) => c.startsWith('__Host-pommy_session='));
  assert.ok(ck, 'no session cookie');
  return ck.split(';')[0].split('=')[1];
}

// messagesOf is the conversation as the tenant's people read it.
export async function messagesOf(conv) {
  const out = [];
  let after = 0;
  for (;;) {
    const r = await api('GET', `/v1/conversations/${conv}/messages?after=${after}`, { want: 200 });
    out.push(...r.messages);
    if (!r.next) return out;
    after = r.next;
  }
}

// Errors the pages must never show: a dialog (alert() from markup run as
// code), an uncaught exception, a CSP refusal.
export function watch(page, label = '') {
  const problems = [];
  page.on('dialog', async (d) => {
    problems.push(`${label}a dialog opened (${d.type()}: ${d.message()}): markup ran as code`);
    await d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`${label}uncaught exception: ${e.message}`));
  page.on('console', (m) => {
    const t = m.text();
    if (/Content Security Policy|Refused to/i.test(t)) problems.push(`${label}CSP: ${t}`);
  });
  return {
    problems,
    check() {
      assert.deepEqual(problems, [], 'the pages had problems');
    },
  };
}

// frameOf waits for the widget's iframe and returns its Frame.
export async function frameOf(page) {
  const el = await page.waitForSelector(SEL.frame, { state: 'attached', timeout: 15000 });
  const f = await el.contentFrame();
  assert.ok(f, 'the widget iframe has no frame');
  return f;
}

// openWidget loads the site, opens the widget with the launcher and waits
// for an interactive composer; it returns the widget's frame.
export async function openWidget(page, url = env.site + '/') {
  await page.goto(url);
  await page.click(SEL.launcher, { timeout: 15000 });
  const f = await frameOf(page);
  await f.waitForSelector(`${SEL.composer}:not([disabled])`, { state: 'visible', timeout: 15000 });
  return f;
}

// send types a message in the composer and sends it with Enter.
export async function send(frame, text) {
  const c = frame.locator(SEL.composer);
  await c.fill(text);
  await c.press('Enter');
}

// messagesIn reads the widget's message list: author, seq, text, name.
export async function messagesIn(frame) {
  return frame.$$eval(`${SEL.message}`, (els, sel) =>
    els.map((el) => ({
      author: el.getAttribute('data-author'),
      seq: el.hasAttribute('data-seq') ? Number(el.getAttribute('data-seq')) : null,
      state: el.getAttribute('data-state'),
      name: el.querySelector(sel.author)?.textContent ?? '',
      text: el.querySelector(sel.text)?.textContent ?? '',
    })), { author: SEL.author, text: SEL.text });
}

// waitText waits for a message with exactly this text in the widget.
export async function waitText(frame, text, timeout = 15000) {
  await frame.waitForFunction(([sel, t]) =>
    [...document.querySelectorAll(sel)].some((el) => el.textContent === t), [SEL.message + ' ' + SEL.text, text], { timeout });
}

// png makes a w×h PNG filled with one colour (RGB).
export function png(w, h, [r, g, b]) {
  const crcTable = new Int32Array(256).map((_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  const crc = (buf) => {
    let c = -1;
    for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ -1) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const row = Buffer.alloc(1 + 3 * w);
  for (let x = 0; x < w; x++) row.set([r, g, b], 1 + 3 * x);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export function pctl(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
