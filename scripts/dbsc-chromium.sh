#!/bin/sh
# Unpacks the Chromium that the DBSC browser tests drive (test/browser/dbsc.test.mjs) into .cache/, beside
# the system's, without installing it: Debian bookworm's Chromium 150 performs Device Bound
# Session Credentials on http://localhost with software keys when started with the switches in
# test/support/browser-harness.mjs. Debian's later security builds (156) were seen to ignore the registration
# header with the same switches, so the version is pinned here. Needs apt's package lists
# (`apt-get update`) and Debian's mirror; does nothing once unpacked.
set -eu
version=150.0.7871.100-1~deb12u1
target="$(cd "$(dirname "$0")/.." && pwd)/.cache/chromium-dbsc"
binary="$target/usr/lib/chromium/chromium"
if [ -x "$binary" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod a+rwx "$work" # lets apt fetch as its own unprivileged user
cd "$work"
apt-get download "chromium=$version" "chromium-common=$version"
mkdir -p "$target"
for package in ./*.deb; do dpkg-deb -x "$package" "$target"; done
"$binary" --version
