import { describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { fromGeminiRequest } from "../../../../enclave/providers/gemini/convert-from-gemini-request.js";
import { fromGeminiSchema } from "../../../../enclave/providers/gemini/convert-gemini-schema-to-json-schema.js";
import { toGeminiSchema } from "../../../../enclave/providers/gemini/convert-json-schema-to-gemini.js";
import { toGeminiRequest } from "../../../../enclave/providers/gemini/convert-to-gemini-request.js";

const user = (text: string) => ({ role: "user", parts: [{ text }] });

function refused(body: Record<string, unknown>): GatewayError {
  try {
    fromGeminiRequest(body, "m");
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("fromGeminiRequest: a Gemini client's request → canonical", () => {
  it("contents, systemInstruction and generationConfig", () => {
    const out = fromGeminiRequest(
      {
        systemInstruction: { parts: [{ text: "be brief" }, { text: "and kind" }] },
        contents: [user("hi"), { role: "model", parts: [{ text: "hello" }, { text: "secret", thought: true }] }, { parts: [{ text: "again" }] }],
        generationConfig: {
          temperature: 0.3,
          topP: 0.9,
          topK: 5,
          maxOutputTokens: 12,
          stopSequences: ["END"],
          seed: 7,
          candidateCount: 2,
          presencePenalty: 0.1,
          frequencyPenalty: 0.2,
        },
        safetySettings: [{ category: "HARM_CATEGORY_HATE_SPEECH", threshold: "BLOCK_NONE" }],
      },
      "alias",
    );
    expect(out).toEqual({
      model: "alias",
      messages: [
        { role: "system", content: "be brief\nand kind" },
        { role: "user", content: "hi" },
        { role: "assistant", content: "hello" },
        { role: "user", content: "again" },
      ],
      temperature: 0.3,
      top_p: 0.9,
      max_tokens: 12,
      stop: ["END"],
      seed: 7,
      n: 2,
      presence_penalty: 0.1,
      frequency_penalty: 0.2,
    });
  });

  it("images and audio: inlineData as data URLs and input_audio, an https image fileData as a URL", () => {
    const out = fromGeminiRequest(
      {
        contents: [
          {
            role: "user",
            parts: [
              { text: "what is this?" },
              { inlineData: { mimeType: "image/png", data: "iVBORw0KGgo=" } },
              { inlineData: { mimeType: "audio/wav", data: "UklGRg==" } },
              { fileData: { mimeType: "image/jpeg", fileUri: "https://example.com/a.jpg" } },
            ],
          },
        ],
      },
      "m",
    );
    expect(out.messages[0]).toEqual({
      role: "user",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } },
        { type: "input_audio", input_audio: { data: "UklGRg==", format: "wav" } },
        { type: "image_url", image_url: { url: "https://example.com/a.jpg" } },
      ],
    });
  });

  it("function calls: ids kept or made, responses matched by id, else by name in order; tool results before the user's text", () => {
    const out = fromGeminiRequest(
      {
        contents: [
          user("weather in two cities?"),
          {
            role: "model",
            parts: [{ functionCall: { name: "w", args: { city: "Oslo" } } }, { functionCall: { name: "w", args: { city: "Rome" } } }, { functionCall: { id: "own", name: "t" } }],
          },
          {
            role: "user",
            parts: [
              { functionResponse: { id: "own", name: "t", response: { time: 1 } } },
              { functionResponse: { name: "w", response: { sky: "grey" } } },
              { functionResponse: { name: "w", response: { sky: "blue" } } },
              { text: "thanks" },
            ],
          },
        ],
        tools: [{ functionDeclarations: [{ name: "w", parameters: { type: "OBJECT", properties: { city: { type: "STRING" } } } }, { name: "t" }] }],
        toolConfig: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["w"] } },
      },
      "m",
    );
    expect(out.messages[1]).toEqual({
      role: "assistant",
      content: null,
      tool_calls: [
        { id: "call_0", type: "function", function: { name: "w", arguments: '{"city":"Oslo"}' } },
        { id: "call_1", type: "function", function: { name: "w", arguments: '{"city":"Rome"}' } },
        { id: "own", type: "function", function: { name: "t", arguments: "{}" } },
      ],
    });
    expect(out.messages.slice(2)).toEqual([
      { role: "tool", tool_call_id: "own", content: '{"time":1}' },
      { role: "tool", tool_call_id: "call_0", content: '{"sky":"grey"}' },
      { role: "tool", tool_call_id: "call_1", content: '{"sky":"blue"}' },
      { role: "user", content: "thanks" },
    ]);
    expect(out.tools).toEqual([
      { type: "function", function: { name: "w", parameters: { type: "object", properties: { city: { type: "string" } } } } },
      { type: "function", function: { name: "t", parameters: { type: "object", properties: {} } } },
    ]);
    expect(out.tool_choice).toEqual({ type: "function", function: { name: "w" } });
  });

  it("toolConfig modes", () => {
    const tools = [{ functionDeclarations: [{ name: "a" }, { name: "b" }] }];
    const mode = (m: string, names?: string[]) =>
      fromGeminiRequest({ contents: [user("x")], tools, toolConfig: { functionCallingConfig: { mode: m, ...(names && { allowedFunctionNames: names }) } } }, "m").tool_choice;
    expect(mode("AUTO")).toBe("auto");
    expect(mode("NONE")).toBe("none");
    expect(mode("ANY")).toBe("required");
    expect(mode("ANY", ["a", "b"])).toBe("required");
    expect(refused({ contents: [user("x")], tools, toolConfig: { functionCallingConfig: { mode: "SOMETIMES" } } }).code).toBe("invalid_request");
    expect(refused({ contents: [user("x")], tools, toolConfig: { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["zz"] } } }).code).toBe("invalid_request");
  });

  it("structured output: responseSchema converted, responseJsonSchema as is, JSON without schema as json_object", () => {
    const config = (generationConfig: unknown) => fromGeminiRequest({ contents: [user("x")], generationConfig }, "m").response_format;
    expect(config({ responseMimeType: "application/json", responseSchema: { type: "ARRAY", items: { type: "STRING", enum: ["a", "b"], format: "enum" } } })).toEqual({
      type: "json_schema",
      json_schema: { name: "response", schema: { type: "array", items: { type: "string", enum: ["a", "b"] } } },
    });
    const js = { type: "object", additionalProperties: false, properties: { a: { const: 1 } } };
    expect(config({ responseMimeType: "application/json", responseJsonSchema: js })).toEqual({ type: "json_schema", json_schema: { name: "response", schema: js } });
    expect(config({ responseMimeType: "application/json" })).toEqual({ type: "json_object" });
    expect(config({ responseMimeType: "text/plain" })).toBeUndefined();
    expect(refused({ contents: [user("x")], generationConfig: { responseMimeType: "text/x.enum" } }).code).toBe("unsupported_capability");
  });

  it("refusals name the JSON path, never the text", () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{}, "invalid_request", "contents"],
      [{ contents: [] }, "invalid_request", "contents"],
      [{ contents: [{ role: "tool", parts: [{ text: "secret" }] }] }, "invalid_request", "contents[0].role"],
      [{ contents: [{ role: "user", parts: [] }] }, "invalid_request", "contents[0].parts"],
      [{ contents: [{ role: "user", parts: [{ text: "secret", inlineData: { mimeType: "image/png", data: "AA==" } }] }] }, "invalid_request", "contents[0].parts[0]"],
      [{ contents: [{ role: "user", parts: [{ inlineData: { mimeType: "image/png", data: "not base64!" } }] }] }, "invalid_request", "inlineData"],
      [{ contents: [{ role: "user", parts: [{ inlineData: { mimeType: "video/mp4", data: "AA==" } }] }] }, "unsupported_capability", "inlineData"],
      [{ contents: [{ role: "user", parts: [{ fileData: { fileUri: "gs://bucket/x" } }] }] }, "unsupported_capability", "fileData"],
      [{ contents: [{ role: "model", parts: [{ functionResponse: { name: "f", response: {} } }] }] }, "unsupported_capability", "contents[0].parts[0]"],
      [{ contents: [{ role: "user", parts: [{ functionResponse: { name: "f", response: {} } }] }] }, "invalid_request", "matches no earlier functionCall"],
      [{ contents: [user("secret")], tools: [{ codeExecution: {} }] }, "unsupported_capability", "tools[0].codeExecution"],
      [{ contents: [user("secret")], tools: [{ functionDeclarations: [{ name: "f", parameters: { type: "BLOB" } }] }] }, "invalid_request", "parameters.type"],
      [{ contents: [user("secret")], generationConfig: { maxOutputTokens: 1.5 } }, "invalid_request", "maxOutputTokens"],
      [{ contents: [user("secret")], generationConfig: { responseModalities: ["IMAGE"] } }, "unsupported_capability", "responseModalities"],
      [{ contents: [user("secret")], cachedContent: "cachedContents/1" }, "unsupported_capability", "cachedContent"],
    ];
    for (const [body, code, says] of cases) {
      const err = refused(body);
      expect(err.code, says).toBe(code);
      expect(err.message).toContain(says);
      expect(err.message).not.toContain("secret");
    }
  });

  it("round trip: canonical → Gemini (the adapter's direction) → canonical keeps the conversation", () => {
    const canonical = {
      model: "m",
      messages: [
        { role: "system" as const, content: "sys" },
        { role: "user" as const, content: "hi" },
        { role: "assistant" as const, content: null, tool_calls: [{ id: "call_0", type: "function" as const, function: { name: "f", arguments: '{"a":1}' } }] },
        { role: "tool" as const, tool_call_id: "call_0", content: '{"ok":true}' },
      ],
      tools: [{ type: "function" as const, function: { name: "f", parameters: { type: "object", properties: { a: { type: "integer" } }, required: ["a"] } } }],
      temperature: 0.5,
    };
    const back = fromGeminiRequest(toGeminiRequest(canonical) as unknown as Record<string, unknown>, "m");
    expect(back).toEqual(canonical);
  });

  it("schemas survive Gemini → JSON Schema → Gemini", () => {
    const schema = {
      type: "OBJECT",
      properties: { name: { type: "STRING", nullable: true, description: "who" }, tags: { type: "ARRAY", items: { type: "STRING" }, maxItems: 3 } },
      required: ["name"],
    };
    expect(toGeminiSchema(fromGeminiSchema(schema, "s"))).toEqual(schema);
  });
});
