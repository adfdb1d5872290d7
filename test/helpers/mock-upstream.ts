import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * The one mock upstream on 127.0.0.1 under every provider mock. It owns
 * what the three used to rebuild each: the server and its sockets, reading
 * (and bounding) the request body, the per-request scenario queue, the
 * stream pump with its faults (delays, stalls held until released, a cut
 * connection), the open-connection and open-stream counts, and close().
 *
 * A provider's wire encoder (mock-openai.ts, mock-anthropic.ts,
 * mock-gemini.ts) decides everything the provider would: routes, status,
 * headers and bytes. For a stream it hands back a script of steps, each
 * event's bytes already framed as that provider frames them, with the
 * scenario's faults placed where the provider mock wants them; the pump
 * here only plays it.
 */

export interface UpstreamRequest {
  /** 0-based arrival order. */
  index: number;
  method: string;
  /** Path with query, as received. */
  path: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  /** The body exactly as received. */
  rawBody: Buffer;
  /** `rawBody` parsed as JSON, or undefined (empty or not JSON). */
  body: unknown;
}

export type StreamStep =
  /** Writes one framed event, then waits until it is flushed to the socket; `then` runs after. */
  | { write: string | Buffer; then?: () => void }
  /** Waits (ends early if the client goes away). */
  | { delay: number }
  /** Holds the stream until release(), `until` settles, or the client goes away. */
  | { stall: true; until?: Promise<unknown> }
  /**
   * Drops the connection with a TCP RST once everything written is flushed:
   * no terminator (no chunked end, no [DONE]), a provider dying mid-answer.
   */
  | { cut: true }
  /** Ends the response with these last bytes. */
  | { end: string };

export type Reply = { status: number; headers: http.OutgoingHttpHeaders; body: string | Buffer } | { status: number; headers: http.OutgoingHttpHeaders; stream: StreamStep[] };

export interface Exchange {
  request: UpstreamRequest;
  /** True once the client went away or the response ended. */
  gone(): boolean;
  /** A wait that ends early when the client goes away. */
  wait(ms: number): Promise<void>;
  /** Settles when the response has finished or the connection went away. */
  closed: Promise<void>;
}

export interface MockUpstreamOptions {
  /** Decides the answer; undefined sends nothing (the client is gone). */
  respond(exchange: Exchange): Reply | undefined | Promise<Reply | undefined>;
  /** Request bodies larger than this get `tooLarge()`; default unbounded. */
  maxBodyBytes?: number;
  tooLarge?: () => Reply;
  /** What a throwing `respond` turns into before the headers (after them the connection is destroyed); default a bare 500. */
  internalError?: () => Reply;
  /** TCP_NODELAY on accepted sockets (OpenAI's mock sets it, for benchmarks). */
  noDelay?: boolean;
}

export interface MockUpstream {
  /** http://127.0.0.1:<port> */
  origin: string;
  /** Resumes every held stall. */
  release(): void;
  /** Resolves when a stream reaches a stall (at once if one is already held). */
  waitForStall(): Promise<void>;
  openConnections(): number;
  /** Streamed answers whose connection is still open. */
  activeStreams(): number;
  /** Releases stalls, destroys every connection, stops listening. */
  close(): Promise<void>;
}

export async function startMockUpstream(options: MockUpstreamOptions): Promise<MockUpstream> {
  const maxBodyBytes = options.maxBodyBytes ?? Infinity;
  const sockets = new Set<Socket>();
  let arrivals = 0;
  let streaming = 0;
  let stalls: (() => void)[] = [];
  let stallWaiters: (() => void)[] = [];

  const server = http.createServer((req, res) => {
    serve(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) send(res, (options.internalError ?? (() => ({ status: 500, headers: {}, body: "" })))());
      else res.destroy();
    });
  });
  server.on("connection", (socket: Socket) => {
    if (options.noDelay) socket.setNoDelay(true);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > maxBodyBytes) {
        send(res, options.tooLarge ? options.tooLarge() : { status: 413, headers: {}, body: "" });
        return;
      }
      chunks.push(chunk);
    }
    const rawBody = Buffer.concat(chunks);
    let body: unknown;
    if (rawBody.length > 0) {
      try {
        body = JSON.parse(rawBody.toString("utf8"));
      } catch {
        body = undefined;
      }
    }
    const path = req.url ?? "";
    const request: UpstreamRequest = { index: arrivals++, method: req.method ?? "", path, url: new URL(path || "/", "http://mock"), headers: req.headers, rawBody, body };
    let closed = false;
    const onClose = new Promise<void>((resolve) =>
      res.once("close", () => {
        closed = true;
        resolve();
      }),
    );
    const gone = () => closed || res.destroyed;
    const wait = (ms: number) => Promise.race([new Promise<void>((resolve) => setTimeout(resolve, ms).unref()), onClose]);
    const reply = await options.respond({ request, gone, wait, closed: onClose });
    if (reply === undefined || gone()) return;
    if ("body" in reply) return send(res, reply);
    await pump(res, reply, gone, wait, onClose);
  }

  function send(res: http.ServerResponse, reply: Reply): void {
    if (res.destroyed) return;
    res.writeHead(reply.status, reply.headers);
    res.end("body" in reply ? reply.body : "");
  }

  async function pump(
    res: http.ServerResponse,
    reply: Extract<Reply, { stream: StreamStep[] }>,
    gone: () => boolean,
    wait: (ms: number) => Promise<void>,
    onClose: Promise<void>,
  ): Promise<void> {
    res.writeHead(reply.status, reply.headers);
    res.flushHeaders();
    streaming++;
    res.once("close", () => streaming--);
    for (const step of reply.stream) {
      if (gone()) return;
      if ("write" in step) {
        await Promise.race([new Promise<void>((resolve) => res.write(step.write, () => resolve())), onClose]);
        step.then?.();
      } else if ("delay" in step) {
        await wait(step.delay);
      } else if ("stall" in step) {
        await Promise.race([
          stall(),
          onClose,
          ...(step.until
            ? [
                step.until.then(
                  () => {},
                  () => {},
                ),
              ]
            : []),
        ]);
      } else if ("cut" in step) {
        const socket = res.socket;
        if (socket && !socket.destroyed) socket.resetAndDestroy();
        return;
      } else {
        res.end(step.end);
        return;
      }
    }
    if (!gone()) res.end();
  }

  function stall(): Promise<void> {
    return new Promise<void>((resolve) => {
      stalls.push(resolve);
      const waiters = stallWaiters;
      stallWaiters = [];
      for (const w of waiters) w();
    });
  }

  function release(): void {
    const held = stalls;
    stalls = [];
    for (const resolve of held) resolve();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    release,
    waitForStall() {
      if (stalls.length > 0) return Promise.resolve();
      return new Promise<void>((resolve) => stallWaiters.push(resolve));
    },
    openConnections: () => sockets.size,
    activeStreams: () => streaming,
    close() {
      release();
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}

/**
 * Per-request scenarios: one-shot ones queued first, then a default (a
 * value, or a function of the request). Each provider mock keeps its own
 * spelling of setScenario/enqueue on top of this.
 */
export class ScenarioQueue<S, R> {
  #queued: S[] = [];
  #fallback: S | ((request: R) => S | undefined) | undefined;
  constructor(
    fallback: S | ((request: R) => S | undefined) | undefined,
    readonly empty: () => S,
  ) {
    this.#fallback = fallback;
  }
  setDefault(fallback: S | ((request: R) => S | undefined) | undefined): void {
    this.#fallback = fallback;
  }
  enqueue(...scenarios: S[]): void {
    this.#queued.push(...scenarios);
  }
  /** Replaces the queue (a list used in order, then the default). */
  replaceQueue(scenarios: S[]): void {
    this.#queued = [...scenarios];
  }
  clear(): void {
    this.#queued.length = 0;
    this.#fallback = undefined;
  }
  next(request: R): S {
    const queued = this.#queued.shift();
    if (queued !== undefined) return queued;
    const fallback = this.#fallback;
    return (typeof fallback === "function" ? (fallback as (request: R) => S | undefined)(request) : fallback) ?? this.empty();
  }
}
