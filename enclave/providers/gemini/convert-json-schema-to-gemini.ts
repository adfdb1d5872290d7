import { GatewayError } from "../../errors.js";
import type { GeminiSchema } from "./gemini-api-types.js";

/**
 * JSON Schema (as OpenAI tools and response_format carry it) → Gemini Schema.
 *
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

function invalid(message: string): GatewayError {
  return new GatewayError("invalid_request", message);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
