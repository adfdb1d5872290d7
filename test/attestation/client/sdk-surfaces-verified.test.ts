/**
 * The SDK calls of issue 13 that other files drive against the app or one
 * client path only, here through both verifying paths a developer uses:
 * createVerifiedFetch handed to the SDK, and `egw proxy` with the SDK
 * pointed at it. The same expectations hold on both: answers arrive
 * verified, and a documented refusal reaches the SDK as its own error class
 * with the gateway's code (the refusal is the gateway's, signed, so it is
 * not a client-side 406).
 */
import Anthropic from "@anthropic-ai/sdk";
import { GoogleGenAI } from "@google/genai";
import { ChatOpenAI } from "@langchain/openai";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifiedFetch, type VerifiedFetch } from "../../../attestation/client/index.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../../helpers/enclave-harness.js";
import { startInProcessProxy, type InProcessProxy } from "../../helpers/in-process-proxy.js";
import { PCR0_TEST, removeTempDirs } from "./helpers.js";

let h: Harness;
let verified: VerifiedFetch;
let proxyUrl: string;
let proxy: InProcessProxy;

beforeAll(async () => {
  h = await startHarness({ config: configJson({ limits: { attestationPerSecond: 1000, attestationPerAddressPerSecond: 1000 } }) });
  verified = createVerifiedFetch({
    baseURL: h.baseURL,
    policy: { measurements: [{ label: "test build", pcrs: new Map([[0, PCR0_TEST]]) }], trust: "any", trustedRoots: [h.anchor] },
  });
  proxy = await startInProcessProxy(h);
  proxyUrl = proxy.url;
});
afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await verified?.close();
  await h?.close();
  removeTempDirs();
});

interface Path {
  name: string;
  /** The SDK's base URL (…/v1) and fetch. */
  v1: () => { baseURL: string; fetch?: typeof globalThis.fetch };
  /** The origin, for SDKs that add /v1 or /v1beta themselves. */
  origin: () => { baseURL: string; fetch?: typeof globalThis.fetch };
}

const PATHS: Path[] = [
  {
    name: "createVerifiedFetch",
    v1: () => ({ baseURL: h.baseURL, fetch: verified as unknown as typeof globalThis.fetch }),
    origin: () => ({ baseURL: new URL(h.baseURL).origin, fetch: verified as unknown as typeof globalThis.fetch }),
  },
  { name: "egw proxy", v1: () => ({ baseURL: `${proxyUrl}/v1` }), origin: () => ({ baseURL: proxyUrl }) },
];

describe.each(PATHS)("through $name", (p) => {
  const openai = () => new OpenAI({ apiKey: CLIENT_TOKEN, maxRetries: 0, ...p.v1() });

  it("openai moderations.create: the local model's deterministic answer", async () => {
    const out = await openai().moderations.create({ model: "local", input: ["fine", "please [flag] this"] });
    expect(out.results.map((r) => r.flagged)).toEqual([false, true]);
  });

  it("openai responses.parse with a json_schema text format: output_parsed", async () => {
    const out = await openai().responses.parse({
      model: "local",
      input: "give me a city",
      text: {
        format: {
          type: "json_schema",
          name: "city",
          strict: true,
          schema: { type: "object", properties: { name: { type: "string" } }, required: ["name"], additionalProperties: false },
        },
      },
    });
    expect(out.status).toBe("completed");
    expect(out.output_parsed).toMatchObject({ name: expect.any(String) });
  });

  it("LangChain ChatOpenAI with useResponsesApi: invoke and stream", async () => {
    const { baseURL, fetch } = p.v1();
    const model = new ChatOpenAI({ model: "local", apiKey: CLIENT_TOKEN, useResponsesApi: true, maxRetries: 0, configuration: { baseURL, ...(fetch && { fetch }) } });
    const answer = await model.invoke("langchain over responses");
    // Over the Responses API a message's content is a list of blocks; `.text` joins their text.
    expect(answer.text).toContain("langchain over responses");
    let streamed = "";
    for await (const chunk of await model.stream("langchain streamed")) streamed += chunk.text;
    expect(streamed).toContain("langchain streamed");
  });

  it("Anthropic messages.countTokens answers an estimate, marked as one", async () => {
    const anthropic = new Anthropic({ apiKey: CLIENT_TOKEN, maxRetries: 0, ...p.origin() });
    const { data, response } = await anthropic.messages.countTokens({ model: "local", messages: [{ role: "user", content: "count these tokens please" }] }).withResponse();
    expect(data.input_tokens).toBeGreaterThan(0);
    expect(response.headers.get("x-egw-token-count")).toBe("estimate");
  });

  it("Anthropic beta.messages.create on a translated route: the gateway's signed 400, not a client-side refusal", async () => {
    const anthropic = new Anthropic({ apiKey: CLIENT_TOKEN, maxRetries: 0, ...p.origin() });
    const err = await anthropic.beta.messages
      .create({ model: "local", max_tokens: 16, messages: [{ role: "user", content: "x" }], betas: ["interleaved-thinking-2025-05-14"] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.BadRequestError>;
    expect(e.headers?.get("x-egw-client-error") ?? null).toBeNull();
    expect(JSON.stringify(e.error)).toContain("interleaved-thinking-2025-05-14");
  });

  it("@google/genai embedContent", async () => {
    const { baseURL, fetch } = p.origin();
    const ai = new GoogleGenAI({ apiKey: CLIENT_TOKEN, httpOptions: { baseUrl: baseURL, ...(fetch && { fetch }) } });
    const out = await ai.models.embedContent({ model: "local", contents: "embed me" });
    expect(out.embeddings?.[0]?.values?.length).toBeGreaterThan(0);
  });
});

it("the proxy logged each of those calls as verified", () => {
  for (const line of ["POST /v1/moderations → 200 verified", "POST /v1/responses → 200", "POST /v1/messages/count_tokens → 200 verified"]) expect(proxy.log()).toContain(line);
});
