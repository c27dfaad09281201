// Passkeys in real Chromium (issue 9, deliverable 8), run by
// tests/e2e/passkeys_browser_test.go: Chromium's virtual authenticator
// (DevTools WebAuthn domain: CTAP2, internal transport, resident keys,
// user verification) answers navigator.credentials.create and .get on a
// page of the home's own origin (http://localhost:PORT: WebAuthn needs a
// secure context and a relying party ID that is a domain, which 127.0.0.1
// is not). The page's script is this file's, run in the page: it signs
// up, enrols a passkey, signs out, signs in with the passkey alone, then
// with the password and the passkey as the second factor, as the inbox
// will.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { env, launch, uid } from './lib.mjs';

// The home's origin under the name localhost (same server, same port).
const origin = env.platform.replace('//127.0.0.1:', '//localhost:');

// inPage runs in the page: the API through fetch with the page's cookies,
// and the WebAuthn calls with the options as the API gives them.
async function inPage(page, step, arg) {
  return page.evaluate(async ([step, arg]) => {
    const b64 = {
      dec: (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), (c) => c.charCodeAt(0)).buffer,
    };
    const api = async (method, p, body) => {
      const r = await fetch(p, { method, headers: body === undefined ? {} : { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    };
    // The JSON forms (WebAuthn Level 3) where Chromium has them.
    const creation = (o) => (PublicKeyCredential.parseCreationOptionsFromJSON ? PublicKeyCredential.parseCreationOptionsFromJSON(o)
      : { ...o, challenge: b64.dec(o.challenge), user: { ...o.user, id: b64.dec(o.user.id) }, excludeCredentials: o.excludeCredentials.map((c) => ({ ...c, id: b64.dec(c.id) })) });
    const request = (o) => (PublicKeyCredential.parseRequestOptionsFromJSON ? PublicKeyCredential.parseRequestOptionsFromJSON(o)
      : { ...o, challenge: b64.dec(o.challenge), allowCredentials: o.allowCredentials.map((c) => ({ ...c, id: b64.dec(c.id) })) });
    const get = async (options) => (await navigator.credentials.get({ publicKey: request(options) })).toJSON();
    const show = (text, ok) => {
      const li = document.createElement('li');
      li.textContent = text;
      li.className = ok ? 'ok' : 'bad';
      document.getElementById('steps').append(li);
    };
    switch (step) {
      case 'signup': {
        const r = await api('POST', '/v1/signup', arg);
        show(`signed up as ${arg.email}: ${r.status}`, r.status === 201);
        return r;
      }
      case 'enrol': {
        const o = await api('POST', '/v1/me/passkeys/options', {});
        if (o.status !== 200) return o;
        const cred = await navigator.credentials.create({ publicKey: creation(o.body.options) });
        const r = await api('POST', '/v1/me/passkeys', { challenge_token: o.body.challenge_token, credential: cred.toJSON(), name: 'This browser' });
        show(`passkey enrolled: ${r.status}, ${r.body.recovery_codes ? r.body.recovery_codes.length : 0} recovery codes`, r.status === 201);
        return r;
      }
      case 'logout':
        return api('POST', '/v1/logout', undefined);
      case 'me':
        return api('GET', '/v1/me', undefined);
      case 'passwordless': {
        const o = await api('POST', '/v1/login/passkey/options', {});
        if (o.status !== 200) return o;
        const r = await api('POST', '/v1/login/passkey', { challenge_token: o.body.challenge_token, credential: await get(o.body.options) });
        show(`signed in with the passkey alone: ${r.status} (${(r.body.auth_methods || []).join(' ')})`, r.status === 200);
        return r;
      }
      case 'second-factor': {
        const p = await api('POST', '/v1/login', arg);
        if (p.status !== 401 || p.body.error.code !== 'mfa_required') return p;
        const o = await api('POST', '/v1/login/mfa/webauthn', { mfa_token: p.body.mfa_token });
        if (o.status !== 200) return o;
        const r = await api('POST', '/v1/login/mfa', { mfa_token: p.body.mfa_token, webauthn: await get(o.body.options) });
        show(`signed in with the password and the passkey: ${r.status} (${(r.body.auth_methods || []).join(' ')})`, r.status === 200);
        return r;
      }
      case 'step-up': {
        const o = await api('POST', '/v1/me/reauth/webauthn', {});
        if (o.status !== 200) return o;
        const r = await api('POST', '/v1/me/reauth', { webauthn: await get(o.body.options) });
        show(`step-up with the passkey: ${r.status}`, r.status === 204);
        return r;
      }
    }
    throw new Error(`no step ${step}`);
  }, [step, arg]);
}

const scenarios = {
  // Enrol, sign out, passwordless, second factor, step-up.
  async passkeyLifecycle(ctx) {
    const page = await ctx.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('WebAuthn.enable', { enableUI: false });
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await page.goto(origin + '/__test/passkeys');
    assert.equal(await page.evaluate(() => window.isSecureContext), true, 'http://localhost is a secure context');

    const email = `passkey-${uid()}@example.com`;
    const password = 'correct horse battery staple 42';
    let r = await inPage(page, 'signup', { organization: 'Passkey Browser Co', email, password });
    assert.equal(r.status, 201, JSON.stringify(r.body));

    r = await inPage(page, 'enrol');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.recovery_codes.length, 10, 'the first factor comes with recovery codes');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'one credential on the authenticator');
    assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential (a passkey)');
    assert.equal(credentials[0].rpId, 'localhost');

    assert.equal((await inPage(page, 'logout')).status, 204);
    assert.equal((await inPage(page, 'me')).status, 401, 'signed out');

    r = await inPage(page, 'passwordless');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    let me = await inPage(page, 'me');
    assert.deepEqual(me.body.session.auth_methods, ['passkey']);
    assert.equal(me.body.mfa.passkeys, 1);
    const count1 = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0].signCount;

    assert.equal((await inPage(page, 'logout')).status, 204);
    r = await inPage(page, 'second-factor', { email, password });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    me = await inPage(page, 'me');
    assert.deepEqual(me.body.session.auth_methods, ['password', 'webauthn']);
    const count2 = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials[0].signCount;
    assert.ok(count2 > count1, `the authenticator's counter moved up (${count1} -> ${count2})`);

    r = await inPage(page, 'step-up');
    assert.equal(r.status, 204, JSON.stringify(r.body));

    mkdirSync(env.screenshots, { recursive: true });
    const file = path.join(env.screenshots, 'passkeys.png');
    await page.screenshot({ path: file, fullPage: true });
    console.log(`  screenshot: ${file}`);
    assert.deepEqual(problems, [], 'the page had problems');
  },
};

const browser = await launch();
console.log(`chromium ${browser.version()}; platform ${env.platform} as ${origin}`);
let failed = 0;
for (const n of Object.keys(scenarios)) {
  const t0 = Date.now();
  const ctx = await browser.newContext({ viewport: { width: 900, height: 600 } });
  try {
    await scenarios[n](ctx);
    console.log(`--- PASS: ${n} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
  } catch (e) {
    failed++;
    console.log(`--- FAIL: ${n} (${((Date.now() - t0) / 1000).toFixed(1)}s)\n${e.stack || e}`);
    try {
      mkdirSync(env.screenshots, { recursive: true });
      const pages = ctx.pages();
      if (pages.length) await pages[pages.length - 1].screenshot({ path: path.join(env.screenshots, `failed-${n}.png`) });
    } catch { /* the page may be gone */ }
  } finally {
    await ctx.close();
  }
}
await browser.close();
process.exit(failed ? 1 : 0);
