// Guardrails micro-benchmarks: SQL statement classification (libpg_query and the tree walk) per
// statement, uncached and from the shard's cache by shape, and masking throughput per core over
// values of 16 B, 128 B and 4 KiB with 1, 20 and 100 patterns in one Hyperscan database (values
// hold no secret: the cost is the scan).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "mask/policy.hpp"

namespace {

void BM_ClassifySql(benchmark::State& state, const char* sql) {
  for (auto _ : state) {
    auto c = gh::mask::classify_sql(sql);
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK_CAPTURE(BM_ClassifySql, pgbench_select,
                  "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;");
BENCHMARK_CAPTURE(BM_ClassifySql, tpcb_update,
                  "UPDATE pgbench_accounts SET abalance = abalance + -3012 WHERE aid = 48213;");
BENCHMARK_CAPTURE(
    BM_ClassifySql, cte_join,
    "WITH recent AS (SELECT o.id, o.customer_id, sum(l.amount) AS total FROM orders o "
    "JOIN lines l ON l.order_id = o.id WHERE o.created_at > now() - interval '1 day' "
    "GROUP BY 1, 2) SELECT c.name, r.total FROM recent r JOIN customers c ON c.id = "
    "r.customer_id ORDER BY r.total DESC LIMIT 50");

// The shard's cache on simple-protocol traffic: the same shape with a new number each time.
void BM_ClassifyCachedShape(benchmark::State& state) {
  gh::mask::ClassificationCache cache;
  uint32_t aid = 1;
  std::string sql;
  for (auto _ : state) {
    sql = "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(aid++ % 100000) + ";";
    benchmark::DoNotOptimize(cache.classify(sql).parsed);
  }
}
BENCHMARK(BM_ClassifyCachedShape);

gh::mask::MaskPolicy policy_with(int patterns) {
  gh::config::Guardrails g;
  int n = 0;
  for (const gh::mask::DetectorSpec& d : gh::mask::builtin_detectors()) {
    if (n >= patterns) break;
    gh::config::MaskRule r;
    r.name = std::string(d.name);
    r.detector = std::string(d.name);
    g.mask.push_back(r);
    n += int(d.expressions.size());
  }
  for (int i = 0; n < patterns; ++i, ++n) {
    gh::config::MaskRule r;
    r.name = "custom-" + std::to_string(i);
    r.regex = "SECRET" + std::to_string(i) + "-[A-Z0-9]{12}";
    g.mask.push_back(r);
  }
  return std::move(*gh::mask::MaskPolicy::compile(g, "bench"));
}

void BM_MaskValues(benchmark::State& state) {
  const int patterns = int(state.range(0));
  const size_t value_bytes = size_t(state.range(1));
  const gh::mask::MaskPolicy policy = policy_with(patterns);
  gh::mask::Scratch scratch;
  if (!policy.grow_scratch(scratch)) state.SkipWithError("scratch");
  // Row-like text: words, numbers and punctuation, no secret.
  std::string text;
  const std::string words =
      "order 1042 shipped to Rue de la Paix 12, total 99.50 EUR; note: fragile. ";
  while (text.size() < value_bytes * 64) text += words;
  std::vector<std::string_view> values;
  for (size_t at = 0; at + value_bytes <= text.size() && values.size() < 64; at += value_bytes)
    values.emplace_back(text.data() + at, value_bytes);
  std::string out;
  std::vector<gh::mask::Match> matches;
  size_t bytes = 0;
  for (auto _ : state) {
    for (std::string_view v : values) {
      benchmark::DoNotOptimize(policy.mask_value(v, scratch, out, matches));
      bytes += v.size();
    }
  }
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["patterns"] = double(policy.patterns()->size());
}
BENCHMARK(BM_MaskValues)->ArgsProduct({{1, 20, 100}, {16, 128, 4096}});

// One built-in detector alone over 4 KiB values: what each costs.
void BM_MaskOneDetector(benchmark::State& state) {
  const gh::mask::DetectorSpec& d = gh::mask::builtin_detectors()[size_t(state.range(0))];
  gh::config::Guardrails g;
  gh::config::MaskRule r;
  r.name = std::string(d.name);
  r.detector = std::string(d.name);
  g.mask.push_back(r);
  const gh::mask::MaskPolicy policy = std::move(*gh::mask::MaskPolicy::compile(g, "bench"));
  gh::mask::Scratch scratch;
  if (!policy.grow_scratch(scratch)) state.SkipWithError("scratch");
  std::string text;
  while (text.size() < 4096)
    text += "order 1042 shipped to Rue de la Paix 12, total 99.50 EUR; note: fragile. ";
  text.resize(4096);
  std::string out;
  std::vector<gh::mask::Match> matches;
  for (auto _ : state) benchmark::DoNotOptimize(policy.mask_value(text, scratch, out, matches));
  state.SetBytesProcessed(int64_t(state.iterations()) * 4096);
  state.SetLabel(std::string(d.name));
}
BENCHMARK(BM_MaskOneDetector)->DenseRange(0, int(gh::mask::builtin_detectors().size()) - 1);

}  // namespace
