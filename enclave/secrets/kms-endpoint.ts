import { SealedSecretsError } from "../../host/transport/codec/sealed-file.js";

/**
 * Which KMS endpoints a production enclave may be pointed at.
 *
 * The endpoint override comes from the host (a flag, or the provisioning
 * bundle), and it is not part of the attested config hash. A host that could
 * name any endpoint could run its own "KMS": it would answer GenerateDataKey
 * with a data key it chose, the enclave would seal a fresh identity under it,
 * and the host would know the TLS key clients are about to trust. TLS to
 * the endpoint does not help on its own: the host can hold a valid
 * certificate for a name it owns. So on real Nitro hardware the override
 * must name AWS KMS itself, in the sealed file's region, over HTTPS:
 *
 *   https://kms.<region>.amazonaws.com            (the regional endpoint)
 *   https://kms-fips.<region>.amazonaws.com       (FIPS)
 *   https://vpce-….kms.<region>.vpce.amazonaws.com (an interface VPC endpoint)
 *   … and the same under amazonaws.com.cn.
 *
 * The simulated NSM (development, tests) may use any endpoint: its documents
 * chain to a development root that no production verifier trusts.
 */
const SUFFIX = String.raw`amazonaws\.com(?:\.cn)?`;

export function checkKmsEndpoint(endpoint: string | undefined, region: string, attester: "nsm" | "simulated"): void {
  if (endpoint === undefined || attester === "simulated") return;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new SealedSecretsError("ERR_KMS_ENDPOINT", "sealed secrets: the KMS endpoint is not a URL");
  }
  const r = region.replace(/[^a-z0-9-]/g, "");
  const allowed = [new RegExp(`^kms\\.${r}\\.${SUFFIX}$`), new RegExp(`^kms-fips\\.${r}\\.${SUFFIX}$`), new RegExp(`^vpce-[a-z0-9-]{1,64}\\.kms\\.${r}\\.vpce\\.${SUFFIX}$`)];
  const pathOk = url.pathname === "/" && url.search === "" && url.hash === "" && url.username === "" && url.password === "";
  const portOk = url.port === "" || url.port === "443";
  if (url.protocol !== "https:" || !pathOk || !portOk || !allowed.some((re) => re.test(url.hostname))) {
    throw new SealedSecretsError(
      "ERR_KMS_ENDPOINT",
      `sealed secrets: a Nitro enclave only talks to AWS KMS in ${r} (https://kms.${r}.amazonaws.com, kms-fips, or a KMS VPC endpoint); the host named another endpoint`,
    );
  }
}
