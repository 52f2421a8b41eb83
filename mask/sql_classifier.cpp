// Statement classification over libpg_query's JSON parse tree: every node is walked, so a class
// is found wherever the grammar lets it hide (CTEs, EXPLAIN ANALYZE, PREPARE, rules, subqueries).
// nlohmann::json throws; nothing thrown leaves this file. Must not know sockets or files.
#include "mask/sql_classifier.hpp"

#include <pg_query.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>

namespace gh::mask {
namespace {

using config::StatementClass;
using nlohmann::json;

std::string lower_compact(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '-' || c == '_') continue;
    out += char(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// The string in a String node ({"String": {"sval": ...}}); empty when it is something else.
std::string string_node(const json& n) {
  if (!n.is_object()) return {};
  auto s = n.find("String");
  if (s == n.end() || !s->is_object()) return {};
  auto v = s->find("sval");
  return v != s->end() && v->is_string() ? v->get<std::string>() : std::string();
}

// A constant string argument ('x' or 'x'::type), or nullopt when the value is computed.
std::optional<std::string> constant_string(const json& n) {
  const json* at = &n;
  for (int depth = 0; depth < 4 && at->is_object(); ++depth) {
    if (auto c = at->find("A_Const"); c != at->end()) {
      auto s = c->find("sval");
      if (s != c->end() && s->is_object()) {
        auto v = s->find("sval");
        if (v != s->end() && v->is_string()) return v->get<std::string>();
        return std::string();  // '' is written without sval
      }
      return std::nullopt;
    }
    auto cast = at->find("TypeCast");
    if (cast == at->end()) return std::nullopt;
    auto arg = cast->find("arg");
    if (arg == cast->end()) return std::nullopt;
    at = &*arg;
  }
  return std::nullopt;
}

std::optional<Relation> range_var(const json& rv) {
  if (!rv.is_object()) return std::nullopt;
  const json* body = &rv;
  if (auto wrapped = rv.find("RangeVar"); wrapped != rv.end()) body = &*wrapped;
  auto name = body->find("relname");
  if (name == body->end() || !name->is_string()) return std::nullopt;
  Relation r;
  r.name = name->get<std::string>();
  if (auto schema = body->find("schemaname"); schema != body->end() && schema->is_string())
    r.schema = schema->get<std::string>();
  return r;
}

bool is_true_value(std::string_view v) {
  const std::string s = lower_compact(v);
  return s == "on" || s == "true" || s == "yes" || s == "1" || s == "t" || s == "y";
}

class Walker {
 public:
  Walker(Classification& out) : out_(out) {}

  void statement(const json& stmt, uint32_t index) {
    index_ = index;
    walk(stmt, 0);
  }

 private:
  // libpg_query's JSON nests as deep as the statement does; the walk stops far below what the
  // server's own max_stack_depth would allow, and a deeper text is refused as unclassifiable.
  static constexpr int kDepthMax = 2000;

  void add(StatementClass c, std::optional<Relation> r = std::nullopt) {
    out_.findings.push_back(Finding{c, std::move(r), index_});
  }
  void hazard(std::string what) {
    if (out_.lexer_hazard.empty()) out_.lexer_hazard = std::move(what);
  }

  void walk(const json& v, int depth) {
    if (depth > kDepthMax) {
      too_deep_ = true;
      return;
    }
    if (v.is_array()) {
      for (const json& item : v) walk(item, depth + 1);
      return;
    }
    if (!v.is_object()) return;
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& key = it.key();
      // Node types are capitalised ("DeleteStmt"); fields are not ("whereClause").
      if (!key.empty() && std::isupper(static_cast<unsigned char>(key[0])) && it->is_object())
        node(key, *it);
      walk(*it, depth + 1);
    }
  }

  void relation_field(StatementClass c, const json& body) {
    auto rel = body.find("relation");
    add(c, rel != body.end() ? range_var(*rel) : std::nullopt);
  }

  void node(const std::string& type, const json& body) {
    if (type == "DeleteStmt" || type == "UpdateStmt") {
      const bool is_delete = type == "DeleteStmt";
      relation_field(is_delete ? StatementClass::kDelete : StatementClass::kUpdate, body);
      if (!body.contains("whereClause"))
        relation_field(
            is_delete ? StatementClass::kDeleteWithoutWhere : StatementClass::kUpdateWithoutWhere,
            body);
      if (!is_delete) {
        // pg_settings updates call set_config for each row (a rule of the system view).
        auto rel = body.find("relation");
        if (rel != body.end()) {
          auto r = range_var(*rel);
          if (r && r->name == "pg_settings") hazard("UPDATE of pg_settings");
        }
      }
    } else if (type == "InsertStmt") {
      relation_field(StatementClass::kInsert, body);
      // INSERT ... ON CONFLICT DO UPDATE updates the rows it collides with.
      if (auto conflict = body.find("onConflictClause");
          conflict != body.end() && conflict->value("action", "") == "ONCONFLICT_UPDATE")
        relation_field(StatementClass::kUpdate, body);
    } else if (type == "MergeStmt") {
      merge(body);
    } else if (type == "ReassignOwnedStmt") {
      add(StatementClass::kAlter);
    } else if (type == "TruncateStmt") {
      bool any = false;
      if (auto rels = body.find("relations"); rels != body.end() && rels->is_array()) {
        for (const json& r : *rels) {
          add(StatementClass::kTruncate, range_var(r));
          any = true;
        }
      }
      if (!any) add(StatementClass::kTruncate);
    } else if (type.starts_with("Drop")) {
      drop(type, body);
    } else if (type == "AlterSystemStmt") {
      add(StatementClass::kAlterSystem);
    } else if (type == "AlterRoleStmt" || type == "AlterRoleSetStmt" || type == "CreateRoleStmt") {
      add(StatementClass::kRole);
    } else if (type == "AlterDefaultPrivilegesStmt") {
      add(StatementClass::kGrant);
      add(StatementClass::kAlter);
    } else if (type.starts_with("Alter") || type == "RenameStmt") {
      relation_field(StatementClass::kAlter, body);
      if (type == "RenameStmt" && body.value("renameType", "") == "OBJECT_ROLE")
        add(StatementClass::kRole);
    } else if (type == "GrantStmt") {
      grant(body);
    } else if (type == "GrantRoleStmt") {
      add(StatementClass::kGrant);
    } else if (type == "CopyStmt") {
      const bool program = body.value("is_program", false);
      const bool file = body.contains("filename");
      if (program || file)
        relation_field(program ? StatementClass::kCopyProgram : StatementClass::kCopyFile, body);
      // COPY ... FROM (STDIN, a file or a program) inserts rows.
      if (body.value("is_from", false)) relation_field(StatementClass::kInsert, body);
    } else if (type == "VariableSetStmt") {
      variable_set(body);
    } else if (type == "CreateFunctionStmt") {
      add(StatementClass::kCreateFunction);
    } else if (type == "DoStmt") {
      add(StatementClass::kDo);
    } else if (type == "FuncCall") {
      function_call(body);
    }
  }

  // MERGE: each WHEN clause's action on the target. Its ON condition joins, it does not filter
  // (ON true reaches every row), so only a WHEN ... AND condition counts as a WHERE.
  void merge(const json& body) {
    auto whens = body.find("mergeWhenClauses");
    if (whens == body.end() || !whens->is_array()) return;
    for (const json& w : *whens) {
      if (!w.is_object() || !w.contains("MergeWhenClause")) continue;
      const json& clause = w["MergeWhenClause"];
      const std::string command = clause.value("commandType", "");
      const bool filtered = clause.contains("condition");
      if (command == "CMD_DELETE") {
        relation_field(StatementClass::kDelete, body);
        if (!filtered) relation_field(StatementClass::kDeleteWithoutWhere, body);
      } else if (command == "CMD_UPDATE") {
        relation_field(StatementClass::kUpdate, body);
        if (!filtered) relation_field(StatementClass::kUpdateWithoutWhere, body);
      } else if (command == "CMD_INSERT") {
        relation_field(StatementClass::kInsert, body);
      }
    }
  }

  void drop(const std::string& type, const json& body) {
    if (type != "DropStmt") {
      add(StatementClass::kDrop);
      return;
    }
    const std::string kind = body.value("removeType", "");
    static constexpr std::array<std::string_view, 6> kRelationKinds = {
        "OBJECT_TABLE", "OBJECT_VIEW",     "OBJECT_MATVIEW",
        "OBJECT_INDEX", "OBJECT_SEQUENCE", "OBJECT_FOREIGN_TABLE"};
    const bool relations =
        std::find(kRelationKinds.begin(), kRelationKinds.end(), kind) != kRelationKinds.end();
    bool any = false;
    if (auto objects = body.find("objects"); objects != body.end() && objects->is_array()) {
      for (const json& o : *objects) {
        if (kind == "OBJECT_SCHEMA") {
          const std::string schema = string_node(o);
          if (!schema.empty()) {
            add(StatementClass::kDrop, Relation{schema, ""});
            any = true;
          }
        } else if (relations && o.is_object() && o.contains("List")) {
          // [catalog.][schema.]name
          std::vector<std::string> parts;
          for (const json& item : o["List"].value("items", json::array()))
            parts.push_back(string_node(item));
          if (parts.empty()) continue;
          Relation r;
          r.name = parts.back();
          if (parts.size() >= 2) r.schema = parts[parts.size() - 2];
          add(StatementClass::kDrop, r);
          any = true;
        }
      }
    }
    if (!any) add(StatementClass::kDrop);
  }

  void grant(const json& body) {
    bool any = false;
    const std::string target = body.value("targtype", "");
    const std::string objtype = body.value("objtype", "");
    if (auto objects = body.find("objects"); objects != body.end() && objects->is_array()) {
      for (const json& o : *objects) {
        if (target == "ACL_TARGET_ALL_IN_SCHEMA") {
          const std::string schema = string_node(o);
          if (!schema.empty()) {
            add(StatementClass::kGrant, Relation{schema, ""});
            any = true;
          }
        } else if (objtype == "OBJECT_TABLE" || objtype == "OBJECT_SEQUENCE") {
          if (auto r = range_var(o)) {
            add(StatementClass::kGrant, r);
            any = true;
          }
        } else if (objtype == "OBJECT_SCHEMA") {
          const std::string schema = string_node(o);
          if (!schema.empty()) {
            add(StatementClass::kGrant, Relation{schema, ""});
            any = true;
          }
        }
      }
    }
    if (!any) add(StatementClass::kGrant);
  }

  void variable_set(const json& body) {
    const std::string name = lower_compact(body.value("name", ""));
    const std::string kind = body.value("kind", "");
    if (name == "role" || name == "sessionauthorization") add(StatementClass::kSetRole);
    if (kind != "VAR_SET_VALUE") return;  // DEFAULT, RESET: back to the session's start values
    std::optional<std::string> value;
    if (auto args = body.find("args"); args != body.end() && args->is_array() && !args->empty())
      value = constant_string((*args)[0]);
    if (name == "standardconformingstrings") {
      // SET standard_conforming_strings = on is written as a keyword or identifier, not a string.
      std::string v = value.value_or("");
      if (!value) {
        if (auto args = body.find("args");
            args != body.end() && args->is_array() && !args->empty()) {
          const json& a = (*args)[0];
          if (a.contains("A_Const") && a["A_Const"].contains("boolval")) {
            v = a["A_Const"]["boolval"].value("boolval", false) ? "on" : "off";
          } else if (a.contains("A_Const") && a["A_Const"].contains("ival")) {
            v = std::to_string(a["A_Const"]["ival"].value("ival", 0));
          }
        }
      }
      if (!is_true_value(v)) hazard("standard_conforming_strings set to something other than on");
    } else if (name == "clientencoding") {
      if (!value || !client_encoding_lexes_safely(*value))
        hazard("client_encoding set to an encoding gatehouse cannot parse safely");
    }
  }

  void function_call(const json& body) {
    std::string name;
    if (auto names = body.find("funcname");
        names != body.end() && names->is_array() && !names->empty())
      name = string_node(names->back());
    if (name == "lo_export") add(StatementClass::kLoExport);
    if (name == "lo_import") add(StatementClass::kLoImport);
    if (name == "dblink_exec" || name == "dblink") add(StatementClass::kDblinkExec);
    if (name == "set_config") {
      std::optional<std::string> setting;
      std::optional<std::string> value;
      if (auto args = body.find("args"); args != body.end() && args->is_array()) {
        if (args->size() >= 1) setting = constant_string((*args)[0]);
        if (args->size() >= 2) value = constant_string((*args)[1]);
      }
      const std::string s = setting ? lower_compact(*setting) : std::string();
      if (!setting || s == "role" || s == "sessionauthorization") add(StatementClass::kSetRole);
      if (!setting) {
        hazard("set_config with a setting name computed at run time");
      } else if (s == "standardconformingstrings" && !(value && is_true_value(*value))) {
        hazard("standard_conforming_strings set to something other than on");
      } else if (s == "clientencoding" && !(value && client_encoding_lexes_safely(*value))) {
        hazard("client_encoding set to an encoding gatehouse cannot parse safely");
      }
    }
  }

 public:
  bool too_deep_ = false;

 private:
  Classification& out_;
  uint32_t index_ = 0;
};

// Replaces every byte that does not belong to a well-formed UTF-8 sequence with '?'.
void replace_invalid_utf8(std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 0x2;
    if (ok && n == 2) ok = b >= 0xc2;  // no overlong forms
    if (ok && n == 3) {
      const auto b1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(b == 0xe0 && b1 < 0xa0) && !(b == 0xed && b1 >= 0xa0);  // overlong, surrogates
    }
    if (ok && n == 4) {
      const auto b1 = static_cast<unsigned char>(s[i + 1]);
      ok = b <= 0xf4 && !(b == 0xf0 && b1 < 0x90) && !(b == 0xf4 && b1 >= 0x90);
    }
    if (!ok) {
      s[i] = '?';
      n = 1;
    }
    i += n;
  }
}

}  // namespace

bool Classification::has(config::StatementClass c) const {
  return std::any_of(findings.begin(), findings.end(),
                     [c](const Finding& f) { return f.statement_class == c; });
}

Classification classify_sql(std::string_view sql) {
  Classification out;
  const std::string text(sql);  // the parser reads up to a NUL
  PgQueryParseResult result = pg_query_parse(text.c_str());
  if (result.error != nullptr) {
    out.parse_error = result.error->message ? result.error->message : "syntax error";
    pg_query_free_parse_result(result);
    return out;
  }
  // The tree's strings are the statement's bytes, which need not be UTF-8 (a LATIN1 client);
  // JSON wants UTF-8, so stray bytes become '?' (the tree's structure is ASCII).
  std::string tree_text = result.parse_tree;
  pg_query_free_parse_result(result);
  replace_invalid_utf8(tree_text);
  try {
    const json tree = json::parse(tree_text);
    Walker walker(out);
    const json& stmts = tree.at("stmts");
    uint32_t index = 0;
    for (const json& s : stmts) walker.statement(s.value("stmt", json::object()), index++);
    if (walker.too_deep_) {
      out.findings.clear();
      out.parse_error = "statement nested too deeply to classify";
      return out;
    }
    out.statement_count = index;
    out.parsed = true;
  } catch (const json::exception& e) {
    out.findings.clear();
    out.parse_error = std::string("unreadable parse tree: ") + e.what();
  }
  return out;
}

bool client_encoding_lexes_safely(std::string_view name) {
  const std::string n = lower_compact(name);
  // PostgreSQL's server encodings (pg_wchar.h, PG_VALID_BE_ENCODING) and their aliases in
  // encnames.c; the client-only ones (SJIS, BIG5, GBK, UHC, GB18030, JOHAB, SHIFT_JIS_2004) are
  // left out on purpose: their second bytes include '\\' and other ASCII.
  static constexpr std::array<std::string_view, 15> kExact = {
      "utf8",         "unicode", "sqlascii", "eucjp", "euccn", "euckr", "euctw", "eucjis2004",
      "muleinternal", "koi8",    "koi8r",    "koi8u", "alt",   "win",   "tcvn"};
  if (std::find(kExact.begin(), kExact.end(), n) != kExact.end()) return true;
  static constexpr std::array<std::string_view, 8> kPrefixes = {
      "latin", "iso8859", "win125", "windows125", "win866", "win874", "cp125", "cp866"};
  for (std::string_view p : kPrefixes) {
    if (n.starts_with(p)) return true;
  }
  return false;
}

bool table_filter_matches(std::string_view filter, const Relation& r) {
  if (r.name.empty()) return false;  // a whole schema: only schema filters apply
  const size_t dot = filter.find('.');
  if (dot == std::string_view::npos) return r.name == filter;
  if (r.name != filter.substr(dot + 1)) return false;
  return r.schema.empty() || r.schema == filter.substr(0, dot);
}

bool schema_filter_matches(std::string_view schema, const Relation& r) {
  if (r.schema.empty()) return schema == "public";
  return r.schema == schema;
}

std::optional<std::string> classification_key(std::string_view sql) {
  constexpr size_t kDigitsMax = 9;  // stays an integer constant (int4) whatever the digits
  auto ident_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  for (size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '"' || c == '$' || c == '\\' || c == '\0') return std::nullopt;
    if ((c == '-' || c == '/') && i + 1 < sql.size() && (sql[i + 1] == '-' || sql[i + 1] == '*'))
      return std::nullopt;
    if ((c == 's' || c == 'S') && i + 2 < sql.size() && (sql[i + 1] | 0x20) == 'e' &&
        (sql[i + 2] | 0x20) == 't')
      return std::nullopt;
  }
  std::string key(sql);
  bool in_string = false;  // '...' with '' inside: without backslashes, toggling is exact
  for (size_t i = 0; i < key.size();) {
    const char c = key[i];
    if (c == '\'') {
      in_string = !in_string;
      ++i;
      continue;
    }
    if (in_string || !std::isdigit(static_cast<unsigned char>(c)) ||
        (i > 0 && ident_char(key[i - 1]))) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < key.size() && std::isdigit(static_cast<unsigned char>(key[end]))) ++end;
    if (end - i <= kDigitsMax) {
      key.replace(i, end - i, "0");
      i += 1;
    } else {
      i = end;
    }
  }
  return key;
}

const Classification& ClassificationCache::classify(std::string_view sql) {
  const std::optional<std::string> key = classification_key(sql);
  const std::string_view k = key ? std::string_view(*key) : sql;
  if (k.size() > kTextBytesMax) {
    uncached_ = classify_sql(sql);
    return uncached_;
  }
  if (auto it = map_.find(k); it != map_.end()) return it->second;
  if (map_.size() >= kEntriesMax) map_.clear();
  return map_.emplace(std::string(k), classify_sql(sql)).first->second;
}

}  // namespace gh::mask
