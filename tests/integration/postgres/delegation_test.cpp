// Nested agents through a real gateway: each hop mints the next token on the admin API (RFC 8693),
// the innermost runs psql, the trail shows the whole chain, revocation ends what it covers, and
// CI provenance rules decide who reaches a connection.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/base64.hpp"
#include "core/identity/issuer.hpp"
#include "tests/integration/support/gateway.hpp"
#include "tests/integration/support/trail.hpp"

namespace gh::test {
namespace {

using nlohmann::json;

json claims_of(const std::string& token) {
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.find('.', dot1 + 1);
  const auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  return payload ? json::parse(*payload, nullptr, false) : json();
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// `gatehouse token exchange` against the gateway's admin API.
RunResult exchange(const Gateway& gw, const std::string& subject_token,
                   const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"token",        "exchange",        "--admin",
                                   gw.admin_url(), "--subject-token", subject_token};
  argv.insert(argv.end(), args.begin(), args.end());
  return gw.cli(argv);
}

std::string exchanged(const Gateway& gw, const std::string& subject_token,
                      const std::vector<std::string>& args) {
  const RunResult r = exchange(gw, subject_token, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return trimmed(r.out);
}

// A refusal from the admin API: RFC 6749 error code in the CLI's one-line message.
void expect_exchange_refused(const Gateway& gw, const std::string& subject_token,
                             const std::vector<std::string>& args, const std::string& error,
                             const std::string& hop) {
  const RunResult r = exchange(gw, subject_token, args);
  EXPECT_NE(r.exit_code, 0) << hop << ": granted " << r.out;
  EXPECT_NE(r.err.find("token exchange refused: " + error), std::string::npos)
      << hop << ": " << r.err;
  EXPECT_NE(r.err.find("(HTTP 400)"), std::string::npos) << hop << ": " << r.err;
}

std::string psql_fatal(const std::string& err) {
  const size_t at = err.find("FATAL:");
  return at == std::string::npos ? "(no FATAL in: " + err + ")"
                                 : err.substr(at, err.find('\n', at) - at);
}

GatewayOptions delegation_options() {
  GatewayOptions o;
  o.clock_skew_s = 0;  // so that a token one second old is expired, not tolerated
  o.connections[0].allow_groups = {"deployers"};
  o.identity_extra = "  delegation_depth_max: 3\n";
  o.admin =
      "  admin_groups: [gh-admins]\n"
      "  token_exchange:\n"
      "    service_actors:\n"
      "      - name: migration-tool\n"
      "        allow_groups: [deployers]\n";
  return o;
}

TEST(Delegation, ThreeHopPipelineNarrowsAtEveryHopAndRevokingTheTopEndsTheInnerSession) {
  PostgresServer pg;
  Gateway gw(pg, delegation_options());
  const std::string admin = gw.token("root", {"gh-admins"});

  // Hop 0: the CI runner acts for alice; it holds her token for 10 minutes.
  const std::string runner_token = gw.token("alice", {"deployers", "dba"}, "10m", {"ci-runner"});
  // Hop 1: the runner hands over to the deploy agent, which proves itself with a token of its own.
  const std::string agent_own = gw.token("deploy-agent", {"agents"}, "10m");
  const std::vector<std::string> as_agent = {"--actor-token", agent_own};
  // Hop 2: the deploy agent hands over to the migration tool, a configured service identity.
  const std::vector<std::string> as_tool = {"--actor", "migration-tool"};

  // Short-lived tokens at every hop, to show that an expired parent cannot be reused. The
  // children's default lifetime is what their parent has left.
  const std::string stale_0 = gw.token("alice", {"deployers", "dba"}, "3s", {"ci-runner"});
  const std::string stale_1 = exchanged(gw, stale_0, as_agent);
  const std::string stale_2 = exchanged(gw, stale_1, as_tool);

  const std::string agent_token = exchanged(
      gw, runner_token, {"--actor-token", agent_own, "--scope", "deployers", "--ttl", "5m"});
  const std::string tool_token =
      exchanged(gw, agent_token, {"--actor", "migration-tool", "--ttl", "2m"});
  ASSERT_FALSE(tool_token.empty());
  const json tool = claims_of(tool_token);
  EXPECT_EQ(tool["sub"], "alice");
  EXPECT_EQ(tool["act"]["sub"], "migration-tool");
  EXPECT_EQ(tool["act"]["act"]["sub"], "deploy-agent");
  EXPECT_EQ(tool["act"]["act"]["act"]["sub"], "ci-runner");
  EXPECT_EQ(tool["groups"], json::array({"deployers"}));
  EXPECT_LE(tool["exp"].get<int64_t>(), claims_of(agent_token)["exp"].get<int64_t>());

  // At every hop: widening the scope, outliving the parent and reusing an expired parent. Each
  // hop asks for the token of its next actor; the innermost one (no actor left under the depth
  // limit) for a narrower token of its own.
  struct Hop {
    std::string name, token, stale;
    std::vector<std::string> next;
  };
  const std::vector<Hop> hops = {{"ci-runner", runner_token, stale_0, as_agent},
                                 {"deploy-agent", agent_token, stale_1, as_tool},
                                 {"migration-tool", tool_token, stale_2, {}}};
  for (const Hop& hop : hops) {
    std::vector<std::string> widen = hop.next;
    widen.insert(widen.end(), {"--scope", "deployers gh-admins"});
    expect_exchange_refused(gw, hop.token, widen, "invalid_scope", hop.name);
    std::vector<std::string> longer = hop.next;
    longer.insert(longer.end(), {"--ttl", "11m"});
    expect_exchange_refused(gw, hop.token, longer, "invalid_request", hop.name);
  }
  // The agent's token was narrowed to "deployers": "dba" is gone for good below it.
  expect_exchange_refused(gw, agent_token, {"--actor", "migration-tool", "--scope", "dba"},
                          "invalid_scope", "deploy-agent");
  // Depth: alice's token already carries three actors, the configured limit.
  expect_exchange_refused(gw, tool_token, as_tool, "invalid_request", "migration-tool");

  const int64_t stale_exp = claims_of(stale_0)["exp"];
  for (int i = 0; i < 100 && std::time(nullptr) < stale_exp; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const Hop& hop : hops) {
    expect_exchange_refused(gw, hop.stale, hop.next, "invalid_request", hop.name + " (expired)");
  }

  // The innermost hop runs psql through the gateway with its token.
  const RunResult ok = gw.psql(tool_token, {"-A", "-t", "-c", "SELECT 40 + 2"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err << gw.log();
  EXPECT_EQ(trimmed(ok.out), "42");

  // A long statement stays open while the top of the chain is revoked.
  Process long_running(
      {"psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", gw.conninfo(), "-c", "SELECT pg_sleep(60)"},
      {{"PGPASSWORD", tool_token}}, gw.dir() / "long-psql");
  bool started = false;
  for (int i = 0; i < 200 && !started; ++i) {
    const RunResult active = pg.psql(
        "SELECT 'active:' || count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'");
    started = trimmed(active.out) == "active:1";
    if (!started) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(started) << long_running.err();

  const std::string top_jti = claims_of(runner_token)["jti"];
  const RunResult refused_revoke =
      gw.cli({"revoke", "--admin", gw.admin_url(), "--jti", top_jti, "--token", tool_token});
  EXPECT_NE(refused_revoke.exit_code, 0);  // only admin groups may revoke
  EXPECT_NE(refused_revoke.err.find("insufficient_scope"), std::string::npos) << refused_revoke.err;
  const RunResult revoked = gw.cli({"revoke", "--admin", gw.admin_url(), "--jti", top_jti,
                                    "--token", admin, "--reason", "contractor offboarded"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;

  // The open session ends with a PostgreSQL FATAL, long before its statement would have.
  const int exit_code = long_running.wait(std::chrono::seconds(30));
  EXPECT_NE(exit_code, 0);
  EXPECT_NE(long_running.err().find(
                "FATAL:  terminating connection: the token of this session was revoked"),
            std::string::npos)
      << long_running.err();

  // New connections with any token minted from the revoked one are refused like any bad token.
  const RunResult bad = gw.psql(gw.token("alice", {"deployers"}), {"-c", "SELECT 1"}, "nowhere");
  for (const std::string& token : {runner_token, agent_token, tool_token}) {
    const RunResult again = gw.psql(token, {"-c", "SELECT 1"});
    EXPECT_NE(again.exit_code, 0);
    EXPECT_EQ(psql_fatal(again.err), psql_fatal(bad.err));
  }
  EXPECT_NE(psql_fatal(bad.err).find("password authentication failed"), std::string::npos) << bad.err;
  // A token outside the revoked lineage still works.
  EXPECT_EQ(gw.psql(gw.token("bob", {"deployers"}), {"-c", "SELECT 1"}).exit_code, 0);

  ASSERT_EQ(gw.stop(), 0) << gw.log();

  // The trail: the session of the innermost hop, found by any member of the chain.
  for (const char* member : {"alice", "ci-runner", "deploy-agent", "migration-tool"}) {
    const RunResult found =
        gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--actor", member, "--json"});
    ASSERT_EQ(found.exit_code, 0) << found.err;
    const json list = json::parse(found.out);
    bool has_path = false;
    for (const json& s : list) {
      has_path |= s["path"] == "alice → ci-runner → deploy-agent → migration-tool → appdb";
    }
    EXPECT_TRUE(has_path) << member << ": " << found.out;
  }
  const json sessions = trail_sessions(gw);
  std::string revoked_session;
  size_t refused_exchanges = 0, granted_exchanges = 0, revocations = 0;
  for (const json& s : sessions) {
    const std::string end = s["end_reason"];
    if (s["protocol"] == "admin") {
      refused_exchanges += end.starts_with("token_exchange refused");
      granted_exchanges += end.starts_with("token_exchange granted");
      revocations += end.starts_with("revoke granted");
    } else if (end.find("token revoked") != std::string::npos && s["statements"] == 1) {
      revoked_session = s["session_id"];
    }
  }
  EXPECT_EQ(granted_exchanges, 4u);
  EXPECT_EQ(refused_exchanges, 3u * 2 + 1 + 1 + 3);
  EXPECT_EQ(revocations, 1u);
  ASSERT_FALSE(revoked_session.empty()) << sessions.dump(1);
  const RunResult replay = gw.cli({"replay", revoked_session, "--dir", gw.trail_dir().string()});
  ASSERT_EQ(replay.exit_code, 0) << replay.err;
  EXPECT_NE(replay.out.find("alice → ci-runner → deploy-agent → migration-tool → appdb"),
            std::string::npos)
      << replay.out;
  EXPECT_NE(replay.out.find("token jti \"" + top_jti + "\" was revoked"), std::string::npos)
      << replay.out;
  EXPECT_NE(replay.out.find("contractor offboarded"), std::string::npos) << replay.out;
}

// GitHub Actions-style provenance from an external issuer: recorded on the session, searchable,
// and a connection rule admits only main of one repository.
TEST(Delegation, CiProvenanceIsRecordedSearchableAndRuledOn) {
  PostgresServer pg;
  TempDir keys;
  const auto ci_key = keys.path() / "ci.key";
  const auto ci_jwks = keys.path() / "ci.jwks.json";
  ASSERT_TRUE(identity::keygen(ci_key, ci_jwks).has_value());
  auto ci = identity::TokenMinter::load(ci_key);
  ASSERT_TRUE(ci.has_value());

  GatewayOptions o;
  o.connections[0].allow_groups = {"deployers"};
  o.connections[0].extra =
      "    require_claims:\n      repository_id: \"892341\"\n      ref: refs/heads/main\n";
  o.identity_extra =
      "  issuers:\n    - name: github-actions\n"
      "      issuer: https://token.actions.githubusercontent.com\n"
      "      audience: gatehouse\n      jwks_file: " +
      ci_jwks.string() + "\n      provenance: github-actions\n";
  Gateway gw(pg, o);

  const auto ci_token = [&](const std::string& ref, int64_t repository_id) {
    identity::TokenRequest request;
    request.issuer = "https://token.actions.githubusercontent.com";
    request.audience = "gatehouse";
    request.subject = "repo:acme/app:ref:" + ref;
    request.groups = {"deployers"};
    request.ttl_s = 600;
    request.actors = {"ci-runner"};
    request.extra_claims = {{"repository", "acme/app"},
                            {"repository_id", repository_id},
                            {"ref", ref},
                            {"run_id", "7001"},
                            {"workflow", "deploy"}};
    auto token = ci->issue(request, int64_t(std::time(nullptr)));
    EXPECT_TRUE(token.has_value());
    return *token;
  };
  const RunResult main_ok = gw.psql(ci_token("refs/heads/main", 892341), {"-c", "SELECT 1"});
  EXPECT_EQ(main_ok.exit_code, 0) << main_ok.err << gw.log();
  const RunResult branch = gw.psql(ci_token("refs/heads/feature", 892341), {"-c", "SELECT 1"});
  EXPECT_NE(branch.exit_code, 0);
  EXPECT_NE(psql_fatal(branch.err).find("password authentication failed"), std::string::npos);
  const RunResult fork = gw.psql(ci_token("refs/heads/main", 5), {"-c", "SELECT 1"});
  EXPECT_NE(fork.exit_code, 0);
  ASSERT_EQ(gw.stop(), 0) << gw.log();

  const RunResult found =
      gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--claim", "ref=refs/heads/main",
              "--claim", "repository_id=892341", "--json"});
  ASSERT_EQ(found.exit_code, 0) << found.err;
  const json list = json::parse(found.out);
  ASSERT_EQ(list.size(), 1u) << found.out;
  EXPECT_EQ(list[0]["claims"]["run_id"], "7001");
  EXPECT_EQ(list[0]["claims"]["workflow"], "deploy");
  EXPECT_EQ(list[0]["path"], "repo:acme/app:ref:refs/heads/main → ci-runner → appdb");
  EXPECT_EQ(list[0]["statements"], 1);

  // The refusals are recorded with the rule that failed and the claims the token carried.
  const RunResult refused = gw.cli({"sessions", "--dir", gw.trail_dir().string(), "--claim",
                                    "ref=refs/heads/feature", "--json"});
  ASSERT_EQ(refused.exit_code, 0) << refused.err;
  const json refused_list = json::parse(refused.out);
  ASSERT_EQ(refused_list.size(), 1u) << refused.out;
  EXPECT_NE(refused_list[0]["end_reason"].get<std::string>().find(
                "provenance claim \"ref\" is \"refs/heads/feature\""),
            std::string::npos)
      << refused.out;
}

}  // namespace
}  // namespace gh::test
