// `npm run bench`: every benchmark, one after another. Prints numbers; the
// targets are recorded in docs/BENCHMARKS.md, not asserted here.
import { main as attestationVerify } from "./attestation-verify.js";
import { main as client } from "./client.js";
import { main as gateway } from "./gateway.js";
import { main as relay } from "./relay.js";

const only = process.argv[2];
const benches: Record<string, () => Promise<void>> = {
  "attestation-verify": attestationVerify,
  gateway,
  client,
  relay,
};
for (const [name, run] of Object.entries(benches)) {
  if (only && only !== name) continue;
  await run();
}
