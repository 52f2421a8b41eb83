// A per-shard cache of validated tokens, so that clients reconnecting with the same token do not
// pay a signature check each time. Not thread-safe: one per shard. Must not depend on protocols.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/error.hpp"
#include "core/identity/jwt.hpp"

namespace gh::identity {

class ValidationCache {
 public:
  static constexpr size_t kEntriesMaxDefault = 1024;

  ValidationCache(const Validator& validator, size_t entries_max = kEntriesMaxDefault)
      : validator_(validator), entries_max_(entries_max) {}

  // As Validator::validate. A token that validated before is answered from the cache until it
  // expires (with the same clock skew); refusals are never cached.
  Result<Identity> validate(std::string_view token, int64_t now_s);

  size_t size() const { return entries_.size(); }
  uint64_t hits() const { return hits_; }

 private:
  const Validator& validator_;
  size_t entries_max_;
  std::unordered_map<std::string, Identity> entries_;  // keyed by the whole token
  uint64_t hits_ = 0;
};

}  // namespace gh::identity
