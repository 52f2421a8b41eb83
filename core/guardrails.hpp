// Per-connection guardrails as configured: deny, approve and mask rules, the statement classes
// they name, and their YAML reading. Must not know any wire protocol or how rules are matched
// (mask/ compiles and runs them).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/statement_class.hpp"

namespace YAML {
class Node;
}

namespace gh::config {

// A deny or approve rule: statement classes (optionally narrowed to tables or schemas), or a
// regular expression over the statement text (Hyperscan syntax).
struct SqlRule {
  std::string name;
  std::string path;  // "connections[0].deny[2]", for messages
  std::vector<StatementClass> statements;
  // "table" (any schema) or "schema.table", lower-cased unless written in double quotes.
  std::vector<std::string> tables;
  std::vector<std::string> schemas;
  std::string regex;
  bool caseless = true;
};

struct ApproveRule : SqlRule {
  std::vector<std::string> approver_groups;
  uint32_t approvals_min = 1;
  uint32_t timeout_s = 900;
};

enum class MaskStyle : uint8_t { kFixed, kKeepLast, kHash };

// A mask rule finds values by one built-in detector, a custom regex, or column names (matched
// against RowDescription, whole value), and replaces them in one style.
struct MaskRule {
  std::string name;
  std::string path;
  std::string detector;  // built-in detector name (mask/detectors.hpp validates it)
  std::string regex;
  bool caseless = false;
  std::vector<std::string> columns;  // lower-cased
  MaskStyle style = MaskStyle::kFixed;
  char mask_char = '*';
  uint32_t keep = 4;     // kKeepLast
  std::string hash_key;  // kHash: read from hash_key_file or hash_key_env at load; never logged
};

struct Guardrails {
  std::vector<SqlRule> deny;
  std::vector<ApproveRule> approve;
  std::vector<MaskRule> mask;
  // FunctionCall messages (the fast-path interface) bypass SQL: refused on connections with SQL
  // rules unless allowed here.
  bool allow_function_call = false;

  bool has_sql_rules() const { return !deny.empty() || !approve.empty(); }
  bool empty() const { return !has_sql_rules() && mask.empty(); }
};

// The keys of a connection that parse_guardrails reads.
inline constexpr std::string_view kGuardrailKeys[] = {"deny", "approve", "mask",
                                                      "allow_function_call"};

// Reads a connection's guardrail keys. `path` is the connection's key path
// ("connections[0]"); errors read "SOURCE: PATH.deny[2] (rule 'no-drop'): reason".
Result<Guardrails> parse_guardrails(const YAML::Node& connection, const std::string& source,
                                    const std::string& path, const std::filesystem::path& base_dir);

}  // namespace gh::config
