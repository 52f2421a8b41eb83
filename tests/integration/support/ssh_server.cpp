// sshd and gatehouse-with-SSH fixtures. Test support only.
#include "tests/integration/support/ssh_server.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

namespace gh::test {

namespace {

constexpr const char* kSshd = "/usr/sbin/sshd";

void keygen(const std::filesystem::path& file) {
  auto r = run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file.string()});
  if (r.exit_code != 0) throw std::runtime_error("ssh-keygen: " + r.err);
}

std::string first_line(const std::filesystem::path& file) {
  std::string text = read_file(file);
  return text.substr(0, text.find('\n'));
}

}  // namespace

bool SshServer::available() {
  return access(kSshd, X_OK) == 0 && run({"ssh-keygen", "-?"}).exit_code != 127 &&
         run({"ssh", "-V"}).exit_code == 0;
}

SshServer::SshServer() : dir_(std::make_unique<TempDir>()) {
  keygen(dir() / "host_key");
  keygen(client_key());
  write_file(dir() / "authorized_keys", read_file(client_key().string() + ".pub"));
  const passwd* pw = getpwuid(getuid());
  if (pw == nullptr) throw std::runtime_error("no passwd entry for the test user");
  user_ = pw->pw_name;
  // sshd started by root wants its privilege separation directory (the Debian package makes it
  // at boot; containers may lack it).
  if (getuid() == 0) mkdir("/run/sshd", 0755);
  port_ = free_port();
  // X11 sessions (sshd runs xauth to store the caller's cookie): the cookie goes to a file of the
  // fixture's, never to the test user's ~/.Xauthority.
  write_file(dir() / "xauth", "#!/bin/sh\nXAUTHORITY=" + xauthority().string() + " exec /usr/bin/xauth \"$@\"\n");
  chmod((dir() / "xauth").c_str(), 0755);
  write_file(dir() / "sshd_config",
             "ListenAddress 127.0.0.1:" + std::to_string(port_) + "\nHostKey " +
                 (dir() / "host_key").string() + "\nAuthorizedKeysFile " +
                 (dir() / "authorized_keys").string() +
                 "\nPidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n"
                 "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
                 "LogLevel VERBOSE\nX11Forwarding yes\nXAuthLocation " + (dir() / "xauth").string() + "\n");
  process_ = std::make_unique<Process>(
      std::vector<std::string>{kSshd, "-D", "-e", "-f", (dir() / "sshd_config").string()},
      std::map<std::string, std::string>{}, dir() / "sshd");
  if (!wait_for_port(port_, std::chrono::seconds(10)))
    throw std::runtime_error("sshd did not start: " + process_->err());
}

SshServer::~SshServer() {
  if (process_) process_->stop(std::chrono::seconds(5));
}

SshGateway::SshGateway(const SshServer& server, SshGatewayOptions options)
    : dir_(std::make_unique<TempDir>()) {
  keygen(dir() / "gateway_host_key");
  port_ = free_port();
  const std::filesystem::path pinned =
      options.pinned_host_key.empty() ? server.host_key_pub() : options.pinned_host_key;
  std::string yaml = "node_id: ssh-test\nengine:\n  shards: 1\n  drain_timeout_ms: 5000\n";
  yaml += "listeners:\n  - name: ssh\n    protocol: ssh\n    address: 127.0.0.1:" +
          std::to_string(port_) + "\n    ssh:\n      host_key_file: gateway_host_key\n";
  yaml += "identity:\n  builtin:\n    key_file: keys/issuer.key\n    jwks_file: keys/jwks.json\n"
          "    issuer: gatehouse-test\n    audience: gatehouse\n";
  yaml += "connections:\n  - name: web\n    protocol: ssh\n    allow_groups: [devs]\n"
          "    upstream:\n      host: 127.0.0.1\n      port: " + std::to_string(server.port()) +
          "\n      user: " + server.user() + "\n      private_key_file: " + server.client_key().string() +
          "\n      host_key_file: " + pinned.string() + "\n" + options.connection_extra;
  yaml += "recording:\n  dir: trail\n  flush_interval_ms: 20\n";
  if (options.admin) {
    admin_port_ = free_port();
    yaml += "admin:\n  address: 127.0.0.1:" + std::to_string(admin_port_) + "\n" + *options.admin;
  }
  write_file(config_file(), yaml);
  auto r = cli({"keygen", "-c", config_file().string()});
  if (r.exit_code != 0) throw std::runtime_error("keygen: " + r.err);
  // The client checks the gateway's host key strictly against this file.
  write_file(dir() / "known_hosts", "[127.0.0.1]:" + std::to_string(port_) + " " +
                                        first_line(dir() / "gateway_host_key.pub") + "\n");
  write_file(dir() / "askpass", "#!/bin/sh\nprintf '%s\\n' \"$GH_TEST_TOKEN\"\n");
  chmod((dir() / "askpass").c_str(), 0700);
  process_ = std::make_unique<Process>(
      std::vector<std::string>{GH_GATEHOUSE_BIN, "serve", "-c", config_file().string()},
      std::map<std::string, std::string>{}, dir() / "gatehouse");
  if (!wait_for_port(port_, std::chrono::seconds(20)) ||
      (admin_port_ != 0 && !wait_for_port(admin_port_, std::chrono::seconds(20))))
    throw std::runtime_error("gatehouse did not start: " + process_->err());
}

SshGateway::~SshGateway() {
  if (process_) process_->stop(std::chrono::seconds(10));
}

std::string SshGateway::token(const std::string& subject, const std::vector<std::string>& groups) {
  std::vector<std::string> args = {"token", "issue", "-c", config_file().string(), "--sub", subject,
                                   "--ttl", "10m"};
  for (const auto& g : groups) args.insert(args.end(), {"--groups", g});
  auto r = cli(args);
  if (r.exit_code != 0) throw std::runtime_error("token issue: " + r.err);
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

RunResult SshGateway::ssh(const std::string& token, const std::string& connection,
                          const std::string& command, const std::vector<std::string>& options) {
  std::vector<std::string> argv = {"ssh", "-F", "/dev/null", "-o",
                                   "UserKnownHostsFile=" + (dir() / "known_hosts").string(), "-o",
                                   "StrictHostKeyChecking=yes", "-o", "PubkeyAuthentication=no", "-o",
                                   "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10", "-p",
                                   std::to_string(port_)};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.insert(argv.end(), {connection + "@127.0.0.1", command});
  return run(argv, ssh_env(token), std::chrono::seconds(30));
}

std::string SshGateway::ssh_line(const std::string& connection, const std::string& options) const {
  return "ssh -F /dev/null -o UserKnownHostsFile=" + (dir() / "known_hosts").string() +
         " -o StrictHostKeyChecking=yes -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1"
         " -o ConnectTimeout=10 -p " + std::to_string(port_) + " " + options + " " + connection +
         "@127.0.0.1";
}

std::map<std::string, std::string> SshGateway::ssh_env(const std::string& token) const {
  return {{"SSH_ASKPASS", (dir() / "askpass").string()},
          {"SSH_ASKPASS_REQUIRE", "force"},
          {"DISPLAY", ":0"},
          {"GH_TEST_TOKEN", token}};
}

RunResult SshGateway::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {GH_GATEHOUSE_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {}, std::chrono::seconds(60));
}

nlohmann::json SshGateway::ended_sessions(size_t count) const {
  nlohmann::json named;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto r = cli({"sessions", "-c", config_file().string(), "--json"});
    if (r.exit_code == 0) {
      named = nlohmann::json::array();
      size_t ended = 0;
      for (const auto& s : nlohmann::json::parse(r.out)) {
        if (s.value("user", "").empty()) continue;
        named.push_back(s);
        ended += s.value("ended", false) ? 1 : 0;
      }
      if (ended >= count) return named;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return named;
}

nlohmann::json SshGateway::replay_json(const std::string& session_id) const {
  auto r = cli({"replay", "-c", config_file().string(), "--json", session_id});
  if (r.exit_code != 0) throw std::runtime_error("gatehouse replay failed: " + r.err);
  return nlohmann::json::parse(r.out);
}

}  // namespace gh::test
