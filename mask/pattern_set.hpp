// A set of regular expressions compiled once into one Hyperscan database, scanned with one
// scratch per shard (Hyperscan scratch is not thread-safe). Must not know sockets or files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "mask/detectors.hpp"  // luhn_valid, used with pattern sets

struct hs_database;
struct hs_scratch;

namespace gh::mask {

struct Pattern {
  std::string name;        // for errors and verdicts, e.g. the rule name
  std::string expression;  // PCRE-style, as Hyperscan accepts it
  bool caseless = false;
  bool utf8 = false;  // the scanned text is valid UTF-8 (else bytes are matched as they are)
};

// A match: which pattern, and the bytes [from, to) of the scanned text.
struct Match {
  uint32_t pattern;
  size_t from;
  size_t to;
};

class Scratch;

class PatternSet {
 public:
  // Compiles all patterns into one block-mode database; an invalid pattern fails with its name
  // and Hyperscan's reason.
  // `leftmost_start`: matches report where they start (costs Hyperscan stream state and refuses
  // some patterns); without it, `from` is 0 and each pattern reports its first match only.
  static Result<PatternSet> compile(std::vector<Pattern> patterns, bool leftmost_start = true);
  ~PatternSet();
  PatternSet(PatternSet&&) noexcept;
  PatternSet& operator=(PatternSet&&) noexcept;
  PatternSet(const PatternSet&) = delete;
  PatternSet& operator=(const PatternSet&) = delete;

  // One per thread that scans (a shard); valid for this set only.
  Result<Scratch> make_scratch() const;
  // Grows a scratch (of any set, or an empty one) to serve this set too: one scratch per shard
  // serves every set of the shard.
  Result<void> grow_scratch(Scratch& scratch) const;
  // Every match (leftmost start), in the order Hyperscan reports them (by end offset).
  Result<void> scan(std::string_view text, Scratch& scratch, std::vector<Match>& out) const;
  // Whether any pattern matches; stops at the first match (the cheap test before a full scan).
  Result<bool> matches_any(std::string_view text, Scratch& scratch) const;
  const Pattern& pattern(uint32_t id) const { return patterns_[id]; }
  size_t size() const { return patterns_.size(); }

 private:
  PatternSet() = default;
  std::vector<Pattern> patterns_;
  hs_database* database_ = nullptr;
};

class Scratch {
 public:
  Scratch() = default;  // empty: grow_scratch makes it usable
  ~Scratch();
  Scratch(Scratch&&) noexcept;
  Scratch& operator=(Scratch&&) noexcept;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

 private:
  friend class PatternSet;
  explicit Scratch(hs_scratch* s) : scratch_(s) {}
  hs_scratch* scratch_ = nullptr;
};


}  // namespace gh::mask
