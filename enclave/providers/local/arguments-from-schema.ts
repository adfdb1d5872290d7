/** How deep argumentsFromSchema follows nested schemas before it gives null. */
const SCHEMA_MAX_DEPTH = 8;

/**
 * Tool arguments from a JSON schema: an object holding each *required*
 * property (optional ones are left out), valued by {@link valueFromSchema}.
 * A missing or non-object schema gives `{}`.
 */
export function argumentsFromSchema(schema: unknown, text: string): Record<string, unknown> {
  const value = valueFromSchema(schema, text, 0);
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * `const` → it; `enum` → its first value; by `type` (the first non-"null"
 * one of a list): string → the echo, number/integer → 0, boolean → false,
 * array → [], null → null, object → required properties only. A schema
 * without `type` is an object when it has `properties`, the first branch of
 * `anyOf`/`oneOf` when it has one, otherwise null. `$ref` is not resolved
 * (null). Depth is bounded.
 */
function valueFromSchema(schema: unknown, text: string, depth: number): unknown {
  if (depth > SCHEMA_MAX_DEPTH || typeof schema !== "object" || schema === null || Array.isArray(schema)) return null;
  const s = schema as Record<string, unknown>;
  if ("const" in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  let type = s.type;
  if (Array.isArray(type)) type = type.find((t) => t !== "null") ?? "null";
  if (type === undefined) {
    if (typeof s.properties === "object" && s.properties !== null) type = "object";
    else {
      const branches = Array.isArray(s.anyOf) ? s.anyOf : Array.isArray(s.oneOf) ? s.oneOf : undefined;
      return branches && branches.length > 0 ? valueFromSchema(branches[0], text, depth + 1) : null;
    }
  }
  switch (type) {
    case "string":
      return text;
    case "number":
    case "integer":
      return 0;
    case "boolean":
      return false;
    case "array":
      return [];
    case "object": {
      const properties = (typeof s.properties === "object" && s.properties !== null ? s.properties : {}) as Record<string, unknown>;
      const required = Array.isArray(s.required) ? s.required.filter((r): r is string => typeof r === "string") : [];
      const out: Record<string, unknown> = {};
      for (const key of required) {
        const sub = Object.hasOwn(properties, key) ? properties[key] : undefined;
        Object.defineProperty(out, key, { value: valueFromSchema(sub, text, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    default:
      return null;
  }
}
