import { GatewayError } from "../../errors.js";

/**
 * Gemini Schema (the OpenAPI 3.0 subset of v1beta `Schema`, types spelled
 * STRING, OBJECT…) → JSON Schema, for a Gemini client's functionDeclarations
 * and responseSchema sent to a provider that takes JSON Schema. The inverse
 * of convert-json-schema-to-gemini.ts: `nullable: true` becomes a `"null"`
 * member of `type`; `propertyOrdering` and `example` have no JSON Schema
 * meaning and are dropped; every other Schema keyword has the same name and
 * meaning in JSON Schema and is kept.
 */
const KEPT = new Set([
  "format",
  "description",
  "title",
  "enum",
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
  "required",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "array", "object", "null"]);
const MAX_DEPTH = 64;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function fromGeminiSchema(schema: unknown, at: string, depth = 0): Record<string, unknown> {
  if (depth > MAX_DEPTH) throw new GatewayError("invalid_request", `${at} nests deeper than ${MAX_DEPTH} levels`);
  if (!isRecord(schema)) throw new GatewayError("invalid_request", `${at} must be a Schema object`);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(schema)) if (KEPT.has(key)) out[key] = schema[key];
  if (schema.type !== undefined) {
    const type = typeof schema.type === "string" ? schema.type.toLowerCase() : undefined;
    if (type === undefined || !TYPES.has(type)) throw new GatewayError("invalid_request", `${at}.type is not a Schema type`);
    out.type = schema.nullable === true && type !== "null" ? [type, "null"] : type;
  }
  if (out.format === "enum") delete out.format;
  if (isRecord(schema.properties)) {
    const properties: Record<string, unknown> = {};
    for (const [name, child] of Object.entries(schema.properties)) properties[name] = fromGeminiSchema(child, `${at}.properties.${name}`, depth + 1);
    out.properties = properties;
  }
  if (schema.items !== undefined) out.items = fromGeminiSchema(schema.items, `${at}.items`, depth + 1);
  if (Array.isArray(schema.anyOf)) out.anyOf = schema.anyOf.map((child, i) => fromGeminiSchema(child, `${at}.anyOf[${i}]`, depth + 1));
  return out;
}
