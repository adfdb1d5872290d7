import type { ProviderModule } from "../module.js";
import { createBedrockAdapter } from "./bedrock-adapter.js";

/** Amazon Bedrock's Converse API: chat, so every translated surface reaches it. */
export const bedrockModule: ProviderModule = {
  kinds: ["bedrock"],
  create(config, _secrets, env) {
    if (!config.bedrock) throw new TypeError(`provider "${config.name}": a bedrock provider needs its region and pinned identity`);
    return createBedrockAdapter({ name: config.name, baseUrl: config.baseUrl, pins: config.bedrock, credentials: env?.awsCredentials });
  },
};
