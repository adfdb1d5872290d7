import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, createPrivateKey, createPublicKey, type KeyObject, webcrypto } from "node:crypto";
import type { ReceiptKeyWindow } from "../attestation/binding.js";
import { signingSpki, type IdentityKeys } from "./secrets/identity-blob.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * The enclave's boot-time identity, generated in memory and never written
 * anywhere: the TLS key and a self-signed certificate for it, and the
 * receipt-signing key. Or, with a sealed identity, the same keys on every
 * replica, opened from KMS at boot (identityFromKeys). Clients trust the TLS key through the attestation
 * document (its SPKI hash is in user_data), not through any CA, so a
 * self-signed certificate is exactly right; the host never holds a key.
 */
export interface EnclaveIdentity {
  tls: { keyPem: string; certPem: string; spkiDer: Uint8Array; spkiSha256: Uint8Array };
  receipt: {
    privateKey: KeyObject;
    publicSpkiDer: Uint8Array;
    /**
     * Only for a sealed identity (shared by replicas): the signing key's
     * validity and every receipt key it attests (signing key first), which
     * the attestation carries as channel binding v2. Absent for an identity
     * made at boot, whose key lives exactly as long as the enclave.
     */
    window?: { notBefore: number; notAfter: number };
    keySet?: ReceiptKeyWindow[];
  };
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A fresh identity, generated in memory at boot. */
export async function createIdentity(options: { now: () => Date; hostnames?: string[] }): Promise<EnclaveIdentity> {
  const tlsKeys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const receiptKeys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const receiptPkcs8 = new Uint8Array(await webcrypto.subtle.exportKey("pkcs8", receiptKeys.privateKey));
  const receiptSpki = new Uint8Array(await webcrypto.subtle.exportKey("spki", receiptKeys.publicKey));
  return {
    tls: await tlsIdentity(tlsKeys, options),
    receipt: {
      privateKey: createPrivateKey({ key: Buffer.from(receiptPkcs8), format: "der", type: "pkcs8" }),
      publicSpkiDer: receiptSpki,
    },
  };
}

/**
 * The identity from a sealed blob's keys: the same TLS key (so the same
 * attested SPKI) and the same receipt key on every replica. The certificate
 * is made anew at each boot; clients bind to the SPKI, not the certificate.
 */
export async function identityFromKeys(keys: IdentityKeys, options: { now: () => Date; hostnames?: string[] }): Promise<EnclaveIdentity> {
  const tlsPrivate = createPrivateKey({ key: Buffer.from(keys.tlsPkcs8), format: "der", type: "pkcs8" });
  const tlsSpki = createPublicKey(tlsPrivate).export({ type: "spki", format: "der" });
  const tlsKeys = {
    privateKey: await webcrypto.subtle.importKey("pkcs8", Buffer.from(keys.tlsPkcs8), ALG, true, ["sign"]),
    publicKey: await webcrypto.subtle.importKey("spki", tlsSpki, ALG, true, ["verify"]),
  } as webcrypto.CryptoKeyPair;
  const signingSpkiDer = signingSpki(keys.signing.pkcs8);
  const window = { notBefore: keys.signing.notBefore, notAfter: keys.signing.notAfter };
  return {
    tls: await tlsIdentity(tlsKeys, options),
    receipt: {
      privateKey: createPrivateKey({ key: Buffer.from(keys.signing.pkcs8), format: "der", type: "pkcs8" }),
      publicSpkiDer: signingSpkiDer,
      window,
      keySet: [{ spki: signingSpkiDer, ...window }, ...keys.retired.map((k) => ({ spki: new Uint8Array(k.spki), notBefore: k.notBefore, notAfter: k.notAfter }))],
    },
  };
}

async function tlsIdentity(tlsKeys: webcrypto.CryptoKeyPair, options: { now: () => Date; hostnames?: string[] }): Promise<EnclaveIdentity["tls"]> {
  const now = options.now();
  const names = options.hostnames ?? ["localhost"];
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
      .toString("hex")
      .replace(/^[89a-f]/, "1"),
    name: "CN=enclave-gateway",
    notBefore: new Date(now.getTime() - 60_000),
    // The key lives as long as the enclave; clients pin it through attestation.
    notAfter: new Date(now.getTime() + 365 * 24 * 3600_000),
    keys: tlsKeys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    signingAlgorithm: ALG,
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
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8)
      .toString("base64")
      .replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`,
    certPem: cert.toString("pem"),
    spkiDer,
    spkiSha256: new Uint8Array(createHash("sha256").update(spkiDer).digest()),
  };
}
