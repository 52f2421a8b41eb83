// Approval holds: the review store and its decision rules (see review.hpp). No I/O.
#include "core/review.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <ctime>

#include "core/assert.hpp"

namespace gh::review {
namespace {

int64_t wall_clock_s() { return int64_t(std::time(nullptr)); }

std::string random_id() {
  unsigned char bytes[8];
  GH_ASSERT(RAND_bytes(bytes, sizeof bytes) == 1);
  std::string id = "r-";
  for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
  return id;
}

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

std::string_view state_name(State s) {
  switch (s) {
    case State::kPending: return "pending";
    case State::kApproved: return "approved";
    case State::kDenied: return "denied";
    case State::kExpired: return "expired";
    case State::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view refusal_name(Refusal r) {
  switch (r) {
    case Refusal::kNotFound: return "not_found";
    case Refusal::kNotPending: return "not_pending";
    case Refusal::kHashMismatch: return "statement_mismatch";
    case Refusal::kNotApprover: return "not_an_approver";
    case Refusal::kRequesterChain: return "requester_chain";
    case Refusal::kAlreadyApproved: return "already_approved";
    case Refusal::kNoReason: return "reason_required";
  }
  return "unknown";
}

std::string statement_sha256(std::string_view statement) {
  unsigned char digest[32];
  unsigned int length = 0;
  GH_ASSERT(EVP_Digest(statement.data(), statement.size(), digest, &length, EVP_sha256(),
                       nullptr) == 1);
  std::string hex;
  hex.reserve(64);
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

bool Ticket::settle(State to) const {
  State expected = State::kPending;
  return cell->state.compare_exchange_strong(expected, to, std::memory_order_acq_rel);
}

std::optional<Refused> approver_refusal(const Request& request, const identity::Identity& approver) {
  const bool in_group = std::any_of(approver.groups.begin(), approver.groups.end(),
                                    [&](const std::string& g) { return contains(request.approver_groups, g); });
  if (!in_group) {
    return Refused{Refusal::kNotApprover,
                   fmt::format("{} is in none of the approver groups of rule \"{}\" ({})",
                               approver.chain_string(), request.rule,
                               fmt::join(request.approver_groups, ", "))};
  }
  // Nobody acting in the requester's chain decides for it: not the requester, not an agent it
  // delegated to, and not anyone whose token such an agent carries.
  for (const std::string& member : approver.chain()) {
    if (contains(request.requester_chain, member)) {
      return Refused{Refusal::kRequesterChain,
                     fmt::format("{} is in the requester's chain ({}): it cannot decide its own "
                                 "statement",
                                 member, fmt::join(request.requester_chain, " \u2192 "))};
    }
  }
  return std::nullopt;
}

ReviewStore::ReviewStore(std::function<int64_t()> clock_s,
                         std::function<void(const Review&)> on_submit)
    : clock_s_(clock_s ? std::move(clock_s) : wall_clock_s), on_submit_(std::move(on_submit)) {}

Result<Ticket> ReviewStore::submit(Request request) {
  if (request.statement.size() > kStatementBytesMax) {
    return fail(fmt::format("the statement of {} bytes is larger than the {} bytes a review shows",
                            request.statement.size(), kStatementBytesMax));
  }
  Entry e;
  e.cell = std::make_shared<Cell>();
  e.review.sha256 = statement_sha256(request.statement);
  e.review.created_s = clock_s_();
  e.review.expires_s = e.review.created_s + request.timeout_s;
  e.review.request = std::move(request);
  Review shown;
  {
    std::lock_guard lock(mutex_);
    prune();
    size_t pending = 0;
    for (auto& [id, other] : entries_) pending += other.review.state == State::kPending;
    if (pending >= kPendingMax) {
      return fail(fmt::format("{} reviews are pending already", kPendingMax));
    }
    do {
      e.review.id = random_id();
    } while (entries_.contains(e.review.id));
    e.order = ++order_;
    shown = e.review;
    entries_.emplace(e.review.id, e);
  }
  if (on_submit_) on_submit_(shown);
  return Ticket{shown.id, shown.sha256, e.cell};
}

void ReviewStore::refresh(Entry& e) const {
  Review& r = e.review;
  if (r.state != State::kPending) return;
  State s = e.cell->state.load(std::memory_order_acquire);
  // A review past its time is refused even if its shard has not noticed yet.
  if (s == State::kPending && clock_s_() >= r.expires_s) {
    State expected = State::kPending;
    e.cell->state.compare_exchange_strong(expected, State::kExpired, std::memory_order_acq_rel);
    s = e.cell->state.load(std::memory_order_acquire);
  }
  if (s != State::kPending) {
    r.state = s;
    if (r.decided_s == 0) r.decided_s = clock_s_();
  }
}

void ReviewStore::prune() {
  std::vector<std::pair<uint64_t, std::string>> decided;
  for (auto& [id, e] : entries_) {
    refresh(e);
    if (e.review.state != State::kPending) decided.emplace_back(e.order, id);
  }
  if (decided.size() <= kDecidedKeptMax) return;
  std::sort(decided.begin(), decided.end());
  for (size_t i = 0; i + kDecidedKeptMax < decided.size(); ++i) entries_.erase(decided[i].second);
}

ReviewStore::Entry* ReviewStore::entry(std::string_view id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return nullptr;
  refresh(it->second);
  return &it->second;
}

std::expected<ReviewStore::Entry*, Refused> ReviewStore::decidable_entry(
    std::string_view id, const identity::Identity& approver) {
  Entry* e = entry(id);
  if (e == nullptr) return std::unexpected(Refused{Refusal::kNotFound, fmt::format("no review {}", id)});
  const Review& r = e->review;
  if (r.state != State::kPending) {
    return std::unexpected(Refused{Refusal::kNotPending,
                                   fmt::format("review {} is {}", id, state_name(r.state))});
  }
  if (auto refused = approver_refusal(r.request, approver)) return std::unexpected(*refused);
  return e;
}

std::vector<Review> ReviewStore::list() const {
  std::lock_guard lock(mutex_);
  std::vector<const Entry*> all;
  for (auto& [id, e] : entries_) {
    refresh(const_cast<Entry&>(e));
    all.push_back(&e);
  }
  std::sort(all.begin(), all.end(), [](const Entry* a, const Entry* b) { return a->order > b->order; });
  std::vector<Review> out;
  for (const Entry* e : all) out.push_back(e->review);
  return out;
}

std::optional<Review> ReviewStore::find(std::string_view id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  refresh(const_cast<Entry&>(it->second));
  return it->second.review;
}

std::expected<Review, Refused> ReviewStore::approve(std::string_view id,
                                                    const identity::Identity& approver,
                                                    std::string_view sha256) {
  std::lock_guard lock(mutex_);
  auto decidable = decidable_entry(id, approver);
  if (!decidable) return std::unexpected(decidable.error());
  Entry* e = *decidable;
  Review& r = e->review;
  if (sha256 != r.sha256) {
    return std::unexpected(Refused{
        Refusal::kHashMismatch,
        fmt::format("review {} holds the statement with SHA-256 {}, not {}: approve what it holds",
                    id, r.sha256, sha256.empty() ? "(none given)" : sha256)});
  }
  for (const Approval& a : r.approvals) {
    if (a.subject == approver.subject) {
      return std::unexpected(Refused{Refusal::kAlreadyApproved,
                                     fmt::format("{} already approved review {}", approver.subject, id)});
    }
  }
  r.approvals.push_back(Approval{approver.subject, approver.chain_string(), clock_s_()});
  if (r.approvals.size() >= r.request.approvals_min) {
    e->cell->approvers.clear();
    for (const Approval& a : r.approvals) e->cell->approvers.push_back(a.chain);
    State expected = State::kPending;
    if (!e->cell->state.compare_exchange_strong(expected, State::kApproved,
                                                std::memory_order_acq_rel)) {
      r.approvals.pop_back();
      refresh(*e);
      return std::unexpected(Refused{Refusal::kNotPending,
                                     fmt::format("review {} is {}", id, state_name(r.state))});
    }
    r.state = State::kApproved;
    r.decided_by = approver.chain_string();
    r.decided_s = clock_s_();
    epoch_.fetch_add(1, std::memory_order_acq_rel);
  }
  return r;
}

std::expected<Review, Refused> ReviewStore::deny(std::string_view id,
                                                 const identity::Identity& approver,
                                                 std::string_view reason) {
  std::lock_guard lock(mutex_);
  auto decidable = decidable_entry(id, approver);
  if (!decidable) return std::unexpected(decidable.error());
  Entry* e = *decidable;
  Review& r = e->review;
  if (reason.empty()) {
    return std::unexpected(Refused{Refusal::kNoReason, "a denial needs a reason"});
  }
  e->cell->denied_by = approver.chain_string();
  e->cell->deny_reason = std::string(reason);
  State expected = State::kPending;
  if (!e->cell->state.compare_exchange_strong(expected, State::kDenied, std::memory_order_acq_rel)) {
    refresh(*e);
    return std::unexpected(Refused{Refusal::kNotPending,
                                   fmt::format("review {} is {}", id, state_name(r.state))});
  }
  r.state = State::kDenied;
  r.decided_by = approver.chain_string();
  r.deny_reason = std::string(reason);
  r.decided_s = clock_s_();
  epoch_.fetch_add(1, std::memory_order_acq_rel);
  return r;
}

}  // namespace gh::review
