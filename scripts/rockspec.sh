#!/usr/bin/env bash
# Write the release rockspec of version X.Y.Z from the development one (what `make rockspec
# VERSION=X.Y.Z` runs): rockspec/dike-scm-1.rockspec with version "X.Y.Z-R" and, instead of the
# branch, the git tag "vX.Y.Z", which the rockspec derives from its version (one place).
# Usage: scripts/rockspec.sh X.Y.Z[-R]      (R, the rockspec revision, defaults to 1)
# It refuses to overwrite an existing release rockspec: a published release does not change
# (a fix of the rockspec alone is a new revision, X.Y.Z-2).
set -eu
cd "$(dirname "$0")/.."
v=${1:-}
if ! [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+)?$ ]]; then
  echo "usage: scripts/rockspec.sh X.Y.Z[-R]   (e.g. make rockspec VERSION=0.2.0)" >&2
  exit 2
fi
[[ $v == *-* ]] || v=$v-1
scm=rockspec/dike-scm-1.rockspec out=rockspec/dike-$v.rockspec
if [ -e "$out" ]; then
  echo "rockspec.sh: $out exists; a released rockspec is not rewritten" >&2
  exit 1
fi
grep -q '^version = "scm-1"$' "$scm" && grep -q '^   branch = "main",$' "$scm" || {
  echo "rockspec.sh: $scm no longer has the lines this script replaces" >&2; exit 1; }

{
  echo "-- dike ${v%-*}: the release rockspec (written by scripts/rockspec.sh from dike-scm-1.rockspec)."
  echo "--   luarocks install dike ${v%-*}"
  echo "-- or, from a checkout of its tag: luarocks make --deps-mode=none $out"
  # Everything from the first assignment on, with the version and the tag.
  sed -n '/^rockspec_format/,$p' "$scm" |
    sed -e "s/^version = \"scm-1\"$/version = \"$v\"/" \
        -e 's/^   -- `luarocks make` builds the working tree and never fetches this.$/   -- The tag is the version without its rockspec revision: "v0.1.0" for "0.1.0-1"./' \
        -e 's/^   branch = "main",$/   tag = "v" .. version:gsub("%-%d+$", ""),/'
} >"$out"
echo "wrote $out (then add its section to CHANGELOG.md and tag the release v${v%-*})"
