// The admin API's review routes: approval holds listed, shown, approved and denied by
// authenticated approvers (core/review.hpp decides who may). Sans-I/O: must not depend on the HTTP
// library or on any protocol.
//
//   GET  /admin/reviews               the reviews the caller may decide (admins: all), newest first
//   GET  /admin/reviews/{id}          one review, with its statement and the statement's SHA-256
//   POST /admin/reviews/{id}/approve  {"sha256": "<hash of the statement the approver saw>"}
//   POST /admin/reviews/{id}/deny     {"reason": "..."}
#pragma once

#include <nlohmann/json.hpp>

#include "core/admin/api.hpp"
#include "core/review.hpp"

namespace gh::admin {

// Adds the routes to `api`'s router (before the server starts); `store` must outlive the API.
Result<void> add_review_routes(AdminApi& api, review::ReviewStore& store);

// A review as the API shows it.
nlohmann::json review_json(const review::Review& r);

}  // namespace gh::admin
