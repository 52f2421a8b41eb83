// TLS between gatehouse and PostgreSQL: require and verify-full give an encrypted upstream session
// (PostgreSQL's own pg_stat_ssl says so); a certificate that does not match the configured server
// name ends the client's login with a clean FATAL and the reason in the trail.
#include <gtest/gtest.h>

#include <tuple>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

constexpr const char* kSslOfThisBackend = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

RunResult psql_as(const Gateway& gw, const std::string& user, const std::string& connection,
                  const std::string& token, const std::string& sql) {
  return run({"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
              gw.conninfo(connection, user, "disable"), "-c", sql},
             {{"PGPASSWORD", token}}, std::chrono::seconds(60));
}

TEST(UpstreamTls, RequireAndVerifyFullEncryptAndAWrongServerNameFailsCleanly) {
  PostgresOptions pg_options;
  pg_options.ssl = true;
  PostgresServer pg(pg_options);
  PostgresServer no_ssl_pg;  // answers SSLRequest with 'N' 
  GatewayOptions options;
  options.connections.clear();
  for (const auto& [name, tls, server_name] : {std::tuple{"plain", "disable", ""}, std::tuple{"req", "require", ""},
                                               std::tuple{"full", "verify-full", "localhost"},
                                               std::tuple{"wrong", "verify-full", "wrong.example"},
                                               std::tuple{"nossl", "require", ""}}) {
    ConnectionSpec c;
    c.name = name;
    c.tls = tls;
    c.server_name = server_name;
    if (c.name == "nossl") c.port = no_ssl_pg.port();
    options.connections.push_back(c);
  }
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});

  auto plain = psql_as(gw, "u_plain", "plain", token, kSslOfThisBackend);
  ASSERT_EQ(plain.exit_code, 0) << plain.err << gw.log();
  EXPECT_EQ(plain.out, "f\n") << "control: pg_stat_ssl tells a plaintext backend apart";
  for (const std::string connection : {"req", "full"}) {
    auto r = psql_as(gw, "u_" + connection, connection, token, kSslOfThisBackend);
    ASSERT_EQ(r.exit_code, 0) << connection << ": " << r.err << gw.log();
    EXPECT_EQ(r.out, "t\n") << connection;
  }

  auto wrong = psql_as(gw, "u_wrong", "wrong", token, "SELECT 1");
  EXPECT_NE(wrong.exit_code, 0) << wrong.out;
  EXPECT_NE(wrong.err.find("FATAL:  "), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("hostname"), std::string::npos) << "the client gets no detail: " << wrong.err;

  WireClient client(gw.port());
  const auto login = client.login("raw_wrong", "wrong", token);
  ASSERT_FALSE(login.empty());
  const WireMessage& last = login.back();
  ASSERT_EQ(last.type, 'E') << "expected a FATAL ErrorResponse";
  EXPECT_EQ(last.field('V'), "FATAL");
  EXPECT_TRUE(last.field('C').starts_with("08")) << last.field('C');
  for (const auto& m : login) EXPECT_NE(m.type, 'Z') << "the login must not complete";
  EXPECT_TRUE(client.wait_closed());

  // tls: require never falls back to plaintext when the server refuses TLS.
  auto nossl = psql_as(gw, "u_nossl", "nossl", token, "SELECT 1");
  EXPECT_NE(nossl.exit_code, 0) << nossl.out;
  EXPECT_NE(nossl.err.find("FATAL:  "), std::string::npos) << nossl.err;

  ASSERT_TRUE(gw.process().running());
  ASSERT_EQ(gw.stop(), 0) << gw.log();
  const auto sessions = trail_sessions(gw);
  for (const std::string user : {"u_wrong", "raw_wrong"}) {
    const auto found = sessions_of_user(sessions, user);
    ASSERT_EQ(found.size(), 1u) << user << sessions.dump(2);
    const std::string reason = found[0].value("end_reason", "");
    EXPECT_NE(reason.find("hostname mismatch"), std::string::npos) << user << ": " << reason;
  }
  const auto nossl_sessions = sessions_of_user(sessions, "u_nossl");
  ASSERT_EQ(nossl_sessions.size(), 1u) << sessions.dump(2);
  EXPECT_NE(nossl_sessions[0].value("end_reason", "").find("upstream refused TLS"), std::string::npos)
      << nossl_sessions[0].dump();
}

}  // namespace
}  // namespace gh::test
