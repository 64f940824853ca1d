import Crypto
import Foundation
import PlumbWire
import SwiftASN1
import _CryptoExtras

/// The fields of an EC2 instance identity document Plumb checks (the document has more; they are ignored).
public struct InstanceIdentityDocument: Codable, Sendable, Hashable {
    public var accountId: String
    public var instanceId: String
    public var region: String
    public var availabilityZone: String?
    public var privateIp: String?
    public var pendingTime: String?
    public var instanceType: String?
    public var imageId: String?

    /// Creates a document.
    public init(
        accountId: String, instanceId: String, region: String, availabilityZone: String? = nil, privateIp: String? = nil,
        pendingTime: String? = nil, instanceType: String? = nil, imageId: String? = nil
    ) {
        self.accountId = accountId
        self.instanceId = instanceId
        self.region = region
        self.availabilityZone = availabilityZone
        self.privateIp = privateIp
        self.pendingTime = pendingTime
        self.instanceType = instanceType
        self.imageId = imageId
    }

    /// The document as IMDS prints it: pretty JSON with sorted keys.
    public var text: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// Why an instance identity proof did not verify.
public enum InstanceIdentityError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The signature is not base64, or not the length of any trusted key's signatures.
    case malformedSignature
    /// No trusted certificate's key verifies the signature over the document: forged, altered, or signed by a key
    /// this collector is not configured with.
    case badSignature
    /// Only a certificate that is expired (or not yet valid) verifies it.
    case certificateNotValid(notAfter: Date)
    /// The signature verifies, but the document is not the JSON of an identity document.
    case malformedDocument(String)

    public var description: String {
        switch self {
        case .malformedSignature: return "the signature is not a base64 RSA signature"
        case .badSignature: return "the signature does not verify against any configured certificate (forged, altered, or another key)"
        case .certificateNotValid(let notAfter):
            return "the only certificate that verifies the signature is outside its validity (notAfter \(notAfter)); configure the current one"
        case .malformedDocument(let detail): return "the identity document is not one: \(detail)"
        }
    }
}

/// A certificate whose RSA key verifies identity documents: the AWS public certificate of a region (the "RSA"
/// certificate, for the base64 `signature`), or the lab's.
public struct TrustedIdentityCertificate: Sendable {
    /// The key.
    public var key: _RSA.Signing.PublicKey
    /// Its validity.
    public var notBefore: Date
    public var notAfter: Date
    /// Its key size in bits.
    public var keyBits: Int
}

/// Verifies instance identity proofs: the RSA-SHA256 (PKCS #1 v1.5) signature of the document, as AWS documents it
/// for `/latest/dynamic/instance-identity/signature` ("openssl dgst -sha256 -verify key -signature signature
/// document"), against the configured certificates, then decodes the document.
///
/// AWS's RSA certificate for this signature has a 1024-bit key, which swift-crypto's checked initialiser (and so
/// swift-certificates' `Certificate`) refuses; the certificate is therefore read with swift-asn1 (its subject public
/// key and validity only) and the key loaded with swift-crypto's `unsafeDERRepresentation`. The signature check itself
/// is swift-crypto's.
public struct InstanceIdentityVerifier: Sendable {
    /// The certificates.
    public let certificates: [TrustedIdentityCertificate]

    /// Reads every `CERTIFICATE` block of `pem`; `source` names the file in errors.
    public init(pem: String, source: String) throws(ConfigurationProblem) {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem).filter { $0.discriminator == "CERTIFICATE" }
        } catch {
            throw ConfigurationProblem("\(source): not PEM (\(error)); put the AWS public certificate(s) for the region here")
        }
        guard !documents.isEmpty else { throw ConfigurationProblem("\(source): no CERTIFICATE block; put the AWS public certificate(s) here") }
        var certificates: [TrustedIdentityCertificate] = []
        for (index, document) in documents.enumerated() {
            do {
                certificates.append(try Self.read(der: document.derBytes))
            } catch {
                throw ConfigurationProblem("\(source): certificate \(index + 1) cannot be used: \(error)")
            }
        }
        self.certificates = certificates
    }

    /// Reads the certificates of `path`.
    public static func load(path: String) throws(ConfigurationProblem) -> InstanceIdentityVerifier {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationProblem("\(path): cannot read the identity certificate file")
        }
        return try InstanceIdentityVerifier(pem: text, source: path)
    }

    /// Verifies `proof` at `now` and returns its document.
    public func verify(_ proof: InstanceIdentityProof, now: Date) throws(InstanceIdentityError) -> InstanceIdentityDocument {
        guard let bytes = Data(base64Encoded: proof.signature, options: .ignoreUnknownCharacters), !bytes.isEmpty else {
            throw .malformedSignature
        }
        let signature = _RSA.Signing.RSASignature(rawRepresentation: bytes)
        let document = Data(proof.document.utf8)
        var expired: Date?
        var sized = false
        for certificate in certificates where certificate.keyBits / 8 == bytes.count {
            sized = true
            guard certificate.key.isValidSignature(signature, for: document, padding: .insecurePKCS1v1_5) else { continue }
            guard certificate.notBefore <= now, now <= certificate.notAfter else {
                expired = certificate.notAfter
                continue
            }
            do {
                return try JSONDecoder().decode(InstanceIdentityDocument.self, from: document)
            } catch {
                throw .malformedDocument("\(error)")
            }
        }
        if let expired { throw .certificateNotValid(notAfter: expired) }
        throw sized ? .badSignature : .malformedSignature
    }

    static func read(der: [UInt8]) throws -> TrustedIdentityCertificate {
        let root = try DER.parse(der)
        return try DER.sequence(root, identifier: .sequence) { certificate in
            guard let tbs = certificate.next() else { throw ConfigurationProblem("no tbsCertificate") }
            while certificate.next() != nil {}  // the signature algorithm and value: the certificate is trusted as configured
            return try DER.sequence(tbs, identifier: .sequence) { fields in
                var node = fields.next()
                if node?.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) { node = fields.next() }  // version
                _ = fields.next()  // signature algorithm (node was the serial number)
                _ = fields.next()  // issuer
                guard let validity = fields.next() else { throw ConfigurationProblem("no validity") }
                _ = fields.next()  // subject
                guard let spki = fields.next() else { throw ConfigurationProblem("no subject public key") }
                while fields.next() != nil {}  // unique ids, extensions
                let (notBefore, notAfter) = try DER.sequence(validity, identifier: .sequence) { times in
                    guard let first = times.next(), let second = times.next() else { throw ConfigurationProblem("validity is not two times") }
                    return (try Self.date(first), try Self.date(second))
                }
                let key: _RSA.Signing.PublicKey
                do {
                    key = try _RSA.Signing.PublicKey(unsafeDERRepresentation: Array(spki.encodedBytes))
                } catch {
                    throw ConfigurationProblem("its key is not an RSA key (\(error)); use the region's RSA certificate, not the DSA or RSA-2048 one")
                }
                return TrustedIdentityCertificate(key: key, notBefore: notBefore, notAfter: notAfter, keyBits: key.keySizeInBits)
            }
        }
    }

    static func date(_ node: ASN1Node) throws -> Date {
        let parts: (year: Int, month: Int, day: Int, hours: Int, minutes: Int, seconds: Int)
        if node.identifier == UTCTime.defaultIdentifier {
            let time = try UTCTime(derEncoded: node)
            parts = (time.year, time.month, time.day, time.hours, time.minutes, time.seconds)
        } else {
            let time = try GeneralizedTime(derEncoded: node)
            parts = (time.year, time.month, time.day, time.hours, time.minutes, time.seconds)
        }
        // Days from the civil date (proleptic Gregorian), UTC.
        let y = parts.month <= 2 ? parts.year - 1 : parts.year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = parts.month
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + parts.day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Date(timeIntervalSince1970: Double(days * 86_400 + parts.hours * 3_600 + parts.minutes * 60 + parts.seconds))
    }
}

/// A configuration file that cannot be used: what and where.
public struct ConfigurationProblem: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// Creates the problem.
    public init(_ description: String) { self.description = description }
}

/// Signs identity documents as IMDS does, for the lab's IMDS stand-in and for tests: RSA-SHA256 PKCS #1 v1.5 over the
/// document's bytes, base64 with a line break every 64 characters (as IMDS serves it).
public struct InstanceIdentitySigner: Sendable {
    let key: _RSA.Signing.PrivateKey

    /// A signer with the PEM private key `pem` (PKCS #1 or PKCS #8, RSA).
    public init(pem: String) throws {
        key = try _RSA.Signing.PrivateKey(pemRepresentation: pem)
    }

    /// A signer with `key`.
    public init(key: _RSA.Signing.PrivateKey) { self.key = key }

    /// The proof for `document`.
    public func proof(for document: String) throws -> InstanceIdentityProof {
        let signature = try key.signature(for: Data(document.utf8), padding: .insecurePKCS1v1_5)
        let encoded = signature.rawRepresentation.base64EncodedString()
        var lines: [Substring] = []
        var rest = Substring(encoded)
        while !rest.isEmpty {
            lines.append(rest.prefix(64))
            rest = rest.dropFirst(64)
        }
        return InstanceIdentityProof(document: document, signature: lines.joined(separator: "\n"))
    }
}
