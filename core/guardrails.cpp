// Reads deny, approve and mask rules of a connection from YAML, failing with file, rule and reason.
// yaml-cpp throws; its exceptions are caught by config::parse, which calls this file.
#include "core/guardrails.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace gh::config {
namespace {

std::string all_class_names() {
  std::string out;
  for (size_t i = 0; i < kStatementClassCount; ++i)
    out += (out.empty() ? "" : ", ") + std::string(statement_class_name(StatementClass(i)));
  return out;
}

// Errors of one rule: "SOURCE: connections[0].deny[2] (rule 'x'): reason".
class RuleReader {
 public:
  RuleReader(const std::string& source, std::string path, const YAML::Node& node)
      : source_(source), path_(std::move(path)), node_(node) {
    // Known before anything else is checked, so that every error names the rule.
    if (node_.IsMap() && node_["name"] && node_["name"].IsScalar()) name_ = node_["name"].Scalar();
  }

  std::unexpected<Error> error(const std::string& reason, std::string_view key = {}) const {
    const std::string where = key.empty() ? path_ : fmt::format("{}.{}", path_, key);
    if (!name_.empty())
      return fail(fmt::format("{}: {} (rule '{}'): {}", source_, where, name_, reason));
    return fail(fmt::format("{}: {}: {}", source_, where, reason));
  }

  Result<void> only_keys(std::initializer_list<std::string_view> known) const {
    if (!node_.IsMap()) return error("expected a mapping (a rule)");
    for (const auto& kv : node_) {
      const std::string key = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end())
        return error("unknown key", key);
    }
    return {};
  }

  bool has(std::string_view key) const { return bool(node_[std::string(key)]); }

  Result<std::string> string(std::string_view key, std::optional<std::string> fallback = {}) const {
    const YAML::Node n = node_[std::string(key)];
    if (!n) {
      if (fallback) return *fallback;
      return error("required", key);
    }
    if (!n.IsScalar()) return error("expected a string", key);
    return n.Scalar();
  }

  Result<std::vector<std::string>> strings(std::string_view key) const {
    const YAML::Node n = node_[std::string(key)];
    std::vector<std::string> out;
    if (!n) return out;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence() || n.size() == 0) return error("expected a non-empty list of strings", key);
    for (size_t i = 0; i < n.size(); ++i) {
      if (!n[i].IsScalar() || n[i].Scalar().empty())
        return error(fmt::format("item {}: expected a non-empty string", i), key);
      out.push_back(n[i].Scalar());
    }
    return out;
  }

  Result<bool> boolean(std::string_view key, bool fallback) const {
    const YAML::Node n = node_[std::string(key)];
    if (!n) return fallback;
    const std::string v = n.IsScalar() ? n.Scalar() : std::string();
    if (v == "true" || v == "yes" || v == "on") return true;
    if (v == "false" || v == "no" || v == "off") return false;
    return error("expected true or false", key);
  }

  Result<uint32_t> integer(std::string_view key, uint32_t fallback, uint32_t min,
                           uint32_t max) const {
    const YAML::Node n = node_[std::string(key)];
    if (!n) return fallback;
    const std::string text = n.IsScalar() ? n.Scalar() : std::string();
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size())
      return error(fmt::format("expected an integer, got '{}'", text), key);
    if (v < min || v > max)
      return error(fmt::format("must be in {}..{}, got {}", min, max, text), key);
    return uint32_t(v);
  }

  // The rule's name: required, unique within its list, made of letters, digits, - _ . only.
  Result<std::string> name(std::set<std::string>& seen) {
    auto n = string("name");
    if (!n) return std::unexpected(n.error());
    if (n->empty() || n->size() > 64 || !std::all_of(n->begin(), n->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
        }))
      return error("expected 1 to 64 letters, digits, '-', '_' or '.'", "name");
    name_ = *n;
    if (!seen.insert(*n).second) return error("duplicate rule name", "name");
    return *n;
  }

 private:
  const std::string& source_;
  std::string path_;
  const YAML::Node& node_;
  std::string name_;
};

// "Users" -> "users", "\"Users\"" -> "Users": PostgreSQL folds unquoted identifiers to lower case.
Result<std::string> identifier(std::string_view text) {
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    const std::string_view inner = text.substr(1, text.size() - 2);
    if (inner.empty() || inner.find('"') != std::string_view::npos)
      return fail(fmt::format("bad quoted identifier {}", text));
    return std::string(inner);
  }
  if (text.empty()) return fail("empty identifier");
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '.' || std::isspace(static_cast<unsigned char>(c)))
      return fail(fmt::format("bad identifier '{}'", text));
    out += char(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// "table" or "schema.table" (either part may be double-quoted).
Result<std::string> qualified_name(std::string_view text) {
  size_t dot = std::string_view::npos;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"') quoted = !quoted;
    if (text[i] == '.' && !quoted) {
      if (dot != std::string_view::npos)
        return fail(fmt::format("'{}': at most schema.table", text));
      dot = i;
    }
  }
  if (dot == std::string_view::npos) return identifier(text);
  auto schema = identifier(text.substr(0, dot));
  if (!schema) return schema;
  auto table = identifier(text.substr(dot + 1));
  if (!table) return table;
  return *schema + "." + *table;
}

Result<std::string> read_hash_key(const RuleReader& r, const std::filesystem::path& base_dir) {
  const bool has_file = r.has("hash_key_file");
  const bool has_env = r.has("hash_key_env");
  if (has_file == has_env)
    return r.error("style hash needs hash_key_file or hash_key_env (one of them)");
  std::string key;
  if (has_file) {
    auto file = r.string("hash_key_file");
    if (!file) return std::unexpected(file.error());
    std::filesystem::path p(*file);
    if (!p.is_absolute()) p = (base_dir / p).lexically_normal();
    std::ifstream in(p, std::ios::binary);
    if (!in) return r.error(fmt::format("cannot read {}", p.string()), "hash_key_file");
    std::stringstream ss;
    ss << in.rdbuf();
    key = ss.str();
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
  } else {
    auto var = r.string("hash_key_env");
    if (!var) return std::unexpected(var.error());
    const char* value = std::getenv(var->c_str());
    if (value == nullptr) return r.error(fmt::format("${} is not set", *var), "hash_key_env");
    key = value;
  }
  // A short key would let anyone who sees tokens test guesses of the masked values offline.
  if (key.size() < 16) return r.error("the hash key must be at least 16 bytes");
  return key;
}

Result<void> parse_sql_rule(RuleReader& r, SqlRule& rule, std::set<std::string>& names,
                            const std::string& path) {
  rule.path = path;
  auto name = r.name(names);
  if (!name) return std::unexpected(name.error());
  rule.name = *name;
  auto statements = r.strings("statements");
  if (!statements) return std::unexpected(statements.error());
  auto regex = r.string("regex", "");
  if (!regex) return std::unexpected(regex.error());
  if (statements->empty() == regex->empty())
    return r.error("give statements (classes) or regex, exactly one of them");
  for (const auto& s : *statements) {
    auto c = statement_class_by_name(s);
    if (!c)
      return r.error(fmt::format("unknown statement class '{}' (known: {})", s, all_class_names()),
                     "statements");
    if (std::find(rule.statements.begin(), rule.statements.end(), *c) == rule.statements.end())
      rule.statements.push_back(*c);
  }
  rule.regex = *regex;
  auto caseless = r.boolean("caseless", true);
  if (!caseless) return std::unexpected(caseless.error());
  rule.caseless = *caseless;
  auto tables = r.strings("tables");
  if (!tables) return std::unexpected(tables.error());
  auto schemas = r.strings("schemas");
  if (!schemas) return std::unexpected(schemas.error());
  if ((!tables->empty() || !schemas->empty())) {
    if (rule.statements.empty())
      return r.error("tables and schemas filter statement classes, not regex rules");
    for (StatementClass c : rule.statements) {
      if (!statement_class_has_relations(c))
        return r.error(
            fmt::format("statement class '{}' names no tables: tables and schemas do not apply",
                        statement_class_name(c)));
    }
  }
  for (const auto& t : *tables) {
    auto q = qualified_name(t);
    if (!q) return r.error(q.error().message, "tables");
    rule.tables.push_back(*q);
  }
  for (const auto& s : *schemas) {
    auto q = identifier(s);
    if (!q) return r.error(q.error().message, "schemas");
    rule.schemas.push_back(*q);
  }
  return {};
}

Result<MaskRule> parse_mask_rule(RuleReader& r, std::set<std::string>& names,
                                 const std::string& path, const std::filesystem::path& base_dir) {
  MaskRule rule;
  rule.path = path;
  if (auto ok = r.only_keys({"name", "detect", "regex", "caseless", "columns", "style", "keep",
                             "mask_char", "hash_key_file", "hash_key_env"});
      !ok)
    return std::unexpected(ok.error());
  auto name = r.name(names);
  if (!name) return std::unexpected(name.error());
  rule.name = *name;
  auto detector = r.string("detect", "");
  auto regex = r.string("regex", "");
  auto columns = r.strings("columns");
  if (!detector) return std::unexpected(detector.error());
  if (!regex) return std::unexpected(regex.error());
  if (!columns) return std::unexpected(columns.error());
  const int kinds = int(!detector->empty()) + int(!regex->empty()) + int(!columns->empty());
  if (kinds != 1)
    return r.error("give detect (a built-in detector), regex or columns, exactly one of them");
  rule.detector = *detector;
  rule.regex = *regex;
  for (const auto& c : *columns) {
    auto id = identifier(c);
    if (!id) return r.error(id.error().message, "columns");
    rule.columns.push_back(*id);
  }
  auto caseless = r.boolean("caseless", false);
  if (!caseless) return std::unexpected(caseless.error());
  rule.caseless = *caseless;
  auto style = r.string("style", "fixed");
  if (!style) return std::unexpected(style.error());
  if (*style == "fixed") {
    rule.style = MaskStyle::kFixed;
  } else if (*style == "keep_last") {
    rule.style = MaskStyle::kKeepLast;
  } else if (*style == "hash") {
    rule.style = MaskStyle::kHash;
  } else {
    return r.error(fmt::format("expected fixed, keep_last or hash, got '{}'", *style), "style");
  }
  auto keep = r.integer("keep", 4, 1, 64);
  if (!keep) return std::unexpected(keep.error());
  if (r.has("keep") && rule.style != MaskStyle::kKeepLast)
    return r.error("only with style keep_last", "keep");
  rule.keep = *keep;
  auto mask_char = r.string("mask_char", "*");
  if (!mask_char) return std::unexpected(mask_char.error());
  if (mask_char->size() != 1 || static_cast<unsigned char>((*mask_char)[0]) < 0x20 ||
      static_cast<unsigned char>((*mask_char)[0]) >= 0x7f)
    return r.error("expected one printable ASCII character", "mask_char");
  rule.mask_char = (*mask_char)[0];
  if (rule.style == MaskStyle::kHash) {
    auto key = read_hash_key(r, base_dir);
    if (!key) return std::unexpected(key.error());
    rule.hash_key = std::move(*key);
  } else if (r.has("hash_key_file") || r.has("hash_key_env")) {
    return r.error("a hash key is only used with style hash");
  }
  return rule;
}

}  // namespace

Result<Guardrails> parse_guardrails(const YAML::Node& connection, const std::string& source,
                                    const std::string& path,
                                    const std::filesystem::path& base_dir) {
  Guardrails g;
  if (const YAML::Node n = connection["allow_function_call"]) {
    const std::string v = n.IsScalar() ? n.Scalar() : std::string();
    if (v == "true" || v == "yes" || v == "on") {
      g.allow_function_call = true;
    } else if (!(v == "false" || v == "no" || v == "off")) {
      return fail(fmt::format("{}: {}.allow_function_call: expected true or false", source, path));
    }
  }
  auto list = [&](std::string_view key) -> Result<YAML::Node> {
    const YAML::Node n = connection[std::string(key)];
    if (n && !n.IsSequence())
      return fail(fmt::format("{}: {}.{}: expected a list of rules", source, path, key));
    return n;
  };

  std::set<std::string> names;
  auto deny = list("deny");
  if (!deny) return std::unexpected(deny.error());
  for (size_t i = 0; *deny && i < deny->size(); ++i) {
    const std::string p = fmt::format("{}.deny[{}]", path, i);
    const YAML::Node node = (*deny)[i];
    RuleReader r(source, p, node);
    if (auto ok = r.only_keys({"name", "statements", "tables", "schemas", "regex", "caseless"});
        !ok)
      return std::unexpected(ok.error());
    SqlRule rule;
    if (auto ok = parse_sql_rule(r, rule, names, p); !ok) return std::unexpected(ok.error());
    g.deny.push_back(std::move(rule));
  }

  names.clear();
  auto approve = list("approve");
  if (!approve) return std::unexpected(approve.error());
  for (size_t i = 0; *approve && i < approve->size(); ++i) {
    const std::string p = fmt::format("{}.approve[{}]", path, i);
    const YAML::Node node = (*approve)[i];
    RuleReader r(source, p, node);
    if (auto ok = r.only_keys({"name", "statements", "tables", "schemas", "regex", "caseless",
                               "approvers", "approvals", "timeout_s"});
        !ok)
      return std::unexpected(ok.error());
    ApproveRule rule;
    if (auto ok = parse_sql_rule(r, rule, names, p); !ok) return std::unexpected(ok.error());
    auto approvers = r.strings("approvers");
    if (!approvers) return std::unexpected(approvers.error());
    if (approvers->empty())
      return r.error("required: the groups whose members may approve", "approvers");
    rule.approver_groups = std::move(*approvers);
    auto approvals = r.integer("approvals", 1, 1, 16);
    if (!approvals) return std::unexpected(approvals.error());
    rule.approvals_min = *approvals;
    auto timeout = r.integer("timeout_s", 900, 1, 86400);
    if (!timeout) return std::unexpected(timeout.error());
    rule.timeout_s = *timeout;
    g.approve.push_back(std::move(rule));
  }

  names.clear();
  auto mask = list("mask");
  if (!mask) return std::unexpected(mask.error());
  for (size_t i = 0; *mask && i < mask->size(); ++i) {
    const std::string p = fmt::format("{}.mask[{}]", path, i);
    const YAML::Node node = (*mask)[i];
    RuleReader r(source, p, node);
    auto rule = parse_mask_rule(r, names, p, base_dir);
    if (!rule) return std::unexpected(rule.error());
    g.mask.push_back(std::move(*rule));
  }
  return g;
}

}  // namespace gh::config
