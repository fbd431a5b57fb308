#!/usr/bin/env bash
# Run a command under valgrind memcheck (ctest's valgrind.* suites use it).
# Usage: scripts/valgrind.sh COMMAND [ARGS...]
# Exits 99 on any memory error (invalid read/write, use of uninitialised values, bad free...) and
# on a definite or indirect leak at exit; otherwise with the command's own status. One suppression:
# LuaJIT's string-compare false positive (scripts/luajit.supp says which and why).
#   --smc-check=all-non-file  LuaJIT writes machine code at run time and Debian's luajit2 is not
#                             built with LUAJIT_USE_VALGRIND (which would tell valgrind when it
#                             rewrites it): make valgrind re-check code outside mapped files.
#                             (The default on amd64; said here so it holds on every arch.)
# What memcheck sees: memory from malloc (the C core's batch-queue buffers, libc, luv, libuv, all of
# Lua 5.4's heap), the stack and globals. LuaJIT's own GC heap (tables, strings, userdata, hence
# dike.array's elements) comes from its internal mmap allocator, which valgrind cannot see into:
# the Lua 5.4 run covers that memory (verified with a deliberate one-byte overflow: docs/testing.md).
set -u
exec valgrind --tool=memcheck --error-exitcode=99 --smc-check=all-non-file \
  --suppressions="$(dirname "$0")/luajit.supp" \
  --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --num-callers=40 "$@"
