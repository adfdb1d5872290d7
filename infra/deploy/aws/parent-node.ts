/**
 * The Node.js that runs the host side (`egw host`, `egw measure`) on the
 * parent: the EC2 parent instance (./user-data.ts) and the Kubernetes pod
 * image (infra/deploy/k8s/commands.ts IMAGE_PATHS, infra/deploy/image/parent.Dockerfile),
 * which share one layout. The one place its major version is chosen: both
 * import it, and test/infra/deploy/image/parent-node.test.ts fails if the pod image
 * definition or the docs name another.
 *
 * Amazon Linux 2023 ships each supported Node.js major as its own namespaced
 * packages, `nodejs<major>` (the runtime, /usr/bin/node-<major>) and
 * `nodejs<major>-npm` (/usr/bin/npm-<major>); /usr/bin/node and npm are
 * alternatives links that follow whichever major was installed first, so the
 * parent always names the namespaced binary
 * (docs.aws.amazon.com/linux/al2023/ug/nodejs.html). Node.js 24 (LTS
 * "Krypton", supported upstream until April 2028) is in AL2023 since
 * 2023.9.20251110; Node.js 20 reached end of life in April 2026.
 *
 * No imports, so that infra/deploy/k8s can depend on this file without depending on
 * anything else of the EC2 deployment.
 */
const MAJOR = 24;

export const PARENT_NODE = {
  major: MAJOR,
  /** The AL2023 package that provides `node`. */
  package: `nodejs${MAJOR}`,
  /** The AL2023 package that provides `npm` for it (installed where the package is installed, never in the pod image). */
  npmPackage: `nodejs${MAJOR}-npm`,
  /** The interpreter: always this major, whatever the alternatives links point at. */
  node: `/usr/bin/node-${MAJOR}`,
  /** npm bound to that interpreter. */
  npm: `/usr/bin/npm-${MAJOR}`,
} as const;
