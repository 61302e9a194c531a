import ACMEProtocol
import Crypto
import _CryptoExtras
import Foundation
import SwiftASN1
import Testing
import X509

@Suite("JWK, JWS and key authorizations")
struct JWSTests {
    @Test("RFC 7638 §3.1 example thumbprint")
    func rfc7638Thumbprint() throws {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        let jwk = AccountKey.rsaJWK(modulus: try #require(Base64URL.decode(n)), exponent: try #require(Base64URL.decode("AQAB")))
        let thumbprint = Base64URL.encode(Array(SHA256.hash(data: Array(jwk.utf8))))
        #expect(thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    }

    @Test("ES256 JWS verifies with the embedded JWK and carries nonce and url")
    func es256() throws {
        let key = P256.Signing.PrivateKey()
        let signer = JWSSigner(key: .p256(key))
        let jws = try signer.sign(payload: Array(#"{"a":1}"#.utf8), url: "https://ca/new-order", nonce: "n0nce", identification: .jwk)
        let header = try JSONSerialization.jsonObject(with: Data(try #require(Base64URL.decode(jws.protected)))) as! [String: Any]
        #expect(header["alg"] as? String == "ES256")
        #expect(header["nonce"] as? String == "n0nce")
        #expect(header["url"] as? String == "https://ca/new-order")
        let embedded = try #require(header["jwk"] as? [String: String])
        let x = try #require(Base64URL.decode(embedded["x"]!)), y = try #require(Base64URL.decode(embedded["y"]!))
        let publicKey = try P256.Signing.PublicKey(rawRepresentation: x + y)
        #expect(publicKey.rawRepresentation == key.publicKey.rawRepresentation)
        let signature = try P256.Signing.ECDSASignature(rawRepresentation: try #require(Base64URL.decode(jws.signature)))
        #expect(publicKey.isValidSignature(signature, for: Array("\(jws.protected).\(jws.payload)".utf8)))
        // Tampering with the payload breaks it.
        #expect(!publicKey.isValidSignature(signature, for: Array("\(jws.protected).\(Base64URL.encode("{}"))".utf8)))
    }

    @Test("kid requests carry the account URL instead of the key; POST-as-GET has an empty payload")
    func kidAndPostAsGet() throws {
        let signer = JWSSigner(key: .generate())
        let jws = try signer.sign(payload: nil, url: "https://ca/order/1", nonce: "n", identification: .kid("https://ca/acct/7"))
        let header = String(decoding: try #require(Base64URL.decode(jws.protected)), as: UTF8.self)
        #expect(header.contains(#""kid":"https://ca/acct/7""#))
        #expect(!header.contains("jwk"))
        #expect(jws.payload == "")
    }

    @Test("RS256 signatures verify for RSA account keys")
    func rs256() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let jws = try JWSSigner(key: .rsa(key)).sign(payload: Array("{}".utf8), url: "u", nonce: "n", identification: .jwk)
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Base64URL.decode(jws.signature)))
        #expect(key.publicKey.isValidSignature(signature, for: Array("\(jws.protected).\(jws.payload)".utf8), padding: .insecurePKCS1v1_5))
        #expect(AccountKey.rsa(key).algorithm == "RS256")
    }

    @Test("account keys round-trip through PEM with the same thumbprint")
    func pemRoundTrip() throws {
        for key in [AccountKey.generate(), .p384(P384.Signing.PrivateKey())] {
            let again = try AccountKey(pem: key.pemRepresentation)
            #expect(again.thumbprint == key.thumbprint)
            #expect(again.algorithm == key.algorithm)
        }
        #expect(throws: ACMEProtocolError.self) { try AccountKey(pem: "-----BEGIN NONSENSE-----\nAAAA\n-----END NONSENSE-----\n") }
    }

    @Test("EAB is an HS256 MAC over the account JWK")
    func externalAccountBinding() throws {
        let key = AccountKey.generate()
        let mac: [UInt8] = Array(repeating: 7, count: 32)
        let eab = JWSSigner(key: key).externalAccountBinding(keyID: "kid-1", macKey: mac, newAccountURL: "https://ca/new-acct")
        #expect(String(decoding: Base64URL.decode(eab.payload)!, as: UTF8.self) == key.canonicalJWK)
        let expected = HMAC<SHA256>.authenticationCode(for: Array("\(eab.protected).\(eab.payload)".utf8), using: SymmetricKey(data: mac))
        #expect(Base64URL.decode(eab.signature)! == Array(expected))
    }

    @Test("key authorizations for http-01 and dns-01")
    func keyAuthorizations() {
        #expect(KeyAuthorization.http01(token: "tok", thumbprint: "thumb") == "tok.thumb")
        // base64url(SHA-256("tok.thumb")) computed independently.
        let digest = Base64URL.encode(Array(SHA256.hash(data: Array("tok.thumb".utf8))))
        #expect(KeyAuthorization.dns01TXTValue(token: "tok", thumbprint: "thumb") == digest)
        #expect(KeyAuthorization.dns01RecordName(domain: "*.example.org") == "_acme-challenge.example.org")
        #expect(KeyAuthorization.isValidToken("abc-_DEF123"))
        #expect(!KeyAuthorization.isValidToken("../etc/passwd"))
        #expect(!KeyAuthorization.isValidToken(""))
    }

    @Test("base64url round trip, with and without padding")
    func base64url() {
        let bytes: [UInt8] = [0xfb, 0xff, 0x00, 0x10]
        #expect(Base64URL.encode(bytes) == "-_8AEA")
        #expect(Base64URL.decode("-_8AEA") == bytes)
        #expect(Base64URL.decode("-_8AEA==") == bytes)
        #expect(Base64URL.decode("a") == nil)
    }
}

@Suite("CSR, ARI certID, problem documents")
struct WireFormatTests {
    @Test("CSR holds every domain as SAN, the first as CN, and a valid signature", arguments: CertificateKeyType.allCases)
    func csrContents(type: CertificateKeyType) throws {
        if type == .rsa4096 || type == .rsa3072 { return }  // slow key generation; 2048 covers RSA
        let key = try GeneratedCertificateKey.generate(type)
        let der = try CSRBuilder.makeCSR(domains: ["example.org", "www.example.org"], key: key)
        let csr = try CertificateSigningRequest(derEncoded: der)
        #expect(csr.publicKey == key.privateKey.publicKey)
        #expect(csr.publicKey.isValidSignature(csr.signature, for: csr))
        #expect(csr.subject.description.contains("CN=example.org"))
        let request = try #require(try csr.attributes.extensionRequest)
        let san = try #require(try request.extensions.subjectAlternativeNames)
        #expect(Array(san) == [.dnsName("example.org"), .dnsName("www.example.org")])
    }

    @Test("ARI certID is base64url(AKI).base64url(serial), keeping the DER sign byte")
    func ariCertID() throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("ari test") }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: [0x87, 0x65, 0x43, 0x21]),
            publicKey: .init(key.publicKey), notValidBefore: Date(), notValidAfter: Date().addingTimeInterval(3600),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions { AuthorityKeyIdentifier(keyIdentifier: [0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40, 0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0, 0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4]) },
            issuerPrivateKey: .init(key)
        )
        // RFC 9773 §4.1's example values.
        #expect(ARICertificateID.make(for: certificate) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE")
        #expect(ARICertificateID.url(renewalInfoBase: "https://ca/renewal-info/", certID: "a.b") == "https://ca/renewal-info/a.b")
    }

    @Test("problem documents map to typed kinds")
    func problems() throws {
        let json = #"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates","status":429}"#
        let problem = try ACMEJSON.decode(ACMEProblem.self, from: Array(json.utf8), what: "problem")
        #expect(problem.kind == .rateLimited)
        #expect(problem.kind.isTransient)
        #expect(problem.description == "rateLimited: too many certificates")
        #expect(ACMEProblemKind(type: "urn:ietf:params:acme:error:badNonce") == .badNonce)
        #expect(ACMEProblemKind(type: "urn:ietf:params:acme:error:unauthorized").isTransient == false)
        #expect(ACMEProblemKind(type: "about:blank") == .other("about:blank"))
        let compound = #"{"type":"urn:ietf:params:acme:error:compound","subproblems":[{"type":"urn:ietf:params:acme:error:caa","detail":"CAA forbids","identifier":{"type":"dns","value":"a.example"}}]}"#
        let parsed = try ACMEJSON.decode(ACMEProblem.self, from: Array(compound.utf8), what: "problem")
        #expect(parsed.description.contains("a.example: caa CAA forbids"))
    }

    @Test("Retry-After as seconds and as an HTTP date; RFC 3339 with nanoseconds")
    func retryAfterAndDates() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(RetryAfter.seconds(from: "120", now: now) == 120)
        #expect(RetryAfter.seconds(from: "Tue, 14 Nov 2023 22:14:20 GMT", now: now) == 60)
        #expect(RetryAfter.seconds(from: "soon", now: now) == nil)
        // RFC 9110: digits only; anything a CA sends is cut to 30 days, so no later conversion can trap.
        for huge in ["2592001", "99999999999999999999", String(repeating: "9", count: 400)] {
            #expect(RetryAfter.seconds(from: huge, now: now) == RetryAfter.longest, "\(huge.prefix(20))")
        }
        for refused in ["inf", "1e19", "nan", "-5", "1.5", "0x10"] {
            #expect(RetryAfter.seconds(from: refused, now: now) == nil, "\(refused)")
        }
        #expect(RetryAfter.seconds(from: "Fri, 31 Dec 9999 23:59:59 GMT", now: now) == RetryAfter.longest)
        #expect(RFC3339.parse("2023-11-14T22:13:20Z") == now)
        #expect(RFC3339.parse("2023-11-14T22:13:20.123456789Z")!.timeIntervalSince(now) < 0.2)
    }

    @Test("poll schedule starts short, grows, and yields to Retry-After")
    func pollSchedule() {
        let schedule = PollSchedule(initialDelay: 0.05, multiplier: 2, maximumDelay: 3, maximumRetryAfter: 60)
        #expect(schedule.delay(attempt: 0, retryAfter: nil) == 0.05)
        #expect(schedule.delay(attempt: 3, retryAfter: nil) == 0.4)
        #expect(schedule.delay(attempt: 20, retryAfter: nil) == 3)
        #expect(schedule.delay(attempt: 0, retryAfter: 7) == 7)
        #expect(schedule.delay(attempt: 0, retryAfter: 3600) == 60)
    }
}
