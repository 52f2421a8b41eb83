// Statement classification with libpg_query: each class found wherever it hides, and what must
// not be taken for it.
#include "mask/sql_classifier.hpp"

#include <gtest/gtest.h>

namespace gh::mask {
namespace {

using config::StatementClass;
using C = StatementClass;

struct Case {
  const char* sql;
  std::vector<C> classes;  // every class expected (others may be present only if listed)
};

TEST(SqlClassifier, FindsEveryClassWhereverItIsNested) {
  const Case cases[] = {
      {"DROP TABLE users", {C::kDrop}},
      {"drop table IF EXISTS public.users CASCADE", {C::kDrop}},
      {"DROP SCHEMA billing CASCADE", {C::kDrop}},
      {"DROP DATABASE x", {C::kDrop}},
      {"DROP ROLE bob", {C::kDrop}},
      {"TRUNCATE a, s.b", {C::kTruncate}},
      {"DELETE FROM t", {C::kDelete, C::kDeleteWithoutWhere}},
      {"DELETE FROM t WHERE id = 1", {C::kDelete}},
      {"UPDATE t SET a = 1", {C::kUpdate, C::kUpdateWithoutWhere}},
      {"UPDATE t SET a = 1 WHERE CURRENT OF c", {C::kUpdate}},
      {"WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
       {C::kDelete, C::kDeleteWithoutWhere}},
      {"EXPLAIN ANALYZE DELETE FROM t", {C::kDelete, C::kDeleteWithoutWhere}},
      {"PREPARE p AS UPDATE t SET a = 2", {C::kUpdate, C::kUpdateWithoutWhere}},
      {"INSERT INTO t VALUES (1)", {C::kInsert}},
      {"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET a = 2", {C::kInsert, C::kUpdate}},
      {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", {C::kInsert}},
      {"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
       {C::kDelete, C::kDeleteWithoutWhere}},
      {"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x THEN UPDATE SET a = 1 "
       "WHEN NOT MATCHED THEN INSERT VALUES (1)",
       {C::kUpdate, C::kInsert}},
      {"COPY t FROM STDIN", {C::kInsert}},
      {"COPY t TO STDOUT", {}},
      {"REASSIGN OWNED BY a TO b", {C::kAlter}},
      {"ALTER TABLE t ADD COLUMN x int", {C::kAlter}},
      {"ALTER TABLE t RENAME TO u", {C::kAlter}},
      {"ALTER SYSTEM SET work_mem = '1GB'", {C::kAlterSystem}},
      {"GRANT ALL ON t TO bob", {C::kGrant}},
      {"REVOKE SELECT ON t FROM bob", {C::kGrant}},
      {"GRANT admin TO bob", {C::kGrant}},
      {"CREATE ROLE bob SUPERUSER", {C::kRole}},
      {"ALTER USER bob WITH SUPERUSER", {C::kRole}},
      {"COPY t TO PROGRAM 'id'", {C::kCopyProgram}},
      {"COPY t FROM PROGRAM 'curl x'", {C::kCopyProgram, C::kInsert}},
      {"COPY (SELECT 1) TO '/tmp/x'", {C::kCopyFile}},
      {"SET ROLE admin", {C::kSetRole}},
      {"RESET ROLE", {C::kSetRole}},
      {"SET SESSION AUTHORIZATION bob", {C::kSetRole}},
      {"SELECT set_config('role', 'admin', false)", {C::kSetRole}},
      {"CREATE OR REPLACE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql",
       {C::kCreateFunction}},
      {"CREATE PROCEDURE p() LANGUAGE sql AS 'select 1'", {C::kCreateFunction}},
      {"DO $$ BEGIN END $$", {C::kDo}},
      {"SELECT lo_export(1, '/tmp/x')", {C::kLoExport}},
      {"SELECT * FROM pg_catalog.lo_import('/etc/passwd')", {C::kLoImport}},
      {"SELECT dblink_exec('dbname=x', 'drop table t')", {C::kDblinkExec}},
      {"SELECT 1; DROP TABLE t", {C::kDrop}},
      {"SELECT 'DROP TABLE t'", {}},
      {"SELECT 1 /* DROP TABLE t */", {}},
      {"SELECT \"drop\" FROM \"truncate\"", {}},
      {"SELECT 1", {}},
      {"", {}},
  };
  for (const Case& c : cases) {
    const Classification got = classify_sql(c.sql);
    ASSERT_TRUE(got.parsed) << c.sql << ": " << got.parse_error;
    for (C want : c.classes)
      EXPECT_TRUE(got.has(want)) << c.sql << " lacks " << config::statement_class_name(want);
    for (const Finding& f : got.findings) {
      EXPECT_NE(std::find(c.classes.begin(), c.classes.end(), f.statement_class), c.classes.end())
          << c.sql << " has unexpected " << config::statement_class_name(f.statement_class);
    }
  }
}

TEST(SqlClassifier, NamesTheRelationsStatementsActOn) {
  auto c = classify_sql("DROP TABLE public.users, t2; TRUNCATE s.b; DROP SCHEMA billing");
  ASSERT_TRUE(c.parsed);
  ASSERT_EQ(c.statement_count, 3u);
  std::vector<Relation> dropped;
  for (const auto& f : c.findings) {
    if (f.relation) dropped.push_back(*f.relation);
  }
  EXPECT_EQ(dropped,
            (std::vector<Relation>{{"public", "users"}, {"", "t2"}, {"s", "b"}, {"billing", ""}}));
  EXPECT_EQ(c.findings[2].statement, 1u);
}

TEST(SqlClassifier, FiltersMatchQualifiedAndUnqualifiedNames) {
  EXPECT_TRUE(table_filter_matches("users", Relation{"", "users"}));
  EXPECT_TRUE(table_filter_matches("users", Relation{"app", "users"}));
  EXPECT_TRUE(table_filter_matches("app.users", Relation{"", "users"}));
  EXPECT_TRUE(table_filter_matches("app.users", Relation{"app", "users"}));
  EXPECT_FALSE(table_filter_matches("app.users", Relation{"other", "users"}));
  EXPECT_FALSE(table_filter_matches("users", Relation{"users", ""}));
  EXPECT_TRUE(schema_filter_matches("billing", Relation{"billing", "x"}));
  EXPECT_TRUE(schema_filter_matches("billing", Relation{"billing", ""}));
  EXPECT_FALSE(schema_filter_matches("billing", Relation{"", "x"}));
  EXPECT_TRUE(schema_filter_matches("public", Relation{"", "x"}));
}

// Statements in a single-byte client encoding (LATIN1 here) are not UTF-8; they still classify.
TEST(SqlClassifier, BytesThatAreNotUtf8StillClassify) {
  const Classification c = classify_sql("SELECT 'caf\xe9'; DROP TABLE \"t\xe9\"");
  ASSERT_TRUE(c.parsed) << c.parse_error;
  EXPECT_TRUE(c.has(StatementClass::kDrop));
  EXPECT_EQ(c.statement_count, 2u);
}

TEST(SqlClassifier, TextThatDoesNotParseIsReported) {
  for (const char* sql :
       {"DROP TABLE", "SELECT 'unterminated", "SELEC 1", "DROP /* unterminated"}) {
    const Classification c = classify_sql(sql);
    EXPECT_FALSE(c.parsed) << sql;
    EXPECT_FALSE(c.parse_error.empty()) << sql;
  }
}

// Settings that change how the server splits later text into tokens are flagged: the parser
// could then read a string where the server reads a statement.
TEST(SqlClassifier, FlagsSettingsThatChangeLexing) {
  for (const char* sql :
       {"SET standard_conforming_strings = off", "SET LOCAL standard_conforming_strings TO false",
        "SET client_encoding = 'SJIS'", "SET NAMES 'BIG5'",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT set_config(name, 'x', false) FROM t",
        "UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'"}) {
    EXPECT_FALSE(classify_sql(sql).lexer_hazard.empty()) << sql;
  }
  for (const char* sql : {"SET standard_conforming_strings = on", "SET client_encoding = 'UTF8'",
                          "SET client_encoding TO 'latin1'", "RESET client_encoding", "RESET ALL",
                          "SELECT set_config('application_name', 'x', false)"}) {
    EXPECT_TRUE(classify_sql(sql).lexer_hazard.empty()) << sql;
  }
  EXPECT_TRUE(client_encoding_lexes_safely("UTF-8"));
  EXPECT_TRUE(client_encoding_lexes_safely("WIN1252"));
  EXPECT_FALSE(client_encoding_lexes_safely("SJIS"));
  EXPECT_FALSE(client_encoding_lexes_safely("GB18030"));
}

TEST(ClassificationKey, OnlyNumericLiteralsAreFolded) {
  const auto key = [](std::string_view sql) { return classification_key(sql); };
  // The same query with other numbers: one key (pgbench's SELECT, a LIMIT, a decimal).
  EXPECT_EQ(key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
            key("SELECT abalance FROM pgbench_accounts WHERE aid = 7;"));
  EXPECT_EQ(key("SELECT * FROM t WHERE x > 1.5 LIMIT 10"), key("SELECT * FROM t WHERE x > 22.25 LIMIT 3"));
  EXPECT_EQ(key("SELECT 'it''s 1', 2"), key("SELECT 'it''s 1', 3"));
  // Everything else stays: identifiers with digits, strings, numbers too long for an integer.
  EXPECT_NE(key("DELETE FROM t1"), key("DELETE FROM t2"));
  EXPECT_NE(key("SELECT 'it''s 1', 2"), key("SELECT 'it''s 2', 2"));
  EXPECT_NE(key("SELECT 'a' || 1 || 'b'"), key("SELECT 'a' || 1 || 'c'"));
  EXPECT_NE(key("SELECT 1234567890"), key("SELECT 1234567891"));
  EXPECT_NE(key("SELECT 1.5"), key("SELECT 1..5"));
  // Texts whose lexing this cannot follow, or whose numbers the classifier reads: no key.
  for (std::string_view sql :
       {"SELECT \"t1\".a FROM \"t1\"", "SELECT $1", "SELECT $$1$$", "SELECT E'\\'' , 1",
        "SELECT 1 -- 2", "SELECT /* 1 */ 1", "SET standard_conforming_strings = 0",
        "select set_config('role', 'x', false)", "SELECT * FROM t OFFSET 5",
        "SELECT pg_catalog.SeT_config('client_encoding', 'sjis', false)"}) {
    EXPECT_EQ(key(sql), std::nullopt) << sql;
  }
  EXPECT_EQ(key(std::string_view("SELECT 1\0 2", 11)), std::nullopt);
}

TEST(ClassificationKey, FoldedTextsClassifyAlike) {
  for (std::string_view sql : {"DELETE FROM accounts WHERE id = 12", "DROP TABLE t1; SELECT 5",
                               "UPDATE t SET a = 1",  // no key: "set"
                               "WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d LIMIT 9",
                               "SELECT lo_export(16384, '/tmp/x1')", "COPY (SELECT 1) TO STDOUT",
                               "SELECT 1.e5, .5, 0.25, 3"}) {
    const auto k = classification_key(sql);
    if (!k) continue;
    const Classification a = classify_sql(sql);
    const Classification b = classify_sql(*k);
    EXPECT_EQ(a.parsed, b.parsed) << sql;
    EXPECT_EQ(a.statement_count, b.statement_count) << sql;
    EXPECT_EQ(a.findings, b.findings) << sql;
  }
}

TEST(ClassificationCache, ParsesEachShapeOnceAndStaysBounded) {
  ClassificationCache cache;
  EXPECT_TRUE(cache.classify("DELETE FROM t WHERE id = 1").parsed);
  EXPECT_TRUE(cache.classify("DROP TABLE t1").has(C::kDrop));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.classify("DELETE FROM t WHERE id = 99").parsed);  // same shape as the first
  EXPECT_EQ(cache.size(), 2u);
  const Classification& drop = cache.classify("DROP TABLE t2");  // another table: its own entry
  ASSERT_EQ(drop.findings.size(), 1u);
  EXPECT_EQ(drop.findings[0].relation->name, "t2");
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_FALSE(cache.classify("SELEC 1").parsed);
  EXPECT_FALSE(cache.classify(std::string(ClassificationCache::kTextBytesMax, ' ') + "SELEC").parsed);
  for (size_t i = 0; i < ClassificationCache::kEntriesMax + 10; ++i)
    cache.classify("SELECT * FROM t" + std::to_string(i));
  EXPECT_LE(cache.size(), ClassificationCache::kEntriesMax);
}

}  // namespace
}  // namespace gh::mask
