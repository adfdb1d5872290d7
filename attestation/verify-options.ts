import type { ChainCache } from "./chain.js";
import { PCR_LENGTH_SHA384, PCR_MAX_INDEX, MAX_OPTIONAL_FIELD_BYTES } from "./document.js";
import { AttestationError } from "./errors.js";
import { awsNitroRootG1, type TrustAnchor } from "./roots.js";

export type BytesLike = Uint8Array | string; // string = hex

export interface VerifyOptions {
  /** The instant to verify at. Required: a verifier never reads the clock itself. */
  currentDate: Date;
  /**
   * Required measurement policy: PCR index → expected value (bytes or hex),
   * any non-empty subset of 0..31; or the explicit string "any" for tools
   * that only inspect. There is no default that accepts everything.
   */
  expectedPcrs: Readonly<Record<number, BytesLike>> | ReadonlyMap<number, BytesLike> | "any";
  /** When given, the document's nonce must equal it. */
  nonce?: BytesLike;
  /** When given, the document's public_key must equal it. */
  publicKey?: BytesLike;
  /** When given, the document's user_data must equal it. */
  userData?: BytesLike;
  /** Oldest acceptable document age. Default 5 minutes; pass Infinity to disable on purpose. */
  maxAgeMs?: number;
  /** How far a timestamp may be ahead of `currentDate`. Default 60 s. */
  clockSkewMs?: number;
  /** Accept debug-mode documents (PCR0 all zero). Default false. */
  allowDebug?: boolean;
  /**
   * Trust anchors. Default: the AWS Nitro root G1 only. Passing a list
   * replaces the default, so a development root is trusted only when a
   * caller names it, and never alongside production by accident.
   */
  trustedRoots?: TrustAnchor[];
  /** Cache of verified intermediates, shared across calls. */
  cache?: ChainCache;
}

export const DEFAULT_MAX_AGE_MS = 5 * 60_000;
export const DEFAULT_CLOCK_SKEW_MS = 60_000;

export interface Policy {
  currentDate: Date;
  pcrs: Map<number, Uint8Array> | "any";
  nonce: Uint8Array | undefined;
  publicKey: Uint8Array | undefined;
  userData: Uint8Array | undefined;
  maxAgeMs: number;
  clockSkewMs: number;
  allowDebug: boolean;
  anchors: TrustAnchor[];
  cache: ChainCache | undefined;
}

function invalid(message: string): AttestationError {
  return new AttestationError("ERR_POLICY_INVALID", message);
}

/** Decodes a policy byte value; hex strings must be even-length hex. */
export function policyBytes(value: unknown, name: string, maxLength: number): Uint8Array {
  let bytes: Uint8Array;
  if (value instanceof Uint8Array) bytes = value;
  else if (typeof value === "string" && /^([0-9a-fA-F]{2})*$/.test(value)) bytes = new Uint8Array(Buffer.from(value, "hex"));
  else throw invalid(`${name} must be bytes or a hex string`);
  if (bytes.length > maxLength) throw invalid(`${name} is ${bytes.length} bytes, at most ${maxLength} allowed`);
  return bytes;
}

function optional(options: VerifyOptions, key: "nonce" | "publicKey" | "userData"): Uint8Array | undefined {
  // `{ nonce: undefined }` is a caller who meant to check a nonce and lost it
  // on the way (e.g. a missing query parameter): reject, never skip.
  if (!Object.hasOwn(options, key)) return undefined;
  const value = options[key];
  if (value === undefined || value === null) throw invalid(`${key} is present but empty; pass a value or leave it out`);
  return policyBytes(value, key, MAX_OPTIONAL_FIELD_BYTES);
}

function pcrPolicy(value: VerifyOptions["expectedPcrs"] | undefined): Map<number, Uint8Array> | "any" {
  if (value === "any") return "any";
  if (value === undefined || value === null || typeof value !== "object") {
    throw invalid('expectedPcrs is required: a map of PCR index to value, or "any"');
  }
  const entries: [unknown, unknown][] = value instanceof Map ? [...value.entries()] : Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) throw invalid('expectedPcrs is empty; name at least one PCR, or pass "any" on purpose');
  const pcrs = new Map<number, Uint8Array>();
  for (const [rawIndex, raw] of entries) {
    const index = typeof rawIndex === "string" && /^\d{1,2}$/.test(rawIndex) ? Number(rawIndex) : rawIndex;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index > PCR_MAX_INDEX) {
      throw invalid(`expectedPcrs index ${String(rawIndex)} is not in 0..${PCR_MAX_INDEX}`);
    }
    const bytes = policyBytes(raw, `expectedPcrs[${index}]`, PCR_LENGTH_SHA384);
    if (bytes.length !== PCR_LENGTH_SHA384) {
      throw invalid(`expectedPcrs[${index}] expected length ${PCR_LENGTH_SHA384}, got length=${bytes.length}`);
    }
    pcrs.set(index, bytes);
  }
  return pcrs;
}

function duration(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value) || value < 0) {
    throw invalid(`${name} must be a non-negative number of milliseconds`);
  }
  return value;
}

export function parsePolicy(options: VerifyOptions): Policy {
  if (options === null || typeof options !== "object") throw invalid("options are required");
  const { currentDate } = options;
  if (!(currentDate instanceof Date) || Number.isNaN(currentDate.getTime())) {
    throw invalid("currentDate is required and must be a valid Date");
  }
  const anchors = options.trustedRoots ?? [awsNitroRootG1()];
  if (!Array.isArray(anchors) || anchors.length === 0) throw invalid("trustedRoots must name at least one root");
  if (options.allowDebug !== undefined && typeof options.allowDebug !== "boolean") {
    throw invalid("allowDebug must be a boolean");
  }
  return {
    currentDate,
    pcrs: pcrPolicy(options.expectedPcrs),
    nonce: optional(options, "nonce"),
    publicKey: optional(options, "publicKey"),
    userData: optional(options, "userData"),
    maxAgeMs: duration(options.maxAgeMs, "maxAgeMs", DEFAULT_MAX_AGE_MS),
    clockSkewMs: duration(options.clockSkewMs, "clockSkewMs", DEFAULT_CLOCK_SKEW_MS),
    allowDebug: options.allowDebug ?? false,
    anchors,
    cache: options.cache,
  };
}
