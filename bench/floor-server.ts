import { createHash } from "node:crypto";
import https from "node:https";
import { Agent, request } from "undici";
import { signReceipt } from "../attestation/receipt.js";
import { createIdentity } from "../enclave/identity.js";

/**
 * The floor the gateway's added latency is compared with: the least a
 * Node.js process can do for the same request and still be an enclave
 * gateway. HTTPS in, the body read and hashed, JSON parsed and re-encoded,
 * one undici call to the same upstream, the answer parsed and re-encoded,
 * and (unless "nosign") an ES256 receipt over both hashes. No auth, limits,
 * routing, metrics, logs, timeouts or retries. Not a product: a benchmark
 * reference, run as its own process like the gateway.
 *
 *   node dist/bench/floor-server.js <upstream origin> <sign|nosign>
 * prints the port it listens on (127.0.0.1), then serves until killed.
 */
const [upstream, mode] = process.argv.slice(2);
if (!upstream || (mode !== "sign" && mode !== "nosign")) {
  console.error("usage: floor-server <upstream origin> <sign|nosign>");
  process.exit(2);
}
const identity = await createIdentity({ now: () => new Date() });
const agent = new Agent({ connections: 128, bodyTimeout: 0 });
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

const server = https.createServer({ key: identity.tls.keyPem, cert: identity.tls.certPem }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    void (async () => {
      const body = Buffer.concat(chunks);
      const parsed = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      parsed.model = "mock-model";
      const up = await request(`${upstream}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: "Bearer x" },
        body: JSON.stringify(parsed),
        dispatcher: agent,
      });
      const upChunks: Buffer[] = [];
      for await (const c of up.body) upChunks.push(c as Buffer);
      const out = Buffer.from(JSON.stringify(JSON.parse(Buffer.concat(upChunks).toString("utf8"))));
      const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": out.length };
      if (mode === "sign") {
        const receipt = signReceipt(
          {
            v: 2,
            id: "egw-floor",
            time: Date.now(),
            method: "POST",
            path: "/v1/chat/completions",
            surface: "chat.completions",
            model: "m",
            provider: "mock",
            status: 200,
            stream: false,
            bodyRead: true,
            requestSha256: sha256(body),
            responseSha256: sha256(out),
          },
          identity.receipt.privateKey,
        );
        headers["x-egw-receipt"] = Buffer.from(receipt).toString("base64url");
      }
      res.writeHead(200, headers).end(out);
    })().catch(() => res.writeHead(502).end());
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: (server.address() as { port: number }).port })));
