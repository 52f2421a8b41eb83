// gh_idle_clients: opens N PostgreSQL client connections, logs each in (cleartext password, as
// gatehouse asks for the token), waits for ReadyForQuery, then keeps them all idle until SIGTERM,
// SIGINT or end of stdin. For scripts/bench.sh's idle-connection run (memory per connection).
// Nonblocking sockets and one epoll loop; must not depend on anything of gatehouse but the codec.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "protocols/postgres/codec/decoder.hpp"
#include "protocols/postgres/codec/encoder.hpp"

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Options {
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string user = "bench";
  std::string database = "bench";
  std::string password;
  int count = 100;
  int parallel = 64;  // logins in progress at once
  int timeout_s = 300;
  bool hold_stdin = false;
};

enum class Phase : uint8_t { kConnecting, kStartupSent, kPasswordSent, kReady, kDead };

struct Client {
  int fd = -1;
  Phase phase = Phase::kConnecting;
  std::string in;
  std::string out;
};

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "gh_idle_clients: %s\n"
               "usage: gh_idle_clients --port P [--host H] [--user U] [--database D]\n"
               "         [--password-env VAR] [--count N] [--parallel N] [--timeout-s S]"
               " [--hold-stdin]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    if (a == "--host")
      o.host = value();
    else if (a == "--port")
      o.port = std::atoi(value());
    else if (a == "--user")
      o.user = value();
    else if (a == "--database")
      o.database = value();
    else if (a == "--password-env") {
      const char* v = std::getenv(value());
      if (v == nullptr) usage("password variable not set");
      o.password = v;
    } else if (a == "--count")
      o.count = std::atoi(value());
    else if (a == "--parallel")
      o.parallel = std::atoi(value());
    else if (a == "--timeout-s")
      o.timeout_s = std::atoi(value());
    else if (a == "--hold-stdin")
      o.hold_stdin = true;
    else
      usage("unknown option");
  }
  if (o.count <= 0 || o.parallel <= 0 || o.port <= 0) usage("bad number");
  return o;
}

class Loop {
 public:
  explicit Loop(const Options& o) : o_(o), clients_(size_t(o.count)) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    std::memset(&address_, 0, sizeof address_);
    address_.sin_family = AF_INET;
    address_.sin_port = htons(uint16_t(o.port));
    if (inet_pton(AF_INET, o.host.c_str(), &address_.sin_addr) != 1) usage("host must be IPv4");
  }

  // Returns true when every client reached ReadyForQuery.
  bool establish() {
    const uint64_t deadline = now_ms() + uint64_t(o_.timeout_s) * 1000;
    std::vector<epoll_event> events(256);
    while (ready_ + failed_ < o_.count && !g_stop) {
      while (started_ < o_.count && started_ - ready_ - failed_ < o_.parallel) start(started_++);
      if (failed_ > std::max(20, o_.count / 100)) {
        std::fprintf(stderr, "gh_idle_clients: giving up after %d failed logins\n", failed_);
        return false;
      }
      if (now_ms() > deadline) {
        std::fprintf(stderr, "gh_idle_clients: timed out with %d ready, %d failed\n", ready_,
                     failed_);
        return false;
      }
      const int n = epoll_wait(epoll_, events.data(), int(events.size()), 200);
      for (int i = 0; i < n; ++i)
        on_event(int(events[size_t(i)].data.u32), events[size_t(i)].events);
    }
    return failed_ == 0 && ready_ == o_.count;
  }

  // Idle until asked to stop; counts connections the server closes meanwhile.
  void hold() {
    std::vector<epoll_event> events(256);
    while (!g_stop) {
      if (o_.hold_stdin) {
        pollfd p{0, POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
          char b[256];
          if (read(0, b, sizeof b) <= 0) break;
        }
      }
      const int n = epoll_wait(epoll_, events.data(), int(events.size()), 200);
      for (int i = 0; i < n; ++i)
        on_event(int(events[size_t(i)].data.u32), events[size_t(i)].events);
    }
  }

  int ready() const { return ready_; }
  // "0:5012 1:4988": logins per high byte of the BackendKeyData process id.
  std::string key_histogram() const {
    std::string out;
    for (int i = 0; i < 256; ++i) {
      if (by_high_byte_[size_t(i)] == 0) continue;
      if (!out.empty()) out += ' ';
      out += std::to_string(i) + ':' + std::to_string(by_high_byte_[size_t(i)]);
    }
    return out;
  }
  int failed() const { return failed_; }
  int closed_by_peer() const { return closed_by_peer_; }

 private:
  void start(int i) {
    Client& c = clients_[size_t(i)];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return fail(i, "socket");
    const int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::vector<gh::pg::StartupParameter> parameters = {
        {"user", o_.user}, {"database", o_.database}, {"application_name", "gh_idle_clients"}};
    gh::pg::encode_startup_message(c.out, parameters);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u32 = uint32_t(i);
    epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &ev);
    if (connect(c.fd, reinterpret_cast<const sockaddr*>(&address_), sizeof address_) != 0 &&
        errno != EINPROGRESS) {
      return fail(i, "connect");
    }
  }

  void fail(int i, const char* what) {
    Client& c = clients_[size_t(i)];
    if (c.phase == Phase::kDead) return;
    if (failed_ < 5)
      std::fprintf(stderr, "gh_idle_clients: client %d: %s (%s)\n", i, what, strerror(errno));
    if (c.phase == Phase::kReady) {
      --ready_;
      ++closed_by_peer_;
    } else {
      ++failed_;
    }
    c.phase = Phase::kDead;
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
    std::string().swap(c.in);
    std::string().swap(c.out);
  }

  void on_event(int i, uint32_t events) {
    Client& c = clients_[size_t(i)];
    if (c.phase == Phase::kDead) return;
    if (events & EPOLLOUT) {
      if (c.phase == Phase::kConnecting) {
        int error = 0;
        socklen_t length = sizeof error;
        getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error != 0) {
          errno = error;
          return fail(i, "connect");
        }
        c.phase = Phase::kStartupSent;
      }
      flush(i);
      if (c.phase == Phase::kDead) return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_input(i);
  }

  void flush(int i) {
    Client& c = clients_[size_t(i)];
    while (!c.out.empty()) {
      const ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) return;
        return fail(i, "send");
      }
      c.out.erase(0, size_t(n));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = uint32_t(i);
    epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  void read_input(int i) {
    Client& c = clients_[size_t(i)];
    char buffer[4096];
    while (true) {
      const ssize_t n = recv(c.fd, buffer, sizeof buffer, 0);
      if (n == 0) {
        errno = 0;
        return fail(i, c.phase == Phase::kReady ? "closed by peer while idle" : "closed by peer");
      }
      if (n < 0) {
        if (errno == EAGAIN) break;
        return fail(i, "recv");
      }
      c.in.append(buffer, size_t(n));
    }
    const gh::pg::DecoderLimits limits;
    while (c.in.size() >= 5) {
      const auto header = gh::pg::decode_backend_header(gh::pg::wire::as_bytes(c.in), limits);
      if (header.status == gh::pg::Status::kError) return fail(i, "protocol error");
      const size_t frame = size_t(header.header.length) + 1;
      if (c.in.size() < frame) break;
      switch (header.header.type) {
        case 'R': {
          // Authentication: 0 ok, 3 cleartext password; others are not spoken here.
          const auto* p = reinterpret_cast<const unsigned char*>(c.in.data()) + 5;
          const uint32_t code = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                                (uint32_t(p[2]) << 8) | uint32_t(p[3]);
          if (code == 3) {
            gh::pg::encode_password_message(c.out, o_.password);
            c.phase = Phase::kPasswordSent;
            flush(i);
            if (c.phase == Phase::kDead) return;
          } else if (code != 0) {
            errno = 0;
            return fail(i, "unsupported authentication request");
          }
          break;
        }
        case 'E':
          errno = 0;
          if (failed_ < 5)
            std::fprintf(stderr, "gh_idle_clients: client %d: server error: %.*s\n", i,
                         int(frame > 200 ? 200 : frame - 5), c.in.data() + 5);
          return fail(i, "ErrorResponse");
        case 'Z':
          if (c.phase != Phase::kReady) {
            c.phase = Phase::kReady;
            ++ready_;
          }
          break;
        case 'K': {
          // gatehouse hands out process ids of the form (shard << 24) | (slot + 1): the high
          // byte tells which shard took the connection (shard balance of SO_REUSEPORT).
          if (frame >= 13) ++by_high_byte_[uint8_t(c.in[5])];
          break;
        }
        default:
          break;  // ParameterStatus, NoticeResponse
      }
      c.in.erase(0, frame);
    }
    if (c.phase == Phase::kReady) std::string().swap(c.in);
  }

  const Options& o_;
  int epoll_ = -1;
  sockaddr_in address_{};
  std::vector<Client> clients_;
  int started_ = 0;
  int ready_ = 0;
  int failed_ = 0;
  int closed_by_peer_ = 0;
  std::array<int, 256> by_high_byte_{};
};

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (rlim_t(o.count) + 16 > limit.rlim_cur) {
    std::fprintf(stderr, "gh_idle_clients: %d connections need more than RLIMIT_NOFILE %llu\n",
                 o.count, static_cast<unsigned long long>(limit.rlim_cur));
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);

  Loop loop(o);
  const uint64_t t0 = now_ms();
  const bool ok = loop.establish();
  std::printf("%s %d failed %d elapsed_ms %llu pid_high_bytes %s\n", ok ? "ready" : "incomplete",
              loop.ready(), loop.failed(), static_cast<unsigned long long>(now_ms() - t0),
              loop.key_histogram().c_str());
  std::fflush(stdout);
  if (!ok) return 1;
  loop.hold();
  std::printf("stopped closed_by_peer %d\n", loop.closed_by_peer());
  return loop.closed_by_peer() == 0 ? 0 : 1;
}
