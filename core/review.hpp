// Approval holds: the reviews of held statements and who may decide them. Shared by the shards
// (which submit a review and read its decision) and the admin API's threads (which decide).
// Must not know any wire protocol, do I/O, or depend on the admin API's HTTP layer.
//
// Threads: the store's mutex guards the reviews; it is held only for in-memory work, never
// across I/O. A shard takes it once per held statement (submit) and never again: it reads the
// decision from an atomic cell it owns a reference to, on its tick, and settles a time-out or
// a vanished client with a compare-and-swap on that cell.
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/identity/identity.hpp"

namespace gh::review {

enum class State : uint8_t { kPending, kApproved, kDenied, kExpired, kCancelled };
std::string_view state_name(State s);  // "pending", "approved", ...

// The one mutable thing a shard and the admin side share per review: pending until exactly one
// side moves it (compare-and-swap), then final.
struct Cell {
  std::atomic<State> state{State::kPending};
  // Written by the store before it moves `state` to kApproved or kDenied (release); the shard
  // reads them only after it saw that state (acquire). Untouched by the shard.
  std::vector<std::string> approvers;  // chains of the approvers
  std::string denied_by;
  std::string deny_reason;
};

// The lower-case hex SHA-256 of the statement bytes: what an approval is bound to.
std::string statement_sha256(std::string_view statement);

// What a shard asks for when it holds a statement.
struct Request {
  std::string connection;
  std::string rule;
  std::string reason;     // what matched (the rule's verdict)
  std::string statement;  // the exact bytes held (Query string or Parse text)
  std::string kind;       // "query" | "parse"
  std::vector<std::string> requester_chain;  // subject, then actors (the session's token)
  std::vector<std::string> approver_groups;
  uint32_t approvals_min = 1;
  uint32_t timeout_s = 900;
  std::string session_id;  // hex, as in the trail
  std::string client_address;
};

struct Approval {
  std::string subject;  // the approver's token subject: approvals count distinct subjects
  std::string chain;    // "bob → review-bot"
  int64_t at_s = 0;
};

// A review as the admin API shows it (a copy, taken under the store's mutex).
struct Review {
  std::string id;
  Request request;
  std::string sha256;
  int64_t created_s = 0;
  int64_t expires_s = 0;
  State state = State::kPending;
  std::vector<Approval> approvals;
  std::string decided_by;  // chain of the decider (deny) or of the last approver
  std::string deny_reason;
  int64_t decided_s = 0;
};

// The shard's handle on its review.
struct Ticket {
  std::string id;
  std::string sha256;
  std::shared_ptr<Cell> cell;
  State state() const { return cell->state.load(std::memory_order_acquire); }
  // Moves a pending review to `to` (kExpired, kCancelled): false when it was decided first.
  bool settle(State to) const;
};

// Why a decision was refused; each maps to one HTTP status in the API.
enum class Refusal : uint8_t {
  kNotFound,         // no such review (or not one the caller may see)
  kNotPending,       // already decided, expired or cancelled
  kHashMismatch,     // the approval names another statement than the one held
  kNotApprover,      // the caller is in none of the rule's approver groups
  kRequesterChain,   // the caller (or an actor of its chain) is in the requester's chain
  kAlreadyApproved,  // this subject already approved; approvals count distinct subjects
  kNoReason,         // a denial needs a reason
};
std::string_view refusal_name(Refusal r);

struct Refused {
  Refusal why;
  std::string message;
};

// Whether `approver` may decide a review of `request`: in an approver group, and no member of
// its chain in the requester's chain (the requester, and every agent acting for it, are out).
std::optional<Refused> approver_refusal(const Request& request, const identity::Identity& approver);

class ReviewStore {
 public:
  // Reviews kept after their decision (for `review list`), and pending reviews at most.
  static constexpr size_t kDecidedKeptMax = 256;
  static constexpr size_t kPendingMax = 1024;
  // Held statements above this are refused rather than reviewed: an approver has to read it,
  // and listings copy it under the mutex.
  static constexpr size_t kStatementBytesMax = 1u << 20;

  // `clock_s`: unix seconds. `on_submit` (may be empty) is called after each new review, outside
  // the mutex, on the submitting thread: it must not block (the webhook queues).
  explicit ReviewStore(std::function<int64_t()> clock_s = {},
                       std::function<void(const Review&)> on_submit = {});

  // Shard side. Fails when kPendingMax reviews are pending, or the statement is too large.
  Result<Ticket> submit(Request request);

  // Admin side. Snapshots, newest first; pending and decided ones.
  std::vector<Review> list() const;
  std::optional<Review> find(std::string_view id) const;
  // An approval bound to `sha256` (what the approver saw). Returns the review after it; its
  // state is kApproved once approvals_min distinct subjects approved.
  std::expected<Review, Refused> approve(std::string_view id, const identity::Identity& approver,
                                         std::string_view sha256);
  std::expected<Review, Refused> deny(std::string_view id, const identity::Identity& approver,
                                      std::string_view reason);

  // Moves whenever a review is decided: shards compare it on their tick.
  const std::atomic<uint64_t>& epoch() const { return epoch_; }

 private:
  struct Entry {
    Review review;
    std::shared_ptr<Cell> cell;
    uint64_t order = 0;  // submission order, for newest-first listings
  };
  // The review's state as its cell says (a shard may have settled it) and the clock (expired).
  void refresh(Entry& e) const;
  void prune();  // under mutex_
  Entry* entry(std::string_view id);
  // The pending review `approver` may decide, or why not. Under mutex_.
  std::expected<Entry*, Refused> decidable_entry(std::string_view id,
                                                 const identity::Identity& approver);

  std::function<int64_t()> clock_s_;
  std::function<void(const Review&)> on_submit_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry, std::less<>> entries_;
  uint64_t order_ = 0;
  std::atomic<uint64_t> epoch_{0};
};

}  // namespace gh::review
