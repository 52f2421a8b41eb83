// Per-statement byte budget for the result values a session records (recording.
// statement_result_bytes_max): values up to the budget, beyond it only the full sizes.
// Pure bookkeeping, no I/O and no protocol knowledge; one per session, on its shard thread.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gh::rec {

class ResultBudget {
 public:
  explicit ResultBudget(uint64_t bytes_max) : bytes_max_(bytes_max) {}

  // Every result row of the statement, recorded or not, with its size on the wire.
  void count_row(uint64_t wire_bytes) {
    ++rows_;
    bytes_ += wire_bytes;
  }
  // A row whose values (`value_bytes` of them, as recorded) the session would record: true when
  // they fit what is left of the budget. Once a row did not fit, no later row of the statement
  // is recorded, so the recorded rows are always a prefix of the result.
  bool admit(uint64_t value_bytes) {
    if (!exhausted_ && recorded_bytes_ + value_bytes <= bytes_max_) {
      recorded_bytes_ += value_bytes;
      ++recorded_rows_;
      return true;
    }
    exhausted_ = true;
    ++rows_cut_;
    return false;
  }

  // Bytes recorded already (rows, and an Execute's parameters) count against the statement's
  // budget too: `bytes` of it are spent before the first row.
  void charge(uint64_t bytes) { recorded_bytes_ = std::min(bytes_max_, recorded_bytes_ + bytes); }
  // What a row may still take; 0 once a row was cut.
  uint64_t bytes_left() const { return exhausted_ ? 0 : bytes_max_ - recorded_bytes_; }

  struct Summary {
    uint64_t rows = 0;           // result rows sent to the client
    uint64_t bytes = 0;          // their size on the wire
    uint64_t recorded_rows = 0;  // rows whose values are in the trail
    uint64_t rows_cut = 0;       // rows that would have been recorded but passed the budget
  };
  // The statement ended: its sizes; the budget starts afresh for the next statement.
  Summary take() {
    const Summary s{rows_, bytes_, recorded_rows_, rows_cut_};
    *this = ResultBudget(bytes_max_);
    return s;
  }
  uint64_t bytes_max() const { return bytes_max_; }

 private:
  uint64_t bytes_max_;
  uint64_t rows_ = 0;
  uint64_t bytes_ = 0;
  uint64_t recorded_bytes_ = 0;
  uint64_t recorded_rows_ = 0;
  uint64_t rows_cut_ = 0;
  bool exhausted_ = false;
};

}  // namespace gh::rec
