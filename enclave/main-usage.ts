/**
 * Usage of the enclave program, printed by `egw enclave --help` and by the
 * image's entry (enclave/bin.ts, where the same flags follow the program
 * name instead of "egw enclave").
 */
export const ENCLAVE_USAGE = `Usage:
  egw enclave --config <runtime-config.json> [--listen tcp://127.0.0.1:8443|unix:///path|vsock://4294967295:8443]
              [--dev] [--state-dir <dir>] [--egress-proxy http://host:port|vsock://3:<port>]
              [--upstream-ca <pem>   (development: trust the local model's certificate)]
              [--sealed-secrets <file> [--kms-endpoint <url>]]
  egw enclave --provision-listen <vsock://4294967295:9000|tcp://…|unix://…> [--provision-timeout <seconds>]
              [--listen …] [--dev] [--state-dir <dir>] [--egress-proxy …] [--bring-up-loopback]

Runs the gateway service (HTTPS only). On Nitro it attests through /dev/nsm;
--dev uses the simulated NSM and the development CA in --state-dir. Logs are
JSON lines on stderr; "enclave.ready" names the port and the attested hashes.
With --sealed-secrets, provider keys are opened at boot with KMS Decrypt +
Recipient (this enclave's attestation); if KMS refuses, it does not serve.
With --provision-listen (instead of --config/--sealed-secrets), the runtime
config, sealed secrets and KMS credentials come from "egw host --provision"
over one connection (waited for up to --provision-timeout, default 300 s);
the enclave answers it with a ready or failed status. Any failure exits 1.
A bundle from "egw host --generate-identity" makes the shared sealed identity
instead (docs/IDENTITY.md): the enclave answers with the sealed blob and
public hashes, serves nothing, and exits 0.
Stops cleanly on SIGINT/SIGTERM.
--bring-up-loopback (the image's entrypoint) brings the enclave's "lo" up
before anything listens on 127.0.0.1: a Nitro enclave boots with it down.`;
