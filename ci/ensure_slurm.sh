#!/usr/bin/env bash
# Make Debian's SLURM (slurm-wlm: slurmctld, slurmd, sbatch) and MUNGE available for the SLURM
# end-to-end test (tests/test_training_launchers.py), the way ensure_chromium.sh provides Chromium.
# Installs them with apt when missing and we may (root, apt present); otherwise says why and exits 0,
# so the test skips with that message (a user's laptop) — except under CI, where the test fails.
set -u
have() { command -v sbatch >/dev/null 2>&1 && command -v slurmctld >/dev/null 2>&1 \
         && command -v slurmd >/dev/null 2>&1 && command -v munged >/dev/null 2>&1; }
if have; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[ci] installing Debian slurm-wlm and munge for the SLURM test …"
  export DEBIAN_FRONTEND=noninteractive
  # the packages' own services are not started here (no init system); the test starts its own daemons
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null && have; then
    echo "[ci] slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null)"
    exit 0
  fi
  echo "[ci] apt-get could not install slurm-wlm and munge" >&2
  exit 1
fi
echo "[ci] SLURM is not installed and cannot be installed here (not root or no apt);" \
     "the SLURM end-to-end test will skip. Install Debian's 'slurm-wlm' and 'munge' to run it."
exit 0
