#!/bin/sh
# Re-fetch OpenLayers from the npm registry and verify the vendored files byte for byte.
#   mapproxy/assets/fetch-ol.sh           verify ol-$VERSION/ against the registry's package
#   mapproxy/assets/fetch-ol.sh --write   (re)write ol-$VERSION/ from the package (after a bump:
#                                         update VERSION and the sums below, README.md, and
#                                         the include_bytes! paths in src/service/demo/assets.rs)
set -eu
VERSION=10.11.0
TGZ_SHA256=9e8377871c10e1299a8a302be847de3b8f1060a6d31063b90e84363c7e060477
SUMS="a4e607e98b56846d543e2131161720845c7a80170d5f00aa2bc8b6c4e0f9194a  dist/ol.js
abc8afd72cc10bd29cc143f443bae4a6804bd3cb3fb262e6b6a6bc6c924ea34f  ol.css
6c4347b83a8c9feef18d57b18e3b6c44cf901b3c344a4a1fbd837e421555ab8e  LICENSE.md"

here=$(cd "$(dirname "$0")" && pwd)
dest="$here/ol-$VERSION"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npm pack checks the registry's sha512 integrity of the tarball itself
(cd "$tmp" && npm pack --silent "ol@$VERSION" >/dev/null)
echo "$TGZ_SHA256  $tmp/ol-$VERSION.tgz" | sha256sum -c -
tar -xzf "$tmp/ol-$VERSION.tgz" -C "$tmp"
(cd "$tmp/package" && echo "$SUMS" | sha256sum -c -)

if [ "${1:-}" = "--write" ]; then
    mkdir -p "$dest"
    cp "$tmp/package/dist/ol.js" "$tmp/package/ol.css" "$tmp/package/LICENSE.md" "$dest/"
    echo "wrote $dest"
else
    for f in dist/ol.js ol.css LICENSE.md; do
        cmp "$tmp/package/$f" "$dest/$(basename "$f")"
    done
    echo "ol-$VERSION: vendored files match the npm package"
fi
