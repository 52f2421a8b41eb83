// Statement class names (see statement_class.hpp). Must not depend on gh::Result.
#include "core/statement_class.hpp"

#include <array>

namespace gh::config {
namespace {

struct ClassName {
  StatementClass value;
  std::string_view name;
  bool has_relations;
};

constexpr std::array<ClassName, kStatementClassCount> kClasses = {{
    {StatementClass::kDrop, "drop", true},
    {StatementClass::kTruncate, "truncate", true},
    {StatementClass::kDeleteWithoutWhere, "delete_without_where", true},
    {StatementClass::kUpdateWithoutWhere, "update_without_where", true},
    {StatementClass::kDelete, "delete", true},
    {StatementClass::kUpdate, "update", true},
    {StatementClass::kInsert, "insert", true},
    {StatementClass::kAlter, "alter", true},
    {StatementClass::kGrant, "grant", true},
    {StatementClass::kRole, "role", false},
    {StatementClass::kCopyProgram, "copy_program", true},
    {StatementClass::kCopyFile, "copy_file", true},
    {StatementClass::kAlterSystem, "alter_system", false},
    {StatementClass::kSetRole, "set_role", false},
    {StatementClass::kCreateFunction, "create_function", false},
    {StatementClass::kDo, "do", false},
    {StatementClass::kLoExport, "lo_export", false},
    {StatementClass::kLoImport, "lo_import", false},
    {StatementClass::kDblinkExec, "dblink_exec", false},
}};

static_assert([] {
  for (size_t i = 0; i < kClasses.size(); ++i) {
    if (size_t(kClasses[i].value) != i) return false;
  }
  return true;
}());

}  // namespace

std::string_view statement_class_name(StatementClass c) { return kClasses[size_t(c)].name; }

std::optional<StatementClass> statement_class_by_name(std::string_view name) {
  for (const auto& c : kClasses) {
    if (c.name == name) return c.value;
  }
  return std::nullopt;
}

bool statement_class_has_relations(StatementClass c) { return kClasses[size_t(c)].has_relations; }

}  // namespace gh::config
