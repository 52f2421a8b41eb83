// libFuzzer target for the admin API's request syntax: form bodies (RFC 6749 Appendix B),
// bearer credentials and the one-value-per-parameter rule, with invariants asserted. Only the
// sans-I/O core/admin/http.cpp is compiled in; no HTTP library, no sockets.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/admin/http.hpp"
#include "core/assert.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (auto params = gh::admin::parse_form(input)) {
    // What parses encodes to a form that parses back to the same pairs.
    const std::string encoded = gh::admin::form_encode(*params);
    auto again = gh::admin::parse_form(encoded);
    GH_ASSERT(again.has_value());
    GH_ASSERT(*again == *params);
    for (const auto& [name, value] : *params) {
      auto one = gh::admin::single(*params, name);
      // A repeated name is an error, never a silently chosen value.
      GH_ASSERT(one.has_value() == (gh::admin::all(*params, name).size() == 1));
      if (one) GH_ASSERT(one->has_value() && **one == value);
    }
  }

  gh::admin::Request request;
  request.headers.emplace_back("Authorization", std::string(input));
  if (auto token = gh::admin::bearer_token(request)) {
    // The token is a part of the header value, never bytes from elsewhere.
    GH_ASSERT(token->empty() || (token->data() >= request.headers[0].second.data() &&
                                 token->data() + token->size() <=
                                     request.headers[0].second.data() + request.headers[0].second.size()));
  }
  return 0;
}
