import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolChoice, ToolDefinition } from "../canonical/types.js";
import { fromGeminiSchema } from "./convert-gemini-schema-to-json-schema.js";

/**
 * A Gemini client's GenerateContentRequest (v1beta REST JSON, camelCase as
 * @google/genai and @ai-sdk/google write it) → the canonical request, for a
 * route whose provider does not speak Gemini. The inverse of
 * convert-to-gemini-request.ts. Throws GatewayError for what cannot be
 * expressed; messages name JSON paths (`contents[2].parts[0]`), never text.
 *
 * Decisions:
 * - role "model" is the assistant; "user" (or none) the user. A user turn's
 *   functionResponse parts become `tool` messages before its other parts,
 *   because a tool result must follow the assistant's call directly.
 * - A functionCall without an id gets `call_<n>` (n counting calls in the
 *   request); a functionResponse is matched to its call by id, else to the
 *   earliest unanswered call of that name. Unmatched: 400.
 * - Thought parts (`thought: true`) are the model's own reasoning: dropped.
 * - inlineData images become data: URLs, wav/mp3 audio input_audio; a
 *   fileData image an https URL. Other media, executableCode,
 *   codeExecutionResult, cachedContent and non-function tools (googleSearch,
 *   codeExecution, urlContext…) are refused as unsupported_capability.
 * - safetySettings, topK, thinkingConfig and speech/media settings have no
 *   canonical equivalent and are ignored: the target provider's own policy
 *   and defaults apply.
 * - responseMimeType application/json with responseSchema (Gemini Schema,
 *   converted) or responseJsonSchema (JSON Schema, as is) becomes a
 *   json_schema response_format named "response"; without a schema,
 *   json_object.
 */

const MAX_CONTENTS = 10_000;
const MAX_PARTS = 10_000;

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

function unsupported(message: string): GatewayError {
  return new GatewayError("unsupported_capability", message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const AUDIO_FORMATS: Record<string, string> = { "audio/wav": "wav", "audio/x-wav": "wav", "audio/mp3": "mp3", "audio/mpeg": "mp3" };
const MIME = /^[a-z0-9.+-]+\/[a-z0-9.+*-]+$/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;
/** Part fields that are metadata on a part, not its kind. */
const PART_METADATA = new Set(["thought", "thoughtSignature", "videoMetadata", "partMetadata"]);

interface PendingCall {
  id: string;
  name: string;
  answered: boolean;
}

export function fromGeminiRequest(body: Record<string, unknown>, model: string): ChatRequest {
  if (!Array.isArray(body.contents) || body.contents.length === 0) throw invalid("contents must be a non-empty array");
  if (body.contents.length > MAX_CONTENTS) throw invalid(`contents may hold at most ${MAX_CONTENTS} items`);
  if (body.cachedContent !== undefined) throw unsupported("cachedContent is served by Gemini routes only");
  const messages: ChatMessage[] = [];
  const system = systemMessage(body.systemInstruction);
  if (system) messages.push(system);
  const calls: PendingCall[] = [];
  body.contents.forEach((content: unknown, i) => {
    const at = `contents[${i}]`;
    if (!isRecord(content)) throw invalid(`${at} must be a Content object`);
    const role = content.role ?? "user";
    if (role !== "user" && role !== "model" && role !== "function") throw invalid(`${at}.role must be user or model`);
    if (!Array.isArray(content.parts) || content.parts.length === 0) throw invalid(`${at}.parts must be a non-empty array`);
    if (content.parts.length > MAX_PARTS) throw invalid(`${at}.parts may hold at most ${MAX_PARTS} items`);
    if (role === "model") messages.push(assistantMessage(content.parts, at, calls));
    else messages.push(...userMessages(content.parts, at, calls));
  });
  const request: ChatRequest = { model, messages };
  const tools = toolDefinitions(body.tools);
  if (tools.length > 0) request.tools = tools;
  const choice = toolChoice(body.toolConfig, tools);
  if (choice !== undefined) request.tool_choice = choice;
  Object.assign(request, generationOptions(body.generationConfig));
  return request;
}

function systemMessage(instruction: unknown): ChatMessage | undefined {
  if (instruction === undefined || instruction === null) return undefined;
  if (typeof instruction === "string") return instruction === "" ? undefined : { role: "system", content: instruction };
  if (!isRecord(instruction) || !Array.isArray(instruction.parts)) throw invalid("systemInstruction must be a Content with parts");
  const text = instruction.parts
    .map((part: unknown, j) => {
      if (!isRecord(part) || typeof part.text !== "string") throw invalid(`systemInstruction.parts[${j}] must be a text part`);
      return part.text;
    })
    .join("\n");
  return text === "" ? undefined : { role: "system", content: text };
}

function partKind(part: Record<string, unknown>, at: string): string {
  const kinds = Object.keys(part).filter((k) => !PART_METADATA.has(k));
  if (kinds.length !== 1) throw invalid(`${at} must hold exactly one of text, inlineData, fileData, functionCall, functionResponse`);
  return kinds[0]!;
}

function assistantMessage(parts: unknown[], at: string, calls: PendingCall[]): ChatMessage {
  let text = "";
  const toolCalls: ToolCall[] = [];
  parts.forEach((part: unknown, j) => {
    const pat = `${at}.parts[${j}]`;
    if (!isRecord(part)) throw invalid(`${pat} must be a Part object`);
    const kind = partKind(part, pat);
    if (kind === "text") {
      if (typeof part.text !== "string") throw invalid(`${pat}.text must be a string`);
      if (part.thought !== true) text += part.text;
    } else if (kind === "functionCall") {
      const fc = part.functionCall;
      if (!isRecord(fc) || typeof fc.name !== "string" || fc.name === "") throw invalid(`${pat}.functionCall must have a name`);
      if (fc.args !== undefined && fc.args !== null && !isRecord(fc.args)) throw invalid(`${pat}.functionCall.args must be an object`);
      const id = typeof fc.id === "string" && fc.id !== "" ? fc.id : `call_${calls.length}`;
      calls.push({ id, name: fc.name, answered: false });
      toolCalls.push({ id, type: "function", function: { name: fc.name, arguments: JSON.stringify(fc.args ?? {}) } });
    } else {
      throw unsupported(`${pat}: a model turn may hold text and functionCall parts only`);
    }
  });
  const message: ChatMessage = { role: "assistant", content: text === "" && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return message;
}

function userMessages(parts: unknown[], at: string, calls: PendingCall[]): ChatMessage[] {
  const tools: ChatMessage[] = [];
  const content: ContentPart[] = [];
  parts.forEach((part: unknown, j) => {
    const pat = `${at}.parts[${j}]`;
    if (!isRecord(part)) throw invalid(`${pat} must be a Part object`);
    switch (partKind(part, pat)) {
      case "text":
        if (typeof part.text !== "string") throw invalid(`${pat}.text must be a string`);
        if (part.thought !== true && part.text !== "") content.push({ type: "text", text: part.text });
        break;
      case "inlineData":
        content.push(inlineDataPart(part.inlineData, pat));
        break;
      case "fileData":
        content.push(fileDataPart(part.fileData, pat));
        break;
      case "functionResponse":
        tools.push(toolMessage(part.functionResponse, pat, calls));
        break;
      default:
        throw unsupported(`${pat}: only text, inlineData, fileData and functionResponse parts can be translated`);
    }
  });
  if (content.length === 0) return tools;
  const only = content.length === 1 && content[0]!.type === "text" ? (content[0] as { text: string }).text : undefined;
  return [...tools, { role: "user", content: only ?? content }];
}

function inlineDataPart(data: unknown, at: string): ContentPart {
  if (!isRecord(data) || typeof data.mimeType !== "string" || !MIME.test(data.mimeType) || typeof data.data !== "string" || !BASE64.test(data.data)) {
    throw invalid(`${at}.inlineData must hold a mimeType and base64 data`);
  }
  const mime = data.mimeType.toLowerCase();
  if (mime.startsWith("image/")) return { type: "image_url", image_url: { url: `data:${mime};base64,${data.data}` } };
  const format = AUDIO_FORMATS[mime];
  if (format) return { type: "input_audio", input_audio: { data: data.data, format } };
  throw unsupported(`${at}.inlineData: only images and wav/mp3 audio can be translated`);
}

function fileDataPart(data: unknown, at: string): ContentPart {
  if (!isRecord(data) || typeof data.fileUri !== "string") throw invalid(`${at}.fileData must hold a fileUri`);
  const mime = typeof data.mimeType === "string" ? data.mimeType.toLowerCase() : "";
  if (!data.fileUri.startsWith("https://") || (mime !== "" && !mime.startsWith("image/"))) {
    throw unsupported(`${at}.fileData: only https image URLs can be translated (Gemini file uploads are served by Gemini routes only)`);
  }
  return { type: "image_url", image_url: { url: data.fileUri } };
}

function toolMessage(response: unknown, at: string, calls: PendingCall[]): ChatMessage {
  if (!isRecord(response) || typeof response.name !== "string") throw invalid(`${at}.functionResponse must have a name`);
  if (response.response !== undefined && !isRecord(response.response)) throw invalid(`${at}.functionResponse.response must be an object`);
  const id = typeof response.id === "string" && response.id !== "" ? response.id : undefined;
  const call = calls.find((c) => !c.answered && (id !== undefined ? c.id === id : c.name === response.name));
  if (!call) throw invalid(`${at}.functionResponse matches no earlier functionCall`);
  call.answered = true;
  return { role: "tool", tool_call_id: call.id, content: JSON.stringify(response.response ?? {}) };
}

function toolDefinitions(tools: unknown): ToolDefinition[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw invalid("tools must be an array");
  const out: ToolDefinition[] = [];
  tools.forEach((tool: unknown, i) => {
    if (!isRecord(tool)) throw invalid(`tools[${i}] must be a Tool object`);
    const other = Object.keys(tool).find((k) => k !== "functionDeclarations");
    if (other !== undefined) throw unsupported(`tools[${i}].${other}: only functionDeclarations can be translated`);
    if (!Array.isArray(tool.functionDeclarations)) throw invalid(`tools[${i}].functionDeclarations must be an array`);
    tool.functionDeclarations.forEach((d: unknown, j) => {
      const at = `tools[${i}].functionDeclarations[${j}]`;
      if (!isRecord(d) || typeof d.name !== "string" || d.name === "") throw invalid(`${at}.name must be a non-empty string`);
      if (d.description !== undefined && typeof d.description !== "string") throw invalid(`${at}.description must be a string`);
      let parameters: Record<string, unknown> = { type: "object", properties: {} };
      if (d.parametersJsonSchema !== undefined) {
        if (!isRecord(d.parametersJsonSchema)) throw invalid(`${at}.parametersJsonSchema must be an object`);
        parameters = d.parametersJsonSchema;
      } else if (d.parameters !== undefined) {
        parameters = fromGeminiSchema(d.parameters, `${at}.parameters`);
      }
      out.push({ type: "function", function: { name: d.name, ...(d.description !== undefined && { description: d.description }), parameters } });
    });
  });
  return out;
}

function toolChoice(config: unknown, tools: ToolDefinition[]): ToolChoice | undefined {
  if (config === undefined || config === null) return undefined;
  if (!isRecord(config)) throw invalid("toolConfig must be an object");
  const fc = config.functionCallingConfig;
  if (fc === undefined) return undefined;
  if (!isRecord(fc)) throw invalid("toolConfig.functionCallingConfig must be an object");
  const names = fc.allowedFunctionNames;
  if (names !== undefined && (!Array.isArray(names) || !names.every((n) => typeof n === "string" && tools.some((t) => t.function.name === n)))) {
    throw invalid("toolConfig.functionCallingConfig.allowedFunctionNames must name declared functions");
  }
  switch (fc.mode ?? "AUTO") {
    case "AUTO":
    case "MODE_UNSPECIFIED":
    case "VALIDATED":
      return tools.length === 0 ? undefined : "auto";
    case "NONE":
      return tools.length === 0 ? undefined : "none";
    case "ANY":
      if (tools.length === 0) throw invalid("toolConfig mode ANY needs functionDeclarations");
      return Array.isArray(names) && names.length === 1 ? { type: "function", function: { name: names[0] as string } } : "required";
    default:
      throw invalid("toolConfig.functionCallingConfig.mode must be AUTO, ANY, NONE or VALIDATED");
  }
}

function generationOptions(config: unknown): Partial<ChatRequest> {
  if (config === undefined || config === null) return {};
  if (!isRecord(config)) throw invalid("generationConfig must be an object");
  const out: Partial<ChatRequest> = {};
  const num = (key: string, target: string, integer = false): void => {
    const value = config[key];
    if (value === undefined || value === null) return;
    if (typeof value !== "number" || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      throw invalid(`generationConfig.${key} must be ${integer ? "an integer" : "a number"}`);
    }
    out[target] = value;
  };
  num("temperature", "temperature");
  num("topP", "top_p");
  num("maxOutputTokens", "max_tokens", true);
  num("seed", "seed", true);
  num("presencePenalty", "presence_penalty");
  num("frequencyPenalty", "frequency_penalty");
  num("candidateCount", "n", true);
  if (out.n === 1) delete out.n;
  const stop = config.stopSequences;
  if (stop !== undefined && stop !== null) {
    if (!Array.isArray(stop) || !stop.every((s) => typeof s === "string")) throw invalid("generationConfig.stopSequences must be an array of strings");
    if (stop.length > 0) out.stop = stop as string[];
  }
  const modalities = config.responseModalities;
  if (Array.isArray(modalities) && modalities.some((m) => m !== "TEXT")) throw unsupported("generationConfig.responseModalities: only TEXT can be translated");
  const mime = config.responseMimeType;
  const schema = config.responseJsonSchema ?? config._responseJsonSchema;
  if (mime === "application/json" || schema !== undefined || config.responseSchema !== undefined) {
    if (mime !== undefined && mime !== "application/json") throw invalid("generationConfig.responseMimeType must be application/json with a response schema");
    if (schema !== undefined) {
      if (!isRecord(schema)) throw invalid("generationConfig.responseJsonSchema must be an object");
      out.response_format = { type: "json_schema", json_schema: { name: "response", schema } };
    } else if (config.responseSchema !== undefined) {
      out.response_format = { type: "json_schema", json_schema: { name: "response", schema: fromGeminiSchema(config.responseSchema, "generationConfig.responseSchema") } };
    } else {
      out.response_format = { type: "json_object" };
    }
  } else if (mime !== undefined && mime !== "text/plain") {
    throw unsupported("generationConfig.responseMimeType: only text/plain and application/json can be translated");
  }
  return out;
}
