import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import type { ChatMessage, ChatRequest } from "../../../../enclave/providers/types.js";
import { toGeminiSchema } from "../../../../enclave/providers/gemini/convert-json-schema-to-gemini.js";
import { toGeminiRequest, toolResponseObject, UNKNOWN_IMAGE_MIME } from "../../../../enclave/providers/gemini/convert-to-gemini-request.js";

const req = (messages: ChatMessage[], extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: "m", messages, ...extra });
const user = (content: ChatMessage["content"] & {}): ChatMessage => ({ role: "user", content: content as string });

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return "accepted";
  } catch (err) {
    if (err instanceof GatewayError) return err.code;
    throw err;
  }
}

describe("messages → contents and systemInstruction", () => {
  it("hoists system and developer messages, in order, into systemInstruction", () => {
    const out = toGeminiRequest(
      req([
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "developer", content: [{ type: "text", text: "Use French." }] },
        { role: "assistant", content: "Bonjour" },
      ]),
    );
    expect(out.systemInstruction).toEqual({ parts: [{ text: "Be brief." }, { text: "Use French." }] });
    expect(out.contents).toEqual([
      { role: "user", parts: [{ text: "Hi" }] },
      { role: "model", parts: [{ text: "Bonjour" }] },
    ]);
  });

  it("merges adjacent turns of the same role and drops empty text", () => {
    const out = toGeminiRequest(req([user("a"), user(""), user([{ type: "text", text: "b" }]), { role: "assistant", content: null }, { role: "assistant", content: "c" }]));
    expect(out.contents).toEqual([
      { role: "user", parts: [{ text: "a" }, { text: "b" }] },
      { role: "model", parts: [{ text: "c" }] },
    ]);
    expect(out.systemInstruction).toBeUndefined();
  });

  const refused: [string, ChatRequest][] = [
    ["no messages", req([])],
    ["only a system message", req([{ role: "system", content: "x" }])],
    ["unknown role", req([{ role: "robot", content: "x" } as unknown as ChatMessage])],
    ["image in a system message", req([{ role: "system", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }, user("x")])],
    ["content that is a number", req([{ role: "user", content: 5 } as unknown as ChatMessage])],
    ["unknown user part type", req([user([{ type: "file", file: {} }] as never)])],
  ];
  it.each(refused)("refuses %s with invalid_request", (_, request) => {
    expect(codeOf(() => toGeminiRequest(request))).toBe("invalid_request");
  });
});

describe("images", () => {
  const image = (url: string) =>
    toGeminiRequest(
      req([
        user([
          { type: "text", text: "what is this" },
          { type: "image_url", image_url: { url, detail: "high" } },
        ]),
      ]),
    ).contents[0]!.parts[1];

  const rows: [string, string, unknown][] = [
    ["base64 data URL → inlineData", "data:image/png;base64,iVBORw0KGgo=", { inlineData: { mimeType: "image/png", data: "iVBORw0KGgo=" } }],
    ["data URL media type is lower-cased, parameters skipped", "data:Image/JPEG;name=a.jpg;base64,/9j/4AAQ", { inlineData: { mimeType: "image/jpeg", data: "/9j/4AAQ" } }],
    ["https .png → fileData image/png", "https://example.com/cat.png", { fileData: { mimeType: "image/png", fileUri: "https://example.com/cat.png" } }],
    ["https .JPG with a query → image/jpeg", "https://example.com/a/b.JPG?sig=1", { fileData: { mimeType: "image/jpeg", fileUri: "https://example.com/a/b.JPG?sig=1" } }],
    ["http .webp", "http://example.com/x.webp", { fileData: { mimeType: "image/webp", fileUri: "http://example.com/x.webp" } }],
    ["no extension → explicit wildcard", "https://example.com/image?id=3", { fileData: { mimeType: UNKNOWN_IMAGE_MIME, fileUri: "https://example.com/image?id=3" } }],
  ];
  it.each(rows)("%s", (_, url, expected) => {
    expect(image(url)).toEqual(expected);
  });
  it("the wildcard is image/*", () => expect(UNKNOWN_IMAGE_MIME).toBe("image/*"));

  it.each([
    ["percent-encoded data URL", "data:image/png,%89PNG"],
    ["data URL without media type", "data:;base64,AAAA"],
    ["data URL with non-base64 payload", "data:image/png;base64,not base64!"],
    ["empty data URL payload", "data:image/png;base64,"],
    ["file: URL", "file:///etc/passwd"],
    ["gs: URL", "gs://bucket/a.png"],
    ["relative URL", "/a.png"],
  ])("refuses %s", (_, url) => {
    expect(codeOf(() => image(url))).toBe("invalid_request");
  });

  it("input_audio → inlineData audio/wav", () => {
    const out = toGeminiRequest(req([user([{ type: "input_audio", input_audio: { data: "UklGRg==", format: "wav" } }])]));
    expect(out.contents[0]!.parts).toEqual([{ inlineData: { mimeType: "audio/wav", data: "UklGRg==" } }]);
  });
});

describe("tool calls and tool results", () => {
  const call = (id: string, name: string, args: string) => ({ id, type: "function" as const, function: { name, arguments: args } });

  it("assistant tool_calls → functionCall parts; tool messages → one user turn of functionResponse parts", () => {
    const out = toGeminiRequest(
      req([
        user("Weather in Paris and Rome?"),
        { role: "assistant", content: "Checking.", tool_calls: [call("call_a", "weather", '{"city":"Paris"}'), call("call_b", "weather_v2", "")] },
        { role: "tool", tool_call_id: "call_a", content: '{"temp":21}' },
        { role: "tool", tool_call_id: "call_b", content: [{ type: "text", text: "sunny" }] },
      ]),
    );
    expect(out.contents).toEqual([
      { role: "user", parts: [{ text: "Weather in Paris and Rome?" }] },
      {
        role: "model",
        parts: [{ text: "Checking." }, { functionCall: { name: "weather", args: { city: "Paris" } } }, { functionCall: { name: "weather_v2", args: {} } }],
      },
      {
        role: "user",
        parts: [{ functionResponse: { name: "weather", response: { temp: 21 } } }, { functionResponse: { name: "weather_v2", response: { result: "sunny" } } }],
      },
    ]);
  });

  const wraps: [string, Record<string, unknown>][] = [
    ['{"a":1}', { a: 1 }],
    ["[1,2]", { result: [1, 2] }],
    ["42", { result: 42 }],
    ['"text"', { result: "text" }],
    ["null", { result: null }],
    ["plain words", { result: "plain words" }],
    ["", { result: "" }],
  ];
  it.each(wraps)("tool result %j → response %j", (text, expected) => {
    expect(toolResponseObject(text)).toEqual(expected);
  });

  it.each([
    ["arguments not JSON", [call("c1", "f", "{oops")], "c1"],
    ["arguments a JSON array", [call("c1", "f", "[1]")], "c1"],
    ["arguments a JSON string", [call("c1", "f", '"x"')], "c1"],
    ["tool message for an unknown id", [call("c1", "f", "{}")], "c2"],
  ])("refuses %s with invalid_request", (_, calls, toolId) => {
    const request = req([user("x"), { role: "assistant", tool_calls: calls }, { role: "tool", tool_call_id: toolId, content: "r" }]);
    expect(codeOf(() => toGeminiRequest(request))).toBe("invalid_request");
  });

  it("the invalid-arguments message names the path, never the arguments", () => {
    const secret = "CANARY-ARGS-7731";
    try {
      toGeminiRequest(req([user("x"), { role: "assistant", tool_calls: [call("c1", "f", `{${secret}`)] }]));
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toBe("messages[1].tool_calls[0].function.arguments is not valid JSON");
      expect(String((err as Error).cause ?? "")).not.toContain(secret);
    }
  });

  it("a tool id reused in a later turn resolves to the latest call", () => {
    const out = toGeminiRequest(
      req([
        user("x"),
        { role: "assistant", tool_calls: [call("call_0", "first", "{}")] },
        { role: "tool", tool_call_id: "call_0", content: "1" },
        { role: "assistant", tool_calls: [call("call_0", "second", "{}")] },
        { role: "tool", tool_call_id: "call_0", content: "2" },
      ]),
    );
    expect(out.contents[4]).toEqual({ role: "user", parts: [{ functionResponse: { name: "second", response: { result: 2 } } }] });
  });
});

describe("tools and tool_choice", () => {
  const tools: ChatRequest["tools"] = [
    {
      type: "function",
      function: {
        name: "weather",
        description: "Current weather",
        strict: true,
        parameters: {
          $schema: "http://json-schema.org/draft-07/schema#",
          type: "object",
          additionalProperties: false,
          properties: { city: { type: "string", minLength: 1 }, unit: { type: ["string", "null"], enum: ["C", "F", null] } },
          required: ["city", "ghost"],
        },
      },
    },
    { type: "function", function: { name: "now", parameters: { type: "object", properties: {} } } },
  ];

  it("become one tools entry of functionDeclarations with sanitized parameters", () => {
    const out = toGeminiRequest(req([user("x")], { tools }));
    expect(out.tools).toEqual([
      {
        functionDeclarations: [
          {
            name: "weather",
            description: "Current weather",
            parameters: {
              type: "OBJECT",
              properties: { city: { type: "STRING", minLength: 1 }, unit: { type: "STRING", nullable: true, enum: ["C", "F"], format: "enum" } },
              required: ["city"],
            },
          },
          { name: "now" },
        ],
      },
    ]);
    expect(out.toolConfig).toBeUndefined();
  });

  const choices: [string, ChatRequest["tool_choice"], unknown][] = [
    ["auto", "auto", { functionCallingConfig: { mode: "AUTO" } }],
    ["none", "none", { functionCallingConfig: { mode: "NONE" } }],
    ["required", "required", { functionCallingConfig: { mode: "ANY" } }],
    ["a named function", { type: "function", function: { name: "now" } }, { functionCallingConfig: { mode: "ANY", allowedFunctionNames: ["now"] } }],
  ];
  it.each(choices)("tool_choice %s → toolConfig", (_, choice, expected) => {
    expect(toGeminiRequest(req([user("x")], { tools, tool_choice: choice })).toolConfig).toEqual(expected);
  });

  it.each([
    ["required without tools", { tool_choice: "required" as const }, "invalid_request"],
    ["a function not in tools", { tools, tool_choice: { type: "function" as const, function: { name: "nope" } } }, "invalid_request"],
    ["a non-function tool", { tools: [{ type: "web_search" }] as never }, "unsupported_capability"],
    ["a nameless function", { tools: [{ type: "function", function: { name: "" } }] as never }, "invalid_request"],
  ])("refuses %s", (_, extra, code) => {
    expect(codeOf(() => toGeminiRequest(req([user("x")], extra)))).toBe(code);
  });

  it("tool_choice auto/none without tools sends no toolConfig", () => {
    expect(toGeminiRequest(req([user("x")], { tool_choice: "none" })).toolConfig).toBeUndefined();
  });
});

describe("JSON Schema → Gemini Schema", () => {
  it("drops keywords Gemini rejects and rewrites the ones it can express", () => {
    const schema = toGeminiSchema({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "x",
      type: "object",
      title: "T",
      additionalProperties: { type: "string" },
      patternProperties: { "^x": {} },
      properties: {
        kind: { const: "circle" },
        r: { type: "number", exclusiveMinimum: 0, format: "double", multipleOf: 0.5 },
        n: { type: "integer", format: "uint8" },
        when: { type: "string", format: "date-time" },
        mail: { type: "string", format: "email" },
        tags: { type: "array", items: { type: "string" }, uniqueItems: true, minItems: 1 },
        either: { oneOf: [{ type: "string" }, { type: "integer" }] },
        multi: { type: ["string", "integer"] },
        ref: { $ref: "#/$defs/Point", description: "where" },
        wrapped: { allOf: [{ $ref: "#/definitions/Legacy" }] },
      },
      $defs: { Point: { type: "object", properties: { x: { type: "number" } }, additionalProperties: false } },
      definitions: { Legacy: { type: "boolean" } },
    });
    expect(schema).toEqual({
      title: "T",
      type: "OBJECT",
      properties: {
        kind: { type: "STRING", enum: ["circle"], format: "enum" },
        r: { type: "NUMBER", format: "double" },
        n: { type: "INTEGER" },
        when: { type: "STRING", format: "date-time" },
        mail: { type: "STRING" },
        tags: { type: "ARRAY", minItems: 1, items: { type: "STRING" } },
        either: { anyOf: [{ type: "STRING" }, { type: "INTEGER" }] },
        multi: { anyOf: [{ type: "STRING" }, { type: "INTEGER" }] },
        ref: { type: "OBJECT", properties: { x: { type: "NUMBER" } }, description: "where" },
        wrapped: { type: "BOOLEAN" },
      },
    });
  });

  it("refuses a recursive $ref (unsupported_capability) and a dangling one (invalid_request)", () => {
    const recursive = { type: "object", properties: { child: { $ref: "#/$defs/Node" } }, $defs: { Node: { type: "object", properties: { next: { $ref: "#/$defs/Node" } } } } };
    expect(codeOf(() => toGeminiSchema(recursive))).toBe("unsupported_capability");
    expect(codeOf(() => toGeminiSchema({ $ref: "https://example.com/s.json" }))).toBe("invalid_request");
  });

  it("bounds nesting depth", () => {
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 100; i++) deep = { type: "array", items: deep };
    expect(codeOf(() => toGeminiSchema(deep))).toBe("invalid_request");
  });

  const ALLOWED = new Set([
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "items",
    "minItems",
    "maxItems",
    "properties",
    "required",
    "propertyOrdering",
    "anyOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "default",
  ]);
  function keywordsOK(schema: unknown): boolean {
    if (typeof schema !== "object" || schema === null) return true;
    const s = schema as Record<string, unknown>;
    return (
      Object.keys(s).every((k) => ALLOWED.has(k)) &&
      (s.type === undefined || ["STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"].includes(s.type as string)) &&
      Object.values((s.properties as Record<string, unknown>) ?? {}).every(keywordsOK) &&
      keywordsOK(s.items) &&
      ((s.anyOf as unknown[]) ?? []).every(keywordsOK)
    );
  }

  it("property: any JSON-ish schema comes out with only Gemini keywords and types", () => {
    const keyword = fc.constantFrom(
      "type",
      "format",
      "additionalProperties",
      "$schema",
      "const",
      "enum",
      "oneOf",
      "anyOf",
      "allOf",
      "items",
      "properties",
      "required",
      "description",
      "exclusiveMinimum",
      "not",
      "examples",
      "nullable",
      "$ref",
    );
    const leaf = fc.oneof(
      fc.constantFrom("string", "object", "null", "integer", "bogus"),
      fc.array(fc.constantFrom("string", "null", "number")),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    );
    const schema = fc.letrec((tie) => ({
      node: fc.dictionary(
        keyword,
        fc.oneof(
          { depthSize: "small", maxDepth: 4 },
          leaf,
          tie("node"),
          fc.array(tie("node"), { maxLength: 2 }),
          fc.dictionary(fc.string({ maxLength: 3 }), tie("node"), { maxKeys: 2 }),
        ),
        { maxKeys: 4 },
      ),
    })).node;
    fc.assert(
      fc.property(schema, (s) => {
        try {
          return keywordsOK(toGeminiSchema(s as Record<string, unknown>));
        } catch (err) {
          return err instanceof GatewayError;
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("generationConfig", () => {
  it("maps sampling, length, stop, n and seed", () => {
    const out = toGeminiRequest(req([user("x")], { temperature: 0.2, top_p: 0.9, max_tokens: 50, stop: "END", n: 2, seed: 7, presence_penalty: 0.5 }));
    expect(out.generationConfig).toEqual({ temperature: 0.2, topP: 0.9, maxOutputTokens: 50, stopSequences: ["END"], candidateCount: 2, seed: 7, presencePenalty: 0.5 });
  });

  it("max_completion_tokens wins over max_tokens; n=1 is left implicit", () => {
    expect(toGeminiRequest(req([user("x")], { max_tokens: 10, max_completion_tokens: 20, n: 1 })).generationConfig).toEqual({ maxOutputTokens: 20 });
  });

  it("no options → no generationConfig", () => {
    expect(toGeminiRequest(req([user("x")])).generationConfig).toBeUndefined();
  });

  it("json_object → responseMimeType application/json", () => {
    expect(toGeminiRequest(req([user("x")], { response_format: { type: "json_object" } })).generationConfig).toEqual({ responseMimeType: "application/json" });
  });

  it("json_schema → responseMimeType + sanitized responseSchema", () => {
    const out = toGeminiRequest(
      req([user("x")], {
        response_format: {
          type: "json_schema",
          json_schema: { name: "r", strict: true, schema: { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false } },
        },
      }),
    );
    expect(out.generationConfig).toEqual({
      responseMimeType: "application/json",
      responseSchema: { type: "OBJECT", properties: { ok: { type: "BOOLEAN" } }, required: ["ok"] },
    });
  });

  it("text format adds nothing", () => {
    expect(toGeminiRequest(req([user("x")], { response_format: { type: "text" } })).generationConfig).toBeUndefined();
  });

  it.each([
    ["temperature as a string", { temperature: "hot" }],
    ["temperature above 2", { temperature: 3 }],
    ["fractional max_tokens", { max_tokens: 1.5 }],
    ["n of 0", { n: 0 }],
    ["six stop sequences", { stop: ["a", "b", "c", "d", "e", "f"] }],
    ["unknown response_format", { response_format: { type: "yaml" } }],
  ])("refuses %s", (_, extra) => {
    expect(codeOf(() => toGeminiRequest(req([user("x")], extra as Partial<ChatRequest>)))).toBe("invalid_request");
  });
});
