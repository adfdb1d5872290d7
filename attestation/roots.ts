import { createHash } from "node:crypto";
import { parseCertificate } from "./cert-parse.js";
import { AttestationError } from "./errors.js";

/**
 * AWS Nitro Enclaves Root G1, the only production trust anchor.
 * Published by AWS (https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip,
 * zip SHA-256 8cf60e2b2efca96c6a9e71e851d00c1b6991cc09eadbe64a6a1d1b1eb9faff7c,
 * aws-nitro-enclaves-nsm-api docs/attestation_process.md §2.1).
 * Valid 2019-10-28 to 2049-10-28, EC P-384, self-signed.
 */
export const AWS_NITRO_ROOT_G1_PEM = `
-----BEGIN CERTIFICATE-----
MIICETCCAZagAwIBAgIRAPkxdWgbkK/hHUbMtOTn+FYwCgYIKoZIzj0EAwMwSTEL
MAkGA1UEBhMCVVMxDzANBgNVBAoMBkFtYXpvbjEMMAoGA1UECwwDQVdTMRswGQYD
VQQDDBJhd3Mubml0cm8tZW5jbGF2ZXMwHhcNMTkxMDI4MTMyODA1WhcNNDkxMDI4
MTQyODA1WjBJMQswCQYDVQQGEwJVUzEPMA0GA1UECgwGQW1hem9uMQwwCgYDVQQL
DANBV1MxGzAZBgNVBAMMEmF3cy5uaXRyby1lbmNsYXZlczB2MBAGByqGSM49AgEG
BSuBBAAiA2IABPwCVOumCMHzaHDimtqQvkY4MpJzbolL//Zy2YlES1BR5TSksfbb
48C8WBoyt7F2Bw7eEtaaP+ohG2bnUs990d0JX28TcPQXCEPZ3BABIeTPYwEoCWZE
h8l5YoQwTcU/9KNCMEAwDwYDVR0TAQH/BAUwAwEB/zAdBgNVHQ4EFgQUkCW1DdkF
R+eWw5b6cp3PmanfS5YwDgYDVR0PAQH/BAQDAgGGMAoGCCqGSM49BAMDA2kAMGYC
MQCjfy+Rocm9Xue4YnwWmNJVA44fA0P5W2OpYow9OYCVRaEevL8uO1XYru5xtMPW
rfMCMQCi85sWBbJwKKXdS6BptQFuZbT73o/gBh1qUxl/nNr12UO8Yfwr6wPLb+6N
IwLz3/Y=
-----END CERTIFICATE-----
`.trim();

/** SHA-256 of the root's DER, as AWS publishes it. Checked before first use. */
export const AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b";

export interface TrustAnchor {
  /** Label shown in results, e.g. "aws-nitro-root-g1" or "development". */
  name: string;
  der: Uint8Array;
  sha256: string;
}

export function pemToDer(pem: string): Uint8Array {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/g)];
  if (blocks.length !== 1) {
    throw new AttestationError("ERR_POLICY_INVALID", `trust anchor must be exactly one PEM certificate, found ${blocks.length}`);
  }
  return new Uint8Array(Buffer.from(blocks[0]![1]!.replace(/\s+/g, ""), "base64"));
}

export function derToPem(der: Uint8Array): string {
  const b64 = Buffer.from(der)
    .toString("base64")
    .replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
}

export function trustAnchorFromPem(pem: string, name: string): TrustAnchor {
  const der = pemToDer(pem);
  try {
    // Anything between the PEM markers must be a readable certificate, or
    // a typo'd file would silently become a root that matches nothing.
    parseCertificate(der);
  } catch (cause) {
    throw new AttestationError("ERR_POLICY_INVALID", "trust anchor is not a readable X.509 certificate", { cause });
  }
  return { name, der, sha256: createHash("sha256").update(der).digest("hex") };
}

let awsRoot: TrustAnchor | undefined;

/** The embedded AWS root, after its fingerprint has been checked. */
export function awsNitroRootG1(): TrustAnchor {
  if (!awsRoot) {
    const anchor = trustAnchorFromPem(AWS_NITRO_ROOT_G1_PEM, "aws-nitro-root-g1");
    // A corrupted build must not silently trust a different root.
    if (anchor.sha256 !== AWS_NITRO_ROOT_G1_SHA256) {
      throw new AttestationError("ERR_ROOT_UNTRUSTED", "embedded AWS Nitro root fails its fingerprint check");
    }
    awsRoot = anchor;
  }
  return awsRoot;
}
