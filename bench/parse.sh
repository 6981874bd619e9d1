#!/bin/sh
# Times reading one synthetic sensitivity table of N layers (default a
# million; bench/gen writes it) as a process and prints the wall time, the
# CPU time (user + system) and the peak resident memory, from GNU time.
# The goal for a million layers: at most 3 s and 1 GB.
#
# Usage: sh bench/parse.sh [N]   (run from the repository root; needs
# /usr/bin/time, Debian package time)
set -eu
n=${1:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
[ -x /usr/bin/time ] || { echo "/usr/bin/time not found (apt-get install time)" >&2; exit 1; }
go build -o "$dir/gen" ./bench/gen
"$dir/gen" -groups "$n" -table "$dir/t.json"
echo "table: $(wc -c <"$dir/t.json") bytes, $n layers"
# Write the table out first: otherwise the reader's page faults pay for
# flushing it (about 0.7 s of system time on a machine short of free
# memory).
sync
/usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$dir/gen" -read "$dir/t.json"
awk '{ printf "wall %.2f s, cpu %.2f s (user %.2f, sys %.2f), peak RSS %.0f MB\n", $1, $2 + $3, $2, $3, $4 / 1024 }' "$dir/time"
