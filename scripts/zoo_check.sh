#!/bin/sh
# Exports the LARGE zoo models into a cache directory (once; kept files are
# reused) and runs the tests that read them: import normalisation
# (model.TestZooCache), the static check (nn.TestZooCacheStaticCheck) and
# logits against PyTorch for the models the check passes
# (nn.TestZooCacheLogits). About 2 GB of models; needs Debian's
# python3-torch and python3-torchvision (/usr/bin/python3).
#
#   sh scripts/zoo_check.sh [DIR]     # default ${XDG_CACHE_HOME:-$HOME/.cache}/bitplan/zoo
set -eu
dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/bitplan/zoo}
mkdir -p "$dir"
/usr/bin/python3 scripts/zoo.py --large --out "$dir"
BITPLAN_ZOO_DIR=$dir go test ./model -run 'TestZooCache' -v -count=1 | grep -E 'zoo_test|^(---|ok|FAIL)'
BITPLAN_ZOO_DIR=$dir go test ./nn -run 'TestZooCache' -v -count=1 -timeout 60m | grep -E '\||^(---|ok|FAIL)'
