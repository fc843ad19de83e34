#!/usr/bin/env bash
# The test command from the README. It installs the real SeaweedFS 4.48 (the peer, from
# ../shared/tools/peer.sh) when that script is there, so the compatibility tests run against
# it; without the peer those tests are reported as ignored, never as passed. Tests named
# netns_* build network namespaces (root and `ip netns`); they run when a namespace can be
# made here, and are reported as ignored (or left out, with the reason) otherwise.
set -euo pipefail
cd "$(dirname "$0")"

peer=../shared/tools/peer.sh
if [[ -z ${KELP_PEER_WEED:-} && -x $peer ]]; then
  bash "$peer" install
  export KELP_PEER_WEED=${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed
fi

netns=no
probe=kelp-probe-$$
if ip netns add "$probe" 2>/dev/null; then
  ip netns del "$probe"
  netns=yes
else
  echo "test.sh: cannot create a network namespace (needs root and ip netns); the netns_ tests are ignored" >&2
fi

if [[ -n ${KELP_PEER_WEED:-} ]]; then
  if [[ $netns == yes ]]; then
    cargo test --workspace -- --include-ignored
  else
    cargo test --workspace -- --include-ignored --skip netns_
  fi
else
  echo "test.sh: no SeaweedFS peer (set KELP_PEER_WEED); its compatibility tests are ignored" >&2
  cargo test --workspace
  if [[ $netns == yes ]]; then
    cargo test --test cluster_partition -- --ignored
  fi
fi
