// Per-shard cache of validated tokens.
// Must not depend on protocols.
#include "core/identity/validation_cache.hpp"

namespace gh::identity {

Result<Identity> ValidationCache::validate(std::string_view token, int64_t now_s) {
  const int64_t skew = validator_.options().clock_skew_s;
  if (auto it = entries_.find(std::string(token)); it != entries_.end()) {
    // nbf was checked when the token was cached and time only moves on; exp still matters.
    if (now_s < it->second.expires_at + skew) {
      ++hits_;
      return it->second;
    }
    entries_.erase(it);
  }
  auto identity = validator_.validate(token, now_s);
  if (identity) {
    if (entries_.size() >= entries_max_) entries_.erase(entries_.begin());
    entries_.emplace(std::string(token), *identity);
  }
  return identity;
}

}  // namespace gh::identity
