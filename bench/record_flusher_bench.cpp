// Flusher throughput with hashing: records pushed into a shard ring, drained by rec::Flusher into
// hash-chained segment files in a temporary directory (MB/s of record bytes, fdatasync included).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "core/assert.hpp"
#include "record/event.hpp"
#include "record/flusher.hpp"
#include "record/keys.hpp"
#include "record/hash.hpp"

namespace gh::rec {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gh-bench-XXXXXX").string();
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
  Ring& ring = (*flusher)->ring(0);

  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, text}};
  Event event{EventType::kStatement, 42, 0, realtime_now_ns(), std::span<const Field>(fields, 2)};
  const size_t record_bytes = record_body_bytes(event);
  const size_t per_iteration = kIterationBytes / record_bytes + 1;
  uint64_t pushed = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < per_iteration; ++i) {
      event.sequence = uint32_t(pushed);
      while (ring.try_push(event) == PushStatus::kFull) std::this_thread::yield();
      ++pushed;
    }
    while ((*flusher)->counters().records < pushed) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  const FlusherCounters counters = (*flusher)->counters();
  GH_ASSERT((*flusher)->stop().has_value());
  state.SetBytesProcessed(int64_t(counters.bytes));
  state.SetItemsProcessed(int64_t(counters.records));
  state.counters["record_bytes"] = double(record_bytes);
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
BENCHMARK(BM_ChainHash)->ArgName("body_bytes")->Arg(128)->Arg(1024)->Arg(16384);

}  // namespace
}  // namespace gh::rec
