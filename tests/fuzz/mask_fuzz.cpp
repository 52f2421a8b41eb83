// libFuzzer target for the guardrails' parsers: SQL classification (libpg_query's tree walked by
// mask/sql_classifier.cpp), the built-in detectors' confirmation of candidate matches, and the
// replacement styles. Checks what callers rely on: no crash, findings only for parsed text, texts
// of one classification key classified alike, confirmed secrets inside their candidate,
// replacements of the same length.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mask/detectors.hpp"
#include "mask/replace.hpp"
#include "mask/sql_classifier.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const gh::mask::Classification c = gh::mask::classify_sql(text);
  if (!c.parsed && !c.findings.empty()) __builtin_trap();
  for (const gh::mask::Finding& finding : c.findings) {
    if (finding.statement >= c.statement_count) __builtin_trap();
  }
  // Texts sharing a classification key classify alike: the shard's cache hands one's
  // classification to the other.
  if (const auto key = gh::mask::classification_key(text); key && *key != text) {
    const gh::mask::Classification k = gh::mask::classify_sql(*key);
    if (k.parsed != c.parsed || k.statement_count != c.statement_count ||
        k.findings != c.findings || k.lexer_hazard != c.lexer_hazard)
      __builtin_trap();
  }
  (void)gh::mask::client_encoding_lexes_safely(text);

  // Every detector's confirmation over the input as a candidate match.
  for (const gh::mask::DetectorSpec& d : gh::mask::builtin_detectors()) {
    if (auto core = gh::mask::confirm(d.detector, text)) {
      if (core->from > core->to || core->to > size) __builtin_trap();
    }
  }
  gh::mask::Replacement styles[3];
  styles[0].style = gh::mask::Style::kMask;
  styles[1].style = gh::mask::Style::kKeepLast;
  styles[2].style = gh::mask::Style::kHash;
  styles[2].hash_key = "fuzz-key-0123456789abcdef";
  std::string out;
  for (const auto& r : styles) {
    out.assign(size, '\0');
    gh::mask::replace(r, text, out.data());
    // Replacements write ASCII only, and never a NUL where the input had none.
    for (size_t i = 0; i < size; ++i) {
      if (out[i] != text[i] && (static_cast<unsigned char>(out[i]) >= 0x80 || out[i] == '\0'))
        __builtin_trap();
    }
  }
  return 0;
}
