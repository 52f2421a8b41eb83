// TLS between clients and gatehouse: psql verify-full against the gateway's CA, TLS required on
// non-loopback listeners unless plaintext is allowed, the SSLRequest injection guard
// (CVE-2021-23214) and the GSSENCRequest refusal that lets the startup continue.
#include <gtest/gtest.h>

#include "core/tls/self_signed.hpp"
#include "protocols/postgres/codec/encoder.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

RunResult psql_conninfo(const std::string& conninfo, const std::string& token,
                        const std::vector<std::string>& commands) {
  std::vector<std::string> argv = {"psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo};
  for (const auto& c : commands) argv.insert(argv.end(), {"-c", c});
  return run(argv, {{"PGPASSWORD", token}}, std::chrono::seconds(60));
}

std::string ssl_request() {
  std::string out;
  pg::encode_ssl_request(out);
  return out;
}

GatewayOptions listener(const std::string& host, bool tls, bool allow_plaintext) {
  GatewayOptions options;
  options.listen_host = host;
  options.listener_tls = tls;
  options.allow_plaintext = allow_plaintext;
  return options;
}

TEST(ClientTls, VerifyFullAgainstTheGatewayCaAndNothingBeforeTheHandshake) {
  PostgresServer pg;
  Gateway gw(pg, listener("127.0.0.1", true, false));
  const std::string token = gw.token("alice", {"devs"});

  const std::string verified = gw.conninfo("appdb", "alice", "verify-full") + " sslrootcert=" + gw.ca_file().string();
  auto ok = psql_conninfo(verified, token, {"\\conninfo", "SELECT 'over tls'"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << gw.log();
  EXPECT_NE(ok.out.find("SSL connection (protocol: TLSv1."), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("over tls\n"), std::string::npos) << ok.out;

  // Control: verify-full means something (another CA is refused).
  TempDir other;
  auto other_ca = tls::write_self_signed(other.path(), "localhost");
  ASSERT_TRUE(other_ca) << other_ca.error().message;
  auto refused = psql_conninfo(gw.conninfo("appdb", "alice", "verify-full") + " sslrootcert=" + other_ca->ca_file,
                               token, {"SELECT 1"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("certificate verify failed"), std::string::npos) << refused.err;

  {
    // Control: a lone SSLRequest is answered 'S'.
    WireClient client(gw.port(), std::chrono::seconds(5));
    ASSERT_TRUE(client.send_raw(ssl_request()));
    EXPECT_EQ(client.read_raw(1), "S");
  }
  {
    // SSLRequest and a StartupMessage in one packet: closed without any answer byte.
    WireClient client(gw.port(), std::chrono::seconds(5));
    ASSERT_TRUE(client.send_raw(ssl_request() + startup_packet("injected", "appdb")));
    EXPECT_TRUE(client.wait_closed(std::chrono::seconds(5)));
    EXPECT_EQ(client.received(), "") << "no 'S' or 'N' may answer a packet with bytes after SSLRequest";
  }
  {
    // libpq's order when it holds Kerberos credentials: GSSENCRequest, 'N', then SSLRequest.
    WireClient client(gw.port(), std::chrono::seconds(5));
    std::string gss;
    pg::encode_gssenc_request(gss);
    ASSERT_TRUE(client.send_raw(gss));
    EXPECT_EQ(client.read_raw(1), "N");
    ASSERT_TRUE(client.send_raw(ssl_request()));
    EXPECT_EQ(client.read_raw(1), "S");
  }
  {
    // GSSENCRequest: 'N', and the startup goes on on the same connection (plaintext on loopback).
    WireClient client(gw.port(), std::chrono::seconds(10));
    std::string gss;
    pg::encode_gssenc_request(gss);
    ASSERT_TRUE(client.send_raw(gss));
    EXPECT_EQ(client.read_raw(1), "N");
    const auto login = client.login("alice", "appdb", token);
    ASSERT_FALSE(login.empty());
    ASSERT_EQ(login.back().type, 'Z') << gw.log();
    const auto rows = client.query("SELECT 'after gssenc'");
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows[1].first_value(), "after gssenc");
  }

  ASSERT_EQ(gw.stop(), 0) << gw.log();
  const auto sessions = trail_sessions(gw);
  bool injection_recorded = false;
  for (const auto& s : sessions) {
    if (s.value("end_reason", "").find("after SSLRequest") != std::string::npos) injection_recorded = true;
  }
  EXPECT_TRUE(injection_recorded) << sessions.dump(2);
}

TEST(ClientTls, NonLoopbackListenerRequiresTlsUnlessPlaintextIsAllowed) {
  PostgresServer pg;
  {
    Gateway gw(pg, listener("0.0.0.0", true, false));
    const std::string token = gw.token("alice", {"devs"});

    auto plain = psql_conninfo(gw.conninfo("appdb", "plain_user", "disable"), token, {"SELECT 1"});
    EXPECT_NE(plain.exit_code, 0) << plain.out;
    EXPECT_NE(plain.err.find("FATAL:  gatehouse requires TLS on this listener"), std::string::npos) << plain.err;

    WireClient client(gw.port());
    ASSERT_TRUE(client.send_startup("raw_plain_user", "appdb"));
    auto refusal = client.next();
    ASSERT_TRUE(refusal.has_value());
    ASSERT_EQ(refusal->type, 'E');
    EXPECT_EQ(refusal->field('V'), "FATAL");
    EXPECT_EQ(refusal->field('C'), "28000");
    EXPECT_TRUE(client.wait_closed());

    auto encrypted = psql_conninfo(gw.conninfo("appdb", "tls_user", "require"), token,
                                   {"\\conninfo", "SELECT 'encrypted'"});
    ASSERT_EQ(encrypted.exit_code, 0) << encrypted.err << gw.log();
    EXPECT_NE(encrypted.out.find("SSL connection (protocol: TLSv1."), std::string::npos) << encrypted.out;
    EXPECT_NE(encrypted.out.find("encrypted\n"), std::string::npos) << encrypted.out;

    ASSERT_EQ(gw.stop(), 0) << gw.log();
    const auto sessions = trail_sessions(gw);
    for (const std::string user : {"plain_user", "raw_plain_user"}) {
      const auto found = sessions_of_user(sessions, user);
      ASSERT_EQ(found.size(), 1u) << user << sessions.dump(2);
      EXPECT_NE(found[0].value("end_reason", "").find("plaintext startup on a non-loopback listener"),
                std::string::npos)
          << found[0].dump();
      EXPECT_EQ(events_of_type(trail_replay(gw, found[0].value("session_id", "")), "auth_failure").size(), 1u);
    }
    EXPECT_EQ(sessions_of_user(sessions, "tls_user").size(), 1u);
  }
  {
    Gateway gw(pg, listener("0.0.0.0", false, true));
    const std::string token = gw.token("alice", {"devs"});
    auto plain = psql_conninfo(gw.conninfo("appdb", "alice", "disable"), token, {"SELECT 'plaintext allowed'"});
    ASSERT_EQ(plain.exit_code, 0) << plain.err << gw.log();
    EXPECT_EQ(plain.out, "plaintext allowed\n");
  }
}

}  // namespace
}  // namespace gh::test
