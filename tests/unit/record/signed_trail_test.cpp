// Signed trails end to end through the flusher: seals, checkpoints and heartbeats, the anchor
// file, key rotation, and what verify finds when a forger without the key edits the files.
#include <gtest/gtest.h>

#include <filesystem>

#include "record/flusher.hpp"
#include "record/reader.hpp"
#include "record/segment.hpp"
#include "record_test_support.hpp"
#include "tests/integration/support/trail_edit.hpp"

namespace gh::rec {
namespace {

using testing::TempDir;
namespace edit = gh::test::trail_edit;

std::string segment_path(const std::string& dir, uint16_t shard, uint64_t sequence) {
  return dir + "/" + shard_dir_name(shard) + "/" + segment_file_name(sequence);
}

std::string describe(const VerifyReport& r) {
  if (!r.finding) return "ok";
  return std::string(finding_kind_name(r.finding->kind)) + " " + r.finding->segment_file + " #" +
         std::to_string(r.finding->record_index.value_or(999)) + ": " + r.finding->what;
}

Keyring keyring_of(std::initializer_list<std::shared_ptr<const NodeKey>> keys,
                   const std::string& node = "test-node") {
  Keyring ring;
  for (const auto& k : keys) EXPECT_TRUE(ring.add({k->id(), k->public_key(), node, ""}).has_value());
  return ring;
}

struct SignedTrail {
  TempDir root;
  std::string dir = root / "trail";
  std::string anchors = root / "anchors.jsonl";
  Keyring keys = keyring_of({testing::test_key()});

  VerifyReport verify(bool with_anchors = true, const Keyring* ring = nullptr) {
    VerifyOptions options;
    options.keyring = ring != nullptr ? ring : &keys;
    if (with_anchors) options.anchor_file = anchors;
    auto report = verify_trail(dir, options);
    EXPECT_TRUE(report.has_value()) << report.error().message;
    return report ? *report : VerifyReport{};
  }
};

// Writes `events` statements into shard 0 with checkpoints every 10 ms: waits for `idle_before`
// checkpoints before the first statement (heartbeats) and for two more after the last.
void record(SignedTrail& t, uint32_t events, uint64_t idle_before, FlusherOptions options) {
  options.anchor_file = t.anchors;
  options.checkpoint_interval_ms = 10;
  auto flusher = Flusher::create(options);
  ASSERT_TRUE(flusher.has_value()) << flusher.error().message;
  Flusher& f = **flusher;
  ASSERT_TRUE(f.start().has_value());
  ASSERT_TRUE(testing::wait_until([&] { return f.counters().checkpoints >= idle_before; }));
  for (uint32_t i = 0; i < events; ++i) {
    ASSERT_TRUE(testing::push_blocking(f.ring(0), testing::statement(1, i, 300)));
  }
  const uint64_t after = f.counters().checkpoints + 2;
  ASSERT_TRUE(testing::wait_until([&] { return f.counters().checkpoints >= after; }));
  ASSERT_TRUE(f.stop().has_value());
  EXPECT_GT(f.counters().anchors, idle_before);
}

TEST(SignedTrail, HeartbeatsAndCheckpointsAreSignedAnchoredAndVerify) {
  SignedTrail t;
  record(t, 40, 3, testing::test_options(t.dir));
  const VerifyReport report = t.verify();
  ASSERT_TRUE(report.ok()) << describe(report);
  EXPECT_TRUE(report.signatures_checked);
  EXPECT_GE(report.heartbeats, 3u) << "an idle shard still leaves signed heartbeats";
  EXPECT_GT(report.checkpoints, report.heartbeats) << "a checkpoint after the statements";
  EXPECT_EQ(report.seals, 1u);
  EXPECT_EQ(report.anchors, report.checkpoints + report.seals);
  EXPECT_EQ(report.records - report.control_records, 40u);
  EXPECT_EQ(report.node_id, "test-node");
}

TEST(SignedTrail, RotationByAgeSealsSegmentsThatVerify) {
  SignedTrail t;
  FlusherOptions options = testing::test_options(t.dir);
  options.segment_age_ms = 1;  // every pass finds the segment old enough
  record(t, 30, 2, options);
  auto sequences = list_segments(t.dir + "/shard-00");
  ASSERT_TRUE(sequences.has_value());
  EXPECT_GE(sequences->size(), 3u);
  const VerifyReport report = t.verify();
  ASSERT_TRUE(report.ok()) << describe(report);
  EXPECT_EQ(report.seals, sequences->size());
}

TEST(SignedTrail, TruncatedTailIsCaughtOnlyAgainstTheAnchorFile) {
  SignedTrail t;
  FlusherOptions options = testing::test_options(t.dir);
  options.segment_bytes_max = limits::segment_bytes_min;
  record(t, 60, 1, options);
  auto sequences = list_segments(t.dir + "/shard-00");
  ASSERT_TRUE(sequences.has_value());
  ASSERT_GE(sequences->size(), 3u);
  ASSERT_TRUE(t.verify().ok());

  // Cut the newest segment back to a record boundary: the chain alone cannot tell.
  const std::string newest = segment_path(t.dir, 0, sequences->back());
  auto segment = edit::split(edit::load(newest));
  ASSERT_GE(segment.records.size(), 3u);
  segment.records.resize(segment.records.size() - 2);
  edit::save(newest, edit::join(segment));
  VerifyReport report = t.verify(false);
  EXPECT_TRUE(report.ok()) << "without anchors a cut at a record boundary looks like a crash";
  ASSERT_FALSE(report.notes.empty());
  report = t.verify(true);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kAnchorMismatch) << describe(report);
  EXPECT_NE(report.finding->what.find("cut from the end"), std::string::npos) << describe(report);

  // Deleting the newest segment outright is caught the same way.
  std::filesystem::remove(newest);
  report = t.verify(true);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kAnchorMismatch) << describe(report);
  EXPECT_NE(report.finding->what.find("not in the trail"), std::string::npos) << describe(report);
}

TEST(SignedTrail, RewrittenSegmentWithRecomputedHashesFailsItsSignature) {
  SignedTrail t;
  record(t, 20, 0, testing::test_options(t.dir));
  const std::string path = segment_path(t.dir, 0, 1);
  auto segment = edit::split(edit::load(path));
  const size_t target = edit::find_record(segment, "SELECT 1.7 ");
  auto& bytes = segment.records[target].bytes;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  bytes[text.find("SELECT 1.7 ") + 7] = std::byte{'9'};
  edit::rechain(segment);
  edit::save(path, edit::join(segment));

  VerifyReport report = t.verify(false);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kBadSignature) << describe(report);
  EXPECT_GT(report.finding->record_index.value_or(0), target);
  // Without the keyring the hashes all match: only the signature gives the forgery away.
  auto unsigned_report = verify_trail(t.dir, VerifyOptions{});
  ASSERT_TRUE(unsigned_report.has_value());
  EXPECT_TRUE(unsigned_report->ok()) << describe(*unsigned_report);
  EXPECT_FALSE(unsigned_report->signatures_checked);
}

TEST(SignedTrail, KeyRotationStartsANewSegmentAndOldKeysStillVerify) {
  SignedTrail t;
  record(t, 10, 0, testing::test_options(t.dir));
  const auto second_key = *NodeKey::generate();
  FlusherOptions options = testing::test_options(t.dir);
  options.key = second_key;
  record(t, 10, 0, options);
  auto first = parse_segment_header(edit::load(segment_path(t.dir, 0, 1)));
  auto second = parse_segment_header(edit::load(segment_path(t.dir, 0, 2)));
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->key_id, testing::test_key()->id());
  EXPECT_EQ(second->key_id, second_key->id());

  const Keyring both = keyring_of({testing::test_key(), second_key});
  VerifyReport report = t.verify(true, &both);
  EXPECT_TRUE(report.ok()) << describe(report);
  const Keyring old_only = keyring_of({testing::test_key()});
  report = t.verify(true, &old_only);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kUnknownKey) << describe(report);
  EXPECT_EQ(report.finding->segment_sequence, 2u);
  const Keyring other_node = keyring_of({testing::test_key(), second_key}, "gw-elsewhere");
  report = t.verify(false, &other_node);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kForeignSegment) << describe(report);
}

TEST(SignedTrail, CuttingAMiddleSegmentsSealBreaksTheNextLink) {
  SignedTrail t;
  FlusherOptions options = testing::test_options(t.dir);
  options.segment_bytes_max = limits::segment_bytes_min;
  record(t, 40, 0, options);
  const std::string path = segment_path(t.dir, 0, 2);
  auto segment = edit::split(edit::load(path));
  ASSERT_EQ(segment.records.back().type, EventType::kSeal);
  segment.records.pop_back();  // the seal, cut off at a record boundary
  edit::save(path, edit::join(segment));
  const VerifyReport report = t.verify(false);
  ASSERT_FALSE(report.ok());
  // Segment 3 links to the seal's hash, which is gone: the link breaks first.
  EXPECT_EQ(report.finding->kind, FindingKind::kSegmentLink) << describe(report);
}

TEST(SignedTrail, RestartAfterACrashOpensWithASignedRecoveryRecord) {
  SignedTrail t;
  {
    FlusherOptions options = testing::test_options(t.dir);
    auto flusher = Flusher::create(options);
    ASSERT_TRUE(flusher.has_value());
    ASSERT_TRUE((*flusher)->start().has_value());
    for (uint32_t i = 0; i < 10; ++i) {
      ASSERT_TRUE(testing::push_blocking((*flusher)->ring(0), testing::statement(1, i)));
    }
    ASSERT_TRUE(testing::wait_until([&] { return (*flusher)->counters().records == 10; }));
    ASSERT_TRUE((*flusher)->stop().has_value());
  }
  // What a crash leaves: the segment without its seal.
  const std::string path = segment_path(t.dir, 0, 1);
  auto segment = edit::split(edit::load(path));
  ASSERT_EQ(segment.records.back().type, EventType::kSeal);
  segment.records.pop_back();
  edit::save(path, edit::join(segment));

  record(t, 5, 0, testing::test_options(t.dir));
  auto second = edit::split(edit::load(segment_path(t.dir, 0, 2)));
  EXPECT_EQ(second.records.front().type, EventType::kRecovery);
  VerifyReport report = t.verify(false);
  EXPECT_TRUE(report.ok()) << describe(report);

  // Dropping the recovery record (and re-linking by hand) is found: segment 1 has no seal.
  second.records.erase(second.records.begin());
  edit::rechain(second);
  edit::save(segment_path(t.dir, 0, 2), edit::join(second));
  report = t.verify(false);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.finding->kind, FindingKind::kUnsealed) << describe(report);
  EXPECT_EQ(report.finding->segment_sequence, 2u);
}

TEST(SignedTrail, ACleanStopAfterACrashSealsTheRecoveryEvenWithoutNewRecords) {
  SignedTrail t;
  record(t, 5, 0, testing::test_options(t.dir));
  const std::string path = segment_path(t.dir, 0, 1);
  auto segment = edit::split(edit::load(path));
  segment.records.pop_back();  // the seal: what a crash leaves
  edit::save(path, edit::join(segment));
  {
    auto flusher = Flusher::create(testing::test_options(t.dir));
    ASSERT_TRUE(flusher.has_value());
    ASSERT_TRUE((*flusher)->start().has_value());
    ASSERT_TRUE((*flusher)->stop().has_value());
  }
  auto second = edit::split(edit::load(segment_path(t.dir, 0, 2)));
  ASSERT_EQ(second.records.size(), 2u);
  EXPECT_EQ(second.records[0].type, EventType::kRecovery);
  EXPECT_EQ(second.records[1].type, EventType::kSeal);
  const VerifyReport report = t.verify(false);
  EXPECT_TRUE(report.ok()) << describe(report);
  EXPECT_TRUE(report.notes.empty()) << report.notes.front();
}

TEST(SegmentReader, EveryPrefixOfASegmentIsCleanOrTornNeverDamaged) {
  SignedTrail t;
  record(t, 6, 1, testing::test_options(t.dir));
  const auto file = edit::load(segment_path(t.dir, 0, 1));
  auto header = parse_segment_header(file);
  ASSERT_TRUE(header.has_value());
  std::vector<uint64_t> boundaries;
  const SegmentScan whole = scan_segment_records(file, header->previous_hash, true,
                                                 [&](const ScannedRecord& r) {
                                                   boundaries.push_back(r.offset);
                                                   return true;
                                                 });
  ASSERT_EQ(whole.end, ScanEnd::kClean);
  boundaries.push_back(file.size());
  for (size_t cut = limits::segment_header_bytes; cut <= file.size(); ++cut) {
    const SegmentScan scan =
        scan_segment_records(std::span(file).first(cut), header->previous_hash, true);
    const bool on_boundary =
        std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    ASSERT_EQ(scan.end, on_boundary ? ScanEnd::kClean : ScanEnd::kTornTail)
        << "cut at " << cut << ": " << scan.reason;
    ASSERT_LE(scan.end_offset, cut);
  }
  for (size_t cut = 0; cut < limits::segment_header_bytes; ++cut) {
    ASSERT_FALSE(parse_segment_header(std::span(file).first(cut)).has_value());
  }
}

TEST(SegmentReader, FlippedBitsAllOverASignedSegmentAreFound) {
  SignedTrail t;
  record(t, 3, 1, testing::test_options(t.dir));
  const std::string path = segment_path(t.dir, 0, 1);
  const auto original = edit::load(path);
  ASSERT_TRUE(t.verify().ok());
  // Every byte of the header, then every fifth byte (a bounded run under the sanitizers).
  for (size_t at = 0; at < original.size(); at += at < limits::segment_header_bytes ? 1 : 5) {
    auto bytes = original;
    bytes[at] ^= std::byte{static_cast<uint8_t>(1u << (at % 8))};
    edit::save(path, bytes);
    const VerifyReport report = t.verify();
    ASSERT_FALSE(report.ok()) << "flip at byte " << at << " went unnoticed";
    ASSERT_TRUE(report.finding->tampering()) << "byte " << at << ": " << describe(report);
  }
}

}  // namespace
}  // namespace gh::rec
