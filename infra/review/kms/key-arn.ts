import { parseKeyArn as matchKeyArn, type KeyArn } from "../../../enclave/secrets/key-arn.js";
import { EgwError } from "../../../attestation/egw-error.js";

/**
 * A full KMS key ARN, as `egw seal --key-id` and the trust policy name the
 * key: arn:<partition>:kms:<region>:<account>:key/<uuid | mrk-…>
 * (AWS KMS developer guide, "Key identifiers (KeyId)"). Aliases and bare key
 * ids are refused on purpose: the enclave requires the KeyId of KMS's answer
 * to equal the pinned key ARN (KMS always answers with the key ARN), and an
 * alias can be repointed to another key by whoever can UpdateAlias.
 *
 * The matcher is the enclave's (enclave/secrets/key-arn.ts), so the tool that
 * seals and the enclave that opens accept exactly the same ARNs; this module
 * only adds the operator-facing error.
 */
export type { KeyArn };

export class KeyArnError extends EgwError<"ERR_KMS_KEY_ARN"> {
  override readonly name = "KeyArnError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_KMS_KEY_ARN", message, "fix-input", options);
  }
}

export function parseKeyArn(value: string): KeyArn {
  const arn = matchKeyArn(value);
  if (arn === undefined) {
    const hint = /^(arn:[^:]*:kms:[^:]*:\d*:)?alias\//.test(value) ? " (an alias is not accepted: pass the key ARN it points to)" : "";
    throw new KeyArnError(`a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) is required${hint}, got "${String(value).slice(0, 100)}"`);
  }
  return arn;
}
