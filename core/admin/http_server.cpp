// cpp-httplib adapter of the admin API. Debian builds cpp-httplib as a shared library with
// exceptions, so CPPHTTPLIB_NO_EXCEPTIONS cannot apply: every call into it, and every handler it
// runs, is wrapped here, and nothing thrown leaves this file.
#include "core/admin/http_server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <exception>
#include <thread>

namespace gh::admin {
namespace {

// The numeric host of a resolved address, as httplib's bind wants it.
std::string numeric_host(const config::SocketAddress& address, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.storage.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address.storage);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
    port = ntohs(v6->sin6_port);
  } else {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address.storage);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
    port = ntohs(v4->sin_port);
  }
  return text;
}

Request to_request(const httplib::Request& in) {
  Request out;
  out.method = in.method;
  out.path = in.path;
  for (const auto& [name, value] : in.params) out.query.emplace_back(name, value);
  for (const auto& [name, value] : in.headers) out.headers.emplace_back(name, value);
  out.body = in.body;
  out.remote_address = in.remote_addr.find(':') != std::string::npos
                           ? fmt::format("[{}]:{}", in.remote_addr, in.remote_port)
                           : fmt::format("{}:{}", in.remote_addr, in.remote_port);
  return out;
}

void fill(const Response& in, httplib::Response& out) {
  out.status = in.status;
  for (const auto& [name, value] : in.headers) out.set_header(name, value);
  out.set_content(in.body, in.content_type);
}

void internal_error(httplib::Response& out) {
  out.status = 500;
  out.set_content(R"({"error":"server_error"})", "application/json");
}

}  // namespace

struct HttpServer::State {
  ~State() {
    try {
      if (server) server->stop();
    } catch (...) {
    }
    if (thread.joinable()) thread.join();
  }
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  uint16_t port = 0;
  bool tls = false;
};

HttpServer::HttpServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return state_->port; }
bool HttpServer::tls() const { return state_->tls; }

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      const Router& router) {
  auto state = std::make_unique<State>();
  int port = 0;
  const std::string host = numeric_host(options.address, port);
  try {
    if (options.tls) {
      state->server = std::make_unique<httplib::SSLServer>(options.tls->cert_file.c_str(),
                                                           options.tls->key_file.c_str());
      state->tls = true;
    } else {
      state->server = std::make_unique<httplib::Server>();
    }
    httplib::Server& server = *state->server;
    if (!server.is_valid()) {
      return fail(fmt::format("admin: cannot load the TLS files {} and {}", options.tls->cert_file,
                              options.tls->key_file));
    }
    const size_t threads = options.threads;
    server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    server.set_payload_max_length(options.request_bytes_max);
    server.set_read_timeout(options.read_timeout_ms / 1000,
                            (options.read_timeout_ms % 1000) * 1000);
    server.set_write_timeout(5, 0);
    server.set_keep_alive_max_count(16);
    const auto handle = [&router](const httplib::Request& in, httplib::Response& out) {
      try {
        fill(router.dispatch(to_request(in)), out);
      } catch (...) {
        internal_error(out);
      }
    };
    // Every path goes to the router, which answers 404 and 405 itself.
    server.Get(".*", handle);
    server.Post(".*", handle);
    server.Put(".*", handle);
    server.Delete(".*", handle);
    server.Patch(".*", handle);
    server.set_exception_handler([](const httplib::Request&, httplib::Response& out,
                                    std::exception_ptr) { internal_error(out); });
    if (port == 0) {
      const int bound = server.bind_to_any_port(host);
      if (bound <= 0) return fail(fmt::format("admin: cannot bind {}", options.address.text));
      state->port = uint16_t(bound);
    } else {
      if (!server.bind_to_port(host, port)) {
        return fail(fmt::format("admin: cannot bind {}", options.address.text));
      }
      state->port = uint16_t(port);
    }
    state->thread = std::thread([s = state->server.get()] {
      try {
        s->listen_after_bind();
      } catch (...) {
        // The server stops; requests are refused from now on, which callers see.
      }
    });
    // stop() only reaches a server that is running: wait (bounded) until it is.
    for (int i = 0; i < 2000 && !state->server->is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!state->server->is_running()) {
      return fail(fmt::format("admin: the HTTP server on {} did not start", options.address.text));
    }
  } catch (const std::exception& e) {
    return fail(fmt::format("admin: {}", e.what()));
  } catch (...) {
    return fail("admin: the HTTP server failed to start");
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

void HttpServer::stop() {
  if (!state_ || !state_->server) return;
  try {
    state_->server->stop();
  } catch (...) {
  }
  if (state_->thread.joinable()) state_->thread.join();
  state_->server.reset();
}

}  // namespace gh::admin
