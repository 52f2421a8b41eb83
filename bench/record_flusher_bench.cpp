// Flusher throughput with hashing: records pushed into a shard ring, drained by rec::Flusher into
// hash-chained segment files in a temporary directory (MB/s of record bytes, fdatasync included);
// and verify speed over such a trail.
#include <benchmark/benchmark.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "core/assert.hpp"
#include "record/event.hpp"
#include "record/flusher.hpp"
#include "record/keys.hpp"
#include "record/hash.hpp"
#include "record/reader.hpp"

namespace gh::rec {
namespace {

class TempDir {
 public:
  explicit TempDir(std::filesystem::path base = std::filesystem::temp_directory_path()) {
    std::string pattern = (base / "gh-bench-XXXXXX").string();
    GH_ASSERT(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Pushes `count` copies of `event` into shard 0's ring (retrying on back-pressure) and waits
// until the flusher has written them all.
void push_and_wait(Flusher& flusher, Event& event, size_t count, uint64_t& pushed) {
  Ring& ring = flusher.ring(0);
  for (size_t i = 0; i < count; ++i) {
    event.sequence = uint32_t(pushed);
    while (ring.try_push(event) == PushStatus::kFull) std::this_thread::yield();
    ++pushed;
  }
  while (flusher.counters().records < pushed)
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// One iteration pushes kIterationBytes of statement records (text of range(0) bytes) into shard
// 0's ring, retrying on back-pressure, then waits until the flusher has written all of them.
// The ring (4 MiB) is smaller than an iteration, so the flusher is busy throughout, not polled.
void BM_FlusherWrite(benchmark::State& state) {
  constexpr size_t kIterationBytes = 32u << 20;
  const std::string text(size_t(state.range(0)), 's');
  TempDir dir;
  FlusherOptions options;
  options.dir = dir.path() + "/trail";
  options.node_id = "bench";
  options.shard_count = 1;
  options.flush_interval_ms = uint32_t(state.range(1));
  options.key = *NodeKey::generate();
  auto flusher = Flusher::create(options);
  GH_ASSERT(flusher.has_value());
  GH_ASSERT((*flusher)->start().has_value());

  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, text}};
  Event event{EventType::kStatement, 42, 0, realtime_now_ns(), std::span<const Field>(fields, 2)};
  const size_t record_bytes = record_body_bytes(event);
  const size_t per_iteration = kIterationBytes / record_bytes + 1;
  uint64_t pushed = 0;
  for (auto _ : state) push_and_wait(**flusher, event, per_iteration, pushed);
  const FlusherCounters counters = (*flusher)->counters();
  GH_ASSERT((*flusher)->stop().has_value());
  state.SetBytesProcessed(int64_t(counters.bytes));
  state.SetItemsProcessed(int64_t(counters.records));
  state.counters["record_bytes"] = double(record_bytes);
  state.counters["fsyncs"] = double(counters.fsyncs);
}

// `gatehouse verify` speed: a sealed trail of 64 MiB of 1 KiB statement records in 16 MiB
// segments, verified whole (chain hashes, Merkle roots, Ed25519 signatures against the keyring)
// per iteration. MB/s of segment bytes on disk; the page cache holds them (a second run reads
// no disk), so this is the CPU bound of verify.
void BM_VerifyTrail(benchmark::State& state) {
  constexpr size_t kTrailBytes = 64u << 20;
  const std::string text(1024, 's');
  TempDir dir;
  FlusherOptions options;
  options.dir = dir.path() + "/trail";
  options.node_id = "bench";
  options.shard_count = 1;
  options.segment_bytes_max = 16u << 20;
  options.key = *NodeKey::generate();
  Keyring keyring;
  GH_ASSERT(keyring.add({options.key->id(), options.key->public_key(), "bench", ""}).has_value());
  {
    auto flusher = Flusher::create(options);
    GH_ASSERT(flusher.has_value());
    GH_ASSERT((*flusher)->start().has_value());
    const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, text}};
    Event event{EventType::kStatement, 42, 0, realtime_now_ns(), std::span<const Field>(fields, 2)};
    uint64_t pushed = 0;
    push_and_wait(**flusher, event, kTrailBytes / record_body_bytes(event) + 1, pushed);
    GH_ASSERT((*flusher)->stop().has_value());
  }
  uint64_t trail_bytes = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(options.dir))
    if (entry.is_regular_file()) trail_bytes += entry.file_size();
  VerifyOptions verify;
  verify.keyring = &keyring;
  uint64_t records = 0;
  for (auto _ : state) {
    auto report = verify_trail(options.dir, verify);
    GH_ASSERT(report.has_value() && report->ok() && report->signatures_checked);
    records += report->records;
  }
  state.SetBytesProcessed(int64_t(state.iterations() * trail_bytes));
  state.SetItemsProcessed(int64_t(records));
  state.counters["trail_bytes"] = double(trail_bytes);
}

// Strict durability, one held statement at a time: push its record, ask for durability and wait
// until the flusher reports it fdatasynced, as a shard does. Arg 0: the shard learns it from the
// ring's durable wake (poll on the eventfd its io_uring watches); arg 1: from a 1 ms tick, the
// shard's paused tick before the wake existed. Time per statement, fdatasync included; the trail
// is on tmpfs (/dev/shm) when there is one, where fdatasync costs next to nothing, so that the
// path from the flusher's report to the waiting shard is what is measured, not the disk.
void BM_StrictDurableRoundTrip(benchmark::State& state) {
  const bool tick = state.range(0) == 1;
  TempDir dir(std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                        : std::filesystem::temp_directory_path());
  FlusherOptions options;
  options.dir = dir.path() + "/trail";
  options.node_id = "bench";
  options.shard_count = 1;
  options.strict = true;
  options.key = *NodeKey::generate();
  auto flusher = Flusher::create(options);
  GH_ASSERT(flusher.has_value());
  GH_ASSERT((*flusher)->start().has_value());
  Ring& ring = (*flusher)->ring(0);
  const std::string text(56, 's');
  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, text}};
  Event event{EventType::kStatement, 42, 0, realtime_now_ns(), std::span<const Field>(fields, 2)};
  for (auto _ : state) {
    while (ring.try_push(event) == PushStatus::kFull) std::this_thread::yield();
    ++event.sequence;
    const uint64_t ticket = ring.pushed();
    ring.request_durable();
    for (;;) {
      if (!tick) ring.arm_durable_wake();
      if (ring.durability(ticket) == Ring::Durability::kDurable) break;
      if (tick) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      } else {
        pollfd p{ring.durable_wake_fd(), POLLIN, 0};
        (void)::poll(&p, 1, 100);
        uint64_t count = 0;
        (void)!::read(ring.durable_wake_fd(), &count, sizeof count);
      }
    }
  }
  const FlusherCounters counters = (*flusher)->counters();
  GH_ASSERT((*flusher)->stop().has_value());
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["fsyncs"] = double(counters.fsyncs);
}

// The chain hash alone (SHA-256 over previous hash + body): the bound on the flusher per core.
void BM_ChainHash(benchmark::State& state) {
  const std::string body(size_t(state.range(0)), 'b');
  ChainHasher hasher;
  ChainHash h{};
  for (auto _ : state) {
    h = hasher.next(h, std::span(reinterpret_cast<const std::byte*>(body.data()), body.size()));
    benchmark::DoNotOptimize(h);
  }
  state.SetBytesProcessed(int64_t(state.iterations() * int64_t(body.size())));
  state.SetItemsProcessed(int64_t(state.iterations()));
}

// Args: statement text bytes (a pgbench -S statement is ~55), flush_interval_ms (100 = default).
BENCHMARK(BM_FlusherWrite)
    ->ArgNames({"text_bytes", "flush_ms"})
    ->Args({56, 100})
    ->Args({1024, 100})
    ->Args({16384, 100})
    ->Args({1024, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond)
    ->MinTime(1.0);
BENCHMARK(BM_StrictDurableRoundTrip)
    ->ArgName("tick")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(1.0);
BENCHMARK(BM_ChainHash)->ArgName("body_bytes")->Arg(128)->Arg(1024)->Arg(16384);
BENCHMARK(BM_VerifyTrail)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(1.0);

}  // namespace
}  // namespace gh::rec
