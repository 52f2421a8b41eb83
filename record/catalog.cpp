// The session catalog in SQLite (record/FORMAT.md, "Catalog"), its rebuild from segments, and the
// feed that keeps it current from the flusher. Never called from a shard thread.
#include "record/catalog.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <malloc.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <variant>

#include "record/le.hpp"

namespace gh::rec {

namespace {

// Bumped when the schema changes; an older catalog is refused with "run gatehouse reindex".
constexpr std::string_view kSchemaVersion = "1";  // the first released one

// session_values.kind: the lists of a session, each in its recorded order.
enum ValueKind : int { kMemberValue = 0, kGroupValue = 1, kClaimValue = 2, kLineageValue = 3 };

// Reindex applies the sessions it folded once this many are waiting (bounds its memory).
constexpr size_t kReindexChunkSessions = 50000;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions(
  -- Assigned in the order sessions first reach the catalog, i.e. by start time: the rows of a
  -- time range, and their values and segments, sit together on disk.
  key INTEGER PRIMARY KEY,
  id INTEGER NOT NULL UNIQUE,  -- the u64 session id, same bits as a signed integer
  shard INTEGER NOT NULL,
  start_ns INTEGER NOT NULL,
  end_ns INTEGER NOT NULL,
  ended INTEGER NOT NULL,
  protocol TEXT NOT NULL,
  connection TEXT NOT NULL,
  client_address TEXT NOT NULL,
  db_user TEXT NOT NULL,
  database TEXT NOT NULL,
  token_id TEXT NOT NULL,
  issuer TEXT NOT NULL,
  end_reason TEXT NOT NULL,
  events INTEGER NOT NULL,
  statements INTEGER NOT NULL,
  errors INTEGER NOT NULL,
  refused INTEGER NOT NULL,
  masked_rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS session_values(
  session_key INTEGER NOT NULL,
  kind INTEGER NOT NULL,  -- 0 chain member, 1 group, 2 claim name=value, 3 token lineage
  position INTEGER NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY(session_key, kind, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS session_segments(
  session_key INTEGER NOT NULL,
  shard INTEGER NOT NULL,
  segment INTEGER NOT NULL,
  PRIMARY KEY(session_key, shard, segment)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(db_user, start_ns);
CREATE INDEX IF NOT EXISTS sessions_by_connection ON sessions(connection, start_ns);
CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(start_ns);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions(end_ns);
CREATE INDEX IF NOT EXISTS values_by_value ON session_values(kind, value, session_key);
INSERT OR IGNORE INTO meta(key, value) VALUES('state', 'clean'), ('reason', ''),
  ('duration_ns_max', '0');
)sql";

// Deltas merge into what is there (Catalog::apply). RETURNING gives the session's duration so
// far, whose maximum bounds the start of sessions still active at a time (query, --since).
constexpr const char* kUpsertSession = R"sql(
INSERT INTO sessions(id, shard, start_ns, end_ns, ended, protocol, connection, client_address,
  db_user, database, token_id, issuer, end_reason, events, statements, errors, refused, masked_rows)
VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
ON CONFLICT(id) DO UPDATE SET
  start_ns = min(start_ns, excluded.start_ns),
  end_ns = max(end_ns, excluded.end_ns),
  ended = max(ended, excluded.ended),
  protocol = CASE WHEN protocol = '' OR excluded.protocol = 'admin' THEN excluded.protocol
                  ELSE protocol END,
  connection = CASE WHEN connection = '' THEN excluded.connection ELSE connection END,
  client_address = CASE WHEN client_address = '' THEN excluded.client_address ELSE client_address END,
  db_user = CASE WHEN db_user = '' THEN excluded.db_user ELSE db_user END,
  database = CASE WHEN database = '' THEN excluded.database ELSE database END,
  token_id = CASE WHEN token_id = '' THEN excluded.token_id ELSE token_id END,
  issuer = CASE WHEN issuer = '' THEN excluded.issuer ELSE issuer END,
  end_reason = CASE WHEN excluded.end_reason <> '' THEN excluded.end_reason ELSE end_reason END,
  events = events + excluded.events,
  statements = statements + excluded.statements,
  errors = errors + excluded.errors,
  refused = refused + excluded.refused,
  masked_rows = masked_rows + excluded.masked_rows
RETURNING key, end_ns - start_ns
)sql";

constexpr const char* kSessionColumns =
    "key, id, shard, start_ns, end_ns, ended, protocol, connection, client_address, db_user, database, "
    "token_id, issuer, end_reason, events, statements, errors, refused, masked_rows";

int64_t as_signed(uint64_t v) { return static_cast<int64_t>(v); }
uint64_t as_unsigned(int64_t v) { return static_cast<uint64_t>(v); }

// One prepared statement; reset after each use so that it holds no read lock.
class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Statement(Statement&& o) noexcept : stmt_(std::exchange(o.stmt_, nullptr)) {}
  Statement& operator=(Statement&& o) noexcept {
    std::swap(stmt_, o.stmt_);
    return *this;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  sqlite3_stmt* get() const { return stmt_; }
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, std::string_view v) {
    // An empty view may have no data pointer, which SQLite would bind as NULL.
    sqlite3_bind_text(stmt_, i, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
  }
  int step() { return sqlite3_step(stmt_); }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p == nullptr ? std::string() : std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteCatalog final : public Catalog {
 public:
  SqliteCatalog(sqlite3* db, std::string file) : db_(db), file_(std::move(file)) {}
  ~SqliteCatalog() override {
    if (in_transaction_) rollback();
    statements_.clear();
    sqlite3_close_v2(db_);
  }

  Result<void> init(bool writable, uint32_t page_cache_kib) {
    sqlite3_busy_timeout(db_, 5000);
    if (writable) {
      // The catalog can be rebuilt from the segments, so it need not be synced at every commit:
      // NORMAL in WAL mode loses at most the last transactions on power loss, never consistency.
      if (auto r = exec(fmt::format("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                                    "PRAGMA cache_size=-{};",
                                    page_cache_kib));
          !r) {
        return r;
      }
      if (auto r = exec(kSchema); !r) return r;
      if (auto r = exec(fmt::format("INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '{}')",
                                    kSchemaVersion));
          !r) {
        return r;
      }
    }
    auto schema = meta("schema");
    if (!schema) return std::unexpected(schema.error());
    if (*schema != kSchemaVersion) {
      return fail(fmt::format("{}: catalog schema '{}' is not version {}: run gatehouse reindex",
                              file_, *schema, kSchemaVersion));
    }
    return {};
  }

  Result<void> apply(std::span<const SessionSummary> deltas) override {
    const bool own = !in_transaction_;
    if (own) {
      if (auto r = begin(); !r) return r;
    }
    auto applied = apply_all(deltas);
    if (!applied) {
      if (own) rollback();
      return applied;
    }
    return own ? commit() : Result<void>{};
  }

  Result<std::vector<SessionSummary>> query(const SessionFilter& filter) override {
    std::string sql = fmt::format("SELECT {} FROM sessions WHERE 1", kSessionColumns);
    // Binds in the order the conditions are added.
    std::vector<std::variant<int64_t, std::string>> args;
    if (filter.session_id) {
      sql += " AND id = ?";
      args.emplace_back(as_signed(*filter.session_id));
    }
    if (!filter.user.empty()) {
      sql += " AND db_user = ?";
      args.emplace_back(filter.user);
    }
    if (!filter.connection.empty()) {
      sql += " AND connection = ?";
      args.emplace_back(filter.connection);
    }
    if (!filter.chain_member.empty()) {
      sql += " AND key IN (SELECT session_key FROM session_values WHERE kind = 0 AND value = ?)";
      args.emplace_back(filter.chain_member);
    }
    for (const auto& [name, value] : filter.claims) {
      sql += " AND key IN (SELECT session_key FROM session_values WHERE kind = 2 AND value = ?)";
      args.emplace_back(name + "=" + value);
    }
    if (filter.from_ns) {
      // Active at or after `from`: it ended (or its last record came) then or later. No session
      // lasted longer than duration_ns_max, so it started after from - duration_ns_max: a range
      // on the start index that a time window can use with its other bound.
      auto longest = meta("duration_ns_max");
      if (!longest) return std::unexpected(longest.error());
      const int64_t from = as_signed(*filter.from_ns);
      const int64_t duration = std::strtoll(longest->c_str(), nullptr, 10);
      sql += " AND end_ns >= ?";
      args.emplace_back(from);
      if (duration >= 0 && duration <= from) {
        sql += " AND start_ns >= ?";
        args.emplace_back(from - duration);
      }
    }
    if (filter.to_ns) {
      sql += " AND start_ns <= ?";
      args.emplace_back(as_signed(*filter.to_ns));
    }
    // Ids sort as unsigned: non-negative (below 2^63) first, then the rest, each by value.
    sql += " ORDER BY start_ns, id < 0, id";
    if (filter.limit > 0) sql += fmt::format(" LIMIT {}", filter.limit);
    auto stmt = prepare(sql);
    if (!stmt) return std::unexpected(stmt.error());
    for (size_t i = 0; i < args.size(); ++i) {
      std::visit([&](const auto& v) { stmt->bind(static_cast<int>(i + 1), v); }, args[i]);
    }
    std::vector<SessionSummary> out;
    std::vector<int64_t> keys;
    int rc;
    while ((rc = stmt->step()) == SQLITE_ROW) {
      keys.push_back(stmt->integer(0));
      out.push_back(read_session(*stmt));
    }
    if (rc != SQLITE_DONE) return failure("query");
    stmt->reset();
    if (auto r = read_lists(keys, out); !r) return std::unexpected(r.error());
    return out;
  }

  Result<CatalogStatus> status() override {
    CatalogStatus s;
    auto state = meta("state");
    if (!state) return std::unexpected(state.error());
    auto reason = meta("reason");
    if (!reason) return std::unexpected(reason.error());
    s.state = *state == "clean" ? CatalogState::kClean
              : *state == "live" ? CatalogState::kLive
                                 : CatalogState::kStale;
    s.reason = *reason;
    return s;
  }

  Result<uint64_t> session_count() override {
    auto count = prepare("SELECT count(*) FROM sessions");
    if (!count) return std::unexpected(count.error());
    if (count->step() != SQLITE_ROW) return failure("count sessions");
    return as_unsigned(count->integer(0));
  }

  Result<void> set_state(CatalogState state, std::string_view reason) override {
    auto stmt = cached("UPDATE meta SET value = ?1 WHERE key = ?2");
    if (!stmt) return std::unexpected(stmt.error());
    for (const auto& [key, value] : {std::pair<std::string_view, std::string_view>{"state", catalog_state_name(state)},
                                     {"reason", reason}}) {
      (*stmt)->bind(1, value);
      (*stmt)->bind(2, key);
      const int rc = (*stmt)->step();
      (*stmt)->reset();
      if (rc != SQLITE_DONE) return failure("set state");
    }
    return {};
  }

  Result<void> clear() override {
    return exec(
        "DELETE FROM sessions; DELETE FROM session_values; DELETE FROM session_segments; "
        "UPDATE meta SET value = '0' WHERE key = 'duration_ns_max';");
  }

  Result<void> begin() override {
    if (auto r = exec("BEGIN IMMEDIATE"); !r) return r;
    in_transaction_ = true;
    duration_max_ = -1;
    return {};
  }

  Result<void> commit() override {
    if (duration_max_ >= 0) {
      auto stmt = cached(
          "UPDATE meta SET value = max(CAST(value AS INTEGER), ?1) WHERE key = 'duration_ns_max'");
      if (!stmt) return std::unexpected(stmt.error());
      (*stmt)->bind(1, duration_max_);
      const int rc = (*stmt)->step();
      (*stmt)->reset();
      if (rc != SQLITE_DONE) {
        auto error = failure("duration_ns_max");
        rollback();
        return error;
      }
    }
    if (auto r = exec("COMMIT"); !r) {
      rollback();
      return r;
    }
    in_transaction_ = false;
    return {};
  }

  void rollback() override {
    (void)exec("ROLLBACK");
    in_transaction_ = false;
  }

  Result<void> analyze() override { return exec("ANALYZE"); }

  Result<std::string> meta(std::string_view key) {
    auto stmt = cached("SELECT value FROM meta WHERE key = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    (*stmt)->bind(1, key);
    const int rc = (*stmt)->step();
    std::string value = rc == SQLITE_ROW ? (*stmt)->text(0) : std::string();
    (*stmt)->reset();
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return failure("read meta");
    return value;
  }

 private:
  Result<void> apply_all(std::span<const SessionSummary> deltas) {
    auto upsert = cached(kUpsertSession);
    if (!upsert) return std::unexpected(upsert.error());
    auto value = cached(
        "INSERT OR IGNORE INTO session_values(session_key, kind, position, value) VALUES(?1, ?2, ?3, ?4)");
    if (!value) return std::unexpected(value.error());
    auto segment = cached(
        "INSERT OR IGNORE INTO session_segments(session_key, shard, segment) VALUES(?1, ?2, ?3)");
    if (!segment) return std::unexpected(segment.error());
    Statement& u = **upsert;
    Statement& v = **value;
    Statement& g = **segment;
    for (const SessionSummary& d : deltas) {
      u.bind(1, as_signed(d.session_id));
      u.bind(2, int64_t{d.shard});
      u.bind(3, as_signed(d.start_ns));
      u.bind(4, as_signed(d.end_ns));
      u.bind(5, int64_t{d.ended});
      u.bind(6, d.protocol);
      u.bind(7, d.connection);
      u.bind(8, d.client_address);
      u.bind(9, d.user);
      u.bind(10, d.database);
      u.bind(11, d.token_id);
      u.bind(12, d.issuer);
      u.bind(13, d.end_reason);
      u.bind(14, as_signed(d.events));
      u.bind(15, as_signed(d.statements));
      u.bind(16, as_signed(d.errors));
      u.bind(17, as_signed(d.refused));
      u.bind(18, as_signed(d.masked_rows));
      int rc = u.step();
      if (rc != SQLITE_ROW) {
        u.reset();
        return failure("upsert session");
      }
      const int64_t key = u.integer(0);
      duration_max_ = std::max(duration_max_, u.integer(1));
      rc = u.step();
      u.reset();
      if (rc != SQLITE_DONE) return failure("upsert session");
      const auto put_values = [&](int kind, const auto& values, const auto& text_of) -> Result<void> {
        int64_t position = 0;
        for (const auto& item : values) {
          v.bind(1, key);
          v.bind(2, int64_t{kind});
          v.bind(3, position++);
          v.bind(4, text_of(item));
          const int step = v.step();
          v.reset();
          if (step != SQLITE_DONE) return failure("insert session value");
        }
        return {};
      };
      const auto same = [](const std::string& s) -> std::string_view { return s; };
      if (auto r = put_values(kMemberValue, d.chain, same); !r) return r;
      if (auto r = put_values(kGroupValue, d.groups, same); !r) return r;
      if (auto r = put_values(kLineageValue, d.lineage, same); !r) return r;
      if (auto r = put_values(kClaimValue, d.claims,
                              [](const auto& claim) { return claim.first + "=" + claim.second; });
          !r) {
        return r;
      }
      for (const SegmentRef& ref : d.segments) {
        g.bind(1, key);
        g.bind(2, int64_t{ref.shard});
        g.bind(3, as_signed(ref.segment));
        const int step = g.step();
        g.reset();
        if (step != SQLITE_DONE) return failure("insert segment reference");
      }
    }
    return {};
  }

  static SessionSummary read_session(const Statement& s) {
    SessionSummary out;
    out.session_id = as_unsigned(s.integer(1));
    out.shard = static_cast<uint16_t>(s.integer(2));
    out.start_ns = as_unsigned(s.integer(3));
    out.end_ns = as_unsigned(s.integer(4));
    out.ended = s.integer(5) != 0;
    out.protocol = s.text(6);
    out.connection = s.text(7);
    out.client_address = s.text(8);
    out.user = s.text(9);
    out.database = s.text(10);
    out.token_id = s.text(11);
    out.issuer = s.text(12);
    out.end_reason = s.text(13);
    out.events = as_unsigned(s.integer(14));
    out.statements = as_unsigned(s.integer(15));
    out.errors = as_unsigned(s.integer(16));
    out.refused = as_unsigned(s.integer(17));
    out.masked_rows = as_unsigned(s.integer(18));
    return out;
  }

  // Chain, groups, claims, lineage and segments of each listed session: one index lookup each,
  // near each other for sessions of similar start times.
  Result<void> read_lists(std::span<const int64_t> keys, std::vector<SessionSummary>& sessions) {
    auto values = cached(
        "SELECT kind, value FROM session_values WHERE session_key = ?1 ORDER BY kind, position");
    if (!values) return std::unexpected(values.error());
    auto segments = cached(
        "SELECT shard, segment FROM session_segments WHERE session_key = ?1 ORDER BY shard, segment");
    if (!segments) return std::unexpected(segments.error());
    for (size_t i = 0; i < sessions.size(); ++i) {
      SessionSummary& s = sessions[i];
      Statement& v = **values;
      v.bind(1, keys[i]);
      int rc;
      while ((rc = v.step()) == SQLITE_ROW) {
        std::string text = v.text(1);
        switch (v.integer(0)) {
          case kMemberValue:
            s.chain.push_back(std::move(text));
            break;
          case kGroupValue:
            s.groups.push_back(std::move(text));
            break;
          case kClaimValue: {
            const size_t eq = text.find('=');
            s.claims.emplace_back(text.substr(0, eq),
                                  eq == std::string::npos ? std::string() : text.substr(eq + 1));
            break;
          }
          case kLineageValue:
            s.lineage.push_back(std::move(text));
            break;
          default:
            break;
        }
      }
      v.reset();
      if (rc != SQLITE_DONE) return failure("read session values");
      Statement& g = **segments;
      g.bind(1, keys[i]);
      while ((rc = g.step()) == SQLITE_ROW) {
        s.segments.push_back(
            SegmentRef{static_cast<uint16_t>(g.integer(0)), as_unsigned(g.integer(1))});
      }
      g.reset();
      if (rc != SQLITE_DONE) return failure("read segment references");
    }
    return {};
  }

  Result<void> exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      return fail(fmt::format("{}: {}", file_, text));
    }
    return {};
  }

  Result<Statement> prepare(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return failure("prepare");
    }
    return Statement(stmt);
  }

  // Prepared once per connection, keyed by its text.
  Result<Statement*> cached(const char* sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      auto stmt = prepare(sql);
      if (!stmt) return std::unexpected(stmt.error());
      it = statements_.emplace(sql, std::move(*stmt)).first;
    }
    return &it->second;
  }

  std::unexpected<Error> failure(std::string_view what) {
    return fail(fmt::format("{}: {}: {}", file_, what, sqlite3_errmsg(db_)));
  }

  sqlite3* db_;
  std::string file_;
  std::map<std::string, Statement, std::less<>> statements_;
  bool in_transaction_ = false;
  int64_t duration_max_ = -1;  // longest session duration upserted in this transaction
};

Result<std::unique_ptr<Catalog>> open_catalog(const std::string& file, bool writable,
                                              uint32_t page_cache_kib) {
  sqlite3* db = nullptr;
  const int flags = (writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return fail(fmt::format("{}: cannot open the catalog: {}", file, message));
  }
  auto catalog = std::make_unique<SqliteCatalog>(db, file);
  if (auto r = catalog->init(writable, page_cache_kib); !r) return std::unexpected(r.error());
  return std::unique_ptr<Catalog>(std::move(catalog));
}

// New sessions get their keys in this order, so that the catalog's rows follow start times.
void by_start(std::vector<SessionSummary>& deltas) {
  std::sort(deltas.begin(), deltas.end(), [](const SessionSummary& a, const SessionSummary& b) {
    return a.start_ns != b.start_ns ? a.start_ns < b.start_ns : a.session_id < b.session_id;
  });
}

// Whether the trail already holds any segment.
bool trail_has_segments(const std::string& dir) {
  auto shards = list_shards(dir);
  if (!shards) return false;
  for (const uint16_t shard : *shards) {
    auto segments = list_segments(dir + "/" + shard_dir_name(shard));
    if (segments && !segments->empty()) return true;
  }
  return false;
}

}  // namespace

std::string_view catalog_state_name(CatalogState state) {
  switch (state) {
    case CatalogState::kClean:
      return "clean";
    case CatalogState::kLive:
      return "live";
    case CatalogState::kStale:
      return "stale";
    case CatalogState::kMissing:
      return "missing";
  }
  return "stale";
}

std::string default_catalog_file(const std::string& trail_dir) {
  return trail_dir + "/catalog.sqlite";
}

Result<std::unique_ptr<Catalog>> open_sqlite_catalog(const std::string& file,
                                                     uint32_t page_cache_kib) {
  return open_catalog(file, true, page_cache_kib);
}

Result<std::unique_ptr<Catalog>> open_sqlite_catalog_readonly(const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::unique_ptr<Catalog>();
  return open_catalog(file, false, kRebuildPageCacheKib);
}

Result<void> remove_sqlite_catalog(const std::string& file) {
  for (const std::string& path : {file, file + "-wal", file + "-shm"}) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return fail(fmt::format("{}: cannot remove: {}", path, std::strerror(errno)));
    }
  }
  return {};
}

Result<ReindexReport> reindex(const std::string& dir, Catalog& catalog) {
  ReindexReport report;
  if (auto r = catalog.begin(); !r) return std::unexpected(r.error());
  auto undo = [&](const Error& e) -> Result<ReindexReport> {
    catalog.rollback();
    return std::unexpected(e);
  };
  if (auto r = catalog.clear(); !r) return undo(r.error());
  std::map<uint64_t, SessionSummary> chunk;
  std::vector<SessionSummary> deltas;
  std::optional<Error> apply_error;
  const auto flush = [&] {
    deltas.clear();
    for (auto& [id, summary] : chunk) deltas.push_back(std::move(summary));
    chunk.clear();
    by_start(deltas);
    if (auto r = catalog.apply(deltas); !r) apply_error = r.error();
  };
  std::map<uint64_t, bool> seen;  // session ids, for the count
  auto walked = for_each_record(dir, [&](const TrailRecord& r) {
    const RecordView& view = r.record.view;
    if (is_control_type(view.type)) return true;
    ++report.records;
    seen.try_emplace(view.session_id, true);
    fold_record(chunk[view.session_id], view, r.shard, r.segment_sequence);
    if (chunk.size() >= kReindexChunkSessions) flush();
    return !apply_error;
  });
  if (!walked) return undo(walked.error());
  if (!apply_error) flush();
  if (apply_error) return undo(*apply_error);
  report.sessions = seen.size();
  if (auto r = catalog.set_state(CatalogState::kClean); !r) return undo(r.error());
  if (auto r = catalog.commit(); !r) return std::unexpected(r.error());
  if (auto r = catalog.analyze(); !r) return std::unexpected(r.error());
  return report;
}

bool recorder_holds(const std::string& dir) {
  const std::string lock_path = dir + "/writer.lock";
  const int lock_fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (lock_fd < 0) return false;
  // flock conflicts between open file descriptions, so this fails while the flusher holds it.
  const bool held = ::flock(lock_fd, LOCK_SH | LOCK_NB) != 0;
  ::close(lock_fd);
  return held;
}

Result<ReindexReport> rebuild_sqlite_catalog(const std::string& dir, const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return fail(fmt::format("{}: no such trail directory", dir));
  if (recorder_holds(dir)) {
    return fail(fmt::format("{}: a gateway is recording into this trail; its catalog is live "
                            "(stop the gateway to rebuild it)", dir));
  }
  std::string replaced;
  auto catalog = open_sqlite_catalog(file);
  if (!catalog) {
    replaced = catalog.error().message;
    if (auto removed = remove_sqlite_catalog(file); !removed) return std::unexpected(removed.error());
    catalog = open_sqlite_catalog(file);
    if (!catalog) return std::unexpected(catalog.error());
  }
  auto report = reindex(dir, **catalog);
  if (report) report->replaced = replaced;
  return report;
}

// ---- feed -------------------------------------------------------------------------------------

CatalogFeed::CatalogFeed(CatalogFeedOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<CatalogFeed>> CatalogFeed::start(CatalogFeedOptions options) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(options.file, ec);
  auto catalog = open_sqlite_catalog(options.file, options.page_cache_kib);
  if (!catalog) return std::unexpected(catalog.error());
  auto status = (*catalog)->status();
  if (!status) return std::unexpected(status.error());
  std::unique_ptr<CatalogFeed> feed(new CatalogFeed(std::move(options)));
  // A catalog that may lack records stays (or becomes) stale until `gatehouse reindex`.
  std::string stale_reason;
  if (status->state == CatalogState::kStale) {
    stale_reason = status->reason;
  } else if (status->state == CatalogState::kLive) {
    stale_reason = "the gateway stopped without closing the catalog (a crash?)";
  } else if (!existed && trail_has_segments(feed->options_.trail_dir)) {
    stale_reason = "the trail holds records from before the catalog was created";
  }
  auto set = stale_reason.empty() ? (*catalog)->set_state(CatalogState::kLive)
                                  : (*catalog)->set_state(CatalogState::kStale, stale_reason);
  if (!set) return std::unexpected(set.error());
  if (!stale_reason.empty()) {
    feed->lost_ = true;
    feed->lost_reason_ = stale_reason;
    if (feed->options_.on_error) {
      feed->options_.on_error(fmt::format("catalog {} is stale ({}): run gatehouse reindex",
                                          feed->options_.file, stale_reason));
    }
  }
  feed->catalog_ = std::move(*catalog);
  feed->thread_ = std::thread([f = feed.get()] { f->run(); });
  return feed;
}

CatalogFeed::~CatalogFeed() { stop(); }

void CatalogFeed::observe(uint16_t shard, uint64_t segment, std::span<const std::byte> records) {
  std::unique_lock lock(mutex_);
  if (records.empty()) {
    // Records indexed from this segment were cut from the trail: the catalog overcounts now.
    if (!lost_) {
      lost_ = true;
      lost_reason_ = fmt::format("shard {} segment {} was abandoned after a failed fdatasync and "
                                 "records it indexed are not in the trail", shard, segment);
      if (options_.on_error) options_.on_error("catalog: " + lost_reason_ + ": run gatehouse reindex");
    }
    return;
  }
  size_t at = 0;
  while (at + 4 <= records.size()) {
    const uint32_t length = le::load<uint32_t>(records.data() + at);
    if (length == 0 || length > records.size() - at) break;  // the writer's own bytes: never
    auto view = decode_record(records.subspan(at, length));
    at += length;
    if (!view || is_control_type(view->type)) continue;
    auto it = pending_.find(view->session_id);
    if (it == pending_.end()) {
      if (pending_.size() >= options_.pending_sessions_max) {
        ++dropped_sessions_;
        if (!lost_) {
          lost_ = true;
          lost_reason_ = "the catalog fell behind and dropped records";
          if (options_.on_error) {
            options_.on_error(fmt::format("catalog {}: {} sessions pending; dropping records "
                                          "(the trail keeps them): run gatehouse reindex",
                                          options_.file, pending_.size()));
          }
        }
        continue;
      }
      it = pending_.try_emplace(view->session_id).first;
    }
    fold_record(it->second, *view, shard, segment);
  }
  if (pending_.size() >= options_.batch_sessions_max) wake_.notify_one();
}

void CatalogFeed::fail(const std::string& message, bool lost) {
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    if (lost && !lost_) {
      lost_ = true;
      lost_reason_ = message;
    }
    reason = lost_reason_;
  }
  if (options_.on_error) options_.on_error(message);
  if (lost) (void)catalog_->set_state(CatalogState::kStale, reason);
}

void CatalogFeed::run() {
  std::vector<SessionSummary> deltas;
  for (;;) {
    std::unordered_map<uint64_t, SessionSummary> batch;
    bool stopping;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(options_.apply_interval_ms), [&] {
        return stopping_ || pending_.size() >= options_.batch_sessions_max;
      });
      batch.swap(pending_);
      stopping = stopping_;
    }
    if (!batch.empty()) {
      deltas.clear();
      for (auto& [id, summary] : batch) deltas.push_back(std::move(summary));
      by_start(deltas);
      if (auto r = catalog_->apply(deltas); !r) {
        fail(fmt::format("catalog: {} sessions not indexed (the trail keeps them): {}",
                         deltas.size(), r.error().message),
             true);
      } else {
        std::lock_guard lock(mutex_);
        ++applied_batches_;
      }
      // A login storm leaves megabytes of freed summaries in this thread's malloc arena, which
      // glibc keeps; give them back so that the gateway's footprint follows its open sessions.
      // Only after a storm: malloc_trim locks every arena in turn, the shards' too.
      constexpr size_t kStormSessions = 1000;
      if (deltas.size() >= kStormSessions) {
        deltas = {};
        batch = {};
        malloc_trim(0);
      }
    }
    if (stopping) break;
  }
  bool lost;
  std::string reason;
  {
    std::lock_guard lock(mutex_);
    lost = lost_;
    reason = lost_reason_;
  }
  auto closed = lost ? catalog_->set_state(CatalogState::kStale, reason)
                     : catalog_->set_state(CatalogState::kClean);
  if (!closed && options_.on_error) options_.on_error("catalog: " + closed.error().message);
}

void CatalogFeed::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  catalog_.reset();
}

uint64_t CatalogFeed::applied_batches() const {
  std::lock_guard lock(mutex_);
  return applied_batches_;
}

uint64_t CatalogFeed::dropped_sessions() const {
  std::lock_guard lock(mutex_);
  return dropped_sessions_;
}

}  // namespace gh::rec
