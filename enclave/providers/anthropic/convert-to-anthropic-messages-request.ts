import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolChoice } from "../canonical/types.js";
import type {
  AnthropicContentBlockParam,
  AnthropicImageBlock,
  AnthropicImageMediaType,
  AnthropicMessagesRequest,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
  AnthropicToolUseBlock,
} from "./anthropic-api-types.js";

/**
 * Canonical (OpenAI Chat Completions) request → Anthropic Messages request.
 * A pure function: no I/O. The answer comes back through
 * convert-from-anthropic-message.ts and map-anthropic-stream.ts.
 *
 * Decisions that change meaning, on purpose:
 * - system/developer messages are hoisted to `system`, wherever they appear.
 * - Consecutive messages of one role are merged (Anthropic requires
 *   alternating roles); `role:"tool"` becomes a user message of tool_result
 *   blocks, so tool results merge with each other and with a following user
 *   message (tool_result blocks stay first, as Anthropic requires).
 * - Empty text is dropped (Anthropic rejects empty text blocks), and so is a
 *   message left with no content.
 * - `temperature` is clamped to Anthropic's 0..1 (OpenAI allows 0..2).
 *   temperature and top_p are forwarded as sent; some Claude models accept
 *   only one of them and answer 400, which the client then sees.
 * - `response_format` json_object/json_schema: Anthropic has no portable JSON
 *   mode across models, so the gateway appends a system instruction (with the
 *   schema, for json_schema). Best effort: the output is not validated.
 * - `name` on messages, `detail` on images, `strict` on tools, `seed`,
 *   penalties and `logit_bias` are not forwarded. The Anthropic body is built
 *   from an allowlist, so no unknown field reaches the provider.
 * - `n` > 1 is rejected (invalid_request); `logprobs` and non-text/image
 *   parts are rejected (unsupported_capability).
 * Error messages name the field and index only, never a value the client sent.
 */

export interface ToAnthropicOptions {
  /** Upstream model id (the route's target). */
  model: string;
  /** max_tokens when the client sent none; Anthropic requires the field. */
  defaultMaxTokens: number;
  stream: boolean;
}

export const JSON_OBJECT_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences.";

export function jsonSchemaInstruction(schema: unknown): string {
  return `Respond with a single valid JSON value that conforms to this JSON Schema, and nothing else: no prose, no code fences.\n${JSON.stringify(schema)}`;
}

const IMAGE_MEDIA_TYPES: ReadonlySet<string> = new Set(["image/jpeg", "image/png", "image/gif", "image/webp"]);

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

function unsupported(message: string): GatewayError {
  return new GatewayError("unsupported_capability", message);
}

export function toAnthropicRequest(request: ChatRequest, options: ToAnthropicOptions): AnthropicMessagesRequest {
  if (request.n !== undefined && request.n !== null && request.n !== 1) {
    throw invalid("n other than 1 is not supported for this provider");
  }
  if (request.logprobs === true || (request.top_logprobs !== undefined && request.top_logprobs !== null)) {
    throw unsupported("logprobs are not supported by this provider");
  }
  if (!Array.isArray(request.messages)) throw invalid("messages must be an array");

  const systemTexts: string[] = [];
  const messages: { role: "user" | "assistant"; blocks: AnthropicContentBlockParam[] }[] = [];

  const append = (role: "user" | "assistant", blocks: AnthropicContentBlockParam[]): void => {
    if (blocks.length === 0) return;
    const last = messages.at(-1);
    if (last && last.role === role) {
      // tool_result blocks must lead a user turn: results merged after text go first.
      const results = blocks.filter((b) => b.type === "tool_result");
      const others = blocks.filter((b) => b.type !== "tool_result");
      const leadingResults = last.blocks.filter((b) => b.type === "tool_result");
      const rest = last.blocks.filter((b) => b.type !== "tool_result");
      last.blocks = [...leadingResults, ...results, ...rest, ...others];
    } else {
      messages.push({ role, blocks });
    }
  };

  request.messages.forEach((message: ChatMessage, i) => {
    if (typeof message !== "object" || message === null) throw invalid(`messages[${i}] must be an object`);
    switch (message.role) {
      case "system":
      case "developer":
        systemTexts.push(...systemText(message.content, i));
        break;
      case "user":
        append("user", contentBlocks(message.content, i, true));
        break;
      case "assistant": {
        const blocks: AnthropicContentBlockParam[] = message.content === undefined || message.content === null ? [] : contentBlocks(message.content, i, false);
        if (message.tool_calls !== undefined) {
          if (!Array.isArray(message.tool_calls)) throw invalid(`messages[${i}].tool_calls must be an array`);
          message.tool_calls.forEach((call, j) => {
            blocks.push(toolUseBlock(call, i, j));
          });
        }
        append("assistant", blocks);
        break;
      }
      case "tool": {
        if (typeof message.tool_call_id !== "string" || message.tool_call_id === "") {
          throw invalid(`messages[${i}].tool_call_id must be a non-empty string`);
        }
        append("user", [toolResultBlock(message.tool_call_id, message.content, i)]);
        break;
      }
      default:
        throw invalid(`messages[${i}].role is not supported`);
    }
  });

  const format = request.response_format;
  if (format !== undefined && format !== null) {
    if (format.type === "json_object") systemTexts.push(JSON_OBJECT_INSTRUCTION);
    else if (format.type === "json_schema") {
      const schema = (format.json_schema as { schema?: unknown } | undefined)?.schema;
      systemTexts.push(schema === undefined ? JSON_OBJECT_INSTRUCTION : jsonSchemaInstruction(schema));
    } else if (format.type !== "text") throw invalid("response_format.type is not supported");
  }

  const body: AnthropicMessagesRequest = {
    model: options.model,
    messages: messages.map(({ role, blocks }) => ({
      role,
      content: blocks.length === 1 && blocks[0]!.type === "text" ? blocks[0]!.text : blocks,
    })),
    max_tokens: maxTokens(request, options.defaultMaxTokens),
  };
  if (systemTexts.length === 1) body.system = systemTexts[0]!;
  else if (systemTexts.length > 1) body.system = systemTexts.map((text) => ({ type: "text", text }));

  const stop = request.stop;
  if (typeof stop === "string") body.stop_sequences = [stop];
  else if (Array.isArray(stop)) {
    if (!stop.every((s) => typeof s === "string")) throw invalid("stop must be a string or an array of strings");
    if (stop.length > 0) body.stop_sequences = [...stop];
  } else if (stop !== undefined && stop !== null) throw invalid("stop must be a string or an array of strings");

  if (request.temperature !== undefined && request.temperature !== null) {
    if (typeof request.temperature !== "number" || !Number.isFinite(request.temperature)) throw invalid("temperature must be a number");
    body.temperature = Math.min(Math.max(request.temperature, 0), 1);
  }
  if (request.top_p !== undefined && request.top_p !== null) {
    if (typeof request.top_p !== "number" || !Number.isFinite(request.top_p)) throw invalid("top_p must be a number");
    body.top_p = request.top_p;
  }

  if (request.tools !== undefined && request.tools !== null) {
    if (!Array.isArray(request.tools)) throw invalid("tools must be an array");
    if (request.tools.length > 0) body.tools = request.tools.map((tool, i) => toAnthropicTool(tool, i));
  }
  const choice = toAnthropicToolChoice(request.tool_choice, request.parallel_tool_calls);
  if (choice !== undefined && body.tools !== undefined) body.tool_choice = choice;

  if (typeof request.user === "string" && request.user !== "") body.metadata = { user_id: request.user };
  if (options.stream) body.stream = true;
  return body;
}

function maxTokens(request: ChatRequest, fallback: number): number {
  const value = request.max_completion_tokens ?? request.max_tokens;
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw invalid("max_tokens must be a positive integer");
  }
  return value;
}

function systemText(content: string | ContentPart[], i: number): string[] {
  if (typeof content === "string") return content === "" ? [] : [content];
  if (!Array.isArray(content)) throw invalid(`messages[${i}].content must be a string or an array`);
  return content
    .map((part, j) => {
      if (part?.type !== "text" || typeof part.text !== "string") throw invalid(`messages[${i}].content[${j}]: system content must be text`);
      return part.text;
    })
    .filter((text) => text !== "");
}

function contentBlocks(content: string | ContentPart[], i: number, allowImages: boolean): AnthropicContentBlockParam[] {
  if (typeof content === "string") return content === "" ? [] : [{ type: "text", text: content }];
  if (!Array.isArray(content)) throw invalid(`messages[${i}].content must be a string or an array`);
  const blocks: AnthropicContentBlockParam[] = [];
  content.forEach((part, j) => {
    const where = `messages[${i}].content[${j}]`;
    if (typeof part !== "object" || part === null) throw invalid(`${where} must be an object`);
    if (part.type === "text") {
      if (typeof part.text !== "string") throw invalid(`${where}.text must be a string`);
      if (part.text !== "") blocks.push({ type: "text", text: part.text });
    } else if (part.type === "refusal" && !allowImages) {
      // An assistant turn that refused: keep the words, Anthropic has no refusal part.
      if (typeof part.refusal !== "string") throw invalid(`${where}.refusal must be a string`);
      if (part.refusal !== "") blocks.push({ type: "text", text: part.refusal });
    } else if (part.type === "image_url" && allowImages) {
      blocks.push(imageBlock(part.image_url, where));
    } else {
      throw unsupported(`${where}: this content part type is not supported by this provider`);
    }
  });
  return blocks;
}

/**
 * data: URLs (RFC 2397) become base64 sources; Anthropic accepts only base64
 * data of jpeg/png/gif/webp. http(s) URLs become url sources, fetched by
 * Anthropic, not by the gateway.
 */
function imageBlock(imageUrl: unknown, where: string): AnthropicImageBlock {
  const url = (imageUrl as { url?: unknown } | undefined)?.url;
  if (typeof url !== "string") throw invalid(`${where}.image_url.url must be a string`);
  if (url.startsWith("data:")) {
    const comma = url.indexOf(",");
    if (comma < 0) throw invalid(`${where}: malformed data URL`);
    const params = url
      .slice(5, comma)
      .split(";")
      .map((p) => p.trim().toLowerCase());
    const mediaType = params[0] ?? "";
    if (!params.slice(1).includes("base64")) throw invalid(`${where}: data URL must be base64-encoded`);
    if (!IMAGE_MEDIA_TYPES.has(mediaType)) throw unsupported(`${where}: image type must be jpeg, png, gif or webp`);
    const data = url.slice(comma + 1);
    if (data === "" || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw invalid(`${where}: data URL is not valid base64`);
    return { type: "image", source: { type: "base64", media_type: mediaType as AnthropicImageMediaType, data } };
  }
  if (/^https?:\/\//i.test(url)) return { type: "image", source: { type: "url", url } };
  throw invalid(`${where}: image URL must be a data: or http(s) URL`);
}

function toolUseBlock(call: ToolCall, i: number, j: number): AnthropicToolUseBlock {
  const where = `messages[${i}].tool_calls[${j}]`;
  if (typeof call !== "object" || call === null || typeof call.id !== "string" || call.id === "") {
    throw invalid(`${where}.id must be a non-empty string`);
  }
  if (call.type !== undefined && call.type !== "function") throw unsupported(`${where}: only function tool calls are supported`);
  const fn = call.function as { name?: unknown; arguments?: unknown } | undefined;
  if (typeof fn?.name !== "string" || fn.name === "") throw invalid(`${where}.function.name must be a non-empty string`);
  if (typeof fn.arguments !== "string") throw invalid(`${where}.function.arguments must be a string`);
  // Tools without parameters often come back with "" arguments; Anthropic wants an object.
  if (fn.arguments.trim() === "") return { type: "tool_use", id: call.id, name: fn.name, input: {} };
  let input: unknown;
  try {
    input = JSON.parse(fn.arguments);
  } catch {
    throw invalid(`${where}.function.arguments is not valid JSON`);
  }
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw invalid(`${where}.function.arguments must be a JSON object`);
  }
  return { type: "tool_use", id: call.id, name: fn.name, input: input as Record<string, unknown> };
}

function toolResultBlock(toolCallId: string, content: string | ContentPart[], i: number): AnthropicToolResultBlock {
  if (typeof content === "string") {
    return content === "" ? { type: "tool_result", tool_use_id: toolCallId } : { type: "tool_result", tool_use_id: toolCallId, content };
  }
  const blocks = contentBlocks(content, i, true) as (AnthropicTextBlock | AnthropicImageBlock)[];
  return blocks.length === 0 ? { type: "tool_result", tool_use_id: toolCallId } : { type: "tool_result", tool_use_id: toolCallId, content: blocks };
}

function toAnthropicTool(tool: unknown, i: number): AnthropicTool {
  const t = tool as { type?: unknown; function?: { name?: unknown; description?: unknown; parameters?: unknown } } | null;
  if (typeof t !== "object" || t === null) throw invalid(`tools[${i}] must be an object`);
  if (t.type !== "function") throw unsupported(`tools[${i}]: only function tools are supported`);
  const fn = t.function;
  if (typeof fn?.name !== "string" || fn.name === "") throw invalid(`tools[${i}].function.name must be a non-empty string`);
  const out: AnthropicTool = {
    name: fn.name,
    // Anthropic requires input_schema; a function without parameters takes an empty object.
    input_schema: { type: "object", properties: {} },
  };
  if (fn.description !== undefined) {
    if (typeof fn.description !== "string") throw invalid(`tools[${i}].function.description must be a string`);
    out.description = fn.description;
  }
  if (fn.parameters !== undefined) {
    if (typeof fn.parameters !== "object" || fn.parameters === null || Array.isArray(fn.parameters)) {
      throw invalid(`tools[${i}].function.parameters must be an object`);
    }
    out.input_schema = fn.parameters as Record<string, unknown>;
  }
  return out;
}

/**
 * none → none, auto → auto, required → any, {function:{name}} → tool.
 * `parallel_tool_calls: false` becomes `disable_parallel_tool_use: true`
 * (not allowed with "none").
 */
export function toAnthropicToolChoice(choice: ToolChoice | undefined, parallelToolCalls: unknown): AnthropicToolChoice | undefined {
  const disableParallel = parallelToolCalls === false;
  let out: AnthropicToolChoice;
  if (choice === undefined || choice === null) {
    if (!disableParallel) return undefined;
    out = { type: "auto" };
  } else if (choice === "none") return { type: "none" };
  else if (choice === "auto") out = { type: "auto" };
  else if (choice === "required") out = { type: "any" };
  else if (typeof choice === "object" && choice.type === "function" && typeof choice.function?.name === "string" && choice.function.name !== "") {
    out = { type: "tool", name: choice.function.name };
  } else throw invalid("tool_choice is not valid");
  if (disableParallel) out.disable_parallel_tool_use = true;
  return out;
}
