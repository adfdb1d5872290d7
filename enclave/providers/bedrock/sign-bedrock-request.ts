import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, SourceData } from "@smithy/types";
import type { AwsCredentials } from "./check-bedrock-identity.js";

/**
 * Signs a Bedrock Runtime request with AWS Signature Version 4 (AWS IAM User
 * Guide, "Signature Version 4 signing process"): service `bedrock`, the
 * policy's region, the host's role credentials, the signing time from the
 * injected clock. @smithy/signature-v4 is the signer the AWS SDK itself uses;
 * node:crypto gives it SHA-256 and HMAC. Returns the headers to send
 * (authorization, x-amz-date, x-amz-security-token and the signed
 * content-type and accept), without `host`, which the HTTP client sets to
 * the same value.
 */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: SourceData) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret === undefined ? createHash("sha256") : createHmac("sha256", toBytes(this.secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function toBytes(data: SourceData): Uint8Array | string {
  if (typeof data === "string") return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

export function bedrockSigner(region: string, credentials: AwsCredentials): SignatureV4 {
  return new SignatureV4({ service: "bedrock", region, credentials, sha256: NodeSha256 });
}

export async function signBedrockRequest(signer: SignatureV4, url: string, body: string, accept: string, now: Date): Promise<Record<string, string>> {
  const u = new URL(url);
  const request: HttpRequest = {
    method: "POST",
    protocol: u.protocol,
    hostname: u.hostname,
    ...(u.port !== "" && { port: Number(u.port) }),
    path: u.pathname,
    query: {},
    headers: { host: u.host, "content-type": "application/json", accept },
    body,
  };
  const signed = await signer.sign(request, { signingDate: now });
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== "host") headers[k.toLowerCase()] = v;
  return headers;
}
