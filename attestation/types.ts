/**
 * The Nitro attestation document, as defined in the AWS NSM API
 * (aws-nitro-enclaves-nsm-api, docs/attestation_process.md §3.2):
 *
 *   AttestationDocument = {
 *     module_id: text, digest: "SHA384", timestamp: uint .size 8,
 *     pcrs: { + index => pcr }, certificate: cert, cabundle: [* cert],
 *     ? public_key: user_data, ? user_data: user_data, ? nonce: user_data }
 *   pcr = bytes .size (32/48/64), cert = bytes .size (1..1024),
 *   user_data = bytes .size (0..1024)
 *
 * Optional fields that real hardware encodes as CBOR null are `null` here.
 */
export interface AttestationDocument {
  moduleId: string;
  digest: "SHA384";
  /** Milliseconds since the Unix epoch, as issued by the NSM. */
  timestamp: number;
  /** PCR index → measurement bytes, in ascending index order. */
  pcrs: Map<number, Uint8Array>;
  /** DER of the leaf certificate that signed the document. */
  certificate: Uint8Array;
  /** DER certificates, root first: [ROOT, INTERM_1, …, INTERM_N]. */
  cabundle: Uint8Array[];
  publicKey: Uint8Array | null;
  userData: Uint8Array | null;
  nonce: Uint8Array | null;
}

/** A decoded but not yet verified COSE_Sign1 carrying a Nitro document. */
export interface DecodedCoseSign1 {
  /** Whether the outer CBOR carried tag 18 (COSE_Sign1). */
  tagged: boolean;
  /** The protected header bstr contents, exactly as received. */
  protectedBytes: Uint8Array;
  /** The payload bstr contents, exactly as received. */
  payload: Uint8Array;
  /** ES384 signature, r ‖ s (96 bytes). */
  signature: Uint8Array;
  /** COSE algorithm identifier from the protected header. */
  alg: number;
}

export interface DecodedAttestation {
  cose: DecodedCoseSign1;
  document: AttestationDocument;
}
