#!/bin/sh
# ensure-debs.sh PKG... - installs the Debian packages that are missing (when run as root),
# else prints the one apt-get line to run and fails.
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null
    exit $?
fi
echo "missing Debian packages; run:" >&2
echo "  sudo apt-get install -y$missing" >&2
exit 1
