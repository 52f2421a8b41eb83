// The gateway killed with SIGKILL under load (psql sessions; pgbench), at random moments, and
// restarted each time: the trail still verifies (chain, seals or signed recovery records,
// signatures, anchors), each restart opened its first segment with a recovery record for the
// unsealed one, and in strict mode no committed statement is missing from the trail.
#include <gtest/gtest.h>
#include <signal.h>

#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "record/control.hpp"
#include "record/segment.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail_edit.hpp"

namespace gh::test {
namespace {

namespace fs = std::filesystem;

// Appends the first half of each shard's last record to its newest segment when that segment has
// no seal and ends cleanly; returns how many segments it tore.
int tear_newest_segments(const fs::path& trail) {
  int tears = 0;
  for (uint16_t shard : {0, 1}) {
    const fs::path shard_dir = trail / rec::shard_dir_name(shard);
    auto sequences = rec::list_segments(shard_dir.string());
    if (!sequences || sequences->empty()) continue;
    const std::string path = (shard_dir / rec::segment_file_name(sequences->back())).string();
    auto bytes = trail_edit::load(path);
    trail_edit::Segment segment;
    try {
      segment = trail_edit::split(bytes);
    } catch (const std::exception&) {
      continue;  // torn already
    }
    if (segment.records.empty() || segment.records.back().type == rec::EventType::kSeal) continue;
    const auto& last = segment.records.back().bytes;
    bytes.insert(bytes.end(), last.begin(), last.begin() + last.size() / 2);
    trail_edit::save(path, bytes);
    ++tears;
  }
  return tears;
}

bool wait_until_ready(Process& gateway) {
  for (int i = 0; i < 400 && gateway.running(); ++i) {
    if (gateway.err().find("gatehouse: ready:") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

TEST(TrailCrash, SigkillAtRandomMomentsLeavesATrailThatVerifies) {
  PostgresServer pg;
  GatewayOptions options;
  options.shards = 2;
  options.recording_extra =
      "  segment_bytes_max: 8192\n  checkpoint_interval_s: 1\n  anchor_file: anchors.jsonl\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"}, "10m", {"ci-runner"});
  std::string script;
  for (int i = 0; i < 400; ++i) script += "SELECT " + std::to_string(i) + ", pg_sleep(0.005);\n";
  write_file(gw.dir() / "load.sql", script);

  const unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::unique_ptr<Process> restarted;
  constexpr int kCrashes = 3;
  for (int crash = 0; crash < kCrashes; ++crash) {
    // Two psql sessions keep the gateway busy while it is killed.
    std::vector<std::unique_ptr<Process>> clients;
    for (int c = 0; c < 2; ++c) {
      clients.push_back(std::make_unique<Process>(
          std::vector<std::string>{"psql", "-X", "-q", "-d", gw.conninfo(), "-f",
                                   (gw.dir() / "load.sql").string()},
          std::map<std::string, std::string>{{"PGPASSWORD", token}},
          gw.dir() / ("client-" + std::to_string(crash) + "-" + std::to_string(c))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + random() % 900));
    Process& victim = restarted ? *restarted : gw.process();
    victim.signal(SIGKILL);
    victim.wait(std::chrono::seconds(10));
    for (auto& c : clients) c->stop(std::chrono::seconds(5));
    restarted = std::make_unique<Process>(
        std::vector<std::string>{gatehouse_binary(), "serve", "-c", gw.config_file().string()},
        std::map<std::string, std::string>{}, gw.dir() / ("gatehouse-" + std::to_string(crash)));
    ASSERT_TRUE(wait_for_port(gw.port(), std::chrono::seconds(20))) << restarted->err();
  }
  auto r = gw.psql(token, {"-c", "SELECT 'after the crashes'"});
  ASSERT_EQ(r.exit_code, 0) << r.err << restarted->err();
  ASSERT_EQ(restarted->stop(std::chrono::seconds(20)), 0) << restarted->err();

  const auto verify = run({gatehouse_binary(), "verify", gw.trail_dir().string(), "--keys",
                           (gw.dir() / "keyring.json").string(), "--anchors",
                           (gw.dir() / "anchors.jsonl").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(verify.out.starts_with("ok: 2 shards")) << verify.out;
  EXPECT_EQ(verify.out.find("not sealed"), std::string::npos)
      << "after a clean stop every segment is sealed or followed by a recovery record: " << verify.out;

  // A crash leaves a shard's newest segment unsealed (when it had one open); the next start
  // opens that shard's next segment with a recovery record.
  int recoveries = 0;
  for (uint16_t shard : {0, 1}) {
    auto sequences = rec::list_segments((gw.trail_dir() / rec::shard_dir_name(shard)).string());
    ASSERT_TRUE(sequences.has_value());
    for (uint64_t sequence : *sequences) {
      auto seg = trail_edit::split(trail_edit::load(
          (gw.trail_dir() / rec::shard_dir_name(shard) / rec::segment_file_name(sequence)).string()));
      if (!seg.records.empty() && seg.records.front().type == rec::EventType::kRecovery) ++recoveries;
    }
  }
  EXPECT_GE(recoveries, 1) << verify.out;
}

// pgbench (simple protocol, reads and writes) through the gateway, killed with SIGKILL 9 times
// at random moments 50-400 ms into the load and restarted on the same trail, alternating strict
// and interval durability. The trail verifies; every segment left unsealed by a kill is followed
// by a recovery record that states exactly its intact end and the torn bytes cut after it; and
// every row that pgbench committed while strict was on has its INSERT in the trail.
TEST(TrailCrash, PgbenchUnderSigkillKeepsEveryCommittedStrictStatementInAVerifiedTrail) {
  PostgresServer pg;
  ASSERT_EQ(pg.psql("CREATE TABLE crash_log (id bigserial, strict int, tag bigint, client int);"
                    "GRANT ALL ON crash_log, crash_log_id_seq TO PUBLIC")
                .exit_code,
            0);
  GatewayOptions options;
  options.shards = 2;
  options.recording_extra =
      "  durability: strict\n  segment_bytes_max: 16384\n  checkpoint_interval_s: 1\n"
      "  anchor_file: anchors.jsonl\n";
  Gateway gw(pg, options);
  const std::string token = gw.token("bench-bot", {"devs"}, "10m", {"ci-runner"});
  // Whether strict is on goes in as a pgbench variable (-D), so the table says which rows it
  // covered.
  write_file(gw.dir() / "crash.sql",
             "\\set tag random(1, 1000000000000)\n"
             "INSERT INTO crash_log (strict, tag, client) VALUES (:strict, :tag, :client_id);\n"
             "SELECT count(*) FROM crash_log WHERE client = :client_id;\n");
  const std::string strict_config = read_file(gw.config_file());
  std::string interval_config = strict_config;
  const std::string strict_line = "durability: strict";
  interval_config.replace(interval_config.find(strict_line), strict_line.size(),
                          "durability: interval");

  const unsigned seed = std::random_device{}();
  std::mt19937 random(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::unique_ptr<Process> restarted;
  constexpr int kCrashes = 9;
  int injected_tears = 0;
  const auto started = std::chrono::steady_clock::now();
  for (int crash = 0; crash < kCrashes; ++crash) {
    // The gateway running now was started with strict on even crashes (the first included).
    const std::string strict = crash % 2 == 0 ? "1" : "0";
    Process bench(
        {"pgbench", "-n", "-M", "simple", "-c", "2", "-j", "2", "-T", "20", "-D", "strict=" + strict,
         "-f", (gw.dir() / "crash.sql").string(), "-h", "127.0.0.1", "-p",
         std::to_string(gw.port()), "-U", "bench-bot", "appdb"},
        {{"PGPASSWORD", token}, {"PGSSLMODE", "disable"}, {"PGCONNECT_TIMEOUT", "10"}},
        gw.dir() / ("pgbench-" + std::to_string(crash)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + random() % 351));
    Process& victim = restarted ? *restarted : gw.process();
    victim.signal(SIGKILL);
    victim.wait(std::chrono::seconds(10));
    bench.stop(std::chrono::seconds(5));  // its connections are gone; it may still be retrying
    // A kill rarely lands inside a write(2): once, leave what it would, the first half of a
    // record after the newest segment's end (when that segment is open and ends cleanly).
    if (crash == kCrashes / 2) injected_tears = tear_newest_segments(gw.trail_dir());
    write_file(gw.config_file(), crash % 2 == 0 ? interval_config : strict_config);
    restarted = std::make_unique<Process>(
        std::vector<std::string>{gatehouse_binary(), "serve", "-c", gw.config_file().string()},
        std::map<std::string, std::string>{}, gw.dir() / ("gatehouse-" + std::to_string(crash)));
    // Ready, not just listening: its signal handlers are in place for the final stop.
    ASSERT_TRUE(wait_until_ready(*restarted)) << restarted->err();
  }
  std::cerr << "[          ] " << kCrashes << " kills in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                    started)
                   .count()
            << " ms\n";
  ASSERT_EQ(restarted->stop(std::chrono::seconds(20)), 0) << restarted->err();

  const auto verify = run({gatehouse_binary(), "verify", gw.trail_dir().string(), "--keys",
                           (gw.dir() / "keyring.json").string(), "--anchors",
                           (gw.dir() / "anchors.jsonl").string()});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  EXPECT_TRUE(verify.out.starts_with("ok: 2 shards")) << verify.out;

  // Every unsealed segment (a kill) is followed by a recovery record matching what it holds:
  // its intact records end at end_offset, and whatever a kill tore after them is counted as cut.
  int recoveries = 0, torn = 0;
  std::set<std::string> recorded;  // statement texts in the trail
  for (uint16_t shard : {0, 1}) {
    const fs::path shard_dir = gw.trail_dir() / rec::shard_dir_name(shard);
    auto sequences = rec::list_segments(shard_dir.string());
    ASSERT_TRUE(sequences.has_value());
    std::optional<rec::SegmentScan> unsealed;  // the previous segment, when it had no seal
    uint64_t unsealed_size = 0;
    for (uint64_t sequence : *sequences) {
      const auto bytes = trail_edit::load((shard_dir / rec::segment_file_name(sequence)).string());
      auto header = rec::parse_segment_header(bytes);
      ASSERT_TRUE(header.has_value()) << header.error().message;
      bool first = true, sealed = false;
      std::optional<rec::ControlRecord> recovery;
      const rec::SegmentScan scan = rec::scan_segment_records(
          bytes, header->previous_hash, true, [&](const rec::ScannedRecord& r) {
            if (first && r.view.type == rec::EventType::kRecovery) {
              auto control = rec::decode_control(r.view);
              if (control) recovery = *control;
            }
            first = false;
            sealed = r.view.type == rec::EventType::kSeal;
            if (r.view.type == rec::EventType::kStatement) {
              recorded.insert(std::string(r.view.first(rec::FieldTag::kText)));
            }
            return true;
          });
      SCOPED_TRACE(fmt::format("shard {} segment {}", shard, sequence));
      if (unsealed) {
        ASSERT_TRUE(recovery.has_value()) << "an unsealed segment must be followed by a recovery";
        ++recoveries;
        EXPECT_EQ(recovery->records, unsealed->records);
        EXPECT_EQ(recovery->end_offset, unsealed->end_offset);
        EXPECT_EQ(recovery->cut_bytes, unsealed_size - unsealed->end_offset);
        if (unsealed->end == rec::ScanEnd::kTornTail) {
          ++torn;
          EXPECT_GT(recovery->cut_bytes, 0u) << "a torn record is cut off, never taken as valid";
        }
      } else {
        EXPECT_FALSE(recovery.has_value()) << "a recovery record only after an unsealed segment";
      }
      ASSERT_NE(scan.end, rec::ScanEnd::kDamaged) << scan.reason;
      unsealed.reset();
      if (!sealed) {
        unsealed = scan;
        unsealed_size = bytes.size();
      }
    }
    EXPECT_FALSE(unsealed.has_value()) << "after the clean stop the newest segment is sealed";
  }
  std::cerr << "[          ] " << recoveries << " recovery records, " << torn << " torn tails ("
            << injected_tears << " made), "
            << recorded.size() << " statements recorded\n";
  EXPECT_GE(recoveries, kCrashes / 2) << "most kills find a segment open";
  EXPECT_GE(torn, injected_tears);

  // Strict: nothing was forwarded unrecorded. Every row committed in a strict round has its
  // INSERT (the tag makes each one unique) in the trail.
  auto rows = pg.psql("SELECT tag, client FROM crash_log WHERE strict = 1 ORDER BY id");
  ASSERT_EQ(rows.exit_code, 0) << rows.err;
  std::istringstream lines(rows.out);
  std::string line;
  int committed = 0, missing = 0;
  while (std::getline(lines, line)) {
    const auto bar = line.find('|');
    ASSERT_NE(bar, std::string::npos) << line;
    const std::string text = "INSERT INTO crash_log (strict, tag, client) VALUES (1, " +
                             line.substr(0, bar) + ", " + line.substr(bar + 1) + ");";
    ++committed;
    if (!recorded.contains(text)) {
      ++missing;
      ADD_FAILURE() << "committed but not in the trail: " << text;
    }
  }
  std::cerr << "[          ] " << committed << " strict inserts committed, " << missing
            << " missing from the trail\n";
  EXPECT_GT(committed, 0) << "the strict rounds ran statements";
}

}  // namespace
}  // namespace gh::test
