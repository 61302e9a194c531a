#!/usr/bin/env bash
# Regenerates docs/man/certkeeper.1 from the command-line definitions (swift-argument-parser's GenerateManual
# plugin). Run after changing a command's help; a test checks that every subcommand appears in the page.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package --allow-writing-to-package-directory generate-manual --configuration debug --authors "certkeeper developers" >/dev/null
install -D -m 0644 .build/plugins/GenerateManual/outputs/certkeeper/certkeeper.1 docs/man/certkeeper.1
echo "docs/man/certkeeper.1 updated"
