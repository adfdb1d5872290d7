import { execFileSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifyManifestSignature } from "../../../attestation/manifest/signature.js";
import { loadSigningKey, parseKeyPinHex, publicKeySpkiFromPem, signManifest, spkiSha256Hex } from "../../../attestation/manifest/sign.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-sign-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
const pkcs8 = p384.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
const sec1 = p384.privateKey.export({ type: "sec1", format: "pem" }) as string;
const publicPem = p384.publicKey.export({ type: "spki", format: "pem" }) as string;
const keyError = { code: "ERR_SIGNING_KEY" };

describe("signing keys", () => {
  it("reads P-384 private keys in PKCS#8 and SEC1 PEM; refuses other curves, other algorithms and encrypted PEM", () => {
    expect(loadSigningKey(pkcs8).asymmetricKeyDetails?.namedCurve).toBe("secp384r1");
    expect(loadSigningKey(sec1).asymmetricKeyDetails?.namedCurve).toBe("secp384r1");
    const others = [
      generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      p384.privateKey.export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "x" }) as string,
      publicPem,
      "not a key",
    ];
    for (const pem of others) expect(() => loadSigningKey(pem)).toThrow(expect.objectContaining(keyError));
    expect(() => loadSigningKey(others[3]!)).toThrow(/encrypted/);
  });

  it("a pin file holds exactly one PUBLIC KEY block on P-384; a private key is not a pin", () => {
    const spki = publicKeySpkiFromPem(publicPem);
    expect(spki).toEqual(new Uint8Array(p384.publicKey.export({ type: "spki", format: "der" })));
    for (const pem of [pkcs8, sec1, `${publicPem}${publicPem}`, generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" }) as string]) {
      expect(() => publicKeySpkiFromPem(pem)).toThrow(expect.objectContaining(keyError));
    }
  });

  it("a hex pin is the 64-digit SHA-256 of the SPKI, optionally prefixed sha256:", () => {
    const hex = spkiSha256Hex(publicKeySpkiFromPem(publicPem));
    expect(parseKeyPinHex(hex)).toEqual(new Uint8Array(Buffer.from(hex, "hex")));
    expect(parseKeyPinHex(`sha256:${hex.toUpperCase()}`)).toEqual(new Uint8Array(Buffer.from(hex, "hex")));
    for (const bad of [hex.slice(1), `${hex}0`, `0x${hex}`, "", `${hex.slice(1)}g`]) expect(() => parseKeyPinHex(bad)).toThrow(expect.objectContaining(keyError));
  });

  const openssl = (() => {
    try {
      execFileSync("openssl", ["version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  it.runIf(openssl)("the pin is what `openssl pkey -pubin -outform DER | sha256sum` prints, and openssl-made keys sign", async () => {
    fs.writeFileSync(path.join(dir, "pub.pem"), publicPem);
    const der = execFileSync("openssl", ["pkey", "-pubin", "-in", path.join(dir, "pub.pem"), "-outform", "DER"]);
    expect(createHash("sha256").update(der).digest("hex")).toBe(spkiSha256Hex(publicKeySpkiFromPem(publicPem)));
    // The key-generation command REVIEW.md gives.
    execFileSync("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", path.join(dir, "k.pem")], { stdio: "ignore" });
    const key = loadSigningKey(fs.readFileSync(path.join(dir, "k.pem"), "utf8"));
    const pubFromOpenssl = execFileSync("openssl", ["pkey", "-in", path.join(dir, "k.pem"), "-pubout"]).toString("utf8");
    const manifest = new TextEncoder().encode('{"version":1}\n');
    const { signature, keyId } = await signManifest(manifest, key);
    expect(keyId).toBe(spkiSha256Hex(publicKeySpkiFromPem(pubFromOpenssl)));
    await expect(verifyManifestSignature(manifest, signature, { spkiSha256: parseKeyPinHex(keyId) })).resolves.toBeTruthy();
  });
});

describe("signManifest", () => {
  it("signs the exact bytes, checks its own output, and refuses keys it cannot use", async () => {
    const bytes = new TextEncoder().encode("any bytes at all: the format is the caller's business\n");
    const { signature, keyId } = await signManifest(bytes, loadSigningKey(pkcs8));
    await expect(verifyManifestSignature(bytes, signature, { spkiSha256: parseKeyPinHex(keyId) })).resolves.toMatchObject({ keyId });
    // ECDSA is randomised: two signatures differ, both verify.
    const again = await signManifest(bytes, loadSigningKey(pkcs8));
    expect(Buffer.from(again.signature).equals(Buffer.from(signature))).toBe(false);
    await expect(signManifest(bytes, p384.publicKey)).rejects.toMatchObject(keyError);
    await expect(signManifest(bytes, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey)).rejects.toMatchObject(keyError);
  });
});
