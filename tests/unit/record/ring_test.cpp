// The per-shard SPSC ring: wrap-around, back-pressure without loss, size refusal, two threads,
// the durable wake.
// In-memory only; the stress test uses exactly one producer and one consumer thread.
#include "record/ring.hpp"
#include "record/session_recorder.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <deque>
#include <random>
#include <thread>

#include "record_test_support.hpp"

namespace gh::rec {
namespace {

// Payload bytes derived from the entry number, so a misplaced or torn entry is visible.
void fill(std::span<std::byte> out, uint64_t n) {
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<std::byte>((n * 131 + i * 7) & 0xFF);
}
bool matches(std::span<const std::byte> in, uint64_t n) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != static_cast<std::byte>((n * 131 + i * 7) & 0xFF)) return false;
  }
  return true;
}

TEST(Ring, CreateChecksCapacity) {
  EXPECT_FALSE(Ring::create(limits::ring_bytes_min + 8).has_value());  // not a power of two
  EXPECT_FALSE(Ring::create(limits::ring_bytes_min / 2).has_value());  // too small
  EXPECT_FALSE(Ring::create(limits::ring_bytes_max * 2).has_value());  // too large
  auto ring = Ring::create(limits::ring_bytes_min);
  ASSERT_TRUE(ring.has_value());
  EXPECT_EQ((*ring)->free_bytes(), limits::ring_bytes_min);
  EXPECT_TRUE((*ring)->empty());
}

TEST(Ring, RandomSizesAcrossManyWrapArounds) {
  Ring ring(limits::ring_bytes_min);
  std::mt19937_64 rng(12345);
  std::deque<std::pair<uint64_t, size_t>> expected;  // (entry number, payload size)
  uint64_t pushed = 0, drained = 0, bytes_pushed = 0;
  const size_t size_max = ring.payload_bytes_max();
  while (pushed < 60'000) {
    // Mostly small entries, sometimes up to the largest allowed one.
    const size_t size = rng() % 8 == 0 ? rng() % (size_max + 1) : rng() % 300;
    const PushStatus status = ring.try_push_bytes(size, [&](std::span<std::byte> out) {
      ASSERT_EQ(out.size(), size);
      fill(out, pushed);
    });
    ASSERT_NE(status, PushStatus::kTooLarge);
    if (status == PushStatus::kPushed) {
      expected.emplace_back(pushed++, size);
      bytes_pushed += size;
      if (rng() % 4 != 0) continue;
    }
    // Drain a random number of entries (possibly all), as the flusher does with a batch limit.
    const size_t take = rng() % (expected.size() + 1);
    size_t seen = 0;
    const Ring::Peeked peeked = ring.peek([&](std::span<const std::byte> payload) {
      if (seen == take) return false;
      EXPECT_EQ(payload.size(), expected[seen].second);
      EXPECT_TRUE(matches(payload, expected[seen].first)) << "entry " << expected[seen].first;
      ++seen;
      return true;
    });
    ASSERT_EQ(peeked.entries, take);
    ring.release(peeked.cursor);
    for (size_t i = 0; i < take; ++i) expected.pop_front();
    drained += take;
  }
  drained += ring.drain([&](std::span<const std::byte> payload) {
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(payload.size(), expected.front().second);
    EXPECT_TRUE(matches(payload, expected.front().first));
    expected.pop_front();
  });
  EXPECT_TRUE(expected.empty());
  EXPECT_EQ(drained, pushed);
  EXPECT_TRUE(ring.empty());
  EXPECT_GT(bytes_pushed, 50 * ring.capacity()) << "the test must wrap many times";
}

TEST(Ring, FullRingRefusesAndLosesNothing) {
  Ring ring(limits::ring_bytes_min);
  uint32_t pushed = 0;
  for (;;) {
    testing::EventView view(testing::statement(7, pushed, 100 + pushed % 50));
    const PushStatus status = ring.try_push(view.event);
    if (status == PushStatus::kFull) break;
    ASSERT_EQ(status, PushStatus::kPushed);
    ++pushed;
  }
  ASSERT_GT(pushed, 100u);
  EXPECT_LT(ring.free_bytes(), 200u);
  // Refusing again and again changes nothing.
  testing::EventView extra(testing::statement(7, pushed, 100));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ring.try_push(extra.event), PushStatus::kFull);

  uint32_t next = 0;
  ring.drain([&](std::span<const std::byte> body) {
    auto view = decode_record_body(body);
    ASSERT_TRUE(view.has_value()) << view.error().message;
    EXPECT_EQ(to_stored(*view), testing::statement(7, next, 100 + next % 50));
    ++next;
  });
  EXPECT_EQ(next, pushed);
  EXPECT_EQ(ring.try_push(extra.event), PushStatus::kPushed);
}

TEST(Ring, PeekWithoutReleaseKeepsEntries) {
  Ring ring(limits::ring_bytes_min);
  for (uint64_t n = 0; n < 3; ++n) {
    ASSERT_EQ(ring.try_push_bytes(10, [&](std::span<std::byte> out) { fill(out, n); }),
              PushStatus::kPushed);
  }
  const size_t used = ring.used_bytes();
  EXPECT_EQ(ring.peek([](auto) { return true; }).entries, 3u);
  EXPECT_EQ(ring.used_bytes(), used);
  EXPECT_EQ(ring.peek([](auto) { return true; }).entries, 3u);  // seen again
  EXPECT_EQ(ring.drain([](auto) {}), 3u);
  EXPECT_TRUE(ring.empty());
}

TEST(Ring, EntriesAboveHalfTheCapacityAreTooLarge) {
  Ring ring(limits::ring_bytes_min);
  const size_t max = ring.payload_bytes_max();
  EXPECT_EQ(max, ring.capacity() / 2 - Ring::kEntryHeaderBytes);
  EXPECT_EQ(ring.try_push_bytes(max + 1, [](auto) { FAIL(); }), PushStatus::kTooLarge);
  // The largest allowed entry fits an empty ring whatever the write position: push a small
  // entry so that the position is not 0, drain it, then push the largest twice in turn.
  ASSERT_EQ(ring.try_push_bytes(1000, [](auto) {}), PushStatus::kPushed);
  ring.drain([](auto) {});
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(ring.try_push_bytes(max, [](auto) {}), PushStatus::kPushed) << i;
    ring.drain([&](std::span<const std::byte> p) { EXPECT_EQ(p.size(), max); });
  }

  // A statement too large for the ring is refused distinctly; RecordText makes it fit.
  const std::string sql = "SELECT '" + std::string(ring.capacity(), 'x') + "'";
  const Field big{FieldTag::kText, sql};
  EXPECT_EQ(ring.try_push(Event{EventType::kStatement, 1, 0, 0, {&big, 1}}), PushStatus::kTooLarge);
  RecordText text(sql);
  EXPECT_EQ(ring.try_push(Event{EventType::kStatement, 1, 0, 0, text.fields()}),
            PushStatus::kPushed);
}

TEST(Ring, TwoThreadsKeepOrderAndContent) {
  Ring ring(limits::ring_bytes_min);
  constexpr uint32_t kEvents = 200'000;
  std::atomic<bool> producer_done{false};
  std::thread producer([&] {
    std::mt19937 rng(99);
    for (uint32_t n = 0; n < kEvents; ++n) {
      testing::EventView view(testing::statement(n % 5, n, 1 + rng() % 2000));
      while (ring.try_push(view.event) != PushStatus::kPushed) std::this_thread::yield();
    }
    producer_done.store(true, std::memory_order_release);
  });
  uint32_t next = 0;
  bool ok = true;
  std::mt19937 rng(99);
  while (next < kEvents) {
    const size_t got = ring.drain([&](std::span<const std::byte> body) {
      auto view = decode_record_body(body);
      if (!view || view->sequence != next || view->session_id != next % 5) {
        ok = false;
      } else {
        const StoredEvent expected = testing::statement(next % 5, next, 1 + rng() % 2000);
        if (to_stored(*view) != expected) ok = false;
      }
      ++next;
    });
    if (got == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(ok) << "first bad entry " << next - 1;
  EXPECT_EQ(next, kEvents);
  EXPECT_TRUE(producer_done.load());
  EXPECT_TRUE(ring.empty());
}

// A session's records keep their order and numbers across a full ring, and an oversized value is
// cut so that its event still fits.
// The shard's io_uring polls durable_wake_fd(): once a held statement armed the wake, any report
// of the flusher (durable, lost, a write error and its end) makes the fd readable, and only then.
TEST(Ring, DurableWakeIsRungByTheFlushersReportsOnlyWhenArmed) {
  Ring ring(limits::ring_bytes_min);
  const auto readable = [&] {
    pollfd p{ring.durable_wake_fd(), POLLIN, 0};
    const bool ready = ::poll(&p, 1, 0) == 1;
    uint64_t count = 0;
    if (ready) {
      EXPECT_EQ(::read(ring.durable_wake_fd(), &count, sizeof count), 8);
    }
    return ready;
  };
  ring.publish_durable(1);
  EXPECT_FALSE(readable()) << "nobody waits: no write";
  ring.arm_durable_wake();
  ring.publish_durable(2);
  EXPECT_TRUE(readable());
  ring.publish_durable(3);
  EXPECT_FALSE(readable()) << "rung once per arming";
  ring.arm_durable_wake();
  ring.publish_lost(3, 4);
  EXPECT_TRUE(readable());
  ring.arm_durable_wake();
  ring.publish_write_error(ENOSPC);
  EXPECT_TRUE(readable());
  ring.arm_durable_wake();
  ring.publish_write_error(ENOSPC);
  EXPECT_FALSE(readable()) << "the same error again is no news";
  ring.publish_write_error(0);
  EXPECT_TRUE(readable()) << "writing works again";
}

// More failed fdatasyncs than the ring keeps in detail: an entry of a loss no longer kept must
// never read as durable (its statement would be forwarded unrecorded); later entries still can.
TEST(Ring, EntriesOfLossesBeyondTheKeptOnesNeverReadAsDurable) {
  Ring ring(limits::ring_bytes_min);
  using Durability = Ring::Durability;
  constexpr uint64_t kLosses = 40;  // entries 10k+1..10k+5 lost, 10k+6..10k+10 durable
  for (uint64_t k = 0; k < kLosses; ++k) {
    ring.publish_lost(10 * k, 10 * k + 5);
    ring.publish_durable(10 * k + 10);
  }
  for (uint64_t k = 0; k < kLosses; ++k) {
    for (uint64_t n = 10 * k + 1; n <= 10 * k + 5; ++n) {
      EXPECT_EQ(ring.durability(n), Durability::kLost) << n;
    }
  }
  // The newest losses are kept exactly: the entries between them are durable.
  EXPECT_EQ(ring.durability(10 * (kLosses - 1) + 6), Durability::kDurable);
  EXPECT_EQ(ring.durability(10 * (kLosses - 2) + 6), Durability::kDurable);
  EXPECT_EQ(ring.durability(10 * kLosses + 1), Durability::kWaiting);
}

TEST(SessionRecorder, QueuesInOrderWhileTheRingIsFullAndCutsOversizedValues) {
  Ring ring(limits::ring_bytes_min);
  SessionRecorder recorder(0x42);
  const std::string text(200, 's');
  uint32_t recorded = 0;
  while (recorder.record(ring, EventType::kStatement, std::vector<Field>{{FieldTag::kText, text}}))
    ++recorded;
  ++recorded;  // the one that was queued
  EXPECT_TRUE(recorder.pending());
  const std::string huge(ring.capacity(), 'h');
  EXPECT_FALSE(recorder.record(ring, EventType::kError, std::vector<Field>{{FieldTag::kMessage, huge}}));
  EXPECT_FALSE(recorder.flush(ring));  // still full: nothing moves

  uint32_t next = 0;
  const auto drain = [&] {
    ring.drain([&](std::span<const std::byte> body) {
      auto view = decode_record_body(body);
      ASSERT_TRUE(view.has_value()) << view.error().message;
      EXPECT_EQ(view->session_id, 0x42u);
      EXPECT_EQ(view->sequence, next);
      if (next < recorded) {
        EXPECT_EQ(view->first(FieldTag::kText), text);
      } else {
        EXPECT_EQ(view->type, EventType::kError);
        EXPECT_LT(view->first(FieldTag::kMessage).size(), huge.size());
        EXPECT_TRUE(huge.starts_with(view->first(FieldTag::kMessage)));
      }
      ++next;
    });
  };
  drain();
  EXPECT_TRUE(recorder.flush(ring));
  EXPECT_FALSE(recorder.pending());
  drain();
  EXPECT_EQ(next, recorded + 1);
}

}  // namespace
}  // namespace gh::rec
