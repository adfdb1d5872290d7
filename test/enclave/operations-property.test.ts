import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { secretBindings, trustPolicySha256 } from "../../attestation/trust-policy.js";
import { attestedPolicyHash } from "../../host/transport/codec/config-hash.js";
import { DEFAULT_LIMITS, parseOperations } from "../../enclave/operations.js";
import { loadRuntimeConfig } from "../../enclave/runtime-config.js";

/**
 * Issue 11 §1: changing any operations field changes no destination and no
 * key. For arbitrary valid operations documents (every field of the schema,
 * random values in and out of range), what the gateway may dial, which
 * secret goes to which origin, which KMS keys are asked, the routes and the
 * attested policy hash are exactly those of the trust policy alone.
 */
const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const trustBytes = new TextEncoder().encode(
  JSON.stringify({
    version: 1,
    providers: [
      { name: "local", kind: "local" },
      { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
      { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example/v1", secret: "ACME_KEY" },
    ],
    models: { gpt: { provider: "openai", model: "gpt-5" }, acme: { provider: "acme", model: "a-1" } },
    secrets: { kmsKeyArn: ARN },
    identity: { mode: "sealed", kmsKeyArn: ARN },
  }),
);

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));
const name = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,31}$/);
const modelPattern = fc.constantFrom("*", "gpt", "acme", "local", "openai/*", "acme/a-2", "local/anything", "o*");
const client = fc.record(
  { name, tokenSha256: hex64, models: fc.array(modelPattern, { maxLength: 5 }), rateLimitPerMinute: fc.integer({ min: 0, max: 1_000_000 }) },
  { requiredKeys: ["name", "tokenSha256", "models"] },
);
const limitKeys = Object.keys(DEFAULT_LIMITS) as (keyof typeof DEFAULT_LIMITS)[];
const limits = fc.record(
  Object.fromEntries(limitKeys.map((k) => [k, k === "attestationReservedShare" ? fc.double({ min: 0, max: 1, noNaN: true }) : fc.integer({ min: 0, max: 2 ** 31 })])) as Record<
    string,
    fc.Arbitrary<number>
  >,
  { requiredKeys: [] },
);
const operations = fc.record(
  {
    version: fc.constant(1),
    clients: fc.uniqueArray(client, { maxLength: 6, selector: (c) => c.tokenSha256 }).map((cs) => cs.map((c, i) => ({ ...c, name: `${c.name.slice(0, 28)}-${i}` }))),
    limits,
    proxyProtocol: fc.boolean(),
    logLevel: fc.constantFrom("debug", "info", "warn", "error"),
  },
  { requiredKeys: ["version", "clients"] },
);

function destinations(config: ReturnType<typeof loadRuntimeConfig>) {
  return {
    egress: config.egressAllowlist,
    providers: config.providers,
    models: config.models,
    prefixRouting: config.prefixRouting,
    secrets: secretBindings(config.trust),
    secretsKey: config.trust.secrets,
    identity: config.trust.identity,
  };
}

describe("operations cannot move a prompt, a key or the identity (property)", () => {
  const reference = destinations(loadRuntimeConfig(trustBytes, new TextEncoder().encode('{"version":1,"clients":[]}'), { dev: false }));

  it("every valid operations document yields the trust policy's destinations, keys and hash, unchanged", () => {
    let accepted = 0;
    fc.assert(
      fc.property(operations, (ops) => {
        const bytes = new TextEncoder().encode(JSON.stringify(ops));
        let config;
        try {
          config = loadRuntimeConfig(trustBytes, bytes, { dev: false });
        } catch (err) {
          // Out-of-range limits are refused, with the operations code; never another outcome.
          expect((err as { code?: string }).code).toBe("ERR_CONFIG");
          return;
        }
        accepted += 1;
        expect(destinations(config)).toEqual(reference);
        expect(Buffer.from(attestedPolicyHash(trustBytes))).toEqual(Buffer.from(trustPolicySha256(trustBytes)));
      }),
      { numRuns: 300 },
    );
    // The property must have been exercised on accepted documents, not only on refusals.
    expect(accepted).toBeGreaterThan(50);
  });

  it("a field that is not in the operations schema is refused, whatever its name or value", () => {
    const key = fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !["version", "clients", "limits", "proxyProtocol", "logLevel", "__proto__"].includes(k));
    fc.assert(
      fc.property(key, fc.jsonValue(), (k, v) => {
        const bytes = new TextEncoder().encode(JSON.stringify({ version: 1, clients: [], [k]: v }));
        expect(() => parseOperations(bytes)).toThrow(expect.objectContaining({ code: "ERR_CONFIG" }));
      }),
      { numRuns: 200 },
    );
  });
});
