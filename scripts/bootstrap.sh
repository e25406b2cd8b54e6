#!/usr/bin/env bash
# Idempotent set-up used by every make target: Debian packages for the lab (when root),
# then .venv with the host tools. Safe to run again; does nothing when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v tshark  >/dev/null 2>&1 || need+=(tshark)
command -v ip      >/dev/null 2>&1 || need+=(iproute2)
command -v faketime >/dev/null 2>&1 || need+=(faketime)   # libfaketime: the faithful board's clock
[ -x /usr/sbin/ser2net ] || command -v ser2net >/dev/null 2>&1 || need+=(ser2net)  # labgrid exporter
# the SIP servers of the lab (issue 15): Kamailio with its TLS module, SIPp for scripted peers
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
compgen -G '/usr/lib/*/kamailio/modules/tls.so' >/dev/null || need+=(kamailio-tls-modules)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "!! not root: please install ${need[*]} (e.g. sudo apt-get install ${need[*]})."
    echo "!! continuing: the namespace lab and capture decoding are skipped without them."
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing host tools and their pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
