import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolDefinition } from "../canonical/types.js";
import type { ConverseContentBlock, ConverseInferenceConfig, ConverseMessage, ConverseRequest, ConverseToolChoice, ConverseToolSpec } from "./bedrock-api-types.js";

/**
 * Canonical (OpenAI Chat Completions) request → Bedrock Converse request. A
 * pure function: it throws GatewayError for what Converse cannot express,
 * and no message names prompt text, only JSON paths.
 *
 * Decisions, each where the two APIs do not line up:
 * - system and developer messages are hoisted, in order, into `system`
 *   (text only);
 * - tool results (role "tool") are `toolResult` blocks in a user turn, and
 *   adjacent turns of one role are merged: Converse requires user and
 *   assistant to alternate;
 * - images must be base64 data URLs (png, jpeg, gif, webp), sent as bytes:
 *   Bedrock fetches no URL, and the enclave will not fetch one for a client;
 * - tool_choice "none" drops the tool list when no earlier turn used a tool
 *   (Converse has no "none"; with tool blocks in the history the tool list is
 *   required, so it is refused);
 * - response_format json_object / json_schema and n > 1 have no Converse
 *   equivalent and are refused; `name`, `user`, `seed`, penalties and
 *   `parallel_tool_calls` are ignored.
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

const IMAGE_FORMATS: Record<string, "png" | "jpeg" | "gif" | "webp"> = { "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp" };
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function toConverseRequest(request: ChatRequest): ConverseRequest {
  if (!isRecord(request)) throw invalid("request must be a JSON object");
  if (!Array.isArray(request.messages) || request.messages.length === 0) throw invalid("messages must be a non-empty array");
  const system: { text: string }[] = [];
  const messages: ConverseMessage[] = [];
  let usesTools = false;
  const push = (role: ConverseMessage["role"], content: ConverseContentBlock[]): void => {
    if (content.length === 0) return;
    const last = messages[messages.length - 1];
    if (last && last.role === role) last.content.push(...content);
    else messages.push({ role, content });
  };

  request.messages.forEach((message: ChatMessage, i) => {
    const at = `messages[${i}]`;
    if (!isRecord(message)) throw invalid(`${at} must be an object`);
    switch (message.role) {
      case "system":
      case "developer":
        system.push(...textBlocks(message.content, at));
        break;
      case "user":
        push("user", userBlocks(message.content, at));
        break;
      case "assistant": {
        const content: ConverseContentBlock[] = [];
        if (message.content !== undefined && message.content !== null) content.push(...textBlocks(message.content, at, true));
        if (message.tool_calls !== undefined) {
          if (!Array.isArray(message.tool_calls)) throw invalid(`${at}.tool_calls must be an array`);
          message.tool_calls.forEach((call, j) => {
            content.push({ toolUse: toolUse(call, `${at}.tool_calls[${j}]`) });
          });
          usesTools ||= message.tool_calls.length > 0;
        }
        push("assistant", content);
        break;
      }
      case "tool": {
        if (typeof message.tool_call_id !== "string" || message.tool_call_id === "") throw invalid(`${at}.tool_call_id must be a non-empty string`);
        const text = textBlocks(message.content, at, true)
          .map((b) => b.text)
          .join("");
        // Converse refuses an empty text block, so an empty tool result is an empty content list.
        push("user", [{ toolResult: { toolUseId: message.tool_call_id, content: text === "" ? [] : [{ text }] } }]);
        usesTools = true;
        break;
      }
      default:
        throw invalid(`${at}.role is not one of system, developer, user, assistant, tool`);
    }
  });
  if (messages.length === 0) throw invalid("messages must contain at least one user or assistant message");
  if (messages[0]!.role !== "user") throw invalid("Bedrock needs the conversation to start with a user message");

  const out: ConverseRequest = { messages };
  if (system.length > 0) out.system = system;
  const inference = inferenceConfig(request);
  if (Object.keys(inference).length > 0) out.inferenceConfig = inference;
  const tools = toolSpecs(request.tools);
  const choice = request.tool_choice;
  if (choice === "none") {
    if (usesTools && tools.length > 0) throw unsupported('tool_choice "none" cannot be expressed on Bedrock once the conversation holds tool calls');
  } else if (tools.length > 0) {
    out.toolConfig = { tools };
    const mapped = toolChoice(choice, tools);
    if (mapped) out.toolConfig.toolChoice = mapped;
  } else if (choice !== undefined && choice !== null && choice !== "auto") {
    throw invalid("tool_choice needs tools");
  }
  if (usesTools && out.toolConfig === undefined && tools.length === 0) throw invalid("a conversation with tool calls needs its tools listed (Bedrock requires toolConfig)");
  return out;
}

function textBlocks(content: unknown, at: string, allowRefusal = false): { text: string }[] {
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  if (!Array.isArray(content)) throw invalid(`${at}.content must be a string or an array of parts`);
  const out: { text: string }[] = [];
  content.forEach((part: unknown, k) => {
    if (!isRecord(part)) throw invalid(`${at}.content[${k}] must be an object`);
    const text = part.type === "text" ? part.text : allowRefusal && part.type === "refusal" ? part.refusal : undefined;
    if (part.type !== "text" && !(allowRefusal && part.type === "refusal")) throw invalid(`${at}.content[${k}] must be a text part`);
    if (typeof text !== "string") throw invalid(`${at}.content[${k}] text must be a string`);
    if (text !== "") out.push({ text });
  });
  return out;
}

function userBlocks(content: unknown, at: string): ConverseContentBlock[] {
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  if (!Array.isArray(content)) throw invalid(`${at}.content must be a string or an array of parts`);
  const out: ConverseContentBlock[] = [];
  content.forEach((part: ContentPart, k) => {
    const pat = `${at}.content[${k}]`;
    if (!isRecord(part)) throw invalid(`${pat} must be an object`);
    if (part.type === "text") {
      if (typeof part.text !== "string") throw invalid(`${pat}.text must be a string`);
      if (part.text !== "") out.push({ text: part.text });
    } else if (part.type === "image_url") {
      const url = isRecord(part.image_url) ? part.image_url.url : undefined;
      if (typeof url !== "string") throw invalid(`${pat}.image_url.url must be a string`);
      out.push({ image: imageBlock(url, pat) });
    } else {
      throw unsupported(`${pat}.type is not supported for Bedrock (text, image_url)`);
    }
  });
  return out;
}

function imageBlock(url: string, at: string): { format: "png" | "jpeg" | "gif" | "webp"; source: { bytes: string } } {
  if (!url.startsWith("data:")) throw unsupported(`${at}.image_url.url must be a base64 data URL on Bedrock (it fetches no URL)`);
  const match = /^data:([^;,]+)((?:;[^;,]*)*);base64,(.*)$/s.exec(url);
  if (!match) throw invalid(`${at}.image_url.url must be a base64 data URL with a media type`);
  const format = IMAGE_FORMATS[match[1]!.trim().toLowerCase()];
  if (format === undefined) throw unsupported(`${at}.image_url.url: Bedrock takes png, jpeg, gif and webp images`);
  const data = match[3]!.replace(/\s+/g, "");
  if (data === "" || !BASE64.test(data)) throw invalid(`${at}.image_url.url does not hold base64 data`);
  return { format, source: { bytes: data } };
}

function toolUse(call: ToolCall, at: string): { toolUseId: string; name: string; input: unknown } {
  if (!isRecord(call) || typeof call.id !== "string" || call.id === "" || !isRecord(call.function) || typeof call.function.name !== "string") {
    throw invalid(`${at} must have an id and a function name`);
  }
  const raw = call.function.arguments;
  if (raw !== undefined && typeof raw !== "string") throw invalid(`${at}.function.arguments must be a string`);
  let input: unknown = {};
  if (raw !== undefined && raw.trim() !== "") {
    try {
      input = JSON.parse(raw);
    } catch {
      throw invalid(`${at}.function.arguments is not valid JSON`);
    }
  }
  // ToolUseBlock.input is a JSON document; Bedrock's models expect an object.
  if (!isRecord(input)) throw invalid(`${at}.function.arguments must be a JSON object`);
  return { toolUseId: call.id, name: call.function.name, input };
}

function toolSpecs(tools: unknown): ConverseToolSpec[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw invalid("tools must be an array");
  return tools.map((tool: ToolDefinition, i) => {
    const at = `tools[${i}]`;
    if (!isRecord(tool) || tool.type !== "function") throw unsupported(`${at}: Bedrock accepts function tools only`);
    const fn = tool.function;
    if (!isRecord(fn) || typeof fn.name !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(fn.name)) throw invalid(`${at}.function.name must be 1..64 letters, digits, _ or -`);
    if (fn.description !== undefined && typeof fn.description !== "string") throw invalid(`${at}.function.description must be a string`);
    if (fn.parameters !== undefined && !isRecord(fn.parameters)) throw invalid(`${at}.function.parameters must be an object`);
    const spec: ConverseToolSpec["toolSpec"] = { name: fn.name, inputSchema: { json: fn.parameters ?? { type: "object", properties: {} } } };
    if (typeof fn.description === "string" && fn.description !== "") spec.description = fn.description;
    return { toolSpec: spec };
  });
}

function toolChoice(choice: unknown, tools: ConverseToolSpec[]): ConverseToolChoice | undefined {
  if (choice === undefined || choice === null || choice === "auto") return undefined;
  if (choice === "required") return { any: {} };
  if (isRecord(choice) && choice.type === "function" && isRecord(choice.function) && typeof choice.function.name === "string") {
    const name = choice.function.name;
    if (!tools.some((t) => t.toolSpec.name === name)) throw invalid("tool_choice names a function that is not in tools");
    return { tool: { name } };
  }
  throw invalid('tool_choice must be none, auto, required or {type:"function",function:{name}}');
}

function inferenceConfig(request: ChatRequest): ConverseInferenceConfig {
  const config: ConverseInferenceConfig = {};
  const num = (key: string, min: number, max: number, integer = false): number | undefined => {
    const value = request[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw invalid(`${key} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}]`);
    }
    return value;
  };
  const temperature = num("temperature", 0, 2);
  if (temperature !== undefined) config.temperature = temperature;
  const topP = num("top_p", 0, 1);
  if (topP !== undefined) config.topP = topP;
  const maxTokens = num("max_completion_tokens", 1, 2 ** 31 - 1, true) ?? num("max_tokens", 1, 2 ** 31 - 1, true);
  if (maxTokens !== undefined) config.maxTokens = maxTokens;
  const n = num("n", 1, 8, true);
  if (n !== undefined && n !== 1) throw unsupported("n > 1 is not supported on Bedrock");
  const stop = request.stop;
  if (stop !== undefined && stop !== null) {
    const list = typeof stop === "string" ? [stop] : stop;
    if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === "string" && s !== ""))
      throw invalid("stop must be a string or an array of at most 4 non-empty strings");
    if (list.length > 0) config.stopSequences = list;
  }
  const format = request.response_format;
  if (format !== undefined && format !== null) {
    if (!isRecord(format)) throw invalid("response_format must be an object");
    if (format.type !== "text") throw unsupported("response_format json_object / json_schema is not supported on Bedrock Converse");
  }
  return config;
}
