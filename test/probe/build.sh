#!/bin/sh
# Build the static probe: test/probe/build.sh OUT
set -eu
out=${1:?usage: build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
exec ${CC:-cc} -static -O2 -Wall -Wextra -Werror -o "$out" "$here/probe.c"
