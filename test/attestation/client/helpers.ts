/**
 * Test doubles for the verifying client, loopback only:
 *  - an impostor that terminates TLS with its own certificate and forwards
 *    the plaintext to the real gateway, recording what it received;
 *  - a fake gateway that attests correctly (simulated NSM, development CA,
 *    a real channel binding) but can alter what it sends after signing, to
 *    stand for a compromised path between the signer and the wire;
 *  - small utilities (manifests, temp dirs).
 */
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import tls from "node:tls";
import { encodeBinding } from "../../../attestation/binding.js";
import { createDevCa, type DevCa } from "../../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../../attestation/dev/simulated-nsm.js";
import { receiptSseBlock, signReceipt, type ReceiptClaims } from "../../../attestation/receipt.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../../attestation/roots.js";
import { createIdentity, type EnclaveIdentity } from "../../../enclave/identity.js";

export const PCR0_TEST = new Uint8Array(48).fill(0x11);
export const PCR0_OTHER = new Uint8Array(48).fill(0x22);

export function manifestJson(
  options: { pcr0?: Uint8Array; trust?: unknown; label?: string; configSha256?: Uint8Array[]; maxAgeSeconds?: number; devRootPem?: string } = {},
): string {
  return JSON.stringify({
    version: 1,
    measurements: [{ label: options.label ?? "test build", pcrs: { 0: Buffer.from(options.pcr0 ?? PCR0_TEST).toString("hex") } }],
    trust: options.trust ?? "any",
    ...(options.configSha256 && { configSha256: options.configSha256.map((h) => Buffer.from(h).toString("hex")) }),
    ...(options.maxAgeSeconds !== undefined && { maxAgeSeconds: options.maxAgeSeconds }),
    ...(options.devRootPem !== undefined && { devRootPem: options.devRootPem }),
  });
}

const dirs: string[] = [];
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-client-"));
  dirs.push(dir);
  return dir;
}
export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

// ─── Impostor ────────────────────────────────────────────────────────────

export interface Impostor {
  origin: string;
  /** Every plaintext byte the impostor received from clients. */
  received(): Buffer;
  connections(): number;
  close(): Promise<void>;
}

/** Terminates TLS with its own self-signed certificate and relays plaintext to `target` over a new TLS connection. */
export async function startImpostor(target: { host: string; port: number }): Promise<Impostor> {
  const identity = await createIdentity({ now: () => new Date() });
  const chunks: Buffer[] = [];
  let count = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: identity.tls.keyPem, cert: identity.tls.certPem }, (client) => {
    count++;
    sockets.add(client);
    const upstream = tls.connect({ host: target.host, port: target.port, rejectUnauthorized: false });
    sockets.add(upstream);
    client.on("data", (d: Buffer) => {
      chunks.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    origin: `https://127.0.0.1:${port}`,
    received: () => Buffer.concat(chunks),
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ─── Fake gateway ────────────────────────────────────────────────────────

/**
 * How the fake gateway alters a response after signing its receipt:
 *  - "none": honest;
 *  - "flip-body": one byte of the body changed;
 *  - "drop-receipt": no receipt (header or block);
 *  - "flip-receipt": one byte of the receipt's signature changed;
 *  - "other-key": receipt signed by a key the document does not attest;
 *  - "truncate-stream": the stream ends after its first event, receipt omitted.
 */
export type Tamper = "none" | "flip-body" | "drop-receipt" | "flip-receipt" | "other-key" | "truncate-stream";

export interface FakeGateway {
  origin: string;
  baseURL: string;
  anchor: TrustAnchor;
  ca: DevCa;
  identity: EnclaveIdentity;
  configSha256: Uint8Array;
  tamper: Tamper;
  /** Resolves when the next stream may finish after its first event (set holdStream first). */
  holdStream: Promise<void> | undefined;
  /** Request bodies received on /v1/chat/completions. */
  bodies: Buffer[];
  /** "METHOD path" of every request received, in order. */
  requests: string[];
  /** The attested trust policy's bytes (binding v3), when the fake was given one. */
  trustPolicy: Uint8Array | undefined;
  /** Served at /v1/attestation/policy instead of the attested bytes (a host serving another policy); receipt signed over what is served. */
  servedPolicy: Uint8Array | undefined;
  /** The upstream origin chat receipts claim. Default "local". */
  receiptUpstream: string;
  /** Served at GET /healthz (unsigned, like the real gateway's) when set; else 404. */
  healthzBody: string | undefined;
  close(): Promise<void>;
}

export async function startFakeGateway(options: { now?: () => Date; pcrs?: Record<number, Uint8Array>; trustPolicy?: string } = {}): Promise<FakeGateway> {
  const now = options.now ?? (() => new Date());
  const ca = await createDevCa({ now });
  const nsm = new SimulatedNsm({ ca, now, pcrs: options.pcrs ?? { 0: PCR0_TEST } });
  const identity = await createIdentity({ now });
  const configSha256 = new Uint8Array(createHash("sha256").update("fake gateway config").digest());
  const trustPolicy = options.trustPolicy === undefined ? undefined : new TextEncoder().encode(options.trustPolicy);
  const sha = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());
  const userData = encodeBinding({ tlsSpkiSha256: identity.tls.spkiSha256, configSha256, ...(trustPolicy && { policySha256: sha(trustPolicy) }) });
  const otherKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;

  const fake: FakeGateway = {
    origin: "",
    baseURL: "",
    anchor: trustAnchorFromPem(ca.rootPem, "development"),
    ca,
    identity,
    configSha256,
    tamper: "none",
    holdStream: undefined,
    bodies: [],
    requests: [],
    trustPolicy,
    servedPolicy: undefined,
    receiptUpstream: "local",
    healthzBody: undefined,
    close: async () => {},
  };

  const receiptFor = (request: Uint8Array, response: Uint8Array, stream: boolean, surface: string, path = "/v1/chat/completions"): Uint8Array => {
    const claims: ReceiptClaims = {
      v: 2,
      id: `egw-fake-${randomBytes(6).toString("hex")}`,
      time: now().getTime(),
      method: "POST",
      path,
      surface,
      model: "fake",
      provider: "fake",
      status: 200,
      stream,
      bodyRead: true,
      requestSha256: sha(request),
      responseSha256: sha(response),
      upstream: { origin: fake.receiptUpstream, model: "fake" },
    };
    const receipt = signReceipt(claims, fake.tamper === "other-key" ? otherKey : identity.receipt.privateKey);
    if (fake.tamper === "flip-receipt") receipt[receipt.length - 1]! ^= 0x01;
    return receipt;
  };
  const flip = (bytes: Uint8Array): Uint8Array => {
    // A lower-case letter in the middle becomes another one: the JSON stays
    // well-formed, so only the hash can tell.
    const out = Uint8Array.from(bytes);
    let at = Math.floor(out.length / 2);
    while (at < out.length && !(out[at]! >= 0x61 && out[at]! <= 0x7a)) at++;
    out[at] = out[at] === 0x61 ? 0x62 : 0x61;
    return out;
  };

  const server = https.createServer({ key: identity.tls.keyPem, cert: identity.tls.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("end", () => {
      void (async () => {
        const body = new Uint8Array(Buffer.concat(chunks));
        const url = new URL(req.url ?? "/", "https://fake");
        fake.requests.push(`${req.method} ${url.pathname}`);
        if (req.method === "GET" && url.pathname === "/v1/attestation/policy" && trustPolicy) {
          const served = fake.servedPolicy ?? trustPolicy;
          const receipt = signReceipt(
            {
              v: 2,
              id: "egw-fake-policy",
              time: now().getTime(),
              method: "GET",
              path: "/v1/attestation/policy",
              surface: "attestation",
              model: "",
              provider: "",
              status: 200,
              stream: false,
              bodyRead: false,
              responseSha256: sha(served),
            },
            identity.receipt.privateKey,
          );
          res.writeHead(200, { "content-type": "application/json", "content-length": served.length, "x-egw-receipt": Buffer.from(receipt).toString("base64url") });
          res.end(served);
          return;
        }
        if (req.method === "GET" && url.pathname === "/healthz" && fake.healthzBody !== undefined) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(fake.healthzBody);
          return;
        }
        if (req.method === "GET" && url.pathname === "/v1/attestation") {
          const nonce = url.searchParams.get("nonce");
          const doc = await nsm.attest({ publicKey: identity.receipt.publicSpkiDer, userData, ...(nonce && { nonce: new Uint8Array(Buffer.from(nonce, "hex")) }) });
          const receipt = signReceipt(
            {
              v: 2,
              id: "egw-fake-attestation",
              time: now().getTime(),
              method: "GET",
              path: "/v1/attestation",
              surface: "attestation",
              model: "",
              provider: "",
              status: 200,
              stream: false,
              bodyRead: false,
              responseSha256: sha(doc),
            },
            identity.receipt.privateKey,
          );
          res.writeHead(200, { "content-type": "application/cbor", "content-length": doc.length, "x-egw-receipt": Buffer.from(receipt).toString("base64url") });
          res.end(doc);
          return;
        }
        if (req.method === "POST" && url.pathname === "/v1/audio/speech") {
          // Binary audio, chunked, its receipt in the x-egw-receipt trailer (docs/PROTOCOL.md "Audio"); tampers apply as for chat.
          const audio = new Uint8Array(Buffer.from("ID3fake-audio-bytes-for-the-verifying-client"));
          const claims: ReceiptClaims = {
            v: 2,
            id: "egw-fake-speech",
            time: now().getTime(),
            method: "POST",
            path: "/v1/audio/speech",
            surface: "audio.speech",
            model: "fake",
            provider: "fake",
            status: 200,
            stream: true,
            bodyRead: true,
            requestSha256: sha(body),
            responseSha256: sha(audio),
            upstream: { origin: fake.receiptUpstream },
          };
          const receipt = signReceipt(claims, fake.tamper === "other-key" ? otherKey : identity.receipt.privateKey);
          if (fake.tamper === "flip-receipt") receipt[receipt.length - 1]! ^= 0x01;
          res.writeHead(200, { "content-type": "audio/mpeg", trailer: "x-egw-receipt" });
          res.write(fake.tamper === "flip-body" ? flip(audio) : audio);
          if (fake.tamper !== "drop-receipt") res.addTrailers({ "x-egw-receipt": Buffer.from(receipt).toString("base64url") });
          res.end();
          return;
        }
        if (req.method === "POST" && url.pathname === "/v1/chat/completions") {
          fake.bodies.push(Buffer.from(body));
          const parsed = JSON.parse(Buffer.from(body).toString("utf8")) as { stream?: boolean };
          const created = Math.floor(now().getTime() / 1000);
          if (parsed.stream) {
            const events = ["Hello", " from", " the", " fake"].map(
              (word, i) =>
                `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created, model: "fake", choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content: word } : { content: word }, finish_reason: null }] })}\n\n`,
            );
            events.push(
              `data: ${JSON.stringify({ id: "chatcmpl-fake", object: "chat.completion.chunk", created, model: "fake", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`,
              "data: [DONE]\n\n",
            );
            const signed = new TextEncoder().encode(events.join(""));
            const receipt = receiptFor(body, signed, true, "chat.completions");
            const sent = fake.tamper === "flip-body" ? flip(signed) : signed;
            res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
            const first = events[0]!.length;
            res.write(sent.subarray(0, first));
            if (fake.holdStream) await fake.holdStream;
            if (fake.tamper === "truncate-stream") {
              res.end();
              return;
            }
            res.write(sent.subarray(first));
            if (fake.tamper !== "drop-receipt") res.write(receiptSseBlock(receipt));
            res.end();
            return;
          }
          const answer = new TextEncoder().encode(
            JSON.stringify({
              id: "chatcmpl-fake",
              object: "chat.completion",
              created,
              model: "fake",
              choices: [{ index: 0, message: { role: "assistant", content: "Hello from the fake", refusal: null }, finish_reason: "stop", logprobs: null }],
              usage: { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 },
            }),
          );
          const receipt = receiptFor(body, answer, false, "chat.completions");
          const sent = fake.tamper === "flip-body" ? flip(answer) : answer;
          res.writeHead(200, {
            "content-type": "application/json",
            "content-length": sent.length,
            ...(fake.tamper !== "drop-receipt" && { "x-egw-receipt": Buffer.from(receipt).toString("base64url") }),
          });
          res.end(sent);
          return;
        }
        if (req.method === "POST" && url.pathname === "/v1/messages") {
          // Anthropic Messages, streamed only: the events the SDK's stream reads, in Anthropic's order.
          fake.bodies.push(Buffer.from(body));
          const frame = (data: { type: string } & Record<string, unknown>) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
          const events = [
            frame({
              type: "message_start",
              message: {
                id: "msg_fake",
                type: "message",
                role: "assistant",
                model: "fake",
                content: [],
                stop_reason: null,
                stop_sequence: null,
                usage: { input_tokens: 1, output_tokens: 1 },
              },
            }),
            frame({ type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }),
            ...["Hello", " from", " the", " fake"].map((text) => frame({ type: "content_block_delta", index: 0, delta: { type: "text_delta", text } })),
            frame({ type: "content_block_stop", index: 0 }),
            frame({ type: "message_delta", delta: { stop_reason: "end_turn", stop_sequence: null }, usage: { output_tokens: 4 } }),
            frame({ type: "message_stop" }),
          ];
          const signed = new TextEncoder().encode(events.join(""));
          const receipt = receiptFor(body, signed, true, "messages", "/v1/messages");
          const sent = fake.tamper === "flip-body" ? flip(signed) : signed;
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          res.write(sent);
          if (fake.tamper !== "drop-receipt") res.write(receiptSseBlock(receipt));
          res.end();
          return;
        }
        res.writeHead(404, { "content-type": "application/json" });
        res.end('{"error":{"message":"not found"}}');
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  fake.origin = `https://127.0.0.1:${port}`;
  fake.baseURL = `${fake.origin}/v1`;
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await nsm.close();
  };
  return fake;
}
