// The widget's scenarios in real Chromium (issue 8, deliverable 9), run by
// tests/e2e/widget_browser_test.go, which starts the platform and the
// tenant's websites and passes their coordinates in the environment
// (lib.mjs). One browser; each scenario in its own context (a new
// visitor). WIDGET_SCENARIOS=a,b runs some. Exits non-zero when one fails.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { SignJWT } from 'jose';
import {
  SEL, env, launch, uid, api, inboxHead, waitVisitorMessage, reply, messagesOf, watch, frameOf,
  openWidget, send, messagesIn, waitText, png, newPerson,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// The names the Go side gave the tenant and its owner (markup as text).
const hostileOrg = 'Shop <img src=x onerror="window.__pwned=1">&amp; Co';
const hostilePerson = 'Ayşe <script>window.__pwned=1</script><b>bold</b>';

// pwned reports whether markup ran in the page or the widget.
async function pwned(page, frame) {
  const a = await page.evaluate(() => window.__pwned === 1);
  const b = frame ? await frame.evaluate(() => window.__pwned === 1) : false;
  return a || b;
}

// The scenarios. Each gets a fresh browser context and its watcher of
// dialogs, exceptions and CSP refusals.
const scenarios = {
  // A page on an origin the tenant never listed gets no widget: the token
  // call is refused (403, unreadable by the page), no launcher, no iframe,
  // and the tenant has a notice of the refused origin.
  async unlisted(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const warns = [];
    page.on('console', (m) => { if (m.type() === 'warning') warns.push(m.text()); });
    // The browser refuses the answer to the page (no CORS header): the
    // request fails for the page, whatever its status.
    const tokenURL = (u) => u.startsWith(env.platform + '/v1/widget/token');
    const token = page.waitForEvent('requestfailed', { predicate: (r) => tokenURL(r.url()), timeout: 15000 });
    await page.goto(env.unlisted + '/');
    const failed = await token;
    // The same request outside a browser shows what the platform answered.
    const res = await fetch(failed.url(), { headers: { Origin: env.unlisted } });
    assert.equal(res.status, 403, 'the token call from an unlisted origin');
    assert.equal((await res.json()).error.code, 'origin_not_allowed');
    assert.equal(res.headers.get('access-control-allow-origin'), null, 'a refusal the page could read');
    // The loader has had its answer; it must have added nothing.
    await page.waitForLoadState('networkidle');
    assert.equal(await page.locator(SEL.launcher).count(), 0, 'a launcher on an unlisted origin');
    assert.equal(await page.locator('iframe').count(), 0, 'an iframe on an unlisted origin');
    assert.equal(page.frames().length, 1, 'frames on an unlisted origin');
    assert.equal(warns.filter((t) => /pommy|widget/i.test(t)).length, 1, `one console warning, got ${JSON.stringify(warns)}`);
    // The tenant sees a notice naming the refused origin.
    const n = await api('GET', '/v1/audit/notices', { want: 200 });
    const notice = n.notices.find((x) => x.kind === 'widget_origin_refused');
    assert.ok(notice, `no widget_origin_refused notice: ${JSON.stringify(n.notices)}`);
    assert.ok(notice.message.includes(new URL(env.unlisted).host), `the notice does not name the origin: ${notice.message}`);
    // A second refusal the same day adds no second notice.
    await page.reload();
    await page.waitForLoadState('networkidle');
    const again = await api('GET', '/v1/audit/notices', { want: 200 });
    assert.equal(again.notices.filter((x) => x.kind === 'widget_origin_refused').length, 1, 'notices of one origin on one day');
    w.check();
  },

  // The visitor chats and a person replies through the API: each sees the
  // other live, the host page hears of the message without its text, the
  // team sees the visitor's read.
  async chat(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    await page.goto(env.site + '/');
    await page.evaluate(() => {
      window.__events = [];
      window.PommyQ = window.PommyQ || [];
      window.PommyQ.push(['on', 'message', (e) => window.__events.push(e)]);
    });
    const head = await inboxHead();
    await page.click(SEL.launcher);
    const frame = await frameOf(page);
    await frame.waitForSelector(`${SEL.composer}:not([disabled])`);
    assert.equal(await frame.evaluate(() => location.origin), env.platform, 'the chat is not served from the platform');
    const hello = `Hello from the browser ${uid()}`;
    await send(frame, hello);
    const { conv, msg } = await waitVisitorMessage(head, hello);
    assert.equal(msg.author_type, 'visitor');
    // The widget shows the visitor's own message once, sent.
    await frame.waitForSelector(`${SEL.message}[data-author=visitor][data-seq="${msg.seq}"]`);

    // A person types, then replies: the visitor sees both without reload.
    await api('POST', `/v1/conversations/${conv}/typing`, { body: { typing: true }, want: 200 });
    await frame.waitForSelector(`${SEL.typing}:visible`, { timeout: 10000 });
    const answer = `We are on it ${uid()}`;
    const r = await reply(conv, answer);
    await waitText(frame, answer);
    const shown = (await messagesIn(frame)).find((m) => m.text === answer);
    assert.equal(shown.author, 'person');
    assert.equal(shown.seq, r.seq);
    assert.equal(shown.name, hostilePerson, 'the person\'s name as text');
    // The host page heard of the message and not its text.
    await page.waitForFunction(() => window.__events.length > 0);
    const evs = await page.evaluate(() => JSON.stringify(window.__events));
    assert.ok(evs.includes(conv), `host page events lack the conversation: ${evs}`);
    assert.ok(!evs.includes(answer) && !evs.includes(hello), `host page events carry message text: ${evs}`);

    // The visitor types: the team's stream says so; the visitor read the
    // reply: the team sees it.
    await frame.locator(SEL.composer).pressSequentially('typing…');
    const deadline = Date.now() + 15000;
    let typing = false, read = false;
    let after = r.seq;
    while (Date.now() < deadline && !(typing && read)) {
      const ev = await api('GET', `/v1/conversations/${conv}/events?after=${after}&wait=5`, { want: 200 });
      for (const e of ev.events) {
        if (e.type === 'typing' && e.data?.typing === true && e.actor?.startsWith('contact:')) typing = true;
        if (e.type === 'read' && e.data?.by === 'visitor' && e.data.seq >= r.seq) read = true;
      }
      after = ev.cursor;
    }
    assert.ok(typing, 'the team never saw the visitor typing');
    assert.ok(read, 'the team never saw the visitor read the reply');
    w.check();
  },

  // The network goes away mid-conversation while both sides write, then
  // comes back: every message is shown once, in order, on both sides, and
  // again after the host page is reloaded.
  async offline(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const head = await inboxHead();
    const frame = await openWidget(page);
    const id = uid();
    const first = `before the cut ${id}`;
    await send(frame, first);
    const { conv } = await waitVisitorMessage(head, first);
    await reply(conv, `answer before the cut ${id}`);
    await waitText(frame, `answer before the cut ${id}`);

    await ctx.setOffline(true);
    await frame.waitForSelector(`${SEL.connection}:not([data-state=online])`, { timeout: 20000 });
    const visitorOffline = [`offline one ${id}`, `offline two ${id}`];
    for (const t of visitorOffline) await send(frame, t);
    const teamOffline = [`team during the cut one ${id}`, `team during the cut two ${id}`];
    for (const t of teamOffline) await reply(conv, t);
    // The queued messages are shown as pending, not lost.
    for (const t of visitorOffline) await waitText(frame, t);

    await ctx.setOffline(false);
    await frame.waitForSelector(`${SEL.connection}[data-state=online]`, { state: 'attached', timeout: 30000 }); // hidden 2.5 s after it comes back
    for (const t of teamOffline) await waitText(frame, t, 30000);
    const after = `after the cut ${id}`;
    await send(frame, after);
    await frame.waitForFunction(([sel, t]) => [...document.querySelectorAll(sel)].some((el) =>
      el.getAttribute('data-seq') && el.textContent.includes(t)), [SEL.message, after], { timeout: 30000 });

    const want = [first, `answer before the cut ${id}`, ...teamOffline, ...visitorOffline, after];
    const team = (await messagesOf(conv)).filter((m) => m.text.includes(id));
    const byText = (list) => list.map((m) => m.text);
    // The team has each message exactly once and in an order where the
    // visitor's own are in the order typed.
    assert.deepEqual([...byText(team)].sort(), [...want].sort(), 'the team\'s messages (each once)');
    assert.ok(byText(team).indexOf(visitorOffline[0]) < byText(team).indexOf(visitorOffline[1]), 'the queued messages out of order');
    const seqs = team.map((m) => m.seq);
    const expectWidget = async (label) => {
      const shown = (await messagesIn(frame)).filter((m) => m.text.includes(id));
      assert.deepEqual(byText(shown), byText(team), `${label}: the widget's messages are not the team's, once each, in seq order`);
      assert.deepEqual(shown.map((m) => m.seq), seqs, `${label}: seqs`);
    };
    await frame.waitForFunction(([sel, n, id]) => [...document.querySelectorAll(sel)]
      .filter((el) => el.textContent.includes(id) && el.getAttribute('data-seq')).length >= n, [SEL.message, want.length, id]);
    await expectWidget('after the cut');

    // Reload the host page: the visitor's history is there, once.
    await page.reload();
    await page.click(SEL.launcher);
    const again = await frameOf(page);
    await again.waitForFunction(([sel, t]) => [...document.querySelectorAll(sel)].some((el) => el.textContent === t),
      [SEL.message + ' ' + SEL.text, after], { timeout: 15000 });
    const shown = (await messagesIn(again)).filter((m) => m.text.includes(id));
    assert.deepEqual(byText(shown), byText(team), 'after a reload: the history, once each, in order');
    w.check();
  },

  // Messages, names and file names with markup are shown as text: no
  // element made from them, no script run, no dialog; links are plain
  // http(s) links.
  async hostile(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const head = await inboxHead();
    const frame = await openWidget(page);
    const id = uid();
    const evil = `<img src=x onerror="window.__pwned=1;alert(1)"> <script>window.__pwned=1;alert(2)</script> ${id}`;
    await send(frame, evil);
    const { conv } = await waitVisitorMessage(head, evil);
    const link = `see https://example.com/a?b=c and javascript:alert(3) <i>x</i> ${id}`;
    await reply(conv, `<b onclick="alert(4)">bold</b> <iframe src="javascript:alert(5)"></iframe> ${id}`);
    await reply(conv, link);
    await api('POST', `/v1/conversations/${conv}/messages`, { as: 'key', body: { text: `<svg onload=alert(6)> system ${id}`, author_type: 'system' }, want: 201 });
    await waitText(frame, `<svg onload=alert(6)> system ${id}`);
    await waitText(frame, link);
    await waitText(frame, evil);
    const fileName = `<img src=x onerror=alert(7)>${id}.png`;
    await frame.setInputFiles(SEL.file, { name: fileName, mimeType: 'image/png', buffer: png(8, 8, [200, 30, 30]) });
    await frame.waitForFunction(([sel, n]) => [...document.querySelectorAll(sel)].some((el) => el.textContent.includes(n)), [SEL.fileName, fileName]);

    // The text of a message may hold links (and line breaks), nothing else.
    const inside = await frame.$$eval(SEL.message, (els, sel) => els.map((el) => ({
      tags: [...el.querySelectorAll(`${sel.text} *, ${sel.author} *, ${sel.fileName} *`)].map((x) => x.tagName.toLowerCase()),
      hrefs: [...el.querySelectorAll('a')].filter((a) => !a.closest(sel.attachment))
        .map((a) => ({ href: a.getAttribute('href'), rel: a.getAttribute('rel') || '', target: a.getAttribute('target') || '' })),
      text: el.textContent,
    })), { text: SEL.text, author: SEL.author, fileName: SEL.fileName, attachment: SEL.attachment });
    for (const m of inside) {
      const bad = m.tags.filter((tag) => !['a', 'br', 'wbr', 'span'].includes(tag));
      assert.deepEqual(bad, [], `elements made from a message, a name or a file name: ${m.text}`);
      for (const a of m.hrefs) {
        assert.match(a.href, /^https?:\/\//, `a link that is not http(s): ${a.href}`);
        assert.match(a.rel, /noopener/, `a link without rel=noopener: ${a.href}`);
      }
    }
    const imgs = await frame.$$eval(`${SEL.messages} img`, (els) => els.map((e) => ({ onerror: e.getAttribute('onerror'), src: e.getAttribute('src') })));
    for (const i of imgs) assert.equal(i.onerror, null, `an <img> with onerror: ${JSON.stringify(i)}`);
    const linked = inside.find((m) => m.text.includes('https://example.com'));
    assert.ok(linked.hrefs.some((a) => a.href.startsWith('https://example.com/a')), `the link is not clickable: ${JSON.stringify(linked.hrefs)}`);
    assert.ok(!linked.hrefs.some((a) => a.href.includes('<') || a.href.includes('javascript')), 'markup or javascript: in a link');
    // The tenant's name, with markup, in the header as text.
    assert.equal((await frame.textContent(SEL.title)).trim(), hostileOrg);
    // Everything the widget shows as someone's name is the name as text.
    const names = await frame.$$eval(SEL.author, (els) => els.map((e) => e.textContent));
    assert.ok(names.includes(hostilePerson), `the person's name: ${JSON.stringify(names)}`);
    assert.equal(await pwned(page, frame), false, 'markup ran');
    w.check();
  },

  // A PNG through the file picker, then one pasted: each previewed; the
  // team downloads the same bytes as an attachment.
  async upload(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const head = await inboxHead();
    const frame = await openWidget(page);
    const id = uid();
    await send(frame, `a picture follows ${id}`);
    // The file is picked at once, while the first message is still
    // starting the conversation: it must join that conversation.
    const bytes = png(120, 80, [20, 120, 220]);
    await frame.setInputFiles(SEL.file, { name: `teapot-${id}.png`, mimeType: 'image/png', buffer: bytes });
    const { conv } = await waitVisitorMessage(head, `a picture follows ${id}`);
    const preview = frame.locator(`${SEL.message} ${SEL.preview}`).last();
    await preview.waitFor({ state: 'visible', timeout: 20000 });
    await frame.waitForFunction((sel) => {
      const imgs = document.querySelectorAll(sel);
      const i = imgs[imgs.length - 1];
      return i && i.complete && i.naturalWidth === 120 && i.naturalHeight === 80;
    }, `${SEL.message} ${SEL.preview}`, { timeout: 20000 });
    // The team has the file, byte for byte, as a download.
    const deadline = Date.now() + 15000;
    let m;
    while (Date.now() < deadline) {
      m = (await messagesOf(conv)).find((x) => x.attachment_name === `teapot-${id}.png`);
      if (m && m.attachment_size === bytes.length) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(m && m.attachment_size === bytes.length, `the team never saw the attachment: ${JSON.stringify(m)}`);
    assert.equal(m.attachment_type, 'image/png');
    // A picture pasted into the composer goes the same way.
    const pasted = png(40, 30, [240, 160, 0]);
    await frame.evaluate(([b64, name]) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: 'image/png' }));
      document.querySelector('[data-pommy=composer]').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, [pasted.toString('base64'), `pasted-${id}.png`]);
    await frame.waitForFunction(([sel, n]) => [...document.querySelectorAll(sel)].some((el) => {
      const img = el.querySelector('img[data-pommy=preview]');
      return el.textContent.includes(n) && img && img.complete && img.naturalWidth === 40;
    }), [SEL.attachment, `pasted-${id}.png`], { timeout: 20000 });
    const got = await api('GET', `/v1/conversations/${conv}/messages/${m.id}/attachment`, { raw: true, want: 200 });
    assert.ok(Buffer.compare(got.body, bytes) === 0, 'the downloaded file is not the uploaded one');
    assert.equal(got.headers.get('x-content-type-options'), 'nosniff');
    assert.match(got.headers.get('content-disposition') || '', /^attachment/);
    w.check();
  },

  // No serious or critical axe-core violation in the open widget (with a
  // conversation in it) nor at the launcher, in the tenant's default
  // colour and in a light one.
  async axe(ctx) {
    const check = async (label) => {
      const page = await ctx.newPage();
      const w = watch(page);
      const head = await inboxHead();
      const frame = await openWidget(page);
      const id = uid();
      await send(frame, `accessibility ${id}`);
      const { conv } = await waitVisitorMessage(head, `accessibility ${id}`);
      await reply(conv, `Answer for the scan ${id}`);
      await waitText(frame, `Answer for the scan ${id}`);
      // Playwright evaluates through the DevTools protocol, which the
      // frame's CSP (script-src 'self') does not govern.
      const results = [];
      for (const [where, target, ctxSel] of [['widget', frame, 'document'], ['launcher', page, SEL.launcher]]) {
        await target.evaluate(axeSource);
        const r = await target.evaluate(async (sel) => {
          // A message fades in (opacity from 0): scanned mid-animation, its
          // text would be measured against a half-transparent bubble.
          await Promise.all(document.getAnimations().map((a) => a.finished.catch(() => {})));
          const res = await window.axe.run(sel === 'document' ? document : { include: [[sel]] }, { resultTypes: ['violations'] });
          return res.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
        }, ctxSel);
        for (const v of r) results.push({ where, ...v });
      }
      for (const v of results) console.log(`  axe (${label}, ${v.where}): ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(', ')}`);
      const bad = results.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      assert.deepEqual(bad, [], `${label}: serious or critical accessibility violations`);
      w.check();
      await page.close();
    };
    await check('default colour');
    const before = await api('GET', '/v1/widget/settings', { want: 200 });
    await api('PATCH', '/v1/widget/settings', { body: { color: '#ffe14d' }, want: 200 });
    try {
      await check('light colour #ffe14d');
    } finally {
      await api('PATCH', '/v1/widget/settings', { body: { color: before.color }, want: 200 });
    }
  },

  // Keyboard only: Tab to the launcher, Enter opens with the focus in the
  // chat, type and Enter sends, Escape closes and gives the focus back.
  async keyboard(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    await page.goto(env.site + '/');
    await page.waitForSelector(SEL.launcher);
    let on = false;
    for (let i = 0; i < 12 && !on; i++) {
      await page.keyboard.press('Tab');
      on = await page.evaluate((sel) => document.activeElement === document.querySelector(sel), SEL.launcher);
    }
    assert.ok(on, 'Tab never reached the launcher');
    const head = await inboxHead();
    await page.keyboard.press('Enter');
    const frame = await frameOf(page);
    await frame.waitForSelector(`${SEL.composer}:not([disabled])`, { state: 'visible' });
    await frame.waitForFunction((sel) => document.hasFocus() && document.activeElement === document.querySelector(sel), SEL.composer, { timeout: 5000 });
    assert.equal(await page.getAttribute(SEL.launcher, 'aria-expanded'), 'true');
    const text = `typed with the keyboard ${uid()}`;
    await page.keyboard.type(text);
    await page.keyboard.press('Enter');
    await waitVisitorMessage(head, text);
    await waitText(frame, text);
    await page.keyboard.press('Escape');
    await page.waitForFunction((sel) => document.activeElement === document.querySelector(sel), SEL.launcher, { timeout: 5000 });
    assert.equal(await page.getAttribute(SEL.launcher, 'aria-expanded'), 'false');
    assert.equal(await page.locator(SEL.frame).isVisible(), false, 'the widget is still shown after Escape');
    w.check();
  },

  // The one line works on a site with a strict CSP (the one docs/widget.md
  // asks for: no 'unsafe-inline'), with no refusal in either document.
  async strictcsp(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const frame = await openWidget(page, env.site + '/?csp=1');
    assert.ok(await frame.locator(SEL.composer).isEditable());
    const launcherBox = await page.locator(SEL.launcher).boundingBox();
    assert.ok(launcherBox && launcherBox.width >= 24 && launcherBox.height >= 24, `the launcher is not laid out under the site's CSP: ${JSON.stringify(launcherBox)}`);
    w.check();
  },

  // Screenshots of the open widget, desktop and phone, English and Turkish
  // (picked from <html lang>); the phone and 200 % zoom have no horizontal
  // scroll in the widget.
  async screenshots(_ctx, browser) {
    mkdirSync(env.screenshots, { recursive: true });
    const placeholders = {};
    // For the pictures, the names a real shop would have (the markup names
    // are the hostile scenario's).
    const ayse = await newPerson('Ayşe Yılmaz');
    const before = await api('GET', '/v1/settings', { want: 200 });
    await api('PATCH', '/v1/settings', { body: { name: 'Teapot Shop' }, want: 200 });
    try {
      for (const [size, viewport, mobile] of [['desktop', { width: 1280, height: 800 }, false], ['phone', { width: 360, height: 740 }, true]]) {
        for (const locale of ['en', 'tr']) {
          const ctx = await browser.newContext({ viewport, isMobile: mobile, hasTouch: mobile, deviceScaleFactor: mobile ? 2 : 1, locale: locale === 'tr' ? 'tr-TR' : 'en-US' });
          const page = await ctx.newPage();
          const w = watch(page);
          const head = await inboxHead();
          const frame = await openWidget(page, env.site + (locale === 'tr' ? '/?lang=tr' : '/'));
          assert.equal(await frame.evaluate(() => document.documentElement.lang), locale, 'the widget\'s language');
          const id = uid();
          const mine = locale === 'tr' ? `Merhaba, siparişim nerede? (${id})` : `Hello, where is my order? (${id})`;
          await send(frame, mine);
          const { conv } = await waitVisitorMessage(head, mine);
          const theirs = locale === 'tr' ? 'Hemen bakıyorum, bir dakika lütfen.' : 'Let me check that for you, one moment.';
          await reply(conv, theirs, ayse);
          await waitText(frame, theirs);
          placeholders[`${size}-${locale}`] = await frame.getAttribute(SEL.composer, 'placeholder');
          const noHScroll = await frame.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
          assert.ok(noHScroll, `${size} ${locale}: the widget scrolls sideways`);
          const box = await page.locator(SEL.frame).boundingBox();
          assert.ok(box.x >= 0 && box.x + box.width <= viewport.width + 0.5, `${size} ${locale}: the widget leaves the viewport: ${JSON.stringify(box)}`);
          await page.waitForTimeout(400); // let the opening transition end before the picture (not an assertion)
          const file = path.join(env.screenshots, `widget-${size}-${locale}.png`);
          await page.screenshot({ path: file });
          console.log(`  screenshot: ${file}`);
          w.check();
          await ctx.close();
        }
      }
    } finally {
      await api('PATCH', '/v1/settings', { body: { name: before.name }, want: 200 });
    }
    assert.notEqual(placeholders['desktop-en'], placeholders['desktop-tr'], 'the Turkish widget has the English composer text');
  },

  // A resolved conversation asks for a rating; the visitor gives one with
  // a comment; the team sees it.
  async csat(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const head = await inboxHead();
    const frame = await openWidget(page);
    const id = uid();
    await send(frame, `thanks, solved ${id}`);
    const { conv } = await waitVisitorMessage(head, `thanks, solved ${id}`);
    await reply(conv, `Glad to help ${id}`);
    await waitText(frame, `Glad to help ${id}`);
    await api('PATCH', `/v1/conversations/${conv}`, { body: { status: 'resolved' }, want: 200 });
    await frame.waitForSelector('[data-pommy=csat]', { timeout: 15000 });
    await frame.click('[data-pommy=csat] [data-rating="4"]');
    await frame.fill('[data-pommy=csat-comment]', `<b>quick</b> ${id}`);
    await frame.click('[data-pommy=csat-submit]');
    await frame.waitForSelector('[data-pommy=csat-thanks]');
    const ev = await api('GET', `/v1/conversations/${conv}/events?after=0`, { want: 200 });
    const got = ev.events.find((e) => e.type === 'csat.submitted');
    assert.ok(got, `the team has no csat.submitted event: ${JSON.stringify(ev.events.map((e) => e.type))}`);
    assert.equal(got.data.rating, 4);
    // The comment is sealed and read with the conversation.
    const c = await api('GET', `/v1/conversations/${conv}`, { want: 200 });
    assert.equal(c.csat?.rating, 4, `the conversation's csat: ${JSON.stringify(c.csat)}`);
    assert.equal(c.csat.comment, `<b>quick</b> ${id}`);
    w.check();
  },

  // The tenant's site identifies its logged-in user with a JWT signed by
  // its backend (jose, HS256, the secret shown once): the same user on two
  // browsers is one contact with one history, named by the JWT; in
  // enforce mode an anonymous visitor gets no composer.
  async identify(ctx, browser) {
    const { secret } = await api('POST', '/v1/widget/identity-secret', { body: {}, want: 201 });
    const before = await api('GET', '/v1/widget/settings', { want: 200 });
    await api('PATCH', '/v1/widget/settings', { body: { identity: 'optional' }, want: 200 });
    const key = new TextEncoder().encode(secret);
    const sub = `user-${uid()}`;
    const jwt = () => new SignJWT({ name: 'Deniz <i>Kaya</i>', email: `${sub}@example.com` })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(key);
    try {
      const page = await ctx.newPage();
      const w = watch(page);
      await page.goto(env.site + '/');
      await page.waitForSelector(SEL.launcher);
      const token = await jwt();
      await page.evaluate((t) => window.Pommy.identify(t), token);
      const head = await inboxHead();
      await page.click(SEL.launcher);
      const frame = await frameOf(page);
      await frame.waitForSelector(`${SEL.composer}:not([disabled])`);
      const id = uid();
      await send(frame, `verified hello ${id}`);
      const { conv, msg } = await waitVisitorMessage(head, `verified hello ${id}`);
      const contact = await api('GET', `/v1/contacts/${msg.author_id}`, { want: 200 });
      assert.equal(contact.name, 'Deniz <i>Kaya</i>', `the contact is not named by the JWT: ${JSON.stringify(contact)}`);
      assert.equal(contact.email, `${sub}@example.com`);
      assert.ok(!JSON.stringify(contact).includes(sub + '"'), 'the JWT subject is stored in clear');
      w.check();

      // The same user on another browser: the same contact and history.
      const other = await browser.newContext();
      try {
        const p2 = await other.newPage();
        await p2.goto(env.site + '/');
        await p2.waitForSelector(SEL.launcher);
        await p2.evaluate((t) => window.Pommy.identify(t), await jwt());
        await p2.click(SEL.launcher);
        const f2 = await frameOf(p2);
        const item = f2.locator(`[data-pommy=conversation-item][data-id="${conv}"]`);
        const text = f2.locator(`${SEL.message} ${SEL.text}`, { hasText: `verified hello ${id}` });
        await Promise.race([item.waitFor({ timeout: 15000 }), text.waitFor({ timeout: 15000 })]);
        if (await item.count()) await item.click();
        await waitText(f2, `verified hello ${id}`);
      } finally {
        await other.close();
      }

      // The user signs out of the site (Pommy.logout): on a shared computer
      // the next person must not see their chat. The widget drops the
      // verified visitor and starts over as a new anonymous one.
      await page.evaluate(() => window.Pommy.logout());
      await frame.waitForFunction((needle) => !document.body.textContent.includes(needle), `verified hello ${id}`, { timeout: 15000 });
      await frame.waitForSelector(`${SEL.composer}:not([disabled])`);
      const stored = await frame.evaluate((k) => localStorage.getItem(k), `pommy:${env.tenant}:visitor`);
      assert.ok(stored && !JSON.parse(stored).verified, `after logout the widget still holds a verified visitor: ${stored}`);
      await page.reload();
      await page.click(SEL.launcher);
      const again = await frameOf(page);
      await again.waitForSelector(`${SEL.composer}:not([disabled])`);
      assert.equal(await again.locator(`${SEL.message} ${SEL.text}`, { hasText: `verified hello ${id}` }).count(), 0,
        'after logout and a reload the signed-out user\'s chat is shown');

      // Enforce: an anonymous visitor sees why there is no composer.
      await api('PATCH', '/v1/widget/settings', { body: { identity: 'enforce' }, want: 200 });
      const anon = await browser.newContext();
      try {
        const p3 = await anon.newPage();
        await p3.goto(env.site + '/');
        await p3.click(SEL.launcher);
        const f3 = await frameOf(p3);
        await f3.waitForSelector('[data-pommy=identity-required]', { timeout: 15000 });
        assert.equal(await f3.locator(SEL.composer).count(), 0, 'an anonymous visitor has a composer in enforce mode');
      } finally {
        await anon.close();
      }
    } finally {
      await api('PATCH', '/v1/widget/settings', { body: { identity: before.identity === 'enforce' ? 'optional' : before.identity }, want: 200 });
    }
  },

  // Past the visitor's limit (LimitWidget, 120 a minute) the widget says
  // so politely and keeps the messages it could not send yet: none lost,
  // none doubled.
  async ratelimit(ctx) {
    const page = await ctx.newPage();
    const w = watch(page);
    const head = await inboxHead();
    const frame = await openWidget(page);
    const id = uid();
    await send(frame, `burst ${id} 0`);
    const { conv } = await waitVisitorMessage(head, `burst ${id} 0`);
    const n = 130;
    await frame.evaluate(([sel, id, n]) => {
      const c = document.querySelector(sel.composer);
      for (let i = 1; i <= n; i++) {
        c.value = `burst ${id} ${i}`;
        c.dispatchEvent(new Event('input', { bubbles: true }));
        document.querySelector(sel.send).click();
      }
    }, [{ composer: SEL.composer, send: SEL.send }, id, n]);
    const notice = frame.locator('[data-pommy=notice]');
    await notice.waitFor({ state: 'visible', timeout: 30000 });
    const said = await notice.textContent();
    assert.match(said, /\d/, `the rate-limit notice gives no time: ${said}`);
    console.log(`  the widget said: ${said}`);
    const shown = await messagesIn(frame);
    const mine = shown.filter((m) => m.text.startsWith(`burst ${id} `));
    assert.equal(mine.length, n + 1, 'every message typed is shown once (sent or waiting)');
    assert.equal(new Set(mine.map((m) => m.text)).size, n + 1, 'a message shown twice');
    assert.ok(mine.some((m) => m.state === 'pending'), 'nothing waits: the limit was never reached');
    assert.ok(!mine.some((m) => m.state === 'failed'), 'a message was given up');
    const team = (await messagesOf(conv)).filter((m) => m.text.startsWith(`burst ${id} `)).map((m) => m.text);
    assert.equal(new Set(team).size, team.length, 'the team has a message twice');
    w.check();
  },

  // 200 % zoom of a 1280 px window is a 640 px wide layout viewport: the
  // widget fits, with no horizontal scroll, and the composer works.
  async zoom(_ctx, browser) {
    const ctx = await browser.newContext({ viewport: { width: 640, height: 400 }, deviceScaleFactor: 2 });
    const page = await ctx.newPage();
    const w = watch(page);
    const frame = await openWidget(page);
    const box = await page.locator(SEL.frame).boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 640.5 && box.y >= 0 && box.y + box.height <= 400.5, `the widget leaves the 640×400 viewport: ${JSON.stringify(box)}`);
    assert.ok(await frame.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth), 'the widget scrolls sideways at 200 %');
    assert.ok(await frame.locator(SEL.composer).isVisible());
    assert.ok(await frame.locator(SEL.send).isVisible(), 'the send button is off screen at 200 %');
    const file = path.join(env.screenshots, 'widget-zoom200-en.png');
    mkdirSync(env.screenshots, { recursive: true });
    await page.screenshot({ path: file });
    console.log(`  screenshot: ${file}`);
    w.check();
    await ctx.close();
  },

  // prefers-reduced-motion: opening the widget runs no animation or
  // transition in the page or the chat.
  async motion(_ctx, browser) {
    const ctx = await browser.newContext({ reducedMotion: 'reduce' });
    const page = await ctx.newPage();
    const w = watch(page);
    const frame = await openWidget(page);
    const running = async (t) => t.evaluate(() => document.getAnimations().filter((a) => a.playState === 'running' && a.effect?.getTiming().duration > 0.01)
      .map((a) => a.animationName || a.transitionProperty || 'animation'));
    assert.deepEqual(await running(page), [], 'animations in the page under reduced motion');
    assert.deepEqual(await running(frame), [], 'animations in the widget under reduced motion');
    w.check();
    await ctx.close();
  },
};

const only = (process.env.WIDGET_SCENARIOS || '').split(',').map((s) => s.trim()).filter(Boolean);
const names = only.length ? only : Object.keys(scenarios);
for (const n of names) if (!scenarios[n]) throw new Error(`no scenario ${n}; there are ${Object.keys(scenarios).join(', ')}`);

const browser = await launch();
console.log(`chromium ${browser.version()}; platform ${env.platform}; site ${env.site}; unlisted ${env.unlisted}`);
let failed = 0;
const began = Date.now();
for (const n of names) {
  const t0 = Date.now();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    await scenarios[n](ctx, browser);
    console.log(`--- PASS: ${n} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    failed++;
    console.log(`--- FAIL: ${n} (${((Date.now() - t0) / 1000).toFixed(1)}s)\n${e.stack || e}`);
    const file = path.join(env.screenshots, `failed-${n}.png`);
    try {
      mkdirSync(env.screenshots, { recursive: true });
      const pages = ctx.pages();
      if (pages.length) {
        await pages[pages.length - 1].screenshot({ path: file });
        console.log(`  the page when it failed: ${file}`);
      }
    } catch { /* the page may be gone */ }
  } finally {
    await ctx.close();
  }
}
await browser.close();
console.log(`${names.length - failed} passed, ${failed} failed (${((Date.now() - began) / 1000).toFixed(1)}s)`);
process.exit(failed ? 1 : 0);
