import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand } from "@aws-sdk/client-kms";
import tls from "node:tls";
import { createVerifiedFetch, type ClientPolicy } from "../../attestation/client/index.js";
import { identityFromKeys } from "../../enclave/identity.js";
import { openIdentity } from "../../enclave/secrets/identity-blob.js";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { loadOrCreateDevCa } from "../../attestation/dev/dev-ca.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";
import { parseTrustPolicy, trustPolicySha256 } from "../../attestation/trust-policy.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { hashToken } from "../../enclave/auth.js";
import { IDENTITY_ENCRYPTION_CONTEXT, sealIdentity } from "../../enclave/secrets/identity-blob.js";
import { nextIdentityKeys } from "../../enclave/secrets/identity-source.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import type { BootStatus, BundleInput } from "../../host/provision/index.js";
import { startMockKms, type MockKms } from "../../infra/dev/local-kms.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";
import { provisionEnclave, type ProvisionedEnclave } from "../helpers/provisioned-enclave.js";

/**
 * Issue 11 §8: each attack a hostile operator can mount with the genuine
 * image and only the inputs the threat model gives the host, end to end
 * through the production provisioning path (enclave/main.ts
 * --provision-listen, the host's bundle encoder and sender), with the
 * simulated NSM and a local KMS that plays both the key owner's key
 * (account 111122223333) and a host-owned key (444455556666).
 *
 * The host writes the whole bundle: trust policy, operations, sealed file,
 * credentials and KMS endpoint. Each attack is refused with a stable code
 * before any provider key leaves the enclave, or (when the host writes its
 * own trust policy) boots an enclave whose attested, served policy says so,
 * which the client refuses (the last describe block of this file).
 * The legitimate path runs in the same file, against the same KMS.
 */
const REAL_KEY = "sk-CANARY-owner-provider-key-7f3a";
const B_KEY = "sk-CANARY-owner-provider-key-b-19c2";
const TOKEN = "egw-hostile-e2e-token";
const PCR1 = new Uint8Array(createHash("sha384").update("enclave-gateway/dev/pcr1 simulated kernel and bootstrap", "utf8").digest());
const DAY = 24 * 3600_000;
const now = () => new Date();

let dir: string;
let stateDir: string;
let anchor: TrustAnchor;
let kms: MockKms;
let hostKms: MockKms;
let upstream: MockOpenAI;
let upstreamB: MockOpenAI;
let sink: MockOpenAI;
const running: ProvisionedEnclave[] = [];
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-hostile-"));
  stateDir = path.join(dir, "state");
  const ca = await loadOrCreateDevCa(stateDir, { now });
  anchor = trustAnchorFromPem(ca.rootPem, "development");
  kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 1: PCR1 } }, now });
  // The host's key: its policy is the host's to write, so it also hands out data keys in the clear.
  hostKms = await startMockKms({
    trustedRoot: anchor,
    policy: { allowedPcrs: { 1: PCR1 }, denyWithoutRecipient: false, denyIdentityEncrypt: false },
    now,
    account: "444455556666",
  });
  upstream = await startMockOpenAI();
  upstreamB = await startMockOpenAI();
  sink = await startMockOpenAI();
  closers.push(
    () => kms.close(),
    () => hostKms.close(),
    () => upstream.close(),
    () => upstreamB.close(),
    () => sink.close(),
  );
});
afterAll(async () => {
  for (const e of running) await e.stop();
  for (const close of closers.reverse()) await close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const origin = (m: MockOpenAI) => new URL(m.url).origin;
const OPERATIONS = enc({ version: 1, clients: [{ name: "t", tokenSha256: hashToken(TOKEN), models: ["*"] }], limits: { maxRetries: 0 } });

/** The key owner's trust policy: provider "openai" at the real upstream, its secret under the owner's key. */
function ownerPolicy(extra: { identity?: unknown; providers?: unknown[]; secretsArn?: string } = {}) {
  return enc({
    version: 1,
    providers: extra.providers ?? [{ name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" }],
    models: { gpt: { provider: "openai", model: "gpt-4o" } },
    secrets: { kmsKeyArn: extra.secretsArn ?? kms.keyArn },
    identity: extra.identity ?? { mode: "ephemeral" },
  });
}

async function seal(by: MockKms, name: string, forOrigin: string, value: string): Promise<string> {
  const c = createKmsClient({ region: by.region, endpoint: by.endpoint, credentials: by.credentials });
  try {
    const out = await c.send(
      new EncryptCommand({ KeyId: by.keyArn, Plaintext: Buffer.from(value), EncryptionContext: { ...providerSecretContext(name, forOrigin, { dev: true }) } }),
    );
    return Buffer.from(out.CiphertextBlob!).toString("base64");
  } finally {
    c.destroy();
  }
}

const sealedFile = (keyId: string, secrets: Record<string, string>, identity?: unknown) =>
  enc({ version: 1, keyId, region: kms.region, secrets, ...(identity !== undefined && { identity }) });

async function provision(bundle: Omit<BundleInput, "awsCredentials"> & { via?: MockKms }, expectOutcome: "ready" | "identity" = "ready"): Promise<ProvisionedEnclave> {
  const via = bundle.via ?? kms;
  const { via: _, ...rest } = bundle;
  const e = await provisionEnclave({
    dir,
    stateDir,
    now,
    expect: expectOutcome,
    bundle: { ...rest, ...(rest.sealedSecrets && { awsCredentials: via.credentials, kmsEndpoint: rest.kmsEndpoint ?? via.endpoint }) },
  });
  running.push(e);
  return e;
}

function failedWith(status: BootStatus, code: string) {
  expect(status, JSON.stringify(status)).toMatchObject({ status: "failed", code });
}

const insecure = new Agent({ connect: { rejectUnauthorized: false } });
closers.push(() => insecure.close());

async function chat(port: number) {
  const res = await request(`https://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    dispatcher: insecure,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "hi" }] }),
  });
  await res.body.text();
  return res.statusCode;
}

async function attested(port: number) {
  const doc = new Uint8Array(await (await request(`https://127.0.0.1:${port}/v1/attestation`, { dispatcher: insecure })).body.arrayBuffer());
  const verified = await verifyAttestation(doc, { currentDate: now(), expectedPcrs: "any", trustedRoots: [anchor] });
  const policy = new Uint8Array(await (await request(`https://127.0.0.1:${port}/v1/attestation/policy`, { dispatcher: insecure })).body.arrayBuffer());
  return { binding: decodeBinding(verified.document.userData), policy };
}

const sinkCalls = () => sink.requests.length;
const leaked = () => [...sink.requests, ...upstreamB.requests].some((r) => JSON.stringify(r.headers).includes("CANARY"));

describe("the legitimate path, through the provisioning channel", { timeout: 60_000 }, () => {
  it("boots with the owner's trust policy and sealed key, serves with it, and attests and serves that exact policy", async () => {
    const policy = ownerPolicy();
    const e = await provision({
      trustPolicy: policy,
      operations: OPERATIONS,
      sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) }),
    });
    expect(e.status.status).toBe("ready");
    const port = (e.status as { port: number }).port;
    expect(await chat(port)).toBe(200);
    expect(upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${REAL_KEY}`);
    const { binding, policy: served } = await attested(port);
    expect(Buffer.from(served).equals(Buffer.from(policy))).toBe(true);
    expect(Buffer.from(binding.policySha256!)).toEqual(Buffer.from(trustPolicySha256(policy)));
    expect((e.status as { policySha256: string }).policySha256).toBe(Buffer.from(trustPolicySha256(policy)).toString("hex"));
    const text = e.out.text() + e.err.text();
    expect(text).not.toContain("CANARY");
  });
});

describe("a host-written trust policy that sends a sealed key elsewhere", { timeout: 60_000 }, () => {
  it("pointing the provider at a host-run endpoint: KMS will not release a key sealed for the real origin (ERR_KMS_RELEASE_DENIED); nothing reaches the endpoint", async () => {
    const before = sinkCalls();
    const policy = ownerPolicy({ providers: [{ name: "openai", kind: "openai", baseUrl: sink.url, secret: "OPENAI_API_KEY" }] });
    const e = await provision({
      trustPolicy: policy,
      operations: OPERATIONS,
      sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) }),
    });
    failedWith(e.status, "ERR_KMS_RELEASE_DENIED");
    expect(sinkCalls()).toBe(before);
    expect(leaked()).toBe(false);
  });

  it("as an openai-compatible entry naming the same secret, next to the real one: one secret serves one provider (ERR_TRUST_POLICY_INVALID)", async () => {
    const policy = ownerPolicy({
      providers: [
        { name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" },
        { name: "mirror", kind: "openai-compatible", baseUrl: sink.url, secret: "OPENAI_API_KEY" },
      ],
    });
    const file = sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) });
    const before = kms.requests.length;
    const e = await provision({ trustPolicy: policy, operations: OPERATIONS, sealedSecrets: file });
    failedWith(e.status, "ERR_TRUST_POLICY_INVALID");
    expect(kms.requests.length).toBe(before);
  });

  it("a destination smuggled into the operations document is refused (ERR_CONFIG)", async () => {
    const ops = enc({ version: 1, clients: [], egressAllowlist: [new URL(sink.url).host] });
    const e = await provision({ trustPolicy: ownerPolicy(), operations: ops });
    failedWith(e.status, "ERR_CONFIG");
  });
});

describe("ciphertexts swapped between providers", { timeout: 60_000 }, () => {
  it("each ciphertext opens only for the origin it was sealed for: the boot stops (ERR_KMS_RELEASE_DENIED)", async () => {
    const policy = ownerPolicy({
      providers: [
        { name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" },
        { name: "b", kind: "openai-compatible", baseUrl: upstreamB.url, secret: "B_KEY" },
      ],
    });
    const a = await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY);
    const b = await seal(kms, "B_KEY", origin(upstreamB), B_KEY);
    const ok = await provision({ trustPolicy: policy, operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: a, B_KEY: b }) });
    expect(ok.status.status).toBe("ready");
    const swapped = await provision({ trustPolicy: policy, operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: b, B_KEY: a }) });
    failedWith(swapped.status, "ERR_KMS_RELEASE_DENIED");
    expect(leaked()).toBe(false);
  });
});

describe("a host-owned KMS key for the secrets", { timeout: 60_000 }, () => {
  it("the owner's policy with a file sealed under the host's key, at the host's KMS: refused (KMS does not know the pinned key; an impersonating KMS answers for the wrong key)", async () => {
    const file = sealedFile(hostKms.keyArn, { OPENAI_API_KEY: await seal(hostKms, "OPENAI_API_KEY", origin(upstream), "sk-host-own") });
    failedWith((await provision({ trustPolicy: ownerPolicy(), operations: OPERATIONS, sealedSecrets: file, via: hostKms })).status, "ERR_KMS_RELEASE_DENIED");
    hostKms.misbehave = "any-key-id";
    try {
      failedWith((await provision({ trustPolicy: ownerPolicy(), operations: OPERATIONS, sealedSecrets: file, via: hostKms })).status, "ERR_KMS_KEY_MISMATCH");
    } finally {
      hostKms.misbehave = "none";
    }
  });

  it("the host's own trust policy naming its key boots, but the attested and served policy says so: a client pinning the owner's ARN refuses it", async () => {
    const policy = ownerPolicy({ secretsArn: hostKms.keyArn });
    const file = sealedFile(hostKms.keyArn, { OPENAI_API_KEY: await seal(hostKms, "OPENAI_API_KEY", origin(upstream), "sk-host-own") });
    const e = await provision({ trustPolicy: policy, operations: OPERATIONS, sealedSecrets: file, via: hostKms });
    expect(e.status.status).toBe("ready");
    const { binding, policy: served } = await attested((e.status as { port: number }).port);
    expect(Buffer.from(binding.policySha256!)).not.toEqual(Buffer.from(trustPolicySha256(ownerPolicy())));
    expect(parseTrustPolicy(served, { dev: true }).secrets!.kmsKeyArn).toBe(hostKms.keyArn);
  });
});

describe("a host-owned KMS key for the identity, both ways", { timeout: 60_000 }, () => {
  const sealedPolicy = (arn: string) => ownerPolicy({ identity: { mode: "sealed", kmsKeyArn: arn } });
  const generate = { identity: { generate: { validityDays: 30 } } };

  it("legitimate: the owner's policy makes an identity under the owner's key, and a replica serves it", async () => {
    const secrets = { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) };
    const made = await provision({ trustPolicy: sealedPolicy(kms.keyArn), operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, secrets), ...generate }, "identity");
    expect(made.status.status).toBe("identity");
    const identity = (made.status as { identity: unknown }).identity;
    const replica = await provision({ trustPolicy: sealedPolicy(kms.keyArn), operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, secrets, identity) });
    expect(replica.status).toMatchObject({ status: "ready", tlsSpkiSha256: (made.status as { tlsSpkiSha256: string }).tlsSpkiSha256 });
    // The same identity under an ephemeral policy is refused: the served policy would contradict it.
    const ephemeral = await provision({ trustPolicy: ownerPolicy(), operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, secrets, identity) });
    failedWith(ephemeral.status, "ERR_IDENTITY_POLICY");
    // A sealed policy without the identity does not quietly fall back to an ephemeral one.
    failedWith((await provision({ trustPolicy: sealedPolicy(kms.keyArn), operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, secrets) })).status, "ERR_IDENTITY_MISSING");
  });

  it("generation: the owner's policy, pointed at the host's KMS, makes nothing (ERR_KMS_RELEASE_DENIED, or ERR_KMS_KEY_MISMATCH from an impersonator)", async () => {
    const file = sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) });
    hostKms.misbehave = "any-key-id";
    try {
      const e = await provision({ trustPolicy: sealedPolicy(kms.keyArn), operations: OPERATIONS, sealedSecrets: file, via: hostKms, ...generate }, "identity");
      failedWith(e.status, "ERR_KMS_KEY_MISMATCH");
    } finally {
      hostKms.misbehave = "none";
    }
    // An ephemeral policy makes no shared identity at all.
    failedWith((await provision({ trustPolicy: ownerPolicy(), operations: OPERATIONS, sealedSecrets: file, ...generate }, "identity")).status, "ERR_IDENTITY_POLICY");
  });

  it("opening: an identity the genuine image made under the host's key does not open for the owner's policy", async () => {
    const hostSecrets = { OPENAI_API_KEY: await seal(hostKms, "OPENAI_API_KEY", origin(upstream), "sk-host-own") };
    const made = await provision(
      {
        trustPolicy: ownerPolicy({ secretsArn: hostKms.keyArn, identity: { mode: "sealed", kmsKeyArn: hostKms.keyArn } }),
        operations: OPERATIONS,
        sealedSecrets: sealedFile(hostKms.keyArn, hostSecrets),
        via: hostKms,
        ...generate,
      },
      "identity",
    );
    expect(made.status.status).toBe("identity");
    const identity = (made.status as { identity: unknown }).identity;
    const ownerSecrets = { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) };
    // Its generator's attestation names the host's key: refused before the data key is even asked for.
    const before = kms.requests.filter((r) => r.target === "TrentService.Decrypt").length;
    const replica = await provision({ trustPolicy: sealedPolicy(kms.keyArn), operations: OPERATIONS, sealedSecrets: sealedFile(kms.keyArn, ownerSecrets, identity) });
    failedWith(replica.status, "ERR_IDENTITY_PROVENANCE");
    // The owner's secrets were opened (they come first), the identity's data key never.
    expect(kms.requests.filter((r) => r.target === "TrentService.Decrypt").length - before).toBe(1);
    // The identity alone at the host's KMS (the owner's secrets need the owner's KMS, so the host brings a policy with no secrets).
    const identityOnly = enc({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "sealed", kmsKeyArn: kms.keyArn } });
    hostKms.misbehave = "any-key-id";
    try {
      failedWith(
        (await provision({ trustPolicy: identityOnly, operations: enc({ version: 1, clients: [] }), sealedSecrets: sealedFile(hostKms.keyArn, {}, identity), via: hostKms }))
          .status,
        "ERR_IDENTITY_PROVENANCE",
      );
    } finally {
      hostKms.misbehave = "none";
    }
  });
});

describe("an identity blob made offline", { timeout: 60_000 }, () => {
  it("even under the host's own key and its own trust policy, a blob no enclave generated never opens (ERR_IDENTITY_PROVENANCE)", async () => {
    const c = createKmsClient({ region: hostKms.region, endpoint: hostKms.endpoint, credentials: hostKms.credentials });
    const out = await c.send(new GenerateDataKeyCommand({ KeyId: hostKms.keyArn, KeySpec: "AES_256", EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } }));
    c.destroy();
    const keys = nextIdentityKeys({ now: Date.now(), validityMs: 30 * DAY });
    const blob = sealIdentity(keys, out.Plaintext!, out.CiphertextBlob!);
    const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
    // A document of the dev root, but not one generated for this blob: any bytes the host can produce.
    const identity = { dataKey: b64(blob.dataKey), iv: b64(blob.iv), sealed: b64(blob.sealed), attestation: b64(new Uint8Array(64).fill(7)) };
    const policy = enc({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "sealed", kmsKeyArn: hostKms.keyArn } });
    const e = await provision({ trustPolicy: policy, operations: enc({ version: 1, clients: [] }), sealedSecrets: sealedFile(hostKms.keyArn, {}, identity), via: hostKms });
    failedWith(e.status, "ERR_IDENTITY_PROVENANCE");
  });
});

/**
 * The client's half: when the host writes its own trust policy, the genuine
 * enclave boots and attests it. A relying party whose manifest constrains
 * trust refuses it before a request byte leaves; one that says "any" is
 * exposed, and the man in the middle below shows exactly how.
 */
describe("the relying party's side of the same attacks", { timeout: 60_000 }, () => {
  const measurements: ClientPolicy["measurements"] = [{ label: "dev image", pcrs: new Map([[1, PCR1]]) }];
  const policyFor = (trust: ClientPolicy["trust"]): ClientPolicy => ({ measurements, trust, trustedRoots: [anchor] });
  const body = JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "CANARY-PROMPT-hostile-e2e" }] });
  const send = (baseURL: string, policy: ClientPolicy) => {
    const f = createVerifiedFetch({ baseURL, policy, verificationErrors: "throw" });
    return f(`${baseURL}/chat/completions`, { method: "POST", headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body })
      .then(async (r) => ({ status: r.status, text: await r.text() }))
      .finally(() => f.close());
  };
  const owner = (): ClientPolicy["trust"] => ({ upstreamOrigins: [origin(upstream)], identity: { mode: "ephemeral" }, secretsKmsKeyArn: kms.keyArn });

  it("the owner's deployment passes the owner's constraints; the same constraints refuse a host policy naming the host's key, before the prompt leaves", async () => {
    const good = await provision({
      trustPolicy: ownerPolicy(),
      operations: OPERATIONS,
      sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) }),
    });
    const goodURL = `https://127.0.0.1:${(good.status as { port: number }).port}/v1`;
    expect(await send(goodURL, policyFor(owner()))).toMatchObject({ status: 200 });

    const hostile = await provision({
      trustPolicy: ownerPolicy({ secretsArn: hostKms.keyArn }),
      operations: OPERATIONS,
      sealedSecrets: sealedFile(hostKms.keyArn, { OPENAI_API_KEY: await seal(hostKms, "OPENAI_API_KEY", origin(upstream), "sk-host-own") }),
      via: hostKms,
    });
    const before = upstream.requests.length;
    await expect(send(`https://127.0.0.1:${(hostile.status as { port: number }).port}/v1`, policyFor(owner()))).rejects.toMatchObject({ code: "ERR_TRUST_NOT_ALLOWED" });
    expect(upstream.requests.length).toBe(before);
  });

  it("a host policy routing to a host-run endpoint (no sealed key needed) is refused by the allowed origins", async () => {
    const policy = enc({
      version: 1,
      providers: [{ name: "openai", kind: "openai-compatible", baseUrl: sink.url }],
      models: { gpt: { provider: "openai", model: "gpt-4o" } },
      identity: { mode: "ephemeral" },
    });
    const e = await provision({ trustPolicy: policy, operations: OPERATIONS });
    expect(e.status.status).toBe("ready");
    const before = sinkCalls();
    await expect(send(`https://127.0.0.1:${(e.status as { port: number }).port}/v1`, policyFor(owner()))).rejects.toMatchObject({ code: "ERR_TRUST_NOT_ALLOWED" });
    expect(sinkCalls()).toBe(before);
    // Unconstrained, the same request goes to the host's endpoint: what "trust": "any" means.
    expect(await send(`https://127.0.0.1:${(e.status as { port: number }).port}/v1`, policyFor("any"))).toMatchObject({ status: 200 });
    expect(JSON.stringify(sink.requests.at(-1)!.body)).toContain("CANARY-PROMPT");
  });

  it("a man in the middle with a host-known identity key: the genuine image made it under the host's KMS key; constrained clients refuse, an unconstrained one is read in clear", async () => {
    // 1. The host has the genuine image make a shared identity under a key it owns…
    const hostPolicy = ownerPolicy({ secretsArn: hostKms.keyArn, identity: { mode: "sealed", kmsKeyArn: hostKms.keyArn } });
    const hostSecrets = { OPENAI_API_KEY: await seal(hostKms, "OPENAI_API_KEY", origin(upstream), "sk-host-own") };
    const made = await provision(
      { trustPolicy: hostPolicy, operations: OPERATIONS, sealedSecrets: sealedFile(hostKms.keyArn, hostSecrets), via: hostKms, identity: { generate: { validityDays: 30 } } },
      "identity",
    );
    const identity = (made.status as { identity: { dataKey: string; iv: string; sealed: string } }).identity;
    // 2. …decrypts the data key with its own key (its key policy needs no attestation) and so learns the TLS key…
    const c = createKmsClient({ region: hostKms.region, endpoint: hostKms.endpoint, credentials: hostKms.credentials });
    const dataKey = (await c.send(new DecryptCommand({ CiphertextBlob: Buffer.from(identity.dataKey, "base64"), EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } })))
      .Plaintext!;
    c.destroy();
    const keys = openIdentity(
      { dataKey: Buffer.from(identity.dataKey, "base64"), iv: Buffer.from(identity.iv, "base64"), sealed: Buffer.from(identity.sealed, "base64") },
      dataKey,
    );
    const known = await identityFromKeys(keys, { now });
    // 3. …boots a replica with it, and puts a TLS terminator with the same key in front of it.
    const replica = await provision({ trustPolicy: hostPolicy, operations: OPERATIONS, sealedSecrets: sealedFile(hostKms.keyArn, hostSecrets, identity), via: hostKms });
    const port = (replica.status as { port: number }).port;
    let seen = "";
    const mitm = tls.createServer({ key: known.tls.keyPem, cert: known.tls.certPem, minVersion: "TLSv1.3" }, (client) => {
      const enclave = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
      client.on("data", (d: Buffer) => (seen += d.toString("latin1")));
      client.pipe(enclave).pipe(client);
      const end = () => {
        client.destroy();
        enclave.destroy();
      };
      client.on("error", end);
      enclave.on("error", end);
    });
    await new Promise<void>((r) => mitm.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise((r) => mitm.close(r)));
    const viaMitm = `https://127.0.0.1:${(mitm.address() as { port: number }).port}/v1`;

    // The owner's constraints (ephemeral identity, or sealed under the owner's key) refuse it before the prompt leaves.
    await expect(send(viaMitm, policyFor(owner()))).rejects.toMatchObject({ code: "ERR_TRUST_NOT_ALLOWED" });
    await expect(send(viaMitm, policyFor({ identity: { mode: "sealed", kmsKeyArn: kms.keyArn } }))).rejects.toMatchObject({ code: "ERR_TRUST_NOT_ALLOWED" });
    expect(seen).not.toContain("CANARY-PROMPT");
    // An unconstrained client accepts the attested TLS key, which the host knows: the prompt is read in clear.
    expect(await send(viaMitm, policyFor("any"))).toMatchObject({ status: 200 });
    expect(seen).toContain("CANARY-PROMPT");
  });

  it("a client that constrains nothing must say so: no trust section is refused, and an empty one too", async () => {
    const e = await provision({
      trustPolicy: ownerPolicy(),
      operations: OPERATIONS,
      sealedSecrets: sealedFile(kms.keyArn, { OPENAI_API_KEY: await seal(kms, "OPENAI_API_KEY", origin(upstream), REAL_KEY) }),
    });
    const url = `https://127.0.0.1:${(e.status as { port: number }).port}/v1`;
    const attempt = async (policy: ClientPolicy) => send(url, policy);
    await expect(attempt({ measurements, trustedRoots: [anchor] } as unknown as ClientPolicy)).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    await expect(attempt(policyFor({} as ClientPolicy["trust"]))).rejects.toMatchObject({ code: "ERR_POLICY_INVALID", message: expect.stringMatching(/"any" on purpose/) });
  });
});
