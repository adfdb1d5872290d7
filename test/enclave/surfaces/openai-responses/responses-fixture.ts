import OpenAI from "openai";
import { receiptKeyFromSpki, splitStreamReceipt, verifyReceipt, type ReceiptClaims } from "../../../../attestation/receipt.js";
import { gatewayApp, TOKEN, type GatewayApp } from "../../../helpers/gateway-app.js";
import { startMockAnthropic, type MockAnthropic } from "../../../helpers/mock-anthropic.js";
import { startMockGemini, type MockGemini } from "../../../helpers/mock-gemini.js";
import { startMockOpenAI, type MockOpenAI } from "../../../helpers/mock-openai.js";
import { startMockOpenAIResponses, type MockOpenAIResponses } from "../../../helpers/mock-openai-responses.js";

/**
 * One gateway app (driven through app.request(), no port) with every
 * provider kind behind /v1/responses, each upstream a loopback mock:
 *
 *   gpt      → kind openai (Responses mock): native
 *   compat   → openai-compatible, no `responses` capability (chat mock): translated
 *   compat-r → openai-compatible with capabilities.responses (Responses mock): native
 *   claude   → anthropic (mock): translated
 *   gemini   → gemini (mock): translated
 *   local    → the built-in model: translated
 */
export interface ResponsesFixture {
  g: GatewayApp;
  mocks: { responses: MockOpenAIResponses; compat: MockOpenAI; anthropic: MockAnthropic; gemini: MockGemini };
  /** The official SDK, its fetch the app itself. */
  openai: OpenAI;
  /** A fetch into the app, for other clients. */
  fetch: typeof fetch;
  close(): Promise<void>;
}

export const MODELS = { openai: "gpt", compat: "compat", compatNative: "compat-r", anthropic: "claude", gemini: "gemini", local: "local" } as const;

export async function startResponsesFixture(config: Record<string, unknown> = {}): Promise<ResponsesFixture> {
  const mocks = {
    responses: await startMockOpenAIResponses(),
    compat: await startMockOpenAI({ scenario: { content: "hello from the compatible mock" } }),
    anthropic: await startMockAnthropic({ apiKey: "sk-ant-test" }),
    gemini: await startMockGemini({ apiKey: "gem-test" }),
  };
  const g = await gatewayApp({
    config: {
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: mocks.responses.url, secret: "OPENAI_API_KEY" },
        { name: "compat", kind: "openai-compatible", baseUrl: mocks.compat.url, secret: "COMPAT_KEY" },
        { name: "compatr", kind: "openai-compatible", baseUrl: mocks.responses.url, secret: "COMPATR_KEY", capabilities: { chat: true, responses: true } },
        { name: "anthropic", kind: "anthropic", baseUrl: mocks.anthropic.url, secret: "ANTHROPIC_API_KEY" },
        { name: "gemini", kind: "gemini", baseUrl: mocks.gemini.url, secret: "GEMINI_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        gpt: { provider: "openai", model: "gpt-4.1" },
        compat: { provider: "compat", model: "llama-3" },
        "compat-r": { provider: "compatr", model: "served-model" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
        gemini: { provider: "gemini", model: "gemini-2.5-flash" },
      },
      ...config,
    },
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-upstream"],
      ["COMPAT_KEY", "sk-compat-upstream"],
      ["COMPATR_KEY", "sk-compatr-upstream"],
      ["ANTHROPIC_API_KEY", "sk-ant-test"],
      ["GEMINI_API_KEY", "gem-test"],
    ]),
    upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
  });
  const appFetch = ((input: string | URL | Request, init?: RequestInit) => Promise.resolve(g.app.request(input instanceof Request ? input : String(input), init))) as typeof fetch;
  return {
    g,
    mocks,
    openai: new OpenAI({ baseURL: "http://gateway.test/v1", apiKey: TOKEN, maxRetries: 0, fetch: appFetch }),
    fetch: appFetch,
    close: async () => {
      await Promise.all(Object.values(mocks).map((m) => m.close()));
    },
  };
}

/** A streamed answer's text and its receipt's claims, verified over the exact bytes sent (request and stream). */
export async function verifiedStream(g: GatewayApp, response: Response, requestBody: string): Promise<{ text: string; events: Record<string, unknown>[]; claims: ReceiptClaims }> {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const split = splitStreamReceipt(bytes);
  if (split === null) throw new Error("no receipt at the end of the stream");
  const claims = verifyReceipt(split.receipt, {
    publicKey: receiptKeyFromSpki(g.identity.receipt.publicSpkiDer),
    requestBody: new TextEncoder().encode(requestBody),
    responseBody: split.signed,
  });
  const text = Buffer.from(split.signed).toString("utf8");
  const events = text
    .split("\n\n")
    .filter((e) => e !== "")
    .map((e) => JSON.parse(e.split("\ndata: ")[1]!) as Record<string, unknown>);
  return { text, events, claims };
}
