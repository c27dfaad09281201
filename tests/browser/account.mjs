// The account link pages in real Chromium (ui/account), run by
// tests/e2e/account_pages_browser_test.go: it mails a person a password
// reset link through a real mail server and gives this script the link as
// it arrived (POMMY_LINK) and the password to choose (POMMY_NEW_PASSWORD).
// The page must take the token out of the address bar, refuse two
// different passwords without calling the server, set the password, show
// that it did, pass axe-core, and run nothing its CSP forbids.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run by tests/e2e/account_pages_browser_test.go`);
  return v;
}
const link = need('POMMY_LINK');
const password = need('POMMY_NEW_PASSWORD');

const browser = await chromium.launch({ executablePath: process.env.POMMY_CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
let failed = false;
try {
  const page = await (await browser.newContext()).newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const posts = [];
  page.on('request', (r) => { if (r.method() === 'POST') posts.push(r.url()); });

  await page.goto(link);
  await page.waitForSelector('#reset:not([hidden])');
  assert.equal(new URL(page.url()).hash, '', 'the token stays in the address bar');
  assert.ok(!(await page.isVisible('#verify')), 'another page part is shown');

  // Two different passwords: refused on the page, nothing sent.
  await page.fill('#reset-password', password);
  await page.fill('#reset-confirm', password + ' typo');
  await page.click('#reset button[type=submit]');
  await page.waitForSelector('#status.error');
  assert.equal(posts.length, 0, 'a mismatch was sent to the server');

  await page.fill('#reset-confirm', password);
  await page.click('#reset button[type=submit]');
  await page.waitForSelector('#status.done');
  const text = await page.textContent('#status');
  assert.match(text, /password is changed/);
  assert.deepEqual(posts.map((u) => new URL(u).pathname), ['/v1/password/reset']);

  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ['violations'] })).violations
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help })));
  for (const v of violations) console.log(`  axe: ${v.impact} ${v.id}: ${v.help}`);
  assert.deepEqual(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical'), [], 'serious or critical accessibility violations');

  // The same link again: the page says it was used.
  const again = await (await browser.newContext()).newPage();
  await again.goto(link);
  await again.fill('#reset-password', 'another passphrase 7');
  await again.fill('#reset-confirm', 'another passphrase 7');
  await again.click('#reset button[type=submit]');
  await again.waitForSelector('#status.error');
  assert.match(await again.textContent('#status'), /already used/);
  assert.ok(await again.isDisabled('#reset button[type=submit]'), 'a used link can be submitted again');

  // A link without its token.
  const bare = await (await browser.newContext()).newPage();
  await bare.goto(new URL(link).origin + '/account/verify');
  await bare.waitForSelector('#status.error');
  assert.ok(await bare.isDisabled('#verify button[type=submit]'));

  // A browser that prefers Turkish gets the page in Turkish.
  const turkish = await (await browser.newContext({ locale: 'tr-TR' })).newPage();
  await turkish.goto(link);
  await turkish.waitForSelector('#reset:not([hidden])');
  assert.equal(await turkish.getAttribute('html', 'lang'), 'tr');
  assert.equal(await turkish.textContent('#reset h2'), 'Yeni bir parola seçin');
  await turkish.fill('#reset-password', 'bir parola daha 123');
  await turkish.fill('#reset-confirm', 'bir parola daha 123');
  await turkish.click('#reset button[type=submit]');
  await turkish.waitForSelector('#status.error');
  assert.match(await turkish.textContent('#status'), /zaten kullanıldı/);

  assert.deepEqual(problems.filter((p) => !/status of 410/.test(p)), [], 'errors in the page');
  console.log('--- PASS: reset-page');
} catch (e) {
  failed = true;
  console.log(`--- FAIL: reset-page ${e.stack || e}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
