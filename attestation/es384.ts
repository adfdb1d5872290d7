import { verify, type KeyObject } from "node:crypto";

/**
 * ECDSA P-384 / SHA-384 verification on libuv's thread pool. A P-384 verify
 * costs about 0.9 ms with OpenSSL 3.0 and a cold document needs five (four
 * links plus the COSE signature); running them concurrently instead of one
 * after another is what keeps verification inside its budget on two cores.
 * Never rejects: any failure, including a malformed signature, is `false`.
 */
export function verifyEs384(data: Uint8Array, key: KeyObject, signature: Uint8Array, encoding: "der" | "ieee-p1363"): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      verify("sha384", data, { key, dsaEncoding: encoding }, signature, (err, ok) => resolve(!err && ok === true));
    } catch {
      resolve(false);
    }
  });
}
