// Byte-recording TCP relay (one poll loop on one thread). Test support only.
#include "tests/integration/support/tcp_relay.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace gh::test {
namespace {

bool send_all(int fd, const char* data, size_t n) {
  size_t sent = 0;
  while (sent < n) {
    const ssize_t k = send(fd, data + sent, n - sent, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    sent += size_t(k);
  }
  return true;
}

int connect_loopback(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TcpRelay::TcpRelay(uint16_t target_port) : target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || pipe(wake_) != 0) {
    throw std::runtime_error("relay: cannot listen");
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { run(); });
}

TcpRelay::~TcpRelay() {
  stop_ = true;
  const char b = 1;
  (void)!write(wake_[1], &b, 1);
  thread_.join();
  close(listen_fd_);
  close(wake_[0]);
  close(wake_[1]);
}

std::vector<TcpRelay::Flow> TcpRelay::flows() const {
  std::lock_guard lock(mutex_);
  return flows_;
}

void TcpRelay::run() {
  struct Pair {
    int fd[2];          // 0: the connecting peer, 1: the target
    bool eof[2] = {false, false};
    size_t flow = 0;
  };
  std::vector<Pair> pairs;
  while (!stop_) {
    std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const Pair& p : pairs) {
      for (int side = 0; side < 2; ++side) fds.push_back({p.eof[side] ? -1 : p.fd[side], POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) break;
    if (fds[1].revents & POLLIN) {
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        const int target = connect_loopback(target_port_);
        if (target < 0) {
          close(client);
        } else {
          std::lock_guard lock(mutex_);
          flows_.push_back({});
          pairs.push_back(Pair{{client, target}, {false, false}, flows_.size() - 1});
        }
      }
    }
    for (size_t i = 0; i < pairs.size(); ++i) {
      Pair& p = pairs[i];
      for (int side = 0; side < 2; ++side) {
        const pollfd& f = fds[2 + 2 * i + side];
        if (f.fd < 0 || (f.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        char chunk[16384];
        const ssize_t n = recv(p.fd[side], chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          p.eof[side] = true;
          shutdown(p.fd[1 - side], SHUT_WR);
          continue;
        }
        {
          std::lock_guard lock(mutex_);
          (side == 0 ? flows_[p.flow].to_target : flows_[p.flow].from_target).append(chunk, size_t(n));
        }
        if (!send_all(p.fd[1 - side], chunk, size_t(n))) p.eof[side] = true;
      }
    }
    for (size_t i = 0; i < pairs.size();) {
      if (pairs[i].eof[0] && pairs[i].eof[1]) {
        close(pairs[i].fd[0]);
        close(pairs[i].fd[1]);
        std::lock_guard lock(mutex_);
        flows_[pairs[i].flow].done = true;
        pairs.erase(pairs.begin() + long(i));
      } else {
        ++i;
      }
    }
  }
  for (const Pair& p : pairs) {
    close(p.fd[0]);
    close(p.fd[1]);
  }
}

}  // namespace gh::test
