#!/bin/sh
# Build the static attack program: test/attacks/build.sh OUT
set -eu
out=${1:?usage: build.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
exec ${CC:-cc} -static -O2 -Wall -Wextra -Werror -Wno-unused-result -Wno-format-truncation -o "$out" "$here/attack.c"
