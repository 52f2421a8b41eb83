// The session catalog at scale: an SQLite catalog filled with GH_CATALOG_SESSIONS synthetic
// sessions (default 1 000 000) in one transaction, then `gatehouse sessions` queries with each
// filter and combinations (Catalog::query: the rows and their chains, groups, claims, segments).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "core/assert.hpp"
#include "record/catalog.hpp"

namespace gh::rec {
namespace {

constexpr uint64_t kSecondNs = 1'000'000'000ull;
constexpr uint64_t kBaseNs = 1'790'000'000ull * kSecondNs;  // 2026-09-21
constexpr uint64_t kSpanNs = 30ull * 24 * 3600 * kSecondNs;  // sessions spread over 30 days
// Population: 5000 subjects, 500 agents (0..2 in a chain), 1000 database users, 500 connections,
// 200 repositories in the CI claims.
constexpr int kSubjects = 5000, kAgents = 500, kUsers = 1000, kConnections = 500, kRepos = 200;

size_t session_count() {
  const char* env = ::getenv("GH_CATALOG_SESSIONS");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 1'000'000;
}

class Filled {
 public:
  static Filled& get() {
    static Filled filled;
    return filled;
  }
  Catalog& catalog() { return **catalog_; }
  const std::string& file() const { return file_; }
  size_t sessions = 0;
  double fill_s = 0;

 private:
  Filled() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gh-catalog-XXXXXX").string();
    GH_ASSERT(::mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    file_ = dir_ + "/catalog.sqlite";
    catalog_ = std::make_unique<std::unique_ptr<Catalog>>(*open_sqlite_catalog(file_));
    sessions = session_count();
    std::mt19937_64 random(42);
    const auto start = std::chrono::steady_clock::now();
    GH_ASSERT(catalog().begin().has_value());
    std::vector<SessionSummary> chunk;
    for (size_t i = 0; i < sessions; ++i) {
      SessionSummary s;
      s.session_id = random();
      s.shard = uint16_t(i % 4);
      s.start_ns = kBaseNs + kSpanNs / sessions * i;
      s.end_ns = s.start_ns + (1 + random() % 600) * kSecondNs;
      s.ended = true;
      s.protocol = "postgres";
      s.connection = "db-" + std::to_string(random() % kConnections);
      s.client_address = "10.0." + std::to_string(random() % 256) + ".7:5" + std::to_string(i % 10000);
      s.user = "user-" + std::to_string(random() % kUsers);
      s.database = "app";
      s.token_id = std::to_string(random());
      s.issuer = "gatehouse";
      s.chain.push_back("person-" + std::to_string(random() % kSubjects));
      for (uint64_t a = random() % 3; a > 0; --a) s.chain.push_back("agent-" + std::to_string(random() % kAgents));
      s.groups = {"devs", "ci"};
      s.claims = {{"repository", "repo-" + std::to_string(random() % kRepos)}, {"ref", "refs/heads/main"}};
      s.events = 12;
      s.statements = 5;
      s.refused = random() % 2;
      s.end_reason = "client closed";
      s.segments = {SegmentRef{s.shard, 1 + i / 20000}};
      chunk.push_back(std::move(s));
      if (chunk.size() == 50000 || i + 1 == sessions) {
        GH_ASSERT(catalog().apply(chunk).has_value());
        chunk.clear();
      }
    }
    GH_ASSERT(catalog().set_state(CatalogState::kClean).has_value());
    GH_ASSERT(catalog().commit().has_value());
    fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "catalog: %zu sessions filled in %.1f s (%.0f sessions/s, one transaction), %.0f MB\n",
                 sessions, fill_s, double(sessions) / fill_s,
                 double(std::filesystem::file_size(file_)) / 1e6);
  }
  ~Filled() {
    catalog_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string dir_, file_;
  std::unique_ptr<std::unique_ptr<Catalog>> catalog_;
};

// A time inside the filled span: `fraction` of the way through.
uint64_t at(double fraction) { return kBaseNs + uint64_t(double(kSpanNs) * fraction); }
constexpr uint64_t kHourNs = 3600 * kSecondNs;

struct Query {
  const char* name;
  SessionFilter filter;
};

std::vector<Query> queries() {
  std::vector<Query> out;
  const auto add = [&](const char* name, auto&& set) {
    SessionFilter f;
    set(f);
    out.push_back({name, f});
  };
  add("user", [](SessionFilter& f) { f.user = "user-17"; });
  add("actor_subject", [](SessionFilter& f) { f.chain_member = "person-17"; });
  add("actor_agent", [](SessionFilter& f) { f.chain_member = "agent-17"; });
  add("connection", [](SessionFilter& f) { f.connection = "db-17"; });
  add("claim", [](SessionFilter& f) { f.claims = {{"repository", "repo-17"}}; });
  add("since_last_hour", [](SessionFilter& f) { f.from_ns = at(1.0) - kHourNs; });
  add("until_first_hour", [](SessionFilter& f) { f.to_ns = at(0.0) + kHourNs; });
  add("window_1h_mid", [](SessionFilter& f) {
    f.from_ns = at(0.5);
    f.to_ns = at(0.5) + kHourNs;
  });
  add("user+connection", [](SessionFilter& f) {
    f.user = "user-17";
    f.connection = "db-17";
  });
  add("actor+since_1d", [](SessionFilter& f) {
    f.chain_member = "agent-17";
    f.from_ns = at(1.0) - 24 * kHourNs;
  });
  add("user+window_1d", [](SessionFilter& f) {
    f.user = "user-17";
    f.from_ns = at(0.5);
    f.to_ns = at(0.5) + 24 * kHourNs;
  });
  add("connection+actor+window_7d", [](SessionFilter& f) {
    f.connection = "db-17";
    f.chain_member = "person-17";
    f.from_ns = at(0.25);
    f.to_ns = at(0.25) + 7 * 24 * kHourNs;
  });
  add("all_filters", [](SessionFilter& f) {
    f.user = "user-17";
    f.chain_member = "agent-17";
    f.connection = "db-17";
    f.claims = {{"repository", "repo-17"}};
    f.from_ns = at(0.0);
    f.to_ns = at(1.0);
  });
  add("nothing_matches", [](SessionFilter& f) { f.user = "nobody"; });
  return out;
}

void BM_CatalogQuery(benchmark::State& state) {
  Filled& filled = Filled::get();
  const Query q = queries()[size_t(state.range(0))];
  state.SetLabel(q.name);
  size_t rows = 0;
  for (auto _ : state) {
    auto found = filled.catalog().query(q.filter);
    GH_ASSERT(found.has_value());
    rows = found->size();
    benchmark::DoNotOptimize(found->data());
  }
  state.counters["sessions"] = double(filled.sessions);
  state.counters["rows"] = double(rows);
}

// What one `gatehouse sessions --user U` invocation does beyond process start: open the file
// read-only, read its state, query.
void BM_CatalogOpenAndQuery(benchmark::State& state) {
  Filled& filled = Filled::get();
  SessionFilter filter;
  filter.user = "user-17";
  size_t rows = 0;
  for (auto _ : state) {
    auto catalog = open_sqlite_catalog_readonly(filled.file());
    GH_ASSERT(catalog.has_value() && *catalog != nullptr);
    GH_ASSERT((*catalog)->status().has_value());
    auto found = (*catalog)->query(filter);
    GH_ASSERT(found.has_value());
    rows = found->size();
  }
  state.counters["rows"] = double(rows);
}

void register_queries(benchmark::internal::Benchmark* b) {
  for (size_t i = 0; i < queries().size(); ++i) b->Arg(int64_t(i));
}

BENCHMARK(BM_CatalogQuery)->Apply(register_queries)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CatalogOpenAndQuery)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace gh::rec
