import { describe, expect, it } from "vitest";
import type { Capabilities } from "../../../attestation/provider-catalog.js";
import { withCapabilities } from "../../../enclave/providers/capabilities.js";
import type { ChatRequest, ProviderAdapter, ProviderCallContext } from "../../../enclave/providers/types.js";

/**
 * withCapabilities holds every adapter (and its native surfaces) to the
 * provider's effective capabilities: a call that is off never reaches the
 * adapter, and everything else passes through untouched.
 */
const ALL: Capabilities = { chat: true, streaming: true, tools: true, embeddings: true, images: true, responses: true };
const ctx = {} as ProviderCallContext;
const req = (extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: "m", messages: [{ role: "user", content: "x" }], ...extra });

function fake() {
  const calls: string[] = [];
  const adapter: ProviderAdapter & { extra: string } = {
    info: { name: "p", kind: "openai-compatible", baseUrl: "https://x" },
    extra: "kept",
    chat: async () => (calls.push("chat"), {}) as never,
    async *chatStream() {
      calls.push("chatStream");
      yield {} as never;
    },
    embeddings: async () => (calls.push("embeddings"), {}) as never,
    images: async () => (calls.push("images"), {}) as never,
    native: {
      messages: async () => (calls.push("messages"), { bytes: new Uint8Array(), model: "m" }),
      async *messagesStream() {
        calls.push("messagesStream");
        yield "";
      },
    },
    nativeGemini: {
      call: async (method) => (calls.push(method), { bytes: new Uint8Array(), model: "m" }),
      async *stream() {
        calls.push("geminiStream");
        yield "";
      },
    },
  };
  return { adapter, calls };
}

const drain = async (it: AsyncIterable<unknown>) => {
  for await (const _ of it) void _;
};
const refused = { code: "unsupported_capability", status: 400 };

describe("withCapabilities", () => {
  it("everything on: every call reaches the adapter, other members pass through", async () => {
    const { adapter, calls } = fake();
    const held = withCapabilities(adapter, ALL) as typeof adapter;
    await held.chat(req(), ctx);
    await drain(held.chatStream(req(), ctx));
    await held.embeddings!({ model: "m", input: "x" }, ctx);
    await held.native!.messages({}, ctx);
    await drain(held.nativeGemini!.stream({}, ctx));
    expect(held.extra).toBe("kept");
    expect(held.info).toBe(adapter.info);
    expect(calls).toEqual(["chat", "chatStream", "embeddings", "messages", "geminiStream"]);
  });

  it("streaming off: chat passes, every streamed path is refused before the adapter", async () => {
    const { adapter, calls } = fake();
    const held = withCapabilities(adapter, { ...ALL, streaming: false });
    await held.chat(req(), ctx);
    await expect(drain(held.chatStream(req(), ctx))).rejects.toMatchObject(refused);
    await expect(drain(held.native!.messagesStream({}, ctx))).rejects.toMatchObject(refused);
    await expect(drain(held.nativeGemini!.stream({}, ctx))).rejects.toMatchObject(refused);
    expect(calls).toEqual(["chat"]);
  });

  it("tools off: a request with tools is refused on every surface, one without passes", async () => {
    const { adapter, calls } = fake();
    const held = withCapabilities(adapter, { ...ALL, tools: false });
    const tools = [{ type: "function" as const, function: { name: "f" } }];
    await expect(held.chat(req({ tools }), ctx)).rejects.toMatchObject(refused);
    await expect(held.native!.messages({ tools: [{ name: "f" }] }, ctx)).rejects.toMatchObject(refused);
    await expect(held.nativeGemini!.call("generateContent", { tools: [{ functionDeclarations: [] }] }, ctx)).rejects.toMatchObject(refused);
    await held.chat(req({ tools: [] }), ctx);
    expect(calls).toEqual(["chat"]);
  });

  it("embeddings and images off: the calls are gone (the surfaces answer unsupported_capability), Gemini's embed methods refused", async () => {
    const { adapter, calls } = fake();
    const held = withCapabilities(adapter, { ...ALL, embeddings: false, images: false });
    expect(held.embeddings).toBeUndefined();
    expect(held.images).toBeUndefined();
    await expect(held.nativeGemini!.call("batchEmbedContents", {}, ctx)).rejects.toMatchObject(refused);
    await held.nativeGemini!.call("generateContent", {}, ctx);
    expect(calls).toEqual(["generateContent"]);
  });

  it("chat off: chat, messages and generateContent refused", async () => {
    const { adapter, calls } = fake();
    const held = withCapabilities(adapter, { ...ALL, chat: false, streaming: false, tools: false });
    await expect(held.chat(req(), ctx)).rejects.toMatchObject(refused);
    await expect(held.native!.messages({}, ctx)).rejects.toMatchObject(refused);
    await expect(held.nativeGemini!.call("generateContent", {}, ctx)).rejects.toMatchObject(refused);
    await held.embeddings!({ model: "m", input: "x" }, ctx);
    expect(calls).toEqual(["embeddings"]);
  });
});
