// The record chain hash: SHA-256(previous chain hash || record bytes before the hash).
// Depends on OpenSSL's EVP digests only; no I/O.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "record/event.hpp"

namespace gh::rec {

// Reuses one digest context; not thread-safe, keep one per thread.
class ChainHasher {
 public:
  ChainHasher();
  ~ChainHasher();
  ChainHasher(const ChainHasher&) = delete;
  ChainHasher& operator=(const ChainHasher&) = delete;

  ChainHash next(const ChainHash& previous, std::span<const std::byte> body);

 private:
  struct Impl;
  Impl* impl_;
};

std::string to_hex(const ChainHash& hash);

}  // namespace gh::rec
