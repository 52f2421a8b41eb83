// Approve rules on SSH exec: the real ssh client's command waits at the gateway until its review
// is decided with `gatehouse review` on the admin API; approved it runs, denied or timed out it
// never does (side-effect files tell), and the trail has each decision.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/integration/support/ssh_server.hpp"

namespace gh::test {
namespace {

using nlohmann::json;

constexpr const char* kApproveRules =
    "    approve:\n"
    "      - name: deploys\n"
    "        regex: 'deploy-step'\n"
    "        approvers: [ops]\n"
    "        timeout_s: 60\n"
    "      - name: quick\n"
    "        regex: 'quick-step'\n"
    "        approvers: [ops]\n"
    "        timeout_s: 1\n";

class SshApproval : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshServer::available()) GTEST_SKIP() << "OpenSSH (sshd, ssh, ssh-keygen) not installed";
    server_ = std::make_unique<SshServer>();
    gw_ = std::make_unique<SshGateway>(
        *server_, SshGatewayOptions{.pinned_host_key = {}, .connection_extra = kApproveRules,
                                    .admin = "  admin_groups: [gh-admins]\n"});
    alice_ = gw_->token("alice", {"devs"});
    bob_ = gw_->token("bob", {"ops"});
  }

  // The ssh client running `command` in the background.
  Process held_ssh(const std::string& command, const std::string& name) {
    return Process({"bash", "-c", gw_->ssh_line("web") + " '" + command + "'"}, gw_->ssh_env(alice_),
                   gw_->dir() / name);
  }
  RunResult review(const std::vector<std::string>& args, const std::string& token) {
    std::vector<std::string> argv = {"review"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--admin", gw_->admin_url(), "--token", token});
    return gw_->cli(argv);
  }
  // The id of the one pending review, polled for (bounded).
  std::string pending_review() {
    for (int i = 0; i < 200; ++i) {
      const RunResult r = review({"list", "--json"}, bob_);
      if (r.exit_code != 0) {
        ADD_FAILURE() << "review list: " << r.exit_code << " " << r.err << r.out;
        return {};
      }
      const json all = json::parse(r.out);
      for (const json& v : all["reviews"]) {
        if (v["state"] == "pending") return v["id"];
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return {};
  }

  std::unique_ptr<SshServer> server_;
  std::unique_ptr<SshGateway> gw_;
  std::string alice_, bob_;
};

TEST_F(SshApproval, HeldExecRunsOnceApprovedAndNeverWhenDeniedOrTimedOut) {
  // Approved: the caller is told which review holds it; nothing runs before the approval.
  const std::filesystem::path approved_marker = gw_->dir() / "approved";
  Process approved = held_ssh("echo deploy-step > " + approved_marker.string() + "; echo done; exit 4", "approved");
  const std::string id = pending_review();
  ASSERT_FALSE(id.empty()) << gw_->log() << approved.err();
  EXPECT_FALSE(std::filesystem::exists(approved_marker));
  // The requester may not approve its own command.
  EXPECT_NE(review({"approve", id}, alice_).exit_code, 0);
  const RunResult yes = review({"approve", id}, bob_);
  ASSERT_EQ(yes.exit_code, 0) << yes.err;
  EXPECT_EQ(approved.wait(std::chrono::seconds(20)), 4) << approved.err();
  EXPECT_EQ(approved.out(), "done\n");
  EXPECT_NE(approved.err().find("gatehouse: command held for approval: review " + id + " (rule 'deploys')"),
            std::string::npos) << approved.err();
  EXPECT_NE(approved.err().find("gatehouse review approve " + id), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(approved_marker));

  // Denied: exit 126 with the reason, and the command never ran.
  const std::filesystem::path denied_marker = gw_->dir() / "denied";
  Process denied = held_ssh("echo deploy-step > " + denied_marker.string(), "denied");
  const std::string denied_id = pending_review();
  ASSERT_FALSE(denied_id.empty());
  ASSERT_EQ(review({"deny", denied_id, "--reason", "not in the change window"}, bob_).exit_code, 0);
  EXPECT_EQ(denied.wait(std::chrono::seconds(20)), 126) << denied.err();
  EXPECT_NE(denied.err().find("gatehouse: command refused: review " + denied_id +
                              " (rule 'deploys') was denied by bob: not in the change window"),
            std::string::npos) << denied.err();
  EXPECT_FALSE(std::filesystem::exists(denied_marker));

  // Not approved within the rule's time-out (1 s): refused the same way.
  const std::filesystem::path late_marker = gw_->dir() / "late";
  const RunResult late = gw_->ssh(alice_, "web", "echo quick-step > " + late_marker.string());
  EXPECT_EQ(late.exit_code, 126) << late.err;
  EXPECT_NE(late.err.find("was not approved within 1 s"), std::string::npos) << late.err;
  EXPECT_FALSE(std::filesystem::exists(late_marker));

  // The trail: each session's review events and exit status.
  std::vector<std::string> outcomes, tags;
  for (const json& s : gw_->ended_sessions(3)) {
    const json session = gw_->replay_json(s["session_id"]);
    for (const json& e : session["events"]) {
      if (e["type"] == "review") outcomes.push_back(e["fields"]["outcome"]);
      if (e["type"] == "completion") tags.push_back(e["fields"]["tag"]);
    }
  }
  EXPECT_EQ(outcomes, (std::vector<std::string>{"requested", "approved", "requested", "denied",
                                                "requested", "expired"}));
  EXPECT_EQ(tags, (std::vector<std::string>{"exit 4", "exit 126", "exit 126"}));
}

}  // namespace
}  // namespace gh::test
