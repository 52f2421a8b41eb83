// Revoked tokens, subjects and actors: an immutable set published by the control plane (RCU
// style) and read by shards without locks. Must not depend on protocols or the engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/identity/identity.hpp"

namespace gh::identity {

// What a revocation names.
//  kTokenId: the token with that "jti" and every token minted from it (its "gh_lineage");
//  kSubject: every token whose "sub" is it;
//  kActor:   every token whose chain holds it anywhere (subject or any actor, nested included).
enum class RevocationKind : uint8_t { kTokenId, kSubject, kActor };
std::string_view revocation_kind_name(RevocationKind kind);  // "jti", "subject", "actor"
std::optional<RevocationKind> parse_revocation_kind(std::string_view name);

inline constexpr size_t kRevocationsMax = 100000;
inline constexpr size_t kRevocationValueBytesMax = 1024;
inline constexpr size_t kRevocationReasonBytesMax = 1024;

struct Revocation {
  RevocationKind kind = RevocationKind::kTokenId;
  std::string value;
  int64_t revoked_at_s = 0;
  std::string revoked_by;  // the admin caller's chain, as text
  std::string reason;      // free text from the admin, may be empty
};

// Immutable once built; shared between threads through std::shared_ptr<const RevocationSet>.
class RevocationSet {
 public:
  RevocationSet() = default;
  explicit RevocationSet(std::vector<Revocation> entries);

  // The revocation that covers `identity`, or nullptr. The pointer lives as long as the set.
  const Revocation* find(const Identity& identity) const;
  // Whether an identical (kind, value) entry is there.
  bool contains(RevocationKind kind, std::string_view value) const;
  const std::vector<Revocation>& entries() const { return entries_; }

 private:
  const Revocation* lookup(RevocationKind kind, const std::string& value) const;
  std::vector<Revocation> entries_;
  std::unordered_map<std::string, size_t> by_key_;  // kind byte + value -> entries_ index
};

// "token jti \"abc\" was revoked at 1700000000 by alice: offboarded" (for audit reasons).
std::string describe(const Revocation& revocation);

// The writer side: serializes additions (admin threads), appends each to a JSON Lines file with
// fsync before publishing it, and publishes a new immutable set plus a new epoch.
class RevocationRegistry {
 public:
  // Loads `file` when it exists (a missing file is an empty set; a torn last line, which a crash
  // during an append leaves, is ignored). An empty path keeps revocations in memory only.
  static Result<std::unique_ptr<RevocationRegistry>> open(std::filesystem::path file);

  // Any thread. Readers compare epoch() with the one they saw and load current() only when it
  // moved (RevocationView does this).
  std::shared_ptr<const RevocationSet> current() const {
    return current_.load(std::memory_order_acquire);
  }
  const std::atomic<uint64_t>& epoch() const { return epoch_; }
  const std::filesystem::path& file() const { return file_; }

  // Persists and publishes. Returns false (and changes nothing) when the same kind and value are
  // already revoked. Blocking file I/O: control-plane threads only, never a shard.
  Result<bool> add(Revocation revocation);

 private:
  explicit RevocationRegistry(std::filesystem::path file) : file_(std::move(file)) {}

  std::atomic<std::shared_ptr<const RevocationSet>> current_{
      std::make_shared<const RevocationSet>()};
  std::atomic<uint64_t> epoch_{0};
  std::mutex write_mutex_;  // writers only; readers never take it
  std::filesystem::path file_;
};

// One reader's cached view of a registry: refreshed only when the epoch moved, so that the common
// path is a single atomic load. Not thread-safe: one per shard (or per thread).
class RevocationView {
 public:
  explicit RevocationView(const RevocationRegistry* registry) : registry_(registry) {}
  // The current set (an empty one when there is no registry). Valid until the next call.
  const RevocationSet& get();
  // The epoch last loaded by get().
  uint64_t seen_epoch() const { return seen_; }

 private:
  const RevocationRegistry* registry_;
  std::shared_ptr<const RevocationSet> set_ = std::make_shared<const RevocationSet>();
  uint64_t seen_ = 0;
  bool first_ = true;  // the registry may have loaded entries before any epoch moved
};

// One line of the revocations file and back (exposed for tests).
std::string revocation_to_json_line(const Revocation& revocation);
Result<Revocation> revocation_from_json(std::string_view line);

}  // namespace gh::identity
