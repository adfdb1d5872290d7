/**
 * Issues attestation documents. Two implementations exist: NsmAttester talks
 * to the real Nitro Secure Module through /dev/nsm; SimulatedNsm issues
 * documents in the same format from a development CA (see dev/). Code that
 * needs a document takes an Attester, so tests and `egw dev` run without
 * hardware while production runs the same code path.
 */
export interface AttestationRequest {
  /** Up to 1024 bytes each (NSM limit); omitted fields are sent as null. */
  userData?: Uint8Array;
  nonce?: Uint8Array;
  publicKey?: Uint8Array;
}

export interface PcrDescription {
  index: number;
  locked: boolean;
  data: Uint8Array;
}

export interface Attester {
  /** "nsm" for real hardware; "simulated" for the development NSM. */
  readonly kind: "nsm" | "simulated";
  /** Returns the raw COSE_Sign1 bytes of a fresh attestation document. */
  attest(request: AttestationRequest): Promise<Uint8Array>;
  describePcr(index: number): Promise<PcrDescription>;
  /** Random bytes from the module's entropy source. */
  getRandom(length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** NSM limits (aws-nitro-enclaves-nsm-api, src/api/mod.rs). */
export const NSM_MAX_USER_DATA = 1024;
export const NSM_MAX_NONCE = 1024;
export const NSM_MAX_PUBLIC_KEY = 1024;
