#!/bin/bash
# Render /etc/nginx/relay.conf.template and run nginx in the foreground:
#   RELAY_SERVERS  the relay servers' host:port, comma-separated (required)
#   LISTEN         nginx's address, host:port or port (default 8000)
set -euo pipefail
dir=/tmp/nginx
mkdir -p "$dir"
IFS=',' read -ra servers <<< "${RELAY_SERVERS:?set RELAY_SERVERS to the relay servers host:port, comma-separated}"
upstream=""
for server in "${servers[@]}"; do
  upstream+="        server ${server} max_fails=1 fail_timeout=5s;"$'\n'
done
conf=$(< /etc/nginx/relay.conf.template)
conf=${conf//'{{dir}}'/$dir}
conf=${conf//'{{listen}}'/${LISTEN:-8000}}
conf=${conf//'{{servers}}'/${upstream%$'\n'}}
printf '%s\n' "$conf" > "$dir/nginx.conf"
echo "nginx on ${LISTEN:-8000} in front of ${RELAY_SERVERS}"
exec nginx -c "$dir/nginx.conf" -e stderr
