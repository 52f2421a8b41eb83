// A connection's guardrails compiled once at load: SQL rules (statement classes from the parser,
// regexes in one Hyperscan database) and mask rules (detectors, regexes and column names, all
// patterns in one Hyperscan database). Read-only after compilation and shared by every shard;
// each shard scans with its own Scratch. Must not know sockets, files or sessions.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.hpp"
#include "core/guardrails.hpp"
#include "mask/detectors.hpp"
#include "mask/pattern_set.hpp"
#include "mask/replace.hpp"
#include "mask/sql_classifier.hpp"

namespace gh::mask {

// Names of the refusals that no configured rule names (they hold whenever a connection has SQL
// rules).
inline constexpr std::string_view kRuleUnparseable = "unparseable";
inline constexpr std::string_view kRuleLexerSettings = "lexer_settings";
inline constexpr std::string_view kRuleFunctionCall = "function_call";

struct SqlVerdict {
  enum class Kind : uint8_t { kAllow, kDeny, kApprove };
  Kind kind = Kind::kAllow;
  std::string rule;    // the configured rule's name, or one of the kRule* names above
  std::string reason;  // what matched, e.g. "drop of public.users (statement 2)"
  bool allowed() const { return kind == Kind::kAllow; }
};

class SqlPolicy {
 public:
  // Compiles the regex rules; errors name the rule's path and name. `source` is the config file.
  static Result<SqlPolicy> compile(const config::Guardrails& g, const std::string& source);

  bool empty() const { return deny_.empty() && approve_.empty(); }
  // Judges one Query string or Parse text. Deny rules come before approve rules.
  SqlVerdict judge(std::string_view sql, Scratch& scratch) const;
  // A judged classification (for callers that classify themselves).
  SqlVerdict judge(std::string_view sql, const Classification& c, Scratch& scratch) const;
  SqlVerdict judge_function_call() const;
  // Judges free text (an SSH command line or shell line) by the regex rules alone, deny rules
  // before approve rules; rules by statement class or table do not apply to it.
  SqlVerdict judge_text(std::string_view text, Scratch& scratch) const;
  // The Hyperscan database of the regex rules, if any (for growing a shard's scratch).
  const PatternSet* regexes() const { return regexes_ ? &*regexes_ : nullptr; }

 private:
  struct Rule {
    const config::SqlRule* rule;
    SqlVerdict::Kind kind;
  };
  std::optional<SqlVerdict> match_classes(const Rule& r, const Classification& c) const;

  std::vector<config::SqlRule> deny_;
  std::vector<config::ApproveRule> approve_;
  bool allow_function_call_ = false;
  std::optional<PatternSet> regexes_;
  std::vector<Rule> regex_rules_;  // by pattern id
};

// The masking of one value: which bytes of it were replaced.
class MaskPolicy {
 public:
  static Result<MaskPolicy> compile(const config::Guardrails& g, const std::string& source);

  bool empty() const { return rules_.empty(); }
  bool has_column_rules() const { return has_column_rules_; }
  const PatternSet* patterns() const { return patterns_ ? &*patterns_ : nullptr; }
  // The same patterns without start-of-match tracking: most values hold no secret, and this
  // database says so several times faster (grow shard scratches for it too).
  const PatternSet* prefilter() const { return prefilter_ ? &*prefilter_ : nullptr; }
  // Grows a shard's scratch for both databases.
  Result<void> grow_scratch(Scratch& scratch) const {
    for (const PatternSet* set : {patterns(), prefilter()}) {
      if (set == nullptr) continue;
      if (auto r = set->grow_scratch(scratch); !r) return r;
    }
    return {};
  }

  // The mask rule that takes a whole column by its name, if any (-1: none).
  int column_rule(std::string_view column_name) const;
  // Masks `value` into `out` (resized to value.size(); every style keeps the length). Returns
  // the number of secrets replaced; 0 leaves `out` unspecified. `matches` is scratch space that
  // ends holding the confirmed matches (those replaced).
  size_t mask_value(std::string_view value, Scratch& scratch, std::string& out,
                    std::vector<Match>& matches) const;
  // A whole value replaced by rule `rule` (column rules); `binary`: a binary-format value of a
  // non-text type, zeroed.
  void mask_whole(int rule, std::string_view value, char* out, bool binary) const;
  const std::string& rule_name(int rule) const { return rules_[size_t(rule)].name; }

 private:
  struct Rule {
    std::string name;
    Replacement replacement;
    std::vector<std::string> columns;
  };
  struct PatternOwner {
    uint32_t rule;
    Detector detector;
  };
  std::vector<Rule> rules_;
  std::optional<PatternSet> patterns_;
  std::optional<PatternSet> prefilter_;
  std::vector<PatternOwner> owners_;  // by pattern id
  bool has_column_rules_ = false;
};

struct ConnectionPolicy {
  SqlPolicy sql;
  MaskPolicy mask;
};

// Compiles every connection's guardrails (same order as config.connections); the first error
// names the file, the rule and the reason. `gatehouse check` and `serve` both call it.
Result<std::vector<std::unique_ptr<ConnectionPolicy>>> compile_policies(
    const config::Config& config);

}  // namespace gh::mask
