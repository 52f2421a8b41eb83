// A small blocking HTTP(S) client for the command line's calls to the admin API (token exchange,
// revoke). The only file that sees the client library; its exceptions stop here.
#pragma once

#include <string>

#include "core/admin/http.hpp"
#include "core/error.hpp"

namespace gh::admin {

struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

struct HttpCall {
  std::string base_url;  // "http://127.0.0.1:7443" or "https://gw.example:7443"
  std::string method = "POST";
  std::string path;
  std::string content_type;
  std::string body;
  Params headers;
  std::string ca_file;  // HTTPS: trust these CAs (default: the system's)
  int timeout_s = 30;
};

// A transport failure is an error; any HTTP answer (4xx included) is a reply.
Result<HttpReply> http_call(const HttpCall& call);

}  // namespace gh::admin
