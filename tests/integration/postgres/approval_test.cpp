// Approval holds through the real gateway in front of a real PostgreSQL: psql (simple protocol)
// and a raw client (extended protocol, pipelined) are held under approve rules while approvers
// use `gatehouse review`; each case asserts what the client got and what the table holds, and
// the trail records requests, decisions and approvers. A loopback listener receives the webhook.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "protocols/postgres/codec/encoder.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pg_wire.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

using nlohmann::json;

constexpr const char* kPolicy = R"(    approve:
      - name: schema-changes
        statements: [alter]
        approvers: [dba]
        timeout_s: 60
      - name: two-person-updates
        statements: [update]
        approvers: [dba, sre]
        approvals: 2
        timeout_s: 60
      - name: deletes
        statements: [delete]
        approvers: [dba]
        timeout_s: 1
)";

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// The SHA-256 of text as coreutils computes it: the test does not trust the gateway's own hash.
std::string sha256_of(const std::string& text) {
  const RunResult s = shell("printf '%s' \"$GH_TEXT\" | sha256sum | cut -d' ' -f1", {{"GH_TEXT", text}});
  return trimmed(s.out);
}

// One HTTP endpoint on loopback that keeps the bodies of the POSTs it receives.
class LoopbackHook {
 public:
  LoopbackHook() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 8) != 0)
      throw std::runtime_error("hook listener");
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackHook() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hooks/reviews"; }
  std::vector<std::string> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) != 1) continue;
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string in;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (std::chrono::steady_clock::now() < deadline) {
        const size_t head = in.find("\r\n\r\n");
        if (head != std::string::npos) {
          const size_t at = in.find("Content-Length: ");
          const size_t length = at == std::string::npos ? 0 : std::stoul(in.substr(at + 16));
          if (in.size() >= head + 4 + length) break;
        }
        pollfd q{c, POLLIN, 0};
        if (poll(&q, 1, 100) != 1) continue;
        char buffer[4096];
        const ssize_t n = recv(c, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        in.append(buffer, size_t(n));
      }
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      (void)send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
      close(c);
      std::lock_guard lock(mutex_);
      requests_.push_back(in);
    }
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

struct Approvals {
  explicit Approvals(const std::string& webhook_url = {}, uint32_t shards = 2)
      : gw(pg, options(webhook_url, shards)) {
    auto setup = pg.psql(
        "CREATE SCHEMA app; CREATE TABLE app.accounts(id int primary key, note text);"
        "INSERT INTO app.accounts VALUES (1, 'one'), (2, 'two'), (3, 'three');"
        "GRANT ALL ON SCHEMA app TO PUBLIC; ALTER TABLE app.accounts OWNER TO " +
        PostgresServer::role("scram-sha-256").name + ";");
    if (setup.exit_code != 0) throw std::runtime_error(setup.err);
    // alice's CI runner asks; bob and carol may approve; ci-runner is in the dba group too, but
    // in alice's chain.
    requester = gw.token("alice", {"devs", "dba"}, "10m", {"ci-runner"});
    bob = gw.token("bob", {"dba"});
    carol = gw.token("carol", {"sre"});
  }
  static GatewayOptions options(const std::string& webhook_url, uint32_t shards) {
    GatewayOptions o;
    o.shards = shards;
    o.connections[0].extra = kPolicy;
    o.admin = "  admin_groups: [gh-admins]\n";
    if (!webhook_url.empty()) *o.admin += "  reviews:\n    webhook_url: " + webhook_url + "\n";
    return o;
  }

  RunResult review(const std::vector<std::string>& args, const std::string& token) const {
    std::vector<std::string> argv = {"review"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--admin", gw.admin_url(), "--token", token});
    return gw.cli(argv);
  }
  // The pending reviews bob sees, polled until `count` are there (bounded).
  json pending(size_t count) const {
    json list = json::array();
    for (int i = 0; i < 200; ++i) {
      const RunResult r = review({"list", "--json"}, bob);
      if (r.exit_code != 0) throw std::runtime_error(r.err);
      list = json::array();
      const json all = json::parse(r.out);
      for (const json& v : all["reviews"]) {
        if (v["state"] == "pending") list.push_back(v);
      }
      if (list.size() >= count) return list;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return list;
  }
  std::string table() const { return trimmed(pg.psql("SELECT string_agg(id || ':' || note, ',' ORDER BY id) FROM app.accounts").out); }
  std::string columns() const {
    return trimmed(pg.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                           "information_schema.columns WHERE table_schema = 'app' AND table_name = "
                           "'accounts'").out);
  }
  Process held_psql(const std::string& sql, const std::string& name) const {
    return Process({"psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", gw.conninfo(), "-c", sql},
                   {{"PGPASSWORD", requester}}, gw.dir() / name);
  }

  PostgresServer pg;
  Gateway gw;
  std::string requester, bob, carol;
};

// The client's statement waits for one approval, the shard keeps serving others meanwhile,
// neither the requester nor its agent may approve, and once approved the statement runs and
// its result comes back; a denied one never runs. The webhook hears of each review.
TEST(Approvals, ApprovedStatementRunsAndDeniedOneNeverDoes) {
  LoopbackHook hook;
  Approvals a(hook.url(), /*shards=*/1);
  const std::string alter = "ALTER TABLE app.accounts ADD COLUMN reviewed boolean";
  Process held = a.held_psql(alter, "alter");
  json list = a.pending(1);
  ASSERT_EQ(list.size(), 1u) << held.err() << a.gw.log();
  const json shown = list[0];
  const std::string id = shown["id"];
  EXPECT_EQ(shown["statement"], alter);
  EXPECT_EQ(shown["sha256"], sha256_of(alter));
  EXPECT_EQ(shown["rule"], "schema-changes");
  EXPECT_EQ(shown["requester"], "alice \u2192 ci-runner");

  // Held, not forwarded; the only shard still serves another client.
  EXPECT_TRUE(held.running());
  EXPECT_EQ(a.columns(), "id,note");
  const RunResult other =
      a.gw.psql(a.gw.token("erin", {"devs"}), {"-A", "-t", "-c", "SELECT count(*) FROM app.accounts"});
  EXPECT_EQ(other.exit_code, 0) << other.err;
  EXPECT_EQ(trimmed(other.out), "3");

  // The requester (even with a dba token) and its own agent cannot approve it.
  for (const std::string& self : {a.gw.token("alice", {"dba"}), a.gw.token("ci-runner", {"dba"}),
                                  a.requester}) {
    const RunResult refused = a.review({"approve", id}, self);
    EXPECT_NE(refused.exit_code, 0);
    EXPECT_NE(refused.err.find("requester_chain"), std::string::npos) << refused.err;
  }
  const RunResult outsider = a.review({"approve", id}, a.gw.token("dave", {"devs"}));
  EXPECT_NE(outsider.exit_code, 0);
  EXPECT_NE(outsider.err.find("(HTTP 404)"), std::string::npos) << outsider.err;
  EXPECT_TRUE(held.running());

  const RunResult shown_cli = a.review({"show", id}, a.bob);
  ASSERT_EQ(shown_cli.exit_code, 0) << shown_cli.err;
  EXPECT_NE(shown_cli.out.find(alter), std::string::npos);
  const RunResult approved = a.review({"approve", id}, a.bob);
  ASSERT_EQ(approved.exit_code, 0) << approved.err;
  EXPECT_EQ(trimmed(approved.out), "review " + id + " approved");

  ASSERT_EQ(held.wait(std::chrono::seconds(20)), 0) << held.err() << a.gw.log();
  EXPECT_NE(held.err().find("NOTICE:  gatehouse holds this statement for approval: review " + id),
            std::string::npos)
      << held.err();
  EXPECT_NE(held.err().find("gatehouse review approve " + id), std::string::npos) << held.err();
  EXPECT_EQ(trimmed(held.out()), "ALTER TABLE");
  EXPECT_EQ(a.columns(), "id,note,reviewed");

  // Denied: an error naming the review, rule and reason; the table is unchanged.
  Process denied = a.held_psql("ALTER TABLE app.accounts DROP COLUMN note", "drop");
  list = a.pending(1);
  ASSERT_EQ(list.size(), 1u) << denied.err();
  const std::string denied_id = list[0]["id"];
  const RunResult no = a.review({"deny", denied_id, "--reason", "not in the change window"}, a.bob);
  ASSERT_EQ(no.exit_code, 0) << no.err;
  EXPECT_NE(denied.wait(std::chrono::seconds(20)), 0);
  EXPECT_NE(denied.err().find("ERROR:  statement refused by gatehouse: review " + denied_id +
                              " (rule \"schema-changes\") was denied"),
            std::string::npos)
      << denied.err();
  EXPECT_NE(denied.err().find("DETAIL:  denied by bob: not in the change window"), std::string::npos)
      << denied.err();
  EXPECT_EQ(a.columns(), "id,note,reviewed");
  // Decided once.
  EXPECT_NE(a.review({"approve", denied_id}, a.bob).exit_code, 0);

  // One webhook POST per review, with a Slack-style text naming it.
  std::vector<std::string> posts;
  for (int i = 0; i < 100 && posts.size() < 2; ++i) {
    posts = hook.requests();
    if (posts.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(posts.size(), 2u);
  EXPECT_EQ(posts[0].rfind("POST /hooks/reviews HTTP/1.1\r\n", 0), 0u) << posts[0];
  const json first = json::parse(posts[0].substr(posts[0].find("\r\n\r\n") + 4), nullptr, false);
  ASSERT_TRUE(first.is_object()) << posts[0];
  EXPECT_NE(first["text"].get<std::string>().find("gatehouse review " + id), std::string::npos);
  EXPECT_NE(first["text"].get<std::string>().find(alter), std::string::npos);
  EXPECT_EQ(first["review"]["sha256"], shown["sha256"]);

  // The trail: the session's requests and decisions with their approvers, and the admin side's
  // decisions with the caller's chain.
  ASSERT_EQ(a.gw.stop(), 0) << a.gw.log();
  std::vector<json> reviews;
  std::string approved_session;
  for (const json& s : sessions_of_user(trail_sessions(a.gw), "alice")) {
    if (s["chain"] != json::array({"alice", "ci-runner"})) continue;
    for (const json& e : events_of_type(trail_replay(a.gw, s["session_id"]), "review")) {
      if (reviews.empty()) approved_session = s["session_id"];
      reviews.push_back(e);
    }
  }
  // As an auditor reads it.
  const RunResult replayed =
      a.gw.cli({"replay", "--dir", a.gw.trail_dir().string(), approved_session});
  ASSERT_EQ(replayed.exit_code, 0) << replayed.err;
  EXPECT_NE(replayed.out.find("review " + id + " approved by bob"), std::string::npos)
      << replayed.out;
  ASSERT_EQ(reviews.size(), 4u);
  EXPECT_EQ(reviews[0]["fields"]["review_id"], id);
  EXPECT_EQ(reviews[0]["fields"]["outcome"], "requested");
  EXPECT_EQ(reviews[0]["fields"]["statement_hash"], shown["sha256"]);
  EXPECT_EQ(reviews[1]["fields"]["outcome"], "approved");
  EXPECT_EQ(reviews[1]["fields"]["approver"], "bob");
  EXPECT_EQ(reviews[3]["fields"]["review_id"], denied_id);
  EXPECT_EQ(reviews[3]["fields"]["outcome"], "denied");
  EXPECT_EQ(reviews[3]["fields"]["reason"], "not in the change window");
}

// A statement nobody approves in time is refused, and never runs.
TEST(Approvals, UnapprovedStatementTimesOut) {
  Approvals a;
  const RunResult r = a.gw.psql(a.requester, {"-c", "DELETE FROM app.accounts WHERE id = 3"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("NOTICE:  gatehouse holds this statement for approval"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(rule \"deletes\") was not approved within 1 s"), std::string::npos) << r.err;
  EXPECT_EQ(a.table(), "1:one,2:two,3:three");
  // The session goes on.
  const RunResult next = a.gw.psql(a.requester, {"-A", "-t", "-c", "SELECT 1"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
}

// Extended protocol, pipelined: a prepared statement approved by two people runs; the same
// statement name, re-prepared with other text behind it, is held as a new review that an
// approval naming the first statement's hash cannot release; its denial keeps the client in sync.
TEST(Approvals, SwappedStatementCannotRunUnderAnotherApproval) {
  Approvals a;
  WireClient client(a.gw.port());
  const auto login = client.login("alice", "appdb", a.requester);
  ASSERT_FALSE(login.empty());
  ASSERT_EQ(login.back().type, 'Z');
  const std::string first = "UPDATE app.accounts SET note = 'approved' WHERE id = 1";
  const std::string swapped = "UPDATE app.accounts SET note = 'swapped' WHERE id = 2";
  // Both statements under the same name, each with its Sync, and a simple query after them:
  // all sent at once.
  const std::string select = "SELECT note FROM app.accounts WHERE id = 2";
  std::string out;
  for (const std::string& sql : {first, swapped}) {
    pg::encode_parse(out, "s1", sql);
    pg::encode_bind(out, "", "s1", {});
    pg::encode_execute(out, "");
    pg::encode_close(out, 'S', "s1");
    pg::encode_sync(out);
  }
  pg::encode_query(out, select);
  ASSERT_TRUE(client.send_raw(out));

  const auto notice_id = [&]() -> std::string {
    for (int i = 0; i < 20; ++i) {
      auto m = client.next();
      if (!m) return "(nothing)";
      if (m->type == 'N') {
        const std::string message = m->field('M');
        const size_t at = message.find("review r-");
        return at == std::string::npos ? message : message.substr(at + 7, 18);
      }
      if (m->type == 'E') return "error: " + m->field('M');
    }
    return "(no notice)";
  };
  const std::string id1 = notice_id();
  ASSERT_EQ(id1.rfind("r-", 0), 0u) << id1;
  json list = a.pending(1);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["statement"], first);
  EXPECT_EQ(list[0]["kind"], "parse");
  const std::string first_hash = list[0]["sha256"];
  EXPECT_EQ(first_hash, sha256_of(first));

  // Two approvals needed: after bob's, nothing ran.
  const RunResult one = a.review({"approve", id1}, a.bob);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(trimmed(one.out), "review " + id1 + ": approval 1 of 2 recorded");
  EXPECT_EQ(a.review({"approve", id1}, a.bob).exit_code, 1);  // bob counts once
  EXPECT_EQ(a.table(), "1:one,2:two,3:three");
  const RunResult two = a.review({"approve", id1, "--sha256", first_hash}, a.carol);
  ASSERT_EQ(two.exit_code, 0) << two.err;

  // The first statement's results; the swapped text behind it is held under a review of its
  // own (its notice may come before those results: notices are asynchronous).
  std::vector<char> types;
  std::string tag;
  std::string id2;
  for (int i = 0; i < 10; ++i) {
    auto m = client.next();
    ASSERT_TRUE(m.has_value());
    if (m->type == 'N') {
      const std::string message = m->field('M');
      id2 = message.substr(message.find("review r-") + 7, 18);
      continue;
    }
    types.push_back(m->type);
    if (m->type == 'C') tag = m->frame.substr(5, m->frame.size() - 6);
    if (m->type == 'Z') break;
  }
  EXPECT_EQ(std::string(types.begin(), types.end()), "12C3Z");
  EXPECT_EQ(tag, "UPDATE 1");
  EXPECT_EQ(a.table(), "1:approved,2:two,3:three");

  if (id2.empty()) id2 = notice_id();
  ASSERT_EQ(id2.rfind("r-", 0), 0u) << id2;
  EXPECT_NE(id2, id1);
  list = a.pending(1);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["statement"], swapped);
  // Approving it with the hash of what was approved before is refused, by both approvers.
  for (const std::string* who : {&a.bob, &a.carol}) {
    const RunResult reused = a.review({"approve", id2, "--sha256", first_hash}, *who);
    EXPECT_NE(reused.exit_code, 0);
    EXPECT_NE(reused.err.find("statement_mismatch"), std::string::npos) << reused.err;
  }
  EXPECT_EQ(a.table(), "1:approved,2:two,3:three");
  ASSERT_EQ(a.review({"deny", id2, "--reason", "not what was reviewed"}, a.carol).exit_code, 0);

  // Refused in order: the error, skip to Sync; then the pipelined query runs as usual.
  types.clear();
  std::string sqlstate, value;
  for (int i = 0; i < 20; ++i) {
    auto m = client.next();
    ASSERT_TRUE(m.has_value());
    types.push_back(m->type);
    if (m->type == 'E') sqlstate = m->field('C');
    if (m->type == 'D') value = m->first_value();
    if (types.size() > 2 && m->type == 'Z' && std::count(types.begin(), types.end(), 'Z') == 2) break;
  }
  EXPECT_EQ(std::string(types.begin(), types.end()), "EZTDCZ");
  EXPECT_EQ(sqlstate, "42501");
  EXPECT_EQ(value, "two");
  EXPECT_EQ(a.table(), "1:approved,2:two,3:three");
}

}  // namespace
}  // namespace gh::test
