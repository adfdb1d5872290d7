import { Readable } from "node:stream";

/**
 * Upstream responses keep undici's Node Readable beside their WHATWG body.
 * Wrapping a Node stream in a ReadableStream and reading it through a
 * reader costs about 25 µs per small response on the benchmark machine,
 * against 4 µs for the Node stream itself: a real share of the gateway's
 * per-request budget. So the provider readers (JSON bodies, SSE) take the
 * Node stream when it is there, and the WHATWG `body` is made only on first
 * use, for any other reader. Whichever is taken first owns the stream.
 */
interface BodyState {
  node: Readable;
  web: ReadableStream<Uint8Array> | undefined;
  nodeTaken: boolean;
}

const states = new WeakMap<Response, BodyState>();

export function lazyBodyResponse(node: Readable | null, init: { status: number; headers: Headers }): Response {
  const response = new Response(null, init);
  if (!node) return response;
  const state: BodyState = { node, web: undefined, nodeTaken: false };
  states.set(response, state);
  const webBody = (): ReadableStream<Uint8Array> | null => {
    if (state.nodeTaken) return null;
    return (state.web ??= Readable.toWeb(node) as ReadableStream<Uint8Array>);
  };
  const consume = () => new Response(webBody(), init);
  Object.defineProperties(response, {
    body: { get: webBody },
    bodyUsed: { get: () => state.nodeTaken || (state.web !== undefined && state.web.locked) },
    arrayBuffer: { value: () => consume().arrayBuffer() },
    text: { value: () => consume().text() },
    json: { value: () => consume().json() },
  });
  return response;
}

/** Takes the Node stream under an upstream response, unless its WHATWG body already exists. */
export function takeNodeBody(response: Response): Readable | undefined {
  const state = states.get(response);
  if (!state || state.web !== undefined || state.nodeTaken) return undefined;
  state.nodeTaken = true;
  return state.node;
}

/** Either kind of upstream body, for readers that accept both. */
export type UpstreamBody = ReadableStream<Uint8Array> | Readable;

export function upstreamBody(response: Response): UpstreamBody | null {
  return takeNodeBody(response) ?? response.body;
}
