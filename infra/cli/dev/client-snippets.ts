import type { TrustPolicy } from "../../../attestation/trust-policy.js";

/**
 * The client programs the banner prints: each a complete ES module
 * (TypeScript, top-level await) that verifies the stack with the dev
 * manifest (createVerifiedFetch: attestation, measurements, trust policy
 * and development root, then a receipt on every answer) and makes one call.
 * test/infra/dev-config.test.ts transpiles each as printed;
 * test/infra/dev-config-stack.test.ts runs all four against a running stack.
 */
export interface SnippetInput {
  /** https://127.0.0.1:<port> */
  origin: string;
  manifestFile: string;
  tokenFile: string;
  policy: TrustPolicy;
}

export interface Snippet {
  client: "openai" | "anthropic" | "google-genai" | "ai-sdk";
  title: string;
  code: string;
}

/** The model each snippet calls: a route of the matching provider kind when there is one, else the first route (served by translation). */
export function snippetModels(policy: TrustPolicy): { openai: string; anthropic: string; gemini: string } {
  const routes = Object.entries(policy.models);
  const kindOf = (provider: string) => policy.providers.find((p) => p.name === provider)?.kind;
  const first = routes.find(([id]) => id === "local")?.[0] ?? routes.find(([, r]) => kindOf(r.provider) !== "anthropic" && kindOf(r.provider) !== "gemini")?.[0] ?? routes[0]?.[0];
  const fallback = first ?? `${policy.providers[0]!.name}/model-id`;
  const of = (kind: string) => routes.find(([, r]) => kindOf(r.provider) === kind)?.[0] ?? fallback;
  return { openai: fallback, anthropic: of("anthropic"), gemini: of("gemini") };
}

export function clientSnippets(input: SnippetInput): Snippet[] {
  const s = JSON.stringify;
  const models = snippetModels(input.policy);
  const prelude = [`import { readFileSync } from "node:fs";`, `import { createVerifiedFetch, loadPolicyFile } from "enclave-gateway/client";`];
  const verify = [
    `const token = readFileSync(${s(input.tokenFile)}, "utf8").trim();`,
    `const { policy } = await loadPolicyFile(${s(input.manifestFile)}, { now: () => new Date() });`,
    `const verifiedFetch = createVerifiedFetch({ baseURL: ${s(input.origin)}, policy });`,
  ];
  const prompt = `"Say hello."`;
  return [
    {
      client: "openai",
      title: "openai SDK (chat completions)",
      code: [
        ...prelude,
        `import OpenAI from "openai";`,
        ...verify,
        `const openai = new OpenAI({ baseURL: ${s(`${input.origin}/v1`)}, apiKey: token, fetch: verifiedFetch });`,
        `const completion = await openai.chat.completions.create({ model: ${s(models.openai)}, messages: [{ role: "user", content: ${prompt} }] });`,
        "console.log(completion.choices[0]?.message.content);",
        "await verifiedFetch.close();",
      ].join("\n"),
    },
    {
      client: "anthropic",
      title: "@anthropic-ai/sdk (messages; baseURL without /v1)",
      code: [
        ...prelude,
        `import Anthropic from "@anthropic-ai/sdk";`,
        ...verify,
        `const anthropic = new Anthropic({ baseURL: ${s(input.origin)}, apiKey: token, fetch: verifiedFetch });`,
        `const message = await anthropic.messages.create({ model: ${s(models.anthropic)}, max_tokens: 256, messages: [{ role: "user", content: ${prompt} }] });`,
        `for (const block of message.content) if (block.type === "text") console.log(block.text);`,
        "await verifiedFetch.close();",
      ].join("\n"),
    },
    {
      client: "google-genai",
      title: "@google/genai (Gemini API at /v1beta; the token goes as x-goog-api-key)",
      code: [
        ...prelude,
        `import { GoogleGenAI } from "@google/genai";`,
        ...verify,
        `const ai = new GoogleGenAI({ apiKey: token, httpOptions: { baseUrl: ${s(input.origin)}, fetch: verifiedFetch } });`,
        `const response = await ai.models.generateContent({ model: ${s(models.gemini)}, contents: ${prompt} });`,
        "console.log(response.text);",
        "await verifiedFetch.close();",
      ].join("\n"),
    },
    {
      client: "ai-sdk",
      title: "Vercel AI SDK (@ai-sdk/openai; gateway.chat() is chat completions, gateway() is the Responses API)",
      code: [
        ...prelude,
        `import { createOpenAI } from "@ai-sdk/openai";`,
        `import { generateText } from "ai";`,
        ...verify,
        `const gateway = createOpenAI({ baseURL: ${s(`${input.origin}/v1`)}, apiKey: token, fetch: verifiedFetch });`,
        `const { text } = await generateText({ model: gateway.chat(${s(models.openai)}), prompt: ${prompt} });`,
        "console.log(text);",
        "await verifiedFetch.close();",
      ].join("\n"),
    },
  ];
}

/** A snippet as the banner prints it: fenced, so it can be copied (and extracted) whole. */
export function fenced(snippet: Snippet): string[] {
  return [`${snippet.title}:`, "```ts", snippet.code, "```"];
}
