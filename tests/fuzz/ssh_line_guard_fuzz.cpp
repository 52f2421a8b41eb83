// libFuzzer target for the shell guardrail's line reconstruction (protocols/ssh/line_guard.cpp,
// compiled in alone): the first byte chooses a split point, the rest is what a caller types.
// Invariants: the host gets one byte per byte typed, only a submission (CR or LF) ever changes,
// into Ctrl-U, once per refused line; a split never changes the outcome; the line kept stays
// within its bound.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/assert.hpp"
#include "protocols/ssh/line_guard.hpp"

namespace {

constexpr size_t kLineMax = 64;

struct Outcome {
  std::string out;
  std::vector<std::string> refused;
};

Outcome run(std::string_view first, std::string_view second) {
  gh::ssh::LineGuard guard(kLineMax);
  const gh::ssh::LineGuard::Judge judge = [](std::string_view line) -> std::optional<std::string> {
    GH_ASSERT(!line.empty() && line.size() <= kLineMax);
    GH_ASSERT(line.find('\n') == std::string_view::npos);
    if (line.find("rm") != std::string_view::npos) return std::string("no-rm");
    return std::nullopt;
  };
  Outcome o;
  std::vector<gh::ssh::LineGuard::Refusal> refused;
  guard.filter(first, judge, o.out, refused);
  if (auto line = guard.line()) GH_ASSERT(line->size() <= kLineMax);
  guard.filter(second, judge, o.out, refused);
  for (auto& r : refused) o.refused.push_back(std::move(r.line));
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t cut = input.empty() ? 0 : data[0] % (input.size() + 1);

  const Outcome whole = run(input, {});
  const Outcome split = run(input.substr(0, cut), input.substr(cut));
  GH_ASSERT(whole.out == split.out);
  GH_ASSERT(whole.refused == split.refused);

  GH_ASSERT(whole.out.size() == input.size());
  size_t kills = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    if (whole.out[i] == input[i]) continue;
    GH_ASSERT(whole.out[i] == gh::ssh::LineGuard::kKillLine);
    GH_ASSERT(input[i] == '\r' || input[i] == '\n');
    ++kills;
  }
  GH_ASSERT(kills == whole.refused.size());
  return 0;
}
