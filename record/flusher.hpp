// The recorder's flusher: owns every shard's ring and one thread that drains them into segments.
// Shards only ever touch their Ring; all disk I/O (write, fdatasync, rotation) happens here.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "record/doorbell.hpp"
#include "record/keys.hpp"
#include "record/limits.hpp"
#include "record/ring.hpp"
#include "record/segment.hpp"

namespace gh::rec {

struct FlushError {
  uint16_t shard = 0;
  std::string message;  // names the file and the errno text
};

struct FlusherOptions {
  std::string dir;      // trail directory; shard-NN/ folders are created below it
  std::string node_id;  // 1..limits::node_id_bytes_max bytes, written into every segment header
  uint16_t shard_count = 1;
  size_t ring_bytes = limits::ring_bytes_default;  // per shard, power of two
  uint64_t segment_bytes_max = limits::segment_bytes_default;
  // A segment older than this is sealed and the next record (or checkpoint) opens a new one.
  uint64_t segment_age_ms = limits::segment_age_ms_default;
  // Signs every seal, checkpoint and recovery record. Required.
  std::shared_ptr<const NodeKey> key;
  // Every shard appends a signed checkpoint this often, a heartbeat when nothing happened.
  uint32_t checkpoint_interval_ms = limits::checkpoint_interval_ms_default;
  // Checkpoints and seals, once synced, are appended here as JSON lines (record/FORMAT.md,
  // "Anchor file"); empty: no anchor file. Should live outside `dir`.
  std::string anchor_file;
  // fdatasync of written segments at most this often (and at rotation and stop); 0 = after
  // every batch.
  uint32_t flush_interval_ms = limits::flush_interval_ms_default;
  // recording.durability: strict. Every pass writes what all rings hold, then fdatasyncs each
  // written shard once (group commit across its connections) and publishes Ring::durable();
  // a shard waiting for durability rings the doorbell instead of waiting for the next poll.
  bool strict = false;
  // Sleep between passes while records come (not strict), and the first sleep once idle.
  uint32_t poll_interval_us = limits::poll_interval_us_default;
  uint32_t retry_interval_ms = limits::retry_interval_ms_default;  // after a failed write/sync
  // Called on the flusher thread for every failed attempt; must not block or call back in.
  std::function<void(const FlushError&)> on_error;
  SegmentIo* io = nullptr;  // posix_segment_io() when null; tests inject faults here
  // Sees every batch once it is in its segment file (the session catalog's feed).
  WrittenRecordsHook on_written;
};

struct FlusherCounters {
  uint64_t records = 0;  // records fully written to segment files
  uint64_t bytes = 0;    // record bytes written (headers excluded)
  uint64_t fsyncs = 0;
  uint64_t write_errors = 0;  // failed write, sync or rotation attempts
  uint64_t checkpoints = 0;   // checkpoints written (heartbeats included)
  uint64_t seals = 0;         // segments sealed
  uint64_t anchors = 0;       // lines appended to the anchor file
  uint64_t broken_segments = 0;  // segments abandoned after a failed fdatasync
  uint64_t lost_records = 0;     // records written but never made durable (cut off with them)
};

// Lifecycle: create() (validates options, locks the directory, resumes every shard directory,
// allocates the rings)
// -> hand ring(i) to shard i -> start() -> shards produce -> shards stop producing -> stop().
//
// A record leaves its ring only once all of its bytes are in the segment file. When a write or
// sync fails (ENOSPC, EIO...) the shard's batch stays staged and its ring is not drained, so the
// ring fills and the shard sees PushStatus::kFull (back-pressure); the flusher reports the error
// and retries every retry_interval_ms. Nothing is dropped.
//
// A failed fdatasync is never retried as a success (the kernel may have dropped the dirty pages
// and would report the next one clean): the segment is abandoned (ShardWriter::sync), the records
// written since the last good fdatasync are published as lost (Ring::publish_lost), and the
// records still in the ring go to a new segment that opens with a recovery record. A failed fsync
// of the directory after a new segment's rename is handled the same way.
class Flusher {
 public:
  static Result<std::unique_ptr<Flusher>> create(FlusherOptions options);
  ~Flusher();  // stop()s when still running
  Flusher(const Flusher&) = delete;
  Flusher& operator=(const Flusher&) = delete;

  uint16_t shard_count() const { return static_cast<uint16_t>(shards_.size()); }
  // The producer end belongs to shard `shard`'s thread; the Flusher outlives every use.
  Ring& ring(uint16_t shard);
  // How each shard directory was picked up (torn tails of the previous run are noted here).
  const ResumeInfo& resume_info(uint16_t shard) const;

  [[nodiscard]] Result<void> start();
  // Drains every ring, writes and syncs. Call after the shards stopped producing. Fails, naming
  // the shards and bytes left, only when records could not be written after a few retries.
  [[nodiscard]] Result<void> stop();

  // Readable from any thread.
  FlusherCounters counters() const;
  bool degraded() const { return failing_shards_.load(std::memory_order_acquire) > 0; }
  std::optional<std::string> last_error() const;  // most recent failure, kept after recovery

 private:
  struct Shard;
  explicit Flusher(FlusherOptions options);
  void run();
  bool service(Shard& shard, bool force);
  Result<void> seal_and_close(Shard& shard);
  void checkpoint(Shard& shard);
  void write_anchors();
  void sync_all(bool force);
  void on_failure(Shard& shard, const Error& error);
  Result<void> sync_shard(Shard& shard);
  void note_sync(Shard& shard, bool synced);
  void on_success(Shard& shard);
  void publish_counters();
  Result<void> final_drain();

  FlusherOptions options_;
  int lock_fd_ = -1;  // flock on <dir>/writer.lock: one recorder per trail directory
  std::vector<std::unique_ptr<Shard>> shards_;
  std::thread thread_;
  enum class State : uint8_t { kCreated, kRunning, kStopped } state_ = State::kCreated;
  std::atomic<bool> stop_requested_{false};
  Result<void> stop_result_;

  std::atomic<uint64_t> records_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> fsyncs_{0};
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> checkpoints_{0};
  std::atomic<uint64_t> seals_{0};
  std::atomic<uint64_t> anchors_{0};
  std::atomic<uint64_t> broken_segments_{0};
  std::atomic<uint64_t> lost_records_{0};
  Doorbell doorbell_;
  int anchor_fd_ = -1;
  std::vector<std::string> anchor_lines_;  // waiting for the anchor file (flusher thread only)
  bool anchor_line_torn_ = false;          // a failed append left a partial line behind
  std::atomic<uint32_t> failing_shards_{0};
  mutable std::mutex error_mutex_;  // guards last_error_ only; never taken by shards
  std::optional<std::string> last_error_;
};

}  // namespace gh::rec
