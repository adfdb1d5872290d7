import { GatewayError } from "../errors.js";
import {
  UpstreamError,
  type ChatCompletion,
  type ChatMessage,
  type ChatRequest,
  type ContentPart,
  type FinishReason,
  type ToolCall,
  type ToolDefinition,
  type Usage,
} from "../providers/types.js";

/**
 * Pure translation between the canonical OpenAI Chat Completions shapes and
 * Google's Gemini API (v1beta `models.generateContent`, REST/JSON).
 *
 * Request direction throws GatewayError for requests Gemini cannot express;
 * response direction throws UpstreamError("malformed") for bodies that are not
 * a GenerateContentResponse. No message names prompt or completion text:
 * only JSON paths such as `messages[3].tool_calls[0]`.
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

// ─── Gemini wire types (only what the gateway writes or reads) ──────────────

export interface GeminiPart {
  text?: string;
  thought?: boolean;
  thoughtSignature?: string;
  inlineData?: { mimeType: string; data: string };
  fileData?: { mimeType?: string; fileUri: string };
  functionCall?: { name: string; args?: Record<string, unknown>; id?: string };
  functionResponse?: { name: string; response: Record<string, unknown>; id?: string };
}

export interface GeminiContent {
  role: "user" | "model";
  parts: GeminiPart[];
}

export interface GeminiFunctionDeclaration {
  name: string;
  description?: string;
  parameters?: GeminiSchema;
}

/** Gemini's Schema: "a select subset of an OpenAPI 3.0 schema object". */
export type GeminiSchema = { [key: string]: unknown };

export interface GeminiGenerationConfig {
  temperature?: number;
  topP?: number;
  maxOutputTokens?: number;
  stopSequences?: string[];
  candidateCount?: number;
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  responseMimeType?: string;
  responseSchema?: GeminiSchema;
}

export interface GeminiGenerateContentRequest {
  contents: GeminiContent[];
  systemInstruction?: { parts: { text: string }[] };
  tools?: { functionDeclarations: GeminiFunctionDeclaration[] }[];
  toolConfig?: { functionCallingConfig: { mode: "AUTO" | "ANY" | "NONE"; allowedFunctionNames?: string[] } };
  generationConfig?: GeminiGenerationConfig;
}

export interface GeminiUsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  cachedContentTokenCount?: number;
  totalTokenCount?: number;
}

// ─── Request: OpenAI → Gemini ───────────────────────────────────────────────

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

function functionCallingConfig(
  choice: unknown,
  declarations: GeminiFunctionDeclaration[],
): GeminiGenerateContentRequest["toolConfig"] {
  if (choice === undefined || choice === null) return undefined;
  if (choice === "none" || choice === "auto") {
    // Without declarations there is nothing to configure; Gemini's default is AUTO.
    return declarations.length === 0 ? undefined : { functionCallingConfig: { mode: choice === "none" ? "NONE" : "AUTO" } };
  }
  if (choice === "required") {
    if (declarations.length === 0) throw invalid("tool_choice \"required\" needs tools");
    return { functionCallingConfig: { mode: "ANY" } };
  }
  if (isRecord(choice) && choice.type === "function" && isRecord(choice.function) && typeof choice.function.name === "string") {
    const name = choice.function.name;
    if (!declarations.some((d) => d.name === name)) throw invalid("tool_choice names a function that is not in tools");
    return { functionCallingConfig: { mode: "ANY", allowedFunctionNames: [name] } };
  }
  throw invalid("tool_choice must be none, auto, required or {type:\"function\",function:{name}}");
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

// ─── JSON Schema → Gemini Schema ────────────────────────────────────────────

/**
 * Keywords Gemini's Schema accepts (v1beta `Schema`). Everything else is
 * dropped, because Gemini answers 400 "Invalid JSON payload received. Unknown
 * name …" for the first keyword it does not know: `additionalProperties`,
 * `$schema`, `$id`, `$defs`/`definitions`, `const`, `exclusiveMinimum`,
 * `exclusiveMaximum`, `examples`, `patternProperties`, `propertyNames`,
 * `unevaluatedProperties`, `not`, `if`/`then`/`else`, `uniqueItems`,
 * `multipleOf`, `readOnly`, `writeOnly`, `deprecated`, `contentEncoding`…
 * An allowlist rather than a denylist: a keyword JSON Schema adds tomorrow
 * is dropped too instead of breaking requests.
 *
 * Rewrites rather than drops, where the meaning survives:
 * - `type: ["string", "null"]` → `type: "STRING", nullable: true`; several
 *   non-null types → `anyOf` of one schema per type.
 * - `const: x` → `enum: [String(x)]`; `enum` values become strings (Gemini's
 *   enum is string[]), a `null` member becomes `nullable: true`.
 * - `oneOf` → `anyOf` (looser: "exactly one" becomes "at least one").
 * - `allOf` with one member is merged; with several it is dropped.
 * - local `$ref` (`#/$defs/…`, `#/definitions/…`) is inlined; a recursive
 *   reference cannot be expressed and is refused.
 * - `format` is kept only where Gemini gives it meaning (string: enum,
 *   date-time; number: float, double; integer: int32, int64).
 * - `required` keeps only names that are in `properties`.
 * Types are written in Gemini's enum spelling (STRING, OBJECT…).
 */
const KEPT_KEYWORDS = new Set([
  "description",
  "title",
  "nullable",
  "default",
  "minItems",
  "maxItems",
  "minLength",
  "maxLength",
  "minProperties",
  "maxProperties",
  "minimum",
  "maximum",
  "pattern",
  "propertyOrdering",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object", "null"]);
const FORMATS: Record<string, Set<string>> = {
  STRING: new Set(["enum", "date-time"]),
  NUMBER: new Set(["float", "double"]),
  INTEGER: new Set(["int32", "int64"]),
};
const MAX_SCHEMA_DEPTH = 64;

export function toGeminiSchema(schema: Record<string, unknown>, at = "schema"): GeminiSchema {
  return convertSchema(schema, schema, at, 0, []);
}

function convertSchema(node: unknown, root: Record<string, unknown>, at: string, depth: number, refs: string[]): GeminiSchema {
  if (depth > MAX_SCHEMA_DEPTH) throw invalid(`${at} nests deeper than ${MAX_SCHEMA_DEPTH} levels`);
  if (!isRecord(node)) return {}; // `true` / `{}`: any value
  let source: Record<string, unknown> = node;

  if (typeof source.$ref === "string") {
    const ref = source.$ref;
    if (refs.includes(ref)) throw new GatewayError("unsupported_capability", `${at}: recursive $ref cannot be expressed in a Gemini schema`);
    const target = resolveLocalRef(root, ref);
    if (!target) throw invalid(`${at}.$ref must point into #/$defs or #/definitions`);
    const { $ref: _ref, ...siblings } = source;
    const inlined = convertSchema(target, root, at, depth + 1, [...refs, ref]);
    return { ...inlined, ...convertSchema(siblings, root, at, depth + 1, refs) };
  }
  if (Array.isArray(source.allOf) && source.allOf.length === 1 && isRecord(source.allOf[0])) {
    const { allOf, ...rest } = source;
    source = { ...(allOf as Record<string, unknown>[])[0], ...rest };
    if (typeof source.$ref === "string") return convertSchema(source, root, at, depth + 1, refs);
  }

  const out: GeminiSchema = {};
  for (const key of Object.keys(source)) {
    if (KEPT_KEYWORDS.has(key)) out[key] = source[key];
  }

  // type
  let nullable = source.nullable === true;
  let types: string[] = [];
  if (typeof source.type === "string") types = [source.type];
  else if (Array.isArray(source.type)) types = source.type.filter((t): t is string => typeof t === "string");
  types = types.filter((t) => TYPES.has(t));
  if (types.includes("null") && types.length > 1) {
    nullable = true;
    types = types.filter((t) => t !== "null");
  }
  if (types.length === 1) out.type = types[0]!.toUpperCase();
  else if (types.length > 1) out.anyOf = types.map((t) => ({ type: t.toUpperCase() }));

  // enum / const
  let values: unknown[] | undefined;
  if (Array.isArray(source.enum)) values = source.enum;
  else if ("const" in source) values = [source.const];
  if (values) {
    if (values.includes(null)) nullable = true;
    const strings = values.filter((v) => v !== null && typeof v !== "object").map((v) => String(v));
    if (strings.length > 0) {
      out.enum = strings;
      if (out.type === undefined && out.anyOf === undefined) out.type = "STRING";
    }
  }
  if (nullable) out.nullable = true;

  if (typeof source.format === "string" && typeof out.type === "string" && FORMATS[out.type]?.has(source.format)) {
    out.format = source.format;
  }
  if (out.enum !== undefined && out.type === "STRING") out.format = "enum";

  if (isRecord(source.properties)) {
    const properties: Record<string, GeminiSchema> = {};
    for (const [name, child] of Object.entries(source.properties)) {
      properties[name] = convertSchema(child, root, `${at}.properties`, depth + 1, refs);
    }
    out.properties = properties;
    if (Array.isArray(source.required)) {
      const required = source.required.filter((n): n is string => typeof n === "string" && n in properties);
      if (required.length > 0) out.required = required;
    }
  }
  if (isRecord(source.items)) out.items = convertSchema(source.items, root, `${at}.items`, depth + 1, refs);

  const alternatives = Array.isArray(source.anyOf) ? source.anyOf : Array.isArray(source.oneOf) ? source.oneOf : undefined;
  if (alternatives && out.anyOf === undefined) {
    out.anyOf = alternatives.map((child) => convertSchema(child, root, `${at}.anyOf`, depth + 1, refs));
  }
  if (Array.isArray(out.propertyOrdering) && !out.propertyOrdering.every((n) => typeof n === "string")) delete out.propertyOrdering;
  return out;
}

function resolveLocalRef(root: Record<string, unknown>, ref: string): Record<string, unknown> | undefined {
  const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
  if (!match) return undefined;
  const defs = root[match[1]!];
  if (!isRecord(defs)) return undefined;
  const name = match[2]!.replace(/~1/g, "/").replace(/~0/g, "~");
  const target = defs[name];
  return isRecord(target) ? target : undefined;
}

// ─── Response: Gemini → OpenAI ──────────────────────────────────────────────

/**
 * Gemini FinishReason → OpenAI finish_reason. Everything that means "a
 * policy stopped the output" is content_filter; the rest (OTHER, LANGUAGE,
 * MALFORMED_FUNCTION_CALL, unknown future values) ends as a normal stop,
 * or tool_calls when the candidate called functions.
 */
const CONTENT_FILTER_REASONS = new Set([
  "SAFETY",
  "RECITATION",
  "BLOCKLIST",
  "PROHIBITED_CONTENT",
  "SPII",
  "IMAGE_SAFETY",
  "IMAGE_PROHIBITED_CONTENT",
  "IMAGE_RECITATION",
]);

export function mapFinishReason(reason: string, hasToolCalls: boolean): Exclude<FinishReason, null> {
  if (reason === "MAX_TOKENS") return "length";
  if (CONTENT_FILTER_REASONS.has(reason)) return "content_filter";
  return hasToolCalls ? "tool_calls" : "stop";
}

/**
 * usageMetadata → usage. OpenAI counts reasoning tokens as completion
 * tokens, so thoughtsTokenCount is added to candidatesTokenCount (and
 * reported again under completion_tokens_details.reasoning_tokens).
 * totalTokenCount is Google's own sum (it may also hold tool-use prompt
 * tokens) and is used when present.
 */
export function mapUsage(metadata: unknown): Usage {
  const m = isRecord(metadata) ? metadata : {};
  const count = (key: keyof GeminiUsageMetadata): number => {
    const v = m[key];
    return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
  };
  const prompt = count("promptTokenCount");
  const thoughts = count("thoughtsTokenCount");
  const completion = count("candidatesTokenCount") + thoughts;
  const total = typeof m.totalTokenCount === "number" ? count("totalTokenCount") : prompt + completion;
  const usage: Usage & {
    completion_tokens_details?: { reasoning_tokens: number };
    prompt_tokens_details?: { cached_tokens: number };
  } = { prompt_tokens: prompt, completion_tokens: completion, total_tokens: total };
  if (thoughts > 0) usage.completion_tokens_details = { reasoning_tokens: thoughts };
  if (typeof m.cachedContentTokenCount === "number") usage.prompt_tokens_details = { cached_tokens: count("cachedContentTokenCount") };
  return usage;
}

/** What one candidate's parts say, in OpenAI terms. */
export interface CandidateParts {
  text: string;
  calls: { id?: string; name: string; arguments: string }[];
}

/** Reads a Content's parts: non-thought text concatenated, function calls in order. Other part kinds are ignored. */
export function readParts(content: unknown, provider: string): CandidateParts {
  const out: CandidateParts = { text: "", calls: [] };
  if (content === undefined || content === null) return out;
  if (!isRecord(content)) throw malformed(provider);
  if (content.parts === undefined) return out;
  if (!Array.isArray(content.parts)) throw malformed(provider);
  for (const part of content.parts) {
    if (!isRecord(part)) throw malformed(provider);
    if (typeof part.text === "string" && part.thought !== true) out.text += part.text;
    if (part.functionCall !== undefined) {
      const fc = part.functionCall;
      if (!isRecord(fc) || typeof fc.name !== "string") throw malformed(provider);
      if (fc.args !== undefined && fc.args !== null && !isRecord(fc.args)) throw malformed(provider);
      out.calls.push({
        ...(typeof fc.id === "string" && fc.id !== "" ? { id: fc.id } : {}),
        name: fc.name,
        arguments: JSON.stringify(fc.args ?? {}),
      });
    }
  }
  return out;
}

/**
 * Tool-call ids: Gemini's own FunctionCall.id when it sends one, otherwise
 * `call_<n>` with n counting calls across the whole response (stream or not),
 * so the same upstream answer always gets the same ids.
 */
export function toolCallId(call: { id?: string }, ordinal: number): string {
  return call.id ?? `call_${ordinal}`;
}

export function malformed(provider: string): UpstreamError {
  return new UpstreamError("malformed", `${provider}: response is not a GenerateContentResponse`);
}

export interface CompletionMeta {
  /** Used when the response carries no responseId. */
  fallbackId: string;
  created: number;
  model: string;
  provider: string;
}

export function completionId(body: Record<string, unknown>, fallback: string): string {
  return typeof body.responseId === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(body.responseId) ? `chatcmpl-${body.responseId}` : fallback;
}

/** True when Gemini refused the prompt itself: promptFeedback.blockReason and no candidates. */
export function promptBlocked(body: Record<string, unknown>): boolean {
  const candidates = body.candidates;
  const none = candidates === undefined || (Array.isArray(candidates) && candidates.length === 0);
  return none && isRecord(body.promptFeedback) && typeof body.promptFeedback.blockReason === "string";
}

export function fromGeminiResponse(body: unknown, meta: CompletionMeta): ChatCompletion {
  if (!isRecord(body)) throw malformed(meta.provider);
  const completion: ChatCompletion = {
    id: completionId(body, meta.fallbackId),
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    choices: [],
  };
  if (promptBlocked(body)) {
    completion.choices.push({ index: 0, message: { role: "assistant", content: "" }, finish_reason: "content_filter", logprobs: null });
  } else {
    if (!Array.isArray(body.candidates) || body.candidates.length === 0) throw malformed(meta.provider);
    let ordinal = 0;
    body.candidates.forEach((candidate: unknown, position) => {
      if (!isRecord(candidate)) throw malformed(meta.provider);
      const index = typeof candidate.index === "number" ? candidate.index : position;
      const { text, calls } = readParts(candidate.content, meta.provider);
      const toolCalls: ToolCall[] = calls.map((c) => ({
        id: toolCallId(c, ordinal++),
        type: "function",
        function: { name: c.name, arguments: c.arguments },
      }));
      const reason = typeof candidate.finishReason === "string" ? candidate.finishReason : "STOP";
      const message: ChatCompletion["choices"][number]["message"] = {
        role: "assistant",
        content: text !== "" ? text : toolCalls.length > 0 ? null : "",
      };
      if (toolCalls.length > 0) message.tool_calls = toolCalls;
      completion.choices.push({ index, message, finish_reason: mapFinishReason(reason, toolCalls.length > 0), logprobs: null });
    });
  }
  if (body.usageMetadata !== undefined) completion.usage = mapUsage(body.usageMetadata);
  return completion;
}
