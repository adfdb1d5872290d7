import { startMockOpenAI } from "../test/helpers/mock-openai.js";

/**
 * The benchmark's upstream as its own process, as a real provider is: the
 * load generator's direct calls then cross a process boundary too, like the
 * gateway's. (With the mock inside the load generator, a direct call never
 * wakes another process, and on this VM a cross-process wake-up alone costs
 * ~0.2 ms per round trip: see the relay benchmark.)
 *
 *   node dist/bench/mock-server.js   → prints {"url": "http://127.0.0.1:<port>"}, serves until killed
 */
const mock = await startMockOpenAI({ record: false, scenario: { content: "one two three four five six seven eight" } });
console.log(JSON.stringify({ url: mock.url }));
process.once("SIGTERM", () => {
  void mock.close().then(() => process.exit(0));
});
