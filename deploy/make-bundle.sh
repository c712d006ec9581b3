#!/usr/bin/env bash
# Makes the offline agent bundle: one tarball with install-agent.sh, the
# systemd unit and a wheelhouse of dcguard and every dependency for x86_64
# Linux (manylinux2014, i.e. glibc >= 2.17) and CPython 3.9-3.12.
#
#   deploy/make-bundle.sh [--out DIR] [--python-versions "3.9 3.10 3.11 3.12"]
#
# Needs network access to PyPI (here, not on the servers). Prints the path of
# the tarball. Copy it to a server, then:
#   tar xzf dcguard-agent-bundle-*.tar.gz && sudo ./dcguard-agent-*/install-agent.sh --help
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "make-bundle.sh: $*" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/dist"
versions="3.9 3.10 3.11 3.12"
python=${PYTHON:-python3}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || die "--out needs a directory"; out=$2; shift 2 ;;
        --python-versions) [ $# -ge 2 ] || die "--python-versions needs a list"; versions=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

version_file="$root/agent/dcguard/common/version.py"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$version_file" | head -1)
[ -n "$version" ] || die "cannot read the version from $version_file"
name="dcguard-agent-$version"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage/wheels" "$out"

# dcguard itself: one pure-Python wheel built from this checkout.
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/own" "$root" >&2
own=$(ls "$work"/own/dcguard-*.whl)
cp "$own" "$stage/wheels/"

# Its dependencies, for each target Python, binary wheels only: servers have
# no compiler. pip evaluates environment markers against the Python running
# it, not --python-version, so the marker-only dependency (tomli, before 3.11)
# is named explicitly.
for v in $versions; do
    echo "make-bundle.sh: wheels for CPython $v" >&2
    extra=()
    case "$v" in 3.9|3.10) extra=(tomli) ;; esac
    "$python" -m pip download --quiet --only-binary=:all: --implementation cp \
        --platform manylinux2014_x86_64 --python-version "$v" \
        --dest "$stage/wheels" "$own" pip "${extra[@]}" >&2
done

cp "$root/deploy/install-agent.sh" "$stage/"
cp "$root/deploy/systemd/dcguard-agent.service" "$stage/"
chmod 755 "$stage/install-agent.sh"
echo "$version" > "$stage/VERSION"
(cd "$stage/wheels" && sha256sum -- *.whl) > "$stage/SHA256SUMS"

tarball="$out/dcguard-agent-bundle-$version.tar.gz"
tar -C "$work" -czf "$tarball.tmp" "$name"
mv "$tarball.tmp" "$tarball"
echo "$tarball"
