#!/usr/bin/env bash
# The rockspecs are valid and consistent: for every rockspec/*.rockspec
#   - `luarocks lint` passes (it needs a license, a well-formed version, known fields...);
#   - its file name is <package>-<version>.rockspec;
#   - dike-scm-1 follows a branch; a release X.Y.Z-R follows the tag vX.Y.Z and CHANGELOG.md has
#     its "## [X.Y.Z]" section.
# (That each rockspec also builds and installs a working dike is scripts/check-install.sh.)
# Usage: scripts/check-rockspecs.sh     (from anywhere)
set -u
cd "$(dirname "$0")/.."
unset LUAROCKS_CONFIG
status=0 n=0
fail() { echo "FAIL $*"; status=1; }

for spec in rockspec/*.rockspec; do
  n=$((n + 1)) before=$status
  if out=$(luarocks lint "$spec" 2>&1); then
    echo "ok   luarocks lint $spec"
  else
    fail "luarocks lint $spec:"; echo "$out" | sed 's/^/       /'
  fi
  # The fields as luarocks reads them: the file run in an empty environment.
  fields=$(luajit - "$spec" <<'LUA'
local env = {}
local chunk = assert(loadfile(arg[1]))
setfenv(chunk, env)()
local s = env.source or {}
io.write(table.concat({ tostring(env.package), tostring(env.version), tostring(s.tag),
                        tostring(s.branch) }, " "))
LUA
  ) || { fail "$spec does not run"; continue; }
  read -r package version tag branch <<<"$fields"
  [ "$spec" = "rockspec/$package-$version.rockspec" ] ||
    fail "$spec declares $package $version: its name must be rockspec/$package-$version.rockspec"
  case $version in
    scm-*)
      [ "$branch" != nil ] && [ "$tag" = nil ] || fail "$spec: a scm rockspec follows a branch, not a tag"
      ;;
    *)
      release=${version%-*}
      [ "$tag" = "v$release" ] || fail "$spec: tag is $tag, want v$release"
      [ "$branch" = nil ] || fail "$spec: a release rockspec names a tag, not branch $branch"
      grep -qE "^## \[$(echo "$release" | sed 's/\./\\./g')\]" CHANGELOG.md ||
        fail "$spec: CHANGELOG.md has no \"## [$release]\" section"
      [ "$status" = "$before" ] && echo "ok   $spec: tag $tag, CHANGELOG.md section [$release]"
      ;;
  esac
done
[ "$n" -gt 0 ] || fail "no rockspec/*.rockspec"
[ -f rockspec/dike-scm-1.rockspec ] || fail "rockspec/dike-scm-1.rockspec is missing"
exit $status
