import { constants, createCipheriv, publicEncrypt, randomBytes, type KeyObject } from "node:crypto";
import forge from "node-forge";

/**
 * Builds CMS EnvelopedData in the KMS `CiphertextForRecipient` shape with a
 * hand-written BER encoder, independent of the parser under test (which uses
 * forge). Every field can be replaced, so each mutation test changes one
 * thing.
 */

export const OID = {
  envelopedData: "1.2.840.113549.1.7.3",
  signedData: "1.2.840.113549.1.7.2",
  data: "1.2.840.113549.1.7.1",
  rsaEncryption: "1.2.840.113549.1.1.1",
  rsaesOaep: "1.2.840.113549.1.1.7",
  mgf1: "1.2.840.113549.1.1.8",
  pSpecified: "1.2.840.113549.1.1.9",
  sha1: "1.3.14.3.2.26",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  aes128Cbc: "2.16.840.1.101.3.4.1.2",
  aes256Cbc: "2.16.840.1.101.3.4.1.42",
  aes256Gcm: "2.16.840.1.101.3.4.1.46",
} as const;

const cat = (parts: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(parts));

function definiteLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** Primitive TLV (always definite, as X.690 §8.1.3.2 requires). */
export function prim(tag: number, content: Uint8Array): Uint8Array {
  return cat([Uint8Array.of(tag), definiteLength(content.length), content]);
}

/** Constructed TLV; indefinite length ends with end-of-contents `00 00`. */
export function cons(tag: number, items: Uint8Array[], indefinite: boolean): Uint8Array {
  const body = cat(items);
  return indefinite ? cat([Uint8Array.of(tag, 0x80), body, Uint8Array.of(0, 0)]) : cat([Uint8Array.of(tag), definiteLength(body.length), body]);
}

export const oid = (dotted: string): Uint8Array => prim(0x06, new Uint8Array(Buffer.from(forge.asn1.oidToDer(dotted).getBytes(), "latin1")));
export const int = (n: number): Uint8Array => prim(0x02, Uint8Array.of(n));
export const octets = (b: Uint8Array): Uint8Array => prim(0x04, b);
export const NULL = Uint8Array.of(0x05, 0x00);
export const seq = (items: Uint8Array[], indefinite = false): Uint8Array => cons(0x30, items, indefinite);
export const set = (items: Uint8Array[], indefinite = false): Uint8Array => cons(0x31, items, indefinite);
export const algId = (dotted: string, params?: Uint8Array): Uint8Array => seq(params === undefined ? [oid(dotted)] : [oid(dotted), params]);

/** RSAES-OAEP-params exactly as KMS writes them (RFC 4055 §3.1). */
export function oaepParams(hash: string = OID.sha256, mgfHash: string = OID.sha256): Uint8Array {
  return seq([cons(0xa0, [algId(hash, NULL)], false), cons(0xa1, [algId(OID.mgf1, algId(mgfHash, NULL))], false)]);
}

export interface CmsParts {
  outerContentType: string;
  envelopedVersion: number;
  /** Extra EnvelopedData fields: before recipientInfos (originatorInfo) and after encryptedContentInfo (unprotectedAttrs). */
  originatorInfo?: Uint8Array;
  unprotectedAttrs?: Uint8Array;
  ktriVersion: number;
  rid: Uint8Array;
  keyEncryptionAlgorithm: Uint8Array;
  encryptedKey: Uint8Array;
  /** Replaces the whole recipientInfos SET contents when set. */
  recipients?: Uint8Array[];
  innerContentType: string;
  contentEncryptionAlgorithm: Uint8Array;
  encryptedContent: Uint8Array;
}

export interface Layout {
  /** Indefinite lengths on the outer structures, as KMS writes them. */
  indefinite: boolean;
  content: "primitive" | "constructed" | "absent";
  /** Chunk size for constructed content; 0 adds one empty chunk in front as well. */
  chunkSize: number;
}

export const KMS_LAYOUT: Layout = { indefinite: true, content: "constructed", chunkSize: 1024 };

export function ktri(p: Pick<CmsParts, "ktriVersion" | "rid" | "keyEncryptionAlgorithm" | "encryptedKey">): Uint8Array {
  return seq([int(p.ktriVersion), p.rid, p.keyEncryptionAlgorithm, octets(p.encryptedKey)]);
}

export function assemble(p: CmsParts, layout: Layout = KMS_LAYOUT): Uint8Array {
  const ind = layout.indefinite;
  let content: Uint8Array[] = [];
  if (layout.content === "primitive") {
    content = [prim(0x80, p.encryptedContent)];
  } else if (layout.content === "constructed") {
    const size = Math.max(1, layout.chunkSize);
    const chunks: Uint8Array[] = layout.chunkSize === 0 ? [octets(new Uint8Array(0))] : [];
    for (let i = 0; i < p.encryptedContent.length; i += size) chunks.push(octets(p.encryptedContent.subarray(i, i + size)));
    content = [cons(0xa0, chunks, ind)];
  }
  const eci = seq([oid(p.innerContentType), p.contentEncryptionAlgorithm, ...content], ind);
  const recipients = set(p.recipients ?? [ktri(p)]);
  const ed = seq([int(p.envelopedVersion), ...(p.originatorInfo ? [p.originatorInfo] : []), recipients, eci, ...(p.unprotectedAttrs ? [p.unprotectedAttrs] : [])], ind);
  return seq([oid(p.outerContentType), cons(0xa0, [ed], ind)], ind);
}

export interface Sealed {
  parts: CmsParts;
  cek: Uint8Array;
  iv: Uint8Array;
}

/**
 * Seals `plaintext` to `publicKey` as KMS would. `padded` supplies the exact
 * bytes to encrypt (no padding added), for bad-padding tests; `cek` overrides
 * the content-encryption key (e.g. a 16-byte one).
 */
export function seal(plaintext: Uint8Array, publicKey: KeyObject, opts: { padded?: Uint8Array; cek?: Uint8Array } = {}): Sealed {
  const cek = opts.cek ?? new Uint8Array(randomBytes(32));
  const iv = new Uint8Array(randomBytes(16));
  const encryptedKey = new Uint8Array(publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, cek));
  const aesKey = cek.length === 32 ? cek : new Uint8Array(32);
  const cipher = createCipheriv("aes-256-cbc", aesKey, iv);
  if (opts.padded) cipher.setAutoPadding(false);
  const encryptedContent = new Uint8Array(Buffer.concat([cipher.update(opts.padded ?? plaintext), cipher.final()]));
  return {
    cek,
    iv,
    parts: {
      outerContentType: OID.envelopedData,
      envelopedVersion: 2,
      ktriVersion: 2,
      rid: prim(0x80, new Uint8Array(randomBytes(32))),
      keyEncryptionAlgorithm: algId(OID.rsaesOaep, oaepParams()),
      encryptedKey,
      innerContentType: OID.data,
      contentEncryptionAlgorithm: algId(OID.aes256Cbc, octets(iv)),
      encryptedContent,
    },
  };
}
