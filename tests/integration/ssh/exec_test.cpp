// `ssh conn@gateway cmd` through gatehouse to a real OpenSSH sshd, with the real ssh client:
// output, exit status, refusals, deny rules, masking and the recording.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/integration/support/ssh_server.hpp"

namespace gh::test {
namespace {

class SshExec : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshServer::available()) GTEST_SKIP() << "OpenSSH (sshd, ssh, ssh-keygen) not installed";
  }

};

TEST_F(SshExec, RelaysOutputAndExitStatusAndRecordsTheSession) {
  SshServer server;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = kSshGuardrails});
  const std::string token = gw.token("alice", {"devs"});

  auto r = gw.ssh(token, "web", "echo hello; echo oops >&2; exit 3");
  EXPECT_EQ(r.exit_code, 3) << r.err << gw.log();
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_NE(r.err.find("oops\n"), std::string::npos) << r.err;

  // A secret in a file the command prints reaches neither the caller nor the trail.
  const std::filesystem::path secret = gw.dir() / "secret.txt";
  write_file(secret, "api key: sk_live_ABCDEFGH1234 end\n");
  r = gw.ssh(token, "web", "cat " + secret.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "api key: ******************** end\n");

  auto all = gw.ended_sessions(2);
  ASSERT_EQ(all.size(), 2u) << all.dump();
  auto first = gw.replay_json(all[0]["session_id"]);
  EXPECT_EQ(first["chain"], nlohmann::json::array({"alice"}));
  EXPECT_EQ(first["connection"], "web");
  EXPECT_EQ(first["protocol"], "ssh");
  auto exec = events_of_type(first, "statement");
  ASSERT_EQ(exec.size(), 1u);
  EXPECT_EQ(exec[0]["fields"]["statement_kind"], "exec");
  EXPECT_EQ(exec[0]["fields"]["text"], "echo hello; echo oops >&2; exit 3");
  auto done = events_of_type(first, "completion");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0]["fields"]["tag"], "exit 3");
  std::string out, err;
  for (const auto& e : events_of_type(first, "output"))
    (e["fields"]["stream"] == "out" ? out : err) += e["fields"]["text"].get<std::string>();
  EXPECT_EQ(out, "hello\n");
  EXPECT_EQ(err, "oops\n");

  auto second = gw.replay_json(all[1]["session_id"]);
  const std::string text = second.dump();
  EXPECT_EQ(text.find("sk_live_ABCDEFGH1234"), std::string::npos);
  EXPECT_NE(text.find("api key: ******************** end"), std::string::npos) << text;
  // Nor anywhere in the trail's files.
  for (const auto& f : std::filesystem::recursive_directory_iterator(gw.dir() / "trail")) {
    if (f.is_regular_file()) {
      EXPECT_EQ(read_file(f.path()).find("sk_live_ABCDEFGH1234"), std::string::npos) << f.path();
    }
  }
}

TEST_F(SshExec, RelaysExitSignalAndLargeStreamsByteForByte) {
  SshServer server;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = kSshGuardrails});
  const std::string token = gw.token("alice", {"devs"});
  // Killed by a signal: the client sees what it would see from the host itself (OpenSSH's ssh
  // exits 255 on an exit-signal), and the trail names the signal.
  auto r = gw.ssh(token, "web", "kill -TERM $$");
  EXPECT_EQ(r.exit_code, 255) << r.err;

  // 4 MiB of random bytes out through the masking path, and back in through stdin: windows and
  // back-pressure on both sides, nothing lost or changed.
  const std::filesystem::path data = gw.dir() / "data.bin";
  r = shell("head -c 4194304 /dev/urandom > " + data.string());
  ASSERT_EQ(r.exit_code, 0);
  r = gw.ssh(token, "web", "cat " + data.string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out == read_file(data)) << "output differs: " << r.out.size() << " bytes";
  r = shell(gw.ssh_line("web") + " sha256sum < " + data.string(), gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto local = shell("sha256sum < " + data.string());
  EXPECT_EQ(r.out, local.out);

  // A caller that reads nothing for a while: its window fills, the host's program ends and its
  // exit status, EOF and close reach the gateway while output still waits there; all of it must
  // still reach the caller, then the exit status.
  r = shell("set -o pipefail; " + gw.ssh_line("web") + " cat " + data.string() +
                " | { sleep 0.5; sha256sum; }",
            gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, local.out);

  auto all = gw.ended_sessions(4);
  ASSERT_EQ(all.size(), 4u);
  auto killed = gw.replay_json(all[0]["session_id"]);
  ASSERT_EQ(events_of_type(killed, "completion").size(), 1u);
  EXPECT_EQ(events_of_type(killed, "completion")[0]["fields"]["tag"], "signal TERM");
}

TEST_F(SshExec, TokenAsKeyboardInteractiveAnswer) {
  SshServer server;
  SshGateway gw(server);
  const std::vector<std::string> kbdint = {"-o", "PreferredAuthentications=keyboard-interactive"};
  auto r = gw.ssh(gw.token("alice", {"devs"}), "web", "echo via-kbdint", kbdint);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "via-kbdint\n");
  r = gw.ssh("not-a-token", "web", "echo via-kbdint", kbdint);
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_EQ(r.out, "");
}

TEST_F(SshExec, GatewayOffersStrictKeyExchangeAndNoTerrapinProneCiphers) {
  SshServer server;
  SshGateway gw(server);
  auto r = gw.ssh(gw.token("alice", {"devs"}), "web", "true", {"-vv"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The client prints the server's proposal: strict kex marker in, chacha20 and CBC out.
  const size_t kex = r.err.find("kex-strict-s-v00@openssh.com");
  EXPECT_NE(kex, std::string::npos) << r.err;
  const size_t ciphers = r.err.find("debug2: ciphers ctos: ", r.err.find("peer server KEXINIT proposal"));
  ASSERT_NE(ciphers, std::string::npos) << r.err;
  const std::string offered = r.err.substr(ciphers, r.err.find('\n', ciphers) - ciphers);
  EXPECT_EQ(offered.find("chacha20"), std::string::npos) << offered;
  EXPECT_EQ(offered.find("cbc"), std::string::npos) << offered;
}

TEST_F(SshExec, PortForwardingIsRefusedAndRecorded) {
  SshServer server;
  SshGateway gw(server);
  const std::string token = gw.token("alice", {"devs"});
  // -W asks for a direct-tcpip channel at once (to the host's own sshd, which would answer).
  auto r = gw.ssh(token, "web", "", {"-W", "127.0.0.1:" + std::to_string(server.port())});
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_NE(r.err.find("open failed"), std::string::npos) << r.err;
  // -R with ExitOnForwardFailure: the tcpip-forward request is refused.
  r = gw.ssh(token, "web", "true", {"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9"});
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_NE(r.err.find("remote port forwarding failed"), std::string::npos) << r.err;
  // The gateway lives on (a session channel still waiting for its upstream open when the
  // client left used to be freed twice).
  r = gw.ssh(token, "web", "echo alive");
  EXPECT_EQ(r.out, "alive\n") << r.err;

  auto all = gw.ended_sessions(3);
  ASSERT_EQ(all.size(), 3u);
  std::string recorded;
  for (const auto& s : all) {
    for (const auto& e : events_of_type(gw.replay_json(s["session_id"]), "error"))
      recorded += e["fields"]["message"].get<std::string>() + "\n";
  }
  EXPECT_NE(recorded.find("refused: direct-tcpip (port forwarding) to 127.0.0.1:" + std::to_string(server.port())),
            std::string::npos) << recorded;
  EXPECT_NE(recorded.find("refused: tcpip-forward (remote port forwarding) of 127.0.0.1:0"),
            std::string::npos) << recorded;
}

TEST_F(SshExec, DeniedCommandGetsExit126AndNeverRunsUpstream) {
  SshServer server;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = kSshGuardrails});
  const std::filesystem::path marker = gw.dir() / "ran";
  auto r = gw.ssh(gw.token("alice", {"devs"}), "web", "touch " + marker.string() + "; rm -f /tmp/nothing");
  EXPECT_EQ(r.exit_code, 126) << r.err;
  EXPECT_NE(r.err.find("gatehouse: command refused by rule 'no-rm'"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the denied command ran on the host";

  auto all = gw.ended_sessions(1);
  ASSERT_EQ(all.size(), 1u);
  auto s = gw.replay_json(all[0]["session_id"]);
  auto refused = events_of_type(s, "error");
  ASSERT_EQ(refused.size(), 1u) << s.dump();
  EXPECT_EQ(refused[0]["fields"]["rule"], "no-rm");
  ASSERT_EQ(events_of_type(s, "completion").size(), 1u);
  EXPECT_EQ(events_of_type(s, "completion")[0]["fields"]["tag"], "exit 126");
}

TEST_F(SshExec, BadTokenAndUnknownConnectionAreRefused) {
  SshServer server;
  SshGateway gw(server);
  const std::filesystem::path marker = gw.dir() / "ran";
  auto r = gw.ssh("not-a-token", "web", "touch " + marker.string());
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_NE(r.err.find("Permission denied"), std::string::npos) << r.err;
  // A valid token whose groups the connection does not allow.
  r = gw.ssh(gw.token("mallory", {"guests"}), "web", "touch " + marker.string());
  EXPECT_EQ(r.exit_code, 255);
  r = gw.ssh(gw.token("alice", {"devs"}), "nosuch", "touch " + marker.string());
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_FALSE(std::filesystem::exists(marker));
  auto all = gw.ended_sessions(3);
  size_t failures = 0;
  for (const auto& s : all) failures += s.value("connection", "").empty() ? 1 : 0;
  EXPECT_EQ(failures, all.size()) << all.dump();  // no session reached a connection
  EXPECT_GE(all.size(), 3u);
}

TEST_F(SshExec, WrongUpstreamHostKeyRefusesTheSessionAndIsRecorded) {
  SshServer server;
  // Pins some other key than the one sshd presents.
  TempDir other;
  ASSERT_EQ(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (other.path() / "k").string()}).exit_code, 0);
  SshGateway gw(server, {.pinned_host_key = other.path() / "k.pub", .connection_extra = {}});
  const std::filesystem::path marker = gw.dir() / "ran";
  auto r = gw.ssh(gw.token("alice", {"devs"}), "web", "touch " + marker.string());
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_NE(r.err.find("does not match the key gatehouse pins"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(marker));
  auto all = gw.ended_sessions(1);
  ASSERT_EQ(all.size(), 1u);
  auto s = gw.replay_json(all[0]["session_id"]);
  auto errors = events_of_type(s, "error");
  ASSERT_EQ(errors.size(), 1u) << s.dump();
  EXPECT_NE(errors[0]["fields"]["reason"].get<std::string>().find("upstream host key mismatch"),
            std::string::npos);
}

}  // namespace
}  // namespace gh::test
