import { describe, expect, it } from "vitest";
import { UsageError } from "../../../infra/cli/context.js";
import { egressRules, kmsEndpointRule, kmsRegion, proxyProtocolFromOperations, trustPolicyOnHost } from "../../../infra/cli/host-common.js";

/**
 * What `egw host` reads from the two files: the egress allowlist, derived
 * from the trust policy exactly as the enclave derives its own, and the
 * PROXY protocol switch from the operations file. Nothing is listed by hand.
 */
const file = (value: unknown, name = "trust-policy.json") => ({
  file: `/etc/egw/${name}`,
  bytes: new TextEncoder().encode(typeof value === "string" ? value : JSON.stringify(value)),
});
const SECRETS_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const IDENTITY_ARN = "arn:aws:kms:eu-central-1:111122223333:key/abcd1234-12ab-34cd-56ef-1234567890ab";
const POLICY = {
  version: 1,
  providers: [
    { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
    { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example:8443/v1" },
    { name: "local", kind: "local" },
  ],
  secrets: { kmsKeyArn: SECRETS_ARN },
  identity: { mode: "sealed", kmsKeyArn: IDENTITY_ARN },
};

const usage = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a usage error");
};

describe("egress rules on the host", () => {
  it("are the trust policy's provider origins and the KMS endpoint of each key ARN's region, nothing else", () => {
    expect(egressRules(trustPolicyOnHost(file(POLICY)), [], [])).toEqual([
      "api.openai.com:443",
      "kms.eu-central-1.amazonaws.com:443",
      "kms.eu-west-1.amazonaws.com:443",
      "llm.acme.example:8443",
    ]);
    // The built-in model alone needs no egress at all.
    expect(egressRules(trustPolicyOnHost(file({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } })), [], [])).toEqual([]);
    expect(egressRules(undefined, [], [])).toEqual([]);
  });

  it("add --allow as given, and --allow-private replaces the same pair (the explicit flag wins)", () => {
    const rules = egressRules(trustPolicyOnHost(file(POLICY)), ["s3.eu-west-1.amazonaws.com:443"], ["LLM.acme.example:8443"]);
    expect(rules).toContain("s3.eu-west-1.amazonaws.com:443");
    expect(rules.filter((r) => (typeof r === "string" ? r : r.host).toLowerCase().startsWith("llm.acme.example"))).toEqual([
      { host: "llm.acme.example", port: 8443, allowPrivate: true },
    ]);
    expect(usage(() => egressRules(undefined, [], ["no-port"]))).toContain("--allow-private no-port");
  });

  it("refuse a file that is no trust policy, naming the file; a single runtime config with egressAllowlist is one", () => {
    expect(usage(() => trustPolicyOnHost(file("{")))).toMatch(/^--trust-policy \/etc\/egw\/trust-policy\.json: trust policy/);
    const legacy = { version: 1, providers: [{ name: "local", kind: "local" }], egressAllowlist: ["evil.example:443"], clients: [] };
    expect(usage(() => trustPolicyOnHost(file(legacy)))).toContain("unknown field");
  });

  it("accept a development policy (http origins): the host cannot tell a simulated enclave, which applies the real rules itself", () => {
    const dev = { version: 1, providers: [{ name: "mock", kind: "openai-compatible", baseUrl: "http://127.0.0.1:9999/v1" }], identity: { mode: "ephemeral" } };
    expect(egressRules(trustPolicyOnHost(file(dev)), [], [])).toEqual(["127.0.0.1:9999"]);
  });

  it("name a --kms-endpoint as host:port", () => {
    expect(kmsEndpointRule("https://vpce-0123.kms.eu-west-1.vpce.amazonaws.com")).toBe("vpce-0123.kms.eu-west-1.vpce.amazonaws.com:443");
    expect(kmsEndpointRule("http://127.0.0.1:4566/")).toBe("127.0.0.1:4566");
  });
});

describe("KMS region for the credentials", () => {
  it("comes from the trust policy's key ARNs, never from the sealed file", () => {
    const policy = trustPolicyOnHost(file(POLICY));
    expect(kmsRegion(policy, "secrets")).toBe("eu-west-1");
    expect(kmsRegion(policy, "identity")).toBe("eu-central-1");
    const ephemeral = trustPolicyOnHost(file({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } }));
    expect(kmsRegion(ephemeral, "secrets")).toBeUndefined();
    expect(kmsRegion(ephemeral, "identity")).toBeUndefined();
  });
});

describe("the PROXY protocol switch from operations", () => {
  it("is on exactly when the operations file says true", () => {
    expect(proxyProtocolFromOperations(file({ version: 1, clients: [], proxyProtocol: true }, "operations.json"))).toBe(true);
    expect(proxyProtocolFromOperations(file({ version: 1, clients: [], proxyProtocol: false }, "operations.json"))).toBe(false);
    expect(proxyProtocolFromOperations(file({ version: 1, clients: [] }, "operations.json"))).toBe(false);
  });

  it("refuses an unreadable file or a switch that is not a boolean", () => {
    expect(usage(() => proxyProtocolFromOperations(file("{", "operations.json")))).toContain("--operations /etc/egw/operations.json");
    expect(usage(() => proxyProtocolFromOperations(file("[]", "operations.json")))).toContain("must be a JSON object");
    expect(usage(() => proxyProtocolFromOperations(file({ version: 1, proxyProtocol: "yes" }, "operations.json")))).toContain("proxyProtocol must be a boolean");
  });
});
