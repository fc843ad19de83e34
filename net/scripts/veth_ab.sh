#!/usr/bin/env bash
# Runs net/scripts/wrk_ab.sh across a veth pair between two network namespaces made here
# (server in kelpzc-srv at 10.77.0.1, wrk in kelpzc-cli at 10.77.0.2), where, unlike
# loopback, a zero-copy send can skip the copy. Same arguments as wrk_ab.sh; needs root and
# `ip netns`. The namespaces are removed at the end.
#
#   SERVER=target/release/examples/file_body URL_PATH=/1048576 \
#     net/scripts/veth_ab.sh 3 4 16 1 "bytes:FILE_BODY_MODE=bytes" "sendzc:FILE_BODY_MODE=sendzc"
set -euo pipefail
here=$(dirname "$0")
srv=kelpzc-srv cli=kelpzc-cli
cleanup() { ip netns del "$srv" 2>/dev/null || true; ip netns del "$cli" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add "$srv"
ip netns add "$cli"
ip link add kelpzc0 netns "$srv" type veth peer name kelpzc1 netns "$cli"
ip -n "$srv" addr add 10.77.0.1/24 dev kelpzc0
ip -n "$cli" addr add 10.77.0.2/24 dev kelpzc1
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set kelpzc0 up
ip -n "$cli" link set kelpzc1 up
export HOST=10.77.0.1 SERVER_NETNS=$srv CLIENT_NETNS=$cli
# The server binds the veth address: every variant gets BIND_IP.
variants=()
for variant in "$@"; do
  if [[ $variant == *:* ]]; then variants+=("$variant,BIND_IP=10.77.0.1"); else variants+=("$variant"); fi
done
"$here/wrk_ab.sh" "${variants[@]}"
