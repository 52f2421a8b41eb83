// The recorder's flusher: owns every shard's ring and one thread that drains them into segments.
// Shards only ever touch their Ring; all disk I/O (write, fdatasync, rotation) happens here.
#include "record/flusher.hpp"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "core/assert.hpp"

namespace gh::rec {

namespace {
using Clock = std::chrono::steady_clock;
// A service() call writes at most this many batches before the next shard gets its turn.
constexpr int kBatchesPerService = 4;
// stop() retries failing shards this many times before it gives up and reports them.
constexpr int kStopAttempts = 3;
// A ring holding this much is written at once rather than after the poll interval.
constexpr size_t kBacklogBytes = limits::write_batch_bytes_max / 4;
}  // namespace

struct Flusher::Shard {
  uint16_t index = 0;
  std::unique_ptr<Ring> ring;
  std::unique_ptr<ShardWriter> writer;
  uint64_t pending_cursor = 0;  // ring position to release once the staged batch is written
  uint64_t pending_entries = 0;  // ring entries in the staged batch
  uint64_t written_entries = 0;  // ring entries written to segment files (Ring::durability)
  uint64_t broken_seen = 0;      // the writer's broken_segments() already accounted for
  bool rotate_pending = false;  // seal and close the segment before the next record
  Clock::time_point next_checkpoint{};
  bool failing = false;
  Clock::time_point retry_at{};
};

Flusher::Flusher(FlusherOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Flusher>> Flusher::create(FlusherOptions options) {
  if (options.dir.empty()) return fail("recorder dir must not be empty");
  if (options.shard_count == 0 || options.shard_count > limits::shard_count_max) {
    return fail(fmt::format("recorder shard_count {} is out of [1, {}]", options.shard_count,
                            limits::shard_count_max));
  }
  if (options.flush_interval_ms > limits::flush_interval_ms_max) {
    return fail(fmt::format("recorder flush_interval_ms {} exceeds {}", options.flush_interval_ms,
                            limits::flush_interval_ms_max));
  }
  if (options.poll_interval_us == 0 || options.poll_interval_us > limits::poll_interval_us_max) {
    return fail(fmt::format("recorder poll_interval_us {} is out of [1, {}]",
                            options.poll_interval_us, limits::poll_interval_us_max));
  }
  if (options.retry_interval_ms == 0 || options.retry_interval_ms > limits::retry_interval_ms_max) {
    return fail(fmt::format("recorder retry_interval_ms {} is out of [1, {}]",
                            options.retry_interval_ms, limits::retry_interval_ms_max));
  }
  if (!options.key) return fail("recorder: a node key is required to sign the trail");
  if (options.checkpoint_interval_ms < limits::checkpoint_interval_ms_min ||
      options.checkpoint_interval_ms > limits::checkpoint_interval_ms_max) {
    return fail(fmt::format("recorder checkpoint_interval_ms {} is out of [{}, {}]",
                            options.checkpoint_interval_ms, limits::checkpoint_interval_ms_min,
                            limits::checkpoint_interval_ms_max));
  }
  if (options.segment_age_ms == 0 || options.segment_age_ms > limits::segment_age_ms_max) {
    return fail(fmt::format("recorder segment_age_ms {} is out of [1, {}]", options.segment_age_ms,
                            limits::segment_age_ms_max));
  }
  std::unique_ptr<Flusher> flusher(new Flusher(std::move(options)));
  const FlusherOptions& o = flusher->options_;
  if (auto made = make_directories(o.dir); !made) return fail("recorder: " + made.error().message);
  // Two writers on one directory would fork every shard's chain.
  const std::string lock_path = o.dir + "/writer.lock";
  flusher->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (flusher->lock_fd_ < 0) {
    return fail(fmt::format("recorder: {}: cannot open: {}", lock_path, std::strerror(errno)));
  }
  if (::flock(flusher->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return fail(fmt::format("recorder: {}: the trail is in use by another recorder ({})", lock_path,
                            std::strerror(errno)));
  }
  for (uint16_t i = 0; i < o.shard_count; ++i) {
    auto shard = std::make_unique<Shard>();
    shard->index = i;
    auto ring = Ring::create(o.ring_bytes);
    if (!ring) return fail("recorder " + ring.error().message);
    shard->ring = std::move(*ring);
    shard->ring->set_doorbell(&flusher->doorbell_);
    auto writer = ShardWriter::open(ShardWriterOptions{
        .trail_dir = o.dir,
        .node_id = o.node_id,
        .shard = i,
        .segment_bytes_max = o.segment_bytes_max,
        .key = o.key,
        .io = o.io,
        .on_written = o.on_written,
    });
    if (!writer) return fail("recorder: " + writer.error().message);
    shard->writer = std::move(*writer);
    flusher->shards_.push_back(std::move(shard));
  }
  if (!o.anchor_file.empty()) {
    flusher->anchor_fd_ =
        ::open(o.anchor_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (flusher->anchor_fd_ < 0) {
      return fail(fmt::format("recorder: anchor file {}: cannot open: {}", o.anchor_file,
                              std::strerror(errno)));
    }
  }
  return flusher;
}

Flusher::~Flusher() {
  if (state_ == State::kRunning) (void)stop();
  shards_.clear();  // syncs and closes the segments while the directory is still locked
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (anchor_fd_ >= 0) ::close(anchor_fd_);
}

Ring& Flusher::ring(uint16_t shard) {
  GH_ASSERT(shard < shards_.size());
  return *shards_[shard]->ring;
}

const ResumeInfo& Flusher::resume_info(uint16_t shard) const {
  GH_ASSERT(shard < shards_.size());
  return shards_[shard]->writer->resume_info();
}

Result<void> Flusher::start() {
  if (state_ != State::kCreated) return fail("recorder flusher can be started once only");
  state_ = State::kRunning;
  thread_ = std::thread([this] { run(); });
  return {};
}

Result<void> Flusher::stop() {
  if (state_ != State::kRunning) return fail("recorder flusher is not running");
  stop_requested_.store(true, std::memory_order_release);
  thread_.join();
  state_ = State::kStopped;
  return stop_result_;
}

FlusherCounters Flusher::counters() const {
  return FlusherCounters{
      .records = records_.load(std::memory_order_relaxed),
      .bytes = bytes_.load(std::memory_order_relaxed),
      .fsyncs = fsyncs_.load(std::memory_order_relaxed),
      .write_errors = write_errors_.load(std::memory_order_relaxed),
      .checkpoints = checkpoints_.load(std::memory_order_relaxed),
      .seals = seals_.load(std::memory_order_relaxed),
      .anchors = anchors_.load(std::memory_order_relaxed),
      .broken_segments = broken_segments_.load(std::memory_order_relaxed),
      .lost_records = lost_records_.load(std::memory_order_relaxed),
  };
}

std::optional<std::string> Flusher::last_error() const {
  std::lock_guard lock(error_mutex_);
  return last_error_;
}

void Flusher::publish_counters() {
  uint64_t records = 0, bytes = 0, fsyncs = 0;
  for (const auto& shard : shards_) {
    records += shard->writer->records_written();
    bytes += shard->writer->bytes_written();
    fsyncs += shard->writer->fsyncs();
  }
  records_.store(records, std::memory_order_relaxed);
  bytes_.store(bytes, std::memory_order_relaxed);
  fsyncs_.store(fsyncs, std::memory_order_relaxed);
}

void Flusher::on_failure(Shard& shard, const Error& error) {
  if (!shard.failing) failing_shards_.fetch_add(1, std::memory_order_acq_rel);
  shard.failing = true;
  shard.retry_at = Clock::now() + std::chrono::milliseconds(options_.retry_interval_ms);
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  const int err = shard.writer->last_errno();
  shard.ring->publish_write_error(err != 0 ? err : EIO);
  {
    std::lock_guard lock(error_mutex_);
    last_error_ = error.message;
  }
  if (options_.on_error) options_.on_error(FlushError{shard.index, error.message});
}

void Flusher::on_success(Shard& shard) {
  if (shard.failing) failing_shards_.fetch_sub(1, std::memory_order_acq_rel);
  shard.failing = false;
  shard.ring->publish_write_error(0);
}

// After any fdatasync of the shard's segment (writer.sync(), close_segment()): publishes how far
// the shard's ring entries are durable, or which ones are lost when the sync failed.
void Flusher::note_sync(Shard& shard, bool synced) {
  ShardWriter& writer = *shard.writer;
  if (synced && !writer.dirty()) shard.ring->publish_durable(shard.written_entries);
  if (writer.broken_segments() != shard.broken_seen) {
    shard.broken_seen = writer.broken_segments();
    // Everything written since the last good fdatasync went down with the segment.
    const uint64_t durable = shard.ring->durable();
    lost_records_.fetch_add(shard.written_entries - durable, std::memory_order_relaxed);
    broken_segments_.fetch_add(1, std::memory_order_relaxed);
    shard.ring->publish_lost(durable, shard.written_entries);
    // The writer dropped its staged batch: the next peek stages those entries again.
    shard.pending_entries = 0;
  }
}

Result<void> Flusher::sync_shard(Shard& shard) {
  auto synced = shard.writer->sync();
  note_sync(shard, synced.has_value());
  return synced;
}

// Moves up to kBatchesPerService batches from the shard's ring into its segment. Returns whether
// anything reached the file.
bool Flusher::service(Shard& shard, bool force) {
  if (shard.failing && !force && Clock::now() < shard.retry_at) return false;
  ShardWriter& writer = *shard.writer;
  bool progress = false;
  if (writer.segment_started() && !shard.rotate_pending &&
      realtime_now_ns() - writer.segment_created_ns() >= options_.segment_age_ms * 1'000'000ull) {
    shard.rotate_pending = true;  // sealed once what is staged is written
  }
  if (shard.failing && writer.dirty()) {
    // A failed sync is retried before more data goes after it.
    if (auto synced = sync_shard(shard); !synced) {
      on_failure(shard, synced.error());
      return false;
    }
  }
  for (int batch = 0; batch < kBatchesPerService;) {
    if (writer.has_staged()) {
      if (auto written = writer.write_staged(); !written) {
        on_failure(shard, written.error());
        return progress;
      }
      shard.ring->release(shard.pending_cursor);
      shard.written_entries += std::exchange(shard.pending_entries, 0);
      progress = true;
      ++batch;
      if (options_.flush_interval_ms == 0) {
        if (auto synced = sync_shard(shard); !synced) {
          on_failure(shard, synced.error());
          return progress;
        }
      }
    }
    if (shard.rotate_pending) {
      if (auto rotated = seal_and_close(shard); !rotated) {
        on_failure(shard, rotated.error());
        return progress;
      }
      shard.rotate_pending = false;
    }
    bool needs_rotation = false;
    std::optional<Error> stage_error;
    const Ring::Peeked peeked = shard.ring->peek([&](std::span<const std::byte> body) {
      const size_t record_bytes = body.size() + limits::chain_hash_bytes;
      if (!writer.fits(record_bytes)) {
        needs_rotation = true;
        return false;
      }
      if (writer.has_staged() &&
          writer.staged_bytes() + record_bytes > limits::write_batch_bytes_max) {
        return false;
      }
      if (auto staged = writer.stage(body); !staged) {
        stage_error = staged.error();  // signing the recovery record failed: retry later
        return false;
      }
      return true;
    });
    if (stage_error && !writer.has_staged()) {
      on_failure(shard, *stage_error);
      return progress;
    }
    shard.pending_cursor = peeked.cursor;
    shard.pending_entries = peeked.entries;
    shard.rotate_pending = needs_rotation;
    if (!writer.has_staged()) {
      shard.ring->release(peeked.cursor);  // wrap padding only
      if (!needs_rotation) break;
    }
  }
  on_success(shard);
  return progress;
}

// Seals the current segment, writes and syncs the seal, and closes the file. Safe to call again
// after a failure: each step resumes where the last attempt stopped.
Result<void> Flusher::seal_and_close(Shard& shard) {
  ShardWriter& writer = *shard.writer;
  if (!writer.segment_started()) return {};
  if (!writer.sealed()) {
    if (writer.has_staged()) {
      if (auto written = writer.write_staged(); !written) return written;
      shard.ring->release(shard.pending_cursor);
      shard.written_entries += std::exchange(shard.pending_entries, 0);
    }
    if (auto sealed = writer.stage_seal(realtime_now_ns()); !sealed) return sealed;
    seals_.fetch_add(1, std::memory_order_relaxed);
  }
  if (auto written = writer.write_staged(); !written) return written;
  auto closed = writer.close_segment();
  note_sync(shard, closed.has_value());
  return closed;
}

// A signed checkpoint of everything written so far, written and synced at once so that its
// anchor line goes out now. Skipped (tried again on the next pass) while the shard is failing.
void Flusher::checkpoint(Shard& shard) {
  ShardWriter& writer = *shard.writer;
  if (shard.failing || writer.has_staged() || writer.sealed()) return;
  const auto now = Clock::now();
  if (now < shard.next_checkpoint) return;
  shard.next_checkpoint = now + std::chrono::milliseconds(options_.checkpoint_interval_ms);
  if (writer.segment_started() &&
      !writer.fits(control_record_bytes(EventType::kCheckpoint))) {
    if (auto rotated = seal_and_close(shard); !rotated) {
      on_failure(shard, rotated.error());
      return;
    }
  }
  if (auto staged = writer.stage_checkpoint(realtime_now_ns()); !staged) {
    on_failure(shard, staged.error());
    return;
  }
  checkpoints_.fetch_add(1, std::memory_order_relaxed);
  if (auto written = writer.write_staged(); !written) {
    on_failure(shard, written.error());
    return;
  }
  if (auto synced = sync_shard(shard); !synced) on_failure(shard, synced.error());
}

// Appends the anchor lines of every control record synced since the last call, then fdatasyncs
// the anchor file. Lines that cannot be written wait (bounded) for the next call.
void Flusher::write_anchors() {
  for (auto& shard : shards_) {
    for (const AnchorRecord& anchor : shard->writer->take_anchors()) {
      if (anchor_fd_ < 0) continue;
      if (anchor_lines_.size() >= limits::pending_anchors_max) {
        anchor_lines_.erase(anchor_lines_.begin());  // the newest anchors matter most
      }
      anchor_lines_.push_back(format_anchor_line(anchor, options_.node_id) + "\n");
    }
  }
  if (anchor_lines_.empty()) return;
  std::string text = anchor_line_torn_ ? "\n" : "";
  for (const std::string& line : anchor_lines_) text += line;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(anchor_fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool synced = done == text.size() && ::fdatasync(anchor_fd_) == 0;
  if (!synced) {
    const std::string message = fmt::format("anchor file {}: {}", options_.anchor_file,
                                            std::strerror(errno));
    {
      std::lock_guard lock(error_mutex_);
      last_error_ = message;
    }
    write_errors_.fetch_add(1, std::memory_order_relaxed);
    if (options_.on_error) options_.on_error(FlushError{0, message});
    // A partial append leaves a torn line; the retry starts on a new line so that readers can
    // skip the torn one.
    if (done > 0 && done < text.size()) anchor_line_torn_ = true;
    return;
  }
  anchor_line_torn_ = false;
  anchors_.fetch_add(anchor_lines_.size(), std::memory_order_relaxed);
  anchor_lines_.clear();
}

void Flusher::sync_all(bool force) {
  for (auto& shard : shards_) {
    if (shard->failing && !force) continue;  // service() retries its sync on schedule
    // A staged batch (service() stops after a few) is written first: the sync then covers it, and
    // a failed sync never leaves a batch staged against the segment it abandons.
    if (shard->writer->has_staged()) {
      if (auto written = shard->writer->write_staged(); !written) {
        on_failure(*shard, written.error());
        continue;
      }
      shard->ring->release(shard->pending_cursor);
      shard->written_entries += std::exchange(shard->pending_entries, 0);
    }
    if (auto synced = sync_shard(*shard); !synced) on_failure(*shard, synced.error());
  }
}

void Flusher::run() {
  const auto flush_interval = std::chrono::milliseconds(options_.flush_interval_ms);
  const auto poll_interval = std::chrono::microseconds(options_.poll_interval_us);
  // While idle, polls back off to limits::idle_poll_interval_us_max, so that a quiet gateway does
  // not wake thousands of times a second; the first record found resets the interval.
  const auto idle_poll_interval_max =
      std::max(poll_interval, std::chrono::microseconds(limits::idle_poll_interval_us_max));
  auto idle_interval = poll_interval;
  auto last_sync = Clock::now();
  for (auto& shard : shards_) {
    shard->next_checkpoint = last_sync + std::chrono::milliseconds(options_.checkpoint_interval_ms);
  }
  while (!stop_requested_.load(std::memory_order_acquire)) {
    bool progress = false;
    for (auto& shard : shards_) progress |= service(*shard, false);
    for (auto& shard : shards_) checkpoint(*shard);
    const auto now = Clock::now();
    // Strict: one fdatasync per written shard and pass, covering every connection's records.
    if (options_.strict || now - last_sync >= flush_interval) {
      sync_all(false);
      last_sync = now;
    }
    write_anchors();
    publish_counters();
    // A held statement rings the doorbell after its record is in the ring: the check below
    // sees that record, or the ring() sees this sleep and ends it.
    doorbell_.prepare_sleep();
    bool work = false;
    bool backlog = false;
    for (auto& shard : shards_) {
      if (shard->failing) continue;
      const size_t used = shard->ring->used_bytes();
      work |= used > 0;
      backlog |= used >= kBacklogBytes;
    }
    if (backlog || ((progress || work) && options_.strict)) {
      // Strict: every record may have a statement waiting on it, so write what came at once.
      doorbell_.cancel_sleep();
      idle_interval = poll_interval;
    } else if (progress || work) {
      // Under load, one poll interval between passes: each write(2) then carries the records of
      // many transactions instead of a few, and the thread wakes far less often. Records reach
      // their segment within the interval, as when idle, far inside flush_interval_ms.
      doorbell_.wait(poll_interval);
      idle_interval = poll_interval;
    } else {
      doorbell_.wait(idle_interval);
      idle_interval = std::min(idle_interval * 2, idle_poll_interval_max);
    }
  }
  stop_result_ = final_drain();
  publish_counters();
}

Result<void> Flusher::final_drain() {
  int failed_rounds = 0;
  for (;;) {
    bool progress = false;
    for (auto& shard : shards_) progress |= service(*shard, true);
    bool done = true;
    for (auto& shard : shards_) {
      if (!shard->ring->empty() || shard->writer->has_staged()) done = false;
    }
    if (done) break;
    if (!progress && ++failed_rounds >= kStopAttempts) break;
    if (!progress) {
      std::this_thread::sleep_for(std::min(std::chrono::milliseconds(options_.retry_interval_ms),
                                           std::chrono::milliseconds(100)));
    }
  }
  // A clean stop seals every open segment, so that the next start needs no recovery record.
  for (auto& shard : shards_) {
    if (!shard->ring->empty()) continue;  // reported below as records not written
    for (int attempt = 0; attempt < kStopAttempts; ++attempt) {
      auto sealed = shard->writer->begin_pending_recovery();
      if (sealed) sealed = seal_and_close(*shard);
      if (sealed) break;
      on_failure(*shard, sealed.error());
    }
  }
  sync_all(true);
  write_anchors();
  std::string left;
  for (auto& shard : shards_) {
    const size_t bytes = shard->ring->used_bytes() + shard->writer->staged_bytes();
    if (bytes > 0) {
      left += fmt::format("{}shard {}: {} bytes not written", left.empty() ? "" : "; ",
                          shard->index, bytes);
    } else if (shard->writer->dirty()) {
      left += fmt::format("{}shard {}: not synced", left.empty() ? "" : "; ", shard->index);
    } else if (shard->writer->segment_started()) {
      left += fmt::format("{}shard {}: segment not sealed", left.empty() ? "" : "; ",
                          shard->index);
    }
  }
  if (!anchor_lines_.empty()) {
    left += fmt::format("{}{} anchor lines not written", left.empty() ? "" : "; ",
                        anchor_lines_.size());
  }
  if (!left.empty()) {
    return fail(fmt::format("recorder stopped with records at risk ({}); last error: {}", left,
                            last_error().value_or("none")));
  }
  return {};
}

}  // namespace gh::rec
