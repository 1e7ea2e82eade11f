#!/usr/bin/env bash
# Make sure a PostgreSQL answers at AL_PG_HOST:AL_PG_PORT (default 127.0.0.1:5432) for the
# end-to-end tests, which run Label Studio on it: use the one that runs, else start the
# local cluster. Skipped with AL_E2E_DB=sqlite.
set -euo pipefail
[ "${AL_E2E_DB:-postgresql}" = "sqlite" ] && { echo "postgres: not needed (AL_E2E_DB=sqlite)"; exit 0; }
host="${AL_PG_HOST:-127.0.0.1}"; port="${AL_PG_PORT:-5432}"

answers() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }

if answers; then echo "postgres: answering on $host:$port"; exit 0; fi
case "$host" in 127.*|localhost) ;; *) echo "postgres: nothing answers on $host:$port (AL_PG_HOST)" >&2; exit 1;; esac
if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  for version in $(ls /etc/postgresql); do
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 100); do answers && { echo "postgres: started on $host:$port"; exit 0; }; sleep 0.1; done
fi
echo "postgres: nothing answers on $host:$port and no local cluster could be started;" \
     "install PostgreSQL (trust auth for user postgres on 127.0.0.1) or run with AL_E2E_DB=sqlite" >&2
exit 1
