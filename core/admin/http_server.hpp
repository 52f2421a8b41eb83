// The admin API's HTTP(S) server: cpp-httplib on threads of its own (never a shard's), handing
// each request to the Router. The only file that sees the server library; its exceptions stop here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/admin/router.hpp"
#include "core/config.hpp"
#include "core/error.hpp"

namespace gh::admin {

struct HttpServerOptions {
  config::SocketAddress address;        // port 0: any free port (see port())
  std::optional<config::TlsFiles> tls;  // HTTPS when set
  uint32_t threads = 2;                 // request handler threads
  uint32_t request_bytes_max = 65536;   // bodies above this get 413
  uint32_t read_timeout_ms = 5000;      // per request read, slow clients are dropped
};

class HttpServer {
 public:
  // Binds, then serves on a thread of its own until stop(). `router` must outlive the server.
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                   const Router& router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  bool tls() const;
  // Stops accepting, finishes the requests in progress, joins the threads. Idempotent.
  void stop();

 private:
  struct State;
  explicit HttpServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace gh::admin
