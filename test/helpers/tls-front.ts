import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { createHash, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import net from "node:net";
import tls from "node:tls";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * An HTTPS front for a plain-http local mock: terminates TLS with its own
 * fresh self-signed certificate (SAN 127.0.0.1) and pipes the bytes to the
 * mock, so an upstream is reached over real TLS on loopback. `spkiSha256`
 * is computed here from the PEM, independently of the code under test.
 */
export interface TlsFront {
  /** The mock's URL with https and the front's port (same path). */
  url: string;
  host: string;
  /** The certificate served now. */
  certPem: string;
  /** Hex SHA-256 of the served leaf's SubjectPublicKeyInfo DER, from the PEM. */
  spkiSha256: string;
  /** Every certificate this front will ever serve (now, and after `rotate`): the client's roots. */
  allCertsPem: string;
  /** Serve the second certificate (new key) to new connections, and drop the open ones. */
  rotate(): void;
  /** Connections accepted so far. */
  connections(): number;
  /** Ends every open connection (the next request must connect anew). */
  dropConnections(): void;
  close(): Promise<void>;
}

export function spkiSha256OfPem(pem: string): string {
  const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/**
 * A self-signed server certificate for 127.0.0.1 with a unique subject: the
 * client trusts it as its own root, and OpenSSL finds a root by subject
 * name, so two fronts must not share one.
 */
async function selfSigned(): Promise<{ keyPem: string; certPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const serial = randomBytes(8).toString("hex");
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${serial}`,
    name: `CN=upstream-front-${serial}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys: keys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]["keys"],
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: "ip" as const, value: "127.0.0.1" }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return {
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`,
    certPem: `${cert.toString("pem").trim()}\n`,
  };
}

export async function startTlsFront(targetUrl: string): Promise<TlsFront> {
  const target = new URL(targetUrl);
  const identity = await selfSigned();
  const next = await selfSigned();
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  const server = tls.createServer({ key: identity.keyPem, cert: identity.certPem }, (client) => {
    accepted++;
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  const url = new URL(targetUrl);
  url.protocol = "https:";
  url.port = String(port);
  let current = identity;
  return {
    url: url.href.replace(/\/+$/, ""),
    host: `127.0.0.1:${port}`,
    get certPem() {
      return current.certPem;
    },
    get spkiSha256() {
      return spkiSha256OfPem(current.certPem);
    },
    allCertsPem: identity.certPem + next.certPem,
    rotate: () => {
      current = next;
      server.setSecureContext({ key: next.keyPem, cert: next.certPem });
      for (const s of sockets) s.destroy();
    },
    connections: () => accepted,
    dropConnections: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
