# Shared by the bench scripts (source it after `cd` to the repository root).

static_release_binary() { # static_release_binary [PATH]: PATH if given, else builds and prints the static release build
  if [ -n "${1:-}" ]; then echo "$1"; return; fi
  # The release build operators install (README): Swift runtime and Foundation linked in, one file to copy.
  swift build -c release --product certkeeper --static-swift-stdlib --scratch-path "$PWD/.build-static" >/dev/null
  echo "$PWD/.build-static/release/certkeeper"
}
