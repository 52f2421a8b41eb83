// Compiled guardrails: SQL verdicts (rules, filters, regexes, built-in refusals) and masking of
// values by detectors, regexes and columns in every replacement style.
#include "mask/policy.hpp"

#include <gtest/gtest.h>

namespace gh::mask {
namespace {

using config::StatementClass;

config::SqlRule class_rule(std::string name, std::vector<StatementClass> classes,
                           std::vector<std::string> tables = {},
                           std::vector<std::string> schemas = {}) {
  config::SqlRule r;
  r.name = std::move(name);
  r.path = "connections[0].deny[0]";
  r.statements = std::move(classes);
  r.tables = std::move(tables);
  r.schemas = std::move(schemas);
  return r;
}

struct Judge {
  explicit Judge(config::Guardrails g) : policy(*SqlPolicy::compile(g, "test.yaml")) {
    if (policy.regexes()) {
      EXPECT_TRUE(policy.regexes()->grow_scratch(scratch));
    }
  }
  SqlVerdict operator()(std::string_view sql) { return policy.judge(sql, scratch); }
  SqlPolicy policy;
  Scratch scratch;
};

TEST(SqlPolicy, DeniesByClassTableAndSchema) {
  config::Guardrails g;
  g.deny.push_back(class_rule("no-drop-users", {StatementClass::kDrop, StatementClass::kTruncate},
                              {"app.users"}));
  g.deny.push_back(class_rule("no-billing-writes",
                              {StatementClass::kDelete, StatementClass::kUpdate}, {}, {"billing"}));
  g.deny.push_back(class_rule("no-unbounded", {StatementClass::kDeleteWithoutWhere}));
  Judge judge(g);
  EXPECT_EQ(judge("DROP TABLE users").rule, "no-drop-users");
  EXPECT_EQ(judge("drop table app.users").rule, "no-drop-users");
  EXPECT_TRUE(judge("DROP TABLE other.users").allowed());
  EXPECT_TRUE(judge("DROP TABLE orders").allowed());
  EXPECT_EQ(judge("SELECT 1; TRUNCATE users").rule, "no-drop-users");
  EXPECT_EQ(judge("UPDATE billing.invoices SET x = 1 WHERE id = 2").rule, "no-billing-writes");
  EXPECT_TRUE(judge("UPDATE invoices SET x = 1 WHERE id = 2").allowed());
  EXPECT_EQ(judge("DELETE FROM anything").rule, "no-unbounded");
  EXPECT_TRUE(judge("DELETE FROM anything WHERE id = 1").allowed());
  const SqlVerdict v = judge("SELECT 1; DROP TABLE app.users");
  EXPECT_EQ(v.kind, SqlVerdict::Kind::kDeny);
  EXPECT_EQ(v.reason, "drop of app.users (statement 2)");
}

TEST(SqlPolicy, RegexRulesApproveRulesAndBuiltInRefusals) {
  config::Guardrails g;
  config::SqlRule regex;
  regex.name = "no-sleep";
  regex.regex = R"(pg_sleep\s*\()";
  g.deny.push_back(regex);
  config::ApproveRule approve;
  static_cast<config::SqlRule&>(approve) = class_rule("review-alter", {StatementClass::kAlter});
  approve.approver_groups = {"dba"};
  g.approve.push_back(approve);
  Judge judge(g);
  EXPECT_EQ(judge("select PG_SLEEP (1)").rule, "no-sleep");
  const SqlVerdict alter = judge("ALTER TABLE t ADD COLUMN c int");
  EXPECT_EQ(alter.kind, SqlVerdict::Kind::kApprove);
  EXPECT_EQ(alter.rule, "review-alter");
  EXPECT_EQ(judge("SELEC 1").rule, kRuleUnparseable);
  EXPECT_EQ(judge("SET standard_conforming_strings = off").rule, kRuleLexerSettings);
  EXPECT_TRUE(judge("SELECT 1").allowed());
  EXPECT_EQ(judge.policy.judge_function_call().rule, kRuleFunctionCall);
  g.allow_function_call = true;
  EXPECT_TRUE(Judge(g).policy.judge_function_call().allowed());
  // No SQL rules: nothing is judged, not even text that does not parse.
  EXPECT_TRUE(Judge(config::Guardrails{})("SELEC 1").allowed());
}

// SSH command lines: regex rules only, deny before approve, no SQL parsing.
TEST(SqlPolicy, JudgesTextByRegexRulesDenyFirst) {
  config::Guardrails g;
  config::SqlRule deny;
  deny.name = "no-rm";
  deny.regex = R"((^|[;&| ])rm( |$))";
  g.deny.push_back(deny);
  config::ApproveRule restarts;
  restarts.name = "restarts";
  restarts.regex = R"(systemctl\s+restart)";
  restarts.approver_groups = {"ops"};
  g.approve.push_back(restarts);
  Judge judge(g);
  const SqlVerdict held = judge.policy.judge_text("sudo systemctl restart app", judge.scratch);
  EXPECT_EQ(held.kind, SqlVerdict::Kind::kApprove);
  EXPECT_EQ(held.rule, "restarts");
  // Both match: the deny rule wins.
  const SqlVerdict both = judge.policy.judge_text("systemctl restart app; rm -f x", judge.scratch);
  EXPECT_EQ(both.kind, SqlVerdict::Kind::kDeny);
  EXPECT_EQ(both.rule, "no-rm");
  EXPECT_TRUE(judge.policy.judge_text("SELEC ls -l", judge.scratch).allowed());  // never parsed as SQL
  EXPECT_TRUE(Judge(config::Guardrails{}).policy.judge_text("rm -rf /", judge.scratch).allowed());
}

TEST(SqlPolicy, InvalidRegexNamesFileRuleAndReason) {
  config::Guardrails g;
  config::SqlRule bad;
  bad.name = "broken";
  bad.path = "connections[1].deny[3]";
  bad.regex = "(unclosed";
  g.deny.push_back(bad);
  auto p = SqlPolicy::compile(g, "gh.yaml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message.find("gh.yaml: connections[1].deny[3].regex (rule 'broken'): "),
            std::string::npos)
      << p.error().message;
}

config::MaskRule mask_rule(std::string name, std::string detector,
                           config::MaskStyle style = config::MaskStyle::kFixed) {
  config::MaskRule r;
  r.name = std::move(name);
  r.path = "connections[0].mask[0]";
  r.detector = std::move(detector);
  r.style = style;
  return r;
}

struct Masker {
  explicit Masker(config::Guardrails g) {
    auto compiled = MaskPolicy::compile(g, "test.yaml");
    EXPECT_TRUE(compiled) << (compiled ? "" : compiled.error().message);
    policy.emplace(std::move(*compiled));
    if (policy->patterns()) {
      EXPECT_TRUE(policy->grow_scratch(scratch));
    }
  }
  std::string operator()(std::string_view value) {
    std::string out;
    std::vector<Match> matches;
    if (policy->mask_value(value, scratch, out, matches) == 0) return std::string(value);
    EXPECT_EQ(out.size(), value.size());
    return out;
  }
  std::optional<MaskPolicy> policy;
  Scratch scratch;
};

TEST(MaskPolicy, BuiltInDetectorsConfirmBeforeMasking) {
  config::Guardrails g;
  for (const char* d :
       {"card", "email", "iban", "us_ssn", "jwt", "aws_access_key_id", "aws_secret_key",
        "github_token", "slack_token", "private_key", "uri_password"}) {
    g.mask.push_back(mask_rule(d, d));
  }
  Masker mask(g);
  EXPECT_EQ(mask("card 4111 1111 1111 1111 ok"), "card ******************* ok");
  EXPECT_EQ(mask("4111111111111112"), "4111111111111112");                // fails Luhn
  EXPECT_EQ(mask("amex 3782 822463 10005."), "amex *****************.");  // 4-6-5 groups
  EXPECT_EQ(mask("x5555-5555-5555-4444y"), "x*******************y");
  EXPECT_EQ(mask("iban DE89370400440532013000"), "iban **********************");
  EXPECT_EQ(mask("mail alice@example.com."), "mail *****************.");
  EXPECT_EQ(mask("GB82 WEST 1234 5698 7654 32"), "***************************");
  EXPECT_EQ(mask("GB82 WEST 1234 5698 7654 33"), "GB82 WEST 1234 5698 7654 33");  // fails mod-97
  EXPECT_EQ(mask("ssn 078-05-1120"), "ssn ***********");
  EXPECT_EQ(mask("ssn 000-05-1120"), "ssn 000-05-1120");
  EXPECT_EQ(mask("id AKIAIOSFODNN7EXAMPLE"), "id ********************");
  EXPECT_EQ(mask("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            "aws_secret_access_key=****************************************");
  EXPECT_EQ(mask("ghp_0123456789abcdefghijklmnopqrstuvwxyz"), std::string(40, '*'));
  EXPECT_EQ(mask("xoxb-1234567890-abcdefghij"), std::string(26, '*'));
  EXPECT_EQ(mask("postgres://app:hunter2@db:5432/x"), "postgres://app:*******@db:5432/x");
  const std::string jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
  EXPECT_EQ(mask("Bearer " + jwt), "Bearer " + std::string(jwt.size(), '*'));
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----";
  const std::string masked = mask(pem);
  EXPECT_EQ(masked.find("MC4CAQAw"), std::string::npos) << masked;
  EXPECT_EQ(mask("nothing secret here"), "nothing secret here");
}

TEST(MaskPolicy, ReplacementStylesKeepLengthsAndHashConsistently) {
  config::Guardrails g;
  g.mask.push_back(mask_rule("cards", "card", config::MaskStyle::kKeepLast));
  g.mask.back().keep = 4;
  g.mask.push_back(mask_rule("emails", "email", config::MaskStyle::kHash));
  g.mask.back().hash_key = "0123456789abcdef0123456789abcdef";
  config::MaskRule custom;
  custom.name = "tickets";
  custom.regex = "TKT-[0-9]{6}";
  custom.mask_char = '#';
  g.mask.push_back(custom);
  Masker mask(g);
  EXPECT_EQ(mask("4111-1111-1111-1111"), "****-****-****-1111");
  const std::string a = mask("alice@example.com");
  EXPECT_NE(a, "alice@example.com");
  EXPECT_EQ(a.size(), std::string("alice@example.com").size());
  EXPECT_EQ(a[5], '@');
  EXPECT_EQ(mask("x alice@example.com"), "x " + a);  // same input, same token
  EXPECT_NE(mask("bob@example.com"), a.substr(0, 15));
  EXPECT_EQ(mask("see TKT-123456 now"), "see ########## now");
}

TEST(MaskPolicy, ColumnRulesAndUnknownDetectors) {
  config::Guardrails g;
  config::MaskRule column;
  column.name = "ssn-column";
  column.columns = {"ssn", "tax_id"};
  g.mask.push_back(column);
  auto p = MaskPolicy::compile(g, "t.yaml");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->column_rule("tax_id"), 0);
  EXPECT_EQ(p->column_rule("name"), -1);
  std::string out(5, '?');
  p->mask_whole(0, "12345", out.data(), false);
  EXPECT_EQ(out, "*****");

  config::Guardrails bad;
  bad.mask.push_back(mask_rule("oops", "credit_card"));
  auto r = MaskPolicy::compile(bad, "t.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(
      r.error().message.find(
          "t.yaml: connections[0].mask[0].detect (rule 'oops'): unknown detector 'credit_card'"),
      std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace gh::mask
