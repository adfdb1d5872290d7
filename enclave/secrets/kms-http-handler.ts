// Types only (from the SDK's own dependency): the SDK accepts any object of this shape.
import type { HttpHandlerOptions, HttpRequest, HttpResponse } from "@smithy/types";
import type { UpstreamFetch } from "../http/upstream-response.js";

/**
 * The AWS SDK's transport for KMS calls, over the enclave's egress fetch:
 * the same allowlist and, on Nitro, the same CONNECT tunnel through the
 * host. TLS to kms.<region>.amazonaws.com runs end to end from inside the
 * enclave; the host sees a CONNECT line and ciphertext, nothing else.
 * KMS answers are small, so the body is read whole (bounded).
 */
const MAX_KMS_RESPONSE = 256 * 1024;

export class EgressHttpHandler {
  readonly metadata = { handlerProtocol: "http/1.1" };

  constructor(
    private readonly fetch: UpstreamFetch,
    private readonly timeoutMs: number,
  ) {}

  async handle(request: HttpRequest, options?: HttpHandlerOptions): Promise<{ response: HttpResponse }> {
    const query = Object.entries(request.query ?? {})
      .flatMap(([k, v]): string[][] => (Array.isArray(v) ? v.map((x) => [k, String(x)]) : v === null || v === undefined ? [[k]] : [[k, String(v)]]))
      .map((pair) => pair.map((p) => encodeURIComponent(String(p))).join("="))
      .join("&");
    const port = request.port ? `:${request.port}` : "";
    const url = `${request.protocol}//${request.hostname}${port}${request.path}${query ? `?${query}` : ""}`;
    const signal = options?.abortSignal ? AbortSignal.any([options.abortSignal as AbortSignal, AbortSignal.timeout(this.timeoutMs)]) : AbortSignal.timeout(this.timeoutMs);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(request.headers)) {
      // The fetch layer sets these itself.
      if (k.toLowerCase() !== "host" && k.toLowerCase() !== "content-length") headers[k] = v;
    }
    const body = request.body as string | Uint8Array | undefined;
    const res = await this.fetch(url, { method: request.method, headers, ...(body !== undefined && { body }), signal });
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (res.body) {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.byteLength;
        if (total > MAX_KMS_RESPONSE) throw new Error("KMS response larger than 256 KiB");
        chunks.push(chunk);
      }
    }
    const responseHeaders: Record<string, string> = {};
    res.headers.forEach((value, key) => {
      responseHeaders[key] = value;
    });
    const response: HttpResponse = { statusCode: res.status, headers: responseHeaders, body: new Uint8Array(Buffer.concat(chunks)) };
    return { response };
  }

  updateHttpClientConfig(): void {}

  httpHandlerConfigs(): Record<string, never> {
    return {};
  }

  destroy(): void {}
}
