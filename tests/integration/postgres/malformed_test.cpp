// Malformed input from a client: an oversized startup packet and length fields out of range, in
// the startup phase and mid-session, each get FATAL 08P01 and a closed connection, while another
// client's session through the same gateway carries on and the gateway keeps running.
#include <gtest/gtest.h>

#include "protocols/postgres/codec/encoder.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// A well-formed protocol 3.0 StartupMessage of exactly `bytes` bytes (padded application_name).
std::string startup_of_size(const std::string& user, size_t bytes) {
  const size_t base = startup_packet(user, "appdb", {{"application_name", ""}}).size();
  std::string out = startup_packet(user, "appdb", {{"application_name", std::string(bytes - base, 'x')}});
  return out;
}

enum class Stage { kStartup, kPassword, kSession };

struct Case {
  std::string name;
  Stage stage;           // sent as the startup packet, as the password, or mid-session
  std::string bytes;     // what the misbehaving client sends
  std::string recorded;  // what the trail's reason for it must say
};

TEST(Malformed, OutOfRangeLengthsGetFatal08P01WhileOtherSessionsCarryOn) {
  PostgresServer pg;
  Gateway gw(pg);
  const std::string token = gw.token("alice", {"devs"});

  WireClient bystander(gw.port());
  const auto login = bystander.login("bystander", "appdb", token);
  ASSERT_FALSE(login.empty());
  ASSERT_EQ(login.back().type, 'Z') << gw.log();
  auto ask = [&](const std::string& text) {
    const auto rows = bystander.query("SELECT '" + text + "'");
    return rows.size() >= 2 ? rows[1].first_value() : std::string("(no answer)");
  };
  ASSERT_EQ(ask("before"), "before");

  const std::string oversized = startup_of_size("big", 10001);
  ASSERT_EQ(oversized.size(), 10001u);
  ASSERT_EQ(oversized.substr(0, 4), be32(10001));
  const std::vector<Case> cases = {
      {"startup packet of 10001 bytes", Stage::kStartup, oversized, "startup packet length 10001"},
      {"startup length 0x7fffffff", Stage::kStartup, be32(0x7fffffff) + be32(pg::kProtocolVersion30),
       "startup packet length 2147483647"},
      {"startup length 4", Stage::kStartup, be32(4) + be32(pg::kProtocolVersion30), "startup packet length 4"},
      {"PasswordMessage length 0x7fffffff", Stage::kPassword, "p" + be32(0x7fffffff) + "token",
       "'p' (message length exceeds limit) instead of a password"},
      {"Query length 0x7fffffff", Stage::kSession, "Q" + be32(0x7fffffff) + "SELECT 1",
       "client message 'Q': message length exceeds limit"},
      {"Query length 2", Stage::kSession, "Q" + be32(2) + "SELECT 1",
       "client message 'Q': invalid message length"},
      {"unknown message type", Stage::kSession, std::string(1, '\x01') + be32(4),
       "unknown message type"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WireClient client(gw.port());
    ASSERT_TRUE(client.connected());
    if (c.stage == Stage::kPassword) {
      ASSERT_TRUE(client.send_startup("misbehaving", "appdb"));
      const auto request = client.next();
      ASSERT_TRUE(request.has_value());
      ASSERT_EQ(request->auth_code(), 3);
    } else if (c.stage == Stage::kSession) {
      const auto ok = client.login("misbehaving", "appdb", token);
      ASSERT_FALSE(ok.empty());
      ASSERT_EQ(ok.back().type, 'Z');
    }
    const size_t before = client.received().size();
    client.send_raw(c.bytes);  // the gateway may close while we still send: not an error
    EXPECT_TRUE(client.wait_closed()) << "the gateway must close the connection";
    const auto answer = split_backend(client.received().substr(before));
    ASSERT_EQ(answer.size(), 1u) << "expected exactly one FATAL ErrorResponse";
    EXPECT_EQ(answer[0].type, 'E');
    EXPECT_EQ(answer[0].field('V'), "FATAL");
    EXPECT_EQ(answer[0].field('C'), "08P01");
    EXPECT_EQ(ask("after " + c.name), "after " + c.name) << "the other session must carry on";
    ASSERT_TRUE(gw.process().running()) << gw.log();
  }

  EXPECT_EQ(ask("at the end"), "at the end");
  ASSERT_TRUE(gw.process().running()) << gw.log();
  bystander.send_terminate();
  EXPECT_TRUE(bystander.wait_closed());
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  // Each refusal is in the trail with its reason.
  std::string reasons;
  for (const auto& s : trail_sessions(gw)) reasons += s.value("end_reason", "") + "\n";
  for (const Case& c : cases) {
    EXPECT_NE(reasons.find(c.recorded), std::string::npos) << c.name << " not in:\n" << reasons;
  }
}

}  // namespace
}  // namespace gh::test
