// Replacement styles for masked bytes: a fixed mask character, keep the last N characters, or a
// keyed hash (HMAC-SHA-256) that maps equal inputs to equal tokens. Every style keeps the byte
// length, so that a value masked in pieces as it streams equals the value masked whole, and no
// message length changes. Must not know sockets, files or gh::Result (fuzz build).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace gh::mask {

enum class Style : uint8_t { kMask, kKeepLast, kHash };

struct Replacement {
  Style style = Style::kMask;
  char mask_char = '*';
  uint32_t keep = 4;     // kKeepLast: ASCII letters and digits left as they are, from the end
  std::string hash_key;  // kHash: the HMAC key (bytes)
};

// Writes original.size() bytes to `out`. Output is ASCII wherever it differs from the input, so
// valid UTF-8 stays valid UTF-8 (every byte of a multi-byte character is replaced).
// - kMask: every byte becomes mask_char.
// - kKeepLast: the last `keep` ASCII letters and digits stay, earlier ones and every non-ASCII
//   byte become mask_char, punctuation and spaces stay (4111-1111-1111-1111 ->
//   ****-****-****-1111).
// - kHash: letters and digits are replaced by letters and digits drawn from
//   HMAC-SHA-256(hash_key, original) (case and digit-ness kept), non-ASCII bytes by letters,
//   punctuation and spaces stay: the same input gives the same token, so joins still line up.
// `binary` (a binary-format value of a non-text type, masked whole by a column rule): zero bytes,
// which every fixed-size binary type decodes.
void replace(const Replacement& r, std::string_view original, char* out, bool binary = false);

}  // namespace gh::mask
