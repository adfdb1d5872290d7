import fs from "node:fs/promises";
import path from "node:path";
import { rejectDuplicateJsonKeys } from "../../../attestation/client/strict-json.js";
import { MAX_TRUST_POLICY_BYTES } from "../../../attestation/trust-policy.js";
import { MAX_OPERATIONS_BYTES } from "../../../enclave/operations.js";
import { DevError } from "./dev-error.js";
import { pointerToken } from "./json-pointer.js";

/**
 * `egw dev --config <file>`: a user's own deployment, run locally. One JSON
 * file holds the two documents production boots with, each inline or as a
 * path (relative to this file) to the very file production uses, read byte
 * for byte:
 *
 * ```jsonc
 * {
 *   "trustPolicy": { "version": 1, "providers": [ … ], … },   // or "trust-policy.json"
 *   "operations": { "version": 1, "clients": [ … ], … },      // or "operations.json"
 *   "secretsEnv": { "OPENAI_API_KEY": "MY_OPENAI_KEY" }       // optional: which env var holds each secret
 * }
 * ```
 *
 * Unknown fields and duplicate keys are refused, sizes are bounded; every
 * error names the file and the JSON pointer of the field at fault.
 */
export const CONFIG_FIELDS = ["trustPolicy", "operations", "secretsEnv"] as const;
export const MAX_CONFIG_BYTES = MAX_TRUST_POLICY_BYTES + MAX_OPERATIONS_BYTES + 64 * 1024;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** One of the two documents, with where its fields are to be found for an error message. */
export interface ConfigDocument {
  /** The document's exact bytes (a file read as is, or an inline object as 2-space JSON). */
  bytes: Uint8Array;
  /** Parsed, for additions (dev routes, the dev client). */
  raw: Record<string, unknown>;
  /** The file its fields are in. */
  file: string;
  /** The JSON pointer of the document in `file` ("" for a file of its own). */
  pointer: string;
  /** True when read from a file of its own (used byte for byte unless egw dev must add to it). */
  ownFile: boolean;
}

export interface DevConfig {
  file: string;
  trustPolicy: ConfigDocument;
  operations: ConfigDocument;
  /** Secret name → environment variable; a secret not listed is read from the variable of its own name. */
  secretsEnv: Record<string, string>;
}

function configError(file: string, pointer: string, message: string, cause?: unknown): DevError {
  return new DevError("ERR_DEV_CONFIG", `${file}: ${pointer || "(root)"}: ${message}`, cause === undefined ? undefined : { cause });
}

async function readBounded(file: string, max: number, what: string, citedFrom: { file: string; pointer: string } | undefined): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw Object.assign(new Error("not a file"), { code: "ENOTFILE" });
    if (stat.size > max) throw configError(file, "", `${what} is ${stat.size} bytes, at most ${max}`);
    bytes = await fs.readFile(file);
  } catch (err) {
    if (err instanceof DevError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    if (citedFrom) throw configError(citedFrom.file, citedFrom.pointer, `cannot read ${what} ${file} (${code})`, err);
    throw new DevError("ERR_DEV_CONFIG", `cannot read the --config file ${file} (${code})`, { cause: err });
  }
  if (bytes.length > max) throw configError(file, "", `${what} is ${bytes.length} bytes, at most ${max}`);
  return new Uint8Array(bytes);
}

function parseJson(bytes: Uint8Array, file: string, pointer: string): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw configError(file, pointer, "is not UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw configError(file, pointer, `is not JSON (${(err as Error).message.slice(0, 120)})`);
  }
  rejectDuplicateJsonKeys(text, (key) => configError(file, pointer, `field "${key.slice(0, 64)}" appears twice in one object`));
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

async function documentAt(config: Record<string, unknown>, field: "trustPolicy" | "operations", file: string, max: number, what: string): Promise<ConfigDocument> {
  const value = config[field];
  const pointer = `/${field}`;
  if (typeof value === "string") {
    if (value === "" || value.length > 4096 || value.includes("\0")) throw configError(file, pointer, "must be a file path or an object");
    const target = path.resolve(path.dirname(file), value);
    const bytes = await readBounded(target, max, what, { file, pointer });
    const raw = parseJson(bytes, target, "");
    if (!isObject(raw)) throw configError(target, "", "must be a JSON object");
    return { bytes, raw, file: target, pointer: "", ownFile: true };
  }
  if (!isObject(value)) throw configError(file, pointer, value === undefined ? `is required: the ${what}, inline or as a file path` : "must be a file path or an object");
  const bytes = new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`);
  if (bytes.length > max) throw configError(file, pointer, `is ${bytes.length} bytes as JSON, at most ${max}`);
  return { bytes, raw: value, file, pointer, ownFile: false };
}

function secretsEnvOf(value: unknown, file: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) throw configError(file, "/secretsEnv", "must be an object of secret name → environment variable");
  const out: Record<string, string> = {};
  const entries = Object.entries(value);
  if (entries.length > 64) throw configError(file, "/secretsEnv", "at most 64 entries");
  for (const [secret, env] of entries) {
    const at = `/secretsEnv/${pointerToken(secret.slice(0, 64))}`;
    if (!SECRET_NAME.test(secret)) throw configError(file, at, "is not a trust-policy secret name (A-Z, 0-9, _)");
    if (typeof env !== "string" || !ENV_NAME.test(env)) throw configError(file, at, "must name an environment variable");
    out[secret] = env;
  }
  return out;
}

export async function readDevConfig(file: string): Promise<DevConfig> {
  const bytes = await readBounded(file, MAX_CONFIG_BYTES, "the --config file", undefined);
  const config = parseJson(bytes, file, "");
  if (!isObject(config)) throw configError(file, "", `must be an object with ${CONFIG_FIELDS.join(", ")}`);
  for (const key of Object.keys(config)) {
    if (!(CONFIG_FIELDS as readonly string[]).includes(key)) throw configError(file, `/${pointerToken(key.slice(0, 64))}`, `unknown field (expected ${CONFIG_FIELDS.join(", ")})`);
  }
  return {
    file,
    trustPolicy: await documentAt(config, "trustPolicy", file, MAX_TRUST_POLICY_BYTES, "the trust policy"),
    operations: await documentAt(config, "operations", file, MAX_OPERATIONS_BYTES, "the operations document"),
    secretsEnv: secretsEnvOf(config.secretsEnv, file),
  };
}
