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

#include "core/assert.hpp"

namespace gh::rec {

namespace {
using Clock = std::chrono::steady_clock;
// A service() call writes at most this many batches before the next shard gets its turn.
constexpr int kBatchesPerService = 4;
// stop() retries failing shards this many times before it gives up and reports them.
constexpr int kStopAttempts = 3;
}  // namespace

struct Flusher::Shard {
  uint16_t index = 0;
  std::unique_ptr<Ring> ring;
  std::unique_ptr<ShardWriter> writer;
  uint64_t pending_cursor = 0;  // ring position to release once the staged batch is written
  bool rotate_pending = false;
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
    auto writer = ShardWriter::open(ShardWriterOptions{
        .trail_dir = o.dir,
        .node_id = o.node_id,
        .shard = i,
        .segment_bytes_max = o.segment_bytes_max,
        .io = o.io,
    });
    if (!writer) return fail("recorder: " + writer.error().message);
    shard->writer = std::move(*writer);
    flusher->shards_.push_back(std::move(shard));
  }
  return flusher;
}

Flusher::~Flusher() {
  if (state_ == State::kRunning) (void)stop();
  shards_.clear();  // syncs and closes the segments while the directory is still locked
  if (lock_fd_ >= 0) ::close(lock_fd_);
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
  {
    std::lock_guard lock(error_mutex_);
    last_error_ = error.message;
  }
  if (options_.on_error) options_.on_error(FlushError{shard.index, error.message});
}

void Flusher::on_success(Shard& shard) {
  if (shard.failing) failing_shards_.fetch_sub(1, std::memory_order_acq_rel);
  shard.failing = false;
}

// Moves up to kBatchesPerService batches from the shard's ring into its segment. Returns whether
// anything reached the file.
bool Flusher::service(Shard& shard, bool force) {
  if (shard.failing && !force && Clock::now() < shard.retry_at) return false;
  ShardWriter& writer = *shard.writer;
  bool progress = false;
  if (shard.failing && writer.dirty()) {
    // A failed sync is retried before more data goes after it.
    if (auto synced = writer.sync(); !synced) {
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
      progress = true;
      ++batch;
      if (options_.flush_interval_ms == 0) {
        if (auto synced = writer.sync(); !synced) {
          on_failure(shard, synced.error());
          return progress;
        }
      }
    }
    if (shard.rotate_pending) {
      if (auto rotated = writer.rotate(); !rotated) {
        on_failure(shard, rotated.error());
        return progress;
      }
      shard.rotate_pending = false;
    }
    bool needs_rotation = false;
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
      writer.stage(body);
      return true;
    });
    shard.pending_cursor = peeked.cursor;
    shard.rotate_pending = needs_rotation;
    if (!writer.has_staged()) {
      shard.ring->release(peeked.cursor);  // wrap padding only
      if (!needs_rotation) break;
    }
  }
  on_success(shard);
  return progress;
}

void Flusher::sync_all(bool force) {
  for (auto& shard : shards_) {
    if (shard->failing && !force) continue;  // service() retries its sync on schedule
    if (auto synced = shard->writer->sync(); !synced) on_failure(*shard, synced.error());
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
  while (!stop_requested_.load(std::memory_order_acquire)) {
    bool progress = false;
    for (auto& shard : shards_) progress |= service(*shard, false);
    const auto now = Clock::now();
    if (now - last_sync >= flush_interval) {
      sync_all(false);
      last_sync = now;
    }
    publish_counters();
    if (progress) {
      idle_interval = poll_interval;
    } else {
      std::this_thread::sleep_for(idle_interval);
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
  sync_all(true);
  std::string left;
  for (auto& shard : shards_) {
    const size_t bytes = shard->ring->used_bytes() + shard->writer->staged_bytes();
    if (bytes > 0) {
      left += fmt::format("{}shard {}: {} bytes not written", left.empty() ? "" : "; ",
                          shard->index, bytes);
    } else if (shard->writer->dirty()) {
      left += fmt::format("{}shard {}: not synced", left.empty() ? "" : "; ", shard->index);
    }
  }
  if (!left.empty()) {
    return fail(fmt::format("recorder stopped with records at risk ({}); last error: {}", left,
                            last_error().value_or("none")));
  }
  return {};
}

}  // namespace gh::rec
