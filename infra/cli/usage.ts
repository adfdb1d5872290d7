/**
 * Help, one entry per command (COMMAND_HELP below), kept apart from the
 * commands so printing help loads no command code. `egw help <command>` and
 * `egw <command> --help` print one entry (commandHelp); `egw help` prints
 * the overview, one line per command (overviewHelp). Each entry's text
 * names every flag its command parses: test/infra/cli/help.test.ts reads
 * the flags from the parsers themselves and checks.
 */

export const ATTEST_USAGE = `Usage:
  egw attest verify <file|-> [--at <ISO time>] [--root <pem>] [--pcr <i>=<hex>]…
                    [--nonce <hex>] [--user-data <hex>] [--public-key <hex>]
                    [--max-age <seconds>] [--allow-debug] [--json]
  egw attest issue --dev [--nonce <hex>] [--user-data <hex>] [--public-key <hex>]
                   [--pcr <i>=<hex>]… [--state-dir <dir>] [--out <file>]
  egw attest dev-root [--state-dir <dir>]

verify exits 0 when the document is accepted, 1 when it is rejected (the
error code is printed), 2 on a usage or I/O problem. Without --root only the
AWS Nitro Enclaves root G1 is trusted. Without --at the current time is used.`;

export const INSPECT_USAGE = `Usage:
  egw inspect <file|-> [--json] [--at <ISO time>] [--root <pem>]

Decodes and explains an attestation document (raw CBOR, base64 or hex):
fields, PCRs, the certificate chain with validity, and debug mode. It also
reports whether the document verifies at --at (default: now) against the AWS
root, or --root; it checks no measurement policy (use "egw attest verify").
Exits 0 when the document decodes, 1 when it does not, 2 on usage or I/O.`;

export const DEV_USAGE = `Usage:
  egw dev [--config <file>] [--port 8443] [--state-dir .egw-dev] [--capture-dir <dir>]

The whole stack on one machine, as separate processes started with the same
commands an operator runs: "egw host" (ingress relay and egress proxy),
"egw enclave --dev" (simulated NSM) and, without --config, the local model.
Without --config: the local model, plus OpenAI, Anthropic, Gemini or xAI at
their official origins when OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY
or XAI_API_KEY is set, each with default model routes (listed by /v1/models).
--config <file>: your own deployment in one JSON file,
  { "trustPolicy": {…} | "<file>", "operations": {…} | "<file>",
    "secretsEnv": { "<SECRET>": "<ENV VAR>" } }        (secretsEnv optional)
parsed under the development rules (first-party kinds may point at local
mocks, http allowed; the enclave with the real NSM refuses that). Each
provider secret is read from the variable it names (or secretsEnv maps) and
sealed under a local KMS; a missing one stops egw dev before anything
starts. egw dev adds default routes for a first-party provider no route
names, the local KMS key when secrets.kmsKeyArn is absent, and its own
client "egw-dev" (the state dir's token). State (development root, client
token, trust-policy.json, operations.json, the dev manifest manifest.json,
logs) lives in --state-dir; the trust policy keeps its bytes (and hash)
across restarts unless its content changes. Prints a JSON ready line, then
each provider with its effective capabilities and how to verify and call
the stack (egw verify, egw proxy, openai, Anthropic, @google/genai and AI SDK
programs). A process that fails is reported with its own error. Exit 2 for a
bad file or a missing key, 1 when a process fails; Ctrl-C stops everything.`;

export const ENCLAVE_USAGE = `Usage:
  egw enclave --trust-policy <trust-policy.json> --operations <operations.json>
              [--listen tcp://127.0.0.1:8443|unix:///path|vsock://4294967295:8443]
              [--dev] [--state-dir <dir>] [--egress-proxy http://host:port|vsock://3:<port>]
              [--upstream-ca <pem>   (development: trust the local model's certificate)]
              [--sealed-secrets <file> [--kms-endpoint <url>]]
  egw enclave --provision-listen <vsock://4294967295:9000|tcp://…|unix://…> [--provision-timeout <seconds>]
              [--listen …] [--dev] [--state-dir <dir>] [--egress-proxy …] [--bring-up-loopback]

Runs the gateway service (HTTPS only). On Nitro it attests through /dev/nsm;
--dev uses the simulated NSM and the development CA in --state-dir. Logs are
JSON lines on stderr; "enclave.ready" names the port and the attested hashes.
The trust policy (providers and their origins, routes, which sealed secret
each provider uses, the KMS key ARNs, the identity mode) is attested and
served at /v1/attestation/policy; operations (client token hashes, limits,
log level) name no destination. The egress allowlist is derived from the
trust policy. Outside --dev, provider keys come sealed or not at all.
With --sealed-secrets, provider keys are opened at boot with KMS Decrypt +
Recipient (this enclave's attestation); if KMS refuses, it does not serve.
With --provision-listen (instead of the files), the trust policy,
operations, sealed secrets and KMS credentials come from "egw host --provision"
over one connection (waited for up to --provision-timeout, default 300 s);
the enclave answers it with a ready or failed status. Any failure exits 1.
A bundle from "egw host --generate-identity" makes the shared sealed identity
instead (docs/IDENTITY.md): the enclave answers with the sealed blob and
public hashes, serves nothing, and exits 0.
Stops cleanly on SIGINT/SIGTERM.
--bring-up-loopback (the image's entrypoint) brings the enclave's "lo" up
before anything listens on 127.0.0.1: a Nitro enclave boots with it down.`;

export const VERIFY_USAGE = `Usage:
  egw verify <https://gateway[:port]> [--policy <manifest.json>] [--dev-root <pem>] [--json]
             [--policy-pubkey <public.pem> | --policy-pubkey-sha256 <hex>] [--policy-sig <file>]
             [--policy-min-sequence <n>]

Attests a gateway the way the verifying client does: one TLS connection, a
fresh 32-byte nonce, the document checked against the AWS root (or the
development root from --dev-root or the manifest's devRootPem), the
manifest's measurements and config hashes, the TLS key binding, then the
trust policy read over the same connection (its hash must be the attested
one) against the manifest's trust section (allowed upstream origins,
identity mode, key ARNs); every step is printed, then the trust policy
(origins, identity, key ARNs, hash). Exits 0 when every check passed, 1
when one failed (connection problems included; "REJECTED <code>"), 2 on a
usage problem. Without --policy neither measurements nor trust policy are
checked and the verdict says "ACCEPTED (UNCONSTRAINED: …)"; so does a
manifest with "trust": "any". Exit 0 then covers every other check. The
matched entry's release version and commit are printed when the manifest
records them.
With --policy-pubkey (PEM) or --policy-pubkey-sha256 (SHA-256 of the key's
SPKI) the manifest is used only with a valid signature by that key
(<manifest>.sig, or --policy-sig); a missing or bad signature is
ERR_MANIFEST_SIGNATURE, exit 1, before anything is dialled. So is a
manifest whose "expires" has passed (ERR_MANIFEST_EXPIRED) and, with
--policy-min-sequence <n>, one without a sequence or below n
(ERR_MANIFEST_ROLLBACK).`;

export const PROXY_USAGE = `Usage:
  egw proxy --upstream <https://gateway[:port]> [--policy <manifest.json>]
            [--policy-pubkey <public.pem> | --policy-pubkey-sha256 <hex>] [--policy-sig <file>]
            [--policy-min-sequence <n>] [--dev-root <pem>] [--listen 127.0.0.1:8787]

Plain-HTTP verifying proxy on loopback for curl, Python openai, LangChain
(base URL http://127.0.0.1:8787/v1). Every gateway connection is attested;
every answer is passed on only if its receipt verifies. A refusal is the
proxy's own answer, never the gateway's bytes: status 406 (a status no SDK
retries and the gateway never sends), x-should-retry: false,
x-egw-client-error: <code>, and the surface's JSON error with the message
"CODE: reason"; a gateway that cannot be reached is a 502 with
x-should-retry: true (streams: an error event, then the connection is cut).
GET /healthz passes through over an attested connection; the gateway signs
no receipt for it, so it is marked "attestation; no receipt". Headers
say what was verified: x-egw-verified ("attestation+receipt; trust=constrained",
or "trust=UNCONSTRAINED" without a manifest or with "trust": "any"),
x-egw-upstream (the receipt's upstream origin), x-egw-policy-sha256,
x-egw-measurement, x-egw-root, x-egw-receipt-id. A receipt naming an
upstream outside the attested trust policy or the allowed origins is a 406
ERR_RECEIPT_UPSTREAM_NOT_ALLOWED. Exits 1 at start if the gateway fails
attestation or its trust policy breaks the manifest's trust section, if a
signing key is pinned and the manifest's signature is missing or wrong
(ERR_MANIFEST_SIGNATURE), if the manifest has expired (ERR_MANIFEST_EXPIRED)
or is below --policy-min-sequence (ERR_MANIFEST_ROLLBACK). Once the
manifest's "expires" passes, every request gets a 406 ERR_MANIFEST_EXPIRED
and nothing is sent: restart it with the current manifest. Stops on
SIGINT/SIGTERM.`;

export const RECEIPT_USAGE = `Usage:
  egw receipt verify --receipt <file> --request <file> --response <file>
                     --attestation <doc> [--at <ISO time>] [--policy <manifest.json>]
                     [--trust-policy <file>] [--dev-root <pem>] [--json]

Offline proof, from saved files, that an attested enclave signed this
response to this request. --request/--response: exact body bytes (a stream:
everything before the ": egw-receipt" block). --receipt: raw, the
x-egw-receipt header value, or the SSE block. --attestation: raw, base64 or
hex. The document is verified at --at (default: the receipt's time), with
measurements "any" unless --policy is given (which also checks its age).
--trust-policy: the trust policy's exact bytes as served at
/v1/attestation/policy; they must hash to the document's policy_sha256, and
a manifest whose trust section constrains anything needs them.
Exits 0 verified, 1 refused, 2 usage or unreadable file.`;

export const HOST_USAGE = `Usage:
  egw host --enclave <vsock://cid:port|tcp://…|unix://…> [--listen tcp://0.0.0.0:443]
           [--proxy-protocol] [--egress-listen <endpoint>]
           [--trust-policy <trust-policy.json>] [--operations <operations.json>]
           [--allow host:port]… [--allow-private host:port]… [--metrics-listen tcp://127.0.0.1:9100]
           [--capture-dir <dir>]
           [--provision <endpoint> --trust-policy <file> --operations <file>
            [--sealed-secrets <file> [--kms-endpoint <url>]] [--provision-timeout <seconds>]]
  egw host --generate-identity --provision <endpoint> --trust-policy <file> --operations <file>
           --sealed-secrets <in.json>
           --egress-listen <endpoint> --validity-days <1..1825> [--overlap-days <0..1825>] [--rotate-tls]
           --identity-out <out.json> [--kms-endpoint <url>] [--allow…] [--provision-timeout <seconds>]

The untrusted host side. The ingress relay pipes client bytes to the
enclave's TLS endpoint without terminating TLS (optionally with a PROXY v2
header first); the egress proxy (with --egress-listen) lets the enclave
CONNECT only to the host:port pairs derived from the trust policy (provider
origins and the KMS endpoint of each key ARN's region, as the enclave derives
its own), a --kms-endpoint when provisioning, and --allow, resolving DNS per
connection and refusing private, link-local and metadata addresses unless
listed with --allow-private. The PROXY v2 header is sent when --proxy-protocol
is given or the operations file says "proxyProtocol": true. --capture-dir
records every byte the relay reads and writes (ciphertext only), for the
blindness test. With --provision (e.g. vsock://16:9000) it then hands a
fresh enclave its trust policy, operations file, sealed secrets and the
instance role's AWS credentials (for the region of the policy's key ARN),
retrying until --provision-timeout (default 300 s), and prints the enclave's
status (with configSha256 and policySha256) as a JSON line; a failed status
exits 1 with the enclave's code. Stops cleanly on SIGINT/SIGTERM, draining connections.
With --generate-identity (the trust policy's identity must be "sealed", under
the KMS key it names) it runs only the egress proxy, has the enclave make
(or, when <in.json> has one, rotate: --overlap-days required) the shared
identity, writes <in.json> with the new identity to <out.json> (atomically;
nothing on failure), prints the TLS SPKI hash and receipt key windows as one
JSON line and exits 0; a failure exits 1 with the code, a usage error 2.`;

export const LOCAL_MODEL_USAGE = `Usage:
  egw local-model [--listen tcp://127.0.0.1:0] [--cert-out <pem>] [--require-key-sha256 <hex>]

The built-in local model as an HTTPS, OpenAI-compatible server on loopback
(what "egw dev" starts as its model process). NOT a language model: a
deterministic responder for running the stack without keys or network.
--cert-out writes its self-signed certificate (for "egw enclave --upstream-ca");
--require-key-sha256 makes it refuse requests whose bearer key does not hash
to that SHA-256 (hex), as a real provider refuses a wrong key.`;

export const KMS_POLICY_USAGE = `Usage:
  egw kms-policy --measurements <manifest.json> --enclave-role <arn> --admin <arn> [--sealer <arn>]
                 [--secret NAME=ORIGIN]… [--immutable] [--allow-debug] [--allow-http]

Prints a KMS key policy (JSON) that lets the enclave role kms:Decrypt and
kms:GenerateDataKey only with a recipient attestation whose PCRs match a
measurement set of the manifest, and denies them to every principal unless
each PCR the sets share has an allowed value (no attestation: denied). With
--secret (repeatable; NAME and ORIGIN as given to "egw seal"), provider
secrets are released only for those name/origin pairs and identity
operations only under egw:purpose=enclave-identity. --immutable writes a
policy nobody can ever change (no PutKeyPolicy, CreateGrant or ReplicateKey;
apply it with BypassPolicyLockoutSafetyCheck): a new image then needs a new
key and re-sealed secrets. All-zero (debug-mode) PCRs are refused unless
--allow-debug; http: origins unless --allow-http (development only).
Warnings (stderr) name what could still undo the attestation condition.`;

export const SEAL_USAGE = `Usage:
  printf '%s' "$OPENAI_API_KEY" | egw seal --key-id <kms key ARN> [--region <region>] \\
        --name OPENAI_API_KEY --origin https://api.openai.com --out sealed-secrets.json \\
        [--allow-http] [--kms-endpoint <url>]

Encrypts one provider key (read from standard input, never from arguments)
with KMS Encrypt and adds it to the sealed-secrets file that "egw enclave
--sealed-secrets" opens with its attestation. The ciphertext is bound to the
encryption context {"egw:purpose":"provider-secret","egw:secret":<name>,
"egw:origin":<origin>}: the enclave opens it only for the provider whose
trust-policy origin is exactly that origin (scheme://host[:port], no path).
--key-id must be the full key ARN (arn:aws:kms:<region>:<account>:key/<id>),
not an alias; --region defaults to the ARN's and must equal it. http:
origins need --allow-http (development only). Uses the AWS SDK's default
credentials on the operator's machine.`;

export const MEASURE_USAGE = `Usage:
  egw measure <file.eif> [--manifest <manifest.json>] [--json]

Reads an enclave image file (EIF) as nitro-cli writes it, checks its header,
section layout and CRC32, and prints the PCRs an enclave booted from it
reports: PCR0 (kernel, cmdline and every ramdisk), PCR1 (kernel, cmdline and
the first ramdisk), PCR2 (the other ramdisks) and, for a signed image, PCR8
(the signing certificate), with the metadata section and the signing
certificate. With --manifest, the PCRs are compared with every entry of a
measurements manifest. Exits 0 when the image was measured (and matched an
entry), 1 when the image is invalid or matches no entry, 2 on a usage or
I/O problem. Images up to 1 GiB are read into memory.`;

export const MANIFEST_USAGE = `Usage:
  egw manifest create --eif <file.eif> --version <semver> --git-commit <40 hex>
                      --image-digest sha256:<64 hex>
                      (--trust-policy <trust-policy.json> [--dev] [--pin-policy-hash] | --trust-any)
                      [--operations <operations.json>]… [--sealed-secrets <file>]
                      [--config-sha256 <hex>]… [--label <text>] [--built-at <RFC 3339>]
                      [--sequence <n>] [--expires <YYYY-MM-DDTHH:MM:SSZ>]
                      [--merge <existing-manifest.json>]
  egw manifest sign --key <private.pem|-> <manifest.json> [--out <file>]
  egw manifest verify (--pubkey <public.pem> | --pubkey-sha256 <hex>) <manifest.json>
                      [--sig <file>] [--policy-min-sequence <n>] [--json]
  egw manifest show <manifest.json> [--json]

create prints a measurements manifest (the format "egw verify --policy"
reads) with PCR0/1/2, and PCR8 for a signed EIF, computed from the EIF,
and the release: version, commit, image digest, the EIF's SHA-384 and
--built-at. Its trust section is derived from --trust-policy (upstream
origins, identity mode and key, secrets key; read under production rules
unless --dev; --pin-policy-hash also pins the file's SHA-256), or is "any"
with --trust-any; one of them is required (with --merge, the merged
manifest's section is kept unless one is given). --operations pins the
deployment hash the enclave attests (config_sha256) of the trust policy and
that operations file, folded with the --sealed-secrets file when the host
hands one in; --config-sha256 gives an attested hash directly. --config is
gone (the runtime config is now a trust policy and operations). --merge appends the release to an existing
manifest (rollouts: old and new accepted), refusing a label or image it
already has. The label defaults to "egw <version> (<commit prefix>)".
--sequence (1..2^53-1, higher than every earlier manifest) and --expires
(UTC, in the future) let clients refuse an older or stale manifest; with
--merge, a manifest that had a sequence needs a higher --sequence, and one
that had an expiry a new --expires.
sign writes a detached COSE_Sign1 (ES384, EC P-384 key) over the file's
exact bytes to <manifest.json>.sig and prints the key's SHA-256, which
relying parties pin (--key - reads the PEM from standard input); it does
not sign an expired manifest. verify checks that signature against the
pinned key, then the manifest, its expiry and --policy-min-sequence, and
prints its entries and trust section. show prints the same without
checking a signature (exit 1 when the client would refuse the file).
Exits 0 done/valid, 1 refused (invalid EIF, duplicate label or image,
sequence not increased or expiry dropped by --merge, bad signature,
expired, rollback), 2 usage or I/O (sign: an expired manifest).`;

/** One command's help: a line for the overview, its usage text, and examples. */
export interface CommandHelp {
  /** The overview's line: what it does, in a few words. */
  summary: string;
  /** Usage lines (every flag), then what it does and how it exits. */
  text: string;
  /** Command lines that work as shown (given the files they name). */
  examples: readonly string[];
}

/** The table: one entry per command of main.ts, in the overview's order. */
export const COMMAND_HELP = {
  inspect: {
    summary: "decode and explain an attestation document",
    text: INSPECT_USAGE,
    examples: ["egw inspect doc.cbor --at 2024-09-07T14:40:00Z", "egw attest issue --dev | egw inspect - --root .egw-dev/dev-root.pem"],
  },
  attest: {
    summary: "verify a document (verify), issue one from the simulated NSM (issue --dev), print the dev root (dev-root)",
    text: ATTEST_USAGE,
    examples: [
      "egw attest verify doc.cbor --pcr 0=4b8d4cf2…cfab --max-age 600",
      "egw attest issue --dev --nonce 00ff --out /tmp/doc.cbor && egw attest verify /tmp/doc.cbor --root .egw-dev/dev-root.pem --nonce 00ff",
    ],
  },
  dev: {
    summary: "the whole stack on one machine (npm start)",
    text: DEV_USAGE,
    examples: ["egw dev", "egw dev --port 9443 --state-dir /tmp/egw-dev", "egw dev --config infra/dev/examples/dev-config.json"],
  },
  enclave: {
    summary: "run the gateway service (inside the enclave)",
    text: ENCLAVE_USAGE,
    examples: ["egw enclave --dev --trust-policy trust-policy.json --operations operations.json --listen tcp://127.0.0.1:8443"],
  },
  host: {
    summary: "run the host relay and egress proxy (parent instance); provision the enclave at boot",
    text: HOST_USAGE,
    examples: [
      "egw host --enclave vsock://16:8443 --listen tcp://0.0.0.0:443 --egress-listen vsock://3:8000 --trust-policy trust-policy.json",
      "egw host --enclave vsock://16:8443 --egress-listen vsock://3:8000 --provision vsock://16:9000 --trust-policy trust-policy.json --operations operations.json --sealed-secrets sealed-secrets.json",
    ],
  },
  "local-model": {
    summary: "the built-in local model as its own HTTPS server (not an LLM)",
    text: LOCAL_MODEL_USAGE,
    examples: ["egw local-model --listen tcp://127.0.0.1:9000 --cert-out /tmp/local-model.pem"],
  },
  verify: {
    summary: "attest a running gateway and print every check",
    text: VERIFY_USAGE,
    examples: [
      "egw verify https://127.0.0.1:8443 --policy .egw-dev/manifest.json",
      "egw verify https://gateway.example.com --policy manifest.json --policy-pubkey-sha256 <hex> --json",
    ],
  },
  proxy: {
    summary: "local verifying proxy for curl, Python, LangChain",
    text: PROXY_USAGE,
    examples: [
      "egw proxy --upstream https://127.0.0.1:8443 --policy .egw-dev/manifest.json",
      'curl http://127.0.0.1:8787/healthz; curl http://127.0.0.1:8787/v1/models -H "authorization: Bearer $TOKEN"',
    ],
  },
  receipt: {
    summary: "verify a saved receipt offline",
    text: RECEIPT_USAGE,
    examples: ["egw receipt verify --receipt r.txt --request req.json --response res.json --attestation doc.cbor --trust-policy policy.json --policy manifest.json"],
  },
  "kms-policy": {
    summary: "print the attestation-conditioned KMS key policy",
    text: KMS_POLICY_USAGE,
    examples: [
      "egw kms-policy --measurements manifest.json --enclave-role arn:aws:iam::111122223333:role/egw-enclave --admin arn:aws:iam::111122223333:role/admin --secret OPENAI_API_KEY=https://api.openai.com",
    ],
  },
  seal: {
    summary: "seal a provider key (stdin) with KMS into a sealed-secrets file",
    text: SEAL_USAGE,
    examples: [
      "printf '%s' \"$OPENAI_API_KEY\" | egw seal --key-id arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab --name OPENAI_API_KEY --origin https://api.openai.com --out sealed-secrets.json",
    ],
  },
  measure: {
    summary: "compute an enclave image's PCRs (and compare with a manifest)",
    text: MEASURE_USAGE,
    examples: ["egw measure enclave.eif --manifest manifest.json"],
  },
  manifest: {
    summary: "write a release's measurements manifest (create), sign it (sign), check a signature (verify), show it (show)",
    text: MANIFEST_USAGE,
    examples: [
      "egw manifest create --eif enclave.eif --version 1.4.0 --git-commit <40 hex> --image-digest sha256:<64 hex> --trust-policy trust-policy.json > manifest.json",
      "egw manifest sign --key signing.pem manifest.json && egw manifest verify --pubkey-sha256 <hex> manifest.json",
    ],
  },
} as const satisfies Record<string, CommandHelp>;

export type CommandName = keyof typeof COMMAND_HELP;

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMAND_HELP, name);
}

/** `egw help <command>` and `egw <command> --help`: that command's help alone. */
export function commandHelp(name: CommandName): string {
  const entry: CommandHelp = COMMAND_HELP[name];
  return `egw ${name}: ${entry.summary}\n\n${entry.text}\n\n${entry.examples.length === 1 ? "Example" : "Examples"}:\n${entry.examples.map((e) => `  ${e}`).join("\n")}`;
}

/** `egw help`: the commands, one line each. */
export function overviewHelp(): string {
  const names = Object.keys(COMMAND_HELP) as CommandName[];
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const lines = names.map((n) => `  ${n.padEnd(width)}${COMMAND_HELP[n].summary}`);
  return `egw (enclave-gateway) — confidential AI gateway for AWS Nitro Enclaves

Usage: egw <command> [options]

Commands:
${lines.join("\n")}
  ${"help".padEnd(width)}this overview; "egw help <command>" (or "egw <command> --help") for one command

Exit codes: 0 accepted / done, 1 rejected (the error code is printed), 2 usage or I/O problem.`;
}
