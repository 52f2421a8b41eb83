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
  EXPECT_EQ(c->recording.durability, Durability::kInterval);
  auto strict = parse_text(replaced(kValid, "recording:\n  dir: trail", "recording:\n  dir: trail\n  durability: strict"));
  ASSERT_TRUE(strict) << strict.error().message;
  EXPECT_EQ(strict->recording.durability, Durability::kStrict);
  EXPECT_EQ(c->recording.catalog_file, "/etc/gh/trail/catalog.sqlite");  // beside the segments
  auto moved = parse_text(replaced(kValid, "  dir: trail\n", "  dir: trail\n  catalog_file: index/sessions.db\n"));
  ASSERT_TRUE(moved) << moved.error().message;
  EXPECT_EQ(moved->recording.catalog_file, "/etc/gh/index/sessions.db");
  EXPECT_EQ(c->recording.statement_result_bytes_max, 65536u);
  auto budget = parse_text(replaced(kValid, "recording:\n  dir: trail", "recording:\n  dir: trail\n  statement_result_bytes_max: 0"));
  ASSERT_TRUE(budget) << budget.error().message;
  EXPECT_EQ(budget->recording.statement_result_bytes_max, 0u);
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
      {"recording:\n  dir: trail", "recording:\n  dir: trail\n  durability: fsync",
       "recording.durability: must be interval or strict"},
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

constexpr const char* kGuarded = R"(
    deny:
      - name: no-drop
        statements: [drop, truncate]
        tables: [public.users, '"Audit"']
      - name: no-sleep
        regex: 'pg_sleep'
    approve:
      - name: review-alter
        statements: [alter]
        approvers: [dba]
        approvals: 2
        timeout_s: 600
    mask:
      - name: cards
        detect: card
        style: keep_last
        keep: 4
      - name: ssn-columns
        columns: [ssn]
    allow_function_call: true
)";

// Approve rules need the admin API, where their reviews are decided.
constexpr const char* kAdmin = "admin:\n  address: 127.0.0.1:7443\n  admin_groups: [gh-admins]\n";

std::string guarded(const std::string& rules = kGuarded) {
  return replaced(kValid, "      tls: require\n", std::string("      tls: require\n") + (rules.c_str() + 1)) +
         kAdmin;
}

TEST(Config, ReadsGuardrailRules) {
  setenv("GH_TEST_PW", "s3cret", 1);
  auto c = parse_text(guarded());
  ASSERT_TRUE(c) << c.error().message;
  const Guardrails& g = c->connections[0].guardrails;
  ASSERT_EQ(g.deny.size(), 2u);
  EXPECT_EQ(g.deny[0].name, "no-drop");
  EXPECT_EQ(g.deny[0].statements, (std::vector<StatementClass>{StatementClass::kDrop, StatementClass::kTruncate}));
  EXPECT_EQ(g.deny[0].tables, (std::vector<std::string>{"public.users", "Audit"}));
  EXPECT_EQ(g.deny[0].path, "connections[0].deny[0]");
  EXPECT_EQ(g.deny[1].regex, "pg_sleep");
  ASSERT_EQ(g.approve.size(), 1u);
  EXPECT_EQ(g.approve[0].approver_groups, std::vector<std::string>{"dba"});
  EXPECT_EQ(g.approve[0].approvals_min, 2u);
  ASSERT_EQ(g.mask.size(), 2u);
  EXPECT_EQ(g.mask[0].style, MaskStyle::kKeepLast);
  EXPECT_EQ(g.mask[1].columns, std::vector<std::string>{"ssn"});
  EXPECT_TRUE(g.allow_function_call);
  EXPECT_TRUE(g.has_sql_rules());
}

TEST(Config, ApproveRulesNeedTheAdminApiAndReadTheReviewWebhook) {
  setenv("GH_TEST_PW", "s3cret", 1);
  const std::string rules = guarded();
  const std::string without_admin = rules.substr(0, rules.size() - std::string(kAdmin).size());
  auto refused = parse_text(without_admin);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("test.yaml: connections[0].approve: approval reviews are "
                                         "decided on the admin API"),
            std::string::npos)
      << refused.error().message;
  auto hooked = parse_text(rules + "  reviews:\n    webhook_url: http://127.0.0.1:9/hook\n");
  ASSERT_TRUE(hooked) << hooked.error().message;
  EXPECT_EQ(hooked->admin->review_webhook_url, "http://127.0.0.1:9/hook");
  auto bad = parse_text(rules + "  reviews:\n    webhook_url: ftp://x\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("admin.reviews.webhook_url: expected an http"), std::string::npos);
}

// A broken rule fails the load with the file, the rule's path and name, and the reason.
TEST(Config, InvalidRulesNameFileRuleAndReason) {
  setenv("GH_TEST_PW", "s3cret", 1);
  const struct {
    std::string from, to, expected;
  } cases[] = {
      {"statements: [drop, truncate]", "statements: [drop, trunc]",
       "test.yaml: connections[0].deny[0].statements (rule 'no-drop'): unknown statement class 'trunc'"},
      {"        regex: 'pg_sleep'", "        statements: [do]\n        regex: 'x'",
       "connections[0].deny[1] (rule 'no-sleep'): give statements (classes) or regex, exactly one"},
      {"statements: [drop, truncate]", "statements: [do]",
       "connections[0].deny[0] (rule 'no-drop'): statement class 'do' names no tables"},
      {"- name: no-sleep", "- name: no-drop", "connections[0].deny[1].name (rule 'no-drop'): duplicate rule name"},
      {"        approvers: [dba]\n", "", "connections[0].approve[0].approvers (rule 'review-alter'): required"},
      {"style: keep_last", "style: sparkle", "connections[0].mask[0].style (rule 'cards'): expected fixed, keep_last or hash"},
      {"columns: [ssn]", "columns: [ssn]\n        style: hash\n        hash_key_env: GH_NOT_SET_ANYWHERE",
       "connections[0].mask[1].hash_key_env (rule 'ssn-columns'): $GH_NOT_SET_ANYWHERE is not set"},
      {"detect: card", "detect: card\n        colour: red", "connections[0].mask[0].colour (rule 'cards'): unknown key"},
      {"allow_function_call: true", "allow_function_call: maybe", "connections[0].allow_function_call: expected true or false"},
  };
  for (const auto& c : cases) {
    auto r = parse_text(replaced(guarded(), c.from, c.to));
    ASSERT_FALSE(r) << "accepted: " << c.to;
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << "for " << c.to << ": " << r.error().message;
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
  setenv("GATEHOUSE_MASK_KEY", "an example key of 32 bytes......", 1);
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
  const Guardrails& g = c->find_connection("orders-prod")->guardrails;
  EXPECT_EQ(g.deny.size(), 5u);
  EXPECT_EQ(g.approve.size(), 1u);
  EXPECT_EQ(g.mask.size(), 5u);
  const auto& rules = c->find_connection("orders-prod")->require_claims;
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].claim, "repository_id");
  EXPECT_EQ(rules[0].values, std::vector<std::string>{"892341"});
  ASSERT_TRUE(c->admin.has_value());
  EXPECT_EQ(c->admin->address.text, "127.0.0.1:7443");
  EXPECT_EQ(c->admin->exchange_ttl_default_s, 900);
  ASSERT_EQ(c->admin->service_actors.size(), 1u);
  EXPECT_EQ(c->admin->service_actors[0].name, "deploy-svc");
  EXPECT_EQ(c->identity.revocations_file, "/var/lib/gatehouse/revocations.jsonl");
  // The built-in issuer records the provenance claims of every issuer, since token exchange
  // carries them into the tokens it mints.
  EXPECT_EQ(c->identity.issuers[0].provenance_claims, c->identity.issuers[1].provenance_claims);
  EXPECT_EQ(c->identity.issuers[1].provenance_claims.size(), 9u);
  const ConnectionConfig* ssh = c->find_connection("web-prod");
  ASSERT_NE(ssh, nullptr);
  EXPECT_EQ(ssh->protocol, "ssh");
  EXPECT_EQ(c->listeners[1].protocol, "ssh");
}

TEST(Config, AdminProvenanceAndClaimRules) {
  setenv("GH_TEST_PW", "s3cret", 1);
  const std::string admin = "admin:\n  address: 127.0.0.1:7443\n  admin_groups: [ops]\n";
  auto c = parse_text(std::string(kValid) + admin);
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_TRUE(c->admin.has_value());
  EXPECT_FALSE(c->admin->tls.has_value());
  EXPECT_EQ(c->identity.revocations_file, "/etc/gh/trail/revocations.jsonl");  // by default
  const struct {
    std::string text, expected;
  } cases[] = {
      {std::string(kValid) + "admin:\n  address: 10.1.2.3:7443\n  admin_groups: [ops]\n",
       "admin.tls: required off loopback"},
      {std::string(kValid) + "admin:\n  address: 127.0.0.1:7443\n", "admin.admin_groups: required"},
      {std::string(kValid) + admin + "  token_exchange:\n    ttl_default: 3d\n",
       "admin.token_exchange.ttl_default: expected a duration"},
      {replaced(kValid, "    upstream:", "    require_claims:\n      ref: refs/heads/main\n    upstream:"),
       "connections[0].require_claims.ref: no issuer records this claim"},
      {replaced(kValid, "    upstream:", "    forwarding:\n      local: true\n    upstream:"),
       "connections[0].forwarding: only for protocol ssh"},
  };
  for (const auto& k : cases) {
    auto r = parse_text(k.text);
    ASSERT_FALSE(r) << "accepted: " << k.text;
    EXPECT_NE(r.error().message.find(k.expected), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace gh::config

namespace gh::config {
namespace {

constexpr const char* kSsh = R"(
listeners:
  - name: ssh
    protocol: ssh
    address: 127.0.0.1:2222
    ssh:
      host_key_file: keys/ssh_host_ed25519_key
identity:
  builtin:
    key_file: keys/issuer.key
    jwks_file: keys/jwks.json
connections:
  - name: web-prod
    protocol: ssh
    allow_groups: [ops]
    upstream:
      host: 127.0.0.1
      user: deploy
      private_key_file: keys/web-prod
      host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1bqMuvXmFYDQ2jDhKYOqQ5Tr3ymCa5b6b8OI0vvqWs
    deny:
      - name: no-rm
        regex: '\brm\b'
    mask:
      - name: api-key
        regex: 'sk_live_[A-Za-z0-9]{8,}'
recording:
  dir: trail
)";

TEST(ConfigSsh, ReadsSshListenersAndConnections) {
  auto c = parse(kSsh, "test.yaml", "/etc/gh");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->listeners[0].protocol, "ssh");
  EXPECT_EQ(c->listeners[0].ssh_host_key_file, "/etc/gh/keys/ssh_host_ed25519_key");
  const ConnectionConfig* web = c->find_connection("web-prod");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->protocol, "ssh");
  EXPECT_EQ(web->upstream.port, 22);
  EXPECT_EQ(web->upstream.user, "deploy");
  EXPECT_EQ(web->upstream.private_key_file, "/etc/gh/keys/web-prod");
  EXPECT_TRUE(web->upstream.host_key.starts_with("ssh-ed25519 AAAA"));
  EXPECT_EQ(web->guardrails.deny.size(), 1u);
  EXPECT_EQ(web->guardrails.mask.size(), 1u);
}

TEST(ConfigSsh, ErrorsNameTheKeyAndReason) {
  const struct {
    std::string from, to, expected;
  } cases[] = {
      {"    ssh:\n      host_key_file: keys/ssh_host_ed25519_key\n", "",
       "listeners[0].ssh: required for protocol ssh"},
      {"protocol: ssh\n    address", "protocol: telnet\n    address",
       "listeners[0].protocol: supported: postgres, ssh"},
      {"      private_key_file: keys/web-prod\n", "",
       "connections[0].upstream: give exactly one of private_key_file, password_file, password_env"},
      {"      host_key: ssh-ed25519", "      host_keys: ssh-ed25519", "connections[0].upstream.host_keys: unknown key"},
      {"      host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE1bqMuvXmFYDQ2jDhKYOqQ5Tr3ymCa5b6b8OI0vvqWs\n",
       "", "connections[0].upstream: give exactly one of host_key, host_key_file"},
      {"        regex: '\\brm\\b'", "        statements: [drop]",
       "connections[0].deny[0]: ssh connections deny by regex over the exec command line only"},
      {"    mask:\n", "    approve:\n      - name: drops\n        statements: [drop]\n        approvers: [ops]\n    mask:\n",
       "connections[0].approve[0]: ssh connections hold by regex over the exec command line only"},
  };
  for (const auto& t : cases) {
    const std::string text = replaced(kSsh, t.from, t.to);
    ASSERT_NE(text, kSsh) << t.from;
    auto c = parse(text, "test.yaml", "/etc/gh");
    ASSERT_FALSE(c) << t.from;
    EXPECT_NE(c.error().message.find(t.expected), std::string::npos) << c.error().message;
  }
}

}  // namespace
}  // namespace gh::config

namespace gh::config {
namespace {

TEST(ConfigSsh, ForwardingIsOffUnlessEnabledAndItsTargetsAreChecked) {
  constexpr const char* kAfter = "    deny:\n";
  auto plain = parse(kSsh, "test.yaml", "/etc/gh");
  ASSERT_TRUE(plain) << plain.error().message;
  const SshForwarding& off = plain->find_connection("web-prod")->forwarding;
  EXPECT_FALSE(off.local);
  EXPECT_FALSE(off.remote);
  EXPECT_FALSE(off.agent);
  EXPECT_TRUE(off.local_targets.empty());

  const std::string on = replaced(kSsh, kAfter,
                                  "    forwarding:\n      local: true\n      local_targets: [db.internal:5432, "
                                  "'[::1]:8080']\n      remote: yes\n      agent: true\n" +
                                      std::string(kAfter));
  auto c = parse(on, "test.yaml", "/etc/gh");
  ASSERT_TRUE(c) << c.error().message;
  const SshForwarding& f = c->find_connection("web-prod")->forwarding;
  EXPECT_TRUE(f.local);
  EXPECT_TRUE(f.remote);
  EXPECT_TRUE(f.agent);
  EXPECT_FALSE(f.x11);
  EXPECT_EQ(f.local_targets, (std::vector<std::string>{"db.internal:5432", "[::1]:8080"}));

  const struct {
    std::string forwarding, expected;
  } cases[] = {
      {"      locals: true\n", "connections[0].forwarding.locals: unknown key"},
      {"      local: sometimes\n", "connections[0].forwarding.local: expected true or false"},
      {"      local: true\n      local_targets: [db.internal]\n",
       "connections[0].forwarding.local_targets[0]: expected host:port"},
      {"      local: true\n      local_targets: ['db:0']\n", "local_targets[0]: expected host:port (port 1..65535"},
      {"      local: true\n      local_targets: ['::1:22']\n", "local_targets[0]: expected host:port"},
      {"      local: true\n      local_targets: [':22']\n", "local_targets[0]: expected host:port"},
      {"      local_targets: [db.internal:5432]\n", "forwarding.local_targets: needs local: true"},
      {"      x11: maybe\n", "connections[0].forwarding.x11: expected true or false"},
  };
  for (const auto& t : cases) {
    const std::string text = replaced(kSsh, kAfter, "    forwarding:\n" + t.forwarding + kAfter);
    auto r = parse(text, "test.yaml", "/etc/gh");
    ASSERT_FALSE(r) << t.forwarding;
    EXPECT_NE(r.error().message.find(t.expected), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace gh::config
