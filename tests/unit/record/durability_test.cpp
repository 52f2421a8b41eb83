// Strict durability in the flusher: group commit (one fdatasync covers every record written before
// it, and nothing is published durable before that fdatasync returns), and a failed fdatasync is
// never taken for a success (the segment is abandoned, its unsynced records reported lost), nor is
// a failed fsync of the directory that holds a new segment's name.
// Faults come from a SegmentIo test seam wrapping the real file calls.
#include <errno.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "record/control.hpp"
#include "record/flusher.hpp"
#include "record/reader.hpp"
#include "record/segment.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::TempDir;
using Durability = Ring::Durability;

// Real file calls, with fdatasync that can be held at a gate or made to fail once (EIO), as a
// device error reports it; the fdatasync after a failure succeeds again, as Linux reports it
// once the failed pages were dropped: exactly what must not be taken for durability.
class SyncSeamIo final : public SegmentIo {
 public:
  std::atomic<bool> gate_closed{false};
  std::atomic<bool> fail_next{false};
  std::atomic<bool> fail_next_dir{false};  // the next directory fsync fails (EIO)
  std::atomic<int> fdatasyncs{0};
  std::atomic<int> blocked{0};  // fdatasync calls waiting at the gate right now

  int open_new(const std::string& path) override { return real().open_new(path); }
  ssize_t write(int fd, std::span<const std::byte> bytes) override { return real().write(fd, bytes); }
  int fdatasync(int fd) override {
    ++fdatasyncs;
    if (gate_closed) {
      ++blocked;
      // Bounded: a test that forgets to open the gate fails instead of hanging.
      for (int i = 0; i < 20'000 && gate_closed; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      --blocked;
    }
    if (fail_next.exchange(false)) return -EIO;
    return real().fdatasync(fd);
  }
  int close(int fd) override { return real().close(fd); }
  int rename(const std::string& from, const std::string& to) override {
    return real().rename(from, to);
  }
  int unlink(const std::string& path) override { return real().unlink(path); }
  int sync_dir(const std::string& path) override {
    if (fail_next_dir.exchange(false)) return -EIO;
    return real().sync_dir(path);
  }

 private:
  static SegmentIo& real() { return posix_segment_io(); }
};

FlusherOptions strict_options(const TempDir& dir, SyncSeamIo& io) {
  FlusherOptions options = testing::test_options(dir.path());
  options.strict = true;
  options.flush_interval_ms = 1000;  // strict syncs every pass whatever the interval says
  options.io = &io;
  return options;
}

void push(Ring& ring, uint32_t sequence) {
  ASSERT_TRUE(testing::push_blocking(ring, testing::statement(1, sequence, 100)));
}

std::vector<uint32_t> recorded_sequences(const std::string& dir) {
  std::vector<uint32_t> out;
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    if (!is_control_type(r.record.view.type)) out.push_back(r.record.view.sequence);
    return true;
  });
  EXPECT_TRUE(walked.has_value());
  return out;
}

TEST(StrictDurability, NothingIsDurableBeforeItsFdatasyncReturnsAndOneSyncCoversABatch) {
  TempDir dir;
  SyncSeamIo io;
  auto created = Flusher::create(strict_options(dir, io));
  ASSERT_TRUE(created.has_value()) << created.error().message;
  Flusher& flusher = **created;
  ASSERT_TRUE(flusher.start().has_value());
  Ring& ring = flusher.ring(0);

  push(ring, 0);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return ring.durability(1) == Durability::kDurable; }));

  // The flusher is held inside the fdatasync that covers entry 2.
  io.gate_closed = true;
  push(ring, 1);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return io.blocked.load() == 1; }));
  EXPECT_EQ(ring.durability(2), Durability::kWaiting) << "published before fdatasync returned";
  // Many connections' statements arrive meanwhile.
  for (uint32_t i = 2; i < 52; ++i) push(ring, i);
  ring.request_durable();
  EXPECT_EQ(ring.durable(), 1u);
  const int syncs_before = io.fdatasyncs.load();
  io.gate_closed = false;
  ASSERT_TRUE(testing::wait_until([&] { return ring.durable() == 52; }));
  // The held fdatasync finishes (entry 2), then one pass writes entries 3..52 and syncs once.
  EXPECT_LE(io.fdatasyncs.load() - syncs_before, 2) << "group commit: one fdatasync per batch";
  for (uint64_t n = 1; n <= 52; ++n) EXPECT_EQ(ring.durability(n), Durability::kDurable) << n;

  ASSERT_TRUE(flusher.stop().has_value());
  auto report = verify_trail(dir.path());
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->ok()) << (report->finding ? report->finding->what : std::string());
  EXPECT_EQ(recorded_sequences(dir.path()).size(), 52u);
}

TEST(StrictDurability, FailedFdatasyncIsNeverRetriedAsSuccess) {
  TempDir dir;
  SyncSeamIo io;
  std::atomic<int> reported{0};
  FlusherOptions options = strict_options(dir, io);
  options.on_error = [&](const FlushError& e) {
    if (e.message.find("fdatasync failed") != std::string::npos) ++reported;
  };
  auto created = Flusher::create(options);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  Flusher& flusher = **created;
  ASSERT_TRUE(flusher.start().has_value());
  Ring& ring = flusher.ring(0);

  for (uint32_t i = 0; i < 10; ++i) push(ring, i);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return ring.durable() == 10; }));

  // Entries 11..15 are written together while the flusher waits at the gate, and the fdatasync
  // that should cover them fails.
  io.gate_closed = true;
  push(ring, 10);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return io.blocked.load() == 1; }));
  // The gate holds the fdatasync of entry 11; the ones after it are written by the next pass.
  io.fail_next = true;
  io.gate_closed = false;
  ASSERT_TRUE(testing::wait_until([&] { return ring.durability(11) != Durability::kWaiting; }));
  EXPECT_EQ(ring.durability(11), Durability::kLost);
  EXPECT_EQ(reported.load(), 1);

  // The next records go to a new segment and become durable; entry 11 stays lost even though
  // every later fdatasync succeeds.
  for (uint32_t i = 11; i < 20; ++i) push(ring, i);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return ring.durable() >= 20; }));
  EXPECT_EQ(ring.durability(11), Durability::kLost);
  for (uint64_t n = 12; n <= 20; ++n) EXPECT_EQ(ring.durability(n), Durability::kDurable) << n;
  for (uint64_t n = 1; n <= 10; ++n) EXPECT_EQ(ring.durability(n), Durability::kDurable) << n;
  ASSERT_TRUE(flusher.stop().has_value());
  EXPECT_EQ(flusher.counters().broken_segments, 1u);
  EXPECT_EQ(flusher.counters().lost_records, 1u);

  // The trail verifies: segment 1 ends at its last durable record, segment 2 opens with a
  // recovery record saying so, and the lost record is not in it.
  auto report = verify_trail(dir.path());
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->ok()) << (report->finding ? report->finding->what : std::string());
  std::vector<uint32_t> expected;
  for (uint32_t i = 0; i < 20; ++i) {
    if (i != 10) expected.push_back(i);
  }
  EXPECT_EQ(recorded_sequences(dir.path()), expected);
  bool recovery_found = false;
  auto walked = for_each_record(dir.path(), [&](const TrailRecord& r) {
    if (r.record.view.type == EventType::kRecovery) {
      recovery_found = true;
      EXPECT_EQ(r.segment_sequence, 2u);
      auto control = decode_control(r.record.view);
      EXPECT_TRUE(control.has_value());
      if (control) {
        EXPECT_NE(control->reason.find("failed fdatasync"), std::string::npos) << control->reason;
      }
    }
    return true;
  });
  ASSERT_TRUE(walked.has_value());
  EXPECT_TRUE(recovery_found);
}

// The fsync of the shard directory after a new segment's rename fails; the next one would
// succeed. The segment's name may never have reached the disk, so its records are not durable:
// treated as a failed fdatasync (lost, segment abandoned back to its header, recovery record,
// error reported), never as a success on retry.
TEST(StrictDurability, FailedDirectoryFsyncIsNeverRetriedAsSuccess) {
  TempDir dir;
  SyncSeamIo io;
  std::atomic<int> reported{0};
  FlusherOptions options = strict_options(dir, io);
  options.on_error = [&](const FlushError& e) {
    if (e.message.find("directory fsync failed") != std::string::npos) ++reported;
  };
  auto created = Flusher::create(options);
  ASSERT_TRUE(created.has_value()) << created.error().message;
  Flusher& flusher = **created;
  ASSERT_TRUE(flusher.start().has_value());
  Ring& ring = flusher.ring(0);

  // Entry 1 opens segment 1: its fdatasync works, the directory's fsync does not.
  io.fail_next_dir = true;
  push(ring, 0);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return ring.durability(1) != Durability::kWaiting; }));
  EXPECT_EQ(ring.durability(1), Durability::kLost);
  EXPECT_EQ(reported.load(), 1);
  ASSERT_TRUE(flusher.last_error().has_value());
  EXPECT_NE(flusher.last_error()->find("segment abandoned"), std::string::npos)
      << *flusher.last_error();

  // The next records go to segment 2, whose directory fsync succeeds; entry 1 stays lost.
  for (uint32_t i = 1; i < 10; ++i) push(ring, i);
  ring.request_durable();
  ASSERT_TRUE(testing::wait_until([&] { return ring.durable() >= 10; }));
  EXPECT_EQ(ring.durability(1), Durability::kLost);
  for (uint64_t n = 2; n <= 10; ++n) EXPECT_EQ(ring.durability(n), Durability::kDurable) << n;
  ASSERT_TRUE(flusher.stop().has_value());
  EXPECT_EQ(flusher.counters().broken_segments, 1u);
  EXPECT_EQ(flusher.counters().lost_records, 1u);

  auto report = verify_trail(dir.path());
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->ok()) << (report->finding ? report->finding->what : std::string());
  std::vector<uint32_t> expected;
  for (uint32_t i = 1; i < 10; ++i) expected.push_back(i);
  EXPECT_EQ(recorded_sequences(dir.path()), expected);
  bool recovery_found = false;
  auto walked = for_each_record(dir.path(), [&](const TrailRecord& r) {
    if (r.record.view.type == EventType::kRecovery) {
      recovery_found = true;
      EXPECT_EQ(r.segment_sequence, 2u);
      auto control = decode_control(r.record.view);
      EXPECT_TRUE(control.has_value());
      if (control) {
        EXPECT_EQ(control->records, 0u) << "segment 1 ends at its header";
        EXPECT_EQ(control->end_offset, limits::segment_header_bytes);
        EXPECT_NE(control->reason.find("failed directory fsync"), std::string::npos)
            << control->reason;
      }
    }
    return true;
  });
  ASSERT_TRUE(walked.has_value());
  EXPECT_TRUE(recovery_found);
}

}  // namespace
}  // namespace gh::rec
