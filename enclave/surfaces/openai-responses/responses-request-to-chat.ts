import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolChoice, ToolDefinition } from "../../providers/types.js";

/**
 * An OpenAI Responses request → the canonical (Chat Completions) request,
 * for every route that does not speak Responses itself. A pure function.
 * The canonical request is built from an allowlist: nothing the client sent
 * reaches a provider unless it is named here.
 *
 * Translated: `instructions` (a leading system message), `input` as a string
 * or as items — messages (roles user, assistant, system, and developer as
 * system; parts
 * input_text, input_image by URL or data URL, and output_text / refusal in
 * assistant history), function_call and function_call_output items (a tool
 * loop) —, function `tools`, `tool_choice`, `text.format` (json_schema,
 * json_object) → response_format, `max_output_tokens` → max_tokens,
 * `temperature`, `top_p`, `parallel_tool_calls`, `user`.
 *
 * Dropped, on purpose: `reasoning` items in `input` and the `reasoning`
 * parameter (no translated target takes OpenAI's reasoning items, and their
 * encrypted content is OpenAI's alone), `include`, `truncation`,
 * `service_tier`, `prompt_cache_key`, `safety_identifier`, `top_logprobs`,
 * `text.verbosity`, `stream_options`. `metadata` is not sent upstream; it is
 * echoed on the Response object.
 *
 * Refused: what needs state the gateway does not keep for this provider
 * (`store: true`, `previous_response_id`, `conversation`, `background`,
 * stored `prompt`s, `item_reference` items: unsupported_parameter); hosted
 * tools, file inputs and other item types (unsupported_capability or
 * invalid_request). Messages name the field and its index, never a value.
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** At most this many input items (OpenAI's own bound is far lower in practice; this one keeps a loop bounded). */
export const MAX_INPUT_ITEMS = 4096;
const MAX_TOOLS = 512;

function invalid(message: string, param: string): GatewayError {
  return new GatewayError("invalid_request", message, { param });
}
function unsupported(message: string, param: string): GatewayError {
  return new GatewayError("unsupported_capability", message, { param });
}

/** The gateway keeps no state for this provider: one refusal, one wording. */
export function statelessRefusal(param: string): GatewayError {
  return new GatewayError(
    "unsupported_parameter",
    `\`${param}\` needs a stored response, and this model's provider does not store them: the gateway is stateless for it. Send the whole conversation in \`input\` (and \`store: false\`).`,
    { param },
  );
}

/** Fields that ask for server-side state. Checked first, so that the answer says why. */
export function refuseStatefulFields(body: Json): void {
  if (body.store === true) throw statelessRefusal("store");
  for (const field of ["previous_response_id", "conversation", "prompt"]) {
    if (body[field] !== undefined && body[field] !== null) throw statelessRefusal(field);
  }
  if (body.background === true) throw statelessRefusal("background");
}

export function responsesRequestToChat(body: Json): ChatRequest {
  refuseStatefulFields(body);
  const messages: ChatMessage[] = [];
  if (body.instructions !== undefined && body.instructions !== null) {
    if (typeof body.instructions !== "string") throw invalid("`instructions` must be a string.", "instructions");
    if (body.instructions !== "") messages.push({ role: "system", content: body.instructions });
  }
  messages.push(...inputToMessages(body.input));
  if (messages.length === 0) throw invalid("`input` must not be empty.", "input");

  const request: ChatRequest = { model: String(body.model), messages };
  const tools = toolsOf(body.tools);
  if (tools) request.tools = tools;
  if (body.tool_choice !== undefined && body.tool_choice !== null) request.tool_choice = toolChoiceOf(body.tool_choice);
  if (body.parallel_tool_calls !== undefined && body.parallel_tool_calls !== null) {
    if (typeof body.parallel_tool_calls !== "boolean") throw invalid("`parallel_tool_calls` must be a boolean.", "parallel_tool_calls");
    if (tools) request.parallel_tool_calls = body.parallel_tool_calls;
  }
  const format = responseFormatOf(body.text);
  if (format) request.response_format = format;
  if (body.max_output_tokens !== undefined && body.max_output_tokens !== null) {
    if (!Number.isSafeInteger(body.max_output_tokens) || (body.max_output_tokens as number) < 1) {
      throw invalid("`max_output_tokens` must be a positive integer.", "max_output_tokens");
    }
    request.max_tokens = body.max_output_tokens as number;
  }
  for (const [field, max] of [
    ["temperature", 2],
    ["top_p", 1],
  ] as const) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) throw invalid(`\`${field}\` must be a number from 0 to ${max}.`, field);
    request[field] = value;
  }
  if (body.user !== undefined && body.user !== null) {
    if (typeof body.user !== "string") throw invalid("`user` must be a string.", "user");
    request.user = body.user;
  }
  return request;
}

function inputToMessages(input: unknown): ChatMessage[] {
  if (typeof input === "string") return input === "" ? [] : [{ role: "user", content: input }];
  if (!Array.isArray(input)) throw invalid("`input` must be a string or an array of items.", "input");
  if (input.length > MAX_INPUT_ITEMS) throw invalid(`\`input\` has more than ${MAX_INPUT_ITEMS} items.`, "input");
  const messages: ChatMessage[] = [];
  input.forEach((item: unknown, i) => {
    const at = `input[${i}]`;
    if (!isObject(item)) throw invalid(`${at} must be an object.`, at);
    const type = item.type ?? "message";
    switch (type) {
      case "message":
        messages.push(messageOf(item, at));
        return;
      case "function_call": {
        const call = functionCallOf(item, at);
        // Calls that follow one another (parallel calls) are one assistant turn; so is a call after the assistant's text.
        const last = messages.at(-1);
        if (last?.role === "assistant") last.tool_calls = [...(last.tool_calls ?? []), call];
        else messages.push({ role: "assistant", content: null, tool_calls: [call] });
        return;
      }
      case "function_call_output":
        messages.push(functionOutputOf(item, at));
        return;
      case "reasoning":
        // Dropped: see the header.
        return;
      case "item_reference":
        throw statelessRefusal(`${at}`);
      default:
        throw invalid(`${at}.type is not an input item type this model's provider can take (message, function_call, function_call_output, reasoning).`, `${at}.type`);
    }
  });
  return messages;
}

function messageOf(item: Json, at: string): ChatMessage {
  const role = item.role;
  if (role !== "user" && role !== "assistant" && role !== "system" && role !== "developer") {
    throw invalid(`${at}.role must be one of user, assistant, system, developer.`, `${at}.role`);
  }
  // Developer messages become system messages: Chat Completions servers other than OpenAI's rarely know the role, and every translated target treats the two alike.
  const canonicalRole = role === "developer" ? "system" : role;
  if (typeof item.content === "string") return { role: canonicalRole, content: item.content };
  if (!Array.isArray(item.content)) throw invalid(`${at}.content must be a string or an array of parts.`, `${at}.content`);
  const parts = item.content.map((part: unknown, j) => partOf(part, `${at}.content[${j}]`, role));
  // Assistant history is text (output_text and refusal parts, joined).
  if (canonicalRole === "assistant") return { role: canonicalRole, content: parts.map((p) => (p as { text: string }).text).join("") };
  return { role: canonicalRole, content: parts };
}

function partOf(part: unknown, at: string, role: string): ContentPart {
  if (!isObject(part)) throw invalid(`${at} must be an object.`, at);
  switch (part.type) {
    case "input_text":
    case "output_text":
      if (typeof part.text !== "string") throw invalid(`${at}.text must be a string.`, `${at}.text`);
      return { type: "text", text: part.text };
    case "refusal":
      if (typeof part.refusal !== "string") throw invalid(`${at}.refusal must be a string.`, `${at}.refusal`);
      return { type: "text", text: part.refusal };
    case "input_image": {
      if (role === "assistant") throw invalid(`${at}: an assistant message cannot hold an image.`, `${at}.type`);
      if (typeof part.image_url !== "string" || part.image_url === "") {
        if (part.file_id !== undefined) throw unsupported(`${at}.file_id: files stored at OpenAI cannot reach this model's provider; send image_url.`, `${at}.file_id`);
        throw invalid(`${at}.image_url must be a URL or a data URL.`, `${at}.image_url`);
      }
      const detail = part.detail;
      if (detail !== undefined && detail !== null && detail !== "auto" && detail !== "low" && detail !== "high")
        throw invalid(`${at}.detail must be auto, low or high.`, `${at}.detail`);
      return { type: "image_url", image_url: { url: part.image_url, ...(typeof detail === "string" && { detail }) } };
    }
    case "input_file":
    case "input_audio":
      throw unsupported(`${at}.type: this kind of input cannot reach this model's provider.`, `${at}.type`);
    default:
      throw invalid(`${at}.type is not a content part type (input_text, input_image, output_text, refusal).`, `${at}.type`);
  }
}

function functionCallOf(item: Json, at: string): ToolCall {
  if (typeof item.call_id !== "string" || item.call_id === "") throw invalid(`${at}.call_id must be a non-empty string.`, `${at}.call_id`);
  if (typeof item.name !== "string" || item.name === "") throw invalid(`${at}.name must be a non-empty string.`, `${at}.name`);
  if (typeof item.arguments !== "string") throw invalid(`${at}.arguments must be a string.`, `${at}.arguments`);
  return { id: item.call_id, type: "function", function: { name: item.name, arguments: item.arguments } };
}

function functionOutputOf(item: Json, at: string): ChatMessage {
  if (typeof item.call_id !== "string" || item.call_id === "") throw invalid(`${at}.call_id must be a non-empty string.`, `${at}.call_id`);
  const output = item.output;
  if (typeof output === "string") return { role: "tool", tool_call_id: item.call_id, content: output };
  if (!Array.isArray(output)) throw invalid(`${at}.output must be a string or an array of parts.`, `${at}.output`);
  const parts = output.map((part: unknown, j) => partOf(part, `${at}.output[${j}]`, "tool"));
  return { role: "tool", tool_call_id: item.call_id, content: parts };
}

function toolsOf(tools: unknown): ToolDefinition[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw invalid("`tools` must be an array.", "tools");
  if (tools.length > MAX_TOOLS) throw invalid(`\`tools\` has more than ${MAX_TOOLS} entries.`, "tools");
  if (tools.length === 0) return undefined;
  return tools.map((tool: unknown, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool)) throw invalid(`${at} must be an object.`, at);
    if (tool.type !== "function") throw unsupported(`${at}.type: only function tools reach this model's provider (hosted tools run at OpenAI).`, `${at}.type`);
    if (typeof tool.name !== "string" || tool.name === "") throw invalid(`${at}.name must be a non-empty string.`, `${at}.name`);
    if (tool.parameters !== undefined && tool.parameters !== null && !isObject(tool.parameters)) throw invalid(`${at}.parameters must be an object.`, `${at}.parameters`);
    if (tool.description !== undefined && tool.description !== null && typeof tool.description !== "string")
      throw invalid(`${at}.description must be a string.`, `${at}.description`);
    const fn: ToolDefinition["function"] = { name: tool.name };
    if (typeof tool.description === "string") fn.description = tool.description;
    if (isObject(tool.parameters)) fn.parameters = tool.parameters;
    if (typeof tool.strict === "boolean") fn.strict = tool.strict;
    return { type: "function", function: fn };
  });
}

function toolChoiceOf(choice: unknown): ToolChoice {
  if (choice === "none" || choice === "auto" || choice === "required") return choice;
  if (isObject(choice) && choice.type === "function") {
    if (typeof choice.name !== "string" || choice.name === "") throw invalid("`tool_choice.name` must be a non-empty string.", "tool_choice.name");
    return { type: "function", function: { name: choice.name } };
  }
  if (isObject(choice)) throw unsupported("`tool_choice`: only none, auto, required or a function reach this model's provider.", "tool_choice");
  throw invalid("`tool_choice` must be none, auto, required or an object.", "tool_choice");
}

function responseFormatOf(text: unknown): ChatRequest["response_format"] {
  if (text === undefined || text === null) return undefined;
  if (!isObject(text)) throw invalid("`text` must be an object.", "text");
  const format = text.format;
  if (format === undefined || format === null) return undefined;
  if (!isObject(format)) throw invalid("`text.format` must be an object.", "text.format");
  switch (format.type) {
    case "text":
      return undefined;
    case "json_object":
      return { type: "json_object" };
    case "json_schema": {
      if (typeof format.name !== "string" || format.name === "") throw invalid("`text.format.name` must be a non-empty string.", "text.format.name");
      if (!isObject(format.schema)) throw invalid("`text.format.schema` must be an object.", "text.format.schema");
      const schema: Json = { name: format.name, schema: format.schema };
      if (typeof format.strict === "boolean") schema.strict = format.strict;
      if (typeof format.description === "string") schema.description = format.description;
      return { type: "json_schema", json_schema: schema };
    }
    default:
      throw invalid("`text.format.type` must be text, json_object or json_schema.", "text.format.type");
  }
}
