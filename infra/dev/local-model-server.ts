import type http from "node:http";
import { createHash } from "node:crypto";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { createIdentity } from "../../enclave/identity.js";
import { createLocalAdapter } from "../../enclave/providers/local/local-adapter.js";
import type { ChatRequest, EmbeddingsRequest, ImagesRequest, ProviderCallContext } from "../../enclave/providers/types.js";

/**
 * The built-in local model as its own process, speaking the OpenAI wire
 * format (`data: …` chunks, `data: [DONE]`), so `egw dev` runs the same
 * process split as production: the enclave reaches it like any provider,
 * through the host's egress proxy. It serves HTTPS with a certificate made
 * at start (the enclave is told to trust it), so even in development the
 * host's egress proxy carries only TLS, exactly as with a real provider.
 * It is NOT a language model: see enclave/providers/local/local-adapter.ts for exactly
 * what it answers.
 */
const MAX_BODY = 10 * 1024 * 1024;

export interface LocalModelServer {
  port: number;
  /** The server's self-signed certificate, to trust for this upstream only. */
  certPem: string;
  close(): Promise<void>;
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": String(body.length) });
  res.end(body);
}

export async function startLocalModelServer(options: {
  host: string;
  port: number;
  now?: () => Date;
  /** When set, requests must carry `Authorization: Bearer <key>` whose SHA-256 is this (hex). */
  requireKeySha256?: string;
}): Promise<LocalModelServer> {
  const adapter = createLocalAdapter({ name: "local" });
  const now = options.now ?? (() => new Date());
  const identity = await createIdentity({ now, hostnames: ["localhost"] });
  const server = https.createServer({ key: identity.tls.keyPem, cert: identity.tls.certPem }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        sendJson(res, 413, { error: { message: "body too large", type: "invalid_request_error", param: null, code: null } });
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      void handle(req, res, Buffer.concat(chunks)).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { error: { message: "local model failed", type: "server_error", param: null, code: null } });
        else res.destroy();
      });
    });
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    const path = (req.url ?? "").split("?")[0];
    if (options.requireKeySha256 !== undefined) {
      const presented = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1] ?? "";
      if (createHash("sha256").update(presented).digest("hex") !== options.requireKeySha256) {
        return sendJson(res, 401, { error: { message: "invalid api key", type: "invalid_request_error", param: null, code: "invalid_api_key" } });
      }
    }
    if (req.method === "GET" && path === "/v1/models") return sendJson(res, 200, { object: "list", data: [{ id: "local", object: "model", created: 0, owned_by: "local" }] });
    if (req.method !== "POST") return sendJson(res, 405, { error: { message: "method not allowed", type: "invalid_request_error", param: null, code: null } });
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
    } catch {
      return sendJson(res, 400, { error: { message: "body is not JSON", type: "invalid_request_error", param: null, code: null } });
    }
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    const ctx: ProviderCallContext = { fetch, signal: controller.signal, upstreamModel: String(body.model ?? "local"), now };
    try {
      if (path === "/v1/chat/completions") {
        if (body.stream === true) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          for await (const chunk of adapter.chatStream(body as unknown as ChatRequest, ctx)) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
          res.end("data: [DONE]\n\n");
          return;
        }
        return sendJson(res, 200, await adapter.chat(body as unknown as ChatRequest, ctx));
      }
      if (path === "/v1/embeddings") return sendJson(res, 200, await adapter.embeddings!(body as unknown as EmbeddingsRequest, ctx));
      if (path === "/v1/images/generations") return sendJson(res, 200, await adapter.images!(body as unknown as ImagesRequest, ctx));
      return sendJson(res, 404, { error: { message: "unknown path", type: "invalid_request_error", param: null, code: null } });
    } catch (err) {
      const status = (err as { status?: number }).status ?? 400;
      if (!res.headersSent)
        return sendJson(res, status, {
          error: { message: "request refused by the local model", type: "invalid_request_error", param: null, code: (err as { code?: string }).code ?? null },
        });
      res.destroy();
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    certPem: identity.tls.certPem,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
