import { decode, Decoder } from "cbor-x";
import { readFileSync, readdirSync } from "node:fs";
import { test, expect } from "vitest";
import { encodeDocumentPayload, encodeCoseSign1 } from "../../../attestation/dev/encode-document.js";
const dir = "/work/shared/fixtures/nitro/";
test("reencode", () => {
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".cbor"))) {
    const raw = new Uint8Array(readFileSync(dir + f));
    const cose = decode(raw);
    const p = new Decoder({ mapsAsObjects: false }).decode(cose[2]);
    const pcrs = p.get("pcrs");
    const doc = { moduleId: p.get("module_id"), digest: p.get("digest"), timestamp: Number(p.get("timestamp")), pcrs,
      certificate: p.get("certificate"), cabundle: p.get("cabundle"), publicKey: p.get("public_key"), userData: p.get("user_data"), nonce: p.get("nonce") };
    const enc = encodeDocumentPayload(doc as any);
    const same = Buffer.compare(Buffer.from(enc), Buffer.from(cose[2])) === 0;
    const coseSame = Buffer.compare(Buffer.from(encodeCoseSign1(cose[0], cose[2], cose[3])), Buffer.from(raw)) === 0;
    console.log(f, same, coseSame, enc.length, cose[2].length);
  }
});
