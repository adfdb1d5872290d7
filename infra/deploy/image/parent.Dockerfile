# The pod image of the Kubernetes chart (infra/deploy/k8s): nitro-cli, the host
# side of egw (`egw host`: relay, egress proxy, boot provisioning) and the
# EIF, laid out as infra/deploy/k8s/commands.ts IMAGE_PATHS says, which is also the
# EC2 parent's layout (infra/deploy/aws/user-data.ts). One image serves both pod
# containers: `enclave` runs nitro-cli as root, `relay` runs egw as uid 65532.
#
# Build it with `infra/deploy/image/build.sh --parent-image <tag>` (see
# infra/deploy/image/README.md), right after the EIF. The EIF is an input, never
# built here: it comes from the named build context `eif` (a directory
# holding egw.eif) and must match the EIF_SHA256 build argument.
#   docker buildx build -f infra/deploy/image/parent.Dockerfile \
#     --build-context eif=build --build-arg EIF_SHA256=<sha256 of build/egw.eif> \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) .
# The build context is the repository root, filtered by
# parent.Dockerfile.dockerignore beside this file.
#
# Not attested: PCR0/1/2 cover the EIF only, which is copied byte for byte.
# This image decides who can reach the enclave and with which config, not
# what runs inside it. No "# syntax=" line, as in ./Dockerfile: it would pull
# a frontend image by tag.

# The one place the base image is chosen, pinned by digest; build.sh refuses
# a reference without @sha256. Amazon Linux 2023, the distribution that
# packages nitro-cli (aws-nitro-enclaves-cli) and Node per major version.
# amazonlinux:2023 multi-arch index digest (amd64 and arm64), as pinned in
# public repositories found by content search: a dependency-pins document of
# an AL2023-based "Dockerfile.fips" ("the multi-arch index digest", resolved
# 2026-08-06 with `docker buildx imagetools inspect amazonlinux:2023`; its
# rootfs reports "Amazon Linux 2023.12.20260727" on both architectures), its
# freeze test, and CI scripts of three other repositories that pin the same
# digest. Not resolved from this machine (it reaches no registry). Bump the
# digest and AL2023_RELEASEVER together; the base stage refuses a mismatch:
#   docker buildx imagetools inspect amazonlinux:2023
#   docker run --rm amazonlinux:2023@sha256:<digest> rpm -q --qf '%{VERSION}\n' system-release
ARG AL2023_IMAGE=amazonlinux:2023@sha256:694092ae18877ed4e3cb9b643759ba95df1f12af12528fefa18f60f79d4c1568
# The dated repository snapshot every dnf transaction reads (AL2023's
# deterministic upgrades: a dated release's repository never changes, unlike
# --releasever=latest). It fixes the version of every package installed here,
# dependencies included; the two pins below make the ones the chart calls
# explicit, so a snapshot that lacks them fails the build instead of
# installing something else.
ARG AL2023_RELEASEVER=2023.12.20260727
# Versions in that snapshot per the AL2023 release notes (docs.aws.amazon.com/
# linux/al2023/release-notes/): aws-nitro-enclaves-cli 1.4.4-0.amzn2023 since
# 2023.10.20260120 (1.4.5 arrives in 2023.12.20260803, 1.5.0 in
# 2023.12.20260831); nodejs24 24.18.0-1.amzn2023.0.2 since 2023.12.20260720
# (relnotes-2023.12.20260720, Core Updated Packages; 2023.12.20260803 does not
# touch it; 24.18.1-1.amzn2023.0.2 arrives in 2023.12.20260817). The notes of
# 2023.12.20260727 itself were not found; a later build there would not break
# the pin, since AL2023 repositories keep earlier builds (the release notes'
# own `dnf downgrade <name>-<version>` advice relies on it).
# Node is Node.js 24 LTS (nodejs24, in AL2023 since 2023.9.20251110): Node.js
# 20 reached end of life in April 2026. The major is chosen once, in
# infra/deploy/aws/parent-node.ts, which the chart and the EC2 user data import;
# test/infra/deploy/image/parent-node.test.ts fails if this file names another one
# (in a package, a binary or NODEJS_VERSION).
# Read from the release notes, not from the repository (unreachable here):
# if dnf reports "No match for argument", take the versions from
#   docker run --rm <base> dnf --releasever=<snapshot> list --showduplicates aws-nitro-enclaves-cli nodejs24
ARG NITRO_CLI_VERSION=1.4.4-0.amzn2023
ARG NODEJS_VERSION=24.18.0-1.amzn2023.0.2

# ─── base: the pinned rootfs, checked against the snapshot ───────────────────
FROM ${AL2023_IMAGE} AS base
ARG AL2023_RELEASEVER
# A digest bumped without the snapshot (or the reverse) would mix two
# releases' packages; refuse it here rather than debug it later.
RUN release="$(rpm -q --qf '%{VERSION}' system-release)" \
 && if [ "${release}" != "${AL2023_RELEASEVER}" ]; then \
      echo "base image is Amazon Linux ${release}, AL2023_RELEASEVER is ${AL2023_RELEASEVER}: bump them together" >&2; exit 1; \
    fi

# ─── eif: the input, replaced by `--build-context eif=<dir>` ─────────────────
# A named build context overrides a stage of the same name (Docker docs,
# "Named contexts"). The stage exists so that a build without it fails here:
# otherwise `COPY --from=eif` would pull an image called "eif" from Docker Hub
# (moby/moby#32063: an unknown stage name is tried as an image).
FROM base AS eif
RUN echo "parent.Dockerfile: the EIF is an input: pass --build-context eif=<directory holding egw.eif> (infra/deploy/image/build.sh --parent-image does)" >&2; exit 1

# ─── builder: the npm package, installed as the EC2 parent installs it ───────
FROM base AS builder
ARG SOURCE_DATE_EPOCH
ARG AL2023_RELEASEVER
ARG NODEJS_VERSION
RUN test -n "${SOURCE_DATE_EPOCH}" || { echo "SOURCE_DATE_EPOCH is not set: build with infra/deploy/image/build.sh" >&2; exit 1; }
# The runtime's Node (same package, same version) runs the build, so nothing
# is compiled for one Node and run by another. nodejs24-npm has no pin of its
# own: the snapshot fixes its version. tar, gzip and findutils are not in the
# container image.
RUN dnf --releasever="${AL2023_RELEASEVER}" --setopt=install_weak_deps=False --setopt=tsflags=nodocs -y install \
      "nodejs24-${NODEJS_VERSION}" nodejs24-npm tar gzip findutils \
 && dnf clean all
# AL2023 names the binaries per major (node-24, npm-24); npm scripts and
# tsc's "#!/usr/bin/env node" want the plain names. Builder stage only.
RUN ln -sf /usr/bin/node-24 /usr/local/bin/node && ln -sf /usr/bin/npm-24 /usr/local/bin/npm
ENV npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
WORKDIR /src

# Dev dependencies included (tsc), exactly as the lockfile says, install
# scripts skipped (koffi and cbor-extract load prebuilt binaries).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY . .
RUN npm run build

# The tarball docs/DEPLOY.md ships to the EC2 parent (`npm pack`; package.json
# "files" decides its contents), unpacked where `npm-24 install --prefix
# /opt/egw/lib <tarball>` puts it. Its dependencies come from package-lock.json
# (`npm ci --omit=dev`) instead of a fresh resolution against the registry, so
# the relay runs the versions the repository tested; they land in the
# package's own node_modules, which Node resolves first. koffi (vsock) is
# among them, with the prebuilt binary for this machine's platform.
RUN npm pack --ignore-scripts --pack-destination /pack \
 && mkdir -p /opt/egw/lib/node_modules/enclave-gateway \
 && tar -xzf /pack/enclave-gateway-*.tgz --strip-components=1 --no-same-owner -C /opt/egw/lib/node_modules/enclave-gateway \
 && cp package-lock.json /opt/egw/lib/node_modules/enclave-gateway/ \
 && cd /opt/egw/lib/node_modules/enclave-gateway \
 && npm ci --omit=dev --ignore-scripts \
 && rm package-lock.json

# Smoke run with the runtime's paths: the CLI starts, and koffi and
# cbor-extract load from where the host code resolves them. Commands are
# loaded lazily (infra/cli/main.ts), so `egw host` loads host/ code only.
RUN /usr/bin/node-24 /opt/egw/lib/node_modules/enclave-gateway/dist/infra/cli/egw.js help > /dev/null \
 && /usr/bin/node-24 -e 'const p = { paths: ["/opt/egw/lib/node_modules/enclave-gateway/dist/host"] }; require(require.resolve("koffi", p)).load("libc.so.6"); require(require.resolve("cbor-extract", p));'

# Fixed modes and timestamps for what goes to the runtime stage.
RUN chmod -R u=rwX,go=rX /opt/egw/lib \
 && find /opt/egw/lib -exec touch -h -d "@${SOURCE_DATE_EPOCH}" {} +

# ─── eif-checked: the EIF given, verified, with fixed metadata ───────────────
# Its own stage so the final image holds the file once (changing its mode or
# time after COPY there would store it in a second layer).
FROM base AS eif-checked
ARG SOURCE_DATE_EPOCH
ARG EIF_SHA256
COPY --from=eif egw.eif /out/egw.eif
RUN test -n "${SOURCE_DATE_EPOCH}" || { echo "SOURCE_DATE_EPOCH is not set: build with infra/deploy/image/build.sh" >&2; exit 1; } \
 && case "${EIF_SHA256}" in \
      *[!0-9a-f]*|"") echo "EIF_SHA256 must be the EIF's SHA-256 in lowercase hex (build.sh passes it)" >&2; exit 1 ;; \
    esac \
 && test "${#EIF_SHA256}" -eq 64 \
 && echo "${EIF_SHA256}  /out/egw.eif" | sha256sum -c - \
 && test "$(head -c 4 /out/egw.eif)" = ".eif" \
 && chmod 0444 /out/egw.eif \
 && touch -d "@${SOURCE_DATE_EPOCH}" /out/egw.eif /out

# ─── runtime: the pod image ──────────────────────────────────────────────────
FROM base AS runtime
ARG SOURCE_DATE_EPOCH
ARG AL2023_RELEASEVER
ARG NITRO_CLI_VERSION
ARG NODEJS_VERSION
ARG EIF_SHA256
RUN test -n "${SOURCE_DATE_EPOCH}" || { echo "SOURCE_DATE_EPOCH is not set: build with infra/deploy/image/build.sh" >&2; exit 1; }
# shadow-utils first, in its own transaction: the nitro-cli package's %pre
# runs `groupadd -f ne` without declaring the dependency
# (aws/aws-nitro-enclaves-cli SPECS/aws-nitro-enclaves-cli.spec), and a
# failed %pre aborts the install; tempoxyz/zones docker/Dockerfile.prover-host
# does the same. The package also requires docker, systemd, curl, jq and
# openssl: they are installed, never started. Its %post touches udev and
# /dev/nitro_enclaves, which a build does not have; that scriptlet's failure
# is not fatal. grep is named because the chart's readiness check uses it.
# dnf's caches, logs and history are removed: they record build times.
RUN dnf --releasever="${AL2023_RELEASEVER}" --setopt=install_weak_deps=False --setopt=tsflags=nodocs -y install shadow-utils grep \
 && dnf --releasever="${AL2023_RELEASEVER}" --setopt=install_weak_deps=False --setopt=tsflags=nodocs -y install \
      "aws-nitro-enclaves-cli-${NITRO_CLI_VERSION}" "nodejs24-${NODEJS_VERSION}" \
 && dnf clean all \
 && rm -rf /var/cache/dnf /var/lib/dnf/history* /var/log/dnf*.log /var/log/hawkey.log \
 && rpm -q "aws-nitro-enclaves-cli-${NITRO_CLI_VERSION}" "nodejs24-${NODEJS_VERSION}" \
 && test -x /usr/bin/nitro-cli \
 && test -x /usr/bin/node-24 \
 && command -v sh grep sleep > /dev/null

# The relay's user: the uid and gid the chart runs the relay container as
# (infra/deploy/k8s/deployment.ts RELAY_USER). It owns no file in the image; the
# entry exists so that getpwuid() answers (os.userInfo(), `id`). -l: no
# lastlog/faillog records.
RUN groupadd --gid 65532 egw \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /sbin/nologin -l egw

COPY --from=builder /opt/egw/lib /opt/egw/lib
COPY --from=eif-checked /out/egw.eif /opt/egw/egw.eif

LABEL enclave-gateway.eif-sha256="${EIF_SHA256}"

# Non-root unless the chart says otherwise: the enclave container sets
# runAsUser 0 for nitro-cli (/dev/nitro_enclaves is root:ne 0660 on the
# node), the relay container runs as 65532. Both set their own command; the
# entrypoint is egw, with the interpreter named as the chart names it.
USER 65532:65532
ENTRYPOINT ["/usr/bin/node-24", "/opt/egw/lib/node_modules/enclave-gateway/dist/infra/cli/egw.js"]
CMD ["help"]
