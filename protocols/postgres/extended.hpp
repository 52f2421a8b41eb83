// What an extended-protocol session runs, for its trail: prepared statements' texts (as the
// server accepted them), portals bound to them with their parameters, and the Bind summary the
// recording reads from a frame's first bytes. Must not do I/O or record anything itself.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocols/postgres/codec/messages.hpp"

namespace gh::pg {

// ---- Bind ------------------------------------------------------------------------------------

// One Bind parameter as far as the bytes given hold it.
struct BindParameter {
  int64_t size = 0;        // its full size on the wire; -1: NULL; kUnknownSize: past the bytes
  int16_t format = 0;      // 0 text, 1 binary (the 0 / 1 / n rule of Bind applied)
  std::string_view head;   // its first bytes, at most the window asked for
};
inline constexpr int64_t kUnknownSize = -2;

struct BindSummary {
  std::string_view portal;
  std::string_view statement;
  uint16_t parameter_count = 0;
  // In order, as many as `frame` holds the length words of (all of them for a whole frame).
  std::vector<BindParameter> parameters;
};

// Reads a Bind frame (type byte included) from `frame`, which may be only its first bytes, as
// far as they go: names and formats must be there (nullopt otherwise, or when the frame is
// malformed); each parameter's size and first `head_bytes_max` bytes while present. Never reads
// past `frame`; the views point into it.
[[nodiscard]] std::optional<BindSummary> summarize_bind(Bytes frame, size_t head_bytes_max);

// ---- the session's statements and portals ---------------------------------------------------

// A prepared statement's text as the trail shows it (already masked and cut).
struct PreparedText {
  std::string text;
  uint64_t full_bytes = 0;  // before the cut
};

// A portal: the statement it runs and its parameters, formatted for the trail.
struct Binding {
  std::string statement_name;
  std::shared_ptr<const PreparedText> text;  // null: a statement the session never saw parsed
  std::string values;                        // the recorded values, back to back
  std::vector<uint32_t> value_ends;          // where each recorded value ends in `values`
  std::string sizes;                         // "2,-1,100000": every parameter's full size
  std::string formats;                       // "0,1" when a value is binary, else empty
  uint64_t cycle = 0;
};

// Follows Parse, Bind, Close and the cycles that Sync and Query close, on both sides: a Parse
// names its text from ParseComplete on (a Parse the server refused never replaces the text it
// had), portals live until Close or the end of their transaction. Bounded: stored texts are cut
// by the caller, and past `text_bytes_max` in all a new text keeps only its size; past
// `portals_max` named portals a new one is not kept.
class ExtendedTracker {
 public:
  static constexpr uint64_t kTextBytesMaxDefault = 1u << 20;
  static constexpr size_t kPortalsMaxDefault = 256;
  // `cycles_sent`, `cycles_done`: the session's cycles so far (a tracker may start late).
  explicit ExtendedTracker(uint64_t cycles_sent = 0, uint64_t cycles_done = 0,
                           uint64_t text_bytes_max = kTextBytesMaxDefault,
                           size_t portals_max = kPortalsMaxDefault)
      : text_bytes_max_(text_bytes_max), portals_max_(portals_max), cycles_sent_(cycles_sent),
        cycles_done_(cycles_done) {}

  // ---- client side, in the order the client sends ----
  void on_parse(std::string_view name, std::string text, uint64_t full_bytes);
  // The binding of a Bind being sent: fill it, then commit_bind().
  Binding& start_bind(std::string_view portal, std::string_view statement);
  void commit_bind();
  // The portal an Execute runs; null when unknown.
  const Binding* portal(std::string_view name) const;
  void on_close(char kind, std::string_view name);
  // A Sync or a Query: the end of a cycle that a ReadyForQuery answers.
  void on_cycle_end() { ++cycles_sent_; }

  // An Execute sent, whose recorded parameters (`charged_bytes`) count against its result's
  // budget.
  void on_execute(uint64_t charged_bytes) { charges_.push_back(Charge{cycles_sent_, charged_bytes}); }

  // ---- upstream side, in the order the server answers ----
  void on_parse_complete();
  // A message of a result (DataRow, CommandComplete, EmptyQueryResponse, PortalSuspended): at
  // the first one of an Execute's result, that Execute's charged bytes, else 0.
  uint64_t begin_result();
  // CommandComplete, EmptyQueryResponse, PortalSuspended: the result ended.
  void end_result() { result_begun_ = false; }
  // An ErrorResponse: the server skips the rest of the cycle, so its Parses never take effect.
  void on_error();
  // `idle`: the transaction ended (status 'I'), and with it every portal of this cycle's past.
  void on_ready(bool idle);

  size_t statement_count() const { return statements_.size(); }
  size_t portal_count() const { return portals_.size() + (unnamed_.text || !unnamed_.sizes.empty()); }
  uint64_t cycle() const { return cycles_sent_; }

 private:
  struct Charge {
    uint64_t cycle;
    uint64_t bytes;
  };
  struct PendingParse {
    std::string name;
    std::shared_ptr<const PreparedText> text;
    uint64_t cycle;
  };
  std::shared_ptr<const PreparedText> lookup(std::string_view statement) const;
  void account(const PreparedText* text, int sign);

  uint64_t text_bytes_max_;
  size_t portals_max_;
  uint64_t cycles_sent_;  // cycles the client ended (Sync, Query)
  uint64_t cycles_done_;  // cycles the server ended (ReadyForQuery)
  uint64_t text_bytes_ = 0;
  std::unordered_map<std::string, std::shared_ptr<const PreparedText>> statements_;
  std::vector<PendingParse> pending_;  // sent, not yet answered, oldest first
  std::vector<Charge> charges_;        // Executes sent whose result has not begun, oldest first
  bool result_begun_ = false;
  Binding unnamed_;                    // the unnamed portal, reused
  std::vector<std::pair<std::string, Binding>> portals_;  // named portals
  Binding scratch_;                    // a named portal's Bind being filled
  std::string scratch_name_;
  bool scratch_named_ = false;
};

}  // namespace gh::pg
