// JWT validation rate: identity::Validator::validate of an EdDSA token minted by the built-in
// issuer (identity::TokenMinter), as a PostgreSQL login does it. Key files in a temporary folder.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/assert.hpp"
#include "core/identity/issuer.hpp"
#include "core/identity/jwt.hpp"
#include "core/identity/validation_cache.hpp"

namespace gh::identity {
namespace {

constexpr int64_t kNow = 1'700'000'000;

struct Fixture {
  std::filesystem::path dir;
  std::optional<Validator> validator;
  std::optional<TokenMinter> minter;
  TokenRequest request;

  Fixture() {
    std::string pattern = (std::filesystem::temp_directory_path() / "gh-bench-XXXXXX").string();
    GH_ASSERT(::mkdtemp(pattern.data()) != nullptr);
    dir = pattern;
    GH_ASSERT(keygen(dir / "issuer.pem", dir / "jwks.json").has_value());
    auto m = TokenMinter::load(dir / "issuer.pem");
    GH_ASSERT(m.has_value());
    minter.emplace(std::move(*m));
    IssuerConfig config;
    config.name = "builtin";
    config.issuer = "gatehouse";
    config.audiences = {"gatehouse"};
    config.jwks_file = (dir / "jwks.json").string();
    auto v = Validator::create({config}, {});
    GH_ASSERT(v.has_value());
    validator.emplace(std::move(*v));
    // What a CI login carries: a subject, two groups, a two-level act chain, provenance claims.
    request.subject = "alice";
    request.groups = {"developers", "deployers"};
    request.actors = {"ci-runner", "deploy-agent"};
    request.audience = "gatehouse";
    request.issuer = "gatehouse";
    request.ttl_s = 900;
    request.extra_claims = {{"repository", "acme/shop"}, {"workflow", "deploy"}, {"run_id", 4242}};
  }
  ~Fixture() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

// The same token validated again and again without a cache: every call does the full work
// (base64url, JSON parse, key lookup, Ed25519 verify, claims), as a first login does.
void BM_ValidateEdDsaNoCache(benchmark::State& state) {
  Fixture f;
  const auto token = f.minter->issue(f.request, kNow);
  GH_ASSERT(token.has_value());
  for (auto _ : state) {
    auto identity = f.validator->validate(*token, kNow + 1);
    GH_ASSERT(identity.has_value());
    benchmark::DoNotOptimize(identity);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["token_bytes"] = double(token->size());
}

// The same token through the per-shard identity::ValidationCache, as a client reconnecting with
// the token it used before: after the first call, a lookup by the whole token and a copy of the
// Identity (expiry is still checked).
void BM_ValidateEdDsaCached(benchmark::State& state) {
  Fixture f;
  const auto token = f.minter->issue(f.request, kNow);
  GH_ASSERT(token.has_value());
  ValidationCache cache(*f.validator);
  for (auto _ : state) {
    auto identity = cache.validate(*token, kNow + 1);
    GH_ASSERT(identity.has_value());
    benchmark::DoNotOptimize(identity);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["hits"] = double(cache.hits());
}

// A refused token (bad signature: last character of the signature changed) costs as much as a
// good one up to the verify; this shows what a flood of bad logins costs.
void BM_ValidateEdDsaBadSignature(benchmark::State& state) {
  Fixture f;
  auto token = f.minter->issue(f.request, kNow);
  GH_ASSERT(token.has_value());
  std::string bad = *token;
  bad[bad.size() - 2] = bad[bad.size() - 2] == 'A' ? 'B' : 'A';
  for (auto _ : state) {
    auto identity = f.validator->validate(bad, kNow + 1);
    GH_ASSERT(!identity.has_value());
    benchmark::DoNotOptimize(identity);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

// Minting, for reference (the token service side, gatehouse token issue).
void BM_IssueEdDsa(benchmark::State& state) {
  Fixture f;
  for (auto _ : state) {
    auto token = f.minter->issue(f.request, kNow);
    benchmark::DoNotOptimize(token);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}

BENCHMARK(BM_ValidateEdDsaNoCache);
BENCHMARK(BM_ValidateEdDsaCached);
BENCHMARK(BM_ValidateEdDsaBadSignature);
BENCHMARK(BM_IssueEdDsa);

}  // namespace
}  // namespace gh::identity
