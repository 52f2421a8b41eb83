// Bad tokens at the PostgreSQL login: every refusal looks the same to the client (psql and a raw
// protocol client), opens no upstream connection, and is recorded with its precise reason.
#include <gtest/gtest.h>

#include <ctime>
#include <set>

#include "core/base64.hpp"
#include "core/identity/issuer.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

size_t upstream_connections(const PostgresServer& pg) { return count_of(pg.log(), "connection received:"); }

RunResult psql_as(const Gateway& gw, const std::string& user, const std::string& database,
                  const std::string& token, const std::string& sql) {
  return run({"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
              gw.conninfo(database, user, "disable"), "-c", sql},
             {{"PGPASSWORD", token}}, std::chrono::seconds(60));
}

// psql's "FATAL:  ..." line with the user name replaced, so that refusals can be compared.
std::string fatal_line(const std::string& err, const std::string& user) {
  const size_t at = err.find("FATAL:");
  if (at == std::string::npos) return "(no FATAL in: " + err + ")";
  std::string line = err.substr(at, err.find('\n', at) - at);
  for (size_t u = line.find(user); u != std::string::npos; u = line.find(user)) line.replace(u, user.size(), "<user>");
  return line;
}

struct BadToken {
  std::string name;         // also makes the database user names, to find the case in the trail
  std::string token;
  std::string database = "appdb";
  std::string reason_part;  // what the recorded reason must say
};

TEST(BadTokens, RefusedAlikeWithoutUpstreamConnectionAndRecordedWithTheirReason) {
  PostgresServer pg;
  Gateway gw(pg);
  auto minter = identity::TokenMinter::load(gw.key_file());
  ASSERT_TRUE(minter) << minter.error().message;

  // A second key whose JWKS the gateway does not trust.
  const auto other_key = gw.dir() / "other" / "other.key";
  auto keygen = gw.cli({"keygen", "--key", other_key.string(), "--jwks", (gw.dir() / "other" / "jwks.json").string()});
  ASSERT_EQ(keygen.exit_code, 0) << keygen.err;
  auto stranger = identity::TokenMinter::load(other_key);
  ASSERT_TRUE(stranger) << stranger.error().message;
  ASSERT_NE(stranger->key_id(), minter->key_id());

  const int64_t now = int64_t(std::time(nullptr));
  identity::TokenRequest good;
  good.subject = "alice";
  good.groups = {"devs"};
  good.ttl_s = 600;
  good.issuer = "gatehouse-test";
  good.audience = "gatehouse";
  auto mint = [](const identity::TokenMinter& m, const identity::TokenRequest& r, int64_t at) {
    auto t = m.issue(r, at);
    if (!t) throw std::runtime_error(t.error().message);
    return *t;
  };
  const std::string valid = mint(*minter, good, now);

  std::vector<BadToken> cases;
  {
    auto r = good;
    r.ttl_s = 60;
    cases.push_back({"expired", mint(*minter, r, now - 3600), "appdb", "expired"});
  }
  {
    auto r = good;
    r.issuer = "https://idp.evil.example";
    cases.push_back({"issuer", mint(*minter, r, now), "appdb", "no issuer is configured"});
  }
  {
    auto r = good;
    r.audience = "billing-api";
    cases.push_back({"audience", mint(*minter, r, now), "appdb", "audience"});
  }
  {
    const std::string payload = valid.substr(valid.find('.') + 1, valid.rfind('.') - valid.find('.') - 1);
    const std::string none = base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + payload + ".";
    cases.push_back({"algnone", none, "appdb", "alg \"none\""});
  }
  {
    std::string tampered = valid;
    const size_t sig = tampered.rfind('.') + 1;
    const size_t mid = sig + (tampered.size() - sig) / 2;
    tampered[mid] = tampered[mid] == 'A' ? 'B' : 'A';
    ASSERT_NE(tampered, valid);
    cases.push_back({"signature", tampered, "appdb", "signature does not verify"});
  }
  cases.push_back({"kid", mint(*stranger, good, now), "appdb", "unknown kid"});
  {
    auto r = good;
    r.groups = {"interns"};
    cases.push_back({"groups", mint(*minter, r, now), "appdb", "not allowed on connection 'appdb'"});
  }
  cases.push_back({"noconn", valid, "nosuchdb", "no connection named 'nosuchdb'"});
  cases.push_back({"oversized", std::string(20000, 'A'), "appdb", "token is 20000 bytes, over the limit"});

  const size_t connections_before = upstream_connections(pg);
  std::set<std::string> psql_refusals;
  std::set<std::string> raw_refusals;
  for (const BadToken& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string psql_user = "p_" + c.name;
    auto r = psql_as(gw, psql_user, c.database, c.token, "SELECT 1");
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("FATAL:  password authentication failed for user \"" + psql_user + "\""),
              std::string::npos)
        << r.err;
    psql_refusals.insert(fatal_line(r.err, psql_user));

    const std::string raw_user = "r_" + c.name;
    WireClient client(gw.port());
    ASSERT_TRUE(client.connected());
    auto messages = client.login(raw_user, c.database, c.token);
    ASSERT_EQ(messages.size(), 2u) << "expected the password request, then one ErrorResponse";
    EXPECT_EQ(messages[0].auth_code(), 3);  // AuthenticationCleartextPassword
    ASSERT_EQ(messages[1].type, 'E');
    EXPECT_EQ(messages[1].field('S'), "FATAL");
    EXPECT_EQ(messages[1].field('V'), "FATAL");
    EXPECT_EQ(messages[1].field('C'), "28P01");
    const std::string message = messages[1].field('M');
    EXPECT_EQ(message, "password authentication failed for user \"" + raw_user + "\"");
    std::string generic = message;
    generic.replace(generic.find(raw_user), raw_user.size(), "<user>");
    raw_refusals.insert(generic + " / " + messages[1].field('C'));
    EXPECT_TRUE(client.wait_closed()) << "the gateway must close the refused connection";
    EXPECT_EQ(split_backend(client.received()).size(), 2u) << "nothing may follow the refusal";
  }
  EXPECT_EQ(psql_refusals.size(), 1u) << "every reason must look the same to psql";
  EXPECT_EQ(raw_refusals.size(), 1u) << "every reason must look the same on the wire";
  EXPECT_EQ(upstream_connections(pg), connections_before) << "a refused login opened an upstream connection";

  // The control: a valid token does reach PostgreSQL, and that is what the log counts.
  auto ok = psql_as(gw, "p_valid", "appdb", valid, "SELECT 41 + 1");
  ASSERT_EQ(ok.exit_code, 0) << ok.err << gw.log();
  EXPECT_EQ(ok.out, "42\n");
  EXPECT_EQ(upstream_connections(pg), connections_before + 1);

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  const auto sessions = trail_sessions(gw);
  for (const BadToken& c : cases) {
    for (const std::string& user : {"p_" + c.name, "r_" + c.name}) {
      SCOPED_TRACE(user);
      const auto found = sessions_of_user(sessions, user);
      ASSERT_EQ(found.size(), 1u) << sessions.dump(2);
      const std::string reason = found[0].value("end_reason", "");
      EXPECT_NE(reason.find(c.reason_part), std::string::npos) << reason;
      const auto replay = trail_replay(gw, found[0].value("session_id", ""));
      const auto failures = events_of_type(replay, "auth_failure");
      ASSERT_EQ(failures.size(), 1u) << replay.dump(2);
      EXPECT_NE(failures[0]["fields"].value("reason", "").find(c.reason_part), std::string::npos)
          << failures[0].dump();
      EXPECT_EQ(failures[0]["fields"].value("database", ""), c.database);
      EXPECT_TRUE(events_of_type(replay, "session_start").empty()) << replay.dump(2);
    }
  }
  const auto valid_sessions = sessions_of_user(sessions, "p_valid");
  ASSERT_EQ(valid_sessions.size(), 1u);
  EXPECT_TRUE(events_of_type(trail_replay(gw, valid_sessions[0].value("session_id", "")), "auth_failure").empty());
}

}  // namespace
}  // namespace gh::test
