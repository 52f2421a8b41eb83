// No credential crosses the gateway, for every upstream authentication method: a byte-recording
// relay between gatehouse and PostgreSQL shows what went upstream, a raw protocol client keeps
// every byte the client received.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <thread>

#include "core/base64.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/tcp_relay.hpp"

namespace gh::test {
namespace {

std::string md5_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest, &length, EVP_md5(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string be32(int32_t v) {
  const uint32_t u = uint32_t(v);
  return {char(u >> 24), char(u >> 16), char(u >> 8), char(u)};
}

std::string printable(const std::string& bytes) {
  std::string out;
  for (char c : bytes) out += (c >= 32 && c < 127) ? c : '.';
  return out;
}

std::vector<int32_t> auth_codes(const std::vector<WireMessage>& messages) {
  std::vector<int32_t> out;
  for (const auto& m : messages) {
    if (m.type == 'R') out.push_back(m.auth_code());
  }
  return out;
}

std::vector<pg::BackendKeyData> backend_keys(const std::vector<WireMessage>& messages) {
  std::vector<pg::BackendKeyData> out;
  for (const auto& m : messages) {
    const pg::BackendDecoded d = m.decode();
    if (const auto* k = std::get_if<pg::BackendKeyData>(&d.message)) out.push_back(*k);
  }
  return out;
}

std::string value_of(const std::vector<WireMessage>& messages) {
  for (const auto& m : messages) {
    if (m.type == 'D') return m.first_value();
  }
  return "(no row)";
}

// What the upstream asks the gateway for, by method (Authentication codes).
std::vector<int32_t> expected_upstream_auth(const std::string& method) {
  if (method == "scram-sha-256") return {10, 11, 12, 0};  // SASL, SASLContinue, SASLFinal, Ok
  if (method == "md5") return {5, 0};
  if (method == "password") return {3, 0};
  return {0};  // trust
}

class NoCredentialLeak : public ::testing::TestWithParam<std::string> {};

TEST_P(NoCredentialLeak, ClientSeesOnlyTheGatewaysLoginAndUpstreamNeverSeesTheToken) {
  const std::string method = GetParam();
  const PgRole& role = PostgresServer::role(method);
  PostgresServer pg;
  auto stored = pg.psql("SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = '" + role.name + "'");
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  const std::string verifier = trim(stored.out);

  // The secrets a client must never see.
  std::vector<std::pair<std::string, std::string>> secrets;  // what, bytes
  if (!role.password.empty()) {
    secrets.push_back({"password", role.password});
    secrets.push_back({"md5 hash", "md5" + md5_hex(role.password + role.name)});
  }
  if (method == "md5") {
    EXPECT_EQ(verifier, "md5" + md5_hex(role.password + role.name));
    secrets.push_back({"stored md5 verifier", verifier});
  } else if (!role.password.empty()) {
    // SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
    ASSERT_TRUE(verifier.starts_with("SCRAM-SHA-256$")) << verifier;
    const size_t colon = verifier.find(':');
    const size_t dollar = verifier.find('$', colon);
    const size_t colon2 = verifier.find(':', dollar);
    ASSERT_TRUE(colon != std::string::npos && dollar != std::string::npos && colon2 != std::string::npos)
        << verifier;
    const std::vector<std::pair<std::string, std::string>> parts = {
        {"salt", verifier.substr(colon + 1, dollar - colon - 1)},
        {"StoredKey", verifier.substr(dollar + 1, colon2 - dollar - 1)},
        {"ServerKey", verifier.substr(colon2 + 1)}};
    for (const auto& [what, text] : parts) {
      auto raw = base64_decode(text);
      ASSERT_TRUE(raw && raw->size() >= 16) << what << ": " << text;
      secrets.push_back({what + " (base64)", text});
      secrets.push_back({what + " (bytes)", *raw});
    }
  } else {
    EXPECT_EQ(verifier, "");
  }

  TcpRelay relay(pg.port());
  GatewayOptions options;
  ConnectionSpec connection;
  connection.method = method;
  connection.port = relay.port();
  options.connections = {connection};
  Gateway gw(pg, options);
  const std::string token = gw.token("alice", {"devs"});

  WireClient client(gw.port());
  ASSERT_TRUE(client.connected());
  const auto login = client.login("alice", "appdb", token);
  ASSERT_FALSE(login.empty());
  ASSERT_EQ(login.back().type, 'Z') << printable(client.received()) << gw.log();
  const std::string backend_pid = value_of(client.query("SELECT pg_backend_pid()"));
  EXPECT_EQ(value_of(client.query("SELECT current_user")), role.name);
  const auto failed = client.query("SELECT 1/0");
  ASSERT_GE(failed.size(), 2u);
  EXPECT_EQ(failed[0].field('C'), "22012");
  EXPECT_EQ(failed.back().type, 'Z');
  EXPECT_EQ(value_of(client.query("SELECT 'still here'")), "still here");
  ASSERT_TRUE(client.send_terminate());
  EXPECT_TRUE(client.wait_closed()) << "Terminate must end the session";
  for (int i = 0; i < 250; ++i) {  // the relay sees the upstream Terminate and close (<= 5 s)
    const auto flows = relay.flows();
    if (!flows.empty() && flows[0].done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  const auto flows = relay.flows();
  ASSERT_EQ(flows.size(), 1u) << "one session, one upstream connection";
  const std::string& upstream_sent = flows[0].to_target;
  const std::string& upstream_answered = flows[0].from_target;
  const std::string& client_got = client.received();

  // The relay is in the path: it saw the queries and the upstream's own login exchange.
  EXPECT_NE(upstream_sent.find("SELECT pg_backend_pid()"), std::string::npos) << printable(upstream_sent);
  const auto upstream_messages = split_backend(upstream_answered);
  EXPECT_EQ(auth_codes(upstream_messages), expected_upstream_auth(method));
  if (method == "password") {
    EXPECT_NE(upstream_sent.find(role.password), std::string::npos) << "control: the relay records the login";
  }

  // The client: exactly the gateway's cleartext-password request, then AuthenticationOk.
  size_t rest = 0;
  const auto client_messages = split_backend(client_got, &rest);
  EXPECT_EQ(rest, 0u);
  EXPECT_EQ(auth_codes(client_messages), (std::vector<int32_t>{3, 0}));
  for (const auto& [what, bytes] : secrets) {
    EXPECT_EQ(client_got.find(bytes), std::string::npos) << "the client received the upstream " << what;
  }

  // BackendKeyData: the client gets the gateway's own pid and key, never the upstream's.
  const auto client_keys = backend_keys(client_messages);
  const auto upstream_keys = backend_keys(upstream_messages);
  ASSERT_EQ(client_keys.size(), 1u);
  ASSERT_EQ(upstream_keys.size(), 1u);
  EXPECT_EQ(std::to_string(upstream_keys[0].process_id), backend_pid) << "control: the relay saw the real backend";
  EXPECT_NE(client_keys[0].process_id, upstream_keys[0].process_id);
  EXPECT_NE(std::to_string(client_keys[0].process_id), backend_pid);
  EXPECT_NE(client_keys[0].secret_key, upstream_keys[0].secret_key);
  EXPECT_EQ(client_got.find(be32(upstream_keys[0].process_id) + be32(upstream_keys[0].secret_key)),
            std::string::npos);

  // Upstream: the token went nowhere near PostgreSQL.
  const std::string signature = token.substr(token.rfind('.') + 1);
  ASSERT_GE(signature.size(), 40u);
  EXPECT_EQ(upstream_sent.find(token), std::string::npos);
  EXPECT_EQ(upstream_sent.find(signature), std::string::npos);
  EXPECT_EQ(upstream_sent.find(token.substr(0, token.rfind('.'))), std::string::npos);
  const auto raw_signature = base64url_decode(signature);
  ASSERT_TRUE(raw_signature);
  EXPECT_EQ(upstream_sent.find(*raw_signature), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(UpstreamMethods, NoCredentialLeak,
                         ::testing::Values("scram-sha-256", "md5", "password", "trust"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace gh::test
