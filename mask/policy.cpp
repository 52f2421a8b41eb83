// Compiled guardrails: SQL verdicts from classes and regexes, value masking from detectors,
// regexes and column names. Must not know sockets, files or sessions.
#include "mask/policy.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace gh::mask {
namespace {

std::string describe(const Finding& f) {
  std::string what(config::statement_class_name(f.statement_class));
  if (f.relation) {
    if (f.relation->name.empty()) {
      what += fmt::format(" in schema {}", f.relation->schema);
    } else if (f.relation->schema.empty()) {
      what += fmt::format(" of {}", f.relation->name);
    } else {
      what += fmt::format(" of {}.{}", f.relation->schema, f.relation->name);
    }
  }
  return fmt::format("{} (statement {})", what, f.statement + 1);
}

std::string rule_error(const std::string& source, const std::string& path, const std::string& name,
                       const std::string& reason) {
  return fmt::format("{}: {} (rule '{}'): {}", source, path, name, reason);
}

}  // namespace

// ---- SQL rules ----------------------------------------------------------------------------------

Result<SqlPolicy> SqlPolicy::compile(const config::Guardrails& g, const std::string& source) {
  SqlPolicy p;
  p.deny_ = g.deny;
  p.approve_ = g.approve;
  p.allow_function_call_ = g.allow_function_call;
  std::vector<Pattern> patterns;
  auto add = [&](const config::SqlRule& r, SqlVerdict::Kind kind) {
    if (r.regex.empty()) return;
    patterns.push_back(Pattern{r.name, r.regex, r.caseless, false});
    p.regex_rules_.push_back(Rule{&r, kind});
  };
  for (const auto& r : p.deny_) add(r, SqlVerdict::Kind::kDeny);
  for (const auto& r : p.approve_) add(r, SqlVerdict::Kind::kApprove);
  for (size_t i = 0; i < patterns.size(); ++i) {
    // Compiled alone first, so that an error names its own rule and nothing else.
    auto alone = PatternSet::compile({patterns[i]}, false);
    if (!alone) {
      const config::SqlRule& r = *p.regex_rules_[i].rule;
      return fail(rule_error(source, r.path + ".regex", r.name, alone.error().message));
    }
  }
  if (!patterns.empty()) {
    auto set = PatternSet::compile(std::move(patterns), false);
    if (!set) return fail(fmt::format("{}: SQL regex rules: {}", source, set.error().message));
    p.regexes_ = std::move(*set);
  }
  return p;
}

std::optional<SqlVerdict> SqlPolicy::match_classes(const Rule& r, const Classification& c) const {
  const config::SqlRule& rule = *r.rule;
  if (rule.statements.empty()) return std::nullopt;
  for (const Finding& f : c.findings) {
    if (std::find(rule.statements.begin(), rule.statements.end(), f.statement_class) ==
        rule.statements.end())
      continue;
    const bool filtered = !rule.tables.empty() || !rule.schemas.empty();
    if (filtered) {
      if (!f.relation) continue;
      bool hit = false;
      for (const auto& t : rule.tables) hit |= table_filter_matches(t, *f.relation);
      for (const auto& s : rule.schemas) hit |= schema_filter_matches(s, *f.relation);
      if (!hit) continue;
    }
    return SqlVerdict{r.kind, rule.name, describe(f)};
  }
  return std::nullopt;
}

SqlVerdict SqlPolicy::judge(std::string_view sql, Scratch& scratch) const {
  if (empty()) return {};
  return judge(sql, classify_sql(sql), scratch);
}

SqlVerdict SqlPolicy::judge(std::string_view sql, const Classification& c, Scratch& scratch) const {
  if (empty()) return {};
  if (!c.parsed) {
    return SqlVerdict{SqlVerdict::Kind::kDeny, std::string(kRuleUnparseable),
                      "the statement does not parse: " + c.parse_error};
  }
  if (!c.lexer_hazard.empty()) {
    return SqlVerdict{SqlVerdict::Kind::kDeny, std::string(kRuleLexerSettings), c.lexer_hazard};
  }
  std::vector<Match> matches;
  if (regexes_) {
    if (!regexes_->scan(sql, scratch, matches)) {
      return SqlVerdict{SqlVerdict::Kind::kDeny, std::string(kRuleUnparseable),
                        "regex scan failed"};
    }
  }
  for (SqlVerdict::Kind kind : {SqlVerdict::Kind::kDeny, SqlVerdict::Kind::kApprove}) {
    if (kind == SqlVerdict::Kind::kDeny) {
      for (const config::SqlRule& rule : deny_) {
        if (auto v = match_classes(Rule{&rule, kind}, c)) return *v;
      }
    } else {
      for (const config::SqlRule& rule : approve_) {
        if (auto v = match_classes(Rule{&rule, kind}, c)) return *v;
      }
    }
    for (const Match& m : matches) {
      const Rule& r = regex_rules_[m.pattern];
      if (r.kind == kind)
        return SqlVerdict{kind, r.rule->name, "the text matches the rule's regex"};
    }
  }
  return {};
}

SqlVerdict SqlPolicy::judge_text(std::string_view text, Scratch& scratch) const {
  if (!regexes_) return {};
  std::vector<Match> matches;
  if (!regexes_->scan(text, scratch, matches)) {
    return SqlVerdict{SqlVerdict::Kind::kDeny, std::string(kRuleUnparseable), "regex scan failed"};
  }
  for (SqlVerdict::Kind kind : {SqlVerdict::Kind::kDeny, SqlVerdict::Kind::kApprove}) {
    for (const Match& m : matches) {
      const Rule& r = regex_rules_[m.pattern];
      if (r.kind == kind) return SqlVerdict{kind, r.rule->name, "the text matches the rule's regex"};
    }
  }
  return {};
}

SqlVerdict SqlPolicy::judge_function_call() const {
  if (empty() || allow_function_call_) return {};
  return SqlVerdict{
      SqlVerdict::Kind::kDeny, std::string(kRuleFunctionCall),
      "FunctionCall (fast-path) messages bypass SQL rules; allow_function_call is off"};
}

// ---- mask rules ---------------------------------------------------------------------------------

Result<MaskPolicy> MaskPolicy::compile(const config::Guardrails& g, const std::string& source) {
  MaskPolicy p;
  std::vector<Pattern> patterns;
  std::vector<Pattern> prefilters;
  for (size_t i = 0; i < g.mask.size(); ++i) {
    const config::MaskRule& r = g.mask[i];
    Rule rule;
    rule.name = r.name;
    rule.replacement.style = r.style == config::MaskStyle::kFixed      ? Style::kMask
                             : r.style == config::MaskStyle::kKeepLast ? Style::kKeepLast
                                                                       : Style::kHash;
    rule.replacement.mask_char = r.mask_char;
    rule.replacement.keep = r.keep;
    rule.replacement.hash_key = r.hash_key;
    rule.columns = r.columns;
    p.has_column_rules_ |= !r.columns.empty();
    const uint32_t index = uint32_t(p.rules_.size());
    std::vector<Pattern> own;
    std::vector<PatternOwner> own_owners;
    if (!r.detector.empty()) {
      auto d = detector_by_name(r.detector);
      if (!d) {
        std::string known;
        for (const DetectorSpec& s : builtin_detectors())
          known += (known.empty() ? "" : ", ") + std::string(s.name);
        return fail(
            rule_error(source, r.path + ".detect", r.name,
                       fmt::format("unknown detector '{}' (known: {})", r.detector, known)));
      }
      const DetectorSpec* spec = detector_spec(*d);
      for (std::string_view e : spec->expressions) {
        own.push_back(Pattern{r.name, std::string(e), false, false});
        own_owners.push_back(PatternOwner{index, *d});
      }
      for (std::string_view e : spec->prefilter.empty() ? spec->expressions : spec->prefilter)
        prefilters.push_back(Pattern{r.name, std::string(e), false, false});
    } else if (!r.regex.empty()) {
      own.push_back(Pattern{r.name, r.regex, r.caseless, false});
      own_owners.push_back(PatternOwner{index, Detector::kRegex});
      prefilters.push_back(own.back());
    }
    if (!own.empty()) {
      auto alone = PatternSet::compile(own, true);
      if (!alone)
        return fail(rule_error(source, r.path + (r.regex.empty() ? ".detect" : ".regex"), r.name,
                               alone.error().message));
      for (auto& pat : own) patterns.push_back(std::move(pat));
      for (auto& o : own_owners) p.owners_.push_back(o);
    }
    p.rules_.push_back(std::move(rule));
  }
  if (!patterns.empty()) {
    auto prefilter = PatternSet::compile(std::move(prefilters), false);
    if (!prefilter)
      return fail(fmt::format("{}: mask rules: {}", source, prefilter.error().message));
    p.prefilter_ = std::move(*prefilter);
    auto set = PatternSet::compile(std::move(patterns), true);
    if (!set) return fail(fmt::format("{}: mask rules: {}", source, set.error().message));
    p.patterns_ = std::move(*set);
  }
  return p;
}

int MaskPolicy::column_rule(std::string_view column_name) const {
  if (!has_column_rules_) return -1;
  // RowDescription names are as the server spells them (unquoted ones lower-cased already).
  for (size_t i = 0; i < rules_.size(); ++i) {
    for (const auto& c : rules_[i].columns) {
      if (c == column_name) return int(i);
    }
  }
  return -1;
}

size_t MaskPolicy::mask_value(std::string_view value, Scratch& scratch, std::string& out,
                              std::vector<Match>& matches) const {
  if (!patterns_ || value.empty()) return 0;
  matches.clear();
  auto any = prefilter_->matches_any(value, scratch);
  if (any && !*any) return 0;
  if (!any || !patterns_->scan(value, scratch, matches)) {
    // A failed scan must not let the value through unmasked: the whole value is replaced.
    out.assign(value.size(), '*');
    return 1;
  }
  size_t replaced = 0;
  size_t kept = 0;  // confirmed matches are compacted to the front, so callers see only them
  for (const Match& m : matches) {
    const PatternOwner& owner = owners_[m.pattern];
    const std::string_view candidate = value.substr(m.from, m.to - m.from);
    auto core = confirm(owner.detector, candidate);
    if (!core || core->to <= core->from) continue;
    matches[kept++] = m;
    if (replaced == 0) out.assign(value);
    const size_t from = m.from + core->from;
    // Each replacement reads the original value, so overlapping matches never hash a mask.
    replace(rules_[owner.rule].replacement, value.substr(from, core->to - core->from),
            out.data() + from);
    ++replaced;
  }
  matches.resize(kept);
  return replaced;
}

void MaskPolicy::mask_whole(int rule, std::string_view value, char* out, bool binary) const {
  replace(rules_[size_t(rule)].replacement, value, out, binary);
}

Result<std::vector<std::unique_ptr<ConnectionPolicy>>> compile_policies(
    const config::Config& config) {
  std::vector<std::unique_ptr<ConnectionPolicy>> out;
  const std::string source = config.source.string();
  for (const auto& c : config.connections) {
    auto sql = SqlPolicy::compile(c.guardrails, source);
    if (!sql) return std::unexpected(sql.error());
    auto mask = MaskPolicy::compile(c.guardrails, source);
    if (!mask) return std::unexpected(mask.error());
    out.push_back(
        std::make_unique<ConnectionPolicy>(ConnectionPolicy{std::move(*sql), std::move(*mask)}));
  }
  return out;
}

}  // namespace gh::mask
