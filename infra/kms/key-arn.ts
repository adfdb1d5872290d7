/**
 * A full KMS key ARN, as `egw seal --key-id` and the trust policy name the
 * key: arn:<partition>:kms:<region>:<account>:key/<uuid | mrk-…>
 * (AWS KMS developer guide, "Key identifiers (KeyId)"). Aliases and bare key
 * ids are refused on purpose: the enclave requires the KeyId of KMS's answer
 * to equal the trust policy's key ARN (KMS always answers with the key ARN),
 * and an alias can be repointed to another key by whoever can UpdateAlias.
 */
export interface KeyArn {
  arn: string;
  partition: string;
  region: string;
  account: string;
  keyId: string;
}

const KEY_ARN = /^arn:(aws[a-z-]*):kms:([a-z]{2}(?:-[a-z]+){1,2}-\d{1,2}):(\d{12}):key\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$/;

export class KeyArnError extends Error {
  override readonly name = "KeyArnError";
  readonly code = "ERR_KMS_KEY_ARN";
}

export function parseKeyArn(value: string): KeyArn {
  const m = KEY_ARN.exec(value);
  if (m === null) {
    const hint = /^(arn:[^:]*:kms:[^:]*:\d*:)?alias\//.test(value) ? " (an alias is not accepted: pass the key ARN it points to)" : "";
    throw new KeyArnError(`a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>) is required${hint}, got "${value.slice(0, 100)}"`);
  }
  return { arn: value, partition: m[1]!, region: m[2]!, account: m[3]!, keyId: m[4]! };
}
