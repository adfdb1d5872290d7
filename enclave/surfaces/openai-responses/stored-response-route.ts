import { GatewayError } from "../../errors.js";
import type { Exchange } from "../../http/exchange.js";
import type { ProviderAdapter } from "../../providers/types.js";
import { clientMayUse, type Route, type Router } from "../../router.js";
import type { ClientConfig, RuntimeConfig } from "../../runtime-config.js";
import { routeRequest } from "../route-request.js";

/**
 * Which provider a stored-response call (GET/DELETE /v1/responses/{id},
 * GET …/input_items) goes to. A response id names no model, so:
 *
 * 1. `?model=<name>` (any model name the client may use) picks that
 *    model's provider, which must speak Responses natively (else 400
 *    unsupported_parameter: the gateway stores nothing for it);
 * 2. without it, the one provider that speaks Responses natively among those
 *    the client's token may reach (explicit routes it may use, or prefix
 *    routing it may use) is taken;
 * 3. none: 400 unsupported_parameter (nothing is stored anywhere this token
 *    reaches); more than one: 400 invalid_request asking for `?model=`,
 *    never a guess, since a guess would send the id (and the client's
 *    OpenAI headers) to a provider the client did not mean.
 */
export function storedResponseRoute(
  router: Router,
  config: Pick<RuntimeConfig, "models" | "prefixRouting">,
  adapters: ReadonlyMap<string, ProviderAdapter>,
  ex: Exchange,
  client: ClientConfig,
  model: string | null,
): Route {
  if (model !== null) {
    const route = routeRequest(router, ex, client, model)[0]!;
    if (!route.adapter.nativeResponses) throw notStored("model");
    return route;
  }
  const candidates = new Map<string, Route>();
  for (const [exposed, r] of Object.entries(config.models)) {
    const adapter = adapters.get(r.provider);
    if (!adapter?.nativeResponses || candidates.has(adapter.info.name) || !clientMayUse(client, exposed)) continue;
    candidates.set(adapter.info.name, router.resolve(exposed));
  }
  if (config.prefixRouting) {
    for (const adapter of adapters.values()) {
      if (!adapter.nativeResponses || candidates.has(adapter.info.name) || !clientMayUse(client, `${adapter.info.name}/`)) continue;
      const label = `${adapter.info.name}/*`;
      candidates.set(adapter.info.name, { exposed: label, label, adapter, upstreamModel: "", fallbacks: [] });
    }
  }
  if (candidates.size === 0) throw notStored("response_id");
  if (candidates.size > 1) {
    throw new GatewayError("invalid_request", "More than one provider this API key reaches stores responses; name the model the response came from with `?model=`.", {
      param: "model",
    });
  }
  const route = [...candidates.values()][0]!;
  ex.routed(route.exposed, route);
  return route;
}

function notStored(param: string): GatewayError {
  return new GatewayError(
    "unsupported_parameter",
    "Stored responses exist only at OpenAI Responses providers, and none serves this request: the gateway itself is stateless and stores nothing.",
    { param },
  );
}

/** A response id as OpenAI issues them (`resp_…`), bounded; anything else is refused before it reaches a URL. */
export function checkResponseId(id: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(id)) throw new GatewayError("invalid_request", "The response id must be 1 to 128 letters, digits, '_' or '-'.", { param: "response_id" });
  return id;
}

const MAX_QUERY_CHARS = 2048;

/**
 * The query passed on to the provider: the client's own (include[], limit,
 * order, after, before, starting_after …) without the gateway's `model`.
 * `stream=true` on retrieve is refused: the gateway answers these calls as
 * one JSON body.
 */
export function forwardedQuery(url: string): string {
  const params = new URL(url).searchParams;
  params.delete("model");
  const stream = params.get("stream");
  if (stream !== null && stream !== "false") throw new GatewayError("invalid_request", "Streaming a stored response is not supported through the gateway.", { param: "stream" });
  const query = params.toString();
  if (query.length > MAX_QUERY_CHARS) throw new GatewayError("invalid_request", `The query string is longer than ${MAX_QUERY_CHARS} characters.`);
  return query === "" ? "" : `?${query}`;
}
