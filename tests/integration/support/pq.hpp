// libpq helpers for integration tests: owned connections and queries with a bounded wait, so a
// hung gateway fails a test instead of hanging it. Test support only; needs PkgConfig::LIBPQ.
#pragma once

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace gh::test {

struct PgConnFinish {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnFinish>;

// Connects with `conninfo` (a libpq connection string) and `password`; check PQstatus.
inline PgConn pq_connect(const std::string& conninfo, const std::string& password) {
  const char* keys[] = {"dbname", "password", nullptr};
  const char* values[] = {conninfo.c_str(), password.c_str(), nullptr};
  return PgConn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
}

// What a query (all of its results) came to.
struct QueryOutcome {
  bool timed_out = false;
  bool ok = false;               // every result was a success
  std::string sqlstate;          // of the first error
  std::string error;             // its message
  std::vector<std::vector<std::string>> rows;  // of the last result with tuples
  std::string command_status;    // of the last result
  bool connection_bad = false;   // PQstatus after the results
};

// Collects the results of a query sent with PQsend*, waiting at most `timeout` in all.
inline QueryOutcome pq_await(PGconn* conn, std::chrono::milliseconds timeout) {
  QueryOutcome o;
  o.ok = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool any = false;
  while (true) {
    while (PQisBusy(conn)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        o.timed_out = true;
        o.ok = false;
        return o;
      }
      pollfd p{PQsocket(conn), POLLIN, 0};
      if (p.fd < 0) break;
      poll(&p, 1, int(std::min<int64_t>(left.count(), 100)));
      if (PQconsumeInput(conn) == 0) break;  // the connection failed: PQgetResult reports it
    }
    PGresult* r = PQgetResult(conn);
    if (r == nullptr) break;
    any = true;
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_FATAL_ERROR || status == PGRES_NONFATAL_ERROR || status == PGRES_BAD_RESPONSE) {
      if (o.ok) {
        const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        o.sqlstate = state ? state : "";
        o.error = PQresultErrorMessage(r);
      }
      o.ok = false;
    } else if (status == PGRES_TUPLES_OK) {
      o.rows.clear();
      for (int i = 0; i < PQntuples(r); ++i) {
        std::vector<std::string> row;
        for (int j = 0; j < PQnfields(r); ++j) row.emplace_back(PQgetvalue(r, i, j));
        o.rows.push_back(std::move(row));
      }
    }
    o.command_status = PQcmdStatus(r);
    PQclear(r);
    if (PQstatus(conn) == CONNECTION_BAD) break;
  }
  if (!any) o.ok = false;
  o.connection_bad = PQstatus(conn) == CONNECTION_BAD;
  if (o.connection_bad && o.error.empty()) o.error = PQerrorMessage(conn);
  return o;
}

// A simple-protocol query (may hold several statements) with a bounded wait.
inline QueryOutcome pq_query(PGconn* conn, const std::string& sql,
                             std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  if (PQsendQuery(conn, sql.c_str()) == 0) {
    QueryOutcome o;
    o.error = PQerrorMessage(conn);
    o.connection_bad = PQstatus(conn) == CONNECTION_BAD;
    return o;
  }
  return pq_await(conn, timeout);
}

// An extended-protocol query with text parameters, bounded likewise.
inline QueryOutcome pq_query_params(PGconn* conn, const std::string& sql,
                                    const std::vector<std::string>& params,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  if (PQsendQueryParams(conn, sql.c_str(), int(values.size()), nullptr, values.data(), nullptr,
                        nullptr, 0) == 0) {
    QueryOutcome o;
    o.error = PQerrorMessage(conn);
    o.connection_bad = PQstatus(conn) == CONNECTION_BAD;
    return o;
  }
  return pq_await(conn, timeout);
}

// Polls `sql` (one value expected) on `conn` until it returns `want` or `timeout` passes.
inline bool pq_wait_for_value(PGconn* conn, const std::string& sql, const std::string& want,
                              std::chrono::milliseconds timeout, std::string* last = nullptr) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    QueryOutcome o = pq_query(conn, sql, std::chrono::seconds(10));
    const std::string got = o.ok && !o.rows.empty() && !o.rows[0].empty() ? o.rows[0][0] : o.error;
    if (last) *last = got;
    if (o.ok && got == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace gh::test
