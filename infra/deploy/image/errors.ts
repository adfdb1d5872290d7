import { EgwError } from "../../../attestation/egw-error.js";

/**
 * Every refusal of the enclave bundler is a BundleError with a stable
 * `code`. All of them mean "stop: this would not be the image a reviewer can
 * reproduce from the lockfile".
 */
export type BundleErrorCode =
  | "ERR_BUNDLE_OPTIONS" // a path option is missing, or the output folder is not empty
  | "ERR_BUNDLE_BUILD" // esbuild reported errors
  | "ERR_BUNDLE_INPUT_OUTSIDE" // a bundled file lies outside the repository
  | "ERR_BUNDLE_UNLOCKED_PACKAGE" // a bundled package is not in package-lock.json
  | "ERR_BUNDLE_DEV_DEPENDENCY" // a bundled package is a devDependency ("dev": true in the lockfile)
  | "ERR_BUNDLE_NOT_ALLOWED" // an input is outside the image allowlist (infra/deploy/image/allowlist.ts): not enclave code
  | "ERR_BUNDLE_EXTERNAL" // the bundle imports at run time something other than Node built-ins and the native packages
  | "ERR_BUNDLE_NATIVE_MISSING"; // a native package (or one of its required dependencies) is not installed

export class BundleError extends EgwError<BundleErrorCode> {
  override readonly name = "BundleError";

  constructor(code: BundleErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, "stop", options);
  }
}
