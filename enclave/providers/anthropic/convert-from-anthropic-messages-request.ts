import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolChoice, ToolDefinition } from "../canonical/types.js";

/**
 * The reverse direction, for the gateway's `/v1/messages` surface when the
 * routed provider is not Anthropic: an Anthropic Messages request (unknown
 * JSON from the client) → a canonical ChatRequest. The answer goes back
 * through convert-to-anthropic-message.ts (JSON) or
 * encode-anthropic-stream.ts (SSE).
 *
 * Decisions:
 * - `system` (string or text blocks) becomes one system message; blocks are
 *   joined with a blank line (OpenAI-compatible servers do not all accept
 *   array content in system messages).
 * - tool_result blocks become `role:"tool"` messages, placed before the rest
 *   of their user turn (OpenAI wants tool messages right after the assistant
 *   turn that called them). `is_error` has no OpenAI field and is dropped.
 * - thinking / redacted_thinking blocks and the `thinking` option are
 *   dropped; `top_k`, `cache_control` and `metadata` other than user_id are
 *   not forwarded. Documents, server tools and images inside tool results
 *   are rejected (unsupported_capability).
 * - `stream: true` also sets stream_options.include_usage, because
 *   Anthropic's message_delta must report output tokens.
 * Error messages name the field and index only, never a value the client sent.
 */

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

function unsupported(message: string): GatewayError {
  return new GatewayError("unsupported_capability", message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalNumber(body: Record<string, unknown>, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) throw invalid(`${key} must be a number`);
  return value;
}

export function anthropicRequestToOpenAI(body: unknown): ChatRequest {
  if (!isRecord(body)) throw invalid("request body must be a JSON object");
  if (typeof body.model !== "string" || body.model === "") throw invalid("model must be a non-empty string");
  const maxTokens = body.max_tokens;
  if (typeof maxTokens !== "number" || !Number.isSafeInteger(maxTokens) || maxTokens < 1) {
    throw invalid("max_tokens must be a positive integer");
  }
  if (!Array.isArray(body.messages)) throw invalid("messages must be an array");

  const messages: ChatMessage[] = [];
  const system = systemContent(body.system);
  if (system !== undefined) messages.push({ role: "system", content: system });
  body.messages.forEach((message, i) => {
    messages.push(...toOpenAIMessages(message, i));
  });

  const out: ChatRequest = { model: body.model, messages, max_tokens: maxTokens };

  const temperature = optionalNumber(body, "temperature");
  if (temperature !== undefined) out.temperature = temperature;
  const topP = optionalNumber(body, "top_p");
  if (topP !== undefined) out.top_p = topP;

  if (body.stop_sequences !== undefined && body.stop_sequences !== null) {
    if (!Array.isArray(body.stop_sequences) || !body.stop_sequences.every((s) => typeof s === "string")) {
      throw invalid("stop_sequences must be an array of strings");
    }
    if (body.stop_sequences.length > 0) out.stop = [...(body.stop_sequences as string[])];
  }

  if (body.tools !== undefined && body.tools !== null) {
    if (!Array.isArray(body.tools)) throw invalid("tools must be an array");
    if (body.tools.length > 0) out.tools = body.tools.map((tool, i) => toOpenAITool(tool, i));
  }
  if (body.tool_choice !== undefined && body.tool_choice !== null) {
    const { choice, parallel } = toOpenAIToolChoice(body.tool_choice);
    out.tool_choice = choice;
    if (parallel === false) out.parallel_tool_calls = false;
  }

  if (isRecord(body.metadata) && typeof body.metadata.user_id === "string" && body.metadata.user_id !== "") {
    out.user = body.metadata.user_id;
  }

  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean") throw invalid("stream must be a boolean");
  if (body.stream === true) {
    out.stream = true;
    out.stream_options = { include_usage: true };
  }
  return out;
}

function systemContent(system: unknown): string | undefined {
  if (system === undefined || system === null) return undefined;
  if (typeof system === "string") return system === "" ? undefined : system;
  if (!Array.isArray(system)) throw invalid("system must be a string or an array of text blocks");
  const texts = system.map((block, j) => {
    if (!isRecord(block) || block.type !== "text" || typeof block.text !== "string") throw invalid(`system[${j}] must be a text block`);
    return block.text;
  });
  const joined = texts.filter((t) => t !== "").join("\n\n");
  return joined === "" ? undefined : joined;
}

function toOpenAIMessages(message: unknown, i: number): ChatMessage[] {
  if (!isRecord(message)) throw invalid(`messages[${i}] must be an object`);
  const { role, content } = message;
  if (role !== "user" && role !== "assistant") throw invalid(`messages[${i}].role must be "user" or "assistant"`);
  if (typeof content === "string") return [{ role, content }];
  if (!Array.isArray(content)) throw invalid(`messages[${i}].content must be a string or an array`);
  return role === "user" ? userMessages(content, i) : [assistantMessage(content, i)];
}

function userMessages(blocks: unknown[], i: number): ChatMessage[] {
  const tools: ChatMessage[] = [];
  const parts: ContentPart[] = [];
  blocks.forEach((block, j) => {
    const where = `messages[${i}].content[${j}]`;
    if (!isRecord(block)) throw invalid(`${where} must be an object`);
    switch (block.type) {
      case "text":
        parts.push(textPart(block, where));
        break;
      case "image":
        parts.push(imagePart(block, where));
        break;
      case "tool_result":
        tools.push(toolMessage(block, where));
        break;
      default:
        throw unsupported(`${where}: this content block type is not supported for this model`);
    }
  });
  if (parts.length === 0) return tools;
  // One text part is sent as a plain string, which every OpenAI-compatible server accepts.
  const only = parts[0];
  const content = parts.length === 1 && only?.type === "text" ? (only as { text: string }).text : parts;
  return [...tools, { role: "user", content }];
}

function textPart(block: Record<string, unknown>, where: string): ContentPart {
  if (typeof block.text !== "string") throw invalid(`${where}.text must be a string`);
  return { type: "text", text: block.text };
}

function imagePart(block: Record<string, unknown>, where: string): ContentPart {
  const source = block.source;
  if (!isRecord(source)) throw invalid(`${where}.source must be an object`);
  if (source.type === "base64") {
    if (typeof source.media_type !== "string" || !/^image\/[a-z0-9.+-]+$/i.test(source.media_type)) {
      throw invalid(`${where}.source.media_type must be an image media type`);
    }
    if (typeof source.data !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(source.data)) {
      throw invalid(`${where}.source.data must be base64`);
    }
    return { type: "image_url", image_url: { url: `data:${source.media_type};base64,${source.data}` } };
  }
  if (source.type === "url") {
    if (typeof source.url !== "string" || !/^https?:\/\//i.test(source.url)) throw invalid(`${where}.source.url must be an http(s) URL`);
    return { type: "image_url", image_url: { url: source.url } };
  }
  throw unsupported(`${where}.source.type is not supported for this model`);
}

function toolMessage(block: Record<string, unknown>, where: string): ChatMessage {
  if (typeof block.tool_use_id !== "string" || block.tool_use_id === "") throw invalid(`${where}.tool_use_id must be a non-empty string`);
  const content = block.content;
  let text: string;
  if (content === undefined || content === null) text = "";
  else if (typeof content === "string") text = content;
  else if (Array.isArray(content)) {
    text = content
      .map((part, k) => {
        if (!isRecord(part)) throw invalid(`${where}.content[${k}] must be an object`);
        if (part.type === "text" && typeof part.text === "string") return part.text;
        throw unsupported(`${where}.content[${k}]: only text is supported in tool results for this model`);
      })
      .join("");
  } else throw invalid(`${where}.content must be a string or an array`);
  return { role: "tool", tool_call_id: block.tool_use_id, content: text };
}

function assistantMessage(blocks: unknown[], i: number): ChatMessage {
  let text = "";
  let sawText = false;
  const toolCalls: ToolCall[] = [];
  blocks.forEach((block, j) => {
    const where = `messages[${i}].content[${j}]`;
    if (!isRecord(block)) throw invalid(`${where} must be an object`);
    switch (block.type) {
      case "text":
        if (typeof block.text !== "string") throw invalid(`${where}.text must be a string`);
        text += block.text;
        sawText = true;
        break;
      case "tool_use": {
        if (typeof block.id !== "string" || block.id === "") throw invalid(`${where}.id must be a non-empty string`);
        if (typeof block.name !== "string" || block.name === "") throw invalid(`${where}.name must be a non-empty string`);
        if (!isRecord(block.input)) throw invalid(`${where}.input must be an object`);
        toolCalls.push({ id: block.id, type: "function", function: { name: block.name, arguments: JSON.stringify(block.input) } });
        break;
      }
      case "thinking":
      case "redacted_thinking":
        // Provider-specific reasoning traces mean nothing to another model.
        break;
      default:
        throw unsupported(`${where}: this content block type is not supported for this model`);
    }
  });
  const message: ChatMessage = { role: "assistant", content: sawText || toolCalls.length === 0 ? text : null };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return message;
}

function toOpenAITool(tool: unknown, i: number): ToolDefinition {
  if (!isRecord(tool)) throw invalid(`tools[${i}] must be an object`);
  // Client tools have no type or "custom"; anything else is an Anthropic server tool.
  if (tool.type !== undefined && tool.type !== null && tool.type !== "custom") throw unsupported(`tools[${i}]: server tools are not supported for this model`);
  if (typeof tool.name !== "string" || tool.name === "") throw invalid(`tools[${i}].name must be a non-empty string`);
  if (!isRecord(tool.input_schema)) throw invalid(`tools[${i}].input_schema must be an object`);
  const fn: ToolDefinition["function"] = { name: tool.name, parameters: tool.input_schema };
  if (tool.description !== undefined && tool.description !== null) {
    if (typeof tool.description !== "string") throw invalid(`tools[${i}].description must be a string`);
    fn.description = tool.description;
  }
  return { type: "function", function: fn };
}

function toOpenAIToolChoice(choice: unknown): { choice: ToolChoice; parallel: boolean | undefined } {
  if (!isRecord(choice)) throw invalid("tool_choice must be an object");
  const parallel = choice.disable_parallel_tool_use === true ? false : undefined;
  switch (choice.type) {
    case "auto":
      return { choice: "auto", parallel };
    case "any":
      return { choice: "required", parallel };
    case "none":
      return { choice: "none", parallel: undefined };
    case "tool":
      if (typeof choice.name !== "string" || choice.name === "") throw invalid("tool_choice.name must be a non-empty string");
      return { choice: { type: "function", function: { name: choice.name } }, parallel };
    default:
      throw invalid("tool_choice.type is not valid");
  }
}
