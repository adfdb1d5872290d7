import { GatewayError } from "../../errors.js";
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolDefinition } from "../canonical/types.js";
import { toGeminiSchema } from "./convert-json-schema-to-gemini.js";
import type { GeminiContent, GeminiFunctionDeclaration, GeminiGenerateContentRequest, GeminiGenerationConfig, GeminiPart } from "./gemini-api-types.js";

/**
 * Canonical (OpenAI Chat Completions) request → Gemini API request (v1beta
 * `models.generateContent`, REST/JSON). A pure function: it throws
 * GatewayError for requests Gemini cannot express, and no message names
 * prompt text, only JSON paths such as `messages[3].tool_calls[0]`. The
 * answer comes back through convert-from-gemini-response.ts and
 * map-gemini-stream.ts.
 *
 * Decisions (each one a place where the two APIs do not line up):
 * - system and developer messages, wherever they occur, are hoisted in order
 *   into the single `systemInstruction`; they may hold text only.
 * - Adjacent turns with the same Gemini role are merged into one Content, so
 *   parallel tool results become one `user` turn of functionResponse parts,
 *   as Gemini's function-calling guide shows.
 * - Empty text parts are dropped (Gemini rejects them); a turn left without
 *   parts is dropped.
 * - `name` on messages, `detail` on images, `parallel_tool_calls`, `strict`
 *   and `logprobs` have no Gemini equivalent and are ignored.
 * - Thought parts (`thought: true`) never reach `content`.
 */

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function toGeminiRequest(request: ChatRequest): GeminiGenerateContentRequest {
  if (!isRecord(request)) throw invalid("request must be a JSON object");
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    throw invalid("messages must be a non-empty array");
  }
  const systemParts: { text: string }[] = [];
  const contents: GeminiContent[] = [];
  /** tool_call id → function name, as seen so far; a later call with the same id wins. */
  const callNames = new Map<string, string>();

  const push = (role: GeminiContent["role"], parts: GeminiPart[]): void => {
    if (parts.length === 0) return;
    const last = contents[contents.length - 1];
    if (last && last.role === role) last.parts.push(...parts);
    else contents.push({ role, parts });
  };

  request.messages.forEach((message: ChatMessage, i) => {
    const at = `messages[${i}]`;
    if (!isRecord(message)) throw invalid(`${at} must be an object`);
    switch (message.role) {
      case "system":
      case "developer":
        systemParts.push(...textOnlyParts(message.content, at));
        break;
      case "user":
        push("user", userParts(message.content, at));
        break;
      case "assistant": {
        const parts: GeminiPart[] = [];
        if (message.content !== undefined && message.content !== null) parts.push(...textOnlyParts(message.content, at, true));
        if (message.tool_calls !== undefined) {
          if (!Array.isArray(message.tool_calls)) throw invalid(`${at}.tool_calls must be an array`);
          message.tool_calls.forEach((call, j) => {
            const fc = functionCallPart(call, `${at}.tool_calls[${j}]`);
            callNames.set(call.id, fc.name);
            parts.push({ functionCall: fc });
          });
        }
        push("model", parts);
        break;
      }
      case "tool": {
        if (typeof message.tool_call_id !== "string") throw invalid(`${at}.tool_call_id must be a string`);
        const name = callNames.get(message.tool_call_id);
        if (name === undefined) throw invalid(`${at}.tool_call_id does not match an earlier assistant tool call`);
        const text = textOnlyParts(message.content, at, true)
          .map((p) => p.text)
          .join("");
        push("user", [{ functionResponse: { name, response: toolResponseObject(text) } }]);
        break;
      }
      default:
        throw invalid(`${at}.role is not one of system, developer, user, assistant, tool`);
    }
  });

  if (contents.length === 0) throw invalid("messages must contain at least one user or assistant message");
  const out: GeminiGenerateContentRequest = { contents };
  if (systemParts.length > 0) out.systemInstruction = { parts: systemParts };

  const declarations = functionDeclarations(request.tools);
  if (declarations.length > 0) out.tools = [{ functionDeclarations: declarations }];
  const toolConfig = functionCallingConfig(request.tool_choice, declarations);
  if (toolConfig) out.toolConfig = toolConfig;

  const generationConfig = generationConfigOf(request);
  if (Object.keys(generationConfig).length > 0) out.generationConfig = generationConfig;
  return out;
}

/** Text parts of system / assistant / tool content; anything else is refused. */
function textOnlyParts(content: unknown, at: string, allowRefusal = false): { text: string }[] {
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  if (!Array.isArray(content)) throw invalid(`${at}.content must be a string or an array of parts`);
  const parts: { text: string }[] = [];
  content.forEach((part: unknown, k) => {
    if (!isRecord(part)) throw invalid(`${at}.content[${k}] must be an object`);
    let text: unknown;
    if (part.type === "text") text = part.text;
    else if (allowRefusal && part.type === "refusal") text = part.refusal;
    else throw invalid(`${at}.content[${k}] must be a text part`);
    if (typeof text !== "string") throw invalid(`${at}.content[${k}] text must be a string`);
    if (text !== "") parts.push({ text });
  });
  return parts;
}

function userParts(content: unknown, at: string): GeminiPart[] {
  if (typeof content === "string") return content === "" ? [] : [{ text: content }];
  if (!Array.isArray(content)) throw invalid(`${at}.content must be a string or an array of parts`);
  const parts: GeminiPart[] = [];
  content.forEach((part: ContentPart, k) => {
    const pat = `${at}.content[${k}]`;
    if (!isRecord(part)) throw invalid(`${pat} must be an object`);
    switch (part.type) {
      case "text":
        if (typeof part.text !== "string") throw invalid(`${pat}.text must be a string`);
        if (part.text !== "") parts.push({ text: part.text });
        break;
      case "image_url": {
        const url = isRecord(part.image_url) ? part.image_url.url : undefined;
        if (typeof url !== "string") throw invalid(`${pat}.image_url.url must be a string`);
        parts.push(imagePart(url, pat));
        break;
      }
      case "input_audio": {
        const audio = isRecord(part.input_audio) ? part.input_audio : undefined;
        const mimeType = audio && typeof audio.format === "string" ? AUDIO_MIME[audio.format] : undefined;
        if (!audio || typeof audio.data !== "string" || !BASE64.test(audio.data) || !mimeType) {
          throw invalid(`${pat}.input_audio must hold base64 data and format wav or mp3`);
        }
        parts.push({ inlineData: { mimeType, data: audio.data } });
        break;
      }
      default:
        throw invalid(`${pat}.type is not supported for Gemini (text, image_url, input_audio)`);
    }
  });
  return parts;
}

const AUDIO_MIME: Record<string, string> = { wav: "audio/wav", mp3: "audio/mp3" };
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Image MIME types by file extension, for URLs Gemini fetches itself. */
const IMAGE_EXTENSIONS: Record<string, string> = {
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  heic: "image/heic",
  heif: "image/heif",
};

/**
 * Fallback MIME type for an http(s) image whose path has no known extension.
 * An OpenAI `image_url` part is an image by definition, but its exact type is
 * unknown here, and fetching it to sniff would make the enclave fetch
 * client-chosen URLs. We send the explicit wildcard and let Google, which
 * fetches the URL, decide; it may refuse it, which surfaces as its 400.
 */
export const UNKNOWN_IMAGE_MIME = "image/*";

function imagePart(url: string, at: string): GeminiPart {
  if (url.startsWith("data:")) {
    // RFC 2397: data:[<mediatype>][;base64],<data>. Only base64 payloads are
    // accepted: Gemini's inlineData.data is base64, and re-encoding
    // percent-encoded bytes is not worth an ambiguity.
    const match = /^data:([^;,]+)((?:;[^;,]*)*);base64,(.*)$/s.exec(url);
    if (!match) throw invalid(`${at}.image_url.url must be a base64 data URL with a media type`);
    const mimeType = match[1]!.trim().toLowerCase();
    const data = match[3]!.replace(/\s+/g, "");
    if (!/^[a-z0-9.+-]+\/[a-z0-9.+-]+$/.test(mimeType)) throw invalid(`${at}.image_url.url has an invalid media type`);
    if (data === "" || !BASE64.test(data)) throw invalid(`${at}.image_url.url does not hold base64 data`);
    return { inlineData: { mimeType, data } };
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`${at}.image_url.url is neither a data URL nor an absolute URL`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
    throw invalid(`${at}.image_url.url must be a data:, http: or https: URL`);
  }
  const extension = /\.([A-Za-z0-9]+)$/.exec(parsed.pathname)?.[1]?.toLowerCase();
  const mimeType = (extension && IMAGE_EXTENSIONS[extension]) || UNKNOWN_IMAGE_MIME;
  return { fileData: { mimeType, fileUri: url } };
}

function functionCallPart(call: ToolCall, at: string): { name: string; args: Record<string, unknown> } {
  if (!isRecord(call) || typeof call.id !== "string" || !isRecord(call.function) || typeof call.function.name !== "string") {
    throw invalid(`${at} must have an id and a function name`);
  }
  const raw = call.function.arguments;
  if (raw !== undefined && typeof raw !== "string") throw invalid(`${at}.function.arguments must be a string`);
  // Gemini's FunctionCall.args is a protobuf Struct: a JSON object or nothing.
  let args: unknown = {};
  if (raw !== undefined && raw.trim() !== "") {
    try {
      args = JSON.parse(raw);
    } catch {
      throw invalid(`${at}.function.arguments is not valid JSON`);
    }
  }
  if (!isRecord(args)) throw invalid(`${at}.function.arguments must be a JSON object`);
  return { name: call.function.name, args };
}

/**
 * FunctionResponse.response is a Struct too. A tool result that is a JSON
 * object is sent as is; anything else (other JSON, plain text) is wrapped as
 * `{ result: … }`, the key Gemini's own SDKs use for non-object results.
 */
export function toolResponseObject(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : { result: value };
  } catch {
    return { result: text };
  }
}

function functionDeclarations(tools: unknown): GeminiFunctionDeclaration[] {
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) throw invalid("tools must be an array");
  return tools.map((tool: ToolDefinition, i) => {
    const at = `tools[${i}]`;
    if (!isRecord(tool) || tool.type !== "function") {
      throw new GatewayError("unsupported_capability", `${at}: Gemini accepts function tools only`);
    }
    const fn = tool.function;
    if (!isRecord(fn) || typeof fn.name !== "string" || fn.name === "") throw invalid(`${at}.function.name must be a non-empty string`);
    const declaration: GeminiFunctionDeclaration = { name: fn.name };
    if (fn.description !== undefined) {
      if (typeof fn.description !== "string") throw invalid(`${at}.function.description must be a string`);
      declaration.description = fn.description;
    }
    if (fn.parameters !== undefined) {
      if (!isRecord(fn.parameters)) throw invalid(`${at}.function.parameters must be an object`);
      const parameters = toGeminiSchema(fn.parameters, `${at}.function.parameters`);
      // Gemini refuses an OBJECT schema with no properties in a declaration;
      // "takes no arguments" is said by leaving `parameters` out.
      const empty = parameters.type === "OBJECT" && (!isRecord(parameters.properties) || Object.keys(parameters.properties).length === 0);
      if (!empty) declaration.parameters = parameters;
    }
    return declaration;
  });
}

function functionCallingConfig(choice: unknown, declarations: GeminiFunctionDeclaration[]): GeminiGenerateContentRequest["toolConfig"] {
  if (choice === undefined || choice === null) return undefined;
  if (choice === "none" || choice === "auto") {
    // Without declarations there is nothing to configure; Gemini's default is AUTO.
    return declarations.length === 0 ? undefined : { functionCallingConfig: { mode: choice === "none" ? "NONE" : "AUTO" } };
  }
  if (choice === "required") {
    if (declarations.length === 0) throw invalid('tool_choice "required" needs tools');
    return { functionCallingConfig: { mode: "ANY" } };
  }
  if (isRecord(choice) && choice.type === "function" && isRecord(choice.function) && typeof choice.function.name === "string") {
    const name = choice.function.name;
    if (!declarations.some((d) => d.name === name)) throw invalid("tool_choice names a function that is not in tools");
    return { functionCallingConfig: { mode: "ANY", allowedFunctionNames: [name] } };
  }
  throw invalid('tool_choice must be none, auto, required or {type:"function",function:{name}}');
}

function generationConfigOf(request: ChatRequest): GeminiGenerationConfig {
  const config: GeminiGenerationConfig = {};
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
  const maxOutputTokens = num("max_completion_tokens", 1, 2 ** 31 - 1, true) ?? num("max_tokens", 1, 2 ** 31 - 1, true);
  if (maxOutputTokens !== undefined) config.maxOutputTokens = maxOutputTokens;
  const candidateCount = num("n", 1, 8, true);
  if (candidateCount !== undefined && candidateCount !== 1) config.candidateCount = candidateCount;
  const seed = num("seed", -(2 ** 31), 2 ** 31 - 1, true);
  if (seed !== undefined) config.seed = seed;
  const presencePenalty = num("presence_penalty", -2, 2);
  if (presencePenalty !== undefined) config.presencePenalty = presencePenalty;
  const frequencyPenalty = num("frequency_penalty", -2, 2);
  if (frequencyPenalty !== undefined) config.frequencyPenalty = frequencyPenalty;

  const stop = request.stop;
  if (stop !== undefined && stop !== null) {
    const list = typeof stop === "string" ? [stop] : stop;
    if (!Array.isArray(list) || list.length > 5 || !list.every((s) => typeof s === "string")) {
      throw invalid("stop must be a string or an array of at most 5 strings");
    }
    if (list.length > 0) config.stopSequences = list;
  }

  const format = request.response_format;
  if (format !== undefined && format !== null) {
    if (!isRecord(format)) throw invalid("response_format must be an object");
    if (format.type === "json_object") {
      config.responseMimeType = "application/json";
    } else if (format.type === "json_schema") {
      config.responseMimeType = "application/json";
      const schema = isRecord(format.json_schema) ? format.json_schema.schema : undefined;
      if (schema !== undefined) {
        if (!isRecord(schema)) throw invalid("response_format.json_schema.schema must be an object");
        config.responseSchema = toGeminiSchema(schema, "response_format.json_schema.schema");
      }
    } else if (format.type !== "text") {
      throw invalid("response_format.type must be text, json_object or json_schema");
    }
  }
  return config;
}
