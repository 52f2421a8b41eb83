// The statement classes SQL rules name (deny, approve), with their configuration names. Must not
// depend on any wire protocol or on gh::Result (the clang fuzz build compiles it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace gh::config {

// Statement classes a SQL rule can name; mask/sql_classifier.* finds them in the parse tree of
// the real PostgreSQL grammar (libpg_query), wherever they are nested (CTEs, EXPLAIN, PREPARE).
enum class StatementClass : uint8_t {
  kDrop,  // DROP of any object (table, schema, database, role...)
  kTruncate,
  // DELETE without WHERE (WHERE CURRENT OF counts as one), MERGE ... WHEN MATCHED THEN DELETE
  // without an AND condition (its ON condition joins, it does not filter)
  kDeleteWithoutWhere,
  kUpdateWithoutWhere,
  kDelete,       // any DELETE, MERGE ... DELETE
  kUpdate,       // any UPDATE, MERGE ... UPDATE, INSERT ... ON CONFLICT DO UPDATE
  kInsert,       // any INSERT, MERGE ... INSERT, COPY ... FROM
  kAlter,        // ALTER of any object but the system and roles (their own classes), REASSIGN OWNED
  kGrant,        // GRANT, REVOKE (privileges and role membership), ALTER DEFAULT PRIVILEGES
  kRole,         // CREATE / ALTER ROLE, USER, GROUP
  kCopyProgram,  // COPY ... TO / FROM PROGRAM
  kCopyFile,     // COPY ... TO / FROM a server-side file
  kAlterSystem,
  kSetRole,         // SET / RESET ROLE, SET SESSION AUTHORIZATION, set_config('role', ...)
  kCreateFunction,  // CREATE [OR REPLACE] FUNCTION / PROCEDURE
  kDo,              // DO blocks
  kLoExport,        // lo_export() anywhere in a statement
  kLoImport,        // lo_import()
  kDblinkExec,      // dblink_exec() (and dblink(), which runs SQL as well)
};
inline constexpr size_t kStatementClassCount = size_t(StatementClass::kDblinkExec) + 1;

std::string_view statement_class_name(StatementClass c);  // "delete_without_where", ...
std::optional<StatementClass> statement_class_by_name(std::string_view name);
// Classes whose statements name tables (tables: / schemas: filters apply to them).
bool statement_class_has_relations(StatementClass c);

}  // namespace gh::config
