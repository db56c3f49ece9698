#!/bin/sh
# Generate one WireGuard key per site and render the four relay configs into OUTDIR:
#   ./make-keys.sh OUTDIR        (then copy OUTDIR/siteN.yaml and OUTDIR/siteN.key to site N)
# Each key file is created mode 0600 (the relay refuses a key others can read). Set
# TUNRELAY to the command to use if `tunrelay` is not on PATH (e.g. "python3 -m tunrelay.cli").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: make-keys.sh OUTDIR}
tunrelay=${TUNRELAY:-tunrelay}
mkdir -p "$out"
umask 077
substitutions=""
for site in 1 2 3 4; do
    $tunrelay genkey > "$out/site$site.key"
    public=$($tunrelay pubkey < "$out/site$site.key")
    substitutions="$substitutions -e s|SITE${site}_PUBLIC_KEY|$public|"
done
umask 022
for site in 1 2 3 4; do
    # shellcheck disable=SC2086
    sed $substitutions "$here/site$site.yaml" > "$out/site$site.yaml"
done
echo "keys and configs for sites 1-4 written to $out"
