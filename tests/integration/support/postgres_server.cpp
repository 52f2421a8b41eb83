// initdb/pg_ctl fixture: a real PostgreSQL on 127.0.0.1, run as the postgres user when the
// tests run as root (PostgreSQL refuses to run as root). Test support only.
#include "tests/integration/support/postgres_server.hpp"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "core/tls/self_signed.hpp"

namespace gh::test {
namespace {

const PgRole kRoles[] = {
    {"app_scram", "scram-pw-91d2", "scram-sha-256"},
    {"app_md5", "md5-pw-44be", "md5"},
    {"app_plain", "plain-pw-0c7e", "password"},
    {"app_trust", "", "trust"},
};

std::vector<std::string> as_postgres(bool root, std::vector<std::string> argv) {
  if (!root) return argv;
  std::vector<std::string> wrapped = {"runuser", "-u", "postgres", "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

void check(const RunResult& r, const std::string& what) {
  if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + r.out + r.err);
}

}  // namespace

std::filesystem::path postgres_bin_dir() {
  std::filesystem::path best;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql")) {
    if (std::filesystem::exists(entry.path() / "bin" / "initdb") &&
        (best.empty() || entry.path().filename().string() > best.parent_path().filename().string()))
      best = entry.path() / "bin";
  }
  if (best.empty()) throw std::runtime_error("no PostgreSQL server under /usr/lib/postgresql");
  return best;
}

const PgRole& PostgresServer::role(const std::string& method) {
  for (const auto& r : kRoles) {
    if (r.method == method) return r;
  }
  throw std::runtime_error("no role for method " + method);
}

PostgresServer::PostgresServer(PostgresOptions options)
    : options_(std::move(options)), dir_(std::make_unique<TempDir>()), root_(geteuid() == 0) {
  port_ = free_port();
  const auto bin = postgres_bin_dir();
  const auto data = dir() / "data";
  const auto pwfile = dir() / "superuser.pw";
  write_file(pwfile, std::string(kSuperuserPassword) + "\n");
  if (root_) check(run({"chown", "-R", "postgres", dir().string()}), "chown");
  check(run(as_postgres(root_, {(bin / "initdb").string(), "-D", data.string(), "-U", kSuperuser,
                                "--pwfile", pwfile.string(), "-A", "scram-sha-256", "-E", "UTF8",
                                "--no-sync"})),
        "initdb");

  std::string conf = "listen_addresses = '127.0.0.1'\nport = " + std::to_string(port_) +
                     "\nunix_socket_directories = '" + dir().string() +
                     "'\nfsync = off\nlog_connections = on\nmax_connections = 200\n";
  if (options_.ssl) {
    auto certs = tls::write_self_signed(dir() / "certs", "localhost");
    if (!certs) throw std::runtime_error(certs.error().message);
    if (root_) check(run({"chown", "-R", "postgres", (dir() / "certs").string()}), "chown certs");
    conf += "ssl = on\nssl_cert_file = '" + certs->cert_file + "'\nssl_key_file = '" +
            certs->key_file + "'\n";
  }
  for (const auto& [k, v] : options_.settings) conf += k + " = " + v + "\n";
  write_file(data / "postgresql.auto.conf", conf);

  std::string hba = "local all all trust\n";
  for (const auto& r : kRoles) hba += "host all " + r.name + " 127.0.0.1/32 " + r.method + "\n";
  hba += "host all all 127.0.0.1/32 scram-sha-256\n";
  write_file(data / "pg_hba.conf", hba);
  if (root_) check(run({"chown", "-R", "postgres", data.string()}), "chown data");
  start();

  for (const auto& r : kRoles) {
    const std::string encryption = r.method == "md5" ? "md5" : "scram-sha-256";
    std::string sql = "SET password_encryption = '" + encryption + "'; CREATE ROLE " + r.name +
                      " LOGIN SUPERUSER";
    if (!r.password.empty()) sql += " PASSWORD '" + r.password + "'";
    check(psql(sql), "create role " + r.name);
  }
}

PostgresServer::~PostgresServer() {
  run(as_postgres(root_, {(postgres_bin_dir() / "pg_ctl").string(), "-D", (dir() / "data").string(),
                          "-m", "immediate", "-w", "stop"}),
      {}, std::chrono::seconds(30));
}

void PostgresServer::start() {
  const auto bin = postgres_bin_dir();
  check(run(as_postgres(root_, {(bin / "pg_ctl").string(), "-D", (dir() / "data").string(), "-l",
                                (dir() / "server.log").string(), "-w", "-t", "60", "start"}),
            {}, std::chrono::seconds(90)),
        "pg_ctl start");
  wait_ready();
}

void PostgresServer::wait_ready() const {
  for (int i = 0; i < 300; ++i) {
    if (psql("SELECT 1").exit_code == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("PostgreSQL did not become ready: " + log());
}

void PostgresServer::restart() {
  run(as_postgres(root_, {(postgres_bin_dir() / "pg_ctl").string(), "-D", (dir() / "data").string(),
                          "-m", "immediate", "-w", "stop"}),
      {}, std::chrono::seconds(30));
  start();
}

std::string PostgresServer::conninfo(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + kSuperuser +
         " dbname=" + database + " sslmode=disable";
}

RunResult PostgresServer::psql(const std::string& sql, const std::string& database) const {
  return run({"psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo(database), "-c", sql},
             {{"PGPASSWORD", kSuperuserPassword}}, std::chrono::seconds(120));
}

std::string PostgresServer::log() const { return read_file(dir() / "server.log"); }

}  // namespace gh::test
