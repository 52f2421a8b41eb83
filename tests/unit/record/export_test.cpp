// Export bundles: chosen sessions' records with inclusion proofs and signed roots, checked on
// their own; an altered line, a proof from another segment or an unknown key fails the check.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <set>
#include <sstream>

#include "core/base64.hpp"
#include "record/export.hpp"
#include "record/flusher.hpp"
#include "record_test_support.hpp"

namespace gh::rec {
namespace {

using testing::TempDir;

struct Exported {
  TempDir root;
  std::string dir = root / "trail";
  std::string bundle = root / "bundle.jsonl";
  Keyring keys;

  Exported() {
    EXPECT_TRUE(keys.add({testing::test_key()->id(), testing::test_key()->public_key(), "test-node", ""}));
    FlusherOptions options = testing::test_options(dir, 2);
    options.segment_bytes_max = limits::segment_bytes_min;  // several segments per shard
    auto flusher = Flusher::create(options);
    EXPECT_TRUE(flusher.has_value());
    EXPECT_TRUE((*flusher)->start().has_value());
    // Sessions 1 and 2 interleave on shard 0; session 3 is on shard 1.
    for (uint32_t i = 0; i < 60; ++i) {
      EXPECT_TRUE(testing::push_blocking((*flusher)->ring(0), testing::statement(1, i, 120)));
      EXPECT_TRUE(testing::push_blocking((*flusher)->ring(0), secret(2, i)));
      EXPECT_TRUE(testing::push_blocking((*flusher)->ring(1), testing::statement(3, i, 120)));
    }
    EXPECT_TRUE((*flusher)->stop().has_value());
  }

  static StoredEvent secret(uint64_t session, uint32_t i) {
    auto e = testing::statement(session, i, 20);
    e.fields[1].value = "SELECT 'other-session-secret-" + std::to_string(i) + "'";
    return e;
  }

  std::vector<nlohmann::json> lines() const {
    std::vector<nlohmann::json> out;
    std::istringstream in(testing::read_text(bundle));
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }
  void write(const std::vector<nlohmann::json>& lines) const {
    std::string text;
    for (const auto& l : lines) text += l.dump() + "\n";
    testing::write_text(bundle, text);
  }
  BundleReport check(const Keyring* ring = nullptr) const {
    auto report = verify_bundle(bundle, ring ? *ring : keys);
    EXPECT_TRUE(report.has_value());
    return report ? *report : BundleReport{};
  }
};

TEST(ExportBundle, HoldsOnlyTheChosenSessionAndVerifiesOnItsOwn) {
  Exported e;
  auto summary = export_bundle(e.dir, {1}, e.bundle);
  ASSERT_TRUE(summary.has_value()) << summary.error().message;
  EXPECT_EQ(summary->records, 60u);
  EXPECT_EQ(summary->sessions, 1u);
  EXPECT_GE(summary->segments, 2u) << "the session spans several sealed segments";
  EXPECT_EQ(summary->uncovered, 0u);
  for (const auto& line : e.lines()) {
    if (line["kind"] != "record") continue;
    auto raw = base64_decode(line["bytes"].get<std::string>());
    ASSERT_TRUE(raw.has_value());
    EXPECT_EQ(raw->find("other-session-secret"), std::string::npos) << "another session leaked";
  }
  const BundleReport report = e.check();
  EXPECT_TRUE(report.ok()) << report.what;
  EXPECT_EQ(report.records, 60u);
  EXPECT_EQ(report.sessions, 1u);

  auto both = export_bundle(e.dir, {1, 3}, e.bundle);
  ASSERT_TRUE(both.has_value());
  EXPECT_EQ(both->sessions, 2u);
  EXPECT_TRUE(e.check().ok());
}

TEST(ExportBundle, AnAlteredLineFails) {
  Exported e;
  ASSERT_TRUE(export_bundle(e.dir, {1}, e.bundle).has_value());
  auto lines = e.lines();
  size_t target = 0;
  while (lines[target]["kind"] != "record") ++target;
  auto raw = *base64_decode(lines[target]["bytes"].get<std::string>());
  raw[raw.find("SELECT") + 1] = 'e';  // one letter of the statement
  lines[target]["bytes"] = base64_encode(raw);
  e.write(lines);
  BundleReport report = e.check();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.failed_line, target + 1);
  EXPECT_NE(report.what.find("chain hash does not match"), std::string::npos) << report.what;

  // The same bytes claimed at another index: the proof no longer leads to the signed root.
  ASSERT_TRUE(export_bundle(e.dir, {1}, e.bundle).has_value());
  lines = e.lines();
  lines[target]["index"] = lines[target]["index"].get<uint64_t>() + 1;
  e.write(lines);
  report = e.check();
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.what.find("not in the signed Merkle root"), std::string::npos) << report.what;
}

TEST(ExportBundle, AProofFromAnotherSegmentFails) {
  Exported e;
  ASSERT_TRUE(export_bundle(e.dir, {1}, e.bundle).has_value());
  auto lines = e.lines();
  // Move a record line (with its proof) under another segment's signed root.
  size_t from = lines.size(), to_segment = 0;
  uint64_t first_segment = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i]["kind"] == "segment") {
      if (first_segment == 0) first_segment = lines[i]["segment"];
      else if (to_segment == 0) to_segment = lines[i]["segment"];
    } else if (from == lines.size()) {
      from = i;
    }
  }
  ASSERT_NE(to_segment, 0u);
  lines[from]["segment"] = to_segment;
  lines.push_back(lines[from]);
  lines.erase(lines.begin() + static_cast<ptrdiff_t>(from));
  e.write(lines);
  const BundleReport report = e.check();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.failed_line, lines.size());
  EXPECT_NE(report.what.find("not in the signed Merkle root"), std::string::npos) << report.what;
}

TEST(ExportBundle, RootsMustBeSignedByAKnownKeyOfTheNode) {
  Exported e;
  ASSERT_TRUE(export_bundle(e.dir, {3}, e.bundle).has_value());
  const Keyring empty;
  BundleReport report = e.check(&empty);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.failed_line, 1u);
  EXPECT_NE(report.what.find("not in the keyring"), std::string::npos) << report.what;

  auto lines = e.lines();
  auto root = *base64_decode(lines[0]["root"].get<std::string>());
  root[root.size() - 40] ^= 1;  // inside the signature
  lines[0]["root"] = base64_encode(root);
  e.write(lines);
  report = e.check();
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.what.find("signature does not verify"), std::string::npos) << report.what;

  testing::write_text(e.bundle, "");
  EXPECT_FALSE(e.check().ok()) << "an empty bundle proves nothing";
}

}  // namespace
}  // namespace gh::rec
