#!/usr/bin/env bash
# Install the Debian packages given that are missing, and nothing else: no recommended
# packages, no upgrade apt does not need. Before it starts it says how many packages that is
# and how large; then one line per step, with apt's progress every 20 % on a slow mirror.
# apt's own output goes to LOG (shown, its end, when a step fails).
#
#   tools/debs.sh LOG PACKAGE...
set -uo pipefail

log=$1
shift
mkdir -p "$(dirname "$log")"
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: Debian packages: all $# installed"
  exit 0
fi
echo "setup: Debian packages: ${#missing[@]} of $# missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: installing them needs root (apt-get): run as root, or install them first" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
: >"$log"

failed() {
  echo "setup: $1 failed; the end of $log:" >&2
  tail -n 25 "$log" >&2
  exit 1
}

echo "setup: apt-get update (the package lists)"
apt-get update -q >>"$log" 2>&1 || failed "apt-get update"

# The plan, from a simulated run: the packages apt would unpack, those it must upgrade
# (a new package may need a newer library), and their sizes from the package lists.
apt=(apt-get install -y -q --no-install-recommends --no-upgrade "${missing[@]}")
plan=$("${apt[@]}" -s 2>>"$log") || { echo "$plan" >>"$log"; failed "apt-get install -s"; }
new=$(awk '/^Inst / && $3 !~ /^\[/ {n++} END {print n+0}' <<<"$plan")
upgrade=$(awk '/^Inst / && $3 ~ /^\[/ {printf "%s%s", sep, $2; sep=" "}' <<<"$plan")
versions=$(awk '/^Inst / {v = ($3 ~ /^\[/) ? $4 : $3; sub(/^\(/, "", v); print $2 "=" v}' \
  <<<"$plan")
sizes=$(apt-cache show --no-all-versions $versions 2>/dev/null |
  awk '/^Size:/ {d += $2} /^Installed-Size:/ {i += $2}
       END {printf "%.0f MB to download, about %.0f MB on disk", d / 1e6, i * 1024 / 1e6}')
said="$new new package(s)"
[ -n "$upgrade" ] && said="$said, $(wc -w <<<"$upgrade") upgraded because they need it ($upgrade)"
echo "setup: apt-get install --no-install-recommends: $said; $sizes"

# APT::Status-Fd: "dlstatus:N:PERCENT:..." while downloading, "pmstatus:PKG:PERCENT:..."
# while unpacking and configuring: one line whenever a phase passes another 20 %.
{ "${apt[@]}" -o APT::Status-Fd=3 3>&1 1>>"$log" 2>&1 || echo "apt-failed"; } |
  awk -F: '
    /^apt-failed$/ {failed = 1; next}
    $1 == "dlstatus" || $1 == "pmstatus" {
      phase = ($1 == "dlstatus") ? "downloading" : "unpacking and configuring"
      step = int($3 / 20) * 20
      if (!(phase in shown) || step > shown[phase]) {
        printf "setup:   %s: %d %%\n", phase, step
        fflush()
        shown[phase] = step
      }
    }
    END {exit failed}' || failed "apt-get install"
echo "setup: installed ${missing[*]}"
