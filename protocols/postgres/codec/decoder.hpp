// Sans-I/O PostgreSQL protocol 3.0 decoders: byte spans in, one typed message (views) out per call.
// Must not depend on I/O, sessions, policy or allocation; never reads past the input it is given.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocols/postgres/codec/messages.hpp"

namespace gh::pg {

// kMessage: a complete, valid message (or header) was decoded. kNeedMore: the input ends inside
// the next frame; nothing was consumed, call again with more bytes. kError: the peer broke the
// protocol; nothing was consumed and the connection cannot be resynchronized.
enum class Status : uint8_t { kMessage, kNeedMore, kError };

enum class DecodeError : uint8_t {
  kNone,
  kBadLength,           // length field below the minimum for the message, or wrong for a fixed size
  kTooLarge,            // length field above the limit for that message type
  kMalformed,           // body does not match the message format
  kUnknownType,         // type byte not defined for this direction
  kUnsupportedProtocol  // startup packet with a protocol version other than 3.x
};

// Short human text ("message length exceeds limit"), static storage.
const char* describe(DecodeError error);

// A typed message header. length is as on the wire: it counts itself (4 bytes) but not the type.
struct FrameHeader {
  char type = 0;
  uint32_t length = 0;
};

struct HeaderDecoded {
  Status status = Status::kNeedMore;
  FrameHeader header;  // filled whenever 5 bytes were available, even on kError
  DecodeError error = DecodeError::kNone;
};

// Reads the 5-byte header of a typed message (Message Formats). kNeedMore with fewer than 5 bytes.
// kError when the type is unknown for the direction (kUnknownType), when the length is below 4 or
// below the message's minimum or differs from a fixed-size message's size (kBadLength), or when it
// exceeds that message type's limit (kTooLarge). Looks at the first 5 bytes only.
[[nodiscard]] HeaderDecoded decode_frontend_header(Bytes in, const DecoderLimits& limits);
[[nodiscard]] HeaderDecoded decode_backend_header(Bytes in, const DecoderLimits& limits);

// consumed: bytes of `in` that the message occupied (kMessage only; 0 otherwise).
// frame_bytes: total size of the current frame once its header is known and valid, type byte
// included, so that a caller can decide to stream a large frame; 0 while the header is incomplete
// or when the header itself was refused.
// message: meaningful only when status == kMessage (otherwise the variant's first alternative,
// Flush or NoData, which a caller must not act on).
// Lifetime: the views inside `message` point into `in` (see messages.hpp).
struct FrontendDecoded {
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  size_t frame_bytes = 0;
  FrontendMessage message;
  DecodeError error = DecodeError::kNone;
};
struct BackendDecoded {
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  size_t frame_bytes = 0;
  BackendMessage message;
  DecodeError error = DecodeError::kNone;
};

// Decodes the client side of a connection (Message Flow, Start-up). At most one message per call;
// never reads past `in`, never allocates. Starts in the startup phase, where packets carry no type
// byte: StartupMessage, SSLRequest, GSSENCRequest, CancelRequest. SSLRequest and GSSENCRequest keep
// it there (the next packet, after the encryption handshake, is another startup packet); a
// StartupMessage switches it to typed messages. Protocol versions other than 3.x are refused with
// kUnsupportedProtocol; 3.x with x > 0 decodes as a StartupMessage, and answering with
// NegotiateProtocolVersion is the session's business.
class FrontendDecoder {
 public:
  explicit FrontendDecoder(DecoderLimits limits = {});

  [[nodiscard]] FrontendDecoded next(Bytes in);
  [[nodiscard]] bool in_startup_phase() const { return startup_phase_; }
  [[nodiscard]] const DecoderLimits& limits() const { return limits_; }

 private:
  FrontendDecoded next_startup(Bytes in);

  DecoderLimits limits_;
  bool startup_phase_ = true;
};

// Decodes the server side of a connection; every server message is typed. At most one message per
// call; never reads past `in`, never allocates.
class BackendDecoder {
 public:
  explicit BackendDecoder(DecoderLimits limits = {});

  [[nodiscard]] BackendDecoded next(Bytes in);
  [[nodiscard]] const DecoderLimits& limits() const { return limits_; }

 private:
  DecoderLimits limits_;
};

// Decodes the typed frame at the start of `frame` (the 5-byte header included), for a session that
// assembles frames straddling receive buffers. The header is checked again; bytes after the frame
// are left alone (consumed tells where the frame ended); a short input is kNeedMore.
[[nodiscard]] FrontendDecoded decode_frontend_frame(Bytes frame, const DecoderLimits& limits);
[[nodiscard]] BackendDecoded decode_backend_frame(Bytes frame, const DecoderLimits& limits);

// The server's one-byte answer to SSLRequest ('S' or 'N') or GSSENCRequest ('G' or 'N')
// (Message Flow, SSL Session Encryption). answer 'E' means the server sent an ErrorResponse
// instead; then consumed is 0 and the caller decodes it with a BackendDecoder. After 'S' or 'G'
// the caller must check that no further bytes came in the same read: they would have been sent
// before encryption started and must not be trusted (CVE-2021-23222).
struct EncryptionAnswer {
  Status status = Status::kNeedMore;
  size_t consumed = 0;
  char answer = 0;
  DecodeError error = DecodeError::kNone;
};
[[nodiscard]] EncryptionAnswer decode_encryption_answer(Bytes in);

}  // namespace gh::pg
