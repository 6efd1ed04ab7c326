#!/usr/bin/env bash
# Builds, without any image registry, the base images that Dockerfile.*, docker-compose.yml
# and the tests use, under the SAME names as the official images:
#
#   bases: debian:bookworm-slim      debootstrap --variant=minbase bookworm + docker import
#          rust:1.95-slim-bookworm   FROM debian:bookworm-slim + the host's Rust 1.95 toolchain
#          postgres:15-bookworm      FROM debian:bookworm-slim + Debian's postgresql-15
#   job:   gitweave-busybox:latest   FROM scratch + Debian's static busybox (test/job image)
#   git:   gitweave-git:latest       scripts/git-image: the runner's checkout helper
#                                    (RUNNER_HELPER_IMAGE), FROM debian:bookworm-slim + git
#
# Usage: scripts/local-images.sh [all|bases|job|git|debian|rust|postgres]... [--rebuild]
#   (default: all). An image that already exists is left alone unless --rebuild is given, so
#   a machine that can pull the official images may pull them first and this script will
#   not touch them.
#
# Environment:
#   GITWEAVE_IMAGE_CACHE  where the debootstrap rootfs tarball is kept between runs
#                         (default /var/cache/gitweave-images); delete the tarball to
#                         bootstrap afresh.
#   DEBIAN_MIRROR         default http://deb.debian.org/debian
#   RUST_TOOLCHAIN_DIR    the Rust 1.95 toolchain to copy (default: found through rustup/rustc)
#   GITWEAVE_EXTRA_CA_DIR site-local CA certificates (*.crt) the rust image must trust, e.g.
#                         of a TLS-intercepting proxy between this machine and crates.io
#                         (default /usr/local/share/ca-certificates, Debian's place for them;
#                         set it empty for none). When they change, the rust image is rebuilt.
#
# How packages get into the images: the rust, postgres and git images are ordinary
# `docker build`s whose RUN steps call apt-get against the Debian mirror (and the debian rootfs
# gets its security updates in a throw-away container). On the machine this was written on,
# containers on the default bridge reach deb.debian.org, and crates.io through a
# TLS-intercepting proxy whose CA the host trusts (hence GITWEAVE_EXTRA_CA_DIR), although no
# image registry is reachable. So no `debootstrap --include=... + docker import` fallback is
# needed; a preflight check below says so plainly if that ever stops being true.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${GITWEAVE_IMAGE_CACHE:-/var/cache/gitweave-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

DEBIAN_IMAGE=debian:bookworm-slim
RUST_IMAGE=rust:1.95-slim-bookworm
RUST_SERIES=1.95
POSTGRES_IMAGE=postgres:15-bookworm
JOB_IMAGE=gitweave-busybox:latest
GIT_IMAGE=gitweave-git:latest

rebuild=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    all | bases | job | git | debian | rust | postgres) targets+=("$arg") ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "local-images.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(all)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'local-images.sh: error: %s\n' "$*" >&2; exit 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Returns 0 when the image must be (re)built; logs the skip otherwise.
needs_build() {
  if [ "$rebuild" = 0 ] && image_exists "$1"; then
    log "$1: already present, skipping (use --rebuild to replace it)"
    return 1
  fi
  return 0
}

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
  is_root || die "need root to apt-get install $*"
  log "installing $* with apt-get"
  apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

TMP_DIRS=()
cleanup() {
  local d
  for d in "${TMP_DIRS[@]+"${TMP_DIRS[@]}"}"; do
    rm -rf -- "$d"
  done
}
trap cleanup EXIT
# Sets NEW_TMP to a fresh directory that the EXIT trap removes.
NEW_TMP=
new_tmp() {
  NEW_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gitweave-images.XXXXXX")
  TMP_DIRS+=("$NEW_TMP")
}

# docker build without ever contacting a registry: the classic builder only pulls a FROM image
# that is missing locally, and every FROM used here is built by this script first.
docker_build() {
  DOCKER_BUILDKIT=0 docker build --pull=false "$@"
}

timed() {
  local name=$1 start end
  shift
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  log "$name: done in $((end - start))s"
}

# ---------------------------------------------------------------------------- debian
# Sets ROOTFS_TARBALL (no command substitution: new_tmp must record its directory in this
# shell so the EXIT trap removes it).
ROOTFS_TARBALL=
debian_rootfs_tarball() {
  local tarball="$CACHE_DIR/debian-$SUITE-minbase-amd64.tar"
  ROOTFS_TARBALL=$tarball
  if [ -s "$tarball" ]; then
    log "reusing cached rootfs $tarball"
    return
  fi
  is_root || die "debootstrap needs root (or put a rootfs tarball at $tarball)"
  command -v debootstrap >/dev/null || apt_install debootstrap
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || apt_install debian-archive-keyring

  local tmp rootfs
  new_tmp
  tmp=$NEW_TMP
  rootfs="$tmp/rootfs"
  log "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes, once; cached in $CACHE_DIR)"
  debootstrap --variant=minbase --arch=amd64 "$SUITE" "$rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 || {
    tail -n 30 "$tmp/debootstrap.log" >&2
    die "debootstrap failed"
  }
  slim_rootfs "$rootfs"

  mkdir -p "$CACHE_DIR"
  tar -C "$rootfs" --numeric-owner --xattrs -cf "$tmp/raw.tar" \
    --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' .
  rm -rf "$rootfs"
  if ! upgrade_rootfs "$tmp/raw.tar" "$tarball.partial"; then
    log "warning: could not apply bookworm-updates/security updates; using the plain $SUITE rootfs"
    mv "$tmp/raw.tar" "$tarball.partial"
  fi
  mv "$tarball.partial" "$tarball"
  log "cached rootfs at $tarball ($(du -h "$tarball" | cut -f1))"
}

# debootstrap installs the point release only; the official image also carries the
# bookworm-updates and bookworm-security updates. Apply them in a throw-away container (no
# chroot or mounts on the host) and export its file system flat, as one tarball again.
upgrade_rootfs() {
  local raw=$1 out=$2 tag="gitweave-local/debian-bootstrap:tmp" name
  name="gitweave-debian-upgrade-$$"
  docker import "$raw" "$tag" >/dev/null || return 1
  if docker run --name "$name" "$tag" /bin/bash -c '
      set -e
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      n=$(apt-get -s upgrade | grep -c "^Inst" || true)
      apt-get upgrade -y -qq -o Dpkg::Options::=--force-confold >/dev/null
      apt-get clean
      rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/cache/debconf/*-old
      echo "==> applied $n package updates from $(. /etc/os-release; echo "$VERSION_CODENAME")-updates/-security"' >&2 &&
    docker export "$name" >"$out"; then
    docker rm "$name" >/dev/null
    docker rmi "$tag" >/dev/null
    return 0
  fi
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker rmi "$tag" >/dev/null 2>&1 || true
  rm -f "$out"
  return 1
}

# What the official slim images do (debuerreotype's slimify + Docker's apt tweaks): no docs,
# man pages or translations, no apt caches, and the standard bookworm sources.
slim_rootfs() {
  local r=$1
  mkdir -p "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d" "$r/etc/apt/sources.list.d"
  cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
# drop documentation, man pages and translations, like the official slim images
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CFG
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  printf 'Acquire::Languages "none";\n' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  printf 'Acquire::GzipIndexes "true";\n' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
  rm -f "$r/etc/apt/sources.list"
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<CFG
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$r/usr/share/man/"* "$r/usr/share/info/"* "$r/usr/share/groff/"* "$r/usr/share/lintian/"* \
    "$r/usr/share/linda/"*
  find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$r/var/lib/apt/lists/"* "$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb \
    "$r/var/cache/debconf/"*-old "$r/var/log/"*.log "$r/var/log/apt/"* "$r/tmp/"* "$r/var/tmp/"*
  # Docker provides these at run time.
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  : >"$r/etc/machine-id" 2>/dev/null || true
  rm -f "$r/etc/hosts"
}

build_debian() {
  needs_build "$DEBIAN_IMAGE" || return 0
  local tarball
  debian_rootfs_tarball
  tarball=$ROOTFS_TARBALL
  log "$DEBIAN_IMAGE: docker import $tarball"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change 'LABEL org.gitweave.local-image="debian"' \
    --message "gitweave local debootstrap --variant=minbase $SUITE" \
    "$tarball" "$DEBIAN_IMAGE" >/dev/null
  docker run --rm "$DEBIAN_IMAGE" bash -c '. /etc/os-release && echo "$PRETTY_NAME"' >&2
}

# The rust and postgres images install packages with apt-get inside `docker build`; fail early
# with a clear message if build containers cannot reach the mirror.
MIRROR_CHECKED=0
check_mirror_from_containers() {
  [ "$MIRROR_CHECKED" = 0 ] || return 0
  log "checking that containers reach $MIRROR"
  if ! docker run --rm "$DEBIAN_IMAGE" bash -c \
    'apt-get update -qq -o Acquire::Retries=2 >/dev/null' >/dev/null 2>&1; then
    die "containers on the default bridge cannot run apt-get update against $MIRROR; the rust and
postgres images need it. (Fallback: build their rootfs on the host with
debootstrap --include=<packages> and docker import it.)"
  fi
  MIRROR_CHECKED=1
}

# ---------------------------------------------------------------------------- rust
find_rust_toolchain() {
  local dir="${RUST_TOOLCHAIN_DIR:-}" candidate sysroot
  if [ -z "$dir" ]; then
    for candidate in \
      "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$RUST_SERIES.0-x86_64-unknown-linux-gnu" \
      "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/stable-x86_64-unknown-linux-gnu"; do
      if [ -x "$candidate/bin/rustc" ]; then dir=$candidate; break; fi
    done
  fi
  if [ -z "$dir" ] && command -v rustc >/dev/null; then
    sysroot=$(rustc --print sysroot 2>/dev/null || true)
    [ -n "$sysroot" ] && [ -x "$sysroot/bin/rustc" ] && dir=$sysroot
  fi
  [ -n "$dir" ] || die "no Rust toolchain found on this machine (set RUST_TOOLCHAIN_DIR)"
  readlink -f "$dir"
}

# Copies the site-local CA certificates into $1 and sets EXTRA_CA_SUM to a digest of them.
EXTRA_CA_SUM=none
collect_extra_ca() {
  local dir=${GITWEAVE_EXTRA_CA_DIR-/usr/local/share/ca-certificates} f
  mkdir -p "$1"
  EXTRA_CA_SUM=none
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  while IFS= read -r -d '' f; do
    cp "$f" "$1/$(basename "$f")"
  done < <(find "$dir" -type f -name '*.crt' -print0)
  if compgen -G "$1/*.crt" >/dev/null; then
    EXTRA_CA_SUM=$(cat "$1"/*.crt | sha256sum | cut -c1-16)
  fi
}

build_rust() {
  local ca_probe
  if [ "$rebuild" = 0 ] && image_exists "$RUST_IMAGE"; then
    # A local rust image whose baked-in site CAs differ from the host's is rebuilt: cargo
    # inside it could not reach crates.io otherwise. (An official, pulled image is left alone.)
    new_tmp
    ca_probe=$NEW_TMP
    collect_extra_ca "$ca_probe"
    local have local_image
    local_image=$(docker image inspect -f '{{index .Config.Labels "org.gitweave.local-image"}}' "$RUST_IMAGE" 2>/dev/null || true)
    have=$(docker image inspect -f '{{index .Config.Labels "org.gitweave.extra-ca"}}' "$RUST_IMAGE" 2>/dev/null || true)
    if [ "$local_image" != rust ] || [ "$have" = "$EXTRA_CA_SUM" ]; then
      log "$RUST_IMAGE: already present, skipping (use --rebuild to replace it)"
      return 0
    fi
    log "$RUST_IMAGE: the host's site CA certificates changed ($have -> $EXTRA_CA_SUM); rebuilding"
  fi
  image_exists "$DEBIAN_IMAGE" || build_debian
  check_mirror_from_containers

  local tc version ctx dst t="x86_64-unknown-linux-gnu" f
  tc=$(find_rust_toolchain)
  version=$("$tc/bin/rustc" -vV | sed -n 's/^release: //p')
  case "$version" in
    "$RUST_SERIES".*) ;;
    *) die "$tc holds rustc $version, not $RUST_SERIES.x (set RUST_TOOLCHAIN_DIR)" ;;
  esac
  [ -x "$tc/bin/cargo" ] || die "$tc has no cargo"
  [ -d "$tc/lib/rustlib/$t/lib" ] || die "$tc has no rust-std for $t"
  log "$RUST_IMAGE: toolchain $tc (rustc $version)"

  new_tmp
  ctx=$NEW_TMP
  cp "$ROOT/scripts/base-images/rust/Dockerfile" "$ctx/"
  dst="$ctx/toolchain"
  mkdir -p "$dst/bin" "$dst/lib/rustlib/$t"
  # The "minimal" profile: rustc (+rustdoc), cargo, rust-std. Hard links when possible
  # (same file system), copies otherwise; docs, sources, clippy and rustfmt stay behind.
  copy() { cp -a --link "$@" 2>/dev/null || cp -a "$@"; }
  for f in cargo rustc rustdoc rust-gdb rust-gdbgui rust-lldb; do
    [ -e "$tc/bin/$f" ] && copy "$tc/bin/$f" "$dst/bin/"
  done
  for f in "$tc"/lib/*.so*; do copy "$f" "$dst/lib/"; done
  copy "$tc/lib/rustlib/$t/lib" "$dst/lib/rustlib/$t/"
  [ -d "$tc/lib/rustlib/$t/bin" ] && copy "$tc/lib/rustlib/$t/bin" "$dst/lib/rustlib/$t/"
  [ -d "$tc/lib/rustlib/etc" ] && copy "$tc/lib/rustlib/etc" "$dst/lib/rustlib/"
  [ -d "$tc/libexec" ] && copy "$tc/libexec" "$dst/"
  [ -d "$tc/etc" ] && copy "$tc/etc" "$dst/"
  for f in rust-installer-version multirust-channel-manifest.toml multirust-config.toml \
    "manifest-rustc-$t" "manifest-cargo-$t" "manifest-rust-std-$t"; do
    [ -e "$tc/lib/rustlib/$f" ] && copy "$tc/lib/rustlib/$f" "$dst/lib/rustlib/"
  done
  printf 'rustc-%s\ncargo-%s\nrust-std-%s\n' "$t" "$t" "$t" >"$dst/lib/rustlib/components"
  collect_extra_ca "$ctx/extra-ca"
  log "$RUST_IMAGE: build context $(du -sh "$ctx" | cut -f1), site CAs: $EXTRA_CA_SUM"

  docker_build -t "$RUST_IMAGE" --build-arg "RUST_VERSION=$version" \
    --label "org.gitweave.extra-ca=$EXTRA_CA_SUM" "$ctx"
}

# ---------------------------------------------------------------------------- postgres
build_postgres() {
  needs_build "$POSTGRES_IMAGE" || return 0
  image_exists "$DEBIAN_IMAGE" || build_debian
  check_mirror_from_containers
  docker_build -t "$POSTGRES_IMAGE" "$ROOT/scripts/base-images/postgres"
}

# ---------------------------------------------------------------------------- job
# ldd fails on a static executable ("not a dynamic executable").
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }

build_job() {
  needs_build "$JOB_IMAGE" || return 0
  local busybox=/bin/busybox ctx
  # Must be the static build (package busybox-static): the image has no libc.
  if ! is_static "$busybox"; then
    if is_root; then
      apt_install busybox-static
    fi
    is_static "$busybox" || die "need a static /bin/busybox: apt-get install busybox-static"
  fi
  new_tmp
  ctx=$NEW_TMP
  cp "$ROOT/scripts/job-image/Dockerfile" "$ctx/"
  cp "$busybox" "$ctx/busybox"
  local out
  out=$(docker_build -q -t "$JOB_IMAGE" "$ctx" 2>&1) || { printf '%s\n' "$out" >&2; die "building $JOB_IMAGE failed"; }
  docker run --rm "$JOB_IMAGE" sh -c 'echo "$(busybox | head -n 1)"; seq 3 | wc -l >/dev/null' >&2
}

# ---------------------------------------------------------------------------- git
build_git() {
  # Rebuilt when its Dockerfile changed since the image was built (its sha256 is a label).
  local sum have out
  sum=$(sha256sum "$ROOT/scripts/git-image/Dockerfile" | cut -c1-64)
  have=$(docker image inspect -f '{{index .Config.Labels "org.gitweave.dockerfile"}}' "$GIT_IMAGE" 2>/dev/null || true)
  if image_exists "$GIT_IMAGE" && [ "$have" != "$sum" ]; then
    log "$GIT_IMAGE: built from another scripts/git-image/Dockerfile, rebuilding"
  else
    needs_build "$GIT_IMAGE" || return 0
  fi
  image_exists "$DEBIAN_IMAGE" || build_debian
  check_mirror_from_containers
  out=$(docker_build -q --label "org.gitweave.dockerfile=$sum" -t "$GIT_IMAGE" "$ROOT/scripts/git-image" 2>&1) ||
    { printf '%s\n' "$out" >&2; die "building $GIT_IMAGE failed"; }
  docker run --rm "$GIT_IMAGE" git --version >&2
}

# ---------------------------------------------------------------------------- main
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot talk to the Docker daemon"

want() {
  local t
  for t in "${targets[@]}"; do
    case "$t" in
      all | "$1") return 0 ;;
      bases) case "$1" in debian | rust | postgres) return 0 ;; esac ;;
    esac
  done
  return 1
}

if want debian; then timed "$DEBIAN_IMAGE" build_debian; fi
if want rust; then timed "$RUST_IMAGE" build_rust; fi
if want postgres; then timed "$POSTGRES_IMAGE" build_postgres; fi
if want job; then timed "$JOB_IMAGE" build_job; fi
if want git; then timed "$GIT_IMAGE" build_git; fi
