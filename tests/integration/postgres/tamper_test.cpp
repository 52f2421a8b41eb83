// A recorded trail verifies; one flipped byte in the middle of a segment file makes
// `gatehouse verify` fail and name the segment file and the record that was altered.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "record/reader.hpp"
#include "record/segment.hpp"
#include "tests/integration/support/gateway.hpp"

namespace gh::test {
namespace {

TEST(Tamper, OneFlippedByteIsFoundAndNamedByVerify) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string token = gw.token("alice", {"devs"}, "10m", {"ci-runner"});
  auto r = gw.psql(token, {"-c", "CREATE TABLE ledger(id int, amount numeric)", "-c",
                           "INSERT INTO ledger SELECT g, g * 10 FROM generate_series(1, 5) g", "-c",
                           "UPDATE ledger SET amount = 0 WHERE id = 3", "-c", "SELECT sum(amount) FROM ledger",
                           "-c", "DELETE FROM ledger WHERE id > 4"});
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const std::string trail = gw.trail_dir().string();
  auto clean = gw.cli({"verify", trail});
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;
  EXPECT_TRUE(clean.out.starts_with("ok: ")) << clean.out;

  // Where each record of each segment file starts.
  std::map<std::string, std::vector<uint64_t>> offsets;  // relative segment file -> record offsets
  auto walked = rec::for_each_record(trail, [&](const rec::TrailRecord& t) {
    const std::string file = rec::shard_dir_name(t.shard) + "/" + rec::segment_file_name(t.segment_sequence);
    auto& list = offsets[file];
    EXPECT_EQ(t.record.index, list.size());
    list.push_back(t.record.offset);
    return true;
  });
  ASSERT_TRUE(walked) << walked.error().message;
  std::string target;
  for (const auto& [file, list] : offsets) {
    if (target.empty() || list.size() > offsets[target].size()) target = file;
  }
  ASSERT_FALSE(target.empty());
  const auto& records = offsets[target];
  ASSERT_GE(records.size(), 8u) << "the session's statements should fill a segment";

  const auto path = gw.trail_dir() / target;
  std::string bytes = read_file(path);
  const uint64_t middle = bytes.size() / 2;
  ASSERT_GE(middle, records.front()) << "the middle of the file must fall inside a record";
  size_t index = 0;
  while (index + 1 < records.size() && records[index + 1] <= middle) ++index;
  bytes[middle] = char(bytes[middle] ^ 0xff);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
  }

  auto broken = gw.cli({"verify", trail});
  EXPECT_NE(broken.exit_code, 0) << broken.out;
  const std::string named = target + " record " + std::to_string(index) + " ";
  EXPECT_NE(broken.out.find(named), std::string::npos) << "expected '" << named << "' in: " << broken.out;
  EXPECT_TRUE(broken.out.starts_with("FAILED: ")) << broken.out;

  auto json = gw.cli({"verify", trail, "--json"});
  EXPECT_NE(json.exit_code, 0);
  const auto report = nlohmann::json::parse(json.out);
  EXPECT_FALSE(report["ok"].get<bool>());
  EXPECT_EQ(report["finding"]["segment_file"], target) << json.out;
  EXPECT_EQ(report["finding"]["record_index"], index) << json.out;
  EXPECT_TRUE(report["finding"]["tampering"].get<bool>()) << json.out;
}

}  // namespace
}  // namespace gh::test
