// sign.mjs signs widget identity JWTs with jose (npm), as a tenant's backend
// would: the tests must not verify our verifier with tokens our own code
// made. It reads a JSON array of specs on stdin and writes a JSON array of
// compact JWTs, in the same order, on stdout.
//
// A spec: {
//   "alg":    "HS256" (default) | "HS384" | "HS512" | "none" (jose's UnsecuredJWT),
//   "secret": the tenant's identity secret; its UTF-8 bytes are the HMAC key,
//   "claims": extra claims as they are (sub, name, email, ...),
//   "exp", "iat", "nbf": jose time spans ("10m", "30d", "-1h") relative to now,
//             or "now" (iat only); absent: the claim is not set,
//   "tamper": "payload" replaces the signed payload's sub after signing
//             (the signature is kept), "signature" flips the signature
// }
//
//	echo '[{"secret":"wis_x","claims":{"sub":"u1"},"exp":"10m","iat":"now"}]' | node tests/jwtsign/sign.mjs
import { SignJWT, UnsecuredJWT, base64url } from 'jose';

async function sign(spec) {
  const claims = spec.claims ?? {};
  const alg = spec.alg ?? 'HS256';
  const jwt = alg === 'none' ? new UnsecuredJWT(claims) : new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' });
  if (spec.exp !== undefined) jwt.setExpirationTime(spec.exp);
  if (spec.iat === 'now') jwt.setIssuedAt();
  else if (spec.iat !== undefined) jwt.setIssuedAt(spec.iat);
  if (spec.nbf !== undefined) jwt.setNotBefore(spec.nbf);
  let token = alg === 'none' ? jwt.encode() : await jwt.sign(new TextEncoder().encode(spec.secret ?? ''));
  if (spec.tamper === 'payload') {
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p)));
    payload.sub = 'someone-else';
    token = [h, base64url.encode(JSON.stringify(payload)), s].join('.');
  } else if (spec.tamper === 'signature') {
    const [h, p, s] = token.split('.');
    const sig = base64url.decode(s);
    sig[0] ^= 1;
    token = [h, p, base64url.encode(sig)].join('.');
  } else if (spec.tamper !== undefined) {
    throw new Error(`unknown tamper ${spec.tamper}`);
  }
  return token;
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const specs = JSON.parse(input);
if (!Array.isArray(specs)) throw new Error('stdin must be a JSON array of specs');
const out = [];
for (const s of specs) out.push(await sign(s));
process.stdout.write(JSON.stringify(out) + '\n');
