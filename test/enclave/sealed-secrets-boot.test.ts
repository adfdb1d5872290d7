import { EncryptCommand } from "@aws-sdk/client-kms";
import { afterAll, describe, expect, it } from "vitest";
import { createDevCa } from "../../attestation/dev/dev-ca.js";
import { decodeBinding } from "../../attestation/binding.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { hashToken } from "../../enclave/auth.js";
import { attestedConfigHash } from "../../enclave/boot.js";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { CLIENT_TOKEN, startHarness } from "../helpers/enclave-harness.js";
import { startMockKms } from "../../infra/dev/local-kms.js";
import { startMockOpenAI } from "../helpers/mock-openai.js";
import { splitConfig } from "../helpers/split-config.js";

/**
 * The enclave boots with provider keys sealed under KMS: it opens them with
 * Decrypt + Recipient through its own egress path, uses them upstream, and
 * attests the sealed file's hash. A KMS that refuses stops the boot.
 */
const SEALED_KEY = "sk-CANARYSEALEDKEY42";
const now = () => new Date();
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

async function setup(allowedPcr0: Uint8Array, kmsNow: () => Date = now) {
  const ca = await createDevCa({ now });
  const anchor = trustAnchorFromPem(ca.rootPem, "development");
  const kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: allowedPcr0 } }, now: kmsNow });
  closers.push(() => kms.close());
  const upstream = await startMockOpenAI();
  closers.push(() => upstream.close());
  const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  const blob = (
    await operator.send(
      new EncryptCommand({
        KeyId: kms.keyArn,
        Plaintext: Buffer.from(SEALED_KEY),
        EncryptionContext: { ...providerSecretContext("OPENAI_API_KEY", new URL(upstream.url).origin, { dev: true }) },
      }),
    )
  ).CiphertextBlob!;
  operator.destroy();
  const file = new Uint8Array(
    Buffer.from(JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: { OPENAI_API_KEY: Buffer.from(blob).toString("base64") } })),
  );
  const config = JSON.stringify({
    version: 1,
    providers: [{ name: "openai", kind: "openai", baseUrl: upstream.url, secret: "OPENAI_API_KEY" }],
    models: { gpt: { provider: "openai", model: "gpt-4o" } },
    clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
  });
  const docs = splitConfig(config, { secretsKmsKeyArn: kms.keyArn });
  const bytes = { trustPolicyBytes: new TextEncoder().encode(docs.trustPolicy), operationsBytes: new TextEncoder().encode(docs.operations) };
  return { ca, anchor, kms, upstream, file, config, docs, bytes };
}

describe("sealed provider keys at boot", () => {
  it("releases them through KMS with the attestation, uses them upstream, and attests the file's hash", async () => {
    const s = await setup(new Uint8Array(48).fill(0x11)); // the harness's PCR0
    const h = await startHarness({ ca: s.ca, ...s.docs, sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint } });
    closers.push(() => h.close());
    const decrypts = s.kms.requests.filter((r) => r.target === "TrentService.Decrypt");
    expect(decrypts).toHaveLength(1);
    expect(decrypts[0]!.body.Recipient).toMatchObject({ KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" });
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(200);
    expect(s.upstream.requests.at(-1)!.headers.authorization).toBe(`Bearer ${SEALED_KEY}`);
    // The attested config hash covers the sealed file too.
    const doc = new Uint8Array(await (await h.fetch(`${h.baseURL}/attestation`)).arrayBuffer());
    const verified = await verifyAttestation(doc, { currentDate: now(), expectedPcrs: "any", trustedRoots: [s.anchor] });
    const binding = decodeBinding(verified.document.userData);
    expect(Buffer.from(binding.configSha256).equals(Buffer.from(attestedConfigHash(s.bytes.trustPolicyBytes, s.bytes.operationsBytes, s.file)))).toBe(true);
    expect(h.logs.join("\n")).not.toContain("CANARYSEALEDKEY");
    expect(h.logs.join("\n")).toContain("secrets.released");
  });

  it("a KMS policy that does not admit these measurements stops the boot", async () => {
    const s = await setup(new Uint8Array(48).fill(0x99));
    await expect(startHarness({ ca: s.ca, ...s.docs, sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint } })).rejects.toMatchObject({
      code: "ERR_KMS_RELEASE_DENIED",
    });
  });

  it("a stale attestation document is refused by KMS, and the enclave does not start", async () => {
    // KMS's clock is an hour ahead of the enclave's: every document it sees is stale.
    const s = await setup(new Uint8Array(48).fill(0x11), () => new Date(Date.now() + 3600_000));
    await expect(startHarness({ ca: s.ca, ...s.docs, sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint } })).rejects.toMatchObject({
      code: "ERR_KMS_RELEASE_DENIED",
    });
  });

  it("a debug-mode document is refused even when its PCRs are listed", async () => {
    const s = await setup(new Uint8Array(48)); // the policy "allows" PCR0 = zeros
    const { SimulatedNsm } = await import("../../attestation/dev/simulated-nsm.js");
    const { bootEnclave } = await import("../../enclave/boot.js");
    const { memoryLogger } = await import("../../enclave/observability/log.js");
    const { staticSecrets } = await import("../../enclave/secrets.js");
    const attester = new SimulatedNsm({ ca: s.ca, now, pcrs: { 0: new Uint8Array(48), 1: new Uint8Array(48), 2: new Uint8Array(48) } });
    await expect(
      bootEnclave({
        ...s.bytes,
        attester,
        secrets: staticSecrets(new Map()),
        log: memoryLogger(),
        now,
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
        sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint },
      }),
    ).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED" });
  });

  it("a document whose public_key is not the enclave's recipient key cannot open the answer", async () => {
    const s = await setup(new Uint8Array(48).fill(0x11));
    const { SimulatedNsm } = await import("../../attestation/dev/simulated-nsm.js");
    const { bootEnclave } = await import("../../enclave/boot.js");
    const { memoryLogger } = await import("../../enclave/observability/log.js");
    const { staticSecrets } = await import("../../enclave/secrets.js");
    const { generateRecipientKey } = await import("../../enclave/secrets/recipient-decrypt.js");
    const real = new SimulatedNsm({ ca: s.ca, now, pcrs: { 0: new Uint8Array(48).fill(0x11) } });
    const other = generateRecipientKey();
    // An attester that puts someone else's key in the document (a swapped or buggy path).
    const swapping = {
      kind: real.kind,
      attest: (req: { publicKey?: Uint8Array; userData?: Uint8Array; nonce?: Uint8Array }) =>
        real.attest(req.publicKey && req.publicKey.length > 200 ? { ...req, publicKey: other.spkiDer } : req),
      describePcr: (i: number) => real.describePcr(i),
      getRandom: (n: number) => real.getRandom(n),
      close: () => real.close(),
    };
    await expect(
      bootEnclave({
        ...s.bytes,
        attester: swapping,
        secrets: staticSecrets(new Map()),
        log: memoryLogger(),
        now,
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
        sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint },
      }),
    ).rejects.toMatchObject({ code: "ERR_KMS_RESPONSE" }); // KMS encrypted to the other key: ours cannot open it
  });

  it("the egress allowlist is derived: the trust policy's provider origin and the checked KMS endpoint, nothing the host lists", async () => {
    const s = await setup(new Uint8Array(48).fill(0x11));
    const h = await startHarness({ ca: s.ca, ...s.docs, sealedSecrets: { file: s.file, credentials: s.kms.credentials, endpoint: s.kms.endpoint } });
    closers.push(() => h.close());
    expect(h.enclave.config.egressAllowlist).toEqual([new URL(s.upstream.url).host, new URL(s.kms.endpoint).host, `kms.${s.kms.region}.amazonaws.com:443`].sort());
    // A host-written allowlist is not even a field any more: operations refuses it.
    const ops = JSON.parse(s.docs.operations) as Record<string, unknown>;
    await expect(startHarness({ ca: s.ca, trustPolicy: s.docs.trustPolicy, operations: JSON.stringify({ ...ops, egressAllowlist: ["evil.example:443"] }) })).rejects.toMatchObject({
      code: "ERR_CONFIG",
    });
  });
});
