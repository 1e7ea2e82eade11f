#!/usr/bin/env bash
# Make sure a Redis answers at REDIS_URL's host:port (default 127.0.0.1:6379):
# use the one that runs, else start one (installing redis-server if needed).
set -euo pipefail
url="${REDIS_URL:-redis://127.0.0.1:6379/0}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$host" ] && port=6379

ping() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if ping; then echo "redis: answering on $host:$port"; exit 0; fi
case "$host" in 127.*|localhost) ;; *) echo "redis: nothing answers on $host:$port (REDIS_URL); start it there" >&2; exit 1;; esac
if ! command -v redis-server >/dev/null; then
  echo "redis: installing redis-server from Debian's packages"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
mkdir -p "${TMPDIR:-/tmp}/al-redis"
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir "${TMPDIR:-/tmp}/al-redis" --logfile "${TMPDIR:-/tmp}/al-redis/redis.log"
for _ in $(seq 1 50); do ping && { echo "redis: started on $host:$port"; exit 0; }; sleep 0.1; done
echo "redis: failed to start; see ${TMPDIR:-/tmp}/al-redis/redis.log" >&2
exit 1
