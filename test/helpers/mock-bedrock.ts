import { createHash, createHmac, randomUUID } from "node:crypto";
import type http from "node:http";
import { EventStreamCodec, type MessageHeaders } from "@smithy/eventstream-codec";
import { SignatureV4 } from "@smithy/signature-v4";
import type { HttpRequest, SourceData } from "@smithy/types";
import { ScenarioQueue, startMockUpstream, type Reply, type StreamStep } from "./mock-upstream.js";

/**
 * A local stand-in for Amazon Bedrock Runtime and for STS, on 127.0.0.1,
 * speaking their wire formats:
 *
 * - `POST /model/{modelId}/converse` → Converse's JSON answer
 *   (`output.message.content`, `stopReason`, `usage`, `metrics`), with
 *   `x-amzn-requestid`.
 * - `POST /model/{modelId}/converse-stream` → `application/vnd.amazon.eventstream`:
 *   binary event-stream messages (prelude, headers `:event-type`,
 *   `:content-type`, `:message-type`, JSON payload, CRC32s) encoded with the
 *   codec the AWS SDK decodes with: messageStart, contentBlockStart (tool
 *   use), contentBlockDelta, contentBlockStop, messageStop, metadata. Each
 *   payload carries Bedrock's `p` padding field. A mid-stream exception is a
 *   message with `:message-type: exception` and `:exception-type`.
 * - Errors → the status with `x-amzn-errortype: <Name>:http://internal.amazon.com/coral/com.amazon.bedrock/`
 *   and `{"message": …}`, as Bedrock sends them.
 * - `POST /` with `Action=GetCallerIdentity` → STS's query-protocol XML
 *   answer for the configured identity.
 *
 * Every request's SigV4 signature is checked with the mock's credentials
 * (same access key, scope service `bedrock` or `sts`, region, and the
 * signature recomputed over what arrived: method, path, query, the signed
 * headers and the body's SHA-256). A bad signature is a 403
 * InvalidSignatureException / SignatureDoesNotMatch, as AWS answers; the
 * official @aws-sdk/client-bedrock-runtime client is pointed at this mock in
 * test/enclave/providers/bedrock/ to prove the format.
 */

export interface MockAwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface MockToolUse {
  toolUseId: string;
  name: string;
  input: Record<string, unknown>;
}

export interface MockBedrockScenario {
  /** Answer text; streamed word by word (a string) or one element per delta (an array). Default "Hello from mock Bedrock." */
  text?: string | string[];
  toolUses?: MockToolUse[];
  /** Default "end_turn", or "tool_use" with toolUses. */
  stopReason?: string;
  usage?: { inputTokens: number; outputTokens: number };
  /** An error answer instead: status, Bedrock's exception name and message. */
  error?: { status: number; type: string; message: string };
  /** Streamed: after this many events, an exception message (e.g. throttlingException) ends the stream. */
  streamException?: { afterEvents: number; type: string; message: string };
  /** Streamed: after this many events the connection is cut. */
  cutAfterEvents?: number;
}

export interface RecordedBedrockRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  rawBody: string;
  body: unknown;
  /** "converse", "converse-stream", "sts" or undefined. */
  operation: string | undefined;
  modelId: string | undefined;
  /** Whether the SigV4 signature verified. */
  signatureValid: boolean;
}

export interface MockBedrockOptions {
  credentials: MockAwsCredentials;
  region: string;
  /** Who STS says the credentials are. Default account 111122223333, role egw-bedrock. */
  identity?: { account: string; arn: string };
}

export interface MockBedrock {
  url: string;
  requests: RecordedBedrockRequest[];
  setScenario(scenario: MockBedrockScenario): void;
  enqueue(...scenarios: MockBedrockScenario[]): void;
  setIdentity(identity: { account: string; arn: string }): void;
  close(): Promise<void>;
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"),
  (text) => new Uint8Array(Buffer.from(text, "utf8")),
);

const PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/** One event-stream message as Bedrock frames it. */
export function bedrockEvent(eventType: string, payload: Record<string, unknown>, serial = 0): Uint8Array {
  // Bedrock pads every payload with a "p" field of varying length, so sizes do not reveal token lengths.
  return bedrockRawEvent(eventType, JSON.stringify({ ...payload, p: PAD.slice(0, 1 + ((serial * 7) % PAD.length)) }));
}

/** An event message whose payload is exactly `body` (for malformed payloads). */
export function bedrockRawEvent(eventType: string, body: string): Uint8Array {
  const headers: MessageHeaders = {
    ":event-type": { type: "string", value: eventType },
    ":content-type": { type: "string", value: "application/json" },
    ":message-type": { type: "string", value: "event" },
  };
  return codec.encode({ headers, body: new Uint8Array(Buffer.from(body, "utf8")) });
}

export function bedrockException(exceptionType: string, message: string): Uint8Array {
  const headers: MessageHeaders = {
    ":exception-type": { type: "string", value: exceptionType },
    ":content-type": { type: "string", value: "application/json" },
    ":message-type": { type: "string", value: "exception" },
  };
  return codec.encode({ headers, body: new Uint8Array(Buffer.from(JSON.stringify({ message }), "utf8")) });
}

class Sha256 {
  private hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash("sha256") : createHmac("sha256", typeof secret === "string" ? secret : Buffer.from(secret as Uint8Array));
  }
  update(data: SourceData): void {
    this.hash.update(typeof data === "string" ? data : Buffer.from(data as Uint8Array));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
}

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

/** Recomputes the request's SigV4 signature with `credentials`; true when it matches what was sent. */
export async function verifySigV4(
  request: { method: string; path: string; headers: http.IncomingHttpHeaders; rawBody: Buffer },
  credentials: MockAwsCredentials,
  region: string,
  service: string,
): Promise<boolean> {
  const auth = request.headers.authorization;
  const m = typeof auth === "string" ? AUTH.exec(auth) : null;
  if (!m || m[1] !== credentials.accessKeyId || m[3] !== region || m[4] !== service) return false;
  const amzDate = request.headers["x-amz-date"];
  if (typeof amzDate !== "string" || !amzDate.startsWith(m[2]!)) return false;
  if (credentials.sessionToken !== undefined && request.headers["x-amz-security-token"] !== credentials.sessionToken) return false;
  const declared = request.headers["x-amz-content-sha256"];
  if (declared !== undefined && declared !== createHash("sha256").update(request.rawBody).digest("hex")) return false;
  const signed = m[5]!.split(";");
  const headers: Record<string, string> = {};
  for (const name of signed) {
    if (name === "x-amz-date" || name === "x-amz-security-token") continue;
    const value = request.headers[name];
    if (typeof value !== "string") return false;
    headers[name] = value;
  }
  const url = new URL(request.path, "http://mock");
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`);
  const signer = new SignatureV4({ service, region, credentials, sha256: Sha256, applyChecksum: signed.includes("x-amz-content-sha256") });
  const toSign: HttpRequest = { method: request.method, protocol: "http:", hostname: "mock", path: url.pathname, query, headers, body: request.rawBody.toString("utf8") };
  const resigned = await signer.sign(toSign, { signingDate: date });
  return resigned.headers.authorization === auth;
}

const JSON_HEADERS = { "content-type": "application/json" };

function errorReply(status: number, type: string, message: string): Reply {
  return {
    status,
    headers: { ...JSON_HEADERS, "x-amzn-requestid": randomUUID(), "x-amzn-errortype": `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/` },
    body: JSON.stringify({ message }),
  };
}

function stsIdentityXml(identity: { account: string; arn: string }): string {
  const userId = `AROA${identity.account.slice(0, 8)}EXAMPLE:${identity.arn.split("/").pop() ?? "session"}`;
  return (
    `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n  <GetCallerIdentityResult>\n    <Arn>${identity.arn}</Arn>\n` +
    `    <UserId>${userId}</UserId>\n    <Account>${identity.account}</Account>\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n` +
    `    <RequestId>${randomUUID()}</RequestId>\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n`
  );
}

function words(text: string | string[]): string[] {
  if (Array.isArray(text)) return text;
  return text.split(/(?<= )/);
}

export async function startMockBedrock(options: MockBedrockOptions): Promise<MockBedrock> {
  const requests: RecordedBedrockRequest[] = [];
  const scenarios = new ScenarioQueue<MockBedrockScenario, RecordedBedrockRequest>({}, () => ({}));
  let identity = options.identity ?? { account: "111122223333", arn: "arn:aws:sts::111122223333:assumed-role/egw-bedrock/i-0123456789abcdef0" };

  const upstream = await startMockUpstream({
    maxBodyBytes: 20 * 1024 * 1024,
    tooLarge: () => errorReply(413, "ValidationException", "Input is too long for requested model."),
    internalError: () => errorReply(500, "InternalServerException", "The server encountered an internal error."),
    async respond({ request }) {
      const url = request.url;
      const route = /^\/model\/([^/]+)\/(converse|converse-stream)$/.exec(url.pathname);
      const sts = request.method === "POST" && url.pathname === "/" && /(?:^|&)Action=GetCallerIdentity(?:&|$)/.test(request.rawBody.toString("utf8"));
      const service = sts ? "sts" : "bedrock";
      const signatureValid = await verifySigV4(request, options.credentials, options.region, service);
      const recorded: RecordedBedrockRequest = {
        method: request.method,
        path: request.path,
        headers: request.headers,
        rawBody: request.rawBody.toString("utf8"),
        body: request.body,
        operation: sts ? "sts" : route?.[2],
        modelId: route ? decodeURIComponent(route[1]!) : undefined,
        signatureValid,
      };
      requests.push(recorded);
      if (sts) {
        if (!signatureValid) {
          return {
            status: 403,
            headers: { "content-type": "text/xml" },
            body: `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
          };
        }
        return { status: 200, headers: { "content-type": "text/xml", "x-amzn-requestid": randomUUID() }, body: stsIdentityXml(identity) };
      }
      if (!route || request.method !== "POST") return errorReply(404, "UnknownOperationException", "Unknown operation");
      if (!signatureValid) {
        return errorReply(
          403,
          "InvalidSignatureException",
          "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
        );
      }
      if (request.body === undefined) return errorReply(400, "ValidationException", "Malformed input request, please reformat your input and try again.");
      const scenario = scenarios.next(recorded);
      if (scenario.error) return errorReply(scenario.error.status, scenario.error.type, scenario.error.message);
      const text = scenario.text ?? "Hello from mock Bedrock.";
      const toolUses = scenario.toolUses ?? [];
      const stopReason = scenario.stopReason ?? (toolUses.length > 0 ? "tool_use" : "end_turn");
      const parts = words(text);
      const usage = scenario.usage ?? { inputTokens: 7, outputTokens: parts.length };
      const tokenUsage = { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.inputTokens + usage.outputTokens };
      if (route[2] === "converse") {
        const content: unknown[] = [];
        if (parts.join("") !== "") content.push({ text: parts.join("") });
        for (const t of toolUses) content.push({ toolUse: t });
        return {
          status: 200,
          headers: { ...JSON_HEADERS, "x-amzn-requestid": randomUUID() },
          body: JSON.stringify({ metrics: { latencyMs: 321 }, output: { message: { content, role: "assistant" } }, stopReason, usage: tokenUsage }),
        };
      }
      const events: Uint8Array[] = [];
      let n = 0;
      events.push(bedrockEvent("messageStart", { role: "assistant" }, n++));
      let block = 0;
      if (parts.join("") !== "") {
        for (const w of parts) events.push(bedrockEvent("contentBlockDelta", { contentBlockIndex: block, delta: { text: w } }, n++));
        events.push(bedrockEvent("contentBlockStop", { contentBlockIndex: block }, n++));
        block++;
      }
      for (const t of toolUses) {
        events.push(bedrockEvent("contentBlockStart", { contentBlockIndex: block, start: { toolUse: { toolUseId: t.toolUseId, name: t.name } } }, n++));
        const input = JSON.stringify(t.input);
        const half = Math.ceil(input.length / 2);
        for (const piece of [input.slice(0, half), input.slice(half)]) {
          if (piece !== "") events.push(bedrockEvent("contentBlockDelta", { contentBlockIndex: block, delta: { toolUse: { input: piece } } }, n++));
        }
        events.push(bedrockEvent("contentBlockStop", { contentBlockIndex: block }, n++));
        block++;
      }
      events.push(bedrockEvent("messageStop", { stopReason }, n++));
      events.push(bedrockEvent("metadata", { usage: tokenUsage, metrics: { latencyMs: 321 } }, n++));
      const steps: StreamStep[] = [];
      for (const [i, e] of events.entries()) {
        if (scenario.streamException && i === scenario.streamException.afterEvents) {
          steps.push({ write: bedrockException(scenario.streamException.type, scenario.streamException.message) });
          break;
        }
        if (scenario.cutAfterEvents !== undefined && i === scenario.cutAfterEvents) {
          steps.push({ cut: true });
          break;
        }
        steps.push({ write: e });
      }
      return { status: 200, headers: { "content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": randomUUID() }, stream: steps };
    },
  });

  return {
    url: upstream.origin,
    requests,
    setScenario: (scenario) => {
      scenarios.replaceQueue([]);
      scenarios.setDefault(scenario);
    },
    enqueue: (...more) => scenarios.enqueue(...more),
    setIdentity: (next) => {
      identity = next;
    },
    close: () => upstream.close(),
  };
}
