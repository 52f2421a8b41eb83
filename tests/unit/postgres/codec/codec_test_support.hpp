// Shared helpers for the PostgreSQL codec unit tests: byte views, decoders past startup, splitting.
// Must not depend on sockets or on anything outside the codec and GoogleTest.
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>

#include "protocols/postgres/codec/decoder.hpp"
#include "protocols/postgres/codec/encoder.hpp"

namespace gh::pg {

// Readable GoogleTest output for the decoder's enums (found by argument-dependent lookup).
inline void PrintTo(DecodeError e, std::ostream* os) { *os << describe(e); }
inline void PrintTo(Status s, std::ostream* os) {
  *os << (s == Status::kMessage ? "kMessage" : s == Status::kNeedMore ? "kNeedMore" : "kError");
}

}  // namespace gh::pg

namespace gh::pg::test {

inline Bytes bytes_of(std::string_view s) { return wire::as_bytes(s); }

// A frontend decoder that has already seen a StartupMessage, so it decodes typed messages.
inline FrontendDecoder typed_frontend_decoder(DecoderLimits limits = {}) {
  FrontendDecoder d(limits);
  std::string startup;
  const StartupParameter params[] = {{"user", "alice"}};
  encode_startup_message(startup, params);
  const FrontendDecoded r = d.next(bytes_of(startup));
  EXPECT_EQ(r.status, Status::kMessage);
  EXPECT_FALSE(d.in_startup_phase());
  return d;
}

// Feeds every strict prefix of `wire` to `next` (each must be kNeedMore and consume nothing,
// reporting the frame size once the header is complete), then the whole (one kMessage that
// consumes everything). `header_bytes` is 5 for typed messages, 4 for startup-phase packets.
template <class Next>
void expect_split_everywhere(std::string_view wire, size_t header_bytes, Next&& next) {
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    const auto r = next(bytes_of(wire.substr(0, cut)));
    ASSERT_EQ(r.status, Status::kNeedMore) << "cut at " << cut;
    EXPECT_EQ(r.consumed, 0u) << "cut at " << cut;
    EXPECT_EQ(r.error, DecodeError::kNone) << "cut at " << cut;
    EXPECT_EQ(r.frame_bytes, cut >= header_bytes ? wire.size() : 0u) << "cut at " << cut;
  }
  const auto r = next(bytes_of(wire));
  ASSERT_EQ(r.status, Status::kMessage) << describe(r.error);
  EXPECT_EQ(r.consumed, wire.size());
  EXPECT_EQ(r.frame_bytes, wire.size());
}

}  // namespace gh::pg::test
