// Child processes for integration tests: real servers and real clients, started and stopped with
// bounded waits. Test support only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace gh::test {

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs argv to completion (killed after `timeout`), with extra environment variables.
RunResult run(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(120),
              const std::string& stdin_file = {});
// Runs a shell command line (bash -c), for pipelines.
RunResult shell(const std::string& command, const std::map<std::string, std::string>& env = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(120));

// A long-running child whose stdout and stderr go to files.
class Process {
 public:
  Process() = default;
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          const std::filesystem::path& log_prefix);
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits up to `timeout` for the exit; returns the exit code, or -1 (signal / still running).
  int wait(std::chrono::milliseconds timeout);
  // SIGTERM, then SIGKILL after `grace`.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::filesystem::path out_file_;
  std::filesystem::path err_file_;
};

std::string read_file(const std::filesystem::path& path);
void write_file(const std::filesystem::path& path, const std::string& text);
// A TCP port on 127.0.0.1 that was free a moment ago.
uint16_t free_port();
// Polls until a TCP connect to 127.0.0.1:port succeeds.
bool wait_for_port(uint16_t port, std::chrono::milliseconds timeout);
// A fresh directory under /tmp, removed by the destructor; writable by the postgres user too.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace gh::test
