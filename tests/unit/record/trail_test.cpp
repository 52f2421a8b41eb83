// Rings -> flusher -> segment files -> reader and verify, in a temporary directory.
// Covers rotation, resume, tampering findings, torn tails and write errors (injected I/O).
#include <errno.h>
#include <gtest/gtest.h>

#include <fstream>

#include "record/flusher.hpp"
#include "record/reader.hpp"
#include "record/segment.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::TempDir;

// Varied events of one session: every type, repeated and empty fields, texts of many sizes.
std::vector<StoredEvent> session_events(uint64_t session, uint32_t count) {
  std::vector<StoredEvent> events;
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t t = testing::kBaseTimeNs + session * 1'000'000'000ull + i * 1'000'000ull;
    switch (i % 5) {
      case 0:
        events.push_back({EventType::kSessionStart,
                          session,
                          i,
                          t,
                          {{FieldTag::kChainMember, "alice"},
                           {FieldTag::kChainMember, "ci-runner"},
                           {FieldTag::kGroup, "dba"},
                           {FieldTag::kConnection, "prod"},
                           {FieldTag::kClientAddress, ""}}});
        break;
      case 1:
        events.push_back(testing::statement(session, i, 1 + (i * 37) % 400));
        break;
      case 2:
        events.push_back({EventType::kCompletion, session, i, t, {{FieldTag::kTag, "SELECT 1"}}});
        break;
      case 3:
        events.push_back({EventType::kError,
                          session,
                          i,
                          t,
                          {{FieldTag::kSqlState, "42P01"}, {FieldTag::kMessage, "no such table"}}});
        break;
      default:
        events.push_back({EventType::kNotice, session, i, t, {}});
        break;
    }
  }
  return events;
}

// Runs a flusher over `per_shard` events (pushed in order, each shard from its own thread).
void write_trail(FlusherOptions options, const std::vector<std::vector<StoredEvent>>& per_shard,
                 FlusherCounters* counters = nullptr) {
  options.shard_count = static_cast<uint16_t>(per_shard.size());
  auto flusher = Flusher::create(options);
  ASSERT_TRUE(flusher.has_value()) << flusher.error().message;
  ASSERT_TRUE((*flusher)->start().has_value());
  std::vector<std::thread> shards;
  for (uint16_t s = 0; s < per_shard.size(); ++s) {
    shards.emplace_back([&, s] {
      for (const StoredEvent& e : per_shard[s]) {
        ASSERT_TRUE(testing::push_blocking((*flusher)->ring(s), e));
      }
    });
  }
  for (auto& t : shards) t.join();
  auto stopped = (*flusher)->stop();
  ASSERT_TRUE(stopped.has_value()) << stopped.error().message;
  if (counters) *counters = (*flusher)->counters();
}

std::vector<std::vector<StoredEvent>> read_trail(const std::string& dir) {
  std::vector<std::vector<StoredEvent>> out;
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    if (out.size() <= r.shard) out.resize(r.shard + 1);
    if (is_control_type(r.record.view.type)) return true;  // seals, checkpoints: no session
    out[r.shard].push_back(to_stored(r.record.view));
    return true;
  });
  EXPECT_TRUE(walked.has_value());
  return out;
}

std::vector<std::byte> load(const std::string& path) {
  auto bytes = read_whole_file(path);
  EXPECT_TRUE(bytes.has_value()) << path;
  return bytes ? *bytes : std::vector<std::byte>{};
}

void save(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

struct Span {
  uint64_t offset;
  uint64_t length;
};
std::vector<Span> record_spans(const std::vector<std::byte>& file) {
  std::vector<Span> spans;
  auto header = parse_segment_header(file);
  EXPECT_TRUE(header.has_value());
  const SegmentScan scan =
      scan_segment_records(file, header->previous_hash, true, [&](const ScannedRecord& r) {
        spans.push_back({r.offset, r.view.body.size() + limits::chain_hash_bytes});
        return true;
      });
  EXPECT_EQ(scan.end, ScanEnd::kClean);
  return spans;
}

std::string segment_path(const TempDir& dir, uint16_t shard, uint64_t sequence) {
  return dir / (shard_dir_name(shard) + "/" + segment_file_name(sequence));
}

// Records of sessions (what was pushed), without seals, checkpoints and recovery records.
uint64_t session_records(const VerifyReport& r) { return r.records - r.control_records; }
uint64_t session_records(const FlusherCounters& c) { return c.records - c.seals - c.checkpoints; }

VerifyReport verify(const TempDir& dir) {
  auto report = verify_trail(dir.path());
  EXPECT_TRUE(report.has_value());
  return report ? *report : VerifyReport{};
}

std::string describe(const VerifyReport& r) {
  if (!r.finding) return "ok";
  return r.finding->segment_file + " #" + std::to_string(r.finding->record_index.value_or(999)) +
         " @" + std::to_string(r.finding->byte_offset) + ": " + r.finding->what;
}

// A single-shard trail of `count` events in one segment; returns the segment's path.
std::string one_segment_trail(const TempDir& dir, uint32_t count) {
  write_trail(testing::test_options(dir.path()), {session_events(1, count)});
  return segment_path(dir, 0, 1);
}

TEST(SegmentHeader, RoundTripsAndRejectsDamage) {
  SegmentHeader h;
  h.shard = 3;
  h.node_id = "gw-1";
  h.sequence = 42;
  h.created_ns = testing::kBaseTimeNs;
  h.previous_hash.fill(0xab);
  h.flags = kHeaderFlagPreviousTailTorn;
  h.key_id.fill(0x5c);
  const auto bytes = encode_segment_header(h);
  EXPECT_EQ(std::memcmp(bytes.data(), "GHTRAIL\0", 8), 0);
  auto parsed = parse_segment_header(bytes);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->shard, 3);
  EXPECT_EQ(parsed->node_id, "gw-1");
  EXPECT_EQ(parsed->sequence, 42u);
  EXPECT_EQ(parsed->created_ns, testing::kBaseTimeNs);
  EXPECT_EQ(parsed->previous_hash, h.previous_hash);
  EXPECT_EQ(parsed->flags, kHeaderFlagPreviousTailTorn);
  EXPECT_EQ(parsed->key_id, h.key_id);
  EXPECT_EQ(bytes[132], std::byte{0x5c});
  EXPECT_EQ(bytes[147], std::byte{0x5c});

  const auto broken = [&](size_t at, uint8_t value) {
    auto copy = bytes;
    copy[at] = static_cast<std::byte>(value);
    auto r = parse_segment_header(copy);
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_NE(broken(0, 'X').find("magic"), std::string::npos);
  EXPECT_NE(broken(8, 3).find("version 3"), std::string::npos);
  EXPECT_NE(broken(8, 1).find("version 1"), std::string::npos) << "unsigned version 1 is refused";
  EXPECT_NE(broken(10, 1).find("header size 257"), std::string::npos);
  EXPECT_NE(broken(16 + 4, 'x').find("node id padding"), std::string::npos);
  EXPECT_NE(broken(128, 0x80).find("flags"), std::string::npos);
  EXPECT_NE(broken(148, 1).find("padding is not zero at byte 148"), std::string::npos);
  EXPECT_NE(broken(255, 1).find("padding is not zero at byte 255"), std::string::npos);
  EXPECT_NE(broken(80, 0).find("sequence 0"), std::string::npos) << "42 -> 0";
  EXPECT_FALSE(parse_segment_header(std::span(bytes).first(255)).has_value());
}

TEST(Trail, EventsComeBackIdenticalThroughRingsAndFiles) {
  TempDir dir;
  const std::vector<std::vector<StoredEvent>> written = {session_events(1, 300),
                                                         session_events(2, 250)};
  FlusherCounters counters;
  write_trail(testing::test_options(dir.path()), written, &counters);
  EXPECT_EQ(read_trail(dir.path()), written);
  EXPECT_EQ(session_records(counters), 550u);
  EXPECT_EQ(counters.seals, 2u) << "a clean stop seals each shard's segment";
  EXPECT_GT(counters.fsyncs, 0u);
  EXPECT_EQ(counters.write_errors, 0u);

  const VerifyReport report = verify(dir);
  EXPECT_TRUE(report.ok()) << describe(report);
  EXPECT_EQ(report.shards, 2u);
  EXPECT_EQ(report.segments, 2u);
  EXPECT_EQ(session_records(report), 550u);
  EXPECT_EQ(report.seals, 2u);
  EXPECT_EQ(report.sessions, 2u);

  auto header = parse_segment_header(load(segment_path(dir, 1, 1)));
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->shard, 1);
  EXPECT_EQ(header->node_id, "test-node");
  EXPECT_EQ(header->previous_hash, ChainHash{});
}

TEST(Trail, RotationBySizeMakesLinkedSegmentsThatVerify) {
  TempDir dir;
  FlusherOptions options = testing::test_options(dir.path());
  options.segment_bytes_max = limits::segment_bytes_min;
  write_trail(options, {session_events(9, 600)});
  auto sequences = list_segments(dir / shard_dir_name(0));
  ASSERT_TRUE(sequences.has_value());
  ASSERT_GE(sequences->size(), 10u);
  for (size_t i = 0; i < sequences->size(); ++i) {
    EXPECT_EQ((*sequences)[i], i + 1);
    EXPECT_LE(load(segment_path(dir, 0, i + 1)).size(), limits::segment_bytes_min);
  }
  const VerifyReport report = verify(dir);
  EXPECT_TRUE(report.ok()) << describe(report);
  EXPECT_EQ(report.segments, sequences->size());
  EXPECT_EQ(session_records(report), 600u);
  EXPECT_EQ(report.seals, sequences->size()) << "every segment ends with its seal";
  EXPECT_EQ(read_trail(dir.path())[0], session_events(9, 600));
}

TEST(Trail, RestartOpensANewSegmentLinkedToThePreviousOne) {
  TempDir dir;
  const auto first = session_events(1, 50);
  write_trail(testing::test_options(dir.path()), {first});
  const auto before = load(segment_path(dir, 0, 1));

  auto flusher = Flusher::create(testing::test_options(dir.path()));
  ASSERT_TRUE(flusher.has_value());
  EXPECT_EQ((*flusher)->resume_info(0).previous_sequence, 1u);
  EXPECT_FALSE((*flusher)->resume_info(0).previous_tail_torn);
  flusher->reset();
  const auto second = session_events(2, 40);
  write_trail(testing::test_options(dir.path()), {second});

  EXPECT_EQ(load(segment_path(dir, 0, 1)), before) << "a segment is never rewritten";
  auto header = parse_segment_header(load(segment_path(dir, 0, 2)));
  ASSERT_TRUE(header.has_value());
  ChainHash last{};
  std::memcpy(last.data(), before.data() + before.size() - 32, 32);
  EXPECT_EQ(header->previous_hash, last);
  EXPECT_EQ(header->flags, 0u);

  const VerifyReport report = verify(dir);
  EXPECT_TRUE(report.ok()) << describe(report);
  EXPECT_EQ(report.segments, 2u);
  EXPECT_EQ(session_records(report), 90u);
  EXPECT_EQ(report.control_records, 2u) << "two seals, no recovery record after a clean stop";
  auto all = first;
  all.insert(all.end(), second.begin(), second.end());
  EXPECT_EQ(read_trail(dir.path())[0], all);
}

TEST(Trail, TornTailIsReportedAsTruncationNotTampering) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 20);
  auto bytes = load(path);
  const auto spans = record_spans(bytes);
  ASSERT_EQ(spans.size(), 21u) << "20 records and the seal";
  bytes.resize(spans[19].offset + spans[19].length - 7);  // the crash cut record 19 short
  save(path, bytes);

  VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kTruncatedTail);
  EXPECT_FALSE(report.finding->tampering());
  EXPECT_EQ(report.finding->record_index, 19u);
  EXPECT_EQ(report.finding->byte_offset, spans[19].offset);
  EXPECT_EQ(report.records, 19u);

  // A crash can also leave zeros where the last write never landed.
  bytes.resize(spans[19].offset);
  bytes.resize(bytes.size() + 100, std::byte{0});
  save(path, bytes);
  report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kTruncatedTail);
}

TEST(Trail, RestartAfterATornTailLinksToTheLastIntactRecord) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 20);
  auto bytes = load(path);
  const auto spans = record_spans(bytes);
  bytes.resize(spans[19].offset + 10);
  save(path, bytes);

  auto flusher = Flusher::create(testing::test_options(dir.path()));
  ASSERT_TRUE(flusher.has_value());
  EXPECT_TRUE((*flusher)->resume_info(0).previous_tail_torn);
  EXPECT_EQ((*flusher)->resume_info(0).torn_bytes, 10u);
  EXPECT_NE((*flusher)->resume_info(0).note.find("00000001.seg"), std::string::npos);
  ASSERT_TRUE((*flusher)->start().has_value());
  for (const StoredEvent& e : session_events(2, 5)) {
    ASSERT_TRUE(testing::push_blocking((*flusher)->ring(0), e));
  }
  ASSERT_TRUE((*flusher)->stop().has_value());

  auto header = parse_segment_header(load(segment_path(dir, 0, 2)));
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->flags, kHeaderFlagPreviousTailTorn);
  const VerifyReport report = verify(dir);
  EXPECT_TRUE(report.ok()) << describe(report);
  EXPECT_EQ(session_records(report), 24u);
  EXPECT_EQ(report.control_records, 2u) << "the recovery record and the seal";
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_NE(report.notes[0].find("torn tail"), std::string::npos);
}

TEST(Verify, NamesTheRecordWithAFlippedByte) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 30);
  auto bytes = load(path);
  const auto spans = record_spans(bytes);
  bytes[spans[12].offset + 36] ^= std::byte{0x01};  // inside the completion tag's value
  save(path, bytes);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kChainMismatch) << describe(report);
  EXPECT_TRUE(report.finding->tampering());
  EXPECT_EQ(report.finding->shard, 0);
  EXPECT_EQ(report.finding->segment_file, "shard-00/00000001.seg");
  EXPECT_EQ(report.finding->record_index, 12u);
  EXPECT_EQ(report.finding->byte_offset, spans[12].offset);
  EXPECT_EQ(report.finding->what, "chain hash mismatch");
  EXPECT_EQ(report.records, 12u);
}

TEST(Verify, FlippedHashOrLengthIsTamperingToo) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 30);
  const auto original = load(path);
  const auto spans = record_spans(original);

  auto bytes = original;
  bytes[spans[4].offset + spans[4].length - 1] ^= std::byte{0x80};  // the stored hash itself
  save(path, bytes);
  VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->record_index, 4u) << describe(report);

  // A length word pointing past the end of the file must not pass for a crash.
  bytes = original;
  bytes[spans[5].offset + 2] = std::byte{0x01};  // +65536
  save(path, bytes);
  report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(report.finding->tampering()) << describe(report);
  EXPECT_EQ(report.finding->record_index, 5u);

  bytes = original;
  bytes[spans[5].offset] ^= std::byte{0x04};  // a few bytes longer, still inside the file
  save(path, bytes);
  report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kBadRecord) << describe(report);
  EXPECT_EQ(report.finding->record_index, 5u);
}

TEST(Verify, FindsADeletedRecord) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 30);
  auto bytes = load(path);
  const auto spans = record_spans(bytes);
  bytes.erase(bytes.begin() + static_cast<ptrdiff_t>(spans[12].offset),
              bytes.begin() + static_cast<ptrdiff_t>(spans[12].offset + spans[12].length));
  save(path, bytes);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kChainMismatch);
  EXPECT_EQ(report.finding->record_index, 12u);
  EXPECT_EQ(report.finding->byte_offset, spans[12].offset);
}

TEST(Verify, FindsTwoSwappedRecords) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 30);
  auto bytes = load(path);
  const auto spans = record_spans(bytes);
  std::vector<std::byte> swapped(bytes.begin(), bytes.begin() + spans[12].offset);
  const auto append = [&](const Span& s) {
    swapped.insert(swapped.end(), bytes.begin() + s.offset, bytes.begin() + s.offset + s.length);
  };
  append(spans[13]);
  append(spans[12]);
  swapped.insert(swapped.end(), bytes.begin() + spans[14].offset, bytes.end());
  ASSERT_EQ(swapped.size(), bytes.size());
  save(path, swapped);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kChainMismatch);
  EXPECT_EQ(report.finding->record_index, 12u);
}

TEST(Verify, FindsAMissingMiddleSegment) {
  TempDir dir;
  FlusherOptions options = testing::test_options(dir.path());
  options.segment_bytes_max = limits::segment_bytes_min;
  write_trail(options, {session_events(3, 300)});
  ASSERT_TRUE(verify(dir).ok());
  std::filesystem::remove(segment_path(dir, 0, 3));
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kMissingSegment);
  EXPECT_EQ(report.finding->what, "segment 00000003 missing");
  EXPECT_EQ(report.finding->segment_file, "shard-00/00000003.seg");
  EXPECT_EQ(report.segments, 2u);
}

TEST(Verify, FindsAMissingFirstSegmentAndABrokenLink) {
  TempDir dir;
  FlusherOptions options = testing::test_options(dir.path());
  options.segment_bytes_max = limits::segment_bytes_min;
  write_trail(options, {session_events(3, 300)});

  // The link: segment 2's header names a previous hash that segment 1 does not end with.
  const std::string second = segment_path(dir, 0, 2);
  auto bytes = load(second);
  bytes[100] ^= std::byte{0xff};
  save(second, bytes);
  VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kSegmentLink) << describe(report);
  EXPECT_EQ(report.finding->segment_sequence, 2u);

  std::filesystem::remove(segment_path(dir, 0, 1));
  report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->what, "segment 00000001 missing");
}

TEST(Verify, CutInsideAMiddleSegmentIsTampering) {
  TempDir dir;
  FlusherOptions options = testing::test_options(dir.path());
  options.segment_bytes_max = limits::segment_bytes_min;
  write_trail(options, {session_events(3, 300)});
  const std::string path = segment_path(dir, 0, 2);
  auto bytes = load(path);
  bytes.resize(bytes.size() - 5);
  save(path, bytes);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(report.finding->tampering()) << describe(report);
  EXPECT_EQ(report.finding->segment_file, "shard-00/00000002.seg");
}

TEST(Verify, HeaderPaddingMustBeZero) {
  TempDir dir;
  const std::string path = one_segment_trail(dir, 5);
  auto bytes = load(path);
  bytes[200] = std::byte{1};
  save(path, bytes);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kBadHeader);
  EXPECT_FALSE(report.finding->record_index.has_value());
  EXPECT_NE(report.finding->what.find("padding is not zero"), std::string::npos);
}

TEST(Verify, SegmentMovedToAnotherShardIsFound) {
  TempDir dir;
  write_trail(testing::test_options(dir.path()), {session_events(1, 5), session_events(2, 5)});
  std::filesystem::copy_file(segment_path(dir, 1, 1), segment_path(dir, 0, 1),
                             std::filesystem::copy_options::overwrite_existing);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kBadHeader);
  EXPECT_NE(report.finding->what.find("shard 1"), std::string::npos);
}

TEST(Verify, TamperingInOneShardOutranksATornTailInAnother) {
  TempDir dir;
  write_trail(testing::test_options(dir.path()), {session_events(1, 10), session_events(2, 10)});
  auto torn = load(segment_path(dir, 0, 1));
  torn.resize(torn.size() - 3);
  save(segment_path(dir, 0, 1), torn);
  auto flipped = load(segment_path(dir, 1, 1));
  flipped[flipped.size() - 40] ^= std::byte{1};
  save(segment_path(dir, 1, 1), flipped);
  const VerifyReport report = verify(dir);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(report.finding->tampering()) << describe(report);
  EXPECT_EQ(report.finding->shard, 1);
}

// Fails writes on demand, first with a short write (half the bytes) and then ENOSPC, as a disk
// filling up does. The flusher thread is the only caller of write/open_new.
class FillingDisk final : public SegmentIo {
 public:
  std::atomic<bool> full{false};
  std::atomic<int> refused{0};

  int open_new(const std::string& path) override {
    if (full) {
      ++refused;
      return -ENOSPC;
    }
    return real().open_new(path);
  }
  ssize_t write(int fd, std::span<const std::byte> bytes) override {
    if (full) {
      if (!short_write_done_ && bytes.size() > 1) {
        short_write_done_ = true;
        return real().write(fd, bytes.first(bytes.size() / 2));
      }
      ++refused;
      return -ENOSPC;
    }
    return real().write(fd, bytes);
  }
  int fdatasync(int fd) override { return real().fdatasync(fd); }
  int close(int fd) override { return real().close(fd); }
  int rename(const std::string& from, const std::string& to) override {
    return real().rename(from, to);
  }
  int unlink(const std::string& path) override { return real().unlink(path); }
  int sync_dir(const std::string& path) override { return real().sync_dir(path); }

 private:
  static SegmentIo& real() { return posix_segment_io(); }
  bool short_write_done_ = false;
};

TEST(Flusher, WriteErrorsApplyBackPressureAndLoseNothing) {
  TempDir dir;
  FillingDisk disk;
  std::atomic<int> reported{0};
  FlusherOptions options = testing::test_options(dir.path());
  options.io = &disk;
  options.segment_bytes_max = 64 * 1024;
  options.on_error = [&](const FlushError& e) {
    EXPECT_EQ(e.shard, 0);
    EXPECT_NE(e.message.find("No space left on device"), std::string::npos) << e.message;
    ++reported;
  };
  auto created = Flusher::create(options);
  ASSERT_TRUE(created.has_value());
  Flusher& flusher = **created;
  ASSERT_TRUE(flusher.start().has_value());
  Ring& ring = flusher.ring(0);

  uint32_t sequence = 0;
  for (; sequence < 200; ++sequence) {
    ASSERT_TRUE(testing::push_blocking(ring, testing::statement(1, sequence, 200)));
  }
  ASSERT_TRUE(testing::wait_until([&] { return session_records(flusher.counters()) == 200; }));

  disk.full = true;
  // Keep producing until the ring pushes back; nothing may be refused for any other reason.
  for (;;) {
    testing::EventView view(testing::statement(1, sequence, 200));
    const PushStatus status = ring.try_push(view.event);
    ASSERT_NE(status, PushStatus::kTooLarge);
    if (status == PushStatus::kFull) break;
    ++sequence;
  }
  const uint32_t produced = sequence;
  ASSERT_GT(produced, 700u) << "the ring (256 KiB) holds about 1000 such records";
  ASSERT_TRUE(testing::wait_until([&] { return reported.load() >= 2; }));
  EXPECT_TRUE(flusher.degraded());
  EXPECT_TRUE(flusher.last_error().has_value());
  EXPECT_LT(session_records(flusher.counters()), produced);
  EXPECT_GT(flusher.counters().write_errors, 0u);
  EXPECT_GT(ring.used_bytes(), 0u);

  disk.full = false;
  ASSERT_TRUE(testing::wait_until([&] { return session_records(flusher.counters()) == produced; }))
      << session_records(flusher.counters()) << " of " << produced;
  EXPECT_FALSE(flusher.degraded());
  for (; sequence < produced + 10; ++sequence) {
    ASSERT_TRUE(testing::push_blocking(ring, testing::statement(1, sequence, 200)));
  }
  ASSERT_TRUE(flusher.stop().has_value());

  const VerifyReport report = verify(dir);
  EXPECT_TRUE(report.ok()) << describe(report);
  const auto read = read_trail(dir.path());
  ASSERT_EQ(read.size(), 1u);
  ASSERT_EQ(read[0].size(), produced + 10);
  for (uint32_t i = 0; i < read[0].size(); ++i) {
    ASSERT_EQ(read[0][i], testing::statement(1, i, 200)) << i;
  }
}

TEST(Flusher, StopReportsRecordsItCouldNotWrite) {
  TempDir dir;
  FillingDisk disk;
  disk.full = true;
  FlusherOptions options = testing::test_options(dir.path());
  options.io = &disk;
  auto created = Flusher::create(options);
  ASSERT_TRUE(created.has_value());
  Flusher& flusher = **created;
  ASSERT_TRUE(flusher.start().has_value());
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(testing::push_blocking(flusher.ring(0), testing::statement(1, i)));
  }
  auto stopped = flusher.stop();
  ASSERT_FALSE(stopped.has_value());
  EXPECT_NE(stopped.error().message.find("shard 0"), std::string::npos) << stopped.error().message;
  EXPECT_NE(stopped.error().message.find("not written"), std::string::npos);
  EXPECT_FALSE(flusher.ring(0).empty()) << "the records are still in the ring, not dropped";
  EXPECT_EQ(flusher.counters().records, 0u);
}

TEST(Flusher, CreateChecksOptionsAndDirectory) {
  TempDir dir;
  save(dir / "file", std::vector<std::byte>(3));
  auto bad_dir = Flusher::create(testing::test_options(dir / "file/trail"));
  ASSERT_FALSE(bad_dir.has_value());
  EXPECT_NE(bad_dir.error().message.find("file/trail"), std::string::npos)
      << bad_dir.error().message;

  {
    auto first = Flusher::create(testing::test_options(dir / "trail"));
    ASSERT_TRUE(first.has_value()) << first.error().message;
    auto second = Flusher::create(testing::test_options(dir / "trail"));
    ASSERT_FALSE(second.has_value()) << "two recorders on one trail would fork its chains";
    EXPECT_NE(second.error().message.find("in use"), std::string::npos);
  }
  EXPECT_TRUE(Flusher::create(testing::test_options(dir / "trail")).has_value());

  FlusherOptions options = testing::test_options(dir.path());
  options.ring_bytes = 300'000;
  EXPECT_FALSE(Flusher::create(options).has_value());
  options = testing::test_options(dir.path());
  options.node_id = std::string(limits::node_id_bytes_max + 1, 'n');
  EXPECT_FALSE(Flusher::create(options).has_value());
  options = testing::test_options(dir.path());
  options.shard_count = 0;
  EXPECT_FALSE(Flusher::create(options).has_value());
  options = testing::test_options(dir.path());
  options.segment_bytes_max = 100;
  EXPECT_FALSE(Flusher::create(options).has_value());
}

}  // namespace
}  // namespace gh::rec
