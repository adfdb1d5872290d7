import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, KeyObject, webcrypto } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * The enclave's boot-time identity, generated in memory and never written
 * anywhere: the TLS key and a self-signed certificate for it, and the
 * receipt-signing key. Clients trust the TLS key through the attestation
 * document (its SPKI hash is in user_data), not through any CA, so a
 * self-signed certificate is exactly right; the host never holds a key.
 */
export interface EnclaveIdentity {
  tls: { keyPem: string; certPem: string; spkiDer: Uint8Array; spkiSha256: Uint8Array };
  receipt: { privateKey: KeyObject; publicSpkiDer: Uint8Array };
}

export async function createIdentity(options: { now: () => Date; hostnames?: string[] }): Promise<EnclaveIdentity> {
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const tlsKeys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = options.now();
  const names = options.hostnames ?? ["localhost"];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16))).toString("hex").replace(/^[89a-f]/, "1"),
    name: "CN=enclave-gateway",
    notBefore: new Date(now.getTime() - 60_000),
    // The key lives as long as the enclave; clients pin it through attestation.
    notAfter: new Date(now.getTime() + 365 * 24 * 3600_000),
    keys: tlsKeys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.map((value) => ({ type: "dns" as const, value })),
        { type: "ip" as const, value: "127.0.0.1" },
        { type: "ip" as const, value: "::1" },
      ]),
    ],
  });
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", tlsKeys.privateKey));
  const spkiDer = new Uint8Array(await webcrypto.subtle.exportKey("spki", tlsKeys.publicKey));

  const receiptKeys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const receiptPkcs8 = new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", receiptKeys.privateKey));
  const receiptSpki = new Uint8Array(await webcrypto.subtle.exportKey("spki", receiptKeys.publicKey));

  return {
    tls: {
      keyPem: `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`,
      certPem: cert.toString("pem"),
      spkiDer,
      spkiSha256: new Uint8Array(createHash("sha256").update(spkiDer).digest()),
    },
    receipt: {
      privateKey: createPrivateKey({ key: Buffer.from(receiptPkcs8), format: "der", type: "pkcs8" }),
      publicSpkiDer: receiptSpki,
    },
  };
}
