// The session catalog: an index of session summaries that answers `gatehouse sessions` without
// scanning segments. The segments stay the truth; the catalog can always be rebuilt from them.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "record/reader.hpp"

namespace gh::rec {

// Whether the catalog holds every session record of its trail.
enum class CatalogState : uint8_t {
  kClean,    // complete: rebuilt by reindex, or fed by a gateway that stopped cleanly
  kLive,     // a gateway is feeding it (or stopped without closing it: a crash)
  kStale,    // records are known to be missing (a failed write, a dropped batch)
  kMissing,  // no catalog file
};
std::string_view catalog_state_name(CatalogState state);

struct CatalogStatus {
  CatalogState state = CatalogState::kMissing;
  std::string reason;  // why it is stale
};

// The interface every catalog implements: SQLite embedded (this file), PostgreSQL for fleets
// later. Not thread-safe: one user at a time.
class Catalog {
 public:
  virtual ~Catalog() = default;
  // Folds partial summaries into the catalog, all in one transaction. Each delta is the fold
  // (fold_record) of records of one session that come after everything applied before for it:
  // counts add up, start and end widen, identity fields and lists are kept from their first
  // appearance, and a non-empty end reason replaces the one before.
  [[nodiscard]] virtual Result<void> apply(std::span<const SessionSummary> deltas) = 0;
  // Sessions matching every condition of `filter`, sorted by start time, then id (as
  // list_sessions).
  [[nodiscard]] virtual Result<std::vector<SessionSummary>> query(const SessionFilter& filter) = 0;
  [[nodiscard]] virtual Result<CatalogStatus> status() = 0;
  [[nodiscard]] virtual Result<uint64_t> session_count() = 0;  // reads the whole id index
  [[nodiscard]] virtual Result<void> set_state(CatalogState state, std::string_view reason = {}) = 0;
  // Empties the catalog (before a rebuild). Safe inside begin()/commit().
  [[nodiscard]] virtual Result<void> clear() = 0;
  // Groups several calls into one transaction (reindex: clear and refill atomically).
  [[nodiscard]] virtual Result<void> begin() = 0;
  [[nodiscard]] virtual Result<void> commit() = 0;
  virtual void rollback() = 0;
  // Refreshes the query planner's statistics after a bulk fill.
  [[nodiscard]] virtual Result<void> analyze() = 0;
};

// "<dir>/catalog.sqlite": where the catalog lives unless recording.catalog_file says otherwise.
std::string default_catalog_file(const std::string& trail_dir);

// SQLite's page cache for a rebuild: the indexes' hot pages stay in memory over a million sessions.
inline constexpr uint32_t kRebuildPageCacheKib = 65536;

// Opens (creating it and its schema when missing) an SQLite catalog in WAL mode, with a page cache
// of at most `page_cache_kib`. Fails with the file and SQLite's message when the file is not a
// catalog (corrupt, another database).
[[nodiscard]] Result<std::unique_ptr<Catalog>> open_sqlite_catalog(
    const std::string& file, uint32_t page_cache_kib = kRebuildPageCacheKib);
// Opens an existing catalog for reading; nullptr (not an error) when there is no such file.
[[nodiscard]] Result<std::unique_ptr<Catalog>> open_sqlite_catalog_readonly(const std::string& file);
// Deletes the catalog file and its -wal and -shm companions (reindex of a corrupt catalog).
[[nodiscard]] Result<void> remove_sqlite_catalog(const std::string& file);

struct ReindexReport {
  uint64_t records = 0;  // session records read
  uint64_t sessions = 0;
  std::string replaced;  // why the old catalog file was deleted first (it could not be opened)
};
// Rebuilds `catalog` from every segment of `dir`, in one transaction: the same catalog whatever
// it held before (idempotent). Leaves it kClean.
[[nodiscard]] Result<ReindexReport> reindex(const std::string& dir, Catalog& catalog);
// Whether a recorder (a running gateway) holds `dir`'s writer.lock right now.
bool recorder_holds(const std::string& dir);
// `gatehouse reindex`: refuses while a recorder holds `dir` (its feed would count records twice),
// deletes a catalog file that cannot be opened (corrupt, another schema), then reindexes.
[[nodiscard]] Result<ReindexReport> rebuild_sqlite_catalog(const std::string& dir,
                                                           const std::string& file);

struct CatalogFeedOptions {
  std::string file;  // the SQLite catalog
  std::string trail_dir;  // to tell whether the trail already holds records the catalog lacks
  // Batches are applied this often (one transaction each), or sooner when this many sessions
  // are pending.
  uint32_t apply_interval_ms = 200;
  size_t batch_sessions_max = 20000;
  // Sessions waiting for the catalog beyond this are dropped (the catalog goes stale): a stuck
  // catalog never holds up the flusher or grows without bound.
  size_t pending_sessions_max = 200000;
  // SQLite's page cache in the gateway. The feed only appends and updates a batch at a time and
  // the file's pages stay in the kernel's page cache, so a larger one would only hold the
  // gateway's memory (it filled to ~4.5 MiB over 10 000 logins with the rebuild's 64 MiB cap).
  uint32_t page_cache_kib = 1024;
  // Called on the feed's own thread (or the flusher's, for a drop) for every failure; must not
  // block.
  std::function<void(const std::string&)> on_error;
};

// Feeds a catalog from the records the flusher writes. observe() runs on the flusher thread: it
// folds the batch into pending deltas under a short lock and returns; the feed's own thread
// applies them in transactions. A catalog failure is logged and marks the catalog stale (run
// `gatehouse reindex`); it never holds up or fails the trail.
class CatalogFeed {
 public:
  static Result<std::unique_ptr<CatalogFeed>> start(CatalogFeedOptions options);
  ~CatalogFeed();  // stop()s
  CatalogFeed(const CatalogFeed&) = delete;
  CatalogFeed& operator=(const CatalogFeed&) = delete;

  // `records`: whole records as written to segment `segment` of shard `shard` (control records
  // included; they are skipped). Views are read before returning. Empty: records seen from that
  // segment were cut off (WrittenRecordsHook); the catalog turns stale.
  void observe(uint16_t shard, uint64_t segment, std::span<const std::byte> records);
  // Applies what is pending and marks the catalog clean when nothing was lost. Call after the
  // flusher stopped.
  void stop();

  uint64_t applied_batches() const;
  uint64_t dropped_sessions() const;

 private:
  explicit CatalogFeed(CatalogFeedOptions options);
  void run();
  void fail(const std::string& message, bool lost);

  CatalogFeedOptions options_;
  std::unique_ptr<Catalog> catalog_;  // feed thread only (after start)
  std::thread thread_;
  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  std::unordered_map<uint64_t, SessionSummary> pending_;
  bool stopping_ = false;
  bool lost_ = false;  // some records never reached the catalog
  std::string lost_reason_;
  uint64_t applied_batches_ = 0;
  uint64_t dropped_sessions_ = 0;
};

}  // namespace gh::rec
