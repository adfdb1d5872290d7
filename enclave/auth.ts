import { createHash } from "node:crypto";
import type { HeaderReader } from "./http/request-view.js";
import { GatewayError } from "./errors.js";
import type { ClientConfig } from "./runtime-config.js";

/**
 * Client authentication. Tokens are configured as SHA-256 hashes only; the
 * presented token is hashed and looked up, so the configuration (which the
 * host sees) never holds a usable credential. Accepted as
 * `Authorization: Bearer <token>` everywhere, as `x-api-key` on the
 * Anthropic surface, where the Anthropic SDK sends it, and as
 * `x-goog-api-key` (or Google's `?key=` query parameter, passed in as
 * `queryKey`) on the Gemini surface, where @google/genai and @ai-sdk/google
 * send it.
 */
export class ClientDirectory {
  private readonly byHash: Map<string, ClientConfig>;

  constructor(clients: ClientConfig[]) {
    this.byHash = new Map(clients.map((c) => [c.tokenSha256, c]));
  }

  authenticate(headers: HeaderReader, surface: "openai" | "anthropic" | "gemini", queryKey?: string | null): ClientConfig {
    const token = extractToken(headers, surface, queryKey ?? null);
    if (token === undefined) throw new GatewayError("invalid_api_key", "Missing API key.");
    const client = this.byHash.get(createHash("sha256").update(token, "utf8").digest("hex"));
    if (!client) throw new GatewayError("invalid_api_key", "Invalid API key.");
    return client;
  }
}

const MAX_TOKEN_LENGTH = 512;

function extractToken(headers: HeaderReader, surface: "openai" | "anthropic" | "gemini", queryKey: string | null): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization !== null) {
    const match = /^Bearer[ ]+([^\s]+)\s*$/i.exec(authorization);
    if (match && match[1]!.length <= MAX_TOKEN_LENGTH) return match[1];
    return undefined;
  }
  if (surface === "anthropic") {
    const key = headers.get("x-api-key");
    if (key !== null && key.length > 0 && key.length <= MAX_TOKEN_LENGTH) return key.trim();
  }
  if (surface === "gemini") {
    const key = headers.get("x-goog-api-key") ?? queryKey;
    if (key !== null && key.length > 0 && key.length <= MAX_TOKEN_LENGTH) return key.trim();
  }
  return undefined;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
