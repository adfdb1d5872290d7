import { describe, expect, it } from "vitest";
import type { GatewayError } from "../../../../enclave/errors.js";
import { responsesRequestToChat } from "../../../../enclave/surfaces/openai-responses/responses-request-to-chat.js";

const req = (fields: Record<string, unknown>) => responsesRequestToChat({ model: "m", ...fields });
function refusal(fields: Record<string, unknown>): GatewayError {
  try {
    req(fields);
  } catch (err) {
    return err as GatewayError;
  }
  throw new Error("expected a refusal");
}

describe("Responses request → canonical request", () => {
  it("instructions and a string input: a system and a user message", () => {
    expect(req({ instructions: "be brief", input: "hi" }).messages).toEqual([
      { role: "system", content: "be brief" },
      { role: "user", content: "hi" },
    ]);
  });

  it("a tool loop: text and parallel calls are one assistant turn, each output a tool message; reasoning items dropped", () => {
    const chat = req({
      input: [
        { role: "user", content: [{ type: "input_text", text: "weather in Paris and Rome?" }] },
        { type: "reasoning", id: "rs_1", summary: [], encrypted_content: "opaque" },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "Checking." }] },
        { type: "function_call", call_id: "c1", name: "w", arguments: '{"city":"Paris"}' },
        { type: "function_call", call_id: "c2", name: "w", arguments: '{"city":"Rome"}' },
        { type: "function_call_output", call_id: "c1", output: "21" },
        { type: "function_call_output", call_id: "c2", output: [{ type: "input_text", text: "25" }] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "weather in Paris and Rome?" }] },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          { id: "c1", type: "function", function: { name: "w", arguments: '{"city":"Paris"}' } },
          { id: "c2", type: "function", function: { name: "w", arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: "tool", tool_call_id: "c1", content: "21" },
      { role: "tool", tool_call_id: "c2", content: [{ type: "text", text: "25" }] },
    ]);
  });

  it("tools, tool_choice, text.format, limits and sampling map to their canonical fields; nothing else is carried", () => {
    const chat = req({
      input: "x",
      tools: [{ type: "function", name: "w", description: "d", parameters: { type: "object" }, strict: true }],
      tool_choice: { type: "function", name: "w" },
      parallel_tool_calls: false,
      text: { format: { type: "json_schema", name: "s", schema: { type: "object" }, strict: true }, verbosity: "low" },
      max_output_tokens: 99,
      temperature: 0.2,
      top_p: 0.9,
      user: "u1",
      metadata: { k: "v" },
      reasoning: { effort: "high" },
      include: ["x"],
      truncation: "auto",
      service_tier: "flex",
      store: false,
      stream: true,
    });
    expect(chat).toEqual({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      tools: [{ type: "function", function: { name: "w", description: "d", parameters: { type: "object" }, strict: true } }],
      tool_choice: { type: "function", function: { name: "w" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "s", schema: { type: "object" }, strict: true } },
      max_tokens: 99,
      temperature: 0.2,
      top_p: 0.9,
      user: "u1",
    });
  });

  it("developer messages become system messages (Chat Completions servers rarely know the role)", () => {
    expect(
      req({
        input: [
          { role: "developer", content: "rules" },
          { role: "user", content: [{ type: "input_text", text: "hi" }] },
        ],
      }).messages,
    ).toEqual([
      { role: "system", content: "rules" },
      { role: "user", content: [{ type: "text", text: "hi" }] },
    ]);
  });

  it("images: URL and data URL, with detail", () => {
    const chat = req({ input: [{ role: "user", content: [{ type: "input_image", image_url: "https://x.example/a.png", detail: "low" }] }] });
    expect(chat.messages[0]!.content).toEqual([{ type: "image_url", image_url: { url: "https://x.example/a.png", detail: "low" } }]);
  });

  // One broken field per row: the code, and the param named (never the value).
  const rows: [string, Record<string, unknown>, string, string][] = [
    ["store true", { input: "x", store: true }, "unsupported_parameter", "store"],
    ["previous_response_id", { input: "x", previous_response_id: "resp_1" }, "unsupported_parameter", "previous_response_id"],
    ["conversation", { input: "x", conversation: { id: "c" } }, "unsupported_parameter", "conversation"],
    ["a stored prompt", { input: "x", prompt: { id: "pmpt_1" } }, "unsupported_parameter", "prompt"],
    ["background", { input: "x", background: true }, "unsupported_parameter", "background"],
    ["an item reference", { input: [{ type: "item_reference", id: "msg_1" }] }, "unsupported_parameter", "input[0]"],
    ["an unknown item type", { input: [{ type: "computer_call_output", call_id: "c" }] }, "invalid_request", "input[0].type"],
    ["an item that is not an object", { input: ["hi"] }, "invalid_request", "input[0]"],
    ["an unknown role", { input: [{ role: "tool", content: "x" }] }, "invalid_request", "input[0].role"],
    ["an unknown part", { input: [{ role: "user", content: [{ type: "input_hologram" }] }] }, "invalid_request", "input[0].content[0].type"],
    ["a file part", { input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }, "unsupported_capability", "input[0].content[0].type"],
    ["an image by file id", { input: [{ role: "user", content: [{ type: "input_image", file_id: "f" }] }] }, "unsupported_capability", "input[0].content[0].file_id"],
    ["an image in assistant history", { input: [{ role: "assistant", content: [{ type: "input_image", image_url: "u" }] }] }, "invalid_request", "input[0].content[0].type"],
    ["a bad image detail", { input: [{ role: "user", content: [{ type: "input_image", image_url: "u", detail: "max" }] }] }, "invalid_request", "input[0].content[0].detail"],
    ["a call without call_id", { input: [{ type: "function_call", name: "w", arguments: "{}" }] }, "invalid_request", "input[0].call_id"],
    ["a call with object arguments", { input: [{ type: "function_call", call_id: "c", name: "w", arguments: {} }] }, "invalid_request", "input[0].arguments"],
    ["an output of the wrong type", { input: [{ type: "function_call_output", call_id: "c", output: 7 }] }, "invalid_request", "input[0].output"],
    ["a hosted tool", { input: "x", tools: [{ type: "file_search" }] }, "unsupported_capability", "tools[0].type"],
    ["a tool without a name", { input: "x", tools: [{ type: "function" }] }, "invalid_request", "tools[0].name"],
    ["tools not an array", { input: "x", tools: {} }, "invalid_request", "tools"],
    ["a hosted tool choice", { input: "x", tool_choice: { type: "web_search_preview" } }, "unsupported_capability", "tool_choice"],
    ["a tool choice string", { input: "x", tool_choice: "sometimes" }, "invalid_request", "tool_choice"],
    ["an unknown text format", { input: "x", text: { format: { type: "grammar" } } }, "invalid_request", "text.format.type"],
    ["a schema that is not an object", { input: "x", text: { format: { type: "json_schema", name: "n", schema: "s" } } }, "invalid_request", "text.format.schema"],
    ["max_output_tokens 0", { input: "x", max_output_tokens: 0 }, "invalid_request", "max_output_tokens"],
    ["temperature 3", { input: "x", temperature: 3 }, "invalid_request", "temperature"],
    ["top_p as text", { input: "x", top_p: "1" }, "invalid_request", "top_p"],
    ["parallel_tool_calls as text", { input: "x", parallel_tool_calls: "no" }, "invalid_request", "parallel_tool_calls"],
    ["instructions not a string", { input: "x", instructions: ["a"] }, "invalid_request", "instructions"],
    ["no input", {}, "invalid_request", "input"],
    ["an empty string input", { input: "" }, "invalid_request", "input"],
    ["too many items", { input: Array.from({ length: 4097 }, () => ({ role: "user", content: "x" })) }, "invalid_request", "input"],
  ];
  it.each(rows)("refuses %s", (_name, fields, code, param) => {
    const err = refusal(fields);
    expect(err).toMatchObject({ code, param });
    expect(err.message).not.toMatch(/hologram|computer_call|grammar|pmpt_1|resp_1/);
  });
});
