#!/bin/sh
# Refreshes the bundled tus-js-client, which the upload page loads from the
# binary (no CDN). The copy is committed so `go build` works on a clean
# checkout without npm. To move to another version: change the version in
# web/e2e/package.json, run `npm install` there, then run this script and
# commit web/static/vendor/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../../e2e/node_modules/tus-js-client"
if [ ! -f "$src/dist/tus.min.js" ]; then
	(cd "$here/../../e2e" && npm ci --no-audit --no-fund)
fi
version=$(node -p "require('$src/package.json').version")
{
	printf '/*! tus-js-client %s | MIT License | Copyright (c) 2015 tus - Resumable File Uploads | https://github.com/tus/tus-js-client */\n' "$version"
	# The source map is not shipped; drop its reference so browsers do not ask for it.
	grep -v '^//# sourceMappingURL=' "$src/dist/tus.min.js"
} >"$here/tus.min.js"
cp "$src/LICENSE" "$here/tus-js-client.LICENSE.txt"
echo "$version" >"$here/tus-js-client.VERSION"
echo "web/static/vendor: tus-js-client $version"
