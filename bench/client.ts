import { Agent, fetch as undiciFetch } from "undici";
import { createVerifiedFetch } from "../attestation/client/index.js";
import { receiptKeyFromSpki, signReceipt, verifyReceipt } from "../attestation/receipt.js";
import { generateKeyPairSync, createHash } from "node:crypto";
import { CLIENT_TOKEN, configJson, startHarness } from "../test/helpers/enclave-harness.js";
import { fmtMs, summarize } from "./stats.js";

/**
 * The verifying client's costs (issue 5): the first verified request
 * (TLS handshake + attestation on the same connection + the request) against
 * a plain pinned client's first request, and the steady-state added cost of
 * receipt verification per request, non-streamed and per stream. The gateway
 * runs in this process with the local model, so both clients share it.
 */
async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

export async function main(): Promise<void> {
  // Many fresh clients in a row: lift the attestation rate limit for the run.
  const h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 10_000, rateLimitPerMinute: 1_000_000 } }) });
  try {
    const origin = h.baseURL.replace(/\/v1$/, "");
    const policy = { measurements: "any" as const, trust: "any" as const, trustedRoots: [h.anchor] };
    const body = JSON.stringify({ model: "local", messages: [{ role: "user", content: "benchmark" }] });
    const stream = JSON.stringify({ model: "local", stream: true, messages: [{ role: "user", content: "benchmark stream of a few words" }] });
    const init = (b: string) => ({ method: "POST", headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" }, body: b });

    // First request on a fresh client: plain (pinned CA) vs verified.
    const firstPlain: number[] = [];
    const firstVerified: number[] = [];
    for (let i = 0; i < 25; i++) {
      const agent = new Agent({ connect: { ca: h.enclave.identity.tls.certPem } });
      firstPlain.push(await time(async () => (await undiciFetch(`${h.baseURL}/chat/completions`, { ...init(body), dispatcher: agent })).arrayBuffer()));
      await agent.close();
      const verified = createVerifiedFetch({ baseURL: origin, policy });
      firstVerified.push(await time(async () => (await verified(`${h.baseURL}/chat/completions`, init(body))).arrayBuffer()));
      await verified.close();
    }

    // Steady state on warm keep-alive connections.
    const agent = new Agent({ connect: { ca: h.enclave.identity.tls.certPem } });
    const plain = (b: string) => undiciFetch(`${h.baseURL}/chat/completions`, { ...init(b), dispatcher: agent });
    const verified = createVerifiedFetch({ baseURL: origin, policy, keepReceipts: 1 });
    const ver = (b: string) => verified(`${h.baseURL}/chat/completions`, init(b));
    for (let i = 0; i < 200; i++) {
      await (await plain(body)).arrayBuffer();
      await (await ver(body)).arrayBuffer();
    }
    const plainNs: number[] = [];
    const verNs: number[] = [];
    const plainS: number[] = [];
    const verS: number[] = [];
    for (let i = 0; i < 1500; i++) {
      // Interleaved so drift on a shared VM hits both.
      plainNs.push(await time(async () => (await plain(body)).arrayBuffer()));
      verNs.push(await time(async () => (await ver(body)).arrayBuffer()));
      plainS.push(await time(async () => (await plain(stream)).arrayBuffer()));
      verS.push(await time(async () => (await ver(stream)).arrayBuffer()));
    }
    await verified.close();
    await agent.close();

    // The cryptographic core of a receipt check, alone.
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const spki = new Uint8Array(publicKey.export({ format: "der", type: "spki" }));
    const key = receiptKeyFromSpki(spki);
    const req = new TextEncoder().encode(body);
    const res = new Uint8Array(2048);
    const receipt = signReceipt(
      {
        v: 2,
        id: "egw-x",
        time: Date.now(),
        method: "POST",
        path: "/v1/chat/completions",
        surface: "chat.completions",
        model: "m",
        provider: "p",
        status: 200,
        stream: false,
        bodyRead: true,
        requestSha256: new Uint8Array(createHash("sha256").update(req).digest()),
        responseSha256: new Uint8Array(createHash("sha256").update(res).digest()),
      },
      privateKey,
    );
    for (let i = 0; i < 300; i++) verifyReceipt(receipt, { publicKey: key, requestBody: req, responseBody: res });
    const checks: number[] = [];
    for (let i = 0; i < 3000; i++) checks.push(await time(async () => verifyReceipt(receipt, { publicKey: key, requestBody: req, responseBody: res })));

    const p = (xs: number[]) => summarize(xs);
    console.log("verifying client (gateway in-process, local model, TLS keep-alive)");
    console.log(
      `  first request, fresh client: plain p50 ${fmtMs(p(firstPlain).median)} | verified (TLS + attestation + request) p50 ${fmtMs(p(firstVerified).median)} | added ${fmtMs(p(firstVerified).median - p(firstPlain).median)}`,
    );
    console.log(
      `  steady state non-stream: plain p50 ${fmtMs(p(plainNs).median)} | verified p50 ${fmtMs(p(verNs).median)} | added ${fmtMs(p(verNs).median - p(plainNs).median)}  (target ≤ 0.2 ms)`,
    );
    console.log(
      `  steady state per stream: plain p50 ${fmtMs(p(plainS).median)} | verified p50 ${fmtMs(p(verS).median)} | added ${fmtMs(p(verS).median - p(plainS).median)}  (target ≤ 0.2 ms)`,
    );
    console.log(`  verifyReceipt alone (ES256 verify + two SHA-256): p50 ${fmtMs(p(checks).median)}`);
  } finally {
    await h.close();
  }
}
