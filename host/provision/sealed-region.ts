import { MAX_SEALED_FILE_BYTES } from "./bundle.js";
import { ProvisionSendError } from "./errors.js";

/**
 * The KMS region named by a sealed-secrets file (format:
 * enclave/secrets/sealed-file.ts), needed to ask the SDK for credentials.
 * Only this one field is read: the enclave parses the whole file strictly
 * when it opens it, and host/ imports nothing from enclave/ (the host
 * process never loads enclave code).
 */
const REGION = /^[a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}$/;

export function sealedFileRegion(bytes: Uint8Array): string {
  if (bytes.length > MAX_SEALED_FILE_BYTES) throw new ProvisionSendError("ERR_PROVISION_TOO_LARGE", `the sealed-secrets file is ${bytes.length} bytes, at most ${MAX_SEALED_FILE_BYTES} allowed`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new ProvisionSendError("ERR_PROVISION_INPUT", "the sealed-secrets file is not UTF-8 JSON");
  }
  const region = (value as { region?: unknown } | null)?.region;
  if (typeof region !== "string" || !REGION.test(region)) throw new ProvisionSendError("ERR_PROVISION_INPUT", `the sealed-secrets file has no "region" such as us-east-1`);
  return region;
}
