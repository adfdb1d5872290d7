import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { verify } from "node:crypto";
import { parseCertificate } from "../attestation/cert-parse.js";
import { ChainCache } from "../attestation/chain.js";
import { decodeCoseSign1, sigStructure } from "../attestation/cose-sign1.js";
import { parseDocumentPayload } from "../attestation/document.js";
import { verifyAttestation } from "../attestation/verify.js";
import { findRepoRoot } from "./repo-root.js";
import { fmtMs, summarize, timeAsync, type Summary } from "./stats.js";

/**
 * Attestation document verification time, three ways:
 *  - cold: nothing cached: four certificates parsed, five ES384 signatures;
 *  - warm: the verified intermediates cached (a new leaf, as from another
 *    enclave on the same host): the leaf link and the document signature;
 *  - hot:  the same enclave again (leaf cached too): the document signature.
 * Median over many
 * runs of each of the six real fixtures, each verified at its own timestamp.
 * Targets on the 2-core reference machine: cold ≤ 3 ms, warm ≤ 1.5 ms.
 */
export interface VerifyBench {
  cold: Summary;
  warm: Summary;
  hot: Summary;
  /** CPU time (all threads) per cold and per warm verification, in ms. */
  coldCpu: number;
  warmCpu: number;
  /** One ES384 verification on the main thread: the floor every link costs. */
  es384: Summary;
}

function cpuMs(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

export async function benchAttestationVerify(runs = 600): Promise<VerifyBench> {
  const dir = path.join(findRepoRoot(), "../shared/fixtures/nitro");
  const docs = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".cbor"))
    .map((f) => {
      const meta = JSON.parse(fs.readFileSync(path.join(dir, f.replace(/\.cbor$/, ".json")), "utf8"));
      return { bytes: new Uint8Array(fs.readFileSync(path.join(dir, f))), at: new Date(meta.decoded.timestamp_ms) };
    });
  const options = (at: Date, cache?: ChainCache) => ({ currentDate: at, expectedPcrs: "any" as const, allowDebug: true, cache });

  // Warm up the JIT and OpenSSL before measuring anything.
  for (let i = 0; i < 30; i++) for (const d of docs) await verifyAttestation(d.bytes, options(d.at));

  const cold: number[] = [];
  let cpu = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const d = docs[i % docs.length]!;
    cold.push(await timeAsync(() => verifyAttestation(d.bytes, options(d.at, new ChainCache()))));
  }
  const coldCpu = cpuMs(cpu) / runs;
  const cache = new ChainCache();
  for (const d of docs) await verifyAttestation(d.bytes, options(d.at, cache));
  const warm: number[] = [];
  cpu = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const d = docs[i % docs.length]!;
    cache.leaves.clear(); // intermediates cached, leaf not
    warm.push(await timeAsync(() => verifyAttestation(d.bytes, options(d.at, cache))));
  }
  const warmCpu = cpuMs(cpu) / runs;
  for (const d of docs) await verifyAttestation(d.bytes, options(d.at, cache));
  const hot: number[] = [];
  for (let i = 0; i < runs; i++) {
    const d = docs[i % docs.length]!;
    hot.push(await timeAsync(() => verifyAttestation(d.bytes, options(d.at, cache))));
  }

  const cose = decodeCoseSign1(docs[0]!.bytes);
  const leaf = parseCertificate(parseDocumentPayload(cose.payload).certificate);
  const toBeSigned = sigStructure(cose.protectedBytes, cose.payload);
  const es384: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    verify("sha384", toBeSigned, { key: leaf.publicKey, dsaEncoding: "ieee-p1363" }, cose.signature);
    es384.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return { cold: summarize(cold), warm: summarize(warm), hot: summarize(hot), coldCpu, warmCpu, es384: summarize(es384) };
}

export async function main(): Promise<void> {
  const { cold, warm, hot, coldCpu, warmCpu, es384 } = await benchAttestationVerify();
  console.log(
    `attestation verify  (${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, node ${process.version}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? "4 (default)"})`,
  );
  console.log(`  cold  median ${fmtMs(cold.median)}  p90 ${fmtMs(cold.p90)}  p99 ${fmtMs(cold.p99)}  min ${fmtMs(cold.min)}  runs ${cold.runs}  target ≤ 3 ms`);
  console.log(
    `  warm  median ${fmtMs(warm.median)}  p90 ${fmtMs(warm.p90)}  p99 ${fmtMs(warm.p99)}  min ${fmtMs(warm.min)}  runs ${warm.runs}  target ≤ 1.5 ms (intermediates cached)`,
  );
  console.log(`  hot   median ${fmtMs(hot.median)}  p90 ${fmtMs(hot.p90)}  p99 ${fmtMs(hot.p99)}  min ${fmtMs(hot.min)}  runs ${hot.runs}  (same enclave: leaf cached too)`);
  console.log(`  cpu per verification (all threads): cold ${fmtMs(coldCpu)}, warm ${fmtMs(warmCpu)}`);
  console.log(`  one ES384 verify (OpenSSL ${process.versions.openssl}, main thread): median ${fmtMs(es384.median)}; cold needs 5, warm 2, hot 1`);
}
