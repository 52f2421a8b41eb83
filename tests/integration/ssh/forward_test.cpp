// SSH port forwarding through gatehouse on a connection that enables it (`forwarding:`), with the
// real ssh client and OpenSSH sshd: `ssh -W` and `ssh -L` reach a loopback echo server through
// the host's sshd, `ssh -R` brings a connection made on the host back to the caller's side; the
// bytes round-trip and the trail holds each forward's open, its bytes both ways and its close;
// `ssh -A` lets the host use the caller's agent and `ssh -Y` its X display, recorded the same way.
// (Refusal on a connection without forwarding: exec_test.cpp, PortForwardingIsRefusedAndRecorded.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/integration/support/ssh_server.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

// A TCP echo server on 127.0.0.1: each connection, one at a time, gets back what it sends until
// it half-closes. Bounded: polls of 100 ms until the destructor stops it.
class EchoServer {
 public:
  explicit EchoServer(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 8) != 0)
    {
      if (fd_ >= 0) close(fd_);
      throw std::runtime_error("echo server: cannot listen");
    }
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    while (!stop_) {
      if (poll(&p, 1, 100) > 0) return true;
    }
    return false;
  }
  void run() {
    while (wait_readable(fd_)) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      char buffer[4096];
      while (wait_readable(c)) {
        const ssize_t n = read(c, buffer, sizeof buffer);
        if (n <= 0) break;
        if (write(c, buffer, size_t(n)) != n) break;
      }
      close(c);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Connects to 127.0.0.1:port, retrying while nothing listens yet (bounded); -1 when it never does.
int connect_when_listening(uint16_t port) {
  for (int i = 0; i < 100; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

// Reads until `want` bytes or EOF, at most 10 s.
std::string read_some(int fd, size_t want) {
  std::string out;
  char buffer[4096];
  pollfd p{fd, POLLIN, 0};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.size() < want && std::chrono::steady_clock::now() < end) {
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    out.append(buffer, size_t(n));
  }
  return out;
}

class SshForward : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshServer::available()) GTEST_SKIP() << "OpenSSH (sshd, ssh, ssh-keygen) not installed";
  }

  // Every event of every session, in session order, each with its session's id ("session").
  static std::vector<nlohmann::json> all_events(SshGateway& gw, size_t sessions_ended) {
    std::vector<nlohmann::json> out;
    for (const auto& s : gw.ended_sessions(sessions_ended)) {
      const nlohmann::json session = gw.replay_json(s["session_id"]);
      for (auto e : session["events"]) {
        e["session"] = s["session_id"];
        out.push_back(e);
      }
    }
    return out;
  }
  static std::vector<nlohmann::json> of_type(const std::vector<nlohmann::json>& events, const std::string& type) {
    std::vector<nlohmann::json> out;
    for (const auto& e : events) {
      if (e["type"] == type) out.push_back(e);
    }
    return out;
  }
  static bool same_channel(const nlohmann::json& a, const nlohmann::json& b) {
    return a["session"] == b["session"] && event_field(a, "channel") == event_field(b, "channel");
  }
  // The forward_data text one direction of the forward opened by `open`, in order.
  static std::string data_of(const std::vector<nlohmann::json>& events, const nlohmann::json& open,
                             const std::string& direction) {
    std::string out;
    for (const auto& e : of_type(events, "forward_data")) {
      if (same_channel(e, open) && event_field(e, "direction") == direction) out += event_field(e, "text");
    }
    return out;
  }
  // The statement of a forward of `kind` (direct-tcpip, forwarded-tcpip...), or null.
  static nlohmann::json statement(const std::vector<nlohmann::json>& events, const std::string& kind) {
    for (const auto& e : of_type(events, "statement")) {
      if (event_field(e, "statement_kind") == kind) return e;
    }
    return nullptr;
  }
  static nlohmann::json completion(const std::vector<nlohmann::json>& events, const nlohmann::json& open) {
    for (const auto& e : of_type(events, "completion")) {
      if (same_channel(e, open)) return e;
    }
    return nullptr;
  }
};

TEST_F(SshForward, LocalForwardReachesTheTargetThroughTheHostAndIsRecorded) {
  SshServer server;
  EchoServer echo;
  const std::string target = "127.0.0.1:" + std::to_string(echo.port());
  SshGateway gw(server, {.pinned_host_key = {},
                         .connection_extra = "    forwarding:\n      local: true\n      local_targets: [\"" +
                                             target + "\"]\n"});
  const std::string token = gw.token("alice", {"devs"});

  // ssh -W: the client's stdin and stdout are the forwarded connection.
  const std::string sent = "hello through the tunnel\n";
  auto r = shell("printf '" + sent.substr(0, sent.size() - 1) + "\\n' | " + gw.ssh_line("web", "-W " + target),
                 gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err << gw.log();
  EXPECT_EQ(r.out, sent);

  // ssh -L: a local port of the client, each connection a direct-tcpip channel.
  const uint16_t local_port = free_port();
  Process tunnel({"ssh", "-F", "/dev/null", "-o", "UserKnownHostsFile=" + (gw.dir() / "known_hosts").string(), "-o",
                  "StrictHostKeyChecking=yes", "-o", "PubkeyAuthentication=no", "-o", "ExitOnForwardFailure=yes",
                  "-p", std::to_string(gw.port()), "-N", "-L",
                  "127.0.0.1:" + std::to_string(local_port) + ":" + target, "web@127.0.0.1"},
                 gw.ssh_env(token), gw.dir() / "ssh-L");
  const int fd = connect_when_listening(local_port);
  ASSERT_GE(fd, 0) << tunnel.err();
  const std::string ping = "ping over -L";
  ASSERT_EQ(write(fd, ping.data(), ping.size()), ssize_t(ping.size()));
  EXPECT_EQ(read_some(fd, ping.size()), ping);
  shutdown(fd, SHUT_WR);
  EXPECT_EQ(read_some(fd, 1), "");  // the target's close comes back as EOF
  close(fd);
  tunnel.stop(std::chrono::seconds(5));

  // A target not in forwarding.local_targets is refused (the host's own sshd here).
  r = gw.ssh(token, "web", "", {"-W", "127.0.0.1:" + std::to_string(server.port())});
  EXPECT_EQ(r.exit_code, 255);
  EXPECT_NE(r.err.find("open failed"), std::string::npos) << r.err;

  const auto events = all_events(gw, 3);
  const nlohmann::json open = statement(events, "direct-tcpip");
  ASSERT_FALSE(open.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(open, "text"), target);
  EXPECT_FALSE(event_field(open, "originator").empty());
  EXPECT_EQ(data_of(events, open, "to_target"), sent);
  EXPECT_EQ(data_of(events, open, "from_target"), sent);
  const nlohmann::json closed = completion(events, open);
  ASSERT_FALSE(closed.is_null());
  EXPECT_EQ(event_field(closed, "tag"), "closed");
  EXPECT_EQ(event_field(closed, "bytes_to_target"), std::to_string(sent.size()));
  EXPECT_EQ(event_field(closed, "bytes_from_target"), std::to_string(sent.size()));
  // The -L connection, recorded the same way.
  std::string all_to_target;
  for (const auto& e : of_type(events, "forward_data")) {
    if (event_field(e, "direction") == "to_target") all_to_target += event_field(e, "text");
  }
  EXPECT_NE(all_to_target.find(ping), std::string::npos) << all_to_target;
  std::string refusals;
  for (const auto& e : of_type(events, "error")) refusals += event_field(e, "message") + "\n";
  EXPECT_NE(refusals.find("refused: direct-tcpip (port forwarding) to 127.0.0.1:" + std::to_string(server.port()) +
                          ": not in forwarding.local_targets"),
            std::string::npos)
      << refusals;
}

TEST_F(SshForward, ForwardedBytesBeyondTheRecordingBudgetAreRelayedAndCountedNotRecorded) {
  SshServer server;
  EchoServer echo;
  const std::string target = "127.0.0.1:" + std::to_string(echo.port());
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = "    forwarding:\n      local: true\n"});
  const std::string token = gw.token("alice", {"devs"});
  // 1.5 MiB each way: half a MiB past the per-direction budget (Limits::recorded_stream_bytes_max).
  constexpr size_t kBytes = 3u << 19;
  std::string data;
  while (data.size() < kBytes) data += "0123456789abcdef";
  data.resize(kBytes);
  const std::string file = (gw.dir() / "data").string();
  write_file(file, data);
  auto r = shell(gw.ssh_line("web", "-W " + target) + " < " + file + " | sha256sum; sha256sum < " + file,
                 gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err << gw.log();
  const size_t line = r.out.find('\n');
  ASSERT_NE(line, std::string::npos) << r.out;
  EXPECT_EQ(r.out.substr(0, line + 1), r.out.substr(line + 1));  // what came back is what went

  const auto events = all_events(gw, 1);
  const nlohmann::json open = statement(events, "direct-tcpip");
  ASSERT_FALSE(open.is_null());
  EXPECT_EQ(data_of(events, open, "to_target").size(), size_t(1) << 20);
  EXPECT_EQ(data_of(events, open, "from_target").size(), size_t(1) << 20);
  const nlohmann::json closed = completion(events, open);
  ASSERT_FALSE(closed.is_null());
  EXPECT_EQ(event_field(closed, "bytes_to_target"), std::to_string(kBytes));
  EXPECT_EQ(event_field(closed, "bytes_from_target"), std::to_string(kBytes));
}

TEST_F(SshForward, RemoteForwardBringsTheHostsConnectionBackToTheCaller) {
  SshServer server;
  EchoServer echo;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = "    forwarding:\n      remote: true\n"});
  const std::string token = gw.token("alice", {"devs"});
  const uint16_t remote_port = free_port();
  const std::string listener = "127.0.0.1:" + std::to_string(remote_port);

  // The command runs on the host and connects to the port the host's sshd listens on for the
  // caller; the caller's ssh connects that to the echo server on its side.
  auto r = gw.ssh(token, "web",
                  "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(remote_port) +
                      " && printf 'ping\\n' >&3 && head -c 5 <&3",
                  {"-o", "ExitOnForwardFailure=yes", "-R",
                   listener + ":127.0.0.1:" + std::to_string(echo.port())});
  EXPECT_EQ(r.exit_code, 0) << r.err << gw.log();
  EXPECT_EQ(r.out, "ping\n");

  const auto events = all_events(gw, 1);
  const nlohmann::json request = statement(events, "tcpip-forward");
  ASSERT_FALSE(request.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(request, "text"), listener);
  const nlohmann::json open = statement(events, "forwarded-tcpip");
  ASSERT_FALSE(open.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(open, "text"), listener);
  EXPECT_EQ(data_of(events, open, "to_target"), "ping\n");
  EXPECT_EQ(data_of(events, open, "from_target"), "ping\n");
  const nlohmann::json closed = completion(events, open);
  ASSERT_FALSE(closed.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(closed, "bytes_to_target"), "5");
  EXPECT_EQ(event_field(closed, "bytes_from_target"), "5");
}

TEST_F(SshForward, CancelledRemoteForwardStopsListeningOnTheHost) {
  SshServer server;
  EchoServer echo;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = "    forwarding:\n      remote: true\n"});
  const std::string token = gw.token("alice", {"devs"});
  const std::string listener = "127.0.0.1:" + std::to_string(free_port());
  const std::string forward = "-R " + listener + ":127.0.0.1:" + std::to_string(echo.port());
  const std::string control = "-S " + (gw.dir() / "control").string();
  // A control master holds the session; -O cancel sends cancel-tcpip-forward through it.
  auto r = shell(gw.ssh_line("web", "-M " + control + " -f -N -o ExitOnForwardFailure=yes " + forward),
                 gw.ssh_env(token), std::chrono::seconds(30));
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  const std::string probe = " 'exec 3<>/dev/tcp/" + listener.substr(0, listener.find(':')) + "/" +
                            listener.substr(listener.find(':') + 1) + " && echo open'";
  r = shell(gw.ssh_line("web", control) + probe, gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.out, "open\n") << r.err;
  r = shell(gw.ssh_line("web", control + " -O cancel " + forward), gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = shell(gw.ssh_line("web", control) + probe, gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.out, "") << r.err;  // nothing listens there any more
  shell(gw.ssh_line("web", control + " -O exit"), gw.ssh_env(token), std::chrono::seconds(30));

  const auto events = all_events(gw, 1);
  const nlohmann::json cancel = statement(events, "cancel-tcpip-forward");
  ASSERT_FALSE(cancel.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(cancel, "text"), listener);
  bool cancelled = false;
  for (const auto& e : of_type(events, "completion")) cancelled |= event_field(e, "tag") == "cancelled";
  EXPECT_TRUE(cancelled) << nlohmann::json(events).dump();
}

TEST_F(SshForward, AgentForwardingReachesTheCallersAgentAndIsRecorded) {
  SshServer server;
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = "    forwarding:\n      agent: true\n"});
  const std::string token = gw.token("alice", {"devs"});
  // A fresh agent on the caller's side holding one key; the host lists it through the forward.
  const std::string key = (gw.dir() / "agent_key").string();
  ASSERT_EQ(run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f", key}).exit_code, 0);
  auto r = shell("ssh-agent bash -c 'ssh-add -q " + key + " && " + gw.ssh_line("web", "-A") + " ssh-add -l'",
                 gw.ssh_env(token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err << gw.log();
  const auto fingerprint = run({"ssh-keygen", "-lf", key + ".pub"});
  ASSERT_EQ(fingerprint.exit_code, 0);
  EXPECT_EQ(r.out, fingerprint.out);  // "256 SHA256:... forwarded-key (ED25519)"

  const auto events = all_events(gw, 1);
  ASSERT_FALSE(statement(events, "auth-agent-req").is_null()) << nlohmann::json(events).dump();
  const nlohmann::json open = statement(events, "auth-agent");
  ASSERT_FALSE(open.is_null()) << nlohmann::json(events).dump();
  // The host's request (list identities) went to the agent and its answer came back.
  EXPECT_FALSE(data_of(events, open, "to_target").empty());
  EXPECT_NE(data_of(events, open, "from_target").find("forwarded-key"), std::string::npos);
  const nlohmann::json closed = completion(events, open);
  ASSERT_FALSE(closed.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(closed, "tag"), "closed");
}

TEST_F(SshForward, X11ForwardingReachesTheCallersDisplayAndIsRecorded) {
  if (access("/usr/bin/xauth", X_OK) != 0) GTEST_SKIP() << "xauth not installed";
  SshServer server;
  // The caller's "X display": an echo server on the TCP port of display :N.
  std::unique_ptr<EchoServer> display;
  int number = 0;
  for (int n = 20; n < 64 && !display; ++n) {
    try {
      display = std::make_unique<EchoServer>(uint16_t(6000 + n));
      number = n;
    } catch (const std::exception&) {
    }
  }
  ASSERT_TRUE(display) << "no free X display port";
  SshGateway gw(server, {.pinned_host_key = {}, .connection_extra = "    forwarding:\n      x11: true\n"});
  const std::string token = gw.token("alice", {"devs"});
  // On the host: an X11 connection set-up (little-endian, protocol 11.0, MIT-MAGIC-COOKIE-1 with
  // the cookie sshd stored: 48 bytes) to the display sshd offers; the caller's ssh swaps the
  // cookie and connects it to the caller's display, which echoes it back.
  const std::string script =
      "c=$(XAUTHORITY=" + server.xauthority().string() + " xauth list | awk 'NR==1{print $3}'); "
      "d=${DISPLAY#*:}; exec 3<>/dev/tcp/127.0.0.1/$((6000 + ${d%.*})) && "
      "{ printf 'l\\000\\013\\000\\000\\000\\022\\000\\020\\000\\000\\000MIT-MAGIC-COOKIE-1\\000\\000'; "
      "printf \"$(echo $c | sed 's/../\\\\x&/g')\"; } >&3 && head -c 48 <&3 | wc -c";
  auto env = gw.ssh_env(token);
  env["DISPLAY"] = "127.0.0.1:" + std::to_string(number);
  env["XAUTHORITY"] = (gw.dir() / "caller.Xauthority").string();  // none: ssh makes up a cookie
  env["HOST_SCRIPT"] = script;
  auto r = run({"sh", "-c", gw.ssh_line("web", "-Y") + " \"$HOST_SCRIPT\""}, env, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err << gw.log() << server.log();
  EXPECT_EQ(r.out, "48\n") << r.err;

  const auto events = all_events(gw, 1);
  ASSERT_FALSE(statement(events, "x11-req").is_null()) << nlohmann::json(events).dump();
  const nlohmann::json open = statement(events, "x11");
  ASSERT_FALSE(open.is_null()) << nlohmann::json(events).dump();
  EXPECT_FALSE(event_field(open, "originator").empty());
  // (Binary bytes are escaped in replay's JSON: the sizes come from the close.)
  EXPECT_NE(data_of(events, open, "to_target").find("MIT-MAGIC-COOKIE-1"), std::string::npos);
  EXPECT_NE(data_of(events, open, "from_target").find("MIT-MAGIC-COOKIE-1"), std::string::npos);
  const nlohmann::json closed = completion(events, open);
  ASSERT_FALSE(closed.is_null()) << nlohmann::json(events).dump();
  EXPECT_EQ(event_field(closed, "bytes_to_target"), "48");
  EXPECT_EQ(event_field(closed, "bytes_from_target"), "48");
}

}  // namespace
}  // namespace gh::test
