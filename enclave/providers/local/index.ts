import type { ProviderModule } from "../module.js";
import { createLocalAdapter } from "./local-adapter.js";

/** The built-in deterministic responder (not an LLM): no upstream, no key. */
export const localModule: ProviderModule = {
  kinds: ["local"],
  create: (config) => createLocalAdapter({ name: config.name }),
};
