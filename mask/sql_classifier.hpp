// SQL statement classification with the real PostgreSQL grammar (libpg_query, PostgreSQL 15):
// which statement classes a text holds and which tables they name, wherever they are nested.
// Must not know sockets, files, sessions or gh::Result (the clang fuzz build compiles it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/statement_class.hpp"

namespace gh::mask {

// A table (or, with an empty name, a whole schema) a statement acts on. Names are as the parser
// gives them: unquoted identifiers folded to lower case. An empty schema: unqualified.
struct Relation {
  std::string schema;
  std::string name;
  bool operator==(const Relation&) const = default;
};

// One statement class found, with the relation it acts on when it has one.
struct Finding {
  config::StatementClass statement_class;
  std::optional<Relation> relation;
  uint32_t statement = 0;  // index of the top-level statement in the text, from 0
  bool operator==(const Finding&) const = default;
};

struct Classification {
  bool parsed = false;
  std::string parse_error;  // when !parsed: the parser's message
  uint32_t statement_count = 0;
  std::vector<Finding> findings;
  // A statement that would make the server read later statements differently from this parser:
  // standard_conforming_strings off, a client_encoding whose characters may hold ASCII bytes
  // (SJIS, BIG5, GBK...), or set_config / pg_settings with a name not known in advance. Empty
  // when there is none; else what it is.
  std::string lexer_hazard;

  bool has(config::StatementClass c) const;
};

// Parses `sql` (one Query string, possibly several statements, or one Parse text) and classifies
// every statement. Thread-safe (libpg_query keeps its state per thread).
Classification classify_sql(std::string_view sql);

// The key under which texts share one classification: the text with each numeric literal of up
// to 9 digits written as 0, so that the same query with other ids or limits is parsed once
// (pgbench and most ORMs' simple-protocol traffic). nullopt when the text holds anything this
// rewrite cannot see through without PostgreSQL's lexer: double quotes, dollar signs, backslashes,
// comments, NUL, or the letters "set" in any case (numbers in SET and set_config are read by the
// classifier). Digits inside '...' strings and identifiers are kept.
std::optional<std::string> classification_key(std::string_view sql);

// Classifications of one shard (not thread-safe), under classification_key or else the exact
// text: drivers send the same Parse text again and again, and simple-protocol traffic the same
// shapes. Bounded; emptied when full.
class ClassificationCache {
 public:
  static constexpr size_t kEntriesMax = 4096;
  static constexpr size_t kTextBytesMax = 4096;  // longer texts are parsed every time

  // The classification of `sql`; valid until the next call.
  const Classification& classify(std::string_view sql);
  size_t size() const { return map_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, Classification, Hash, std::equal_to<>> map_;
  Classification uncached_;
};

// Whether a client_encoding name is one PostgreSQL also accepts as a server encoding, i.e. every
// byte of a multi-byte character is >= 0x80, so quotes and backslashes lex as this parser lexes
// them. Names are compared as PostgreSQL does (case, '-' and '_' ignored).
bool client_encoding_lexes_safely(std::string_view name);

// A table filter of a rule ("table" or "schema.table", as config::SqlRule holds them) or schema
// filter against a relation. An unqualified relation matches "schema.table" by name (the
// search_path may resolve it there) and a schema filter only when that schema is "public".
bool table_filter_matches(std::string_view filter, const Relation& r);
bool schema_filter_matches(std::string_view schema, const Relation& r);

}  // namespace gh::mask
