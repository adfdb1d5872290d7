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

fail_usage() { echo "build.sh: $*" >&2; exit 2; }
fail_check() { echo "build.sh: $*" >&2; exit 1; }
log() { echo "build.sh: $*" >&2; }

# The decisions (flags, pinned references, buildx version, nitro-cli's
# output, the PCR comparison, build-info.json) are TypeScript, tested in
# process (infra/deploy/image/build-options.ts); this script runs them
# through build-steps.ts and keeps git, docker and nitro-cli.
command -v node >/dev/null || fail_usage "node not found (Node >= 20 runs the build steps, egw measure and egw manifest create)"
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
steps_js="$script_dir/../../../dist/infra/deploy/image/build-steps.js"
[[ -f "$steps_js" ]] || fail_usage "dist/infra/deploy/image/build-steps.js not found: run npm ci (it builds dist/) first"
steps() { node "$steps_js" "$@"; }

# Sets trust_policy operations trust_any sign_key sign_cert out_dir
# base_image tag label parent_tag parent_base allow_dirty show_help, or
# prints the refusal and exits 2.
assignments=$(steps parse-args "$@") || exit $?
eval "$assignments"
if (( show_help )); then steps usage; exit 0; fi

# ─── prerequisites ────────────────────────────────────────────────────────────
command -v git >/dev/null || fail_usage "git not found"
command -v docker >/dev/null || fail_usage "docker not found"
buildx_version=$(docker buildx version 2>/dev/null) || fail_usage "docker buildx not available (install the buildx plugin, >= 0.13)"
steps buildx-version "$buildx_version" || exit $?
command -v nitro-cli >/dev/null || fail_usage "nitro-cli not found (aws-nitro-enclaves-cli, on an enclave-capable parent instance)"
nitro_cli_version=$(nitro-cli --version 2>/dev/null || echo unknown)

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
base_image=$(steps base-image "$dockerfile" NODE_IMAGE "$base_image" "base image") || exit $?
# The pod image's base, checked the same way before anything is built.
parent_dockerfile="$repo_root/infra/deploy/image/parent.Dockerfile"
if [[ -n "$parent_tag" ]]; then
  [[ -f "$parent_dockerfile" ]] || fail_usage "$parent_dockerfile not found"
  parent_base=$(steps base-image "$parent_dockerfile" AL2023_IMAGE "$parent_base" "pod image base") || exit $?
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
printf '%s\n' "$nitro_out" | steps nitro-json > "$out_dir/nitro-cli.json" || fail_check "cannot read nitro-cli's output"

# ─── cross-check: our EIF reader must compute nitro-cli's PCRs ───────────────
egw measure "$eif" --json > "$out_dir/measure.json" || fail_check "egw measure refused $eif (see $out_dir/measure.json)"
steps compare-pcrs "$out_dir/nitro-cli.json" "$out_dir/measure.json" "$([[ -n "$sign_key" ]] && echo 1 || echo 0)" \
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
BUILDX="$buildx_version" NITRO="$nitro_cli_version" VERSION="$version" steps build-info "$eif" "$out_dir/measure.json" "$out_dir/build-info.json"

# ─── pod image (optional): nitro-cli + egw host + this EIF ────────────────────
if [[ -n "$parent_tag" ]]; then
  eif_sha256=$(steps sha256 "$eif")
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
  TAG="$parent_tag" BASE="$parent_base" DIGEST="$parent_digest" EIF_SHA256="$eif_sha256" steps parent-info "$eif" "$out_dir/build-info.json"
fi

log "done: $eif, $out_dir/manifest.json${parent_tag:+, pod image $parent_tag}"
