// The gateway killed with SIGKILL while psql sessions run, at random moments, and restarted each
// time: the trail still verifies (chain, seals or signed recovery records, signatures, anchors),
// and each restart opened its first segment with a recovery record for the unsealed one.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <random>
#include <thread>

#include "record/segment.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail_edit.hpp"

namespace gh::test {
namespace {

namespace fs = std::filesystem;

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

}  // namespace
}  // namespace gh::test
