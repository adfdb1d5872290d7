import type { AttestationRequest, Attester, PcrDescription } from "../attester.js";
import { AttestationError, isAttestationError } from "../errors.js";
import { NSM_DEVICE_PATH, openNsmDevice, type NsmDevice } from "./nsm-device.js";
import {
  decodeAttestationResponse,
  decodeDescribePcrResponse,
  decodeGetRandomResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeGetRandomRequest,
} from "./nsm-protocol.js";

/** Most bytes one getRandom() call returns. */
export const NSM_MAX_RANDOM_LENGTH = 4096;

/**
 * How many GetRandom requests one getRandom() may send. The NSM decides how
 * many bytes each answer carries (the reference nsm_get_random() simply
 * truncates to the caller's buffer); 64 calls reach 4096 bytes as long as the
 * NSM gives at least 64 bytes per answer, and bound the loop if it does not.
 */
export const NSM_MAX_GET_RANDOM_CALLS = 64;

function closedError(): AttestationError {
  return new AttestationError("ERR_NSM_UNAVAILABLE", "NSM attester is closed");
}

/** Every failure leaves as an AttestationError, whatever the device threw. */
function asAttestationError(err: unknown): AttestationError {
  if (isAttestationError(err)) return err;
  return new AttestationError("ERR_NSM_UNAVAILABLE", "NSM device call failed", { cause: err });
}

/**
 * The production attester: requests go to the Nitro Secure Module through an
 * NsmDevice (/dev/nsm in an enclave, a fake in tests).
 *
 * Calls are queued and run one at a time: the device holds one fd and one set
 * of native buffers, a GetRandom loop must not interleave with other
 * requests, and close() must wait for the calls it already accepted. Requests
 * are validated and encoded when the method is called, so bad input rejects
 * at once and later changes to the caller's buffers cannot alter a queued
 * request.
 */
export class NsmAttester implements Attester {
  readonly kind = "nsm" as const;

  #device: NsmDevice | null;
  #closing = false;
  #tail: Promise<void> = Promise.resolve();

  constructor(device: NsmDevice) {
    this.#device = device;
  }

  /** Opens the real device. Throws ERR_NSM_UNAVAILABLE outside a Nitro Enclave. */
  static open(path: string = NSM_DEVICE_PATH): NsmAttester {
    return new NsmAttester(openNsmDevice(path));
  }

  async attest(request: AttestationRequest): Promise<Uint8Array> {
    const encoded = encodeAttestationRequest(request);
    return this.#run((device) => decodeAttestationResponse(device.call(encoded)));
  }

  async describePcr(index: number): Promise<PcrDescription> {
    const encoded = encodeDescribePcrRequest(index);
    return this.#run((device) => {
      const { locked, data } = decodeDescribePcrResponse(device.call(encoded));
      return { index, locked, data };
    });
  }

  async getRandom(length: number): Promise<Uint8Array> {
    if (typeof length !== "number" || !Number.isInteger(length) || length < 1 || length > NSM_MAX_RANDOM_LENGTH) {
      const shown = typeof length === "number" ? String(length) : typeof length;
      throw new AttestationError("ERR_NSM_REQUEST", `"length" expected an integer in 1..${NSM_MAX_RANDOM_LENGTH}, got ${shown}`);
    }
    const encoded = encodeGetRandomRequest();
    return this.#run((device) => {
      const out = new Uint8Array(length);
      let filled = 0;
      for (let calls = 0; calls < NSM_MAX_GET_RANDOM_CALLS && filled < length; calls++) {
        const chunk = decodeGetRandomResponse(device.call(encoded));
        const take = Math.min(chunk.length, length - filled);
        out.set(chunk.subarray(0, take), filled);
        filled += take;
        chunk.fill(0);
      }
      if (filled < length) {
        out.fill(0);
        throw new AttestationError("ERR_NSM_RESPONSE", `NSM gave ${filled} of ${length} random bytes in ${NSM_MAX_GET_RANDOM_CALLS} GetRandom calls`);
      }
      return out;
    });
  }

  /** Waits for accepted calls, then closes the device. Idempotent. */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#tail;
    const device = this.#device;
    if (device === null) return;
    this.#device = null;
    try {
      device.close();
    } catch (err) {
      throw asAttestationError(err);
    }
  }

  #run<T>(operation: (device: NsmDevice) => T): Promise<T> {
    if (this.#closing) return Promise.reject(closedError());
    const result = this.#tail.then(() => {
      const device = this.#device;
      if (device === null) throw closedError();
      try {
        return operation(device);
      } catch (err) {
        throw asAttestationError(err);
      }
    });
    // The queue continues whether this call succeeded or not.
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}
