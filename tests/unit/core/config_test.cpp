#include "core/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace gh::config {
namespace {

constexpr const char* kValid = R"(
node_id: gw-1
engine:
  shards: 2
listeners:
  - name: pg
    address: 127.0.0.1:6432
identity:
  builtin:
    key_file: keys/issuer.key
    jwks_file: keys/jwks.json
connections:
  - name: appdb
    allow_groups: [devs, ops]
    upstream:
      host: 127.0.0.1
      port: 5433
      database: app
      user: app
      password_env: GH_TEST_PW
      tls: require
recording:
  dir: trail
)";

Result<Config> parse_text(const std::string& text) { return parse(text, "test.yaml", "/etc/gh"); }

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(Config, ParsesAValidConfigWithDefaultsAndRelativePaths) {
  setenv("GH_TEST_PW", "s3cret", 1);
  auto c = parse_text(kValid);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->node_id, "gw-1");
  EXPECT_EQ(c->engine.shards, 2u);
  EXPECT_EQ(c->engine.buffer_count, 2048u);
  ASSERT_EQ(c->listeners.size(), 1u);
  EXPECT_TRUE(c->listeners[0].address.loopback);
  EXPECT_EQ(c->identity.issuers.size(), 1u);
  EXPECT_EQ(c->identity.issuers[0].jwks_file, "/etc/gh/keys/jwks.json");
  EXPECT_EQ(c->identity.issuers[0].algorithms, std::vector<std::string>{"EdDSA"});
  const ConnectionConfig* appdb = c->find_connection("appdb");
  ASSERT_NE(appdb, nullptr);
  EXPECT_EQ(appdb->upstream.password, "s3cret");
  EXPECT_EQ(appdb->upstream.port, 5433);
  EXPECT_EQ(appdb->upstream.tls, UpstreamTls::kRequire);
  EXPECT_EQ(c->recording.dir, "/etc/gh/trail");
  EXPECT_TRUE(groups_allowed(*appdb, {"x", "ops"}));
  EXPECT_FALSE(groups_allowed(*appdb, {"x"}));
  EXPECT_EQ(c->find_connection("other"), nullptr);
}

// Each broken config fails with the file, the key path and the reason.
TEST(Config, ErrorsNameFileKeyAndReason) {
  setenv("GH_TEST_PW", "s3cret", 1);
  const struct {
    std::string from, to, expected;
  } cases[] = {
      {"  shards: 2", "  shards: many", "test.yaml: engine.shards: expected an integer"},
      {"  shards: 2", "  shard: 2", "test.yaml: engine.shard: unknown key"},
      {"port: 5433", "port: 70000", "connections[0].upstream.port: must be in 1..65535"},
      {"tls: require", "tls: maybe", "connections[0].upstream.tls: expected disable, require or verify-full"},
      {"tls: require", "tls: verify-full", "connections[0].upstream.ca_file: required with tls: verify-full"},
      {"password_env: GH_TEST_PW", "password_env: GH_NOT_SET_ANYWHERE", "$GH_NOT_SET_ANYWHERE is not set"},
      {"address: 127.0.0.1:6432", "address: 127.0.0.1", "listeners[0].address: expected host:port"},
      {"allow_groups: [devs, ops]", "allow_groups: []", "connections[0].allow_groups: must name at least one group"},
      {"recording:\n  dir: trail", "recording:\n  flush_interval_ms: 5", "recording.dir: required"},
      {"      user: app\n", "", "connections[0].upstream.user: required"},
      {"listeners:", "listeners: [\n", "test.yaml: line"},
  };
  for (const auto& c : cases) {
    auto r = parse_text(replaced(kValid, c.from, c.to));
    ASSERT_FALSE(r) << "accepted: " << c.to;
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos)
        << "for " << c.to << ": " << r.error().message;
  }
}

TEST(Config, DuplicateConnectionNamesAreRefused) {
  setenv("GH_TEST_PW", "s3cret", 1);
  std::string text = kValid;
  const size_t at = text.find("  - name: appdb");
  const size_t end = text.find("recording:");
  text.insert(end, text.substr(at, end - at));
  auto r = parse_text(text);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("duplicate name 'appdb'"), std::string::npos) << r.error().message;
}

TEST(Config, ExampleConfigurationParses) {
  std::ifstream in(std::string(GH_SOURCE_DIR) + "/examples/gatehouse.yaml");
  ASSERT_TRUE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string pw_file = testing::TempDir() + "/orders.pw";
  std::ofstream(pw_file) << "pw\n";
  // The example's hosts do not resolve here; everything else is taken as written.
  std::string text = replaced(ss.str(), "host: orders-db.internal", "host: 127.0.0.1");
  text = replaced(text, "/etc/gatehouse/secrets/orders.pw", pw_file);
  auto c = parse(text, "examples/gatehouse.yaml", "/etc/gatehouse");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->identity.issuers.size(), 2u);
  ASSERT_NE(c->find_connection("orders-prod"), nullptr);
  EXPECT_EQ(c->find_connection("orders-prod")->upstream.tls, UpstreamTls::kVerifyFull);
  EXPECT_TRUE(c->listeners[0].tls.has_value());
  EXPECT_FALSE(c->listeners[0].address.loopback);
}

}  // namespace
}  // namespace gh::config
