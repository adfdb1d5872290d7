import { statSync } from "node:fs";
import { Stack } from "aws-cdk-lib";
import { Asset } from "aws-cdk-lib/aws-s3-assets";
import type { Construct } from "constructs";
import { DeployError } from "./errors.js";
import { httpsUrl, instancePath, sha256Hex } from "./validate.js";

/**
 * Where a file the instance needs comes from: a local file that `cdk deploy`
 * uploads as an S3 asset, or an https URL with the SHA-256 the download must
 * have. Either way it is fetched at boot and never built on the instance.
 */
export type ArtifactSource = { file: string } | { url: string; sha256: string };

export interface StagedArtifact {
  /** Boot-script lines that put the file at its path on the instance. */
  commands: string[];
  /** S3 object ARNs the instance role must be able to read (assets only). */
  objectArns: string[];
}

/**
 * Stages one artifact. The download goes to `<path>.part` and is renamed only
 * once complete (and, for URLs, once its hash matched), so a failed boot never
 * leaves a truncated EIF that a retry would run.
 */
export function stageArtifact(scope: Construct, id: string, source: ArtifactSource, destination: string, what: string): StagedArtifact {
  const dest = instancePath(destination, `${what} destination`);
  const part = `${dest}.part`;
  if ("file" in source) {
    let isFile = false;
    try {
      isFile = statSync(source.file).isFile();
    } catch {
      // reported below with the prop's name
    }
    if (!isFile) throw new DeployError("ERR_DEPLOY_PROPS", `${what}: ${JSON.stringify(source.file.slice(0, 200))} is not a readable file`);
    const asset = new Asset(scope, id, { path: source.file });
    return {
      commands: [`aws s3 cp --only-show-errors --region ${Stack.of(scope).region} 's3://${asset.s3BucketName}/${asset.s3ObjectKey}' '${part}'`, `mv -f '${part}' '${dest}'`],
      objectArns: [asset.bucket.arnForObjects(asset.s3ObjectKey)],
    };
  }
  const url = httpsUrl(source.url, `${what} url`);
  const sha256 = sha256Hex(source.sha256, `${what} sha256`);
  return {
    commands: [
      `curl --fail --silent --show-error --location --proto '=https' --proto-redir '=https' --retry 5 --output '${part}' '${url}'`,
      `echo '${sha256}  ${part}' | sha256sum --check --strict --quiet`,
      `mv -f '${part}' '${dest}'`,
    ],
    objectArns: [],
  };
}
