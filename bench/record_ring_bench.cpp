// Recording ring enqueue cost: rec::Ring::try_push of a typical statement event (ns/record),
// with a consumer thread draining as the flusher would, and single-threaded for the encode alone.
#include <benchmark/benchmark.h>

#include <atomic>
#include <string>
#include <thread>

#include "record/event.hpp"
#include "record/limits.hpp"
#include "record/ring.hpp"

namespace gh::rec {
namespace {

// The statement record a pgbench -S transaction produces (simple protocol): kind + text.
constexpr std::string_view kSelect = "SELECT abalance FROM pgbench_accounts WHERE aid = 4217;";

Event statement_event(const Field (&fields)[2], uint32_t sequence) {
  return Event{EventType::kStatement, 0x1234'5678'9abc'def0ull, sequence,
               1'700'000'000'000'000'000ull, std::span<const Field>(fields, 2)};
}

// Producer on the benchmark thread, a consumer thread draining continuously (peek + release,
// reading each entry's first byte only: the flusher's own cost is record_flusher_bench's
// business). kFull is retried, never dropped; the retries are reported as a counter, and when
// they are frequent the figure is the consumer's rate, not the producer's.
void BM_RingTryPushWithConsumer(benchmark::State& state) {
  Ring ring(size_t(state.range(0)));
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    uint64_t sum = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const size_t n =
          ring.drain([&](std::span<const std::byte> payload) { sum += uint8_t(payload[0]); });
      if (n == 0) std::this_thread::yield();
    }
    ring.drain([](std::span<const std::byte>) {});
    benchmark::DoNotOptimize(sum);
  });
  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, kSelect}};
  uint32_t sequence = 0;
  uint64_t full = 0;
  for (auto _ : state) {
    const Event event = statement_event(fields, sequence++);
    while (ring.try_push(event) == PushStatus::kFull) ++full;
  }
  stop.store(true);
  consumer.join();
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetBytesProcessed(
      int64_t(state.iterations() * record_body_bytes(statement_event(fields, 0))));
  state.counters["full_retries_per_record"] =
      benchmark::Counter(double(full) / double(std::max<int64_t>(1, int64_t(state.iterations()))));
}

// One thread: push a batch of 64, then drain it (the drain is included; it only walks the
// 64 length words). Measures encode + ring bookkeeping without the cross-core cache-line traffic
// of the two-thread case.
void BM_RingTryPushSameThread(benchmark::State& state) {
  constexpr int kBatch = 64;
  Ring ring(limits::ring_bytes_default);
  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, kSelect}};
  uint32_t sequence = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      const Event event = statement_event(fields, sequence++);
      benchmark::DoNotOptimize(ring.try_push(event));
    }
    ring.drain([](std::span<const std::byte>) {});
  }
  state.SetItemsProcessed(int64_t(state.iterations()) * kBatch);
}

// The record encoding alone (record_body_bytes + encode_record_body into a scratch buffer).
void BM_RecordEncodeStatement(benchmark::State& state) {
  const Field fields[2] = {{FieldTag::kStatementKind, "query"}, {FieldTag::kText, kSelect}};
  std::byte out[512];
  uint32_t sequence = 0;
  for (auto _ : state) {
    const Event event = statement_event(fields, sequence++);
    const size_t n = record_body_bytes(event);
    encode_record_body(event, std::span<std::byte>(out, n));
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

BENCHMARK(BM_RingTryPushWithConsumer)
    ->ArgName("ring_bytes")
    ->Arg(limits::ring_bytes_min)
    ->Arg(limits::ring_bytes_default)
    ->UseRealTime();
BENCHMARK(BM_RingTryPushSameThread);
BENCHMARK(BM_RecordEncodeStatement);

}  // namespace
}  // namespace gh::rec
