import ACMEProtocol
import Foundation
import Testing

@Suite("RFC 3339 timestamps")
struct RFC3339Tests {
    /// Found by the acme fuzz target (Fuzz/regressions/acme/): a year of 90 digits overflowed into a date a million
    /// years in the past, which formats as a year in the future. RFC 3339's date-fullyear is 4DIGIT.
    @Test("a year that is not four digits is no timestamp")
    func fourDigitYears() {
        for text in ["44888888888888888888888886-12-18T00:00:00Z", "12026-01-01T00:00:00Z", "-2026-01-01T00:00:00Z", "226-01-01T00:00:00Z", ""] {
            #expect(RFC3339.parse(text) == nil, "\(text)")
        }
        #expect(RFC3339.parse("2026-01-02T03:04:05Z") == Date(timeIntervalSince1970: 1_767_323_045))
        #expect(RFC3339.parse("0001-01-01T00:00:00+01:00") != nil)
    }
}
