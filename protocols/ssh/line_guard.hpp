// Best-effort reconstruction of the line a caller types into a terminal, from the bytes it sends
// (the host's line editor is never seen), so that a submitted line a deny rule names can be held
// back. Sans-I/O: bytes in, bytes for the host and refusals out.
//
// Followed: printable bytes (UTF-8 included), backspace and DEL (one character), Ctrl-U (the
// line), Ctrl-W (a word), Ctrl-C (the line), Ctrl-D and Ctrl-L (no change), and bracketed paste
// (ESC[200~ ... ESC[201~: what is pasted is part of the line, its line breaks included, as
// readline inserts it); CR or LF submits. A submitted line is refused when any of its lines is.
// Anything else (other escape sequences such as arrow keys, tab completion, history search,
// other control keys) means the line on the host can no longer be known: it is passed through
// unjudged until the next submission, as is a line longer than the reconstruction keeps.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gh::ssh {

class LineGuard {
 public:
  // Ctrl-U: what goes to the host instead of a refused line's CR or LF (the line discipline's
  // and readline's "kill the line"), so the typed text is dropped there, not run.
  static constexpr char kKillLine = 0x15;

  struct Refusal {
    std::string line;
    std::string rule;
  };
  // The rule that denies a line, if any.
  using Judge = std::function<std::optional<std::string>(std::string_view line)>;

  explicit LineGuard(size_t line_bytes_max = 4096) : line_bytes_max_(line_bytes_max) {}

  // Appends to `out` what the host gets for `input`: the same bytes, except that the submission
  // of a line `judge` refuses becomes kKillLine; each refused line is appended to `refused`.
  // Empty lines are not judged. Input may be split anywhere between calls.
  void filter(std::string_view input, const Judge& judge, std::string& out,
              std::vector<Refusal>& refused);

  // The line typed so far, or nullopt when it can no longer be followed.
  std::optional<std::string_view> line() const {
    if (lost_) return std::nullopt;
    return std::string_view(line_);
  }

 private:
  void take(char c);
  void append(std::string_view text);
  void append(char c) { append(std::string_view(&c, 1)); }
  void escape(char c);
  void lose();
  void erase_character();
  void erase_word();
  std::optional<std::string> judge_line(const Judge& judge) const;

  size_t line_bytes_max_;
  std::string line_;
  std::string escape_;  // an escape sequence under way, from its ESC
  bool lost_ = false;
  bool pasting_ = false;
};

}  // namespace gh::ssh
