// A gatehouse process started from the built binary with a generated configuration, in front of
// a PostgresServer. Test support only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/integration/support/postgres_server.hpp"
#include "tests/integration/support/process.hpp"

namespace gh::test {

struct ConnectionSpec {
  std::string name = "appdb";
  std::string method = "scram-sha-256";  // which upstream role (PostgresServer::role) it logs in as
  std::string database = "postgres";
  std::string tls = "disable";  // upstream TLS: disable, require, verify-full
  std::string server_name;      // verify-full name; default the host
  std::vector<std::string> allow_groups = {"devs"};
  uint16_t port = 0;            // default: the PostgresServer's port
  std::string extra;            // more YAML under the connection (4-space indented lines)
};

struct GatewayOptions {
  std::string node_id = "test-node";
  std::vector<ConnectionSpec> connections = {ConnectionSpec{}};
  std::string listen_host = "127.0.0.1";
  bool listener_tls = false;
  bool allow_plaintext = false;
  uint32_t shards = 2;
  int64_t clock_skew_s = 5;
  std::string recording_dir = "trail";  // relative to the gateway's folder, or absolute
  std::string recording_extra;  // more YAML lines under recording:
  std::string engine_extra;     // YAML lines under engine:
  std::string identity_extra;   // YAML lines under identity: (issuers, delegation_depth_max...)
  // The admin API on a free loopback port, with these lines under admin: (admin_groups...).
  std::optional<std::string> admin;
};

class Gateway {
 public:
  Gateway(const PostgresServer& pg, GatewayOptions options = {});
  ~Gateway();

  uint16_t port() const { return port_; }
  std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_port_); }
  const std::filesystem::path& dir() const { return dir_->path(); }
  std::filesystem::path config_file() const { return dir() / "gatehouse.yaml"; }
  std::filesystem::path trail_dir() const { return dir() / options_.recording_dir; }
  std::filesystem::path key_file() const { return dir() / "keys" / "issuer.key"; }
  std::filesystem::path ca_file() const { return dir() / "certs" / "ca.pem"; }

  // A token from the built-in issuer.
  std::string token(const std::string& subject, const std::vector<std::string>& groups,
                    const std::string& ttl = "10m", const std::vector<std::string>& actors = {});
  std::string conninfo(const std::string& connection = "appdb", const std::string& user = "alice",
                       const std::string& sslmode = "disable") const;
  // psql through the gateway with the token as password; extra args follow the connection.
  RunResult psql(const std::string& token, const std::vector<std::string>& args,
                 const std::string& connection = "appdb", const std::string& sslmode = "disable") const;
  // Any gatehouse subcommand, e.g. {"verify", trail_dir()}.
  RunResult cli(const std::vector<std::string>& args) const;

  // SIGTERM and wait: the exit code (0 after a clean drain).
  int stop();
  std::string log() const { return process_ ? process_->err() : std::string(); }
  Process& process() { return *process_; }

 private:
  GatewayOptions options_;
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::unique_ptr<Process> process_;
};

std::string gatehouse_binary();

}  // namespace gh::test
