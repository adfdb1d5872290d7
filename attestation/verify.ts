import { timingSafeEqual } from "node:crypto";
import { checkChain, type CertificateSummary } from "./chain.js";
import { decodeCoseSign1, sigStructure } from "./cose-sign1.js";
import { parseDocumentPayload } from "./document.js";
import { AttestationError, SIGNATURE_MESSAGE } from "./errors.js";
import { verifyEs384 } from "./es384.js";
import { awsNitroRootG1, type TrustAnchor } from "./roots.js";
import type { AttestationDocument } from "./types.js";
import { parsePolicy, type VerifyOptions } from "./verify-options.js";

export type StepName = "decode" | "cose-header" | "fields" | "chain" | "signature" | "debug-mode" | "pcrs" | "nonce" | "public-key" | "user-data" | "freshness";

export interface VerificationStep {
  step: StepName;
  /** "passed": checked and held; "not-requested": the policy asked for nothing. */
  status: "passed" | "not-requested";
  detail: string;
}

export interface VerificationResult {
  document: AttestationDocument;
  moduleId: string;
  timestamp: Date;
  /** PCR0 (and PCR1, PCR2) all zero: the enclave runs in debug mode. */
  debug: boolean;
  tagged: boolean;
  /** The trust anchor the chain ends in. */
  root: { name: string; sha256: string; production: boolean };
  /** Leaf first, root last. */
  chain: CertificateSummary[];
  /** What the chain cache supplied: nothing, the intermediates, or every link. */
  chainFromCache: "none" | "intermediates" | "all";
  steps: VerificationStep[];
}

function isAllZero(bytes: Uint8Array | undefined): boolean {
  return bytes !== undefined && bytes.every((b) => b === 0);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * Verifies a Nitro attestation document (raw COSE_Sign1 bytes) as a pipeline
 * of named checks, after hf/nitrite and the AWS procedure:
 *   decode → COSE header → fields → chain (time injected) → signature →
 *   debug mode → PCRs → nonce → public_key → user_data → freshness.
 * Returns only when every check passed; otherwise throws the AttestationError
 * of the first failed check. Policy inputs are validated first: an option
 * that is present but unusable rejects; nothing is silently skipped.
 */
export async function verifyAttestation(bytes: Uint8Array, options: VerifyOptions): Promise<VerificationResult> {
  const policy = parsePolicy(options);
  const steps: VerificationStep[] = [];
  const pass = (step: StepName, detail: string): void => {
    steps.push({ step, status: "passed", detail });
  };
  const skip = (step: StepName, detail: string): void => {
    steps.push({ step, status: "not-requested", detail });
  };

  const cose = decodeCoseSign1(bytes);
  pass("decode", `COSE_Sign1 (${cose.tagged ? "tagged 18" : "untagged"}), ${bytes.length} bytes`);
  pass("cose-header", "protected {1: -35} (ES384), unprotected empty, 96-byte signature");

  const document = parseDocumentPayload(cose.payload);
  pass("fields", `module_id, digest SHA384, timestamp, ${document.pcrs.size} PCRs, certificate, ${document.cabundle.length} CA certificates`);

  const chain = checkChain(document.certificate, document.cabundle, {
    anchors: policy.anchors,
    currentDate: policy.currentDate,
    cache: policy.cache,
  });
  const toBeSigned = sigStructure(cose.protectedBytes, cose.payload);
  const jobs = [...chain.pending, { what: "document", result: verifyEs384(toBeSigned, chain.leaf.publicKey, cose.signature, "ieee-p1363") }];
  // All signature checks run at once on the thread pool; the first failure in
  // pipeline order (chain top-down, then the document) is reported.
  const outcomes = await Promise.all(jobs.map((job) => job.result));
  outcomes.forEach((ok, i) => {
    if (ok) return;
    const what = jobs[i]!.what;
    if (what === "document") throw new AttestationError("ERR_SIGNATURE_INVALID", SIGNATURE_MESSAGE);
    throw new AttestationError("ERR_CHAIN_BROKEN", `${what}: ${SIGNATURE_MESSAGE}`);
  });
  chain.commit();
  pass(
    "chain",
    `${chain.chain.length} certificates to ${chain.anchor.name} (sha256 ${chain.anchor.sha256}), valid at ${policy.currentDate.toISOString()}${chain.cached === "none" ? "" : `, ${chain.cached === "all" ? "every link" : "intermediates"} verified earlier (cache)`}`,
  );
  pass("signature", "ES384 over Sig_structure with the leaf key");

  const debug = isAllZero(document.pcrs.get(0));
  if (debug && !policy.allowDebug) {
    throw new AttestationError("ERR_DEBUG_MODE", "PCR0 is all zero: the enclave runs in debug mode, which is not allowed");
  }
  pass("debug-mode", debug ? "debug mode (allowed by policy)" : "production mode (PCR0 non-zero)");

  if (policy.pcrs === "any") {
    skip("pcrs", "policy accepts any measurements");
  } else {
    for (const [index, expected] of policy.pcrs) {
      const actual = document.pcrs.get(index);
      if (!actual) throw new AttestationError("ERR_PCR_MISMATCH", `PCR${index} is absent from the document`);
      if (!equalBytes(actual, expected)) {
        throw new AttestationError("ERR_PCR_MISMATCH", `PCR${index} is ${hex(actual)}, expected ${hex(expected)}`);
      }
    }
    pass("pcrs", `PCR ${[...policy.pcrs.keys()].join(", ")} match`);
  }

  // Nonce, public key and user data may be secrets: messages give sizes only.
  const compare = (
    step: StepName,
    name: string,
    expected: Uint8Array | undefined,
    actual: Uint8Array | null,
    code: "ERR_NONCE_MISMATCH" | "ERR_PUBLIC_KEY_MISMATCH" | "ERR_USER_DATA_MISMATCH",
  ): void => {
    if (expected === undefined) {
      skip(step, `policy names no ${name}`);
      return;
    }
    if (actual === null) throw new AttestationError(code, `${name} expected but absent from the document`);
    if (!equalBytes(actual, expected)) {
      throw new AttestationError(code, `${name} does not match (document ${actual.length} bytes, expected ${expected.length})`);
    }
    pass(step, `${name} matches (${actual.length} bytes)`);
  };
  compare("nonce", "nonce", policy.nonce, document.nonce, "ERR_NONCE_MISMATCH");
  compare("public-key", "public_key", policy.publicKey, document.publicKey, "ERR_PUBLIC_KEY_MISMATCH");
  compare("user-data", "user_data", policy.userData, document.userData, "ERR_USER_DATA_MISMATCH");

  const now = policy.currentDate.getTime();
  if (document.timestamp > now + policy.clockSkewMs) {
    throw new AttestationError(
      "ERR_DOC_FROM_FUTURE",
      `timestamp ${new Date(document.timestamp).toISOString()} is ahead of ${policy.currentDate.toISOString()} by more than ${policy.clockSkewMs} ms`,
    );
  }
  const age = now - document.timestamp;
  if (age > policy.maxAgeMs) {
    throw new AttestationError("ERR_DOC_STALE", `document is ${age} ms old, maximum is ${policy.maxAgeMs} ms`);
  }
  pass("freshness", `issued ${Math.max(0, age)} ms before ${policy.currentDate.toISOString()} (max ${policy.maxAgeMs} ms, skew ${policy.clockSkewMs} ms)`);

  return {
    document,
    moduleId: document.moduleId,
    timestamp: new Date(document.timestamp),
    debug,
    tagged: cose.tagged,
    root: { name: chain.anchor.name, sha256: chain.anchor.sha256, production: chain.anchor.sha256 === awsNitroRootG1().sha256 },
    chain: chain.chain,
    chainFromCache: chain.cached,
    steps,
  };
}

export type { TrustAnchor };
