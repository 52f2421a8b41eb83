// The record chain hash: SHA-256(previous chain hash || record bytes before the hash).
// Depends on OpenSSL's EVP digests only; no I/O.
#include "record/hash.hpp"

#include <openssl/evp.h>

#include "core/assert.hpp"

namespace gh::rec {

struct ChainHasher::Impl {
  EVP_MD* md = nullptr;
  EVP_MD_CTX* ctx = nullptr;
};

ChainHasher::ChainHasher() : impl_(new Impl) {
  // Fetched once: implicit fetching by EVP_sha256() on every digest costs a lookup each time.
  impl_->md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  impl_->ctx = EVP_MD_CTX_new();
  GH_ASSERT(impl_->md != nullptr && impl_->ctx != nullptr);
}

ChainHasher::~ChainHasher() {
  EVP_MD_CTX_free(impl_->ctx);
  EVP_MD_free(impl_->md);
  delete impl_;
}

ChainHash ChainHasher::next(const ChainHash& previous, std::span<const std::byte> body) {
  ChainHash out{};
  unsigned int out_bytes = 0;
  // Failures here mean a broken OpenSSL install or memory exhaustion, not bad input.
  GH_ASSERT(EVP_DigestInit_ex2(impl_->ctx, impl_->md, nullptr) == 1);
  GH_ASSERT(EVP_DigestUpdate(impl_->ctx, previous.data(), previous.size()) == 1);
  GH_ASSERT(EVP_DigestUpdate(impl_->ctx, body.data(), body.size()) == 1);
  GH_ASSERT(EVP_DigestFinal_ex(impl_->ctx, out.data(), &out_bytes) == 1);
  GH_ASSERT(out_bytes == out.size());
  return out;
}

std::string to_hex(const ChainHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(hash.size() * 2);
  for (uint8_t b : hash) {
    text.push_back(kDigits[b >> 4]);
    text.push_back(kDigits[b & 15]);
  }
  return text;
}

}  // namespace gh::rec
