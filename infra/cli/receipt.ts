import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { ClientError } from "../../attestation/client/errors.js";
import { verifySavedExchange, type SavedExchangeResult } from "../../attestation/client/offline.js";
import { MAX_DOCUMENT_BYTES } from "../../attestation/cose-sign1.js";
import { RECEIPT_PROFILE, RECEIPT_SSE_PREFIX, type ReceiptClaims } from "../../attestation/receipt.js";
import { parseAt } from "./attest.js";
import { EXIT, parseFlags, print, UsageError, type CliContext } from "./context.js";
import { decodeDocumentText, readInput } from "./input.js";
import { loadCliPolicy, manifestRejection, stepLines } from "./verify.js";

/**
 * `egw receipt verify --receipt <file> --request <file> --response <file>
 *                     --attestation <doc> [--at time] [--policy file] [--dev-root pem] [--json]`
 *
 * Offline: proves, from saved files only, that an attested enclave signed
 * this response to this request. --request and --response hold the exact
 * body bytes (for a stream: everything before the `: egw-receipt` block).
 * --receipt holds the raw COSE bytes, the base64url header value, or the
 * SSE block. The document is verified at --at (default: the time in the
 * receipt) against the AWS root or --dev-root, with measurements "any"
 * unless --policy names a manifest; its age is checked only with --policy.
 * --trust-policy names the trust policy's exact bytes as served at
 * /v1/attestation/policy: they must hash to the document's policy_sha256,
 * and a manifest whose trust section constrains anything needs them.
 * Exit 0 verified, 1 refused, 2 usage or unreadable file.
 */
const MAX_BODY_FILE = 1024 * 1024 * 1024;

async function readBodyFile(file: string, flag: string, ctx: CliContext): Promise<Uint8Array> {
  const full = path.resolve(ctx.cwd, file);
  try {
    const info = await stat(full);
    if (!info.isFile()) throw new UsageError(`--${flag} ${file}: not a regular file`);
    if (info.size > MAX_BODY_FILE) throw new UsageError(`--${flag} ${file}: over ${MAX_BODY_FILE} bytes`);
    return new Uint8Array(await readFile(full));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--${flag} ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** Raw COSE (starts 0x84 or 0xd2), or text: base64url / base64, optionally the `: egw-receipt ` SSE block. */
export function decodeReceiptFile(bytes: Uint8Array): Uint8Array {
  const first = bytes[0];
  if (first === 0x84 || first === 0xd2) return bytes;
  let text = Buffer.from(bytes).toString("latin1").trim();
  if (text.startsWith(RECEIPT_SSE_PREFIX)) text = text.slice(RECEIPT_SSE_PREFIX.length).trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text) || text.length > RECEIPT_PROFILE.maxBytes * 2) {
    throw new UsageError("--receipt must hold the raw receipt, its base64url (x-egw-receipt header value), or the ': egw-receipt' block");
  }
  return new Uint8Array(Buffer.from(text, /[+/=]/.test(text) ? "base64" : "base64url"));
}

/** What the receipt says about the upstream, as the enclave saw it; and whether the request body was read. */
export function provenanceLines(c: ReceiptClaims): string[] {
  const lines = [`  request body: ${c.bodyRead ? "read and hashed (req_sha256)" : "NOT read by the gateway (refused before reading; no request hash)"}`];
  if (!c.upstream) return [...lines, "  upstream: none answered"];
  const u = c.upstream;
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  // Provider-supplied text: the enclave strips control characters before
  // signing, but a terminal gets no escape sequence from a receipt either way.
  // eslint-disable-next-line no-control-regex
  const shown = (s: string) => s.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
  lines.push(`  upstream: ${shown(u.origin)}`);
  lines.push(`    TLS leaf SPKI sha256: ${u.tlsSpkiSha256 ? hex(u.tlsSpkiSha256) : "(none: local or plain-http upstream)"}`);
  lines.push(`    provider request id: ${u.requestId !== undefined ? shown(u.requestId) : "(none sent)"}`);
  lines.push(`    model reported: ${u.model !== undefined ? shown(u.model) : "(none)"}`);
  return lines;
}

export async function receiptCommand(args: string[], ctx: CliContext): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "verify") throw new UsageError(sub ? `unknown subcommand "receipt ${sub}"` : "receipt needs a subcommand: verify");
  const { values, positionals } = parseFlags(rest, {
    receipt: { type: "string" },
    request: { type: "string" },
    response: { type: "string" },
    attestation: { type: "string" },
    at: { type: "string" },
    policy: { type: "string" },
    "trust-policy": { type: "string" },
    "dev-root": { type: "string" },
    json: { type: "boolean" },
  });
  if (positionals.length > 0) throw new UsageError("receipt verify takes no positional arguments");
  for (const flag of ["receipt", "request", "response", "attestation"] as const) {
    if (values[flag] === undefined) throw new UsageError(`receipt verify needs --${flag} <file>`);
  }
  const at = values.at === undefined ? undefined : parseAt(values.at, ctx);
  // An audit with --at judges the manifest (its expiry) as of that instant,
  // like the document; without --at, as of now.
  let loaded: Awaited<ReturnType<typeof loadCliPolicy>>;
  try {
    loaded = await loadCliPolicy(values, at ? { ...ctx, now: () => at } : ctx);
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    print(ctx.stdout, manifestRejection(err, values, values.json, "egw receipt verify"));
    return EXIT.rejected;
  }
  const { resolved, source } = loaded;
  const receipt = decodeReceiptFile(await readBodyFile(values.receipt!, "receipt", ctx));
  const requestBody = await readBodyFile(values.request!, "request", ctx);
  const responseBody = await readBodyFile(values.response!, "response", ctx);
  const document = decodeDocumentText(await readInput(values.attestation!, ctx.stdin, ctx.cwd, MAX_DOCUMENT_BYTES)).bytes;
  const trustPolicy = values["trust-policy"] === undefined ? undefined : await readBodyFile(values["trust-policy"], "trust-policy", ctx);

  let result: SavedExchangeResult;
  try {
    result = await verifySavedExchange({
      receipt,
      requestBody,
      responseBody,
      document,
      policy: resolved,
      ...(trustPolicy && { trustPolicy }),
      ...(at && { at }),
      checkAge: values.policy !== undefined,
    });
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    if (values.json) print(ctx.stdout, JSON.stringify({ verified: false, policy: source, code: err.code, action: err.action, message: err.message, steps: err.steps }, null, 2));
    else print(ctx.stdout, [`egw receipt verify`, `  policy: ${source}`, ...stepLines(err.steps), `REFUSED ${err.code}`, `  ${err.message}`].join("\n"));
    return EXIT.rejected;
  }
  const c = result.claims;
  if (values.json) {
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    print(
      ctx.stdout,
      JSON.stringify(
        {
          verified: true,
          policy: source,
          at: result.at.toISOString(),
          receipt: {
            ...c,
            time: new Date(c.time).toISOString(),
            requestSha256: c.requestSha256 ? hex(c.requestSha256) : null,
            responseSha256: hex(c.responseSha256),
            upstream: c.upstream ? { ...c.upstream, tlsSpkiSha256: c.upstream.tlsSpkiSha256 ? hex(c.upstream.tlsSpkiSha256) : null } : null,
          },
          attestation: {
            moduleId: result.result.moduleId,
            timestamp: result.result.timestamp.toISOString(),
            root: result.result.root,
            measurement: result.measurement,
            configSha256: hex(result.configSha256),
          },
          steps: result.steps,
        },
        null,
        2,
      ),
    );
    return EXIT.ok;
  }
  print(
    ctx.stdout,
    [
      `egw receipt verify`,
      `  policy: ${source}`,
      ...stepLines(result.steps),
      `VERIFIED receipt ${c.id}: ${c.method} ${c.path} status ${c.status} from ${c.provider || "(no provider)"}, signed by enclave ${result.result.moduleId}` +
        (result.measurement === null ? " — measurements NOT checked (no --policy)" : `, measurement "${result.measurement}"`),
      ...provenanceLines(c),
      `  root ${result.result.root.name}${result.result.root.production ? " (production)" : " — DEVELOPMENT root, not valid in production"}; document verified at ${result.at.toISOString()}`,
    ].join("\n"),
  );
  return EXIT.ok;
}
