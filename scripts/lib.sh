# Shared by scripts/test and scripts/cluster (sourced, from the repository root): installing the
# system and node packages the tests and the local cluster need. Idempotent: what is there is kept.

say() { printf '\n==> %s\n' "$*"; }

# The nginx binary (Debian puts it in /usr/sbin, often not on a user's PATH), or nothing.
nginx_bin() { command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true; }

# Debian packages providing each tool by name: redis (redis-server, redis-cli), nginx, chromium,
# build (a C compiler and make: the jemalloc allocator is built from source by its crate).
packages_for() {
  local tool
  for tool in "$@"; do
    case $tool in
      redis) command -v redis-server >/dev/null || echo redis-server
             command -v redis-cli >/dev/null || echo redis-tools ;;
      nginx) [ -n "$(nginx_bin)" ] || echo nginx ;;
      chromium) command -v chromium >/dev/null || echo chromium ;;
      build) command -v cc >/dev/null || echo gcc
             command -v make >/dev/null || echo make ;;
      *) echo "scripts/lib.sh: unknown tool $tool" >&2; return 1 ;;
    esac
  done
}

# Installs the tools named (redis, nginx, chromium, build) that are missing, with apt-get (as root or
# through passwordless sudo), then checks that each is there. Fails naming what is missing.
install_tools() {
  local missing=() tool
  for tool in "$@"; do
    case $tool in redis | nginx | chromium | build) ;; *) echo "install_tools: unknown tool $tool" >&2; return 1 ;; esac
  done
  mapfile -t missing < <(packages_for "$@")
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
      sudo -n true 2>/dev/null || { echo "missing ${missing[*]}: install them with: sudo apt-get install -y ${missing[*]}" >&2; return 1; }
      sudo=(sudo)
    fi
    # Keep the packages' own services from starting: the tests and the cluster start their own.
    local policy=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
      "${sudo[@]}" chmod +x "$policy"
      created=1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
    [ "$created" = 1 ] && "${sudo[@]}" rm -f "$policy"
  fi
  mapfile -t missing < <(packages_for "$@")
  if ((${#missing[@]})); then
    echo "still missing after installing: ${missing[*]}" >&2
    return 1
  fi
}

# `npm ci` in each directory whose node_modules is missing or older than its package-lock.json.
npm_ci_if_stale() {
  local dir
  for dir in "$@"; do
    [ -f "$dir/package-lock.json" ] || continue
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      say "npm ci --prefix $dir"
      npm ci --prefix "$dir" --no-audit --no-fund
    fi
  done
}

# cluster_nginx_config DIR LOGS NGINX_PORT PORT1 PORT2 PORT3: writes DIR/nginx.conf and
# DIR/conf.d/socketio.conf, the repository's nginx config (nginx/) with its pid, logs and temp
# paths under DIR/LOGS, listening on 127.0.0.1:NGINX_PORT, and socketio-N:3000 mapped to
# 127.0.0.1:PORTN. scripts/cluster and scripts/bench (reconnect-storm) run nginx from it.
cluster_nginx_config() {
  local dir=$1 logs=$2 nginx_port=$3 conf i
  local ports=("$4" "$5" "$6")
  mkdir -p "$dir/conf.d"
  sed -e "s#^pid .*#pid $dir/nginx.pid;#" \
      -e "s#^error_log .*#error_log $logs/nginx-error.log warn;#" \
      -e "s#/tmp/nginx-#$dir/tmp-#g" \
      nginx/nginx.conf >"$dir/nginx.conf"
  conf=$(sed -e "s#listen 3000\([ ;]\)#listen 127.0.0.1:$nginx_port\1#" nginx/conf.d/socketio.conf)
  for i in 1 2 3; do conf=${conf//socketio-$i:3000/127.0.0.1:${ports[$((i - 1))]}}; done
  printf '%s\n' "$conf" >"$dir/conf.d/socketio.conf"
}
