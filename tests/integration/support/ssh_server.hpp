// OpenSSH sshd (Debian openssh-server) started as a child on a free loopback port, with a
// throwaway host key and one authorized client key made by ssh-keygen; and a gatehouse process
// with an SSH listener in front of it. Test support only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/support/process.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {

// Connection lines (SshGatewayOptions::connection_extra) the exec and shell tests share: a deny
// rule on `rm` and a mask rule on an API key.
inline constexpr const char* kSshGuardrails =
    "    deny:\n"
    "      - name: no-rm\n"
    "        regex: '(^|[;&| ])rm( |$)'\n"
    "    mask:\n"
    "      - name: api-key\n"
    "        regex: 'sk_live_[A-Za-z0-9]{8,}'\n";

class SshServer {
 public:
  // Whether sshd and ssh-keygen are installed (tests GTEST_SKIP without them).
  static bool available();
  SshServer();
  ~SshServer();

  uint16_t port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_->path(); }
  // The key sshd accepts (what gatehouse holds) and the host key it presents (.pub line).
  std::filesystem::path client_key() const { return dir() / "client_key"; }
  std::filesystem::path host_key_pub() const { return dir() / "host_key.pub"; }
  std::string user() const { return user_; }
  // Where sshd's xauth keeps the cookies of X11 sessions.
  std::filesystem::path xauthority() const { return dir() / "Xauthority"; }
  std::string log() const { return process_ ? process_->err() : std::string(); }

 private:
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  std::string user_;
  std::unique_ptr<Process> process_;
};

struct SshGatewayOptions {
  // The host key gatehouse pins for the upstream; default the server's own.
  std::filesystem::path pinned_host_key;
  std::string connection_extra;  // YAML lines under the connection (4-space indented)
  std::optional<std::string> admin = std::nullopt;  // an admin API on a free port, these lines under `admin:`
};

class SshGateway {
 public:
  SshGateway(const SshServer& server, SshGatewayOptions options = {});
  ~SshGateway();

  uint16_t port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_->path(); }
  std::filesystem::path config_file() const { return dir() / "gatehouse.yaml"; }
  std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_port_); }
  std::string token(const std::string& subject, const std::vector<std::string>& groups);
  // The real ssh client through the gateway: `connection@127.0.0.1 command`, the token given as
  // password through SSH_ASKPASS, the gateway's host key checked strictly.
  // `options` go before the destination (e.g. "-vv").
  RunResult ssh(const std::string& token, const std::string& connection, const std::string& command,
                const std::vector<std::string>& options = {});
  // The same client as a shell command line up to the destination (for pipelines through
  // shell()), `options` before it, and the environment that hands it the token.
  std::string ssh_line(const std::string& connection, const std::string& options = {}) const;
  std::map<std::string, std::string> ssh_env(const std::string& token) const;
  RunResult cli(const std::vector<std::string>& args) const;
  // Sessions that named a user (`gatehouse sessions --json`), waiting (bounded) for `count` ended
  // ones: the trail is flushed every 20 ms. (The readiness probe, a TCP connect without SSH, is
  // recorded too, as a failed handshake without a user.)
  nlohmann::json ended_sessions(size_t count) const;
  nlohmann::json replay_json(const std::string& session_id) const;  // `gatehouse replay --json`
  std::string log() const { return process_ ? process_->err() : std::string(); }

 private:
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace gh::test
