import { Encoder } from "cbor-x";

/**
 * cbor-x configured so every value becomes exactly one plain CBOR item:
 * Uint8Array → bstr (no typed-array tag 64), Map → definite-length map in
 * insertion order (no tag 259, no records extension), bigint → integer.
 * Numbers above 2^32 must be passed as bigint: cbor-x would write them as
 * float64, which the strict decoder refuses.
 */
const encoder = new Encoder({
  useRecords: false,
  mapsAsObjects: false,
  variableMapSize: true,
  tagUint8Array: false,
  pack: false,
  structuredClone: false,
  bundleStrings: false,
  useSelfDescribedHeader: false,
  useToJSON: false,
} as ConstructorParameters<typeof Encoder>[0]);

export function encodeCbor(value: unknown): Uint8Array {
  // Copy: the encoder may hand out a view of a buffer it reuses.
  return new Uint8Array(encoder.encode(value));
}
