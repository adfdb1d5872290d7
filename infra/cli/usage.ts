// Help texts, kept apart from the commands so printing help loads no command code.

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
  egw dev [--state-dir <dir>]

Development mode on one machine. Today it sets up the development CA, issues
a document from the simulated NSM with a fresh nonce and verifies it against
the development root. The gateway service, host relay and verifying proxy it
will start are not built yet, and it says so.`;

export const ENCLAVE_USAGE = `Usage:
  egw enclave --config <runtime-config.json> [--listen tcp://127.0.0.1:8443|unix:///path]
              [--dev] [--state-dir <dir>] [--egress-proxy http://host:port]

Runs the gateway service (HTTPS only). On Nitro it attests through /dev/nsm;
--dev uses the simulated NSM and the development CA in --state-dir. Logs are
JSON lines on stderr; "enclave.ready" names the port and the attested hashes.
Stops cleanly on SIGINT/SIGTERM.`;
