// A throwaway PostgreSQL cluster from Debian's packages (initdb + pg_ctl) on a free loopback
// port, for integration tests. Test support only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "tests/integration/support/process.hpp"

namespace gh::test {

struct PostgresOptions {
  bool ssl = false;  // server certificate from a throwaway CA (ca_file() to verify it)
  std::map<std::string, std::string> settings;  // extra postgresql.conf lines
};

// Roles the cluster is created with, one per upstream authentication method.
struct PgRole {
  std::string name;
  std::string password;
  std::string method;  // "scram-sha-256", "md5", "password" or "trust"
};

class PostgresServer {
 public:
  explicit PostgresServer(PostgresOptions options = {});
  ~PostgresServer();

  uint16_t port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_->path(); }
  std::filesystem::path ca_file() const { return dir() / "certs" / "ca.pem"; }
  // Superuser, password-authenticated with SCRAM.
  static constexpr const char* kSuperuser = "gh_admin";
  static constexpr const char* kSuperuserPassword = "admin-secret-7f3a";
  static const PgRole& role(const std::string& method);  // scram-sha-256, md5, password, trust

  // psql straight to the server (not through the gateway) as the superuser.
  RunResult psql(const std::string& sql, const std::string& database = "postgres") const;
  std::string conninfo(const std::string& database = "postgres") const;
  std::string log() const;
  // pg_ctl stop -m immediate and start again (e.g. after a crashed backend).
  void restart();
  void wait_ready() const;

 private:
  void start();

  PostgresOptions options_;
  std::unique_ptr<TempDir> dir_;
  uint16_t port_ = 0;
  bool root_ = false;
};

// Directory of the newest installed PostgreSQL server binaries (initdb, pg_ctl).
std::filesystem::path postgres_bin_dir();

}  // namespace gh::test
