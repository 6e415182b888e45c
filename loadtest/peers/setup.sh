#!/usr/bin/env bash
# Installs the peers that loadtest/compare.sh measures ssegate against: nginx with the
# nchan module, and Pushpin. Debian or Ubuntu, as root, once per machine. Node.js (for
# the hand-written Node server and Pushpin's GRIP backend) must already be installed.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
# Pushpin pulls in what its package needs (zurl, condure or mongrel2).
apt-get install -y --no-install-recommends nginx libnginx-mod-nchan pushpin procps curl openssl
# The packages start their own nginx and pushpin daemons: stop them, the start scripts
# run private instances on other ports and stop them by pid.
for svc in nginx pushpin; do
  if [ -x "/etc/init.d/$svc" ]; then "/etc/init.d/$svc" stop >/dev/null 2>&1 || true; fi
done
# The Node server and the GRIP backend use only Node's own http module: no npm install.
if ! command -v node >/dev/null; then
  echo "setup.sh: node not found; install Node.js 18 or later (e.g. apt-get install nodejs)" >&2
  exit 1
fi
node --version
echo "setup done"
