/**
 * The built-in `local` responder (not an LLM): every documented rule of its
 * chat behaviour, determinism, streaming sequence, abort, embeddings and
 * PNG validity (checked with an independent reader: node:zlib's crc32 and
 * inflate, not the adapter's own code).
 */
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { GatewayError } from "../../../../enclave/errors.js";
import { argumentsFromSchema } from "../../../../enclave/providers/local/arguments-from-schema.js";
import { LOCAL_ECHO_MAX_CHARS, LOCAL_MODEL_DESCRIPTION, createLocalAdapter } from "../../../../enclave/providers/local/local-adapter.js";
import { UpstreamError, type ChatCompletionChunk, type ChatRequest, type ProviderCallContext, type ToolDefinition } from "../../../../enclave/providers/types.js";

const NOW = new Date("2031-02-03T04:05:06.789Z");
const CREATED = Math.floor(NOW.getTime() / 1000);

function context(overrides: Partial<ProviderCallContext> = {}): ProviderCallContext {
  return {
    fetch: () => Promise.reject(new Error("the local model must not fetch")),
    signal: new AbortController().signal,
    upstreamModel: "local",
    now: () => NOW,
    ...overrides,
  };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const ask = (text: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: "local", messages: [{ role: "user", content: text }], ...extra });

const weather: ToolDefinition = {
  type: "function",
  function: {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string" },
        days: { type: "integer" },
        metric: { type: "boolean" },
        tags: { type: "array", items: { type: "string" } },
        unit: { type: "string", enum: ["celsius", "fahrenheit"] },
        where: { type: "object", properties: { lat: { type: "number" }, note: { type: ["string", "null"] } }, required: ["lat", "note"] },
        optional: { type: "string" },
      },
      required: ["city", "days", "metric", "tags", "unit", "where"],
    },
  },
};
const clock: ToolDefinition = { type: "function", function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } }, required: ["zone"] } } };

describe("local: what it is", () => {
  it("says it is not an LLM", async () => {
    const a = createLocalAdapter();
    expect(a.info).toEqual({ name: "local", kind: "local", baseUrl: "local://" });
    expect(LOCAL_MODEL_DESCRIPTION).toMatch(/not an LLM/i);
    const reply = await a.chat(ask("hello"), context());
    expect(reply.choices[0]!.message.content).toMatch(/^local model \(not an LLM\):/);
    expect(createLocalAdapter({ name: "offline" }).info.name).toBe("offline");
  });

  it("never calls fetch", async () => {
    const a = createLocalAdapter();
    await a.chat(ask("x"), context());
    await collect(a.chatStream(ask("x"), context()));
    await a.embeddings!({ model: "local", input: "x" }, context());
    await a.images!({ model: "local", prompt: "x" }, context());
  });
});

describe("local: chat", () => {
  it("echoes the last user message, whitespace-normalized", async () => {
    const result = await createLocalAdapter().chat(
      {
        model: "local",
        messages: [
          { role: "system", content: "be nice" },
          { role: "user", content: "first" },
          { role: "assistant", content: "ok" },
          {
            role: "user",
            content: [
              { type: "text", text: "hello\n  there" },
              { type: "image_url", image_url: { url: "data:," } },
              { type: "text", text: "friend" },
            ],
          },
        ],
      },
      context(),
    );
    expect(result).toEqual({
      id: `chatcmpl-local-${CREATED}-1`,
      object: "chat.completion",
      created: CREATED,
      model: "local",
      choices: [
        { index: 0, message: { role: "assistant", content: "local model (not an LLM): you said: hello there friend", refusal: null }, logprobs: null, finish_reason: "stop" },
      ],
      // prompt: "be nice" 2 + "first" 1 + "ok" 1 + 3 = 7; completion: 10 words
      usage: { prompt_tokens: 7, completion_tokens: 10, total_tokens: 17 },
    });
  });

  it("says so when there is no user text", async () => {
    const result = await createLocalAdapter().chat({ model: "local", messages: [{ role: "system", content: "s" }] }, context());
    expect(result.choices[0]!.message.content).toBe("local model (not an LLM): you said nothing");
  });

  it("bounds the echo", async () => {
    const long = "word ".repeat(1000);
    const content = (await createLocalAdapter().chat(ask(long), context())).choices[0]!.message.content!;
    const echoed = content.slice("local model (not an LLM): you said: ".length);
    expect(echoed.length).toBeLessThanOrEqual(LOCAL_ECHO_MAX_CHARS);
    expect(long.startsWith(echoed)).toBe(true);
  });

  it("ids count up per adapter; created and ids follow the clock", async () => {
    const a = createLocalAdapter();
    const first = await a.chat(ask("a"), context());
    const second = await a.chat(ask("a"), context({ now: () => new Date(0) }));
    expect(first.id).toBe(`chatcmpl-local-${CREATED}-1`);
    expect(second.id).toBe("chatcmpl-local-0-2");
    expect(second.created).toBe(0);
  });

  it("is deterministic: the same request on a fresh adapter gives identical output", async () => {
    const requests = [
      ask("same words"),
      ask("call it", { tools: [weather] }),
      ask("json", { response_format: { type: "json_object" } }),
      ask("one two three four five", { max_tokens: 3 }),
    ];
    for (const r of requests) {
      expect(await createLocalAdapter().chat(r, context())).toEqual(await createLocalAdapter().chat(r, context()));
      expect(await collect(createLocalAdapter().chatStream(r, context()))).toEqual(await collect(createLocalAdapter().chatStream(r, context())));
    }
  });

  it("property: deterministic, prefixed, and max_tokens is a word-prefix cut of the unbounded answer", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 400 }), fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }), async (text, max) => {
        const r = ask(text, max === undefined ? {} : { max_tokens: max });
        const a = await createLocalAdapter().chat(r, context());
        expect(await createLocalAdapter().chat(r, context())).toEqual(a);
        const full = (await createLocalAdapter().chat(ask(text), context())).choices[0]!.message.content!;
        expect(full.startsWith("local model (not an LLM): you said")).toBe(true);
        const fullWords = full.split(" ");
        const cut = max !== undefined && fullWords.length > max;
        const content = a.choices[0]!.message.content!;
        expect(content).toBe(cut ? fullWords.slice(0, max).join(" ") : full);
        expect(a.choices[0]!.finish_reason).toBe(cut ? "length" : "stop");
        expect(a.usage!.completion_tokens).toBe(content.split(" ").length);
      }),
      { numRuns: 200 },
    );
  });

  it("calls the first tool with arguments built from its JSON schema", async () => {
    const result = await createLocalAdapter().chat(ask("weather in  Paris", { tools: [weather, clock] }), context());
    const choice = result.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    expect(call).toMatchObject({ id: `call_local_${CREATED}_1`, type: "function", function: { name: "get_weather" } });
    expect(JSON.parse(call.function.arguments)).toEqual({
      city: "weather in Paris",
      days: 0,
      metric: false,
      tags: [],
      unit: "celsius",
      where: { lat: 0, note: "weather in Paris" },
    });
    expect(result.usage!.completion_tokens).toBe(call.function.arguments.split(/\s+/).length);
  });

  it("calls the tool that tool_choice names; an unknown name is invalid_request", async () => {
    const a = createLocalAdapter();
    const named = await a.chat(ask("when", { tools: [weather, clock], tool_choice: { type: "function", function: { name: "get_time" } } }), context());
    expect(named.choices[0]!.message.tool_calls![0]!.function).toEqual({ name: "get_time", arguments: '{"zone":"when"}' });
    for (const choice of ["auto", "required"] as const) {
      const r = await a.chat(ask("x", { tools: [weather, clock], tool_choice: choice }), context());
      expect(r.choices[0]!.message.tool_calls![0]!.function.name).toBe("get_weather");
    }
    const err = await a.chat(ask("x", { tools: [weather], tool_choice: { type: "function", function: { name: "nope" } } }), context()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe("invalid_request");
  });

  it("tool_choice none disables tools", async () => {
    const result = await createLocalAdapter().chat(ask("no tools please", { tools: [weather], tool_choice: "none" }), context());
    expect(result.choices[0]!.finish_reason).toBe("stop");
    expect(result.choices[0]!.message.tool_calls).toBeUndefined();
    expect(result.choices[0]!.message.content).toBe("local model (not an LLM): you said: no tools please");
  });

  it("answers a tool result with text quoting it", async () => {
    const result = await createLocalAdapter().chat(
      {
        model: "local",
        tools: [weather],
        messages: [
          { role: "user", content: "weather?" },
          { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city": "Paris"}' } }] },
          { role: "tool", tool_call_id: "call_1", content: "22 degrees\nand sunny" },
        ],
      },
      context(),
    );
    expect(result.choices[0]!.finish_reason).toBe("stop");
    expect(result.choices[0]!.message.content).toBe("local model (not an LLM): the tool returned: 22 degrees and sunny");
    // prompt: "weather?" 1 + arguments '{"city": "Paris"}' 2 + tool 4
    expect(result.usage!.prompt_tokens).toBe(7);
  });

  it("json_object gives a JSON object string; json_schema one shaped by the schema", async () => {
    const a = createLocalAdapter();
    const obj = await a.chat(ask("give  json", { response_format: { type: "json_object" } }), context());
    expect(JSON.parse(obj.choices[0]!.message.content!)).toEqual({ model: "local", not_an_llm: true, you_said: "give json" });

    const schema = { type: "object", properties: { answer: { type: "string" }, score: { type: "number" }, ok: { type: "boolean" } }, required: ["answer", "score", "ok"] };
    const shaped = await a.chat(ask("rate it", { response_format: { type: "json_schema", json_schema: { name: "r", schema } } }), context());
    expect(JSON.parse(shaped.choices[0]!.message.content!)).toEqual({ answer: "rate it", score: 0, ok: false });

    const afterTool = await a.chat(
      {
        model: "local",
        response_format: { type: "json_object" },
        messages: [
          { role: "user", content: "q" },
          { role: "tool", tool_call_id: "c", content: "r1" },
        ],
      },
      context(),
    );
    expect(JSON.parse(afterTool.choices[0]!.message.content!)).toEqual({ model: "local", not_an_llm: true, tool_result: "r1" });
  });

  it("max_tokens cuts the answer to that many words with finish_reason length", async () => {
    const a = createLocalAdapter();
    const cut = await a.chat(ask("one two three", { max_tokens: 3 }), context());
    expect(cut.choices[0]!.message.content).toBe("local model (not");
    expect(cut.choices[0]!.finish_reason).toBe("length");
    expect(cut.usage!.completion_tokens).toBe(3);

    const smaller = await a.chat(ask("one two three", { max_tokens: 50, max_completion_tokens: 2 }), context());
    expect(smaller.choices[0]!.message.content).toBe("local model");

    const exact = await a.chat(ask("one two three", { max_tokens: 10 }), context());
    expect(exact.choices[0]!.finish_reason).toBe("stop");
    expect(exact.usage!.completion_tokens).toBe(10);

    for (const max_tokens of [0, -1, 1.5, "3"]) {
      await expect(a.chat(ask("x", { max_tokens: max_tokens as number }), context())).rejects.toMatchObject({ code: "invalid_request" });
    }
  });

  it("rejects requests it cannot read", async () => {
    const a = createLocalAdapter();
    for (const bad of [
      { model: "local", messages: [] },
      { model: "local" },
      { model: "local", messages: [{ content: "x" }] },
      { model: "local", messages: [{ role: "user", content: "x" }], tools: "x" },
    ]) {
      await expect(a.chat(bad as unknown as ChatRequest, context())).rejects.toMatchObject({ code: "invalid_request" });
    }
  });

  it("argumentsFromSchema: enum, const, anyOf, $ref, depth and junk", () => {
    expect(argumentsFromSchema(undefined, "t")).toEqual({});
    expect(argumentsFromSchema({ type: "string" }, "t")).toEqual({});
    expect(
      argumentsFromSchema(
        {
          type: "object",
          properties: { a: { const: 5 }, b: { anyOf: [{ type: "integer" }, { type: "string" }] }, c: { $ref: "#/x" }, d: {} },
          required: ["a", "b", "c", "d", "missing"],
        },
        "t",
      ),
    ).toEqual({
      a: 5,
      b: 0,
      c: null,
      d: null,
      missing: null,
    });
    let deep: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 50; i++) deep = { type: "object", properties: { n: deep }, required: ["n"] };
    expect(() => JSON.stringify(argumentsFromSchema(deep, "t"))).not.toThrow();
    // "__proto__" as a required property is data, not a prototype change.
    const proto = argumentsFromSchema({ type: "object", properties: { __proto__: { type: "string" } }, required: ["__proto__"] }, "t");
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
  });
});

describe("local: streaming", () => {
  it("role chunk, one chunk per word, finish chunk; content equals the non-streamed answer", async () => {
    const r = ask("stream  me");
    const chunks = await collect(createLocalAdapter().chatStream(r, context()));
    const whole = await createLocalAdapter().chat(r, context());
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    const words = chunks.slice(1, -1).map((c) => c.choices[0]!.delta.content);
    expect(words).toEqual(["local", " model", " (not", " an", " LLM):", " you", " said:", " stream", " me"]);
    expect(words.join("")).toBe(whole.choices[0]!.message.content);
    const last = chunks[chunks.length - 1]!;
    expect(last.choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: "stop" });
    for (const c of chunks) {
      expect(c).toMatchObject({ id: whole.id, object: "chat.completion.chunk", created: CREATED, model: "local" });
      expect("usage" in c).toBe(false);
    }
  });

  it("with include_usage: usage null on every chunk, then a usage chunk with empty choices", async () => {
    const r = ask("count me", { stream_options: { include_usage: true } });
    const chunks = await collect(createLocalAdapter().chatStream(r, context()));
    const whole = await createLocalAdapter().chat(r, context());
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    const usage = chunks[chunks.length - 1]!;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual(whole.usage);
    expect(chunks[chunks.length - 2]!.choices[0]!.finish_reason).toBe("stop");
  });

  it("max_tokens: the stream stops at the cut with finish_reason length", async () => {
    const chunks = await collect(createLocalAdapter().chatStream(ask("a b c", { max_tokens: 2 }), context()));
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? "").join("")).toBe("local model");
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("length");
  });

  it("tool call: header chunk, then the arguments in two or more pieces", async () => {
    for (const tools of [[weather], [{ type: "function", function: { name: "noargs" } } as ToolDefinition]]) {
      const r = ask("tool me", { tools });
      const chunks = await collect(createLocalAdapter().chatStream(r, context()));
      const whole = await createLocalAdapter().chat(r, context());
      const call = whole.choices[0]!.message.tool_calls![0]!;
      expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: null });
      expect(chunks[1]!.choices[0]!.delta.tool_calls).toEqual([{ index: 0, id: call.id, type: "function", function: { name: call.function.name, arguments: "" } }]);
      const pieces = chunks.slice(2, -1).map((c) => c.choices[0]!.delta.tool_calls![0]!);
      expect(pieces.length).toBeGreaterThanOrEqual(2);
      expect(pieces.every((p) => p.index === 0 && p.id === undefined)).toBe(true);
      expect(pieces.map((p) => p.function!.arguments).join("")).toBe(call.function.arguments);
      expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).toBe("tool_calls");
    }
  });

  it("chunkDelayMs spaces the chunks out", async () => {
    const started = Date.now();
    const chunks = await collect(createLocalAdapter({ chunkDelayMs: 5 }).chatStream(ask("x"), context()));
    expect(Date.now() - started).toBeGreaterThanOrEqual(5 * (chunks.length - 1) - 5);
  });

  it("an abort stops the stream promptly, mid-delay", async () => {
    const controller = new AbortController();
    const chunks: ChatCompletionChunk[] = [];
    const started = Date.now();
    const err = await (async () => {
      for await (const chunk of createLocalAdapter({ chunkDelayMs: 10_000 }).chatStream(ask("abort me"), context({ signal: controller.signal }))) {
        chunks.push(chunk);
        setTimeout(() => controller.abort(), 10);
      }
    })().catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(chunks).toHaveLength(1);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).kind).toBe("aborted");
  });

  it("an abort between chunks (no delay) stops at the next chunk; a timeout reason gives timeout", async () => {
    const controller = new AbortController();
    const chunks: ChatCompletionChunk[] = [];
    const err = await (async () => {
      for await (const chunk of createLocalAdapter().chatStream(ask("one two three"), context({ signal: controller.signal }))) {
        chunks.push(chunk);
        if (chunks.length === 2) controller.abort();
      }
    })().catch((e: unknown) => e);
    expect(chunks).toHaveLength(2);
    expect((err as UpstreamError).kind).toBe("aborted");

    const timedOut = new AbortController();
    timedOut.abort(new DOMException("late", "TimeoutError"));
    await expect(createLocalAdapter().chat(ask("x"), context({ signal: timedOut.signal }))).rejects.toMatchObject({ kind: "timeout" });
    await expect(collect(createLocalAdapter().chatStream(ask("x"), context({ signal: timedOut.signal })))).rejects.toMatchObject({ kind: "timeout" });
  });
});

describe("local: embeddings", () => {
  function expected(text: string): number[] {
    const d = createHash("sha256").update(text, "utf8").digest();
    const raw = Array.from({ length: 8 }, (_, i) => d.readInt32BE(i * 4) / 2 ** 31);
    const norm = Math.hypot(...raw);
    return raw.map((x) => Math.fround(x / norm));
  }

  it("8 normalized dimensions from SHA-256 of the input, deterministic, distinct per input", async () => {
    const a = createLocalAdapter();
    const result = await a.embeddings!({ model: "local-embed", input: ["hello world", "other"] }, context({ upstreamModel: "local-embed" }));
    expect(result.object).toBe("list");
    expect(result.model).toBe("local-embed");
    expect(result.usage).toEqual({ prompt_tokens: 3, total_tokens: 3 });
    expect(result.data.map((d) => d.index)).toEqual([0, 1]);
    const v = result.data[0]!.embedding as number[];
    expect(v).toEqual(expected("hello world"));
    expect(Math.hypot(...v)).toBeCloseTo(1, 6);
    expect(result.data[1]!.embedding).not.toEqual(v);
    expect(await createLocalAdapter().embeddings!({ model: "x", input: "hello world" }, context())).toMatchObject({ data: [{ embedding: v }] });
  });

  it("base64 is the float32 little-endian bytes of the same vector", async () => {
    const a = createLocalAdapter();
    const float = await a.embeddings!({ model: "e", input: "abc", dimensions: 20 }, context());
    const b64 = await a.embeddings!({ model: "e", input: "abc", dimensions: 20, encoding_format: "base64" }, context());
    const bytes = Buffer.from(b64.data[0]!.embedding as string, "base64");
    expect(bytes).toHaveLength(80);
    const decoded = Array.from({ length: 20 }, (_, i) => bytes.readFloatLE(i * 4));
    expect(decoded).toEqual(float.data[0]!.embedding);
    expect((float.data[0]!.embedding as number[]).slice(0, 8)).not.toEqual(expected("abc")); // renormalized over 20 dims
  });

  it("token arrays, and bad input", async () => {
    const a = createLocalAdapter();
    const tokens = await a.embeddings!({ model: "e", input: [[1, 2, 3], [4]] }, context());
    expect(tokens.usage.prompt_tokens).toBe(4);
    expect(tokens.data[0]!.embedding).toEqual(expected("1,2,3"));
    expect((await a.embeddings!({ model: "e", input: [5, 6] }, context())).data).toHaveLength(1);
    for (const bad of [{ input: [] }, { input: 5 }, { input: "x", dimensions: 0 }, { input: "x", dimensions: 10_000 }, { input: "x", encoding_format: "hex" }, { input: [null] }]) {
      await expect(a.embeddings!({ model: "e", ...bad } as never, context())).rejects.toMatchObject({ code: "invalid_request" });
    }
  });
});

describe("local: images", () => {
  /** An independent PNG reader: signature, chunk CRCs (node:zlib), IHDR fields, IDAT inflated. */
  function readPng(bytes: Buffer): { types: string[]; width: number; height: number; depth: number; colour: number; raw: Buffer } {
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    const types: string[] = [];
    const idat: Buffer[] = [];
    let ihdr: Buffer<ArrayBufferLike> = Buffer.alloc(0);
    for (let at = 8; at < bytes.length; ) {
      const length = bytes.readUInt32BE(at);
      const type = bytes.subarray(at + 4, at + 8).toString("ascii");
      const data = bytes.subarray(at + 8, at + 8 + length);
      expect(bytes.readUInt32BE(at + 8 + length)).toBe(zlib.crc32(bytes.subarray(at + 4, at + 8 + length)));
      types.push(type);
      if (type === "IHDR") ihdr = data;
      if (type === "IDAT") idat.push(data);
      at += 12 + length;
    }
    return { types, width: ihdr.readUInt32BE(0), height: ihdr.readUInt32BE(4), depth: ihdr[8]!, colour: ihdr[9]!, raw: zlib.inflateSync(Buffer.concat(idat)) };
  }

  it("a valid 8×8 RGB PNG as b64_json, deterministic per prompt and index", async () => {
    const a = createLocalAdapter();
    const result = await a.images!({ model: "local-image", prompt: "a red fox", n: 2 }, context());
    expect(result.created).toBe(CREATED);
    expect(result.data).toHaveLength(2);
    const png = Buffer.from(result.data[0]!.b64_json!, "base64");
    const parsed = readPng(png);
    expect(parsed.types).toEqual(["IHDR", "IDAT", "IEND"]);
    expect(parsed).toMatchObject({ width: 8, height: 8, depth: 8, colour: 2 });
    expect(parsed.raw).toHaveLength(8 * (1 + 8 * 3));
    for (let y = 0; y < 8; y++) expect(parsed.raw[y * 25]).toBe(0);
    expect(result.data[1]!.b64_json).not.toBe(result.data[0]!.b64_json);
    const again = await createLocalAdapter().images!({ model: "local-image", prompt: "a red fox", n: 2 }, context());
    expect(again).toEqual(result);
    const other = await a.images!({ model: "local-image", prompt: "a blue fox" }, context());
    expect(other.data[0]!.b64_json).not.toBe(result.data[0]!.b64_json);
  });

  it("response_format url gives a data: URL of the same PNG; bad n is invalid_request", async () => {
    const a = createLocalAdapter();
    const b64 = await a.images!({ model: "i", prompt: "p" }, context());
    const url = await a.images!({ model: "i", prompt: "p", response_format: "url" }, context());
    expect(url.data[0]!.url).toBe(`data:image/png;base64,${b64.data[0]!.b64_json}`);
    for (const n of [0, 11, 1.5]) await expect(a.images!({ model: "i", prompt: "p", n }, context())).rejects.toMatchObject({ code: "invalid_request" });
    await expect(a.images!({ model: "i" } as never, context())).rejects.toMatchObject({ code: "invalid_request" });
  });
});
