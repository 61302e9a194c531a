// CertkeeperTestSupport: overview (kept as a comment: a README.md here would be an unhandled SwiftPM file).
//
// # CertkeeperTestSupport
//
// Helpers for certkeeper's tests. Nothing here uses certkeeper's own code, so the tests check it independently.
// The helpers' own tests are in `Tests/EndToEndTests/SupportSelfTests.swift`.
//
// | Helper | What it gives you |
// | --- | --- |
// | `TestCA`, `TestCertificate`, `LocalhostServerIdentity` | P-256 roots, intermediates and leaves built in memory (SAN, AKI/SKI, EKU serverAuth), PEM accessors, `writePEMFiles(to:)`, NIOSSL configurations |
// | `TemporaryDirectory` | `/tmp/certkeeper-tests/<name>-<random>`, `write(_:to:)`, `remove()` |
// | `PortAllocator.shared` | loopback ports free for TCP and UDP, never handed out twice in one process |
// | `ManagedProcess` | a long-running child with a log file, `waitForTCPPort`, `send(signal:)`, `waitForExit`, `stop()` (SIGTERM, SIGKILL after 3 s) |
// | `OneShotProcess`, `CLI` | run a program (or the built `certkeeper`) to completion with a timeout; `CLI.start` for the daemon |
// | `Curl` | an HTTP(S) client built on `/usr/bin/curl` (`--cacert`) |
// | `PebbleServer` | Debian's Pebble 2.4 plus challtestsrv on free ports, with management helpers |
// | `StaticFileServer` | a plain-HTTP server for a webroot (e.g. on `PebbleServer.httpPort`) |
// | `FakeACMEServer` | a strict RFC 8555 server with ARI (RFC 9773), profiles and fault injection |
// | `TestACMEClient`, `TestJWS` | a minimal ES256 ACME client and JWS builder to set up state or craft bad requests |
//
// Every wait has a bound. Always stop what you start, also when the test fails:
//
// ```swift
// let pebble = try await PebbleServer.start()      // strict, 20 % nonce rejection, no VA sleeps
// do {
//     // point certkeeper at pebble.directoryURL, trust pebble.caBundlePath, answer http-01 on pebble.httpPort
// } catch {
//     await pebble.stop()
//     throw error
// }
// await pebble.stop()
// ```
//
// Things worth knowing:
//
// - Child processes are started with `posix_spawn`, an empty signal mask and their own process group. Foundation's
//   `Process` passes on the calling thread's mask, and the threads tests run on block SIGTERM, so a child started
//   with it ignores SIGTERM.
// - Pebble 2.4: the management API (`/roots/0`, `/intermediates/0`, `/cert-status-by-serial/<hex>`) is HTTPS with
//   the same certificate as the ACME port; the default validity is 5 years (`Options.certificateValidityPeriod`
//   changes it); challtestsrv answers every A query with 127.0.0.1 and no AAAA.
// - `FakeACMEServer` authorizations are already valid. It checks the ES256 signature against the account's key,
//   that the nonce was issued and not used, that `url` matches, and that the content type is `application/jose+json`.
//   `failNext(...)` with no `endpoint` hits the next POST only, so nonce and directory fetches still work.
//   The default ARI window is 45–55 % of the certificate's lifetime, sent with `Retry-After: 21600`.
