// SASLprep of SCRAM passwords: RFC 4013 mapping and prohibition tables, PostgreSQL's fallback.
// Must not depend on the PostgreSQL codec, on I/O or on OpenSSL.
//
// Implemented: strict UTF-8 decoding (RFC 3629), mapping (RFC 4013 §2.1: RFC 3454 C.1.2 to
// SPACE, B.1 to nothing), the prohibited output tables of RFC 4013 §2.3 (RFC 3454 C.1.2, C.2.1,
// C.2.2, C.3 to C.9), and PostgreSQL's fallbacks (invalid UTF-8, a prohibited code point or an
// empty mapped string -> raw password). Not implemented, so reported as inexact: NFKC
// normalization (§2.2), the unassigned code point check (RFC 3454 A.1) and the bidi rule (§2.4),
// all of which need the Unicode 3.2 character database; they are known to be the identity when
// every mapped code point is in Latin-1 outside a short list, so such passwords are exact too.
// A packaged library (ICU's usprep with USPREP_RFC4013_SASLPREP) would supply the rest.
#include "protocols/postgres/auth/saslprep.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace gh::pg {
namespace {

struct Range {
  char32_t first;
  char32_t last;
};

bool in_table(char32_t c, std::span<const Range> table) {
  for (const Range& r : table) {
    if (c >= r.first && c <= r.last) return true;
  }
  return false;
}

// RFC 3454 Appendix C.1.2, non-ASCII space characters. PostgreSQL maps these before B.1, so
// U+200B (in both tables) becomes a SPACE; we do the same to derive the same bytes.
constexpr Range kNonAsciiSpace[] = {{0x00A0, 0x00A0}, {0x1680, 0x1680}, {0x2000, 0x200B},
                                    {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}};

// RFC 3454 Appendix B.1, commonly mapped to nothing.
constexpr Range kMappedToNothing[] = {{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x1806, 0x1806},
                                      {0x180B, 0x180D}, {0x200B, 0x200D}, {0x2060, 0x2060},
                                      {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF}};

// RFC 4013 §2.3: RFC 3454 C.2.1, C.2.2, C.3, C.5, C.6, C.7, C.8, C.9 (C.1.2 cannot survive the
// mapping step; C.4, the non-characters, is tested arithmetically below).
constexpr Range kProhibited[] = {
    {0x0000, 0x001F},     {0x007F, 0x009F},   {0x0340, 0x0341},   {0x06DD, 0x06DD},
    {0x070F, 0x070F},     {0x180E, 0x180E},   {0x200C, 0x200F},   {0x2028, 0x202E},
    {0x2060, 0x2063},     {0x206A, 0x206F},   {0x2FF0, 0x2FFB},   {0xD800, 0xDFFF},
    {0xE000, 0xF8FF},     {0xFDD0, 0xFDEF},   {0xFEFF, 0xFEFF},   {0xFFF9, 0xFFFD},
    {0x1D173, 0x1D17A},   {0xE0001, 0xE0001}, {0xE0020, 0xE007F}, {0xF0000, 0xFFFFD},
    {0x100000, 0x10FFFD},
};

// Latin-1 code points whose NFKC form differs from themselves (compatibility decompositions;
// U+00A0 is mapped to SPACE before this matters). Every other code point up to U+00FF is
// assigned, left-to-right or neutral, and NFKC-stable in any sequence of such code points.
constexpr Range kLatin1NotNfkcStable[] = {{0x00A8, 0x00A8}, {0x00AA, 0x00AA}, {0x00AF, 0x00AF},
                                          {0x00B2, 0x00B5}, {0x00B8, 0x00BA}, {0x00BC, 0x00BE}};

// True when the unimplemented steps (NFKC, A.1, bidi) certainly leave the mapped string alone.
bool unimplemented_steps_are_identity(std::span<const char32_t> mapped) {
  for (char32_t c : mapped) {
    if (c > 0xFF || in_table(c, kLatin1NotNfkcStable)) return false;
  }
  return true;
}

bool is_prohibited(char32_t c) {
  if ((c & 0xFFFE) == 0xFFFE) return true;  // RFC 3454 C.4: U+xxFFFE and U+xxFFFF in every plane
  return in_table(c, kProhibited);
}

// Strict RFC 3629 decoding: no overlong forms, no surrogates, nothing above U+10FFFF.
std::optional<std::vector<char32_t>> decode_utf8(std::string_view in) {
  std::vector<char32_t> out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    const auto b0 = static_cast<uint8_t>(in[i]);
    size_t len = 0;
    char32_t c = 0;
    char32_t min = 0;
    if (b0 < 0x80) {
      len = 1, c = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2, c = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3, c = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4, c = b0 & 0x07, min = 0x10000;
    } else {
      return std::nullopt;
    }
    if (in.size() - i < len) return std::nullopt;
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<uint8_t>(in[i + k]);
      if ((b & 0xC0) != 0x80) return std::nullopt;
      c = (c << 6) | (b & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return std::nullopt;
    out.push_back(c);
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace

PreparedPassword saslprep_password(std::string_view password) {
  const PreparedPassword raw{std::string(password), true};

  bool ascii = true;
  for (char ch : password) ascii = ascii && static_cast<uint8_t>(ch) < 0x80;
  // SASLprep maps no ASCII character and NFKC leaves ASCII alone; the only ASCII it prohibits
  // (controls) sends PostgreSQL to the raw bytes, which are the same bytes.
  if (ascii) return raw;

  auto decoded = decode_utf8(password);
  if (!decoded) return raw;

  std::vector<char32_t> mapped;
  mapped.reserve(decoded->size());
  for (char32_t c : *decoded) {
    if (in_table(c, kNonAsciiSpace)) {
      mapped.push_back(U' ');
    } else if (!in_table(c, kMappedToNothing)) {
      mapped.push_back(c);
    }
  }
  // PostgreSQL refuses an empty result (and so falls back to the raw bytes).
  if (mapped.empty()) return raw;
  // PostgreSQL applies the prohibition tables to the mapped code points (before normalization).
  for (char32_t c : mapped) {
    if (is_prohibited(c)) return raw;
  }

  PreparedPassword out;
  out.bytes.reserve(password.size());
  for (char32_t c : mapped) append_utf8(out.bytes, c);
  out.exact = unimplemented_steps_are_identity(mapped);
  return out;
}

}  // namespace gh::pg
