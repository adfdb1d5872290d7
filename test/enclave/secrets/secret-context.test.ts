import { describe, expect, it } from "vitest";
import { PROVIDER_SECRET_PURPOSE, providerSecretContext, secretOrigin } from "../../../enclave/secrets/secret-context.js";

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe("providerSecretContext", () => {
  it("builds the exact, frozen three-pair context with the WHATWG origin", () => {
    const ctx = providerSecretContext("OPENAI_API_KEY", "https://api.openai.com");
    expect(ctx).toEqual({ "egw:purpose": "provider-secret", "egw:secret": "OPENAI_API_KEY", "egw:origin": "https://api.openai.com" });
    expect(PROVIDER_SECRET_PURPOSE).toBe("provider-secret");
    expect(Object.isFrozen(ctx)).toBe(true);
    expect(Object.keys(ctx)).toEqual(["egw:purpose", "egw:secret", "egw:origin"]);
  });

  it.each([
    ["https://api.openai.com/", "https://api.openai.com"],
    ["https://API.OpenAI.com", "https://api.openai.com"],
    ["https://api.openai.com:443", "https://api.openai.com"],
    ["https://api.example:8443", "https://api.example:8443"],
    ["https://bücher.example", "https://xn--bcher-kva.example"],
    ["https://[::1]:9443", "https://[::1]:9443"],
  ])("serialises %s as %s", (input, origin) => {
    expect(secretOrigin(input)).toBe(origin);
  });

  it.each([
    "http://api.openai.com",
    "https://api.openai.com/v1",
    "https://api.openai.com/?x=1",
    "https://api.openai.com?",
    "https://api.openai.com#",
    "https://api.openai.com/#f",
    "https://user:pw@api.openai.com",
    "https://user@api.openai.com",
    "ftp://api.openai.com",
    "file:///etc/passwd",
    "data:text/plain,x",
    "api.openai.com",
    "",
    `https://${"a".repeat(1100)}.example`,
  ])("refuses the origin %s", (origin) => {
    expect(codeOf(() => providerSecretContext("OPENAI_API_KEY", origin))).toBe("ERR_SECRET_CONTEXT_ORIGIN");
  });

  it("admits http: only with dev", () => {
    expect(providerSecretContext("K", "http://127.0.0.1:8080", { dev: true })["egw:origin"]).toBe("http://127.0.0.1:8080");
    expect(codeOf(() => providerSecretContext("K", "http://127.0.0.1:8080"))).toBe("ERR_SECRET_CONTEXT_ORIGIN");
    expect(codeOf(() => providerSecretContext("K", "http://127.0.0.1:8080/v1", { dev: true }))).toBe("ERR_SECRET_CONTEXT_ORIGIN");
    expect(codeOf(() => providerSecretContext("K", "ws://127.0.0.1:8080", { dev: true }))).toBe("ERR_SECRET_CONTEXT_ORIGIN");
  });

  it.each(["", "lower", "1KEY", "_KEY", "KEY-1", "KEY ", `K${"A".repeat(64)}`, "ÄKEY"])("refuses the name %j", (name) => {
    expect(codeOf(() => providerSecretContext(name, "https://api.openai.com"))).toBe("ERR_SECRET_CONTEXT_NAME");
  });

  it("accepts the longest name", () => {
    expect(providerSecretContext(`K${"A".repeat(63)}`, "https://a.example")["egw:secret"]).toHaveLength(64);
  });
});
