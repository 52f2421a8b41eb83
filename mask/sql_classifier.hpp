// SQL statement classification with the real PostgreSQL grammar (libpg_query, PostgreSQL 15):
// which statement classes a text holds and which tables they name, wherever they are nested.
// Must not know sockets, files, sessions or gh::Result (the clang fuzz build compiles it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
