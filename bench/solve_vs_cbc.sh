#!/bin/sh
# Times bitplan against CBC on the same synthetic instances (6 bit widths,
# size and latency budgets at 50 %), for 500, 5,000 and 20,000 layers, and
# prints the ratio. bitplan solve is timed as a process (start included), like
# CBC; when the CLI does not build, the ilp package is timed through
# bench/gen -solve instead.
#
# Usage: sh bench/solve_vs_cbc.sh [SIZES...]   (run from the repository root)
# TIME_LIMIT=30s caps bitplan's search (--time-limit); unset, it must prove
# optimality. CBC runs with its defaults. Each row also gives both
# objectives: they must agree to 1e-6 relative (the MPS file rounds
# coefficients to 12 characters, and CBC works to its feasibility
# tolerance), or the script says so and exits 1 at the end. With GNU time
# (/usr/bin/time) it also gives both processes' CPU time (user + system)
# and their ratio, which a loaded machine distorts less than wall time.
set -eu
sizes=${*:-"500 5000 20000"}
limit=${TIME_LIMIT:-0}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
now() { date +%s.%N; }
# timed FILE CMD...: run CMD, writing its CPU seconds to FILE when GNU time
# is there.
timed() {
	out=$1
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$out" "$@"
	else
		echo "" >"$out"
		"$@"
	fi
}
if go build -o "$dir/bitplan" ./cmd/bitplan 2>/dev/null; then
	cli=yes
else
	cli=no
	echo "cmd/bitplan does not build: timing bench/gen -solve instead" >&2
fi
go build -o "$dir/gen" ./bench/gen
command -v cbc >/dev/null || { echo "cbc not on PATH" >&2; exit 1; }
printf '%8s %12s %10s %12s %8s %10s %10s %9s %18s %18s\n' groups bitplan_s solve_s cbc_s ratio bp_cpu_s cbc_cpu_s cpu_ratio bitplan_obj cbc_obj
bad=0
for n in $sizes; do
	"$dir/gen" -groups "$n" -table "$dir/t$n.json" -mps "$dir/t$n.mps"
	t0=$(now)
	if [ "$cli" = yes ]; then
		timed "$dir/bt$n" "$dir/bitplan" solve "$dir/t$n.json" --max-size 50% --max-latency 50% --time-limit "$limit" --format json >"$dir/b$n.out"
	else
		timed "$dir/bt$n" "$dir/gen" -groups "$n" -solve >"$dir/b$n.out"
	fi
	t1=$(now)
	timed "$dir/ct$n" cbc "$dir/t$n.mps" solve >"$dir/c$n.out"
	t2=$(now)
	grep -q 'Optimal solution found' "$dir/c$n.out" || echo "warning: cbc did not prove optimality for $n" >&2
	if [ "$cli" = yes ]; then
		grep -q '"status": "optimal"' "$dir/b$n.out" || echo "warning: bitplan did not prove optimality for $n" >&2
		bobj=$(sed -n 's/^  "objective": \([^,]*\),$/\1/p' "$dir/b$n.out")
		solve=$(sed -n 's/^  "solve_seconds": \([^,]*\),$/\1/p' "$dir/b$n.out")
	else
		bobj=$(sed -n 's/.*objective \([^ ]*\) .*/\1/p' "$dir/b$n.out")
		solve=$(sed -n 's/.*time \([^ ]*\) s$/\1/p' "$dir/b$n.out")
	fi
	cobj=$(sed -n 's/^Objective value: *\([^ ]*\).*/\1/p' "$dir/c$n.out")
	bcpu=$(awk '{ print $1 + $2 }' "$dir/bt$n")
	ccpu=$(awk '{ print $1 + $2 }' "$dir/ct$n")
	awk -v n="$n" -v a="$t0" -v b="$t1" -v c="$t2" -v s="$solve" -v bo="$bobj" -v co="$cobj" -v bc="$bcpu" -v cc="$ccpu" 'BEGIN {
		cr = (bc > 0) ? sprintf("%9.1f", cc / bc) : "        -"
		printf "%8d %12.3f %10.3f %12.3f %8.1f %10s %10s %s %18.10g %18.10g\n", n, b - a, s, c - b, (c - b) / (b - a), bc, cc, cr, bo, co
		d = bo - co; if (d < 0) d = -d
		if (bo == "" || co == "" || d > 1e-6 * (co < 0 ? -co : co)) exit 1 }' || {
		echo "objectives differ for $n: bitplan $bobj, cbc $cobj" >&2
		bad=1
	}
done
exit $bad
