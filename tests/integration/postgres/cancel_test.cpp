// Query cancellation through gatehouse against a real PostgreSQL: libpq's PQcancel, a
// CancelRequest landing on either shard (the session's or the other one), and a wrong secret key.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/pq.hpp"
#include "tests/integration/support/raw_pg.hpp"
#include "tests/integration/support/trail_events.hpp"

namespace gh::test {
namespace {

using namespace std::chrono_literals;

class Cancel : public ::testing::Test {
 protected:
  void SetUp() override {
    monitor_ = pq_connect(pg_.conninfo(), PostgresServer::kSuperuserPassword);
    ASSERT_EQ(PQstatus(monitor_.get()), CONNECTION_OK) << PQerrorMessage(monitor_.get());
  }

  // Waits until a statement with exactly this text is running upstream (so that a cancel cannot
  // arrive before the query does).
  bool running_upstream(const std::string& sql) {
    return pq_wait_for_value(monitor_.get(),
                             "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $q$" +
                                 sql + "$q$",
                             "1", 10s);
  }

  int cancels_recorded() {
    int n = 0;
    for (const auto& s : trail_sessions(gw_)) {
      auto replay = trail_replay(gw_, s["session_id"].get<std::string>());
      if (replay.is_null()) continue;
      for (const auto& e : replay["events"]) {
        if (e["type"] == "notice" && event_field(e, "message").find("cancel request") != std::string::npos)
          ++n;
      }
    }
    return n;
  }

  PostgresServer pg_;
  Gateway gw_{pg_};  // two shards, SO_REUSEPORT listeners
  std::string token_ = gw_.token("alice", {"devs"});
  PgConn monitor_;  // straight to PostgreSQL
};

TEST_F(Cancel, PQcancelEndsTheRunningQueryWith57014AndTheSessionGoesOn) {
  constexpr int kRounds = 6;
  std::set<uint32_t> session_shards;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    PgConn conn = pq_connect(gw_.conninfo(), token_);
    ASSERT_EQ(PQstatus(conn.get()), CONNECTION_OK) << PQerrorMessage(conn.get()) << gw_.log();
    session_shards.insert(uint32_t(PQbackendPID(conn.get())) >> 24);
    const std::string sql = "SELECT pg_sleep(30) /* round " + std::to_string(round) + " */";
    ASSERT_EQ(PQsendQuery(conn.get(), sql.c_str()), 1) << PQerrorMessage(conn.get());
    ASSERT_TRUE(running_upstream(sql));

    const auto start = std::chrono::steady_clock::now();
    PGcancel* cancel = PQgetCancel(conn.get());
    ASSERT_NE(cancel, nullptr);
    char error[256] = {};
    const int sent = PQcancel(cancel, error, sizeof error);
    PQfreeCancel(cancel);
    ASSERT_EQ(sent, 1) << error;

    const QueryOutcome o = pq_await(conn.get(), 10s);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(o.timed_out) << "the query was not cancelled";
    EXPECT_EQ(o.sqlstate, "57014") << o.error;
    EXPECT_LT(took, 5s);
    // Cancelling a query does not end the session.
    const QueryOutcome after = pq_query(conn.get(), "SELECT 'still here'", 10s);
    ASSERT_TRUE(after.ok) << after.error;
    EXPECT_EQ(after.rows, (std::vector<std::vector<std::string>>{{"still here"}}));
  }
  ASSERT_EQ(gw_.stop(), 0) << gw_.log();
  EXPECT_EQ(cancels_recorded(), kRounds);
}

// SO_REUSEPORT picks the listener, and so the shard, by a hash of the connection's addresses:
// a connection from a local port that earlier landed on shard N lands on shard N again. Logins
// from fixed ports below the ephemeral range (so that no other connection is given them), ended
// with a RST (no TIME_WAIT), give a port for each shard; then every pairing of the session's
// shard and the CancelRequest's shard is tried, deterministically.
class CancelAcrossShards : public Cancel {
 protected:
  // A logged-in raw session on `shard`.
  std::unique_ptr<RawSession> session_on(uint32_t shard) {
    for (int attempt = 0; attempt < 40; ++attempt) {
      auto s = std::make_unique<RawSession>();
      std::string error;
      if (!s->login(gw_.port(), "alice", "appdb", token_, &error)) {
        ADD_FAILURE() << error << gw_.log();
        return nullptr;
      }
      if (s->shard() == shard) return s;
      s->abort();
    }
    ADD_FAILURE() << "no login landed on shard " << shard;
    return nullptr;
  }

  // A local port whose connections land on `shard`; 0 if none was found.
  uint16_t port_for(uint32_t shard) {
    static constexpr uint16_t kFirst = 20000;  // below ip_local_port_range's usual 32768
    for (int tries = 0; !ports_.contains(shard) && tries < 40; ++tries) {
      const uint16_t candidate = uint16_t(kFirst + (getpid() % 500) * 20 + next_candidate_++);
      RawSession s;
      std::string error;
      if (!s.login(gw_.port(), "alice", "appdb", token_, &error, candidate)) continue;  // port busy
      s.abort();
      if (!ports_.contains(s.shard())) ports_[s.shard()] = candidate;
    }
    EXPECT_TRUE(ports_.contains(shard)) << "no local port leads to shard " << shard;
    return ports_.contains(shard) ? ports_[shard] : 0;
  }

  // A port just seen to lead to `shard`: the kept one is probed again right before use and
  // replaced if the kernel now sends it elsewhere (its reuseport choice is not a documented API).
  uint16_t confirmed_port_for(uint32_t shard) {
    for (int attempt = 0; attempt < 20; ++attempt) {
      const uint16_t from = port_for(shard);
      if (from == 0) return 0;
      RawSession probe;
      std::string error;
      if (probe.login(gw_.port(), "alice", "appdb", token_, &error, from) && probe.shard() == shard) {
        probe.abort();
        return from;
      }
      probe.abort();
      ports_.erase(shard);
    }
    ADD_FAILURE() << "no local port kept leading to shard " << shard;
    return 0;
  }

  std::map<uint32_t, uint16_t> ports_;
  int next_candidate_ = 0;
};

TEST_F(CancelAcrossShards, ACancelRequestOnEitherShardCancelsTheSessionsQuery) {
  int round = 0;
  for (uint32_t session_shard : {0u, 1u}) {
    for (uint32_t cancel_shard : {0u, 1u}) {
      SCOPED_TRACE(testing::Message() << "session on shard " << session_shard
                                      << ", CancelRequest on shard " << cancel_shard);
      auto session = session_on(session_shard);
      ASSERT_NE(session, nullptr);
      const std::string sql = "SELECT pg_sleep(30) /* pairing " + std::to_string(round++) + " */";
      ASSERT_TRUE(session->query(sql));
      ASSERT_TRUE(running_upstream(sql));
      const uint16_t from = confirmed_port_for(cancel_shard);
      ASSERT_NE(from, 0);
      const auto start = std::chrono::steady_clock::now();
      ASSERT_TRUE(raw_cancel(gw_.port(), session->pid(), session->key(), from));
      std::vector<RawMessage> messages;
      ASSERT_TRUE(session->until_ready(messages, 10s)) << "the query was not cancelled";
      EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
      std::string sqlstate;
      for (const auto& m : messages) {
        if (m.type == 'E') sqlstate = error_sqlstate(m.body);
      }
      EXPECT_EQ(sqlstate, "57014");
    }
  }
  ASSERT_EQ(gw_.stop(), 0) << gw_.log();
  EXPECT_EQ(cancels_recorded(), 4);
}

TEST_F(CancelAcrossShards, AWrongSecretKeyCancelsNothing) {
  const uint16_t from[2] = {confirmed_port_for(0), confirmed_port_for(1)};
  ASSERT_NE(from[0], 0);
  ASSERT_NE(from[1], 0);
  auto session = session_on(0);
  ASSERT_NE(session, nullptr);
  const int32_t wrong_key = session->key() ^ 1;  // differs from the real key by construction
  const std::string sql = "SELECT pg_sleep(2), 'finished'";
  ASSERT_TRUE(session->query(sql));
  ASSERT_TRUE(running_upstream(sql));
  for (uint16_t port : from) EXPECT_TRUE(raw_cancel(gw_.port(), session->pid(), wrong_key, port));
  std::vector<RawMessage> messages;
  ASSERT_TRUE(session->until_ready(messages, 10s));
  std::string types;
  for (const auto& m : messages) {
    types.push_back(m.type);
    EXPECT_NE(m.type, 'E') << error_sqlstate(m.body) << " " << m.body;
  }
  EXPECT_EQ(types, "TDCZ");  // RowDescription, DataRow, CommandComplete, ReadyForQuery
  ASSERT_GE(messages.size(), 2u);
  EXPECT_NE(messages[1].body.find("finished"), std::string::npos);

  // The same session and ports with the right key do cancel: the wrong key was the only difference.
  const std::string again = "SELECT pg_sleep(30), 'again'";
  ASSERT_TRUE(session->query(again));
  ASSERT_TRUE(running_upstream(again));
  ASSERT_TRUE(raw_cancel(gw_.port(), session->pid(), session->key(), from[1]));
  messages.clear();
  ASSERT_TRUE(session->until_ready(messages, 10s));
  std::string sqlstate;
  for (const auto& m : messages) {
    if (m.type == 'E') sqlstate = error_sqlstate(m.body);
  }
  EXPECT_EQ(sqlstate, "57014");
  ASSERT_EQ(gw_.stop(), 0) << gw_.log();
  EXPECT_EQ(cancels_recorded(), 1);
}

}  // namespace
}  // namespace gh::test
