// A recorded terminal session as an asciicast v2 file (a header line, then one [time, code, data]
// line per event: https://docs.asciinema.org/manual/asciicast/v2/), playable by asciinema.
// A pure function over loaded events: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "core/error.hpp"
#include "record/event.hpp"

namespace gh::rec {

// The terminal of `channel` (decimal, as recorded), or by default of the session's first channel
// that asked for a pty or a shell: the host's output ("o", both streams, as the caller got it),
// the caller's input ("i"), size changes ("r") and the gateway's messages on it ("o", as the
// caller saw them). Bytes that are not UTF-8 become U+FFFD; a sequence split between two
// recorded chunks is joined. Fails when the session has no such channel.
[[nodiscard]] Result<std::string> format_asciicast(std::span<const StoredEvent> events,
                                                   std::optional<std::string> channel = {});

}  // namespace gh::rec
