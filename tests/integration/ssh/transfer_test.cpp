// File transfers through gatehouse to a real OpenSSH sshd with the real clients: sftp (batch
// mode) and scp (SFTP mode, OpenSSH 9.2's default) of 100 MB up and down, byte for byte, recorded
// as file operations; git clone and push of a real bare repository; agent and X11 forwarding
// refused and recorded.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/integration/support/ssh_server.hpp"

namespace gh::test {
namespace {

constexpr uint64_t kBigBytes = 100ull * 1024 * 1024;

class SshTransfer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!SshServer::available()) GTEST_SKIP() << "OpenSSH (sshd, ssh, ssh-keygen) not installed";
    server_ = std::make_unique<SshServer>();
  }

  // The ssh options every client here uses: the gateway's host key checked strictly, the token
  // as password through SSH_ASKPASS (askpass_env).
  static std::vector<std::string> ssh_options(const SshGateway& gw) {
    return {"-F", "/dev/null", "-o", "UserKnownHostsFile=" + (gw.dir() / "known_hosts").string(),
            "-o", "StrictHostKeyChecking=yes", "-o", "PubkeyAuthentication=no",
            "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10"};
  }
  static std::map<std::string, std::string> askpass_env(const SshGateway& gw, const std::string& token) {
    return {{"SSH_ASKPASS", (gw.dir() / "askpass").string()},
            {"SSH_ASKPASS_REQUIRE", "force"},
            {"DISPLAY", ":0"},
            {"GH_TEST_TOKEN", token}};
  }
  static std::string sha256(const std::filesystem::path& file) {
    auto r = run({"sha256sum", file.string()});
    return r.exit_code == 0 ? r.out.substr(0, 64) : "missing " + file.string();
  }

  // Every file operation of every session, as "operation path[ -> target] status" plus the
  // totals of a close; and the sessions' text replays.
  static std::vector<std::string> file_operations(SshGateway& gw, const nlohmann::json& all, std::string* text) {
    std::vector<std::string> ops;
    for (const auto& s : all) {
      for (const auto& e : events_of_type(gw.replay_json(s["session_id"]), "file_operation")) {
        const auto& f = e["fields"];
        std::string op = f["file_operation"].get<std::string>() + " " + f["path"].get<std::string>();
        if (f.contains("target_path")) op += " -> " + f["target_path"].get<std::string>();
        if (f.contains("bytes_read")) {
          op += " read=" + f["bytes_read"].get<std::string>() + " written=" + f["bytes_written"].get<std::string>();
        }
        ops.push_back(op + " " + f["file_status"].get<std::string>());
      }
      if (text != nullptr) *text += gw.cli({"replay", "-c", gw.config_file().string(), s["session_id"]}).out;
    }
    return ops;
  }
  static bool has(const std::vector<std::string>& ops, const std::string& op) {
    return std::find(ops.begin(), ops.end(), op) != ops.end();
  }

  std::unique_ptr<SshServer> server_;
};

TEST_F(SshTransfer, SftpAndScpMove100MBUpAndDownByteForByteAndRecordEachFile) {
  SshGateway gw(*server_);
  const std::string token = gw.token("alice", {"devs"});
  const std::filesystem::path local = gw.dir() / "local";
  const std::filesystem::path remote = gw.dir() / "remote";  // on the host (the same machine)
  std::filesystem::create_directories(local);
  const std::filesystem::path big = local / "big.bin";
  ASSERT_EQ(shell("head -c " + std::to_string(kBigBytes) + " /dev/urandom > " + big.string()).exit_code, 0);
  const std::string original = sha256(big);
  const std::string port = std::to_string(gw.port());
  const auto env = askpass_env(gw, token);

  // sftp in batch mode. -b turns BatchMode on, which forbids password prompts; ssh keeps the
  // first value an option gets, so BatchMode=no before -b keeps the token prompt.
  const std::filesystem::path batch = gw.dir() / "batch";
  const std::string r_in = (remote / "in").string();
  write_file(batch, "mkdir " + remote.string() + "\nmkdir " + r_in + "\nput " + big.string() + " " + r_in +
                        "/sftp.bin\nget " + r_in + "/sftp.bin " + (local / "sftp_back.bin").string() +
                        "\nrename " + r_in + "/sftp.bin " + r_in + "/renamed.bin\n-rm " + r_in +
                        "/missing.bin\n");
  std::vector<std::string> argv = {"sftp", "-o", "BatchMode=no", "-b", batch.string(), "-P", port};
  for (const auto& o : ssh_options(gw)) argv.push_back(o);
  argv.push_back("web@127.0.0.1");
  auto r = run(argv, env, std::chrono::seconds(120));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << gw.log();

  // scp, which speaks SFTP to the host by default (OpenSSH 9.0 and later).
  const auto scp = [&](const std::string& from, const std::string& to) {
    std::vector<std::string> a = {"scp", "-q", "-P", port};
    for (const auto& o : ssh_options(gw)) a.push_back(o);
    a.insert(a.end(), {from, to});
    return run(a, env, std::chrono::seconds(120));
  };
  r = scp(big.string(), "web@127.0.0.1:" + r_in + "/scp.bin");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = scp("web@127.0.0.1:" + r_in + "/scp.bin", (local / "scp_back.bin").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;

  EXPECT_EQ(sha256(remote / "in" / "renamed.bin"), original);
  EXPECT_EQ(sha256(local / "sftp_back.bin"), original);
  EXPECT_EQ(sha256(remote / "in" / "scp.bin"), original);
  EXPECT_EQ(sha256(local / "scp_back.bin"), original);

  auto all = gw.ended_sessions(3);
  ASSERT_EQ(all.size(), 3u);
  for (const auto& s : all) {
    auto session = gw.replay_json(s["session_id"]);
    auto exec = events_of_type(session, "statement");
    ASSERT_EQ(exec.size(), 1u);
    EXPECT_EQ(exec[0]["fields"]["statement_kind"], "subsystem");
    EXPECT_EQ(exec[0]["fields"]["text"], "sftp");
    // File contents are not in the trail: the channel's bytes are recorded by size only.
    for (const auto& e : events_of_type(session, "output")) {
      if (e["fields"]["stream"] == "out") {
        EXPECT_EQ(e["fields"]["text"], "");
      }
    }
  }
  std::string text;
  const auto ops = file_operations(gw, all, &text);
  const std::string size = std::to_string(kBigBytes);
  std::string listed;
  for (const auto& op : ops) listed += op + "\n";
  EXPECT_TRUE(has(ops, "mkdir " + r_in + " ok")) << listed;
  EXPECT_TRUE(has(ops, "open " + r_in + "/sftp.bin ok")) << listed;
  EXPECT_TRUE(has(ops, "close " + r_in + "/sftp.bin read=0 written=" + size + " ok")) << listed;
  EXPECT_TRUE(has(ops, "close " + r_in + "/sftp.bin read=" + size + " written=0 ok")) << listed;
  EXPECT_TRUE(has(ops, "rename " + r_in + "/sftp.bin -> " + r_in + "/renamed.bin ok")) << listed;
  EXPECT_TRUE(has(ops, "remove " + r_in + "/missing.bin no such file")) << listed;
  EXPECT_TRUE(has(ops, "close " + r_in + "/scp.bin read=0 written=" + size + " ok")) << listed;
  EXPECT_TRUE(has(ops, "close " + r_in + "/scp.bin read=" + size + " written=0 ok")) << listed;
  // `gatehouse replay` says the same in words.
  EXPECT_NE(text.find("sftp close " + r_in + "/sftp.bin [write,create,truncate] (read 0 B, written " + size +
                      " B): ok"),
            std::string::npos) << text;
  EXPECT_NE(text.find("sftp remove " + r_in + "/missing.bin: no such file"), std::string::npos) << text;
}

TEST_F(SshTransfer, AnSftpStreamTheGatewayCannotFollowEndsTheChannelAndIsRecorded) {
  SshGateway gw(*server_);
  const std::string token = gw.token("alice", {"devs"});
  // SSH_FXP_INIT, then a length word above any SFTP packet's (OpenSSH refuses 256 KiB too).
  const std::filesystem::path input = gw.dir() / "input";
  write_file(input, std::string("\0\0\0\x05\x01\0\0\0\x03\x7f\xff\xff\xff", 13) + std::string(64, 'x'));
  std::vector<std::string> argv = {"ssh", "-s", "-p", std::to_string(gw.port())};
  for (const auto& o : ssh_options(gw)) argv.push_back(o);
  argv.insert(argv.end(), {"web@127.0.0.1", "sftp"});
  auto r = run(argv, askpass_env(gw, token), std::chrono::seconds(30), input.string());
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;

  auto all = gw.ended_sessions(1);
  ASSERT_EQ(all.size(), 1u);
  auto errors = events_of_type(gw.replay_json(all[0]["session_id"]), "error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["fields"]["message"], "sftp channel closed: its operations can no longer be recorded");
  EXPECT_EQ(errors[0]["fields"]["reason"], "client SFTP packet length 2147483647 out of range");
}

TEST_F(SshTransfer, GitCloneAndPushOverSshThroughTheGateway) {
  // A mask rule that would break git if its transfers were masked (object ids in the ref
  // advertisement): pack exchanges go through byte for byte, other output is still masked.
  SshGateway gw(*server_, {.pinned_host_key = {},
                           .connection_extra = "    mask:\n      - name: object-id\n"
                                               "        regex: '[0-9a-f]{40}'\n"});
  const std::string token = gw.token("alice", {"devs"});
  const std::filesystem::path bare = gw.dir() / "remote" / "repo.git";
  const std::filesystem::path seed = gw.dir() / "seed";
  const std::map<std::string, std::string> git_env = {
      {"GIT_AUTHOR_NAME", "t"}, {"GIT_AUTHOR_EMAIL", "t@example.com"},
      {"GIT_COMMITTER_NAME", "t"}, {"GIT_COMMITTER_EMAIL", "t@example.com"},
      {"GIT_CONFIG_GLOBAL", "/dev/null"}, {"GIT_CONFIG_NOSYSTEM", "1"}};
  const auto git = [&](const std::vector<std::string>& args, std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {"git"};
    argv.insert(argv.end(), args.begin(), args.end());
    env.insert(git_env.begin(), git_env.end());
    return run(argv, env, std::chrono::seconds(60));
  };
  ASSERT_EQ(git({"init", "-q", "--bare", "-b", "main", bare.string()}).exit_code, 0);
  ASSERT_EQ(git({"init", "-q", "-b", "main", seed.string()}).exit_code, 0);
  write_file(seed / "README", "hello through the gateway\n");
  ASSERT_EQ(git({"-C", seed.string(), "add", "README"}).exit_code, 0);
  ASSERT_EQ(git({"-C", seed.string(), "commit", "-q", "-m", "first"}).exit_code, 0);
  ASSERT_EQ(git({"-C", seed.string(), "push", "-q", bare.string(), "main"}).exit_code, 0);

  // git runs `ssh ... git-upload-pack '<path>'`; the token goes as the SSH password.
  std::string ssh_command = "ssh";
  for (const auto& o : ssh_options(gw)) ssh_command += " " + o;
  auto env = askpass_env(gw, token);
  env["GIT_SSH_COMMAND"] = ssh_command;
  const std::string url = "ssh://web@127.0.0.1:" + std::to_string(gw.port()) + bare.string();
  const std::filesystem::path work = gw.dir() / "work";
  auto r = git({"clone", "-q", url, work.string()}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err << gw.log();
  EXPECT_EQ(read_file(work / "README"), "hello through the gateway\n");

  write_file(work / "CHANGES", "pushed through the gateway\n");
  ASSERT_EQ(git({"-C", work.string(), "add", "CHANGES"}).exit_code, 0);
  ASSERT_EQ(git({"-C", work.string(), "commit", "-q", "-m", "second"}).exit_code, 0);
  r = git({"-C", work.string(), "push", "-q", "origin", "main"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = git({"--git-dir", bare.string(), "log", "--format=%s", "main"});
  EXPECT_EQ(r.out, "second\nfirst\n");

  // An ordinary command's output is still masked, also one that starts like git's but runs
  // more than the pack exchange.
  r = gw.ssh(token, "web", "git --git-dir " + bare.string() + " rev-parse main");
  EXPECT_EQ(r.out, std::string(40, '*') + "\n") << r.err;
  const std::string head = git({"--git-dir", bare.string(), "rev-parse", "main"}).out.substr(0, 40);
  r = gw.ssh(token, "web", "git-upload-pack '" + bare.string() + "' </dev/null; echo main=" + head);
  EXPECT_NE(r.out.find("refs/heads/main"), std::string::npos) << r.out;  // the advertisement came
  EXPECT_EQ(r.out.find(head), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("main=" + std::string(40, '*')), std::string::npos) << r.out;

  auto all = gw.ended_sessions(4);
  ASSERT_EQ(all.size(), 4u);
  std::vector<std::string> commands, tags;
  for (const auto& s : all) {
    auto session = gw.replay_json(s["session_id"]);
    for (const auto& e : events_of_type(session, "statement")) commands.push_back(e["fields"]["text"]);
    for (const auto& e : events_of_type(session, "completion")) tags.push_back(e["fields"]["tag"]);
    // Pack exchanges are recorded by size only; the masked output as the caller got it.
    for (const auto& e : events_of_type(session, "output")) {
      if (e["fields"]["stream"] != "out") continue;
      if (commands.back().starts_with("git-") && commands.back().ends_with("'")) {
        EXPECT_EQ(e["fields"]["text"], "");
        EXPECT_NE(e["fields"].value("text_bytes", ""), "");
      } else {
        EXPECT_EQ(e["fields"]["text"].get<std::string>().find(head), std::string::npos);
      }
    }
  }
  EXPECT_EQ(commands, (std::vector<std::string>{"git-upload-pack '" + bare.string() + "'",
                                                "git-receive-pack '" + bare.string() + "'",
                                                "git --git-dir " + bare.string() + " rev-parse main",
                                                "git-upload-pack '" + bare.string() + "' </dev/null; echo main=" + head}));
  EXPECT_EQ(tags, (std::vector<std::string>{"exit 0", "exit 0", "exit 0", "exit 0"}));
}

TEST_F(SshTransfer, AgentAndX11ForwardingAreRefusedAndRecorded) {
  SshGateway gw(*server_);
  const std::string token = gw.token("alice", {"devs"});
  // ssh-agent runs the client with an agent to forward; DISPLAY is set, so -X asks for X11.
  std::vector<std::string> argv = {"ssh-agent", "ssh", "-A", "-X", "-p", std::to_string(gw.port())};
  for (const auto& o : ssh_options(gw)) argv.push_back(o);
  argv.insert(argv.end(), {"web@127.0.0.1", "echo agent=${SSH_AUTH_SOCK:-none} display=${DISPLAY:-none}"});
  auto r = run(argv, askpass_env(gw, token), std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "agent=none display=none\n");  // neither reached the host
  EXPECT_NE(r.err.find("X11 forwarding request failed"), std::string::npos) << r.err;

  auto all = gw.ended_sessions(1);
  ASSERT_EQ(all.size(), 1u);
  std::string refused;
  for (const auto& e : events_of_type(gw.replay_json(all[0]["session_id"]), "error"))
    refused += e["fields"]["message"].get<std::string>() + "\n";
  EXPECT_NE(refused.find("refused: auth-agent-req (agent forwarding)"), std::string::npos) << refused;
  EXPECT_NE(refused.find("refused: x11-req"), std::string::npos) << refused;
}

}  // namespace
}  // namespace gh::test
