import { BundleError } from "./errors.js";

/**
 * What the measured image may contain: the enclave program and nothing
 * else. PCR2 covers every byte of the bundle, so anything in it is code a
 * reviewer must read and that an attacker could reach from inside the
 * enclave; the host relay, the egress proxy, the operator and reviewer
 * commands, the local KMS and the dev stack have no business there. The
 * check runs on esbuild's metafile (every file that went into the bundle)
 * and refuses anything outside this list, so a new import that drags one of
 * them in fails the image build instead of silently growing the TCB.
 *
 * Source paths are matched without a leading "dist/" and without the
 * extension: the image bundles tsc's dist/**.js, the tests bundle the .ts
 * sources, and both must pass or fail alike.
 */
export interface BundleAllowlist {
  /** Our folders allowed whole (with a trailing "/"). */
  sourceFolders: readonly string[];
  /** Our single files allowed, without extension. */
  sourceFiles: readonly string[];
  /** npm packages by name; "@scope/*" allows a whole scope. */
  packages: readonly string[];
}

export const ENCLAVE_ALLOWLIST: BundleAllowlist = Object.freeze({
  // host/transport/codec/ holds the wire formats both sides speak
  // (provisioning frame, bundle, boot status, sealed file, config hash,
  // PROXY v2), written once and read by the enclave with the very code the
  // host writes them with. It imports nothing that handles plaintext
  // (test/import-rules.test.ts).
  sourceFolders: ["enclave/", "attestation/", "host/transport/codec/"],
  // host/transport is the host's, but its AF_VSOCK code is the only way the
  // enclave has a network at all: its vsock bridges (enclave/init/bridge.ts)
  // listen on and dial vsock with it, and copy bytes with its pump. Exactly the files that code imports;
  // not index.ts (nothing needs the barrel) and nothing else under host/.
  sourceFiles: [
    "host/transport/endpoint", // endpoint syntax (vsock://cid:port, tcp://, unix://)
    "host/transport/errors", // TransportError
    "host/transport/transport", // listen/connect over the three kinds of endpoint
    "host/transport/vsock", // AF_VSOCK sockaddr and dial/listen
    "host/transport/fd-socket", // a vsock fd handed to libuv as a net.Socket
    "host/transport/ffi", // socket(2)/bind(2)/connect(2) through koffi
    "host/transport/pump", // the byte pump the bridges copy with (the relay's and egress proxy's too)
  ],
  // The runtime dependencies the enclave program loads, read off the
  // metafile of enclave/bin.ts (`npm run bundle`, then build/app/inputs.json).
  packages: [
    "hono", // HTTP routing (enclave/gateway.ts)
    "@hono/node-server", // Hono on node:https
    "cbor-x", // CBOR for attestation documents and receipts
    "undici", // upstream HTTP client, egress through CONNECT, SPKI pinning
    "eventsource-parser", // upstream SSE
    "prom-client", // content-free metrics (enclave/observability/metrics.ts)
    "bintrees", // prom-client's
    "tdigest", // prom-client's
    "@opentelemetry/api", // prom-client's (exemplars)
    "node-forge", // certificates and CMS (enclave identity, simulated NSM)
    "@peculiar/*", // @peculiar/x509 and its asn1-* schemas (attestation certificate chains)
    "asn1js", // @peculiar/*'s
    "pvtsutils", // @peculiar/*'s
    "pvutils", // asn1js's
    "reflect-metadata", // @peculiar/x509's (tsyringe)
    "tsyringe", // @peculiar/x509's
    "tslib", // helpers of the above
    "@aws-sdk/*", // KMS Decrypt with Recipient (enclave/secrets) and its credential chain
    "@smithy/*", // the AWS SDK's runtime
    "@aws/lambda-invoke-store", // @aws-sdk/core's
    "bowser", // @aws-sdk/*'s user-agent
  ],
});

/** One bundled file, classified. */
export type ClassifiedInput = { input: string; bytes: number; kind: "source"; folder: string } | { input: string; bytes: number; kind: "package"; lockKey: string; name: string };

/** The package folder of a bundled file ("node_modules/a/node_modules/@s/b"), as package-lock.json keys it. */
export function lockKeyOf(input: string): string | undefined {
  return /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1];
}

function packageName(lockKey: string): string {
  return lockKey.slice(lockKey.lastIndexOf("node_modules/") + "node_modules/".length);
}

function packageAllowed(name: string, allow: readonly string[]): boolean {
  return allow.some((entry) => (entry.endsWith("/*") ? name.startsWith(entry.slice(0, -1)) && name.length > entry.length - 1 : entry === name));
}

/** "dist/enclave/boot.js" and "enclave/boot.ts" → "enclave/boot". */
function sourceKey(input: string): string {
  return input.replace(/^dist\//, "").replace(/\.(?:[cm]?js|[cm]?ts|json)$/, "");
}

function sourceAllowed(input: string, allow: BundleAllowlist): boolean {
  const key = sourceKey(input);
  // Both forms are plain relative paths; anything with "..", a scheme or a
  // namespace ("(disabled):…") is not one of our files.
  if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(key) || key.split("/").includes("..")) return false;
  return allow.sourceFolders.some((folder) => key.startsWith(folder)) || allow.sourceFiles.includes(key);
}

/**
 * Classifies every input of an esbuild metafile against the allowlist.
 * Pure: no file system, no clock. Throws ERR_BUNDLE_NOT_ALLOWED naming
 * every offending input (sorted, at most 50 named, with the count), so one
 * run shows the whole problem.
 */
export function checkBundleInputs(inputs: Readonly<Record<string, { bytes: number }>>, allow: BundleAllowlist = ENCLAVE_ALLOWLIST): ClassifiedInput[] {
  const classified: ClassifiedInput[] = [];
  const refused: string[] = [];
  for (const input of Object.keys(inputs).sort()) {
    const bytes = inputs[input]!.bytes;
    const lockKey = lockKeyOf(input);
    if (lockKey !== undefined) {
      const name = packageName(lockKey);
      if (packageAllowed(name, allow.packages)) classified.push({ input, bytes, kind: "package", lockKey, name });
      else refused.push(`${input} (package ${name})`);
    } else if (sourceAllowed(input, allow)) {
      const key = sourceKey(input);
      classified.push({ input, bytes, kind: "source", folder: key.slice(0, key.lastIndexOf("/") + 1) });
    } else {
      refused.push(input);
    }
  }
  if (refused.length > 0) {
    const shown = refused.slice(0, 50).join(", ");
    throw new BundleError(
      "ERR_BUNDLE_NOT_ALLOWED",
      `the enclave bundle would contain ${refused.length} input(s) outside the image allowlist (infra/deploy/image/allowlist.ts): ` + `${shown}${refused.length > 50 ? ", …" : ""}`,
    );
  }
  return classified;
}
