#!/usr/bin/env bash
# Run tests (default: the kernel, C-decoder and fuzz tests) with the reference's C kernels built
# under UndefinedBehaviorSanitizer, and list every undefined-behaviour site they reach (signed
# overflow, shifts of negative values or out of range). GCC happens to compile such code the
# way the spec means, but another compiler need not; the spec's determinism promise rests on
# the kernels having none.
#
#   bash tests/fuzz/ubsan_kernels.sh [pytest arguments]
#
# Needs an editable install (pip install -e .), gcc and its libubsan. The optimised kernels are
# put back at the end, also when interrupted.
set -euo pipefail
cd "$(dirname "$0")/../.."
so=$(python -c "import vaelac._kernels as k; print(k.__file__)")
case "$so" in "$PWD"/*) ;; *) echo "needs an editable install (found $so)" >&2; exit 2 ;; esac
log=$(mktemp -d)
cp "$so" "$log/optimised.so"
trap 'cp "$log/optimised.so" "$so"' EXIT
include=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
gcc -shared -fPIC -O1 -g -fsanitize=undefined -ffp-contract=off -I"$include" \
    reference/_kernels.c -o "$so"
if [ $# -eq 0 ]; then  # the ASan-built C decoder cannot run under a preloaded libubsan
    set -- tests/test_kernels.py tests/test_c_decoder.py tests/test_fuzz.py -k "not sanitized"
fi
status=0
LD_PRELOAD=$(gcc -print-file-name=libubsan.so) \
UBSAN_OPTIONS=print_stacktrace=0:log_path="$log/ubsan" \
    python -m pytest -q -p no:cacheprovider "$@" || status=$?
if grep -h "runtime error" "$log"/ubsan.* 2>/dev/null | sed 's/:[0-9]*: runtime/: runtime/' \
        | sort | uniq -c | sort -rn; then
    exit 1
fi
echo "no undefined behaviour reached (pytest exit status $status)"
exit "$status"
