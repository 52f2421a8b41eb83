// Hyperscan block-mode pattern sets.
// Must not know sockets or files.
#include "mask/pattern_set.hpp"

#include <hs/hs.h>

#include <utility>

#include <fmt/format.h>

namespace gh::mask {

Result<PatternSet> PatternSet::compile(std::vector<Pattern> patterns, bool leftmost_start) {
  if (patterns.empty()) return fail("a pattern set needs at least one pattern");
  std::vector<const char*> expressions;
  std::vector<unsigned> flags;
  std::vector<unsigned> ids;
  for (size_t i = 0; i < patterns.size(); ++i) {
    expressions.push_back(patterns[i].expression.c_str());
    flags.push_back((leftmost_start ? HS_FLAG_SOM_LEFTMOST : HS_FLAG_SINGLEMATCH) |
                    (patterns[i].utf8 ? HS_FLAG_UTF8 : 0) | (patterns[i].caseless ? HS_FLAG_CASELESS : 0));
    ids.push_back(unsigned(i));
  }
  hs_database_t* db = nullptr;
  hs_compile_error_t* error = nullptr;
  if (hs_compile_multi(expressions.data(), flags.data(), ids.data(), unsigned(patterns.size()),
                       HS_MODE_BLOCK, nullptr, &db, &error) != HS_SUCCESS) {
    std::string what = error && error->message ? error->message : "unknown error";
    const int at = error ? error->expression : -1;
    hs_free_compile_error(error);
    if (at >= 0 && size_t(at) < patterns.size())
      return fail(fmt::format("pattern '{}' ({}): {}", patterns[at].name, patterns[at].expression, what));
    return fail("pattern set: " + what);
  }
  PatternSet set;
  set.patterns_ = std::move(patterns);
  set.database_ = db;
  return set;
}

PatternSet::~PatternSet() {
  if (database_) hs_free_database(database_);
}
PatternSet::PatternSet(PatternSet&& o) noexcept
    : patterns_(std::move(o.patterns_)), database_(std::exchange(o.database_, nullptr)) {}
PatternSet& PatternSet::operator=(PatternSet&& o) noexcept {
  std::swap(patterns_, o.patterns_);
  std::swap(database_, o.database_);
  return *this;
}

Result<Scratch> PatternSet::make_scratch() const {
  hs_scratch_t* s = nullptr;
  if (hs_alloc_scratch(database_, &s) != HS_SUCCESS) return fail("cannot allocate Hyperscan scratch");
  return Scratch(s);
}

Result<void> PatternSet::grow_scratch(Scratch& scratch) const {
  if (hs_alloc_scratch(database_, &scratch.scratch_) != HS_SUCCESS)
    return fail("cannot allocate Hyperscan scratch");
  return {};
}

Result<void> PatternSet::scan(std::string_view text, Scratch& scratch, std::vector<Match>& out) const {
  auto on_match = [](unsigned id, unsigned long long from, unsigned long long to, unsigned,
                     void* context) -> int {
    static_cast<std::vector<Match>*>(context)->push_back(Match{id, size_t(from), size_t(to)});
    return 0;
  };
  if (hs_scan(database_, text.data(), unsigned(text.size()), 0, scratch.scratch_, on_match, &out) !=
      HS_SUCCESS)
    return fail("Hyperscan scan failed");
  return {};
}

Result<bool> PatternSet::matches_any(std::string_view text, Scratch& scratch) const {
  auto on_match = [](unsigned, unsigned long long, unsigned long long, unsigned, void*) -> int {
    return 1;  // stop: one match answers the question
  };
  const hs_error_t rc =
      hs_scan(database_, text.data(), unsigned(text.size()), 0, scratch.scratch_, on_match, nullptr);
  if (rc == HS_SCAN_TERMINATED) return true;
  if (rc != HS_SUCCESS) return fail("Hyperscan scan failed");
  return false;
}

Scratch::~Scratch() {
  if (scratch_) hs_free_scratch(scratch_);
}
Scratch::Scratch(Scratch&& o) noexcept : scratch_(std::exchange(o.scratch_, nullptr)) {}
Scratch& Scratch::operator=(Scratch&& o) noexcept {
  std::swap(scratch_, o.scratch_);
  return *this;
}

}  // namespace gh::mask
