#!/usr/bin/env bash
# bench/ktrdr.sh KTRDR_SRC=<checkout> (not in `make bench`: CI has no ktrdr): our backend and worker-cpu
# for real ktrdr next to ktrdr's own deploy/docker/Dockerfile.{backend,worker-cpu} built from the same
# commit. No registry answers here, so their `FROM python:3.13-slim` points at the same base ours use
# (the trixie debootstrap base), plus what python:3.13-slim has and it lacks: pip, and the host's CA
# bundle so that pip/uv reach PyPI through this machine's proxy. Cold = no layer cache (and, for ours,
# a new wheelhouse); warm = the same build again. Writes the "ktrdr" section of docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
: "${KTRDR_SRC:?KTRDR_SRC=<ktrdr checkout>}"
src=$(cd "$KTRDR_SRC" && pwd -P)
commit=${KTRDR_COMMIT:-$(git -C "$src" rev-parse --short=8 HEAD 2>/dev/null || echo unknown)}
work=$repo/build/bench-ktrdr
rm -rf "$work"; mkdir -p "$work/logs" "$work/theirs"
cleanup() {
  docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^bench-theirs-' | xargs -r docker rmi -f >/dev/null 2>&1 || true
  docker builder prune -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.0f}')" "$@"; }
mb() { docker image inspect "$1" >/dev/null 2>&1 && docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f", $1 / 1e6}'; }

# --- ours: the images role on the checkout, into $work/ours (sharing the wheel and base cache of build/cache).
# The first run builds what the engine lacks (cold only on an engine that has never built this commit:
# make test-ktrdr's first run is the cold figure in docs/ktrdr.md); the second is the no-op (warm).
vars=(-e "ktrdr_source_dir=$src" -e "ktrdr_build_dir=$work/ours" -e "images_cache_dir=$repo/build/cache" -e images_keep=0)
t0=$(date +%s.%N); play ours-first inventories/local playbooks/build.yml "${vars[@]}"; ours_cold="$(secs "$t0" "$(date +%s.%N)") s"
t0=$(date +%s.%N); play ours-warm inventories/local playbooks/build.yml "${vars[@]}"; ours_warm="$(secs "$t0" "$(date +%s.%N)") s"
record=$work/ours/images.json
base=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['base_image'])" "$record")
ours_b=$(mb "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['backend'])" "$record")")
ours_w=$(mb "$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['worker_cpu'])" "$record")")

# --- theirs: ktrdr's Dockerfiles, FROM our base + pip + the host's CA bundle
cp /etc/ssl/certs/ca-certificates.crt "$work/theirs/ca.crt"
printf 'FROM %s\nCOPY ca.crt /etc/ssl/certs/ca-certificates.crt\nRUN python3 -m venv /opt/pip && ln -s /opt/pip/bin/pip /usr/local/bin/pip\nENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt UV_NATIVE_TLS=1\n' "$base" > "$work/theirs/Dockerfile"
docker build -q -t bench-theirs-base:py313 "$work/theirs" > "$work/logs/theirs-base.log" 2>&1
git -C "$src" archive HEAD | tar -x -C "$work/theirs" 2>/dev/null || cp -a "$src/." "$work/theirs/"
theirs() {  # theirs NAME DOCKERFILE CACHEFLAG -> seconds, or why it failed
  sed 's#^FROM python:3.13-slim#FROM bench-theirs-base:py313#' "$work/theirs/deploy/docker/$2" > "$work/theirs/$2.bench"
  local t0 log=$work/logs/theirs-$1$3.log; t0=$(date +%s.%N)
  # They need BuildKit (RUN --mount, heredocs); where the engine has no buildx, the legacy builder is
  # tried too, so that the table says what stops them.
  if DOCKER_BUILDKIT=1 docker build $3 -f "$work/theirs/$2.bench" -t "bench-theirs-$1" "$work/theirs" > "$log" 2>&1 ||
     { grep -q 'buildx component is missing' "$log" &&
       DOCKER_BUILDKIT=0 docker build $3 -f "$work/theirs/$2.bench" -t "bench-theirs-$1" "$work/theirs" >> "$log" 2>&1; }; then
    echo "$(secs "$t0" "$(date +%s.%N)") s"
  else
    echo "failed ($(grep -iEo '(error|unknown flag|requires buildkit)[^|]{0,140}' "$log" | tail -1 | tr -d '`'))"
  fi
}
tb_cold=$(theirs backend Dockerfile.backend --no-cache); tb_warm=$(theirs backend Dockerfile.backend "")
tw_cold=$(theirs worker-cpu Dockerfile.worker-cpu --no-cache); tw_warm=$(theirs worker-cpu Dockerfile.worker-cpu "")
theirs_b=$(mb bench-theirs-backend || true); theirs_w=$(mb bench-theirs-worker-cpu || true)

cat > "$work/section.md" <<EOF
<!-- bench:ktrdr:start (written by bench/ktrdr.sh; do not edit by hand) -->
## Real ktrdr: our images next to ktrdr's own Dockerfiles

Measured $(date -u +%F) with \`KTRDR_SRC=<ktrdr> bash bench/ktrdr.sh\` on $(nproc) cores (load $(load)), ktrdr
commit \`$commit\`, base \`$base\` for both (theirs: + pip + the host's CA bundle, which \`python:3.13-slim\` would
bring). Theirs: cold = \`docker build --no-cache\`, warm = the same build again. Ours: the images role's first
build of the commit on this engine, then its no-op (the cold build of ours is in [ktrdr.md](ktrdr.md)).

| image | ours: MB | ours: cold / warm | ktrdr's Dockerfile: MB | ktrdr's: cold / warm |
|---|---:|---|---:|---|
| backend | ${ours_b:--} | ${ours_cold} / ${ours_warm} (both images, one run) | ${theirs_b:--} | ${tb_cold} / ${tb_warm} |
| worker-cpu | ${ours_w:--} | (in the row above) | ${theirs_w:--} | ${tw_cold} / ${tw_warm} |

Theirs need BuildKit (\`RUN --mount=type=cache\`, a heredoc) and, for worker-cpu, PyTorch's CPU index
(\`download.pytorch.org\`); where the engine has no buildx and that index does not answer, as here, they do not
build at all, while ours build from the same commit with no flag. Logs: \`build/bench-ktrdr/logs/\`.
<!-- bench:ktrdr:end -->
EOF
replace_section ktrdr "$work/section.md"
cat "$work/section.md"
