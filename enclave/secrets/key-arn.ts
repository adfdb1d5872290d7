import { SealedSecretsError } from "../../host/transport/codec/sealed-file.js";

/**
 * The KMS key the trust policy pins, and the checks every KMS answer gets
 * against it.
 *
 * Only a full key ARN names one key: an alias (`alias/x`, or an alias ARN)
 * and a bare key id are resolved by KMS in the account of the credentials
 * making the call (AWS KMS Developer Guide, "Key identifiers (KeyId)"), and
 * those credentials come from the host. A host with its own key under the
 * same alias in its own account would have the enclave seal to, or open
 * from, a key whose policy it writes. So outside development the pin must be
 * `arn:<partition>:kms:<region>:<account>:key/<id>`, and the `KeyId` of
 * every answer (always the full key ARN, AWS KMS API reference, Decrypt /
 * GenerateDataKey "Response Elements") must equal it byte for byte.
 */
const KEY_ARN = /^arn:(aws[a-z-]*):kms:([a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}):(\d{12}):key\/((?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})|mrk-[0-9a-f]{32})$/;

export interface KeyArn {
  arn: string;
  partition: string;
  region: string;
  account: string;
  keyId: string;
}

/** A full key ARN, or undefined for anything else (alias, alias ARN, bare id, junk). */
export function parseKeyArn(value: string): KeyArn | undefined {
  if (typeof value !== "string" || value.length > 2048) return undefined;
  const m = KEY_ARN.exec(value);
  if (!m) return undefined;
  return { arn: value, partition: m[1]!, region: m[2]!, account: m[3]!, keyId: m[4]! };
}

/**
 * The pinned key, checked: outside development a full key ARN
 * (ERR_KMS_KEY_ID). Returns the region KMS calls go to: the ARN's own, or
 * in development (alias or id allowed for a local KMS) `fallbackRegion`.
 */
export function checkPinnedKey(keyArn: string, what: string, options: { dev: boolean; fallbackRegion: string }): string;
export function checkPinnedKey(keyArn: string, what: string, options: { dev: boolean }): string | undefined;
export function checkPinnedKey(keyArn: string, what: string, options: { dev: boolean; fallbackRegion?: string }): string | undefined {
  const parsed = parseKeyArn(keyArn);
  if (parsed) return parsed.region;
  if (!options.dev) {
    throw new SealedSecretsError(
      "ERR_KMS_KEY_ID",
      `${what}: the KMS key must be a full key ARN (arn:aws:kms:<region>:<account>:key/<id>); an alias or key id resolves in the caller's account`,
    );
  }
  if (typeof keyArn !== "string" || keyArn.length === 0 || keyArn.length > 2048) throw new SealedSecretsError("ERR_KMS_KEY_ID", `${what}: no usable KMS key id`);
  return options.fallbackRegion;
}

/** KMS answered for another key than the pinned one (or named none). */
export function checkAnswerKey(answered: unknown, keyArn: string, what: string, operation: string): void {
  if (typeof answered !== "string" || answered !== keyArn) {
    const other = typeof answered === "string" ? `key ${answered.replace(/[^A-Za-z0-9:/_-]/g, "").slice(0, 256)}` : "no key";
    throw new SealedSecretsError("ERR_KMS_KEY_MISMATCH", `${what}: KMS ${operation} answered for ${other}, not the pinned key ${keyArn}`);
  }
}
