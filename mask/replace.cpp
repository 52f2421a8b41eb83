// Replacement styles (see replace.hpp). Must not know sockets, files or gh::Result (fuzz build).
#include "mask/replace.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstring>

#include "core/assert.hpp"

namespace gh::mask {
namespace {

bool is_ascii_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

void keep_last(const Replacement& r, std::string_view in, char* out) {
  uint32_t kept = 0;
  for (size_t i = in.size(); i-- > 0;) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x80) {
      out[i] = r.mask_char;
    } else if (!is_ascii_alnum(c)) {
      out[i] = in[i];
    } else if (kept < r.keep) {
      out[i] = in[i];
      ++kept;
    } else {
      out[i] = r.mask_char;
    }
  }
}

using Block = std::array<unsigned char, 32>;

void hmac(std::string_view key, const void* data, size_t n, Block& out) {
  unsigned int len = 0;
  GH_ASSERT(HMAC(EVP_sha256(), key.data(), int(key.size()), static_cast<const unsigned char*>(data),
                 n, out.data(), &len) != nullptr);
  GH_ASSERT(len == out.size());
}

void hash(const Replacement& r, std::string_view in, char* out) {
  // Keystream: K0 = HMAC(key, input), Ki = HMAC(K0, i) for the bytes beyond the first 32.
  Block prk;
  hmac(r.hash_key, in.data(), in.size(), prk);
  Block block = prk;
  uint32_t counter = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const size_t at = i % block.size();
    if (at == 0 && i > 0) {
      ++counter;
      const unsigned char be[4] = {uint8_t(counter >> 24), uint8_t(counter >> 16),
                                   uint8_t(counter >> 8), uint8_t(counter)};
      hmac(std::string_view(reinterpret_cast<const char*>(prk.data()), prk.size()), be, sizeof be,
           block);
    }
    const unsigned char k = block[at];
    const auto c = static_cast<unsigned char>(in[i]);
    if (c >= '0' && c <= '9') {
      out[i] = char('0' + k % 10);
    } else if (c >= 'A' && c <= 'Z') {
      out[i] = char('A' + k % 26);
    } else if ((c >= 'a' && c <= 'z') || c >= 0x80) {
      out[i] = char('a' + k % 26);
    } else {
      out[i] = in[i];
    }
  }
}

}  // namespace

void replace(const Replacement& r, std::string_view original, char* out, bool binary) {
  if (binary) {
    std::memset(out, 0, original.size());
    return;
  }
  switch (r.style) {
    case Style::kMask:
      std::memset(out, r.mask_char, original.size());
      return;
    case Style::kKeepLast:
      keep_last(r, original, out);
      return;
    case Style::kHash:
      hash(r, original, out);
      return;
  }
}

}  // namespace gh::mask
