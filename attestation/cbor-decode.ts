import { Decoder } from "cbor-x";
import { assertSingleItem, type ScanLimits, DEFAULT_SCAN_LIMITS } from "./cbor-scan.js";
import { AttestationError } from "./errors.js";

// Maps decode to Map (never plain objects: no prototype keys, integer keys
// kept as numbers); records and structured clone are off so no cbor-x
// extension can be triggered by input bytes. int64AsNumber is safe because
// the scan already refused every argument above 2^53; the NSM encodes the
// timestamp as a full uint64 (0x1b…), which cbor-x would otherwise return
// as a bigint.
const decoder = new Decoder({
  mapsAsObjects: false,
  useRecords: false,
  structuredClone: false,
  int64AsNumber: true,
} as ConstructorParameters<typeof Decoder>[0]);

/**
 * Decodes exactly one CBOR item after the strict well-formedness pass.
 * Byte strings come back as views of the input: their contents are the exact
 * bytes received, which is what signatures are checked over.
 */
export function decodeStrict(bytes: Uint8Array, what: string, limits: ScanLimits = DEFAULT_SCAN_LIMITS): unknown {
  assertSingleItem(bytes, what, limits);
  try {
    return decoder.decode(bytes);
  } catch (cause) {
    // The scan accepted it, so this is a cbor-x limitation, still bad input.
    throw new AttestationError("ERR_CBOR_MALFORMED", `malformed CBOR in ${what}`, { cause });
  }
}

export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

/** Copies a byte string out of the decoder's buffer so results never alias input. */
export function copyBytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value);
}
