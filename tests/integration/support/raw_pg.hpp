// A minimal PostgreSQL 3.0 frontend over a plain socket, for tests that need what libpq hides:
// the BackendKeyData key, the local port a connection leaves from, hand-made CancelRequests and
// abortive closes. Every wait is bounded. Test support only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace gh::test {

inline void put_be32(std::string& out, uint32_t v) {
  const char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  out.append(b, 4);
}
inline uint32_t get_be32(const std::string& s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}

// A loopback TCP connection to `port`, leaving from `from_port` when not 0 (SO_REUSEADDR).
// Returns the fd, or -1. Retries briefly: a just-released local port may still be settling.
inline int raw_connect(uint16_t port, uint16_t from_port = 0) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (from_port != 0) {
      const int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      a.sin_port = htons(from_port);
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
    }
    a.sin_port = htons(port);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
    close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

inline uint16_t local_port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// Closes with a RST (SO_LINGER 0): neither end keeps the 4-tuple in TIME_WAIT, so the local port
// can be used again at once for a connection to the same address.
inline void abortive_close(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

inline bool send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += size_t(n);
  }
  return true;
}

// Sends a CancelRequest (Int32 16, Int32 80877102, process id, secret key) from `from_port`
// (0: any), then waits (bounded) for the gateway to close the connection, as PostgreSQL does.
// True when the request was sent and the connection then ended.
inline bool raw_cancel(uint16_t port, int32_t pid, int32_t key, uint16_t from_port = 0) {
  const int fd = raw_connect(port, from_port);
  if (fd < 0) return false;
  std::string packet;
  put_be32(packet, 16);
  put_be32(packet, 80877102);
  put_be32(packet, uint32_t(pid));
  put_be32(packet, uint32_t(key));
  bool ended = false;
  if (send_all(fd, packet)) {
    pollfd p{fd, POLLIN, 0};
    char byte;
    ended = poll(&p, 1, 5000) == 1 && recv(fd, &byte, 1, 0) <= 0;
  }
  abortive_close(fd);
  return ended;
}

struct RawMessage {
  char type = 0;
  std::string body;
};

// One frontend connection, logged in with a token as the password.
class RawSession {
 public:
  RawSession() = default;
  RawSession(const RawSession&) = delete;
  RawSession& operator=(const RawSession&) = delete;
  ~RawSession() {
    if (fd_ >= 0) close(fd_);
  }

  // Startup, cleartext password, then every message up to the first ReadyForQuery; from local
  // port `from_port` when not 0.
  bool login(uint16_t port, const std::string& user, const std::string& database,
             const std::string& token, std::string* error, uint16_t from_port = 0) {
    fd_ = raw_connect(port, from_port);
    if (fd_ < 0) return fail(error, "connect failed");
    local_port_ = local_port_of(fd_);
    std::string params;
    for (const std::string& s : {std::string("user"), user, std::string("database"), database}) {
      params += s;
      params.push_back('\0');
    }
    params.push_back('\0');
    std::string startup;
    put_be32(startup, uint32_t(8 + params.size()));
    put_be32(startup, 196608);  // protocol 3.0
    startup += params;
    if (!send_all(fd_, startup)) return fail(error, "send startup failed");
    while (true) {
      RawMessage m;
      if (!next(m, std::chrono::seconds(10))) return fail(error, "no answer during login");
      if (m.type == 'E') return fail(error, "login refused: " + m.body);
      if (m.type == 'R' && m.body.size() >= 4 && get_be32(m.body, 0) == 3) {
        std::string password;
        password.push_back('p');
        put_be32(password, uint32_t(4 + token.size() + 1));
        password += token;
        password.push_back('\0');
        if (!send_all(fd_, password)) return fail(error, "send password failed");
      } else if (m.type == 'K' && m.body.size() == 8) {
        pid_ = int32_t(get_be32(m.body, 0));
        key_ = int32_t(get_be32(m.body, 4));
      } else if (m.type == 'Z') {
        return true;
      }
    }
  }

  bool query(const std::string& sql) {
    std::string q;
    q.push_back('Q');
    put_be32(q, uint32_t(4 + sql.size() + 1));
    q += sql;
    q.push_back('\0');
    return send_all(fd_, q);
  }

  // The next backend message; false on time-out, end of stream or error.
  bool next(RawMessage& m, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (in_.size() >= 5) {
        const uint32_t length = get_be32(in_, 1);
        if (in_.size() >= 1 + size_t(length)) {
          m.type = in_[0];
          m.body = in_.substr(5, length - 4);
          in_.erase(0, 1 + size_t(length));
          return true;
        }
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, int(left.count())) != 1) return false;
      char buffer[16384];
      const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) return false;
      in_.append(buffer, size_t(n));
    }
  }

  // Messages up to and including ReadyForQuery; false if it did not come in time.
  bool until_ready(std::vector<RawMessage>& out, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      RawMessage m;
      if (left.count() <= 0 || !next(m, left)) return false;
      out.push_back(m);
      if (m.type == 'Z') return true;
    }
  }

  // Ends the connection with a RST, freeing its local port at once.
  void abort() {
    if (fd_ >= 0) abortive_close(fd_);
    fd_ = -1;
  }

  int32_t pid() const { return pid_; }
  int32_t key() const { return key_; }
  uint16_t local_port() const { return local_port_; }
  // The gateway's process id names the shard that owns the session (top 8 bits).
  uint32_t shard() const { return uint32_t(pid_) >> 24; }

 private:
  static bool fail(std::string* error, const std::string& what) {
    if (error) *error = what;
    return false;
  }

  int fd_ = -1;
  uint16_t local_port_ = 0;
  int32_t pid_ = 0;
  int32_t key_ = 0;
  std::string in_;
};

// The SQLSTATE ('C' field) of an ErrorResponse body.
inline std::string error_sqlstate(const std::string& body) {
  for (size_t i = 0; i < body.size() && body[i] != '\0';) {
    const char code = body[i];
    const size_t end = body.find('\0', i + 1);
    if (end == std::string::npos) break;
    if (code == 'C') return body.substr(i + 1, end - i - 1);
    i = end + 1;
  }
  return {};
}

}  // namespace gh::test
