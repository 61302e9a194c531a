import Testing
@testable import CertkeeperConfig
@Test func scratchPrint() {
    let samples = [
    """
    state_dir: relative/dir
    keep_versions: 0
    nodename: x
    acme:
      directory: http://acme.example/dir
      emial: ops@example.com
      email: mailto:x@y.z
      eab: {kid: k, hmac_key: "AQID/+8="}
    renew:
      concurrency: 100
      http01_listen: "0.0.0.0"
      random_sleep: 5 min
    certificates:
      - name: web
        domains: ["exa mple.com", "*.example.com", 12, {a: b}]
        key_type: rsa1024
        challenge: {type: dns-01, webroot: /x}
      - name: web
        domains: [b.example.com]
        challenge: {type: dns-01}
      - ~
      - name: z
        domains: a.example.com
    hooks:
      timeout: soon
      deploy: {a: b}
    """,
    "state_dir: /x\nacme:\n  directory: [unclosed\nrenew: {}\n",
    "state_dir: /x\n\tacme: 1\n",
    "a: b\na: c\n",
    "---\na: 1\n---\nb: 2\n",
    "state_dir: *nope\n",
    "just a string",
    ]
    for s in samples {
        do { _ = try ConfigLoader.parse(yaml: s, source: "/etc/certkeeper/certkeeper.yaml") } catch { print(error); print("----") }
    }
}
