import ACMEProtocol
import Crypto
import Foundation
import SwiftASN1
import Testing
import _CryptoExtras

@testable import CertbotImport

/// JWKs as josepy writes them (certbot's `private_key.json`), built from keys generated in the test.
enum JWKFixtures {
    /// The members of an RSA private key, read from its PKCS#1 DER.
    static func rsaMembers(_ key: _RSA.Signing.PrivateKey) throws -> [String: String] {
        let root = try DER.parse(Array(key.derRepresentation))
        guard case .constructed(let children) = root.content else { throw JWKFixtureError() }
        let integers = children.map { node -> [UInt8] in
            guard case .primitive(let bytes) = node.content else { return [] }
            return Array(bytes.drop(while: { $0 == 0 }))
        }
        // RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qi }
        guard integers.count == 9 else { throw JWKFixtureError() }
        let names = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
        var members: [String: String] = ["kty": "RSA"]
        for (name, value) in zip(names, integers.dropFirst()) { members[name] = Base64URL.encode(value) }
        return members
    }

    static func json(_ members: [String: String]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: members, options: [.sortedKeys]))
    }

    struct JWKFixtureError: Error {}
}

@Suite("certbot account files")
struct AccountFileTests {
    @Test("an RSA private_key.json becomes the same account key (same thumbprint, signatures verify)")
    func rsa() throws {
        let original = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let key = try CertbotJWK.accountKey(try JWKFixtures.json(try JWKFixtures.rsaMembers(original)), path: "private_key.json")
        #expect(key.algorithm == "RS256")
        #expect(key.thumbprint == AccountKey.rsa(original).thumbprint)
        let signature = try key.sign(Array("payload".utf8))
        #expect(original.publicKey.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: Array("payload".utf8)), padding: .insecurePKCS1v1_5))
        // What the store keeps loads back as the same key.
        #expect(try AccountKey(pem: key.pemRepresentation).thumbprint == key.thumbprint)
    }

    @Test("EC P-256 and P-384 JWKs")
    func ec() throws {
        let p256 = P256.Signing.PrivateKey()
        let raw = Array(p256.publicKey.rawRepresentation)
        let members = ["kty": "EC", "crv": "P-256", "d": Base64URL.encode(p256.rawRepresentation),
                       "x": Base64URL.encode(raw[0..<32]), "y": Base64URL.encode(raw[32...])]
        #expect(try CertbotJWK.accountKey(try JWKFixtures.json(members), path: "k").thumbprint == AccountKey.p256(p256).thumbprint)

        let p384 = P384.Signing.PrivateKey()
        let raw384 = Array(p384.publicKey.rawRepresentation)
        let members384 = ["kty": "EC", "crv": "P-384", "d": Base64URL.encode(p384.rawRepresentation),
                          "x": Base64URL.encode(raw384[0..<48]), "y": Base64URL.encode(raw384[48...])]
        #expect(try CertbotJWK.accountKey(try JWKFixtures.json(members384), path: "k").algorithm == "ES384")

        var wrongPoint = members
        wrongPoint["x"] = Base64URL.encode(Array(P256.Signing.PrivateKey().publicKey.rawRepresentation)[0..<32])
        #expect(throws: CertbotImportError(.inconsistent, path: "k", "the public point of \"d\" differs from the JWK's \"x\" and \"y\"")) {
            _ = try CertbotJWK.accountKey(try JWKFixtures.json(wrongPoint), path: "k")
        }
    }

    @Test("broken JWKs are refused without quoting key material")
    func brokenJWKs() throws {
        let original = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let members = try JWKFixtures.rsaMembers(original)
        let other = try JWKFixtures.rsaMembers(try _RSA.Signing.PrivateKey(keySize: .bits2048))

        var missingP = members
        missingP["p"] = nil
        var foreignP = members
        foreignP["p"] = other["p"]
        var badBase64 = members
        badBase64["d"] = "not base64url!"
        let cases: [([UInt8], CertbotImportError.Code, String)] = [
            (try JWKFixtures.json(missingP), .malformed, "JWK has no \"p\""),
            (try JWKFixtures.json(foreignP), .inconsistent, "do not form a valid key"),
            (try JWKFixtures.json(badBase64), .malformed, "\"d\" is not base64url"),
            (try JWKFixtures.json(["kty": "oct", "k": "c2VjcmV0"]), .unsupported, "JWK key type \"oct\""),
            (try JWKFixtures.json(["kty": "EC", "crv": "P-521", "d": "AA", "x": "AA", "y": "AA"]), .unsupported, "curve P-521"),
            (Array("{not json".utf8), .malformed, "not a JWK"),
        ]
        for (json, code, fragment) in cases {
            do {
                _ = try CertbotJWK.accountKey(json, path: "/etc/letsencrypt/accounts/x/private_key.json")
                Issue.record("accepted a JWK that should fail with \(fragment)")
            } catch {
                #expect(error.code == code, "\(error)")
                #expect(error.description.hasPrefix("/etc/letsencrypt/accounts/x/private_key.json: "))
                #expect(error.description.contains(fragment), "\(error)")
                for secret in [members["d"]!, members["p"]!, members["q"]!] {
                    #expect(!error.description.contains(secret))
                }
            }
        }
    }

    @Test("regr.json of certbot 2 (empty body) and of older versions (contacts)")
    func registration() throws {
        let current = try CertbotRegistration.parse(Array(#"{"body": {}, "uri": "https://acme.example/acme/acct/123"}"#.utf8), path: "regr.json")
        #expect(current == CertbotRegistration(accountURL: "https://acme.example/acme/acct/123", contact: []))
        let old = try CertbotRegistration.parse(Array(#"""
        {"body": {"contact": ["mailto:ops@example.org"], "key": {"e": "AQAB", "kty": "RSA", "n": "xyz"}, "status": "valid"},
         "uri": "https://acme-v02.api.letsencrypt.org/acme/acct/42", "new_authzr_uri": "https://x/new-authz", "terms_of_service": "https://x/tos"}
        """#.utf8), path: "regr.json")
        #expect(old.contact == ["mailto:ops@example.org"])
        #expect(old.accountURL == "https://acme-v02.api.letsencrypt.org/acme/acct/42")

        for (json, fragment) in [(#"{"body": {}}"#, "has no \"uri\""), (#"{"uri": "http://insecure/acct/1"}"#, "not an https URL"), ("[]", "not a certbot regr.json")] {
            #expect {
                _ = try CertbotRegistration.parse(Array(json.utf8), path: "accounts/x/regr.json")
            } throws: { error in
                (error as? CertbotImportError)?.description.contains(fragment) == true
            }
        }
    }

    @Test("meta.json creation dates")
    func meta() throws {
        let date = try CertbotAccountMeta.creationDate(Array(#"{"creation_dt": "2026-11-22T08:33:18Z", "creation_host": "node1"}"#.utf8), path: "meta.json")
        #expect(date == Date(timeIntervalSince1970: 1_795_336_398))
        #expect(try CertbotAccountMeta.creationDate(Array(#"{"creation_host": "node1"}"#.utf8), path: "meta.json") == nil)
        #expect(try CertbotAccountMeta.creationDate(Array(#"{"creation_dt": "2019-05-01T10:00:00.123456Z"}"#.utf8), path: "meta.json") != nil)
    }
}
