#!/bin/sh
# Makes the cluster at the first start (trust authentication from anywhere: a test stack's database,
# reachable only through the port the tests publish on 127.0.0.1), then runs the server in the foreground.
set -eu
BIN=/usr/lib/postgresql/15/bin
DATA=/var/lib/postgresql/data
if [ ! -s "$DATA/PG_VERSION" ]; then
  "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  printf 'host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n' >>"$DATA/pg_hba.conf"
  echo "CREATE DATABASE hashrelay" | "$BIN/postgres" --single -D "$DATA" postgres >/dev/null
fi
exec "$BIN/postgres" -D "$DATA" -c listen_addresses='*' -p 5432 -k /tmp
