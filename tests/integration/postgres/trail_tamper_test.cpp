// A real trail, recorded through real PostgreSQL sessions via the gateway (two shards, small
// segments, one-second checkpoints with idle heartbeats, an anchor file outside the trail), then
// tampered with one way per test on a copy: `gatehouse verify` must fail and name what it found.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "core/base64.hpp"
#include "record/reader.hpp"
#include "record/segment.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail_edit.hpp"

namespace gh::test {
namespace {

namespace fs = std::filesystem;
namespace edit = trail_edit;

size_t line_count(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) n += !line.empty();
  return n;
}

bool wait_for_lines(const fs::path& file, size_t lines) {
  for (int i = 0; i < 300; ++i) {
    if (line_count(file) >= lines) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

GatewayOptions trail_options(const std::string& node_id) {
  GatewayOptions o;
  o.node_id = node_id;
  o.shards = 2;
  o.recording_extra =
      "  segment_bytes_max: 4096\n  checkpoint_interval_s: 1\n  anchor_file: anchors.jsonl\n";
  return o;
}

// One recorded trail for the whole suite (and a second node's, for splicing); each test works
// on its own copy.
struct Recorded {
  fs::path dir;      // holds trail/, anchors.jsonl, keyring.json
  fs::path other;    // another node's trail
  std::string log;
};
Recorded* recorded = nullptr;

void record_sessions(Gateway& gw, int sessions) {
  const std::string token = gw.token("alice", {"devs"}, "10m", {"ci-runner", "deploy-agent"});
  for (int s = 0; s < sessions; ++s) {
    const std::string table = "ledger_" + std::to_string(s);
    auto r = gw.psql(token, {"-c", "CREATE TABLE " + table + "(id int, note text)", "-c",
                             // A long statement text, so that even the quieter shard fills segments.
                             "INSERT INTO " + table + " SELECT g, repeat('x', 50) FROM generate_series(1, 20) g -- " +
                                 std::string(1500, 'p'),
                             "-c", "UPDATE " + table + " SET note = 'audited' WHERE id = 3", "-c",
                             "SELECT count(*) FROM " + table, "-c", "SELECT marker_" + std::to_string(s) + "_a FROM " + table,
                             "-c", "DROP TABLE " + table});
    // The SELECT of an unknown column fails on purpose (an error record), so psql exits 1 there.
    if (r.exit_code != 1 && r.exit_code != 0) throw std::runtime_error(r.err + gw.log());
  }
}

class TrailTamper : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    recorded = new Recorded;
    static TempDir keep;
    recorded->dir = keep.path() / "node";
    recorded->other = keep.path() / "other";
    PostgresServer pg;
    {
      Gateway gw(pg, trail_options("test-node"));
      // Idle first: each shard leaves heartbeats before any session.
      if (!wait_for_lines(gw.dir() / "anchors.jsonl", 4)) throw std::runtime_error("no heartbeats");
      record_sessions(gw, 8);
      const size_t now = line_count(gw.dir() / "anchors.jsonl");
      if (!wait_for_lines(gw.dir() / "anchors.jsonl", now + 2)) throw std::runtime_error("no checkpoints");
      if (gw.stop() != 0) throw std::runtime_error("stop: " + gw.log());
      recorded->log = gw.log();
      fs::create_directories(recorded->dir);
      fs::copy(gw.trail_dir(), recorded->dir / "trail", fs::copy_options::recursive);
      fs::copy_file(gw.dir() / "anchors.jsonl", recorded->dir / "anchors.jsonl");
      fs::copy_file(gw.dir() / "keyring.json", recorded->dir / "keyring.json");
    }
    {
      Gateway gw(pg, trail_options("other-node"));
      record_sessions(gw, 3);
      if (gw.stop() != 0) throw std::runtime_error("stop: " + gw.log());
      fs::copy(gw.trail_dir(), recorded->other, fs::copy_options::recursive);
    }
  }
  static void TearDownTestSuite() {
    delete recorded;
    recorded = nullptr;
  }

 protected:
  void SetUp() override {
    fs::copy(recorded->dir, work_.path() / "node", fs::copy_options::recursive);
  }
  fs::path trail() const { return work_.path() / "node" / "trail"; }
  fs::path anchors() const { return work_.path() / "node" / "anchors.jsonl"; }
  fs::path keys() const { return work_.path() / "node" / "keyring.json"; }
  std::string segment(uint16_t shard, uint64_t sequence) const {
    return (trail() / rec::shard_dir_name(shard) / rec::segment_file_name(sequence)).string();
  }
  static std::string name(uint16_t shard, uint64_t sequence) {
    return rec::shard_dir_name(shard) + "/" + rec::segment_file_name(sequence);
  }
  // The shard with the most segments, and how many it has.
  std::pair<uint16_t, uint64_t> busiest() const {
    std::pair<uint16_t, uint64_t> best{0, 0};
    for (uint16_t shard : {0, 1}) {
      auto list = rec::list_segments((trail() / rec::shard_dir_name(shard)).string());
      if (list && list->size() > best.second) best = {shard, list->size()};
    }
    return best;
  }
  RunResult verify(bool with_anchors = true) const {
    std::vector<std::string> args = {gatehouse_binary(), "verify", trail().string(), "--keys",
                                     keys().string()};
    if (with_anchors) args.insert(args.end(), {"--anchors", anchors().string()});
    return run(args, {}, std::chrono::seconds(60));
  }
  // verify must fail; its first line must hold every one of `expected`.
  void expect_finding(const std::vector<std::string>& expected, bool with_anchors = true) const {
    const RunResult r = verify(with_anchors);
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    const std::string first = r.out.substr(0, r.out.find('\n'));
    EXPECT_TRUE(first.starts_with("FAILED: ")) << r.out;
    for (const std::string& text : expected) {
      EXPECT_NE(first.find(text), std::string::npos) << "expected '" << text << "' in: " << r.out;
    }
  }

  TempDir work_;
};

TEST_F(TrailTamper, UntouchedTrailOfSeveralSegmentsAndShardsVerifiesClean) {
  const RunResult r = verify();
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << recorded->log;
  EXPECT_TRUE(r.out.starts_with("ok: 2 shards, ")) << r.out;
  EXPECT_NE(r.out.find("signatures verified"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 2) << "one line: " << r.out;  // "...\n\n" from fmt

  auto json = run({gatehouse_binary(), "verify", trail().string(), "--keys", keys().string(),
                   "--anchors", anchors().string(), "--json"});
  ASSERT_EQ(json.exit_code, 0);
  const auto report = nlohmann::json::parse(json.out);
  EXPECT_EQ(report["shards"], 2);
  EXPECT_GE(report["segments"].get<int>(), 4) << json.out;
  EXPECT_GE(report["sessions"].get<int>(), 8);
  EXPECT_GE(report["heartbeats"].get<int>(), 2) << json.out;
  EXPECT_GT(report["checkpoints"].get<int>(), report["heartbeats"].get<int>());
  EXPECT_EQ(report["seals"], report["segments"]) << "a clean stop seals every segment";
  EXPECT_EQ(report["anchors"].get<size_t>(), line_count(anchors()));
  EXPECT_GE(busiest().second, 3u);
}

TEST_F(TrailTamper, FlippedByteInARecord) {
  const auto [shard, count] = busiest();
  const std::string path = segment(shard, 2);
  auto seg = edit::split(edit::load(path));
  const size_t target = edit::find_record(seg, "INSERT INTO");
  // One letter of the statement text: INSERT becomes iNSERT.
  auto& record = seg.records[target].bytes;
  const std::string_view text(reinterpret_cast<const char*>(record.data()), record.size());
  record[text.find("INSERT INTO")] ^= std::byte{0x20};
  edit::save(path, edit::join(seg));
  expect_finding({name(shard, 2) + " record " + std::to_string(target) + " ", "chain hash mismatch"});
}

TEST_F(TrailTamper, DeletedRecord) {
  const auto [shard, count] = busiest();
  auto seg = edit::split(edit::load(segment(shard, 2)));
  const size_t target = edit::find_record(seg, "UPDATE ");
  seg.records.erase(seg.records.begin() + static_cast<ptrdiff_t>(target));
  edit::save(segment(shard, 2), edit::join(seg));
  expect_finding({name(shard, 2) + " record " + std::to_string(target) + " ", "chain hash mismatch"});
}

TEST_F(TrailTamper, TwoRecordsSwapped) {
  const auto [shard, count] = busiest();
  auto seg = edit::split(edit::load(segment(shard, 2)));
  ASSERT_GE(seg.records.size(), 4u);
  std::swap(seg.records[1], seg.records[2]);
  edit::save(segment(shard, 2), edit::join(seg));
  expect_finding({name(shard, 2) + " record 1 ", "chain hash mismatch"});
}

TEST_F(TrailTamper, DeletedMiddleSegment) {
  const auto [shard, count] = busiest();
  ASSERT_GE(count, 3u);
  fs::remove(segment(shard, 2));
  expect_finding({name(shard, 2), "segment 00000002 missing"});
}

TEST_F(TrailTamper, TwoSegmentsSwapped) {
  const auto [shard, count] = busiest();
  ASSERT_GE(count, 3u);
  fs::rename(segment(shard, 2), segment(shard, 99));
  fs::rename(segment(shard, 3), segment(shard, 2));
  fs::rename(segment(shard, 99), segment(shard, 3));
  expect_finding({name(shard, 2), "header names segment 00000003"});
}

TEST_F(TrailTamper, TruncatedTailIsCaughtAgainstTheLastAnchoredCheckpoint) {
  const auto [shard, count] = busiest();
  const std::string newest = segment(shard, count);
  auto seg = edit::split(edit::load(newest));
  ASSERT_GE(seg.records.size(), 2u);
  // Cut at a record boundary, the seal and the last checkpoint included: the chain still holds.
  size_t keep = seg.records.size() - 1;
  while (keep > 0 && seg.records[keep].type != rec::EventType::kCheckpoint) --keep;
  seg.records.resize(keep);
  edit::save(newest, edit::join(seg));
  const RunResult without = verify(false);
  EXPECT_EQ(without.exit_code, 0) << "the chain alone cannot tell a cut from a crash: " << without.out;
  expect_finding({name(shard, count) + " record ", "anchored", "cut from the end"});
}

TEST_F(TrailTamper, SegmentRewrittenWithRecomputedHashesButNoKey) {
  const auto [shard, count] = busiest();
  const std::string newest = segment(shard, count);
  auto seg = edit::split(edit::load(newest));
  size_t target = 0;
  while (target < seg.records.size() && rec::is_control_type(seg.records[target].type)) ++target;
  ASSERT_LT(target, seg.records.size());
  // Change a recorded value, then recompute every hash and count a forger can.
  auto& bytes = seg.records[target].bytes;
  bytes[bytes.size() - rec::limits::chain_hash_bytes - 1] ^= std::byte{0x01};
  edit::rechain(seg);
  edit::save(newest, edit::join(seg));
  expect_finding({name(shard, count) + " record ", "signature does not verify"});
}

TEST_F(TrailTamper, SegmentFromAnotherNodeSplicedIn) {
  const auto [shard, count] = busiest();
  fs::path source;
  for (uint16_t other_shard : {0, 1}) {
    const fs::path candidate =
        recorded->other / rec::shard_dir_name(other_shard) / rec::segment_file_name(1);
    if (fs::exists(candidate)) source = candidate;
  }
  ASSERT_FALSE(source.empty()) << "the other node recorded nothing";
  auto foreign_bytes = edit::load(source.string());
  // Renumbered to fit in: the forger edits the header's shard and sequence.
  const uint16_t s = shard;
  const uint64_t seq = 2;
  std::memcpy(foreign_bytes.data() + 12, &s, 2);
  std::memcpy(foreign_bytes.data() + 80, &seq, 8);
  edit::save(segment(shard, 2), foreign_bytes);
  expect_finding({name(shard, 2), "written by node 'other-node'"});
}

TEST_F(TrailTamper, DeletedHeartbeat) {
  // The heartbeats of the idle start are in each shard's first segment, before any session.
  auto seg = edit::split(edit::load(segment(0, 1)));
  size_t target = seg.records.size();
  for (size_t i = 0; i + 1 < seg.records.size(); ++i) {
    if (seg.records[i].heartbeat) {
      target = i;
      break;
    }
  }
  ASSERT_LT(target, seg.records.size()) << "no heartbeat followed by another record";
  seg.records.erase(seg.records.begin() + static_cast<ptrdiff_t>(target));
  edit::save(segment(0, 1), edit::join(seg));
  expect_finding({name(0, 1) + " record " + std::to_string(target) + " ", "chain hash mismatch"});
}

}  // namespace
}  // namespace gh::test

namespace gh::test {
namespace {

TEST_F(TrailTamper, ExportedSessionVerifiesAloneAndAnAlteredLineFails) {
  auto listed = run({gatehouse_binary(), "sessions", "--dir", trail().string(), "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  const auto sessions = nlohmann::json::parse(listed.out);
  ASSERT_GE(sessions.size(), 2u);
  const std::string id = sessions[0]["session_id"];
  const fs::path bundle = work_.path() / "bundle.jsonl";
  auto exported = run({gatehouse_binary(), "export", "--dir", trail().string(), "--session", id,
                       "--out", bundle.string()});
  ASSERT_EQ(exported.exit_code, 0) << exported.out << exported.err;
  auto ok = run({gatehouse_binary(), "verify", "--bundle", bundle.string(), "--keys", keys().string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_TRUE(ok.out.starts_with("ok: ")) << ok.out;
  EXPECT_NE(ok.out.find("of 1 sessions"), std::string::npos) << ok.out;

  // One statement letter changed in one line of the bundle.
  std::vector<nlohmann::json> lines;
  {
    std::ifstream in(bundle);
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  }
  size_t target = 0;
  for (; target < lines.size(); ++target) {
    if (lines[target]["kind"] != "record") continue;
    auto raw = base64_decode(lines[target]["bytes"].get<std::string>());
    if (raw && raw->find("INSERT INTO") != std::string::npos) {
      (*raw)[raw->find("INSERT INTO")] = 'i';
      lines[target]["bytes"] = base64_encode(*raw);
      break;
    }
  }
  ASSERT_LT(target, lines.size());
  {
    std::ofstream out(bundle, std::ios::trunc);
    for (const auto& l : lines) out << l.dump() << "\n";
  }
  auto bad = run({gatehouse_binary(), "verify", "--bundle", bundle.string(), "--keys", keys().string()});
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.out.find("line " + std::to_string(target + 1) + ": "), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("chain hash does not match"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace gh::test
