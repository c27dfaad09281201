// A tenant's webhook endpoint, written with the reference Standard Webhooks
// library (npm standardwebhooks, pinned in package-lock.json) rather than
// our own code: it verifies every delivery with every secret it was given
// (during a rotation both the new and the old secret must verify) and
// refuses timestamps more than 5 minutes away, as the library does.
//
// It prints {"port": N} once listening. Control routes for the Go test
// (package pommy.ai/edge/tests/webhookrecv):
//   POST /__secrets  {"secrets": ["whsec_…", …]}  the secrets to verify with
//   POST /__status   {"status": 500}               how to answer a verified
//                                                  delivery (default 204)
//   GET  /__received                               what arrived, in order
import http from "node:http";
import { Webhook } from "standardwebhooks";

let secrets = [];
let status = 204;
const received = [];

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  const body = await readBody(req);
  if (req.url === "/__secrets" && req.method === "POST") {
    secrets = JSON.parse(body).secrets;
    res.writeHead(204).end();
    return;
  }
  if (req.url === "/__status" && req.method === "POST") {
    status = JSON.parse(body).status;
    res.writeHead(204).end();
    return;
  }
  if (req.url === "/__received" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(received));
    return;
  }
  const entry = { id: req.headers["webhook-id"] ?? "", verified: false, error: "", type: "", signatures: 0 };
  entry.signatures = (req.headers["webhook-signature"] ?? "").split(" ").filter(Boolean).length;
  try {
    if (secrets.length === 0) throw new Error("no secret configured");
    let payload;
    for (const s of secrets) payload = new Webhook(s).verify(body, req.headers);
    entry.verified = true;
    entry.type = payload.type;
    entry.data = payload.data;
    entry.status = status;
    received.push(entry);
    res.writeHead(status).end();
  } catch (err) {
    entry.error = String(err && err.message ? err.message : err);
    received.push(entry);
    res.writeHead(400, { "content-type": "text/plain" }).end(entry.error);
  }
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.stdin.on("end", () => process.exit(0)); // the test closes stdin to stop us
process.stdin.resume();
