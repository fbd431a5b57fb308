#!/usr/bin/env bash
# Each built dike/core.so exports exactly luaopen_dike_core and does not link a Lua library
# (the interpreter provides the Lua API; /usr/bin/luajit is static).
# Usage: scripts/check-symbols.sh path/to/core.so...
set -u
status=0
for so in "$@"; do
  if [ ! -f "$so" ]; then echo "FAIL $so: missing"; status=1; continue; fi
  # Defined dynamic symbols, minus the linker's own markers.
  syms=$(nm -D --defined-only "$so" | awk '{print $NF}' |
         grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort)
  if [ "$syms" != "luaopen_dike_core" ]; then
    echo "FAIL $so exports:"; echo "$syms" | sed 's/^/  /'; status=1
  else
    echo "ok   $so exports luaopen_dike_core only"
  fi
  needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  if echo "$needed" | grep -qiE 'lua'; then
    echo "FAIL $so links a Lua library: $(echo "$needed" | tr '\n' ' ')"; status=1
  else
    echo "ok   $so needs: $(echo "$needed" | tr '\n' ' ')"
  fi
done
[ $# -gt 0 ] || { echo "FAIL no module given"; status=1; }
exit $status
