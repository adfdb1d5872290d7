import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * Two projects (issue 12): the unit suites run in parallel, as many workers
 * as the machine has cores; the suites that spawn processes or put a socket
 * layer under load run after them, one file at a time, so their timing
 * assertions are not judged on a machine the unit suites are saturating.
 * Kept under test/ so the top level holds only what the project names there.
 */
const E2E = [
  "test/host/ingress/relay-load.test.ts",
  "test/infra/provision-e2e.test.ts",
  "test/infra/identity-provision-e2e.test.ts",
  "test/infra/dev-stack.test.ts",
  "test/infra/dev-config-stack.test.ts",
  "test/infra/cli/cli-binary.test.ts",
  "test/infra/enclave-vsock.test.ts",
];

export default defineConfig({
  test: {
    root: fileURLToPath(new URL("..", import.meta.url)),
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: E2E, pool: "forks", sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: "e2e", include: E2E, pool: "forks", fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
