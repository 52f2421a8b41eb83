// Masking through the real gateway with psql and libpq against a real PostgreSQL: secrets in
// result rows (aliases, expressions, RETURNING, cursors, binary format, values far larger than a
// receive buffer), COPY TO STDOUT data and constraint-error details reach the client masked,
// and no byte of an unmasked secret is in the trail's files. Column rules need RowDescription,
// so COPY data relies on detectors (the ssn detector here).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"

namespace gh::test {
namespace {

constexpr const char* kPolicy = R"(    mask:
      - name: cards
        detect: card
        style: keep_last
        keep: 4
      - name: emails
        detect: email
        style: hash
        hash_key_env: GH_TEST_MASK_KEY
      - name: aws-keys
        detect: aws_access_key_id
      - name: ssn-column
        columns: [ssn]
      - name: ssns
        detect: us_ssn
      - name: tickets
        regex: 'TKT-[0-9]{6}'
        mask_char: '#'
)";

// Secrets as stored, and what must never leave the gateway.
const std::vector<std::string> kSecrets = {
    "4111 1111 1111 1111", "4111111111111111",     "5555555555554444", "alice@example.com",
    "078-05-1120",         "AKIAIOSFODNN7EXAMPLE", "TKT-123456"};

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

struct Masked {
  explicit Masked(std::string engine_extra = "") {
    setenv("GH_TEST_MASK_KEY", "integration-test-mask-key-0123456789", 1);
    GatewayOptions o;
    o.connections[0].extra = kPolicy;
    o.engine_extra = std::move(engine_extra);
    gw = std::make_unique<Gateway>(pg, o);
    auto setup = pg.psql(
        "CREATE SCHEMA app; CREATE TABLE app.customers(id int primary key, name text, email text, "
        "card text UNIQUE, ssn text, note text);"
        "INSERT INTO app.customers VALUES "
        "(1, 'Alice', 'alice@example.com', '4111 1111 1111 1111', '078-05-1120', 'key "
        "AKIAIOSFODNN7EXAMPLE'),"
        "(2, 'Alice again', 'alice@example.com', NULL, NULL, 'see TKT-123456'),"
        "(3, 'Bob', 'no email', 'not a card', NULL, 'plain');");
    if (setup.exit_code != 0) throw std::runtime_error(setup.err);
    token = gw->token("alice", {"devs"});
  }
  PostgresServer pg;
  std::unique_ptr<Gateway> gw;
  std::string token;
};

void expect_no_secret(const std::string& text, const std::string& where) {
  for (const auto& s : kSecrets) EXPECT_EQ(text.find(s), std::string::npos) << s << " in " << where;
}

TEST(Masking, SecretsReachClientAndTrailMasked) {
  Masked m;
  auto r = m.gw->psql(m.token,
                      {"-A", "-F", "|", "-c",
                       "SELECT id, name, email, card, ssn, note FROM app.customers ORDER BY id"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_no_secret(r.out, "SELECT");
  EXPECT_NE(r.out.find("1|Alice|"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("|**** **** **** 1111|***********|key ********************"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("see ##########"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3|Bob|no email|not a card||plain"), std::string::npos)
      << r.out;  // untouched
  // The keyed hash gives the same token for the same address, so joins still line up.
  const size_t first = r.out.find("1|Alice|") + 8;
  const size_t second = r.out.find("2|Alice again|") + 14;
  EXPECT_EQ(r.out.substr(first, 17), r.out.substr(second, 17));
  EXPECT_NE(r.out.substr(first, 17), "alice@example.com");

  // Aliases, expressions, RETURNING, cursors, COPY TO STDOUT, a constraint error's DETAIL.
  auto more = m.gw->psql(
      m.token,
      {"-A", "-c",
       "SELECT card AS c, 'x' || replace(card, ' ', '') AS e FROM app.customers WHERE id = 1", "-c",
       "INSERT INTO app.customers VALUES (4, 'Carol', 'carol@example.org', '5555555555554444', "
       "NULL, '') RETURNING card",
       "-c", "BEGIN", "-c", "DECLARE cur CURSOR FOR SELECT email FROM app.customers WHERE id = 1",
       "-c", "FETCH ALL cur", "-c", "COMMIT", "-c", "COPY app.customers TO STDOUT"});
  ASSERT_EQ(more.exit_code, 0) << more.err;
  expect_no_secret(more.out, "aliases, RETURNING, cursor, COPY");
  EXPECT_NE(more.out.find("**** **** **** 1111|x************1111"), std::string::npos) << more.out;
  EXPECT_NE(more.out.find("************4444"), std::string::npos) << more.out;
  EXPECT_EQ(count(more.out, "************4444"), 2u) << more.out;  // RETURNING and COPY
  auto duplicate = m.gw->psql(
      m.token,
      {"-c", "INSERT INTO app.customers VALUES (5, 'Eve', '', '5555555555554444', NULL, '')"});
  EXPECT_NE(duplicate.exit_code, 0);
  EXPECT_NE(duplicate.err.find("DETAIL:  Key (card)=(************4444) already exists."),
            std::string::npos)
      << duplicate.err;
  expect_no_secret(duplicate.err, "constraint error");

  // Binary result format: text columns are their text on the wire, masked alike.
  PgConn conn = pq_connect(m.gw->conninfo(), m.token);
  ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get());
  PGresult* bin = PQexecParams(conn.get(), "SELECT card FROM app.customers WHERE id = 1", 0,
                               nullptr, nullptr, nullptr, nullptr, 1);
  ASSERT_EQ(PQresultStatus(bin), PGRES_TUPLES_OK) << PQresultErrorMessage(bin);
  EXPECT_EQ(std::string(PQgetvalue(bin, 0, 0), PQgetlength(bin, 0, 0)), "**** **** **** 1111");
  PQclear(bin);
  conn.reset();

  ASSERT_EQ(m.gw->stop(), 0) << m.gw->log();
  // Masked rows are in the trail as the client got them ...
  auto sessions = m.gw->cli({"sessions", "--dir", m.gw->trail_dir().string(), "--json"});
  ASSERT_EQ(sessions.exit_code, 0) << sessions.err;
  std::string replays;
  for (size_t p = sessions.out.find("\"session_id\":\""); p != std::string::npos;
       p = sessions.out.find("\"session_id\":\"", p + 1)) {
    auto replay =
        m.gw->cli({"replay", sessions.out.substr(p + 14, 16), "--dir", m.gw->trail_dir().string()});
    ASSERT_EQ(replay.exit_code, 0) << replay.err;
    replays += replay.out;
  }
  for (const char* rule : {"cards", "emails", "ssn-column", "aws-keys", "tickets"}) {
    EXPECT_NE(replays.find(rule), std::string::npos) << rule << " in " << replays;
  }
  // Replay shows them in tables, masked rows marked with the rules that fired; rows no rule
  // changed are there too, as sent.
  EXPECT_NE(replays.find("(masked: emails,cards,ssn-column,aws-keys)"), std::string::npos) << replays;
  EXPECT_NE(replays.find("| **** **** **** 1111 | *********** |"), std::string::npos) << replays;
  EXPECT_NE(replays.find("3  | Bob         | no email          | not a card          | NULL"),
            std::string::npos)
      << replays;
  // ... and no unmasked secret is anywhere in its files, statements included.
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(m.gw->trail_dir())) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    expect_no_secret(ss.str(), entry.path().string());
    ++files;
  }
  EXPECT_GT(files, 0u);
}

// A value many receive buffers long, with card numbers at every offset class around buffer
// boundaries, is masked exactly like a short one.
TEST(Masking, ValuesSplitAcrossReceiveBuffersAreMaskedWhole) {
  Masked m;
  // 50 MB: 2000 cards, each after a run of 'x' whose length cycles through 4093..4099, then a
  // 42 MB tail, and the last card at the very end.
  auto r = m.gw->psql(
      m.token, {"-A", "-t", "-c",
                "SELECT string_agg(repeat('x', 4093 + i % 7) || ' 4111111111111111 ', '') "
                "|| repeat('y', 42000000) || ' 4111111111111111' FROM generate_series(1, 2000) i"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(r.out.size(), 50000000u);
  EXPECT_EQ(r.out.find("4111111111111111"), std::string::npos);
  EXPECT_EQ(count(r.out, " ************1111"), 2001u);
}

// The peak resident memory of a process, in KiB (VmHWM).
long peak_rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Five million rows (about 190 MB) stream through a masking connection, each scanned and
// masked, in memory bounded per connection: after a first, smaller result has touched the
// receive buffers (4 MiB a shard here) and rings, ten times more rows leave the gateway's peak
// resident size within a few MiB of where it was.
TEST(Masking, FiveMillionRowsStreamInBoundedMemory) {
  Masked m("  buffer_count: 256\n");
  auto rows = [&](int n) {
    return m.gw->psql(
        m.token, {"-A", "-t", "-v", "FETCH_COUNT=50000", "-c", "\\o /dev/null", "-c",
                  "SELECT i, 'row ' || i || ' card 4111111111111111' FROM generate_series(1, " +
                      std::to_string(n) + ") i",
                  "-c", "\\o", "-c", "SELECT 'done'"});
  };
  auto warm = rows(500000);
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  const long before = peak_rss_kib(m.gw->process().pid());
  ASSERT_GT(before, 0);
  auto r = rows(5000000);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("done"), std::string::npos) << r.out;
  const long after = peak_rss_kib(m.gw->process().pid());
  // About 190 MB of rows went through.
  EXPECT_LT(after - before, 8 * 1024) << before << " KiB -> " << after << " KiB";
}

}  // namespace
}  // namespace gh::test
