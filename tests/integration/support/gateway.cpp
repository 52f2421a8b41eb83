// gatehouse fixture: generated config, built-in issuer keys, `gatehouse serve` on a free port.
// Test support only.
#include "tests/integration/support/gateway.hpp"

#include <stdexcept>
#include <thread>

#include "core/tls/self_signed.hpp"

namespace gh::test {

std::string gatehouse_binary() { return GH_GATEHOUSE_BIN; }

Gateway::Gateway(const PostgresServer& pg, GatewayOptions options)
    : options_(std::move(options)), dir_(std::make_unique<TempDir>()) {
  port_ = free_port();
  std::string yaml = "node_id: " + options_.node_id + "\n";
  yaml += "engine:\n  shards: " + std::to_string(options_.shards) + "\n  drain_timeout_ms: 5000\n" +
          options_.engine_extra;
  yaml += "listeners:\n  - name: pg\n    protocol: postgres\n    address: " + options_.listen_host +
          ":" + std::to_string(port_) + "\n";
  if (options_.allow_plaintext) yaml += "    allow_plaintext: true\n";
  if (options_.listener_tls) {
    auto certs = tls::write_self_signed(dir() / "certs", "localhost");
    if (!certs) throw std::runtime_error(certs.error().message);
    yaml += "    tls:\n      cert_file: " + certs->cert_file + "\n      key_file: " + certs->key_file + "\n";
  }
  yaml += "identity:\n  clock_skew_s: " + std::to_string(options_.clock_skew_s) +
          "\n  builtin:\n    key_file: keys/issuer.key\n    jwks_file: keys/jwks.json\n"
          "    issuer: gatehouse-test\n    audience: gatehouse\n" + options_.identity_extra;
  yaml += "connections:\n";
  for (const auto& c : options_.connections) {
    const PgRole& role = PostgresServer::role(c.method);
    yaml += "  - name: " + c.name + "\n    allow_groups: [";
    for (size_t i = 0; i < c.allow_groups.size(); ++i) yaml += (i ? ", " : "") + c.allow_groups[i];
    yaml += "]\n    upstream:\n      host: 127.0.0.1\n      port: " +
            std::to_string(c.port ? c.port : pg.port()) + "\n      database: " + c.database +
            "\n      user: " + role.name + "\n      tls: " + c.tls + "\n";
    if (!role.password.empty()) {
      write_file(dir() / (c.name + ".pw"), role.password + "\n");
      yaml += "      password_file: " + c.name + ".pw\n";
    }
    if (c.tls == "verify-full") yaml += "      ca_file: " + pg.ca_file().string() + "\n";
    if (!c.server_name.empty()) yaml += "      server_name: " + c.server_name + "\n";
    yaml += c.extra;
  }
  yaml += "recording:\n  dir: " + options_.recording_dir + "\n  flush_interval_ms: 20\n" +
          options_.recording_extra;
  if (options_.admin) {
    admin_port_ = free_port();
    yaml += "admin:\n  address: 127.0.0.1:" + std::to_string(admin_port_) + "\n" + *options_.admin;
  }
  write_file(config_file(), yaml);

  auto keygen = cli({"keygen", "-c", config_file().string()});
  if (keygen.exit_code != 0) throw std::runtime_error("keygen: " + keygen.err);
  process_ = std::make_unique<Process>(
      std::vector<std::string>{gatehouse_binary(), "serve", "-c", config_file().string()},
      std::map<std::string, std::string>{}, dir() / "gatehouse");
  if (!wait_for_port(port_, std::chrono::seconds(20)) ||
      (admin_port_ != 0 && !wait_for_port(admin_port_, std::chrono::seconds(20))))
    throw std::runtime_error("gatehouse did not start: " + process_->err());
}

Gateway::~Gateway() {
  if (process_) process_->stop(std::chrono::seconds(10));
}

std::string Gateway::token(const std::string& subject, const std::vector<std::string>& groups,
                           const std::string& ttl, const std::vector<std::string>& actors) {
  std::vector<std::string> args = {"token", "issue", "-c", config_file().string(), "--sub", subject,
                                   "--ttl", ttl};
  for (const auto& g : groups) args.insert(args.end(), {"--groups", g});
  for (const auto& a : actors) args.insert(args.end(), {"--act", a});
  auto r = cli(args);
  if (r.exit_code != 0) throw std::runtime_error("token issue: " + r.err);
  while (!r.out.empty() && (r.out.back() == '\n')) r.out.pop_back();
  return r.out;
}

std::string Gateway::conninfo(const std::string& connection, const std::string& user,
                              const std::string& sslmode) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " dbname=" + connection +
         " sslmode=" + sslmode + " connect_timeout=10";
}

RunResult Gateway::psql(const std::string& token, const std::vector<std::string>& args,
                        const std::string& connection, const std::string& sslmode) const {
  std::vector<std::string> argv = {"psql", "-X", "-v", "ON_ERROR_STOP=1", "-d",
                                   conninfo(connection, "alice", sslmode)};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {{"PGPASSWORD", token}}, std::chrono::seconds(300));
}

RunResult Gateway::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {gatehouse_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, {}, std::chrono::seconds(120));
}

int Gateway::stop() {
  if (!process_) return -1;
  return process_->stop(std::chrono::seconds(20));
}

}  // namespace gh::test
