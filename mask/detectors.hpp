// The built-in detectors: their Hyperscan expressions and the checks that confirm a candidate
// (Luhn, IBAN mod-97, SSN ranges) and narrow it to the secret itself. Must not know sockets,
// files or gh::Result (the clang fuzz build compiles it, and its std::expected is missing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace gh::mask {

enum class Detector : uint8_t {
  kRegex,  // a custom expression: the whole match is the secret
  kCard,
  kEmail,
  kIban,
  kUsSsn,
  kJwt,
  kAwsAccessKeyId,
  kAwsSecretKey,
  kGithubToken,
  kSlackToken,
  kPrivateKey,
  kUriPassword,
};

struct DetectorSpec {
  Detector detector;
  std::string_view name;  // as written in the configuration, e.g. "card"
  // One or more expressions (byte semantics, no UTF-8 mode), each found by Hyperscan without
  // start-of-match tracking; the start is then found by a second, start-of-match scan of the
  // same expression over the bytes before the end (see MaskProgram).
  std::span<const std::string_view> expressions;
  // The longest text a match is looked at: a match is taken to start at most this many bytes
  // before its end. Bounds the bytes a streamed value holds back.
  uint32_t extent_bytes;
  // A weaker condition every match also meets, for the first, match-or-not scan of each value
  // (empty: the expressions themselves). The card and IBAN expressions start with a boundary
  // class that every non-digit satisfies, which makes that scan slow.
  std::span<const std::string_view> prefilter;
};

// Every built-in detector, in the order of the Detector enum (kRegex excluded).
std::span<const DetectorSpec> builtin_detectors();
std::optional<Detector> detector_by_name(std::string_view name);
const DetectorSpec* detector_spec(Detector d);  // nullptr for kRegex

// The secret inside a confirmed match, as offsets into `match`.
struct Core {
  size_t from = 0;
  size_t to = 0;
};

// Checks a candidate match of detector `d` (its bytes, boundary characters included) and returns
// the part to replace, or nothing when the candidate is not a real one (a number failing Luhn, an
// IBAN failing mod-97...). kRegex returns the whole match.
std::optional<Core> confirm(Detector d, std::string_view match);

// Luhn (mod 10) check over the digits of `text`, ignoring spaces and dashes; false when fewer
// than 12 or more than 19 digits or any other character (ISO/IEC 7812-1, Annex B).
bool luhn_valid(std::string_view text);
// ISO 13616 check: country letters, two check digits, 11 to 30 alphanumerics (spaces ignored),
// and the number mod 97 equal to 1.
bool iban_valid(std::string_view text);
// A US Social Security Number in the AAA-GG-SSSS form the SSA issues: area not 000, 666 or
// 900-999, group not 00, serial not 0000.
bool us_ssn_valid(std::string_view text);

}  // namespace gh::mask
