#!/usr/bin/env bash
# Installs what Strata needs from the system, only when it is missing:
#   protoc                   to build (the etcd client's gRPC code is generated at build time)
#   etcd, etcdctl (--test)   for the tests that start throwaway etcd servers
#   PostgreSQL (--test)      for the tests that start a throwaway PostgreSQL (initdb, postgres, psql)
#   git, tar (--test)        the independent checker of backup repositories
# Uses apt-get (Debian/Ubuntu) as root; otherwise prints the command to run.
set -euo pipefail

packages=()
command -v protoc >/dev/null 2>&1 || packages+=(protobuf-compiler)
if [[ "${1:-}" == "--test" ]]; then
  command -v etcd >/dev/null 2>&1 || packages+=(etcd-server)
  command -v etcdctl >/dev/null 2>&1 || packages+=(etcd-client)
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    packages+=(postgresql)
  fi
  command -v psql >/dev/null 2>&1 || packages+=(postgresql-client)
  command -v git >/dev/null 2>&1 || packages+=(git)
  command -v tar >/dev/null 2>&1 || packages+=(tar)
fi
[[ ${#packages[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${packages[*]}; install them with: sudo apt-get install -y ${packages[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# Debian's etcd-server package may start a system etcd on the default ports; the tests
# use their own servers on free ports, so it is stopped if it runs.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop etcd >/dev/null 2>&1 || true
  systemctl stop postgresql >/dev/null 2>&1 || true
fi
