// PostgreSQL's MD5 password response: two rounds of MD5 through OpenSSL's EVP digest API.
// Must not depend on the PostgreSQL codec or on I/O.
#include "protocols/postgres/auth/md5_password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>

namespace gh::pg {
namespace {

// Lower-case hex of MD5(data), as PostgreSQL's pg_md5_hash writes it.
gh::Result<std::string> md5_hex(std::string_view data) {
  std::array<unsigned char, 16> digest{};
  size_t len = 0;
  if (EVP_Q_digest(nullptr, "MD5", nullptr, data.data(), data.size(), digest.data(), &len) != 1 ||
      len != digest.size()) {
    return gh::fail("md5 password: OpenSSL offers no MD5 (FIPS-only configuration?)");
  }
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * digest.size());
  for (unsigned char b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0x0F]);
  }
  return out;
}

}  // namespace

gh::Result<std::string> md5_password_response(std::string_view user, std::string_view password,
                                              std::span<const std::byte, 4> salt) {
  std::string inner_input;
  inner_input.reserve(password.size() + user.size());
  inner_input.append(password);
  inner_input.append(user);
  gh::Result<std::string> outer_input = md5_hex(inner_input);
  OPENSSL_cleanse(inner_input.data(), inner_input.size());
  if (!outer_input) return outer_input;
  outer_input->append(reinterpret_cast<const char*>(salt.data()), salt.size());
  gh::Result<std::string> outer = md5_hex(*outer_input);
  OPENSSL_cleanse(outer_input->data(), outer_input->size());
  if (!outer) return outer;
  return "md5" + *outer;
}

}  // namespace gh::pg
