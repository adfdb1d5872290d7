import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { gatewayApp, TOKEN, type GatewayApp } from "../../helpers/gateway-app.js";
import { startMockAnthropic, type MockAnthropic } from "../../helpers/mock-anthropic.js";
import { startMockGemini, type MockGemini } from "../../helpers/mock-gemini.js";
import { startMockOpenAI, type MockOpenAI } from "../../helpers/mock-openai.js";

/**
 * One gateway app (driven in-process through app.request) over one provider
 * of every kind: local, openai and openai-compatible (two mock OpenAI
 * servers), anthropic and gemini, each a byte-accurate loopback mock; and
 * the official SDKs pointed at it. The model names say the kind.
 */
export const MODEL_OF_KIND = { local: "local", openai: "gpt-4o", "openai-compatible": "compat", anthropic: "claude", gemini: "gemini" } as const;
export type Kind = keyof typeof MODEL_OF_KIND;
export const KINDS = Object.keys(MODEL_OF_KIND) as Kind[];

export interface ApisFixture {
  g: GatewayApp;
  openaiMock: MockOpenAI;
  compatMock: MockOpenAI;
  anthropicMock: MockAnthropic;
  geminiMock: MockGemini;
  openai: OpenAI;
  anthropic: Anthropic;
  /** fetch into the app, for the SDKs. */
  fetch: typeof fetch;
  close(): Promise<void>;
}

export async function startApisFixture(config: Record<string, unknown> = {}): Promise<ApisFixture> {
  const openaiMock = await startMockOpenAI();
  const compatMock = await startMockOpenAI();
  const anthropicMock = await startMockAnthropic({ apiKey: "sk-ant-test" });
  const geminiMock = await startMockGemini({ apiKey: "gem-test" });
  const host = (u: string) => new URL(u).host;
  const g = await gatewayApp({
    config: {
      providers: [
        { name: "local", kind: "local" },
        { name: "openai", kind: "openai", baseUrl: openaiMock.url, secret: "OPENAI_API_KEY" },
        { name: "compat", kind: "openai-compatible", baseUrl: compatMock.url, secret: "COMPAT_API_KEY" },
        { name: "anthropic", kind: "anthropic", baseUrl: anthropicMock.url, secret: "ANTHROPIC_API_KEY" },
        { name: "gemini", kind: "gemini", baseUrl: geminiMock.url, secret: "GEMINI_API_KEY" },
      ],
      models: {
        local: { provider: "local", model: "local" },
        "gpt-4o": { provider: "openai", model: "gpt-4o" },
        "whisper-1": { provider: "openai", model: "whisper-1" },
        transcriber: { provider: "openai", model: "gpt-4o-transcribe" },
        compat: { provider: "compat", model: "compat-model" },
        claude: { provider: "anthropic", model: "claude-sonnet-4-5" },
        gemini: { provider: "gemini", model: "gemini-2.5-flash" },
      },
      egressAllowlist: [host(openaiMock.url), host(compatMock.url), host(anthropicMock.url), host(geminiMock.url)],
      ...config,
    },
    secrets: new Map([
      ["OPENAI_API_KEY", "sk-openai-test"],
      ["COMPAT_API_KEY", "sk-compat-test"],
      ["ANTHROPIC_API_KEY", "sk-ant-test"],
      ["GEMINI_API_KEY", "gem-test"],
    ]),
    upstream: { fetch: (url, init) => fetch(url, init as RequestInit) },
  });
  const appFetch = ((input: string | URL | Request, init?: RequestInit) => Promise.resolve(g.app.request(input instanceof Request ? input : String(input), init))) as typeof fetch;
  return {
    g,
    openaiMock,
    compatMock,
    anthropicMock,
    geminiMock,
    openai: new OpenAI({ baseURL: "http://gateway.test/v1", apiKey: TOKEN, fetch: appFetch, maxRetries: 0 }),
    anthropic: new Anthropic({ baseURL: "http://gateway.test", apiKey: TOKEN, fetch: appFetch, maxRetries: 0 }),
    fetch: appFetch,
    close: async () => {
      await Promise.all([openaiMock.close(), compatMock.close(), anthropicMock.close(), geminiMock.close()]);
    },
  };
}
