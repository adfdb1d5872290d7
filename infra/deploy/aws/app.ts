// CDK app entry: `npx cdk synth --app "node dist/infra/deploy/aws/app.js" -c manifest=build/manifest.json -c adminArn=…`
// Every input comes from CDK context (see app-context.ts and docs/DEPLOY.md).
import { App } from "aws-cdk-lib";
import { defineStacks } from "./app-stacks.js";
import { DeployError } from "./errors.js";

try {
  // No synth on exit: after a refusal, no partial cloud assembly may be left for the CLI to deploy.
  const app = new App({ autoSynth: false });
  defineStacks(app);
  app.synth();
} catch (err) {
  // A refusal is an answer, not a crash: one line with its code, no stack trace.
  if (!(err instanceof DeployError)) throw err;
  process.stderr.write(`egw deploy: ${err.code}: ${err.message}\n`);
  process.exitCode = 1;
}
