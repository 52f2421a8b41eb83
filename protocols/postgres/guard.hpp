// A session's guardrails on the PostgreSQL wire: judging statements against the connection's SQL
// rules, and masking DataRow, CopyData and error values. A refused statement never reaches the
// server: a stand-in that fails to parse takes its place, so that the server itself aborts the
// transaction and skips to Sync as for any error, keeping every answer in order; its syntax
// error is swapped for the refusal on the way back. Must not do I/O: the session moves bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mask/policy.hpp"
#include "protocols/postgres/codec/messages.hpp"

namespace gh::pg {

// SQLSTATE of every refusal: insufficient_privilege (PostgreSQL Error Codes appendix).
inline constexpr std::string_view kInsufficientPrivilege = "42501";

class Guard {
 public:
  // At login: the connection's compiled policy (null: no guardrails) and the shard's scratch.
  // `classifications`: the shard's cache (may be null).
  void start(const mask::ConnectionPolicy* policy, mask::Scratch* scratch,
             mask::ClassificationCache* classifications = nullptr) {
    policy_ = policy;
    scratch_ = scratch;
    classifications_ = classifications;
  }
  bool sql_active() const { return policy_ != nullptr && !policy_->sql.empty(); }
  bool mask_active() const { return policy_ != nullptr && !policy_->mask.empty(); }

  // ---- client side ----
  mask::SqlVerdict judge(std::string_view sql);
  mask::SqlVerdict judge_function_call() const { return policy_->sql.judge_function_call(); }
  // The ErrorResponse a refusal sends (severity ERROR, 42501, naming the rule).
  static std::string refusal_message(const mask::SqlVerdict& v);
  static std::string refusal_error(const mask::SqlVerdict& v);
  // The same ErrorResponse with a message and detail of the caller's (approval holds).
  static std::string refusal_error(std::string_view message, std::string_view detail);

  // The message sent upstream in place of a refused one: a Query, or for a refused Parse a Parse
  // of the same statement name, whose text fails to parse. `ready` is the number of the
  // ReadyForQuery that closes its cycle (counted from the first after login, from 1).
  std::string stand_in(bool parse, std::string_view statement_name, uint64_t ready,
                       std::string error);

  // ---- upstream side ----
  // An upstream ErrorResponse: when it is a stand-in's syntax error, the refusal to send instead
  // (the original is then dropped); otherwise empty.
  std::string take_refusal(const ErrorResponse& error);
  // Called for each ReadyForQuery: stand-ins of the cycle it ends that the server skipped (an
  // earlier error in the same cycle) are forgotten.
  void on_ready();
  uint64_t ready_count() const { return ready_count_; }
  // standard_conforming_strings and client_encoding as the server reports them: when they would
  // make the server read text differently from the parser, every statement is refused.
  void on_parameter_status(std::string_view name, std::string_view value);

  // Masking. Column rules follow the last RowDescription.
  void on_row_description(const RowDescription& rd);
  // A DataRow frame (type byte included): true when a value was masked, with the rewritten
  // frame in `out` (same length: every style keeps the byte length) and the rules that fired.
  bool mask_row(Bytes frame, const DataRow& row, std::string& out);
  // A CopyData frame from the upstream (COPY TO STDOUT): its bytes scanned like a value.
  bool mask_copy_data(Bytes frame, const CopyData& data, std::string& out);
  // ErrorResponse / NoticeResponse: every field value but severity and SQLSTATE (a constraint
  // violation's DETAIL repeats the offending row).
  bool mask_fields(Bytes frame, Bytes fields, std::string& out);
  // Text for the trail (statements, error fields): masked copy, or the text itself.
  std::string_view mask_text(std::string_view text, std::string& storage);
  const std::vector<std::string>& fired_rules() const { return fired_; }

 private:
  struct Refusal {
    uint64_t ready;
    std::string error;
  };
  // The stand-in text: not SQL, so that the server answers with a syntax error naming it.
  static constexpr std::string_view kStandIn = "gatehouse_refused_statement";
  struct Column {
    int rule = -1;     // a column rule, or -1
    bool scan = true;  // text format, or a text-like type in binary
    bool binary = false;
  };

  // Masks one value inside `frame` into `out` (a copy of the frame made on the first change).
  void mask_in_frame(Bytes frame, std::string_view value, std::string& out, bool& changed);

  const mask::ConnectionPolicy* policy_ = nullptr;
  mask::Scratch* scratch_ = nullptr;
  mask::ClassificationCache* classifications_ = nullptr;
  // Oldest first; a few at most. A vector: an empty deque already holds a 512-byte node, which
  // every idle connection would carry.
  std::vector<Refusal> refusals_;
  uint64_t ready_count_ = 0;
  std::string lexer_hazard_;  // from ParameterStatus
  std::vector<Column> columns_;
  std::vector<mask::Match> matches_;
  std::string value_;
  std::vector<std::string> fired_;
};

}  // namespace gh::pg
