#!/usr/bin/env bash
# Builds the enclave image reproducibly, turns it into an EIF with nitro-cli,
# checks nitro-cli's PCRs against our own EIF reader (`egw measure`), and
# writes the measurements manifest. Run it on an enclave-capable parent
# instance (nitro-cli builds for the machine's own architecture).
#
# Reproducible means: the same commit gives the same image digest and the
# same PCR0/1/2 on any machine, because
#   - the base image is pinned by digest (ARG NODE_IMAGE in the Dockerfile);
#   - dependencies come from package-lock.json with integrity hashes;
#   - SOURCE_DATE_EPOCH is the commit time, and BuildKit's
#     rewrite-timestamp=true clamps every file time in the new layers to it
#     (docker buildx >= 0.13); the Dockerfile also sets it on every file it
#     copies;
#   - --provenance=false and --sbom=false: attestations carry build times and
#     builder details and would change the digest;
#   - the build context is an allow-list (Dockerfile.dockerignore).
# The EIF file itself is not byte-identical across builds (its metadata
# section records the build time), but PCR0/1/2 do not cover that section.
#
# With --parent-image it then builds the Kubernetes pod image
# (infra/deploy/image/parent.Dockerfile: nitro-cli, `egw host`, this EIF) the same
# way, handing it the EIF by named build context and SHA-256, and adds its
# image ID to build-info.json.
#
# Exit codes: 0 done; 1 a check failed (nitro-cli and egw measure disagree,
# the manifest is invalid, the pod image build failed); 2 usage,
# prerequisites, or a dirty tree.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/deploy/image/build.sh [options]

  --trust-policy <file>  the deployment's trust policy: the manifest's trust section
                         (allowed origins, identity, key ARNs) is derived from it
  --operations <file>    with --trust-policy: also pin the deployment hash
                         (config_sha256) of that trust policy and these operations
  --trust-any            write "trust": "any" (constrains nothing, on purpose);
                         one of --trust-policy and --trust-any is required
  --sign-key <pem>       sign the EIF (PCR8): private key for nitro-cli --private-key
  --sign-cert <pem>      ... and its certificate (--signing-certificate); both or neither
  --out-dir <dir>        outputs (default: build/ in the repository)
  --base-image <ref>     override the Dockerfile's NODE_IMAGE; must be name@sha256:<64 hex>
  --tag <name>           local image tag (default: enclave-gateway:<version>-<commit12>)
  --label <text>         manifest entry label (default: enclave-gateway <version> (<commit12>))
  --parent-image <tag>   then build the pod image (infra/deploy/image/parent.Dockerfile) with this
                         EIF, tagged <tag> (name:tag, not :latest)
  --parent-base-image <ref>
                         override parent.Dockerfile's AL2023_IMAGE; must be name@sha256:<64 hex>
  --allow-dirty          build from a tree with uncommitted or untracked files
  -h, --help             this help

Outputs in the out dir: egw.eif, nitro-cli.json, measure.json, manifest.json,
build-info.json (with "parentImage" when --parent-image is given).
EGW_CLI=<executable> replaces `node dist/infra/cli/egw.js` (tests use it).
EOF
}

fail_usage() { echo "build.sh: $*" >&2; exit 2; }
fail_check() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

trust_policy=""
operations=""
trust_any=0
sign_key=""
sign_cert=""
out_dir=""
base_image=""
tag=""
label=""
allow_dirty=0
parent_tag=""
parent_base=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --trust-policy) [[ $# -ge 2 ]] || fail_usage "--trust-policy needs a file"; trust_policy="$2"; shift 2 ;;
    --operations) [[ $# -ge 2 ]] || fail_usage "--operations needs a file"; operations="$2"; shift 2 ;;
    --trust-any) trust_any=1; shift ;;
    --config) fail_usage "--config is gone: the runtime config is now a trust policy and operations; give --trust-policy <file> [--operations <file>]" ;;
    --sign-key) [[ $# -ge 2 ]] || fail_usage "--sign-key needs a file"; sign_key="$2"; shift 2 ;;
    --sign-cert) [[ $# -ge 2 ]] || fail_usage "--sign-cert needs a file"; sign_cert="$2"; shift 2 ;;
    --out-dir) [[ $# -ge 2 ]] || fail_usage "--out-dir needs a directory"; out_dir="$2"; shift 2 ;;
    --base-image) [[ $# -ge 2 ]] || fail_usage "--base-image needs a reference"; base_image="$2"; shift 2 ;;
    --tag) [[ $# -ge 2 ]] || fail_usage "--tag needs a name"; tag="$2"; shift 2 ;;
    --label) [[ $# -ge 2 ]] || fail_usage "--label needs a text"; label="$2"; shift 2 ;;
    --parent-image) [[ $# -ge 2 ]] || fail_usage "--parent-image needs a tag"; parent_tag="$2"; shift 2 ;;
    --parent-base-image) [[ $# -ge 2 ]] || fail_usage "--parent-base-image needs a reference"; parent_base="$2"; shift 2 ;;
    --allow-dirty) allow_dirty=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; fail_usage "unknown option: $1" ;;
  esac
done

if [[ -n "$sign_key" && -z "$sign_cert" || -z "$sign_key" && -n "$sign_cert" ]]; then
  fail_usage "--sign-key and --sign-cert go together"
fi
# The manifest needs a trust section (egw manifest create refuses to write
# one without): derived from the trust policy, or "any" said on purpose.
if [[ -z "$trust_policy" && "$trust_any" -eq 0 ]]; then
  fail_usage "the manifest needs a trust section: give --trust-policy <file>, or --trust-any to constrain nothing on purpose"
fi
if [[ -n "$trust_policy" && "$trust_any" -eq 1 ]]; then
  fail_usage "--trust-policy and --trust-any contradict each other"
fi
if [[ -n "$operations" && -z "$trust_policy" ]]; then
  fail_usage "--operations goes with --trust-policy"
fi
for f in "$trust_policy" "$operations" "$sign_key" "$sign_cert"; do
  [[ -z "$f" || -f "$f" ]] || fail_usage "$f: no such file"
done
if [[ -n "$parent_base" && -z "$parent_tag" ]]; then
  fail_usage "--parent-base-image goes with --parent-image"
fi
if [[ -n "$parent_tag" ]]; then
  # name[:port/path]:tag, lowercase name, an explicit tag that is not
  # "latest": the chart refuses untagged and :latest references, and a tag
  # that moves is no record of what was built.
  if [[ ! "$parent_tag" =~ ^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ || "${parent_tag##*/}" != *:* || "${parent_tag##*:}" == latest ]]; then
    fail_usage "--parent-image \"$parent_tag\" is not a name:tag reference (an explicit tag, not :latest)"
  fi
fi

# ─── prerequisites ────────────────────────────────────────────────────────────
command -v git >/dev/null || fail_usage "git not found"
command -v node >/dev/null || fail_usage "node not found (Node >= 20 runs egw measure and egw manifest create)"
command -v docker >/dev/null || fail_usage "docker not found"
buildx_version=$(docker buildx version 2>/dev/null) || fail_usage "docker buildx not available (install the buildx plugin, >= 0.13)"
if [[ "$buildx_version" =~ v([0-9]+)\.([0-9]+) ]]; then
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  if (( major == 0 && minor < 13 )); then
    fail_usage "docker buildx >= 0.13 is needed for rewrite-timestamp=true (found: $buildx_version)"
  fi
else
  fail_usage "cannot read the docker buildx version from: $buildx_version"
fi
command -v nitro-cli >/dev/null || fail_usage "nitro-cli not found (aws-nitro-enclaves-cli, on an enclave-capable parent instance)"
nitro_cli_version=$(nitro-cli --version 2>/dev/null || echo unknown)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(git -C "$script_dir" rev-parse --show-toplevel) || fail_usage "$script_dir is not inside a git work tree"
dockerfile="$repo_root/infra/deploy/image/Dockerfile"
[[ -f "$dockerfile" ]] || fail_usage "$dockerfile not found"

egw() {
  if [[ -n "${EGW_CLI:-}" ]]; then
    "$EGW_CLI" "$@"
  else
    node "$repo_root/dist/infra/cli/egw.js" "$@"
  fi
}
if [[ -z "${EGW_CLI:-}" && ! -f "$repo_root/dist/infra/cli/egw.js" ]]; then
  fail_usage "dist/infra/cli/egw.js not found: run npm ci (it builds dist/) first"
fi

# ─── source: commit, time, clean tree ────────────────────────────────────────
out_dir=${out_dir:-"$repo_root/build"}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

git_commit=$(git -C "$repo_root" rev-parse HEAD)
[[ "$git_commit" =~ ^[0-9a-f]{40}$ ]] || fail_usage "unexpected commit id: $git_commit"
# The commit time, not the clock: every rebuild of this commit uses the same value.
source_date_epoch=$(git -C "$repo_root" log -1 --format=%ct HEAD)
[[ "$source_date_epoch" =~ ^[0-9]+$ ]] || fail_usage "unexpected commit time: $source_date_epoch"

# Untracked files count: they would be in the build context. The out dir
# (build/ by default) is excluded so that a second run is not "dirty".
pathspec=(.)
case "$out_dir/" in
  "$repo_root"/*) pathspec+=(":(exclude)${out_dir#"$repo_root"/}") ;;
esac
dirty=$(git -C "$repo_root" status --porcelain --untracked-files=all -- "${pathspec[@]}")
if [[ -n "$dirty" ]]; then
  if (( allow_dirty )); then
    log "WARNING: building from a dirty tree; the image will not match commit $git_commit"
  else
    echo "$dirty" | head -n 20 >&2
    fail_usage "the work tree has uncommitted or untracked files (above); commit them or pass --allow-dirty"
  fi
fi

version=$(node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version))' "$repo_root/package.json")
[[ "$version" =~ ^[0-9A-Za-z.+-]+$ ]] || fail_usage "unexpected package.json version: $version"
short=${git_commit:0:12}
tag=${tag:-"enclave-gateway:${version}-${short}"}
label=${label:-"enclave-gateway ${version} (${short})"}

# ─── base image: pinned by digest, or refused ────────────────────────────────
if [[ -z "$base_image" ]]; then
  base_image=$(sed -n 's/^ARG NODE_IMAGE=//p' "$dockerfile" | head -n 1)
fi
if [[ ! "$base_image" =~ ^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$ ]]; then
  fail_usage "base image \"$base_image\" is not pinned by digest (expected name[:tag]@sha256:<64 hex>)"
fi
# The pod image's base, checked the same way before anything is built.
parent_dockerfile="$repo_root/infra/deploy/image/parent.Dockerfile"
if [[ -n "$parent_tag" ]]; then
  [[ -f "$parent_dockerfile" ]] || fail_usage "$parent_dockerfile not found"
  if [[ -z "$parent_base" ]]; then
    parent_base=$(sed -n 's/^ARG AL2023_IMAGE=//p' "$parent_dockerfile" | head -n 1)
  fi
  if [[ ! "$parent_base" =~ ^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$ ]]; then
    fail_usage "pod image base \"$parent_base\" is not pinned by digest (expected name[:tag]@sha256:<64 hex>)"
  fi
fi

eif="$out_dir/egw.eif"
rm -f "$eif" "$out_dir/nitro-cli.json" "$out_dir/measure.json" "$out_dir/manifest.json" "$out_dir/build-info.json"

# ─── image ───────────────────────────────────────────────────────────────────
log "building $tag from $git_commit (SOURCE_DATE_EPOCH=$source_date_epoch, base $base_image)"
SOURCE_DATE_EPOCH="$source_date_epoch" docker buildx build \
  --file "$dockerfile" \
  --build-arg "NODE_IMAGE=$base_image" \
  --build-arg "SOURCE_DATE_EPOCH=$source_date_epoch" \
  --provenance=false \
  --sbom=false \
  --output "type=docker,name=$tag,rewrite-timestamp=true" \
  "$repo_root" >&2

image_digest=$(docker image inspect --format '{{.Id}}' "$tag")
[[ "$image_digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail_check "unexpected image id from docker image inspect: $image_digest"
log "image $image_digest"

# ─── EIF ─────────────────────────────────────────────────────────────────────
nitro_args=(build-enclave --docker-uri "$tag" --output-file "$eif")
if [[ -n "$sign_key" ]]; then
  nitro_args+=(--private-key "$sign_key" --signing-certificate "$sign_cert")
fi
nitro_out=$(nitro-cli "${nitro_args[@]}") || fail_check "nitro-cli build-enclave failed"
[[ -f "$eif" ]] || fail_check "nitro-cli did not write $eif"
# nitro-cli prints progress lines, then the JSON object; keep the object.
printf '%s\n' "$nitro_out" | node -e '
  const text = require("fs").readFileSync(0, "utf8");
  const start = text.search(/^\{/m);
  let json;
  try { json = JSON.parse(text.slice(start)); } catch { json = undefined; }
  if (start < 0 || !json || typeof json.Measurements !== "object") {
    process.stderr.write("build.sh: nitro-cli printed no Measurements JSON\n");
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(json, null, 2) + "\n");
' > "$out_dir/nitro-cli.json" || fail_check "cannot read nitro-cli's output"

# ─── cross-check: our EIF reader must compute nitro-cli's PCRs ───────────────
egw measure "$eif" --json > "$out_dir/measure.json" || fail_check "egw measure refused $eif (see $out_dir/measure.json)"
# shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
node -e '
  const fs = require("fs");
  const nitro = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).Measurements;
  const ours = JSON.parse(fs.readFileSync(process.argv[2], "utf8")).pcrs ?? {};
  const signed = process.argv[3] === "1";
  const indices = signed ? [0, 1, 2, 8] : [0, 1, 2];
  for (const i of [8]) if (!signed && (nitro["PCR" + i] !== undefined || ours[i] !== undefined)) indices.push(i);
  let bad = 0;
  for (const i of indices) {
    const a = String(nitro["PCR" + i] ?? "").toLowerCase();
    const b = String(ours[i] ?? "").toLowerCase();
    const ok = /^[0-9a-f]{96}$/.test(a) && a === b;
    if (!ok) bad++;
    process.stderr.write(`  PCR${i} ${ok ? "match" : "MISMATCH"}\n    nitro-cli   ${a || "(none)"}\n    egw measure ${b || "(none)"}\n`);
  }
  process.exit(bad === 0 ? 0 : 1);
' "$out_dir/nitro-cli.json" "$out_dir/measure.json" "$([[ -n "$sign_key" ]] && echo 1 || echo 0)" \
  || fail_check "nitro-cli and egw measure disagree on the PCRs of $eif: not writing a manifest"

# ─── manifest ────────────────────────────────────────────────────────────────
manifest_args=(manifest create --eif "$eif" --version "$version" --git-commit "$git_commit" --image-digest "$image_digest" --label "$label")
if [[ -n "$trust_policy" ]]; then
  manifest_args+=(--trust-policy "$trust_policy")
  if [[ -n "$operations" ]]; then manifest_args+=(--operations "$operations"); fi
else
  manifest_args+=(--trust-any)
fi
egw "${manifest_args[@]}" > "$out_dir/manifest.json.tmp" || { rm -f "$out_dir/manifest.json.tmp"; fail_check "egw manifest create failed"; }
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$out_dir/manifest.json.tmp" \
  || { rm -f "$out_dir/manifest.json.tmp"; fail_check "egw manifest create did not print JSON"; }
mv "$out_dir/manifest.json.tmp" "$out_dir/manifest.json"

# What a reviewer needs to rebuild and compare.
GIT_COMMIT="$git_commit" SDE="$source_date_epoch" BASE="$base_image" TAG="$tag" DIGEST="$image_digest" DIRTY="$([[ -n "$dirty" ]] && echo true || echo false)" \
BUILDX="$buildx_version" NITRO="$nitro_cli_version" VERSION="$version" node -e '
  const fs = require("fs");
  const crypto = require("crypto");
  const [eif, measure, out] = process.argv.slice(1);
  const e = process.env;
  const info = {
    version: e.VERSION,
    gitCommit: e.GIT_COMMIT,
    sourceDateEpoch: Number(e.SDE),
    dirty: e.DIRTY === "true",
    baseImage: e.BASE,
    imageTag: e.TAG,
    imageDigest: e.DIGEST,
    eifSha256: crypto.createHash("sha256").update(fs.readFileSync(eif)).digest("hex"),
    pcrs: JSON.parse(fs.readFileSync(measure, "utf8")).pcrs,
    tools: { buildx: e.BUILDX, nitroCli: e.NITRO, node: process.version },
  };
  fs.writeFileSync(out, JSON.stringify(info, null, 2) + "\n");
' "$eif" "$out_dir/measure.json" "$out_dir/build-info.json"

# ─── pod image (optional): nitro-cli + egw host + this EIF ────────────────────
if [[ -n "$parent_tag" ]]; then
  eif_sha256=$(node -e 'process.stdout.write(require("crypto").createHash("sha256").update(require("fs").readFileSync(process.argv[1])).digest("hex"))' "$eif")
  [[ "$eif_sha256" =~ ^[0-9a-f]{64}$ ]] || fail_check "cannot hash $eif"
  log "building the pod image $parent_tag (base $parent_base, EIF sha256 $eif_sha256)"
  # The EIF goes in by named context (the out dir), not through the
  # repository context, and the Dockerfile checks it against EIF_SHA256.
  SOURCE_DATE_EPOCH="$source_date_epoch" docker buildx build \
    --file "$parent_dockerfile" \
    --build-arg "AL2023_IMAGE=$parent_base" \
    --build-arg "SOURCE_DATE_EPOCH=$source_date_epoch" \
    --build-arg "EIF_SHA256=$eif_sha256" \
    --build-context "eif=$out_dir" \
    --provenance=false \
    --sbom=false \
    --output "type=docker,name=$parent_tag,rewrite-timestamp=true" \
    "$repo_root" >&2 || fail_check "the pod image build failed (build-info.json describes the EIF only)"

  parent_digest=$(docker image inspect --format '{{.Id}}' "$parent_tag")
  [[ "$parent_digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail_check "unexpected image id from docker image inspect: $parent_digest"
  log "pod image $parent_digest"
  # eifSizeMiB is the chart's enclave.eifSizeMiB (nitro-cli wants 4x that in enclave memory).
  TAG="$parent_tag" BASE="$parent_base" DIGEST="$parent_digest" EIF_SHA256="$eif_sha256" node -e '
    const fs = require("fs");
    const [eif, out] = process.argv.slice(1);
    const e = process.env;
    const info = JSON.parse(fs.readFileSync(out, "utf8"));
    info.parentImage = {
      imageTag: e.TAG,
      baseImage: e.BASE,
      imageDigest: e.DIGEST,
      eifSha256: e.EIF_SHA256,
      eifSizeMiB: Math.ceil(fs.statSync(eif).size / (1024 * 1024)),
    };
    fs.writeFileSync(out, JSON.stringify(info, null, 2) + "\n");
  ' "$eif" "$out_dir/build-info.json"
fi

log "done: $eif, $out_dir/manifest.json${parent_tag:+, pod image $parent_tag}"
