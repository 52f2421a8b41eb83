// Interactive sessions through gatehouse: the real ssh client on a real terminal (forkpty) to a
// real OpenSSH sshd's shell: typed commands, a window change, masked output, a refused line,
// the exit status; the recording as an asciicast v2 file.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "tests/integration/support/ssh_server.hpp"

namespace gh::test {
namespace {

// The ssh client on the slave side of a pseudo-terminal this test holds the master of: what it
// types goes in as keystrokes, what the terminal shows comes back, a resize is a real SIGWINCH.
class TerminalClient {
 public:
  TerminalClient(const SshGateway& gw, const std::string& token, const std::string& connection) {
    winsize size{};
    size.ws_col = 80;
    size.ws_row = 24;
    const std::string line = gw.ssh_line(connection, "-tt");
    const auto env = gw.ssh_env(token);
    pid_ = forkpty(&master_, nullptr, nullptr, &size);
    if (pid_ < 0) throw std::runtime_error("forkpty failed");
    if (pid_ == 0) {
      for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
      setenv("TERM", "xterm", 1);
      execl("/bin/sh", "sh", "-c", ("exec " + line).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~TerminalClient() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }

  void type(const std::string& keys) {
    size_t at = 0;
    while (at < keys.size()) {
      const ssize_t n = write(master_, keys.data() + at, keys.size() - at);
      if (n <= 0) return;
      at += size_t(n);
    }
  }
  void resize(unsigned short columns, unsigned short rows) {
    winsize size{};
    size.ws_col = columns;
    size.ws_row = rows;
    ioctl(master_, TIOCSWINSZ, &size);  // the kernel signals ssh (SIGWINCH)
  }
  // Reads what the terminal shows until `text` appears after `from` (bounded).
  bool wait_for(const std::string& text, size_t from = 0, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (screen_.find(text, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= end || !read_some(100)) return false;
    }
    return true;
  }
  // The ssh client's exit status once it ended (bounded), reading the terminal meanwhile.
  int wait_exit(std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        while (read_some(0)) {
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      read_some(50);
    }
    return -2;
  }
  const std::string& screen() const { return screen_; }

 private:
  bool read_some(int timeout_ms) {
    pollfd p{master_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return true;  // nothing yet: keep waiting
    char buffer[4096];
    const ssize_t n = read(master_, buffer, sizeof buffer);
    if (n <= 0) return false;  // the client side closed
    screen_.append(buffer, size_t(n));
    return true;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  bool exited_ = false;
  std::string screen_;
};

class SshShell : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshServer::available()) GTEST_SKIP() << "OpenSSH (sshd, ssh, ssh-keygen) not installed";
  }
};

TEST_F(SshShell, TerminalSessionIsRelayedGuardedAndRecordedAsAsciicast) {
  SshServer server;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = kSshGuardrails});
  TerminalClient term(gw, gw.token("alice", {"devs"}), "web");
  const std::filesystem::path marker = gw.dir() / "ran";

  // Markers are computed by the shell, so its output is told apart from the echo of the keys.
  term.type("stty size; echo one-$((6*7))\r");
  ASSERT_TRUE(term.wait_for("one-42")) << term.screen() << gw.log();
  EXPECT_NE(term.screen().find("24 80"), std::string::npos) << term.screen();

  // A resize reaches the host's terminal (window-change); ssh sends it when its SIGWINCH is
  // handled, so the size is asked for until it shows (bounded).
  term.resize(100, 30);
  bool resized = false;
  for (int i = 0; i < 20 && !resized; ++i) {
    const size_t from = term.screen().size();
    term.type("stty size; echo size-$((6*7))\r");
    ASSERT_TRUE(term.wait_for("size-42", from)) << term.screen();
    resized = term.screen().find("30 100", from) != std::string::npos;
  }
  EXPECT_TRUE(resized) << term.screen();

  // Output goes through the connection's mask rules before the terminal and the trail.
  size_t from = term.screen().size();
  term.type("printf 'key sk_live_%s\\n' ABCDEFGH1234; echo two-$((6*7))\r");
  ASSERT_TRUE(term.wait_for("two-42", from)) << term.screen();
  EXPECT_NE(term.screen().find("key ********************", from), std::string::npos) << term.screen();
  EXPECT_EQ(term.screen().find("sk_live_ABCDEFGH1234"), std::string::npos) << term.screen();

  // A submitted line a deny rule names never runs (the side effect before the rm is absent),
  // the terminal says why, and the shell lives on.
  from = term.screen().size();
  term.type("touch " + marker.string() + "; rm -f /tmp/gatehouse-nothing\r");
  ASSERT_TRUE(term.wait_for("gatehouse: line refused by rule 'no-rm'", from)) << term.screen();
  term.type("echo three-$((6*7))\r");
  ASSERT_TRUE(term.wait_for("three-42", from)) << term.screen();
  EXPECT_FALSE(std::filesystem::exists(marker)) << "the refused line ran on the host";

  term.type("exit 7\r");
  EXPECT_EQ(term.wait_exit(), 7) << term.screen();

  const auto ended = gw.ended_sessions(1);
  ASSERT_EQ(ended.size(), 1u) << ended.dump();
  const std::string id = ended[0]["session_id"];
  // The trail: the refused line with its rule, the exit status.
  const auto session = gw.replay_json(id);
  std::string refused_line, refused_rule, completion;
  for (const auto& e : session["events"]) {
    if (e["type"] == "statement" && e["fields"]["statement_kind"] == "line") refused_line = e["fields"]["text"];
    if (e["type"] == "error" && e["fields"].contains("rule")) refused_rule = e["fields"]["rule"];
    if (e["type"] == "completion") completion = e["fields"]["tag"];
  }
  EXPECT_EQ(refused_line, "touch " + marker.string() + "; rm -f /tmp/gatehouse-nothing");
  EXPECT_EQ(refused_rule, "no-rm");
  EXPECT_EQ(completion, "exit 7");
  EXPECT_EQ(session.dump().find("sk_live_ABCDEFGH1234"), std::string::npos);

  // The asciicast: a v2 header with the terminal's size and TERM, then one JSON array per line,
  // output in order, the resize, the keys typed.
  auto r = gw.cli({"replay", "-c", gw.config_file().string(), "--asciicast", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const auto header = nlohmann::json::parse(line);
  EXPECT_EQ(header["version"], 2);
  EXPECT_EQ(header["width"], 80);
  EXPECT_EQ(header["height"], 24);
  EXPECT_EQ(header["env"]["TERM"], "xterm");
  EXPECT_GT(header["timestamp"].get<int64_t>(), 1'600'000'000);
  std::string output, input, resizes;
  double last_time = 0;
  size_t events = 0;
  while (std::getline(lines, line)) {
    const auto event = nlohmann::json::parse(line);  // throws (fails the test) if not JSON
    ASSERT_TRUE(event.is_array() && event.size() == 3) << line;
    EXPECT_GE(event[0].get<double>(), last_time) << line;
    last_time = event[0].get<double>();
    const std::string code = event[1];
    (code == "o" ? output : code == "i" ? input : resizes) += event[2].get<std::string>();
    ++events;
  }
  EXPECT_GT(events, 5u);
  const size_t one = output.find("one-42");
  const size_t two = output.find("two-42");
  const size_t refused = output.find("gatehouse: line refused by rule 'no-rm'");
  const size_t three = output.find("three-42");
  EXPECT_TRUE(one != std::string::npos && one < two && two < refused && refused < three) << output;
  EXPECT_NE(output.find("key ********************"), std::string::npos);
  EXPECT_EQ(output.find("sk_live_ABCDEFGH1234"), std::string::npos);
  EXPECT_NE(resizes.find("100x30"), std::string::npos) << resizes;
  EXPECT_NE(input.find("exit 7\r"), std::string::npos) << input;
}

}  // namespace
}  // namespace gh::test
