// Deterministic random and mutated inputs: the decoders never crash, never over-consume, and
// either make progress or stop with kNeedMore / kError. Must not depend on sockets; bounded loops.
#include <cstdint>
#include <string>
#include <vector>

#include "codec_test_support.hpp"

namespace gh::pg::test {
namespace {

// splitmix64: tiny, deterministic, good enough to scatter bytes.
struct Prng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

// Touch every view a message exposes, so that reading them is exercised too.
size_t touch(const FrontendMessage& m) {
  size_t n = 0;
  if (const auto* s = std::get_if<StartupMessage>(&m)) {
    s->for_each_parameter(
        [&](std::string_view a, std::string_view b) { n += a.size() + b.size(); });
  } else if (const auto* b = std::get_if<Bind>(&m)) {
    for (const ColumnValue& v : b->parameter_range()) n += v ? v->size() : 1;
    for (uint16_t i = 0; i < b->parameter_count; ++i)
      n += static_cast<size_t>(b->parameter_format(i));
  } else if (const auto* p = std::get_if<PasswordMessage>(&m)) {
    if (auto pw = parse_password(p->body)) n += pw->size();
    if (auto sasl = parse_sasl_initial_response(p->body)) n += sasl->mechanism.size();
  } else if (const auto* q = std::get_if<Parse>(&m)) {
    for (int32_t t : q->parameter_type_range()) n += static_cast<size_t>(t != 0);
  }
  return n;
}

size_t touch(const BackendMessage& m) {
  size_t n = 0;
  if (const auto* t = std::get_if<RowDescription>(&m)) {
    for (const FieldDescription& f : t->field_range()) n += f.name.size();
  } else if (const auto* d = std::get_if<DataRow>(&m)) {
    for (const ColumnValue& v : d->value_range()) n += v ? v->size() : 1;
  } else if (const auto* e = std::get_if<ErrorResponse>(&m)) {
    n += e->field('M').value_or("").size();
    for (const ErrorField& f : e->field_range()) n += f.value.size();
  } else if (const auto* a = std::get_if<Authentication>(&m)) {
    for (std::string_view s : a->sasl_mechanisms()) n += s.size();
  } else if (const auto* v = std::get_if<NegotiateProtocolVersion>(&m)) {
    for (std::string_view s : v->option_range()) n += s.size();
  }
  return n;
}

// Runs a decoder over `in` until it stops; checks the per-call invariants.
template <class Decoder>
size_t drain(Decoder& d, Bytes in) {
  size_t messages = 0;
  size_t touched = 0;
  while (true) {
    const auto r = d.next(in);
    EXPECT_LE(r.consumed, in.size());
    if (r.status != Status::kMessage) {
      EXPECT_EQ(r.consumed, 0u);
      if (r.status == Status::kNeedMore) {
        EXPECT_EQ(r.error, DecodeError::kNone);
      } else {
        EXPECT_NE(r.error, DecodeError::kNone);
      }
      break;
    }
    EXPECT_GT(r.consumed, 0u);
    if (r.consumed == 0 || r.consumed > in.size()) break;
    touched += touch(r.message);
    in = in.subspan(r.consumed);
    ++messages;
  }
  (void)touched;
  return messages;
}

void run_all_decoders(Bytes in) {
  FrontendDecoder startup;
  drain(startup, in);
  FrontendDecoder typed = typed_frontend_decoder();
  drain(typed, in);
  BackendDecoder backend;
  drain(backend, in);
  const FrontendDecoded f = decode_frontend_frame(in, DecoderLimits{});
  EXPECT_LE(f.consumed, in.size());
  const BackendDecoded b = decode_backend_frame(in, DecoderLimits{});
  EXPECT_LE(b.consumed, in.size());
}

TEST(RandomBytes, NeverCrashAndAlwaysBounded) {
  Prng rng{0x6761746568ull};
  // Type bytes that exist in some direction, to get past the header check more often than chance.
  static constexpr char kTypes[] = "QPBEDCSHXdcfpFRKZTNAGWI123nstvV";
  std::string buf;
  for (int iteration = 0; iteration < 20000; ++iteration) {
    buf.clear();
    const uint32_t len = rng.below(96);
    for (uint32_t i = 0; i < len; ++i) buf.push_back(static_cast<char>(rng.below(256)));
    if (len >= 5 && rng.below(2) == 0) {
      // A plausible header: a known type and a length within the buffer or just past it.
      buf[0] = kTypes[rng.below(sizeof(kTypes) - 1)];
      const uint32_t length = 4 + rng.below(len);
      buf[1] = 0;
      buf[2] = 0;
      buf[3] = static_cast<char>(length >> 8);
      buf[4] = static_cast<char>(length);
    }
    run_all_decoders(bytes_of(buf));
  }
}

TEST(RandomBytes, MutatedValidStreams) {
  // A valid stream of each direction, with a few bytes changed at random.
  std::string client;
  const StartupParameter params[] = {{"user", "u"}, {"database", "d"}};
  encode_startup_message(client, params);
  encode_query(client, "SELECT 1");
  encode_parse(client, "s", "SELECT $1", std::vector<int32_t>{23});
  const ColumnValue values[] = {std::string_view("1"), std::nullopt};
  encode_bind(client, "", "s", values);
  encode_describe(client, 'P', "");
  encode_execute(client, "", 0);
  encode_sync(client);
  encode_password_message(client, "secret");

  std::string server;
  encode_authentication_sasl(server, std::vector<std::string_view>{"SCRAM-SHA-256"});
  encode_parameter_status(server, "a", "b");
  const FieldDescription fields[] = {{"a", 1, 2, 3, 4, 5, 0}, {"b", 1, 2, 3, 4, 5, 1}};
  encode_row_description(server, fields);
  encode_data_row(server, values);
  encode_error_response(server, {"ERROR", "XX000", "m", "d", "h"});
  encode_negotiate_protocol_version(server, 196608, std::vector<std::string_view>{"_pq_.x"});
  encode_ready_for_query(server, 'I');

  Prng rng{42};
  for (const std::string* original : {&client, &server}) {
    for (int iteration = 0; iteration < 5000; ++iteration) {
      std::string m = *original;
      const uint32_t flips = 1 + rng.below(4);
      for (uint32_t i = 0; i < flips; ++i) {
        m[rng.below(static_cast<uint32_t>(m.size()))] = static_cast<char>(rng.below(256));
      }
      m.resize(rng.below(static_cast<uint32_t>(m.size()) + 1));
      run_all_decoders(bytes_of(m));
    }
  }
}

}  // namespace
}  // namespace gh::pg::test
