// Guardrails micro-benchmarks: SQL statement classification (libpg_query and the tree walk) per
// statement, uncached and from the shard's cache by shape, and masking throughput per core over
// values of 16 B, 128 B and 4 KiB with 1, 20 and 100 patterns in one Hyperscan database (values
// hold no secret: the cost is the scan), side by side with PCRE2-JIT and RE2::Set over the same
// rows; and what Hyperscan's stream mode would hold per open stream.
#include <benchmark/benchmark.h>
#include <hs/hs.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
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

// 64 row-like values of one size: words, numbers and punctuation, no secret.
struct RowValues {
  explicit RowValues(size_t value_bytes) {
    const std::string words =
        "order 1042 shipped to Rue de la Paix 12, total 99.50 EUR; note: fragile. ";
    while (text.size() < value_bytes * 64) text += words;
    for (size_t at = 0; at + value_bytes <= text.size() && values.size() < 64; at += value_bytes)
      values.emplace_back(text.data() + at, value_bytes);
  }
  std::string text;
  std::vector<std::string_view> values;
};

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
  const RowValues rows(value_bytes);
  std::string out;
  std::vector<gh::mask::Match> matches;
  size_t bytes = 0;
  for (auto _ : state) {
    for (std::string_view v : rows.values) {
      benchmark::DoNotOptimize(policy.mask_value(v, scratch, out, matches));
      bytes += v.size();
    }
  }
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["patterns"] = double(policy.patterns()->size());
}
BENCHMARK(BM_MaskValues)->ArgsProduct({{1, 20, 100}, {16, 128, 4096}});

// The same patterns and rows with the two usual alternatives, for the ratio: PCRE2 with its JIT
// (one alternation of every pattern, every match found) and RE2::Set (which patterns match; a
// masker would then need a second pass for the positions, not counted here).
std::vector<gh::mask::Pattern> patterns_of(const gh::mask::MaskPolicy& policy) {
  std::vector<gh::mask::Pattern> out;
  for (size_t i = 0; i < policy.patterns()->size(); ++i)
    out.push_back(policy.patterns()->pattern(uint32_t(i)));
  return out;
}

void BM_MaskValuesPcre2Jit(benchmark::State& state) {
  const RowValues rows(size_t(state.range(1)));
  const std::vector<gh::mask::Pattern> patterns = patterns_of(policy_with(int(state.range(0))));
  std::string alternation;
  for (const gh::mask::Pattern& p : patterns)
    alternation += (alternation.empty() ? "" : "|") + std::string(p.caseless ? "(?i:" : "(?:") +
                   p.expression + ")";
  int error = 0;
  PCRE2_SIZE error_at = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(alternation.data()),
                                   alternation.size(), 0, &error, &error_at, nullptr);
  if (code == nullptr || pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) {
    state.SkipWithError("pcre2 compile");
    return;
  }
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t bytes = 0;
  size_t found = 0;
  for (auto _ : state) {
    for (std::string_view v : rows.values) {
      PCRE2_SIZE at = 0;
      while (at < v.size() && pcre2_jit_match(code, reinterpret_cast<PCRE2_SPTR>(v.data()),
                                              v.size(), at, 0, match, nullptr) > 0) {
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
        at = std::max(ovector[1], ovector[0] + 1);
        ++found;
      }
      bytes += v.size();
    }
  }
  benchmark::DoNotOptimize(found);
  pcre2_match_data_free(match);
  pcre2_code_free(code);
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["patterns"] = double(patterns.size());
}
BENCHMARK(BM_MaskValuesPcre2Jit)->ArgsProduct({{1, 20, 100}, {16, 128, 4096}});

void BM_MaskValuesRe2Set(benchmark::State& state) {
  const RowValues rows(size_t(state.range(1)));
  const std::vector<gh::mask::Pattern> patterns = patterns_of(policy_with(int(state.range(0))));
  RE2::Options options;
  options.set_encoding(RE2::Options::EncodingLatin1);  // bytes, as Hyperscan scans them
  options.set_log_errors(false);
  RE2::Set set(options, RE2::UNANCHORED);
  for (const gh::mask::Pattern& p : patterns) {
    if (set.Add((p.caseless ? "(?i)" : "") + p.expression, nullptr) < 0) {
      state.SkipWithError(("re2 refuses " + p.name).c_str());
      return;
    }
  }
  if (!set.Compile()) {
    state.SkipWithError("re2 compile");
    return;
  }
  size_t bytes = 0;
  std::vector<int> ids;
  for (auto _ : state) {
    for (std::string_view v : rows.values) {
      benchmark::DoNotOptimize(set.Match(v, &ids));
      bytes += v.size();
    }
  }
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["patterns"] = double(patterns.size());
}
BENCHMARK(BM_MaskValuesRe2Set)->ArgsProduct({{1, 20, 100}, {16, 128, 4096}});

// What stream mode would cost: gatehouse scans whole values in block mode (a DataRow value is
// complete once its message is), so it holds no stream state; a design that scanned each
// receive buffer as it came would hold this much per open stream (per column being scanned),
// with start-of-match reporting as masking needs it. Not a timing: the counters are the figure.
void BM_HyperscanStreamState(benchmark::State& state) {
  const std::vector<gh::mask::Pattern> patterns = patterns_of(policy_with(int(state.range(0))));
  std::vector<const char*> expressions;
  std::vector<unsigned> flags;
  std::vector<unsigned> ids;
  for (size_t i = 0; i < patterns.size(); ++i) {
    expressions.push_back(patterns[i].expression.c_str());
    flags.push_back(HS_FLAG_SOM_LEFTMOST | (patterns[i].caseless ? HS_FLAG_CASELESS : 0));
    ids.push_back(unsigned(i));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* error = nullptr;
  if (hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(patterns.size()),
                       HS_MODE_STREAM | HS_MODE_SOM_HORIZON_LARGE, nullptr, &db,
                       &error) != HS_SUCCESS) {
    state.SkipWithError(error != nullptr ? error->message : "hs_compile_multi");
    hs_free_compile_error(error);
    return;
  }
  size_t stream_bytes = 0;
  size_t database_bytes = 0;
  for (auto _ : state) {
    hs_stream_size(db, &stream_bytes);
    hs_database_size(db, &database_bytes);
  }
  hs_free_database(db);
  state.counters["stream_state_bytes"] = double(stream_bytes);
  state.counters["database_bytes"] = double(database_bytes);
  state.counters["patterns"] = double(patterns.size());
}
BENCHMARK(BM_HyperscanStreamState)->Arg(1)->Arg(20)->Arg(100)->Iterations(1);

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
  const RowValues rows(4096);
  const std::string_view text = rows.values[0];
  std::string out;
  std::vector<gh::mask::Match> matches;
  for (auto _ : state) benchmark::DoNotOptimize(policy.mask_value(text, scratch, out, matches));
  state.SetBytesProcessed(int64_t(state.iterations()) * 4096);
  state.SetLabel(std::string(d.name));
}
BENCHMARK(BM_MaskOneDetector)->DenseRange(0, int(gh::mask::builtin_detectors().size()) - 1);

}  // namespace
