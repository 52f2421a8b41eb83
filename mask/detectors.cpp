// Built-in detectors: expressions for Hyperscan and the confirmation of each candidate.
// Must not know sockets, files or gh::Result (the clang fuzz build compiles this file).
#include "mask/detectors.hpp"

#include <array>

namespace gh::mask {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alnum(char c) { return is_digit(c) || is_upper(c) || (c >= 'a' && c <= 'z'); }

// Each expression is written for byte semantics and ends (and, where a run of the same
// characters could come before it, starts) on a boundary character or the value's edge, so that
// Hyperscan reports one end per secret rather than one per character.

// Payment cards: 13-19 digits, leading 2-6 (the major networks' ranges), either contiguous or in
// the printed groups (4-4-4-x with one separator kind, 4-6-5 / 4-6-4).
constexpr std::array<std::string_view, 2> kCard = {
    R"((?:\A|[^0-9])[2-6][0-9]{12,18}(?:[^0-9]|\z))",
    R"((?:\A|[^0-9])[2-6][0-9]{3}(?:(?: [0-9]{4}){2} [0-9]{1,7}|(?:-[0-9]{4}){2}-[0-9]{1,7}|[ -][0-9]{6}[ -][0-9]{4,5})(?:[^0-9]|\z))",
};
constexpr std::array<std::string_view, 1> kEmail = {
    R"([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?:[^A-Za-z0-9-]|\z))",
};
constexpr std::array<std::string_view, 1> kIban = {
    R"((?:\A|[^A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}(?:[^A-Za-z0-9]|\z))",
};
constexpr std::array<std::string_view, 1> kUsSsn = {
    R"((?:\A|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}(?:[^0-9]|\z))",
};
// A JWS in compact form: base64url JSON header and payload (both start with `{"`, "eyJ").
constexpr std::array<std::string_view, 1> kJwt = {
    R"(eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*(?:[^A-Za-z0-9_.-]|\z))",
};
// AWS access key ids by their documented prefixes (AKIA long-term, ASIA temporary, ...).
constexpr std::array<std::string_view, 1> kAwsAccessKeyId = {
    R"((?:\A|[^A-Za-z0-9])(?:A3T[A-Z0-9]|AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?:[^A-Za-z0-9]|\z))",
};
// A secret access key is 40 base64 characters, too common a shape alone: it is looked for after
// a name that says what it is (aws_secret_access_key=..., "AwsSecretKey": "...").
constexpr std::array<std::string_view, 1> kAwsSecretKey = {
    R"([Aa][Ww][Ss][A-Za-z0-9_ .-]{0,30}[Ss][Ee][Cc][Rr][Ee][Tt][A-Za-z0-9_ .-]{0,30}["']?[ \t]{0,3}[:=>]{1,2}[ \t]{0,3}["']?[A-Za-z0-9/+]{40}(?:[^A-Za-z0-9/+]|\z))",
};
constexpr std::array<std::string_view, 1> kGithubToken = {
    R"((?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?:[^A-Za-z0-9_]|\z))",
};
constexpr std::array<std::string_view, 2> kSlackToken = {
    R"(xox[abposre]-[A-Za-z0-9-]{10,}(?:[^A-Za-z0-9-]|\z))",
    R"(https://hooks\.slack\.com/services/[A-Za-z0-9_/]{20,}(?:[^A-Za-z0-9_/]|\z))",
};
constexpr std::array<std::string_view, 1> kPrivateKey = {
    R"(-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----[A-Za-z0-9+/=\s:,.-]+-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----)",
};
// scheme://user:password@host: the password (RFC 3986 userinfo).
constexpr std::array<std::string_view, 1> kUriPassword = {
    R"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:[^\s@/]+@)",
};

// Necessary conditions: a card's first eight digits (an optional separator after four), an
// IBAN's country, check digits and first four characters.
constexpr std::array<std::string_view, 1> kCardPrefilter = {R"([2-6][0-9]{3}[ -]?[0-9]{4})"};
constexpr std::array<std::string_view, 1> kIbanPrefilter = {R"([A-Z]{2}[0-9]{2} ?[A-Z0-9]{4})"};
constexpr std::span<const std::string_view> kNone;

constexpr std::array<DetectorSpec, 11> kDetectors = {{
    {Detector::kCard, "card", kCard, 40, kCardPrefilter},
    {Detector::kEmail, "email", kEmail, 320, kNone},
    {Detector::kIban, "iban", kIban, 48, kIbanPrefilter},
    {Detector::kUsSsn, "us_ssn", kUsSsn, 13, kNone},
    {Detector::kJwt, "jwt", kJwt, 16384, kNone},
    {Detector::kAwsAccessKeyId, "aws_access_key_id", kAwsAccessKeyId, 22, kNone},
    {Detector::kAwsSecretKey, "aws_secret_key", kAwsSecretKey, 160, kNone},
    {Detector::kGithubToken, "github_token", kGithubToken, 300, kNone},
    {Detector::kSlackToken, "slack_token", kSlackToken, 300, kNone},
    {Detector::kPrivateKey, "private_key", kPrivateKey, 16384, kNone},
    {Detector::kUriPassword, "uri_password", kUriPassword, 600, kNone},
}};

// Drops one leading and one trailing character when they fail `keep` (the boundary characters
// the expressions include).
template <class Keep>
Core strip_boundaries(std::string_view m, Keep keep) {
  Core c{0, m.size()};
  if (c.to > c.from && !keep(m[c.from])) ++c.from;
  if (c.to > c.from && !keep(m[c.to - 1])) --c.to;
  return c;
}

std::string_view slice(std::string_view m, Core c) { return m.substr(c.from, c.to - c.from); }

std::optional<Core> confirm_card(std::string_view m) {
  const Core c = strip_boundaries(m, is_digit);
  const std::string_view digits = slice(m, c);
  if (digits.empty() || digits[0] < '2' || digits[0] > '6') return std::nullopt;
  size_t n = 0;
  for (char ch : digits) n += is_digit(ch) ? 1 : 0;
  if (n < 13 || !luhn_valid(digits)) return std::nullopt;
  return c;
}

std::optional<Core> confirm_email(std::string_view m) {
  Core c{0, m.size()};
  while (c.to > c.from && !is_alnum(m[c.to - 1])) --c.to;
  const size_t at = m.find('@');
  if (at == std::string_view::npos || at >= c.to) return std::nullopt;
  // RFC 5321: a local part has at most 64 octets; the run before them is not part of it.
  if (at - c.from > 64) c.from = at - 64;
  if (c.from == at) return std::nullopt;
  return c;
}

std::optional<Core> confirm_trailing(std::string_view m, bool (*keep)(char)) {
  Core c{0, m.size()};
  if (c.to > c.from && !keep(m[c.to - 1])) --c.to;
  if (c.to == c.from) return std::nullopt;
  return c;
}

bool is_base64url(char c) { return is_alnum(c) || c == '_' || c == '-'; }
bool is_token_char(char c) { return is_alnum(c) || c == '_'; }
bool is_slack_char(char c) { return is_alnum(c) || c == '-' || c == '_' || c == '/'; }

std::optional<Core> confirm_aws_secret(std::string_view m) {
  auto c = confirm_trailing(m, [](char ch) { return is_alnum(ch) || ch == '/' || ch == '+'; });
  if (!c || c->to - c->from < 40) return std::nullopt;
  c->from = c->to - 40;
  return c;
}

std::optional<Core> confirm_slack(std::string_view m) {
  auto c = confirm_trailing(m, is_slack_char);
  if (!c) return std::nullopt;
  constexpr std::string_view kServices = "/services/";
  if (const size_t p = m.find(kServices);
      m.starts_with("https://") && p != std::string_view::npos) {
    c->from = p + kServices.size();
  }
  if (c->to <= c->from) return std::nullopt;
  return c;
}

std::optional<Core> confirm_private_key(std::string_view m) {
  constexpr std::string_view kHeadEnd = "PRIVATE KEY-----";
  constexpr std::string_view kFoot = "-----END";
  const size_t head = m.find(kHeadEnd);
  const size_t foot = m.rfind(kFoot);
  if (head == std::string_view::npos || foot == std::string_view::npos) {
    // The block is longer than the detector's extent: what is in view is key material.
    return Core{0, m.size()};
  }
  Core c{head + kHeadEnd.size(), foot};
  if (c.to <= c.from) return std::nullopt;
  return c;
}

std::optional<Core> confirm_uri_password(std::string_view m) {
  const size_t scheme = m.find("://");
  if (scheme == std::string_view::npos || m.empty() || m.back() != '@') return std::nullopt;
  const size_t colon = m.find(':', scheme + 3);
  if (colon == std::string_view::npos || colon + 1 >= m.size() - 1) return std::nullopt;
  return Core{colon + 1, m.size() - 1};
}

}  // namespace

std::span<const DetectorSpec> builtin_detectors() { return kDetectors; }

std::optional<Detector> detector_by_name(std::string_view name) {
  for (const DetectorSpec& d : kDetectors) {
    if (d.name == name) return d.detector;
  }
  return std::nullopt;
}

const DetectorSpec* detector_spec(Detector d) {
  for (const DetectorSpec& s : kDetectors) {
    if (s.detector == d) return &s;
  }
  return nullptr;
}

std::optional<Core> confirm(Detector d, std::string_view m) {
  switch (d) {
    case Detector::kRegex:
      return Core{0, m.size()};
    case Detector::kCard:
      return confirm_card(m);
    case Detector::kEmail:
      return confirm_email(m);
    case Detector::kIban: {
      const Core c = strip_boundaries(m, is_alnum);
      if (!iban_valid(slice(m, c))) return std::nullopt;
      return c;
    }
    case Detector::kUsSsn: {
      const Core c = strip_boundaries(m, is_digit);
      if (!us_ssn_valid(slice(m, c))) return std::nullopt;
      return c;
    }
    case Detector::kJwt:
      return confirm_trailing(m, is_base64url);
    case Detector::kAwsAccessKeyId: {
      const Core c = strip_boundaries(m, is_alnum);
      if (c.to - c.from != 20) return std::nullopt;
      return c;
    }
    case Detector::kAwsSecretKey:
      return confirm_aws_secret(m);
    case Detector::kGithubToken:
      return confirm_trailing(m, is_token_char);
    case Detector::kSlackToken:
      return confirm_slack(m);
    case Detector::kPrivateKey:
      return confirm_private_key(m);
    case Detector::kUriPassword:
      return confirm_uri_password(m);
  }
  return std::nullopt;
}

bool luhn_valid(std::string_view text) {
  int sum = 0;
  int digits = 0;
  // From the rightmost digit, double every second one (ISO/IEC 7812-1 Annex B).
  for (auto it = text.rbegin(); it != text.rend(); ++it) {
    const char c = *it;
    if (c == ' ' || c == '-') continue;
    if (c < '0' || c > '9') return false;
    int d = c - '0';
    if (digits % 2 == 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    ++digits;
  }
  return digits >= 12 && digits <= 19 && sum % 10 == 0;
}

bool iban_valid(std::string_view text) {
  std::array<char, 34> c{};
  size_t n = 0;
  for (char ch : text) {
    if (ch == ' ') continue;
    if (!is_digit(ch) && !is_upper(ch)) return false;
    if (n == c.size()) return false;
    c[n++] = ch;
  }
  if (n < 15 || !is_upper(c[0]) || !is_upper(c[1]) || !is_digit(c[2]) || !is_digit(c[3])) {
    return false;
  }
  // Move the first four characters to the end, letters become 10..35, then mod 97, digit by
  // digit so that no big number is needed.
  uint32_t rem = 0;
  for (size_t k = 0; k < n; ++k) {
    const char ch = c[(k + 4) % n];
    if (is_digit(ch)) {
      rem = (rem * 10 + uint32_t(ch - '0')) % 97;
    } else {
      rem = (rem * 100 + uint32_t(ch - 'A' + 10)) % 97;
    }
  }
  return rem == 1;
}

bool us_ssn_valid(std::string_view t) {
  if (t.size() != 11 || t[3] != '-' || t[6] != '-') return false;
  for (size_t i : {0, 1, 2, 4, 5, 7, 8, 9, 10}) {
    if (!is_digit(t[i])) return false;
  }
  const std::string_view area = t.substr(0, 3);
  if (area == "000" || area == "666" || area[0] == '9') return false;
  if (t.substr(4, 2) == "00" || t.substr(7, 4) == "0000") return false;
  return true;
}

}  // namespace gh::mask
