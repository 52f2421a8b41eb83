// cpp-httplib client adapter for the command line. Nothing thrown leaves this file.
#include "core/admin/http_client.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <exception>

namespace gh::admin {

Result<HttpReply> http_call(const HttpCall& call) {
  if (!call.base_url.starts_with("http://") && !call.base_url.starts_with("https://")) {
    return fail(fmt::format("admin URL '{}' is not http:// or https://", call.base_url));
  }
  try {
    httplib::Client client(call.base_url);
    if (!client.is_valid()) return fail(fmt::format("admin URL '{}' is not usable", call.base_url));
    client.set_connection_timeout(call.timeout_s, 0);
    client.set_read_timeout(call.timeout_s, 0);
    client.set_write_timeout(call.timeout_s, 0);
    if (call.base_url.starts_with("https://")) {
      client.enable_server_certificate_verification(true);
      if (!call.ca_file.empty()) client.set_ca_cert_path(call.ca_file.c_str());
    }
    httplib::Headers headers;
    for (const auto& [name, value] : call.headers) headers.emplace(name, value);
    httplib::Result result =
        call.method == "GET"
            ? client.Get(call.path.c_str(), headers)
            : client.Post(call.path.c_str(), headers, call.body, call.content_type.c_str());
    if (!result) {
      return fail(
          fmt::format("{}{}: {}", call.base_url, call.path, httplib::to_string(result.error())));
    }
    HttpReply reply;
    reply.status = result->status;
    reply.content_type = result->get_header_value("Content-Type");
    reply.body = result->body;
    return reply;
  } catch (const std::exception& e) {
    return fail(fmt::format("{}{}: {}", call.base_url, call.path, e.what()));
  } catch (...) {
    return fail(fmt::format("{}{}: the HTTP client failed", call.base_url, call.path));
  }
}

}  // namespace gh::admin
