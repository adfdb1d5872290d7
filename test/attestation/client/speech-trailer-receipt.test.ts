/**
 * A binary answer's receipt rides in the `x-egw-receipt` HTTP trailer
 * (docs/PROTOCOL.md "Audio"). The verifying client accepts it only when it
 * signs exactly the audio bytes received: altered audio, a flipped or
 * foreign signature, or a missing trailer are refused like any bad receipt.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type VerifiedFetch } from "../../../attestation/client/index.js";
import { PCR0_TEST, startFakeGateway, type FakeGateway, type Tamper } from "./helpers.js";

let fake: FakeGateway;
let f: VerifiedFetch;
let client: OpenAI;
beforeAll(async () => {
  fake = await startFakeGateway();
  f = createVerifiedFetch({
    baseURL: fake.baseURL,
    verificationErrors: "throw",
    policy: { measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [fake.anchor] },
  });
  client = new OpenAI({ baseURL: fake.baseURL, apiKey: "k", fetch: f, maxRetries: 0 });
});
afterAll(async () => {
  await f?.close();
  await fake?.close();
});

function codeOf(err: unknown): string | undefined {
  let e = err as { cause?: unknown; code?: unknown; name?: string } | undefined;
  while (e && e.name !== "ClientError" && e.cause) e = e.cause as typeof e;
  return e?.name === "ClientError" ? (e.code as string) : undefined;
}

describe("speech: the trailer receipt", () => {
  it("untampered: verified, the audio unchanged", async () => {
    fake.tamper = "none";
    const res = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "hi" });
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe("ID3fake-audio-bytes-for-the-verifying-client");
    expect(f.getReceipts().at(-1)!.claims.path).toBe("/v1/audio/speech");
  });

  const cases: [Tamper, string][] = [
    ["flip-body", "ERR_RECEIPT_RESPONSE_MISMATCH"],
    ["flip-receipt", "ERR_SIGNATURE_INVALID"],
    ["other-key", "ERR_SIGNATURE_INVALID"],
    ["drop-receipt", "ERR_RECEIPT_MISSING"],
  ];
  for (const [tamper, code] of cases) {
    it(`${tamper}: refused with ${code}`, async () => {
      fake.tamper = tamper;
      const err = await client.audio.speech.create({ model: "tts-1", voice: "alloy", input: "hi" }).catch((e: unknown) => e);
      expect(codeOf(err)).toBe(code);
    });
  }

  it("by default the refusal is the client's own 406 answer, which the SDK raises with the code and does not retry", async () => {
    fake.tamper = "flip-body";
    const answering = createVerifiedFetch({
      baseURL: fake.baseURL,
      policy: { measurements: [{ label: "fake", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [fake.anchor] },
    });
    try {
      const sdk = new OpenAI({ baseURL: fake.baseURL, apiKey: "k", fetch: answering, maxRetries: 2 });
      const before = fake.requests.filter((r) => r === "POST /v1/audio/speech").length;
      const err = await sdk.audio.speech.create({ model: "tts-1", voice: "alloy", input: "hi" }).catch((e: unknown) => e);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(406);
      expect((err as Error).message).toContain("ERR_RECEIPT_RESPONSE_MISMATCH");
      expect(fake.requests.filter((r) => r === "POST /v1/audio/speech").length - before).toBe(1);
    } finally {
      await answering.close();
    }
  });
});
